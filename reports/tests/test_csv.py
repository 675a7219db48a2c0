"""``GET /api/v1/reports/conversations.csv``: streamed, UTF-8 with a BOM, the header of §9, the
scenario's row, accents kept, formulas neutralised, the stats' filters, session or bearer."""

import csv
import io
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from rest_framework_simplejwt.tokens import RefreshToken

from conversations.models import Conversation, Tag
from conversations.tests.factories import CustomerFactory
from reports import apis
from reports.apis import csv_safe
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

from .scenario import live_the_scenario

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

URL = "/api/v1/reports/conversations.csv?from=2026-11-23&to=2026-11-23"
HEADER = [
    "id",
    "created_at",
    "customer",
    "phone",
    "department",
    "agents",
    "status",
    "bot_seconds",
    "queue_wait_seconds",
    "first_response_seconds",
    "handling_seconds",
    "resolution_seconds",
    "messages_in",
    "messages_out",
    "transfers",
    "tags",
    "priority",
    "csat_score",
    "csat_comment",
]


def download(response: Any) -> tuple[bytes, list[dict[str, str]]]:
    assert response.status_code == 200, response
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="conversations-')
    raw = b"".join(response.streaming_content)
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == HEADER
    return raw, [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def test_the_scenario_row(lived: Conversation, supervisor: Any) -> None:
    lived.tags.add(Tag.objects.create(name="VIP"), Tag.objects.create(name="Atraso"))
    Conversation.objects.filter(pk=lived.pk).update(priority="high")

    raw, rows = download(bearer(supervisor).get(URL))

    assert raw.startswith(b"\xef\xbb\xbfid,created_at,customer,")
    assert "João Conceição".encode() in raw  # UTF-8, not mangled
    assert rows == [
        {
            "id": str(lived.pk),
            "created_at": "2026-11-23T17:50:00-03:00",
            "customer": "João Conceição",
            "phone": "'+5511987650002",  # a leading + is a formula to a spreadsheet
            "department": "Suporte",
            "agents": "Ana Agente; Bia Suporte",
            "status": "closed",
            "bot_seconds": "120.0",
            "queue_wait_seconds": "240.0",
            "first_response_seconds": "540.0",
            "handling_seconds": "2040.0",
            "resolution_seconds": "3600.0",
            "messages_in": "3",
            "messages_out": "4",
            "transfers": "1",
            "tags": "Atraso; VIP",
            "priority": "high",
            "csat_score": "",
            "csat_comment": "",
        }
    ]
    _, in_hours = download(bearer(supervisor).get(f"{URL}&business_hours=true"))
    assert [(r["handling_seconds"], r["resolution_seconds"]) for r in in_hours] == [
        ("240.0", "600.0")
    ]


def test_cells_that_a_spreadsheet_would_run_are_kept_as_text(
    support: Any, agent: Any, agent_b: Any, admin_user: Any
) -> None:
    customer = CustomerFactory(name='=HYPERLINK("http://evil","x")', phone="@SUM(1+1)")
    live_the_scenario(customer=customer, department=support, agent_a=agent, agent_b=agent_b)

    _, (row,) = download(bearer(admin_user).get(URL))

    assert row["customer"] == '\'=HYPERLINK("http://evil","x")'
    assert row["phone"] == "'@SUM(1+1)"
    assert [csv_safe(v) for v in ("-2+3", "+1", "\tx", "ok", "a=b", 5, None)] == [
        "'-2+3",
        "'+1",
        "'\tx",
        "ok",
        "a=b",
        5,
        None,
    ]


def test_filters_apply_and_a_session_works_too(
    lived: Conversation, supervisor: Any, sales: Any, agent: Any
) -> None:
    client = Client()
    client.force_login(supervisor)
    _, rows = download(client.get(URL, headers={"accept": "text/csv"}))
    assert len(rows) == 1
    _, none = download(client.get(f"{URL}&department={sales.pk}"))
    assert none == []
    assert_error_shape(client.get(f"{URL}&tag=x"), 400)
    vip = Tag.objects.create(name="VIP")
    _, untagged = download(client.get(f"{URL}&tag={vip.pk}"))
    assert untagged == []
    lived.tags.add(vip)
    _, tagged = download(client.get(f"{URL}&tag={vip.pk}"))
    assert [r["id"] for r in tagged] == [str(lived.pk)]
    agent_client = Client()
    agent_client.force_login(agent)
    assert_error_shape(agent_client.get(URL, headers={"accept": "text/csv"}), 403)


def test_the_rows_are_read_in_chunks(
    lived: Conversation, supervisor: Any, django_assert_num_queries: Any
) -> None:
    """Constant memory: the rows come from a server-side iterator while the response streams;
    the desk's users' names are read once."""
    response = bearer(supervisor).get(URL)
    with django_assert_num_queries(2):  # users' names, the rows
        b"".join(response.streaming_content)


@pytest.mark.django_db(transaction=True)
async def test_served_by_asgi_the_file_streams_as_it_is_read(
    lived: Conversation, supervisor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under an ASGI server (daphne) the lines go out batch by batch, not after the whole file
    was read into memory (what Django does with a sync iterator): one line per batch here."""
    monkeypatch.setattr(apis, "CSV_LINES_PER_CHUNK", 1)
    token = await sync_to_async(lambda: str(RefreshToken.for_user(supervisor).access_token))()

    response = await AsyncClient().get(URL, headers={"authorization": f"Bearer {token}"})
    chunks = [chunk async for chunk in response.streaming_content]

    assert response.status_code == 200
    header, row = chunks
    assert header.startswith(b"\xef\xbb\xbfid,created_at,")
    assert row.startswith(f"{lived.pk},2026-11-23T17:50:00-03:00,".encode())
    same_file = await sync_to_async(
        lambda: b"".join(bearer(supervisor).get(URL).streaming_content)
    )()
    await sync_to_async(connections.close_all)()  # the threads' connections
    assert b"".join(chunks) == same_file
