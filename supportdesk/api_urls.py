"""Everything under ``/api/v1/``. Each app contributes its own ``api_urls``."""

from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from common.api import JsonErrorsMixin, api_path


class SchemaApi(JsonErrorsMixin, SpectacularAPIView):
    pass


class SwaggerDocs(JsonErrorsMixin, SpectacularSwaggerSplitView):
    pass


class RedocDocs(JsonErrorsMixin, SpectacularRedocView):
    pass


urlpatterns = [
    path("", include("whatsapp.api_urls")),
    path("", include("botflows.api_urls")),
    path("", include("accounts.api_urls")),
    path("", include("departments.api_urls")),
    path("", include("reports.api_urls")),  # conversations/stats, reports/*
    path("", include("conversations.api_urls")),
    path("", include("integrations.api_urls")),
    # OpenAPI 3 schema and its browsable docs (Swagger UI; Redoc below), assets served locally.
    *api_path("schema", SchemaApi.as_view(), "api-schema"),
    *api_path("docs", SwaggerDocs.as_view(url_name="api-schema"), "api-docs"),
    *api_path("docs/redoc", RedocDocs.as_view(url_name="api-schema"), "api-redoc"),
]
