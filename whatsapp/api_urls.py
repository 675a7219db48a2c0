"""``/api/v1/webhooks/whatsapp`` (contract §5)."""

from typing import Any

urlpatterns: list[Any] = []
