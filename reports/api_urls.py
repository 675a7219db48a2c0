from common.api import api_path

from . import apis

urlpatterns = [
    *api_path("conversations/stats", apis.ConversationStatsApi.as_view(), "api-conversation-stats"),
    *api_path(
        "reports/conversations.csv", apis.ConversationsCsvApi.as_view(), "api-report-conversations"
    ),
]
