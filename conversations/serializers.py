"""The JSON shapes of contract §4, shared by the REST API and the WebSocket events."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Conversation, Customer, Message, Tag


class TagSerializer(serializers.ModelSerializer[Tag]):
    class Meta:
        model = Tag
        fields = ("id", "name", "color")
        read_only_fields = ("id",)


def _tag_list(tags: Any) -> list[dict[str, Any]]:
    """``{id, name, color}`` of each tag, by name; from the prefetched rows when there are (the
    lists prefetch ``tags`` and ``customer__tags``), else one query."""
    return [
        {"id": t.pk, "name": t.name, "color": t.color}
        for t in sorted(tags.all(), key=lambda t: t.name.casefold())
    ]


@extend_schema_field(TagSerializer(many=True))
class TagListField(serializers.Field[Any, Any, Any, Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return instance

    def to_representation(self, value: Any) -> list[dict[str, Any]]:
        return _tag_list(value.tags)


class CustomerSummarySerializer(serializers.ModelSerializer[Customer]):
    tags = TagListField()

    class Meta:
        model = Customer
        fields = ("id", "phone", "name", "tags")


class NamedRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class NumberRefSerializer(serializers.Serializer[Any]):
    """The business number a conversation came through (``whatsapp_account``, contract v2)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    display_phone_number = serializers.CharField()


class ConversationSerializer(serializers.ModelSerializer[Conversation]):
    customer = CustomerSummarySerializer(read_only=True)
    department = NamedRefSerializer(read_only=True, allow_null=True)
    assigned_to = NamedRefSerializer(read_only=True, allow_null=True)
    window_expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    whatsapp_account = NumberRefSerializer(read_only=True, allow_null=True)
    tags = TagListField()

    class Meta:
        model = Conversation
        fields = (
            "id",
            "status",
            "customer",
            "department",
            "assigned_to",
            "last_message_at",
            "unread_count",
            "created_at",
            "closed_at",
            "first_response_at",
            "window_expires_at",
            "whatsapp_account",
            "priority",
            "tags",
        )
        read_only_fields = fields


class MediaSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(allow_null=True)
    mime_type = serializers.CharField()
    filename = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)


class MessageSerializer(serializers.ModelSerializer[Message]):
    media = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = (
            "id",
            "conversation",
            "direction",
            "sender",
            "sender_user",
            "type",
            "body",
            "media",
            "status",
            "error",
            "error_code",
            "wa_message_id",
            "reply_to",
            "send_at",
            "created_at",
        )
        read_only_fields = fields

    def get_media(self, obj: Message) -> dict[str, Any] | None:
        if not (obj.media_file or obj.media_id):
            return None
        return {
            "url": f"/media/messages/{obj.pk}" if obj.media_file else None,
            "mime_type": obj.media_mime_type,
            "filename": obj.media_filename,
            "size": obj.media_size,
        }


# One serializer of each kind per process: building a serializer's fields costs far more than
# using them, and ``to_representation`` keeps no state between calls.
_CONVERSATION = ConversationSerializer()
_MESSAGE = MessageSerializer()


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    return dict(_CONVERSATION.to_representation(conversation))


def message_payload(message: Message) -> dict[str, Any]:
    return dict(_MESSAGE.to_representation(message))
