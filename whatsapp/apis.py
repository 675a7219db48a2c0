"""``/api/v1/webhooks/whatsapp`` (contract §5): Meta's verification and deliveries.

A plain Django view, not DRF: the signature is checked on the raw bytes before anything parses them.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from whatsapp.metrics import webhook_delivery_counted
from whatsapp.services.intake import webhook_accept

# Meta's deliveries reach 3 MB; Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) is bypassed here only.
DEFAULT_MAX_BODY = 3 * 1024 * 1024


def _verify(request: HttpRequest) -> HttpResponse:
    token = settings.WEBHOOK_VERIFY_TOKEN
    if (
        token
        and request.GET.get("hub.mode") == "subscribe"
        and constant_time_compare(request.GET.get("hub.verify_token", ""), token)
    ):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return HttpResponse("forbidden", status=403, content_type="text/plain")


def max_body() -> int:
    return int(getattr(settings, "WHATSAPP_WEBHOOK_MAX_BODY", DEFAULT_MAX_BODY))


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body up to ``limit`` bytes, None when larger (read from the stream directly)."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify(request)
    raw_body = _read_body(request, max_body())
    if raw_body is None:
        webhook_delivery_counted("too_large")
        return HttpResponse("payload too large", status=413, content_type="text/plain")
    answer = webhook_accept(
        raw_body=raw_body, signature=request.headers.get("X-Hub-Signature-256", "")
    )
    return HttpResponse(answer.text, status=answer.status, content_type="text/plain")
