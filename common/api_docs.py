"""OpenAPI pieces every API module shares (the error shapes of ``common.api``)."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR = inline_serializer(
    name="Error",
    fields={"detail": serializers.CharField(), "code": serializers.CharField()},
)
VALIDATION_ERROR = inline_serializer(
    name="ValidationError",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Messages per field (validation errors only).",
        ),
    },
)
# What every paginated list may answer besides 200.
LIST_ERRORS = {
    400: VALIDATION_ERROR,
    401: ERROR,
    404: OpenApiResponse(ERROR, description="Page out of range, or a filtered object not found."),
}


def page_of(results: list[Any]) -> dict[str, Any]:
    """A page of a list endpoint as the examples show it (contract §4 pagination)."""
    return {"count": len(results), "next": None, "previous": None, "results": results}
