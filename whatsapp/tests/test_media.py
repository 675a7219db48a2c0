"""Inbound media: Graph API id → URL → bytes, verified, stored, served to authorised users."""

import hashlib
import warnings
from urllib.parse import urlsplit

import pytest

from conversations.models import Message
from conversations.tests.factories import ConversationFactory, MessageFactory
from supportdesk.tests.asgi import AsgiRequest, asgi_call
from whatsapp.models import ChannelError, ChannelErrorKind
from whatsapp.services import sandbox as wa
from whatsapp.services.intake import webhook_receive
from whatsapp.services.media import media_download
from whatsapp.tests.fake_graph import signed_webhook
from whatsapp.views import CHUNK_SIZE

pytestmark = pytest.mark.django_db

JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg bytes" * 100


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SECURE_SSL_REDIRECT = False


def _image_delivery(media_id: str, sha256: str = "") -> dict:
    return wa.delivery(
        contacts=[wa.contact(wa_id="5511987650002", name="Maria")],
        messages=[
            wa.message(
                wa_id="5511987650002",
                type="image",
                content={"id": media_id, "mime_type": "image/jpeg", "sha256": sha256},
            )
        ],
    )


def test_inbound_image_is_downloaded_verified_and_stored(
    fake_graph, django_capture_on_commit_callbacks
):
    fake_graph.add_media("9001", JPEG, "image/jpeg")
    body, headers = signed_webhook(_image_delivery("9001", hashlib.sha256(JPEG).hexdigest()))
    with django_capture_on_commit_callbacks(execute=True):
        event = webhook_receive(raw_body=body, signature=headers["X-Hub-Signature-256"])
    message = Message.objects.get(direction="in")
    assert event.pk
    assert message.media_file
    assert message.media_file.read() == JPEG
    assert message.media_size == len(JPEG)
    # both requests carried the bearer token
    gets = [r for r in fake_graph.requests if r[0] == "GET"]
    assert [r[1] for r in gets] == ["/v25.0/9001", "/download/9001"]
    assert all(r[2]["Authorization"] == f"Bearer {fake_graph.token}" for r in gets)


def test_a_wrong_sha256_is_retried_then_shown_never_stored(fake_graph):
    fake_graph.add_media("9002", JPEG, "image/jpeg", sha256="0" * 64)
    message = MessageFactory(type="image", media_id="9002", media_mime_type="image/jpeg")
    media_download(message_id=message.pk, final=True)
    message.refresh_from_db()
    assert not message.media_file
    assert "sha256" in message.media_error
    assert ChannelError.objects.filter(kind=ChannelErrorKind.MEDIA).exists()


def test_files_over_the_type_limit_are_refused(fake_graph, settings):
    settings.WHATSAPP_MEDIA_MAX_BYTES = {"image": 100}
    fake_graph.add_media("9003", JPEG, "image/jpeg")
    message = MessageFactory(type="image", media_id="9003")
    media_download(message_id=message.pk)
    message.refresh_from_db()
    assert not message.media_file
    assert message.media_error


def test_urls_outside_metas_hosts_are_never_fetched(fake_graph, settings):
    # The Graph API answers a URL on another host (e.g. a poisoned answer): refused, no request.
    from whatsapp.client import UnsafeURLError, check_url

    with pytest.raises(UnsafeURLError):
        check_url("http://169.254.169.254/latest/meta-data")
    with pytest.raises(UnsafeURLError):
        check_url("http://lookaside.fbsbx.com/whatsapp_business/attachments/")  # not https
    assert check_url("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1")
    assert check_url("https://LOOKASIDE.fbsbx.com:443/whatsapp_business/attachments/?mid=1")
    # the right host on another port, or the Graph API's host on another scheme or port
    api = urlsplit(fake_graph.base_url)
    for url in (
        "https://lookaside.fbsbx.com:8443/whatsapp_business/attachments/",
        "https://lookaside.fbsbx.com:99999/x",
        f"https://{api.hostname}:{api.port}/123",
        f"http://{api.hostname}:{api.port + 1}/123",
        f"http://{api.hostname}/123",
        "https://user:pw@lookaside.fbsbx.com/x",
    ):
        with pytest.raises(UnsafeURLError):
            check_url(url)
    assert check_url(fake_graph.base_url + "/123")


def test_a_transient_failure_is_retried_then_succeeds(
    fake_graph, django_capture_on_commit_callbacks
):
    fake_graph.add_media("9006", JPEG, "image/jpeg")
    fake_graph.fail_media("9006", times=2)
    body, headers = signed_webhook(_image_delivery("9006"))
    with django_capture_on_commit_callbacks(execute=True):
        webhook_receive(raw_body=body, signature=headers["X-Hub-Signature-256"])
    message = Message.objects.get(direction="in")
    assert message.media_file.read() == JPEG
    assert len([r for r in fake_graph.requests if r[1] == "/v25.0/9006"]) == 3


def test_a_failed_download_is_retried_then_shown(fake_graph, django_capture_on_commit_callbacks):
    fake_graph.add_media("9007", JPEG, "image/jpeg")
    fake_graph.fail_media("9007", times=100)
    body, headers = signed_webhook(_image_delivery("9007"))
    with django_capture_on_commit_callbacks(execute=True):
        webhook_receive(raw_body=body, signature=headers["X-Hub-Signature-256"])
    message = Message.objects.get(direction="in")
    assert not message.media_file
    assert message.media_error  # shown on the message
    assert message.media_id == "9007"  # kept: never lost
    assert len([r for r in fake_graph.requests if r[1] == "/v25.0/9007"]) == 6


def test_media_is_served_only_to_users_who_see_the_conversation(
    fake_graph, client, agent, other_agent, support
):
    conversation = ConversationFactory(department=support)
    message = MessageFactory(conversation=conversation, type="image", media_id="9004")
    fake_graph.add_media("9004", JPEG, "image/jpeg")
    media_download(message_id=message.pk)
    url = f"/media/messages/{message.pk}"

    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(other_agent)
    assert client.get(url).status_code == 404
    client.force_login(agent)
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == JPEG
    assert response["Content-Type"] == "image/jpeg"


def test_active_content_is_served_as_a_download(fake_graph, client, admin_user):
    message = MessageFactory(type="document", media_id="9005", media_filename="x.html")
    fake_graph.add_media("9005", b"<script>alert(1)</script>", "text/html")
    media_download(message_id=message.pk)
    client.force_login(admin_user)
    response = client.get(f"/media/messages/{message.pk}")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")


@pytest.mark.django_db(transaction=True)
def test_under_an_asgi_server_media_streams_in_chunks_not_read_whole_first(
    fake_graph, client, agent, support, settings
):
    video = bytes(range(256)) * 1024  # 256 KB
    conversation = ConversationFactory(department=support)
    message = MessageFactory(conversation=conversation, type="video", media_id="9010")
    fake_graph.add_media("9010", video, "video/mp4")
    media_download(message_id=message.pk)
    client.force_login(agent)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = asgi_call(
            AsgiRequest("GET", f"/media/messages/{message.pk}", headers={"Cookie": cookie})
        )

    assert answer.status == 200
    assert answer.body == video
    assert answer.headers["content-length"] == str(len(video))
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.parts > len(video) // CHUNK_SIZE  # sent as it was read, a chunk at a time
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
    # and still only for those who may see the conversation
    assert asgi_call(AsgiRequest("GET", f"/media/messages/{message.pk}")).status == 302


def test_active_content_opened_anyway_runs_no_script(fake_graph, client, admin_user):
    message = MessageFactory(type="document", media_id="9015", media_filename="x.svg")
    fake_graph.add_media("9015", b"<svg onload='alert(1)'/>", "image/svg+xml")
    media_download(message_id=message.pk)
    client.force_login(admin_user)
    response = client.get(f"/media/messages/{message.pk}")
    assert response["Content-Security-Policy"].startswith("sandbox")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_media_root_is_never_served_as_raw_files_even_under_debug(
    fake_graph, client, admin_user, settings
):
    import importlib

    from django.urls import clear_url_caches

    import supportdesk.urls

    message = MessageFactory(type="document", media_id="9016", media_filename="x.html")
    fake_graph.add_media("9016", b"<script>alert(1)</script>", "text/html")
    media_download(message_id=message.pk)
    message.refresh_from_db()
    settings.DEBUG = True
    importlib.reload(supportdesk.urls)
    clear_url_caches()
    try:
        raw = f"/{settings.MEDIA_URL.strip('/')}/{message.media_file.name}"
        assert client.get(raw).status_code == 404  # anonymous
        client.force_login(admin_user)
        assert client.get(raw).status_code == 404  # signed in: only the checked view serves it
    finally:
        settings.DEBUG = False
        importlib.reload(supportdesk.urls)
        clear_url_caches()
