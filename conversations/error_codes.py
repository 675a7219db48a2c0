"""The error codes the conversations APIs and services answer with (``{"detail", "code"}``)."""

from enum import StrEnum


class ConversationErrorCode(StrEnum):
    ADMIN_ONLY = "admin_only"
    SEARCH_TIMEOUT = "search_timeout"
    SEARCH_BUSY = "search_busy"
    TAG_NAME_TAKEN = "tag_name_taken"
    TAG_INVALID = "tag_invalid"
    UNKNOWN_TAG = "unknown_tag"
    INVALID_PRIORITY = "invalid_priority"
    CONTACT_INVALID = "contact_invalid"
    QUICK_REPLY_INVALID = "quick_reply_invalid"
    QUICK_REPLY_SHORTCUT_TAKEN = "quick_reply_shortcut_taken"
    AT_CAPACITY = "at_capacity"
