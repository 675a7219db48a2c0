"""A read replica (``DATABASE_REPLICA_URL``, issue 15 §6): search, reports, the CSV export and
the board read from it; writes, everything else, and reads inside a write's transaction stay on
the primary.

A second database stands in for the replica: the primary's rows copied into it, then changed
there alone, so an answer says which database it came from."""

import copy
import csv
import io
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connections, transaction
from django.test import Client

from common.replica import REPLICA, replica_reads
from conversations.models import Conversation, ConversationStatus, Message
from conversations.tests.factories import ConversationFactory, CustomerFactory, MessageFactory
from reports.models import ConversationMetrics
from supportdesk.tests.api_support import api_env, bearer


def _replica_alias() -> None:
    """The ``replica`` alias, a database of its own beside the primary's (its test database is
    made, and migrated, only when a test here runs)."""
    if REPLICA in connections.settings:
        return
    replica = copy.deepcopy(connections.settings["default"])
    replica["NAME"] = f"{replica['NAME']}_replica"
    replica["TEST"] = {**replica.get("TEST", {}), "NAME": None}
    connections.settings[REPLICA] = replica


_replica_alias()

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", REPLICA]),
    pytest.mark.usefixtures(api_env.__name__),
]


def copy_to_replica() -> None:
    """The primary's rows into the replica, as streaming replication would (tables migrations
    filled alike on both, content types and permissions, are left as they are)."""
    with transaction.atomic(using=REPLICA):
        for model in apps.get_models(include_auto_created=True):
            if model._meta.proxy or not model._meta.managed:
                continue
            if model._base_manager.using(REPLICA).exists():
                continue
            rows = list(model._base_manager.using("default").all())
            if rows:
                model._base_manager.using(REPLICA).bulk_create(rows)


@pytest.fixture
def on_both(settings: Any, admin_user: Any, support: Any) -> Conversation:
    """A conversation in the queue, on the primary and its replica; replication on."""
    customer = CustomerFactory(name="Marta Quintino", wa_id="5511987650011", phone="+5511987650011")
    conversation = ConversationFactory(
        customer=customer, department=support, status=ConversationStatus.OPEN
    )
    MessageFactory(conversation=conversation, body="preciso do boleto atrasado")
    call_command("reports_rebuild", stdout=io.StringIO())  # its metrics row, for the reports
    copy_to_replica()
    settings.READ_REPLICA = True
    return conversation


def replica_only(conversation: Conversation, body: str) -> None:
    Message.objects.using(REPLICA).filter(conversation=conversation).update(body=body)


def api_search(user: Any, text: str) -> list[int]:
    response = bearer(user).get("/api/v1/conversations", {"search": text})
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_search_reads_the_replica_and_only_with_one_configured(
    settings: Any, on_both: Conversation, admin_user: Any
) -> None:
    # What each side holds that the other does not (a message written since the copy; the
    # search document only ever gains words, so a changed body would still find the old ones).
    Message.objects.using(REPLICA).create(  # an id of its own: the copy left the sequence
        id=999_999,
        conversation_id=on_both.pk,
        direction="in",
        body="segunda via do carnê de novembro",
    )
    MessageFactory(conversation=on_both, body="o pix foi devolvido")

    assert api_search(admin_user, "carnê") == [on_both.pk]
    assert api_search(admin_user, "pix") == []  # the primary's words are not searched

    console = Client()
    console.force_login(admin_user)
    html = console.get("/inbox/", {"tab": "all", "q": "carnê"}, HTTP_HX_REQUEST="true")
    assert "Marta Quintino" in html.content.decode()

    settings.READ_REPLICA = False  # no DATABASE_REPLICA_URL: everything reads the primary
    assert api_search(admin_user, "carnê") == []
    assert api_search(admin_user, "pix") == [on_both.pk]


def test_reports_the_csv_and_the_board_read_the_replica(
    settings: Any, on_both: Conversation, admin_user: Any
) -> None:
    # On the replica, the conversation waits in the queue and has no metrics row yet.
    Conversation.objects.using(REPLICA).filter(pk=on_both.pk).update(
        status=ConversationStatus.PENDING, assigned_to=None
    )
    ConversationMetrics.objects.using(REPLICA).all().delete()
    assert ConversationMetrics.objects.using("default").filter(conversation=on_both).exists()

    client = bearer(admin_user)
    console = Client()
    console.force_login(admin_user)

    def read() -> tuple[int, int, int]:
        stats = client.get("/api/v1/conversations/stats").json()
        response = client.get("/api/v1/reports/conversations.csv")
        assert response.status_code == 200
        text = b"".join(response.streaming_content).decode("utf-8-sig")
        board = console.get("/board/", HTTP_HX_REQUEST="true")
        assert board.status_code == 200
        queued = board.context["board_departments"][0].queued
        return stats["total"], len(list(csv.reader(io.StringIO(text)))) - 1, queued

    # The replica: no metrics yet (so no stats, no CSV rows), the conversation in the queue.
    assert read() == (0, 0, 1)
    settings.READ_REPLICA = False
    assert read() == (1, 1, 0)  # the primary's


def test_writes_and_reads_in_a_write_stay_on_the_primary(
    on_both: Conversation, admin_user: Any
) -> None:
    replica_only(on_both, "segunda via do carnê")
    with replica_reads():
        read = Message.objects.get(conversation=on_both)
        assert read.body == "segunda via do carnê"  # read from the replica
        read.body = "editado"
        read.save()  # a row read from the replica is written to the primary
        with transaction.atomic():  # a write's transaction reads the primary, its own rows
            assert Message.objects.get(conversation=on_both).body == "editado"
    assert Message.objects.using(REPLICA).get(conversation=on_both).body == "segunda via do carnê"

    # A write through the API, made while replication is on, lands on the primary.
    response = bearer(admin_user).post(f"/api/v1/conversations/{on_both.pk}/close")
    assert response.status_code == 200, response.content
    assert Conversation.objects.using("default").get(pk=on_both.pk).status == "closed"
    assert Conversation.objects.using(REPLICA).get(pk=on_both.pk).status == "open"
