import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def _english():
    """Assertions read Meta's and our messages in English (the desk ships pt-BR too)."""
    with translation.override("en"):
        yield
