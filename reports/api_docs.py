"""The OpenAPI shapes of the stats answer (drf-spectacular)."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import serializers

_STATUS_COUNTS = inline_serializer(
    name="StatusCounts",
    fields={value: serializers.IntegerField() for value in ("bot", "pending", "open", "closed")},
)
_CSAT = inline_serializer(
    name="CsatFigures",
    fields={
        "average": serializers.FloatField(allow_null=True),
        "responses": serializers.IntegerField(),
        "distribution": inline_serializer(
            name="CsatDistribution",
            fields={score: serializers.IntegerField() for score in ("1", "2", "3", "4", "5")},
        ),
    },
)
_REF: dict[str, Any] = {"id": serializers.IntegerField(), "name": serializers.CharField()}


def _seconds() -> serializers.FloatField:
    return serializers.FloatField(allow_null=True)


def _conversation_fields(**extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "total": serializers.IntegerField(),
        "by_status": _STATUS_COUNTS,
        "bot_seconds_avg": _seconds(),
        "queue_wait_seconds_avg": _seconds(),
        "first_response_seconds_avg": _seconds(),
        "handling_seconds_avg": _seconds(),
        "resolution_seconds_avg": _seconds(),
        "messages_avg": _seconds(),
        "transfers": serializers.IntegerField(),
        "csat": _CSAT,
    }


STATS_RESPONSE = inline_serializer(
    name="ConversationStats",
    fields={
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "business_hours": serializers.BooleanField(),
        **_conversation_fields(),
        "by_department": inline_serializer(
            name="DepartmentStats",
            many=True,
            fields=_conversation_fields(
                department=inline_serializer(name="StatsDepartment", fields=_REF, allow_null=True)
            ),
        ),
        "by_agent": inline_serializer(
            name="AgentStats",
            many=True,
            fields={
                "agent": inline_serializer(name="StatsAgent", fields=_REF),
                "total": serializers.IntegerField(help_text="conversations the agent handled"),
                "segments": serializers.IntegerField(),
                "by_status": _STATUS_COUNTS,
                "first_response_seconds_avg": _seconds(),
                "handling_seconds_avg": _seconds(),
                "handling_seconds_total": _seconds(),
                "messages_in": serializers.IntegerField(),
                "messages_out": serializers.IntegerField(),
                "transfers": serializers.IntegerField(),
                "csat": _CSAT,
            },
        ),
        "series": inline_serializer(
            name="StatsBucket",
            many=True,
            fields={
                "bucket": serializers.DateTimeField(),
                "conversations": serializers.IntegerField(),
                "first_response_seconds_avg": _seconds(),
                "csat_average": _seconds(),
            },
        ),
    },
)

_NO_CSAT = {"average": None, "responses": 0, "distribution": dict.fromkeys("12345", 0)}
STATS_EXAMPLE = OpenApiExample(
    "Stats",
    response_only=True,
    value={
        "from": "2026-11-01T00:00:00-03:00",
        "to": "2026-12-01T00:00:00-03:00",
        "business_hours": False,
        "total": 1,
        "by_status": {"bot": 0, "pending": 0, "open": 0, "closed": 1},
        "bot_seconds_avg": 60.0,
        "queue_wait_seconds_avg": 240.0,
        "first_response_seconds_avg": 420.0,
        "handling_seconds_avg": 1500.0,
        "resolution_seconds_avg": 1800.0,
        "messages_avg": 9.0,
        "transfers": 1,
        "csat": _NO_CSAT,
        "by_department": [],
        "by_agent": [],
        "series": [
            {
                "bucket": "2026-11-24T00:00:00-03:00",
                "conversations": 1,
                "first_response_seconds_avg": 420.0,
                "csat_average": None,
            }
        ],
    },
)

CSV_EXAMPLE = OpenApiExample(
    "CSV",
    response_only=True,
    media_type="text/csv",
    value=(
        "id,created_at,customer,phone,department,agents,status,bot_seconds,queue_wait_seconds,"
        "first_response_seconds,handling_seconds,resolution_seconds,messages_in,messages_out,"
        "transfers,tags,priority,csat_score,csat_comment\r\n"
        "42,2026-11-23T17:50:00-03:00,João Conceição,'+5511987650002,Suporte,"
        "Ana Agente; Bia Suporte,closed,120.0,240.0,540.0,2040.0,3600.0,3,4,1,,,,\r\n"
    ),
)
