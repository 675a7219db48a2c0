from common.api import api_path

from . import apis, contact_apis

urlpatterns = [
    *api_path("conversations", apis.ConversationListApi.as_view(), "api-conversations"),
    *api_path("conversations/<int:pk>", apis.ConversationDetailApi.as_view(), "api-conversation"),
    *api_path(
        "conversations/<int:pk>/takeover",
        apis.ConversationTakeOverApi.as_view(),
        "api-conversation-takeover",
    ),
    *api_path(
        "conversations/<int:pk>/transfer",
        apis.ConversationTransferApi.as_view(),
        "api-conversation-transfer",
    ),
    *api_path(
        "conversations/<int:pk>/close",
        apis.ConversationCloseApi.as_view(),
        "api-conversation-close",
    ),
    *api_path(
        "conversations/<int:pk>/reopen",
        apis.ConversationReopenApi.as_view(),
        "api-conversation-reopen",
    ),
    *api_path(
        "conversations/<int:pk>/history",
        apis.ConversationHistoryApi.as_view(),
        "api-conversation-history",
    ),
    *api_path(
        "conversations/<int:pk>/tags",
        apis.ConversationTagsApi.as_view(),
        "api-conversation-tags",
    ),
    *api_path("contacts", contact_apis.ContactListApi.as_view(), "api-contacts"),
    *api_path("contacts/<int:pk>", contact_apis.ContactDetailApi.as_view(), "api-contact"),
    *api_path(
        "contacts/<int:pk>/conversations",
        contact_apis.ContactConversationsApi.as_view(),
        "api-contact-conversations",
    ),
    *api_path("contacts/<int:pk>/tags", apis.ContactTagsApi.as_view(), "api-contact-tags"),
    *api_path("quick-replies", contact_apis.QuickReplyListApi.as_view(), "api-quick-replies"),
    *api_path(
        "quick-replies/<int:pk>", contact_apis.QuickReplyDetailApi.as_view(), "api-quick-reply"
    ),
    *api_path("tags", apis.TagListApi.as_view(), "api-tags"),
    *api_path("tags/<int:pk>", apis.TagDetailApi.as_view(), "api-tag"),
    *api_path("messages", apis.MessageListApi.as_view(), "api-messages"),
    *api_path("messages/<int:pk>", apis.MessageDetailApi.as_view(), "api-message"),
    *api_path("messages/<int:pk>/read", apis.MessageReadApi.as_view(), "api-message-read"),
]
