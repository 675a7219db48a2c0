from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from supportdesk.models import TimeStampedModel


class BotConfiguration(TimeStampedModel):
    """Key-value settings of the bot (greeting, menu, hand-off words, AI switches...)."""

    key = models.SlugField(_("key"), max_length=100, unique=True)
    value = models.JSONField(_("value"), default=dict, blank=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["key"]
        verbose_name = _("bot setting")
        verbose_name_plural = _("bot settings")

    def __str__(self) -> str:
        return self.key
