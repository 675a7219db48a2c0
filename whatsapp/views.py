"""HTML views of the WhatsApp channel: authorised media and the customer simulator (sandbox)."""

from collections.abc import AsyncIterator
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from conversations import selectors
from conversations.models import Message
from whatsapp.identity import digits
from whatsapp.services.sandbox import new_wamid, sandbox_send_text, sandbox_transcript

# Served inline; anything else (HTML, SVG, scripts…) is a download, never rendered by the browser.
INLINE_TYPES = ("image/jpeg", "image/png", "image/webp", "audio/", "video/", "application/pdf")
# Read this much at a time when streaming a file to an ASGI server.
CHUNK_SIZE = 64 * 1024


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    """The file, a chunk at a time, each read on a worker thread (storage may be S3)."""
    read = sync_to_async(handle.read, thread_sensitive=False)
    while chunk := await read(CHUNK_SIZE):
        yield chunk


@login_required
def media_serve(request: HttpRequest, pk: int) -> FileResponse:
    """A message's media file, only for users who may see its conversation (404 otherwise)."""
    message = Message.objects.select_related("conversation").filter(pk=pk).first()
    if (
        message is None
        or not message.media_file
        or not selectors.conversation_is_visible_to(
            user=request.user,  # type: ignore[arg-type]
            conversation=message.conversation,
        )
    ):
        raise Http404
    mime_type = message.media_mime_type or "application/octet-stream"
    inline = mime_type.split(";")[0].strip().startswith(INLINE_TYPES)
    filename = message.media_filename or str(message.media_file.name).rsplit("/", 1)[-1]
    handle = message.media_file.open("rb")
    response = FileResponse(
        handle,
        content_type=mime_type if inline else "application/octet-stream",
        as_attachment=not inline,
        filename=filename,
    )
    if isinstance(request, ASGIRequest):
        # Under daphne/uvicorn Django reads a synchronous file into memory whole before sending
        # it (a 100 MB video would sit in the server's memory): stream it asynchronously instead.
        # The headers (length, type, disposition) are FileResponse's; it still closes the file.
        response.streaming_content = _chunks(handle)
    response["Cache-Control"] = "private, max-age=3600"
    if not mime_type.startswith("application/pdf"):  # Chromium shows no PDF in a sandbox
        # Whatever the file turns out to be, it runs no script on the desk's origin.
        response["Content-Security-Policy"] = (
            "sandbox; default-src 'none'; img-src 'self'; media-src 'self'"
        )
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _sandbox_enabled() -> bool:
    return bool(settings.DEBUG or settings.SANDBOX_ENABLED)


DEFAULT_SANDBOX_NUMBER = "5511900000001"
SANDBOX_OWN_MESSAGES = 200  # the wamids a visitor's session remembers


@require_http_methods(["GET", "POST"])
def sandbox(request: HttpRequest) -> HttpResponse:
    """Chat as a customer: what you write is a signed webhook to our own intake."""
    if not _sandbox_enabled():
        raise Http404
    wa_id = request.session.get("sandbox_wa_id", DEFAULT_SANDBOX_NUMBER)
    name = request.session.get("sandbox_name", "Cliente Sandbox")
    if request.method == "POST":
        wa_id = digits(request.POST.get("wa_id", "")) or wa_id
        name = request.POST.get("name", "").strip()[:100] or name
        text = request.POST.get("text", "").strip()
        if wa_id != request.session.get("sandbox_wa_id"):
            request.session["sandbox_wamids"] = []  # another number: another conversation
        request.session["sandbox_wa_id"], request.session["sandbox_name"] = wa_id, name
        if text:
            wamid = new_wamid()
            # This browser's own messages: the transcript shows only what followed them.
            own = request.session.get("sandbox_wamids", [])
            request.session["sandbox_wamids"] = [*own, wamid][-SANDBOX_OWN_MESSAGES:]
            sandbox_send_text(wa_id=wa_id, text=text[:4096], name=name, wamid=wamid)
        return redirect("whatsapp:sandbox")
    context: dict[str, Any] = {
        "wa_id": wa_id,
        "name": name,
        "transcript": sandbox_transcript(
            wa_id=wa_id, own_wamids=request.session.get("sandbox_wamids", [])
        ),
    }
    template = "whatsapp/sandbox.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#transcript"
    return render(request, template, context)
