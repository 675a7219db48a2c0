"""Everything under ``/api/v1/``. Each app contributes its own ``api_urls``."""

from django.urls import include, path

urlpatterns = [
    path("", include("whatsapp.api_urls")),
    path("", include("botflows.api_urls")),
]
