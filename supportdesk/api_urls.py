"""Everything under ``/api/v1/``. Each app contributes its own ``api_urls``."""

from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from .api import api_path

urlpatterns = [
    path("", include("whatsapp.api_urls")),
    path("", include("botflows.api_urls")),
    path("", include("accounts.api_urls")),
    path("", include("departments.api_urls")),
    path("", include("conversations.api_urls")),
    # OpenAPI 3 schema and its browsable docs (Swagger UI; Redoc below), assets served locally.
    *api_path("schema", SpectacularAPIView.as_view(), "api-schema"),
    *api_path("docs", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), "api-docs"),
    *api_path("docs/redoc", SpectacularRedocView.as_view(url_name="api-schema"), "api-redoc"),
]
