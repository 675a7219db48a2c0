"""The error codes outgoing-webhook APIs and services answer with (``{"detail", "code"}``)."""

from enum import StrEnum


class WebhookErrorCode(StrEnum):
    INVALID_URL = "invalid_url"
    UNSAFE_URL = "unsafe_url"
    UNKNOWN_EVENT = "unknown_event"
    NO_EVENTS = "no_events"
    NOT_REDELIVERABLE = "not_redeliverable"
