import logging
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)


def _warm_subscriptions_cache(**kwargs: Any) -> None:
    """After ``migrate``, the cache of active subscriptions is filled: even the first domain
    events of a process then cost no query (the intake pins its query counts)."""
    from . import selectors  # noqa: PLC0415 - models are not importable before ready()

    try:
        selectors.subscriptions_cache_warm()
    except Exception:  # a cache or database that is not there yet must not fail migrate
        logger.warning("could not warm the webhook subscriptions cache", exc_info=True)


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = _("Integrations")

    def ready(self) -> None:
        post_migrate.connect(_warm_subscriptions_cache, sender=self)
