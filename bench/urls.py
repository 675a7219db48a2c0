"""The desk's URLs plus ``/bench/floor``: the cheapest possible signed-webhook endpoint.

The floor checks the HMAC and inserts one row, nothing else. Comparing the real webhook with it on
the same server shows what our intake costs beyond the unavoidable work.
"""

import hashlib
import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from supportdesk.urls import handler500  # noqa: F401 - the desk's error handler
from supportdesk.urls import urlpatterns as desk_urlpatterns
from whatsapp.models import WebhookEvent


@csrf_exempt
def floor(request: HttpRequest) -> HttpResponse:
    body = request.body
    expected = (
        "sha256="
        + hmac.new(settings.WHATSAPP_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return HttpResponse(status=403)
    WebhookEvent.objects.create(raw_body=body.decode(), status="processed")
    return HttpResponse("ok")


urlpatterns = [path("bench/floor", floor), *desk_urlpatterns]
