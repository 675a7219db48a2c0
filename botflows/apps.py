from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BotflowsConfig(AppConfig):
    name = "botflows"
    verbose_name = _("Bot")
