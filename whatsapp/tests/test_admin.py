"""The WhatsApp back office: numbers with a write-only token, Meta's deliveries read-only."""

import pytest
from django.test import Client
from django.urls import reverse

from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = pytest.mark.django_db

SECRET = "EAAG-very-secret-token-123"


@pytest.fixture(autouse=True)
def _english(settings):  # type: ignore[no-untyped-def]
    settings.LANGUAGE_CODE = "en"
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users


def _client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def _form_data(account, **changes):  # type: ignore[no-untyped-def]
    return {
        "name": account.name,
        "phone_number_id": account.phone_number_id,
        "display_phone_number": account.display_phone_number,
        "waba_id": account.waba_id,
        "is_active": "on",
        **changes,
    }


def test_the_token_is_write_only(admin_user) -> None:
    account = WhatsAppAccountFactory(access_token=SECRET)
    browser = _client_for(admin_user)
    url = reverse("admin:whatsapp_whatsappaccount_change", args=[account.pk])

    page = browser.get(url).content.decode()
    assert SECRET not in page

    # saving without typing a token keeps the stored one
    assert browser.post(url, _form_data(account, name="Vendas")).status_code == 302
    account.refresh_from_db()
    assert (account.name, account.access_token) == ("Vendas", SECRET)

    # typing one replaces it; ticking "remove" clears it
    browser.post(url, _form_data(account, access_token="new-token"))
    account.refresh_from_db()
    assert account.access_token == "new-token"
    browser.post(url, _form_data(account, clear_access_token="on"))
    account.refresh_from_db()
    assert account.access_token == ""


def test_supervisor_sees_numbers_but_never_the_token(supervisor) -> None:
    account = WhatsAppAccountFactory(access_token=SECRET)
    browser = _client_for(supervisor)

    page = browser.get(reverse("admin:whatsapp_whatsappaccount_change", args=[account.pk]))

    assert page.status_code == 200
    assert SECRET not in page.content.decode()
    assert account.phone_number_id in page.content.decode()
    forbidden = browser.post(
        reverse("admin:whatsapp_whatsappaccount_change", args=[account.pk]),
        _form_data(account, name="x"),
    )
    assert forbidden.status_code == 403


def test_webhook_deliveries_are_read_only_with_the_raw_body(admin_user) -> None:
    event = WebhookEvent.objects.create(
        raw_body='{"object":"whatsapp_business_account","entry":[]}',
        payload={"object": "whatsapp_business_account", "entry": []},
        status=WebhookStatus.UNKNOWN,
    )
    WebhookEvent.objects.create(raw_body="{}", status=WebhookStatus.PROCESSED)
    browser = _client_for(admin_user)

    page = browser.get(reverse("admin:whatsapp_webhookevent_change", args=[event.pk]))
    listing = browser.get(
        reverse("admin:whatsapp_webhookevent_changelist"), {"status__exact": "unknown"}
    )

    content = page.content.decode()
    assert (
        "{&quot;object&quot;:&quot;whatsapp_business_account&quot;,&quot;entry&quot;:[]}" in content
    )
    assert 'name="_save"' not in content
    assert list(listing.context["cl"].result_list) == [event]
    assert browser.get(reverse("admin:whatsapp_webhookevent_add")).status_code == 403
    delete_url = reverse("admin:whatsapp_webhookevent_delete", args=[event.pk])
    assert browser.post(delete_url, {"post": "yes"}).status_code == 403
    assert WebhookEvent.objects.filter(pk=event.pk).exists()


def test_a_delivery_stored_as_raw_body_only_is_shown_parsed(admin_user) -> None:
    event = WebhookEvent.objects.create(
        raw_body='{"object":"whatsapp_business_account","entry":[{"id":"WABA-9"}]}',
        status=WebhookStatus.PROCESSED,
    )
    page = _client_for(admin_user).get(
        reverse("admin:whatsapp_webhookevent_change", args=[event.pk])
    )
    content = page.content.decode()
    assert '<pre class="readonly-json">' in content
    assert "&quot;id&quot;: &quot;WABA-9&quot;" in content  # indented: the parsed form
