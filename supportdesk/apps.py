import os
import sys

from django.apps import AppConfig
from django.conf import settings


def _celery_app():  # type: ignore[no-untyped-def]
    from .celery import app  # noqa: PLC0415 - the Celery app loads once Django is ready

    return app


class SupportDeskConfig(AppConfig):
    name = "supportdesk"
    verbose_name = "SupportDesk"

    def ready(self) -> None:
        from .scheduler import maybe_start  # noqa: PLC0415

        # The embedded default's beat (make run): nothing else would run the periodic tasks.
        maybe_start(settings=settings, argv=sys.argv, environ=os.environ, app_factory=_celery_app)
