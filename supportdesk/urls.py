from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from .health import health
from .metrics import metrics

admin.site.site_header = "SupportDesk"
admin.site.site_title = "SupportDesk"
admin.site.index_title = _("Back office")


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    return HttpResponsePermanentRedirect(static("favicon.svg"))


# An uncaught exception: the database unreachable answers 503 (Retry-After), never 500.
handler500 = "common.api.server_error"

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", favicon),
    path("health", health, name="health"),
    path("health/", health),
    path("metrics", metrics, name="metrics"),
    path("metrics/", metrics),
    path("admin/", admin.site.urls),
    path("api/v1/", include("supportdesk.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("accounts.urls")),
    path("", include("conversations.urls")),
    path("", include("botflows.urls")),
    path("", include("whatsapp.urls")),
    path("", include("reports.urls")),
]
# MEDIA_ROOT is never served as files, not even under DEBUG: a message's media goes through
# whatsapp.views.media_serve, which checks that the user may see its conversation.
