from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from integrations import selectors

from .receiver import Receiver


def _cache_empty() -> None:
    """The active-subscriptions cache as a database without subscriptions leaves it."""
    selectors.subscriptions_bump_version()
    cache.set(selectors._DATA_KEY.format(version=selectors._version()), (), timeout=None)
    selectors._memo = None


@pytest.fixture(autouse=True)
def _subscriptions_cache() -> Iterator[None]:
    """Each test starts and ends with no subscription in the cache: the rows a test wrote are
    rolled back (or flushed) after it, and the next test (of any app) must not see them."""
    _cache_empty()
    yield
    _cache_empty()


@pytest.fixture(autouse=True)
def _http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    # Closing a conversation also sends the satisfaction survey (more events): these tests count
    # the deliveries of the events they cause themselves.
    settings.CSAT_ENABLED = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1; deliveries to private addresses allowed for the test."""
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = True
    running = Receiver().start()
    try:
        yield running
    finally:
        running.stop()
