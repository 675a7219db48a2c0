"""``/api/v1/bot/...`` (contract §4)."""

from typing import Any

urlpatterns: list[Any] = []
