from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from .health import health

admin.site.site_header = "SupportDesk"
admin.site.site_title = "SupportDesk"
admin.site.index_title = _("Back office")

urlpatterns = [
    path("health", health, name="health"),
    path("health/", health),
    path("admin/", admin.site.urls),
    path("api/v1/", include("supportdesk.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("accounts.urls")),
    path("", include("conversations.urls")),
    path("", include("botflows.urls")),
    path("", include("whatsapp.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
