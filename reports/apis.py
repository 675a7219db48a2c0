"""``GET /api/v1/conversations/stats`` and ``GET /api/v1/reports/conversations.csv``
(contract §9): supervisors and admins (API bearer or console session); agents get 403.

Interfaces only: the filters are parsed here, the figures come from :mod:`reports.selectors`.
"""

import csv
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime, time, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import IsSupervisorOrAdmin
from common.api_docs import ERROR, VALIDATION_ERROR
from common.replica import read_alias, replica_reads

from .api_docs import CSV_EXAMPLE, STATS_EXAMPLE, STATS_RESPONSE
from .selectors import CSV_COLUMNS, ReportFilters, report_rows, report_stats


class ReportQuerySerializer(serializers.Serializer[Any]):
    """The filters of the stats and of the CSV. ``from``/``to``: ISO dates (whole days in the
    desk's time zone, ``to`` inclusive) or datetimes; the last 30 days by default."""

    date_from = serializers.CharField(required=False, allow_blank=True)
    date_to = serializers.CharField(required=False, allow_blank=True)
    department = serializers.IntegerField(required=False, min_value=1)
    agent = serializers.IntegerField(required=False, min_value=1)
    tag = serializers.IntegerField(required=False, min_value=1)
    business_hours = serializers.BooleanField(required=False, default=False)
    bucket = serializers.ChoiceField(choices=("hour", "day"), required=False, default="day")

    PARAMS = ("from", "to", "department", "agent", "tag", "business_hours", "bucket")

    @classmethod
    def from_request(cls, request: Request) -> ReportFilters:
        params = request.query_params
        data = {key: params[key] for key in cls.PARAMS if params.get(key, "") != ""}
        for name in ("from", "to"):
            if name in data:
                data[f"date_{name}"] = data.pop(name)
        query = cls(data=data)
        query.is_valid(raise_exception=True)
        return query.save()

    def _parse(self, value: str, *, end: bool) -> datetime:
        # A bare date is a whole day (``to`` inclusive); parse_datetime would read it as
        # midnight (datetime.fromisoformat accepts dates), making ``to`` exclusive.
        day = parse_date(value) if len(value) == 10 else None
        if day is not None:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
        else:
            parsed = parse_datetime(value)
            if parsed is None:
                raise serializers.ValidationError(_("Use a date (YYYY-MM-DD) or an ISO datetime."))
            moment = parsed
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return moment

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        for key, end in (("date_from", False), ("date_to", True)):
            if attrs.get(key):
                try:
                    attrs[key] = self._parse(attrs[key], end=end)
                except (serializers.ValidationError, ValueError) as exc:
                    errors[key.removeprefix("date_")] = getattr(exc, "detail", [str(exc)])
            else:
                attrs.pop(key, None)
        if errors:
            raise serializers.ValidationError(errors)
        attrs.setdefault("date_to", timezone.now())
        attrs.setdefault("date_from", attrs["date_to"] - timedelta(days=30))
        if attrs["date_from"] >= attrs["date_to"]:
            raise serializers.ValidationError({"from": [_("'from' must be before 'to'.")]})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> ReportFilters:
        return ReportFilters(
            date_from=validated_data["date_from"],
            date_to=validated_data["date_to"],
            department_id=validated_data.get("department"),
            agent_id=validated_data.get("agent"),
            tag_id=validated_data.get("tag"),
            business_hours=validated_data["business_hours"],
            bucket=validated_data["bucket"],
        )


_FILTER_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.STR, description="YYYY-MM-DD or ISO datetime"),
    OpenApiParameter("to", OpenApiTypes.STR, description="YYYY-MM-DD (inclusive) or ISO"),
    OpenApiParameter("department", OpenApiTypes.INT, description="the conversation's department"),
    OpenApiParameter("agent", OpenApiTypes.INT, description="conversations this agent handled"),
    OpenApiParameter("tag", OpenApiTypes.INT, description="conversations with this tag"),
    OpenApiParameter(
        "business_hours", OpenApiTypes.BOOL, description="count only departments' open hours"
    ),
]


class ConversationStatsApi(APIView):
    permission_classes = (IsSupervisorOrAdmin,)

    @extend_schema(
        tags=["reports"],
        summary="Desk metrics (supervisors and admins)",
        description=(
            "Over conversations created in [from, to) (default: the last 30 days): counts by "
            "status; average time with the bot, queue wait, first response (creation → first "
            "agent message), handling (time with agents), resolution (creation → closing), "
            "messages and transfers; CSAT; per department, per agent (each credited with its "
            "own segments only) and over time. Durations in seconds; see docs/reports.md."
        ),
        parameters=[
            *_FILTER_PARAMETERS,
            OpenApiParameter("bucket", OpenApiTypes.STR, enum=["hour", "day"]),
        ],
        responses={200: STATS_RESPONSE, 400: VALIDATION_ERROR, 401: ERROR, 403: ERROR},
        examples=[STATS_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        filters = ReportQuerySerializer.from_request(request)
        with replica_reads():
            return Response(report_stats(filters=filters))


class _JsonErrorsOnly(BaseContentNegotiation):
    """The CSV is a streamed file whatever the client accepts; errors stay JSON."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None


class _Echo:
    """A file-like object whose ``write`` hands the CSV line back (Django's streaming recipe)."""

    def write(self, value: str) -> str:
        return value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula is kept as text (a leading quote)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return f"'{value}"
    return value


CSV_LINES_PER_CHUNK = 500


async def lines_async(lines: Iterator[str]) -> Any:
    """The same lines for an ASGI server, :data:`CSV_LINES_PER_CHUNK` at a time, each batch read
    in the request's sync thread (the rows' server-side cursor and its connection live there).

    Given a sync iterator, Django's ASGI handler would read the whole file into a list before
    the first byte (``StreamingHttpResponse.__aiter__``): 100k rows held in memory."""
    take = sync_to_async(lambda: "".join(itertools.islice(lines, CSV_LINES_PER_CHUNK)))
    while chunk := await take():
        yield chunk


def csv_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(CSV_COLUMNS)  # type: ignore[func-returns-value]
    for row in rows:
        yield writer.writerow([csv_safe(value) for value in row])  # type: ignore[func-returns-value]


class ConversationsCsvApi(APIView):
    permission_classes = (IsSupervisorOrAdmin,)
    content_negotiation_class = _JsonErrorsOnly

    @extend_schema(
        tags=["reports"],
        summary="One CSV row per conversation (supervisors and admins)",
        description=(
            "The stats' filters; columns " + ", ".join(CSV_COLUMNS) + ". UTF-8 with a "
            "byte-order mark, comma-separated, header row, streamed."
        ),
        parameters=_FILTER_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="the CSV file"),
            400: VALIDATION_ERROR,
            401: ERROR,
            403: ERROR,
        },
        examples=[CSV_EXAMPLE],
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        filters = ReportQuerySerializer.from_request(request)
        with replica_reads():  # the rows are read later, as the file streams: from here
            lines = csv_lines(report_rows(filters=filters, using=read_alias()))
        served_by_asgi = isinstance(request._request, ASGIRequest)
        response = StreamingHttpResponse(
            lines_async(lines) if served_by_asgi else lines,
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="conversations-{stamp}.csv"'
        response["Cache-Control"] = "no-store"
        return response
