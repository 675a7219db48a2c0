"""``/api/v1/bot/...`` (contract §4)."""

from common.api import api_path

from . import apis

urlpatterns = [
    *api_path("bot/config", apis.BotConfigListApi.as_view(), "api-bot-config"),
    *api_path("bot/config/<slug:key>", apis.BotConfigDetailApi.as_view(), "api-bot-config-key"),
    *api_path("bot/flows", apis.BotFlowListApi.as_view(), "api-bot-flows"),
]
