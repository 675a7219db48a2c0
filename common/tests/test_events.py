"""The domain-event dispatcher: handlers from settings, after commit, whole batches, isolated."""

import dataclasses
import logging

import pytest
from django.db import transaction

from common.events import DomainEvent, emit, emit_many, event_from_json, event_type, event_types

pytestmark = pytest.mark.django_db(transaction=True)

SEEN: list[tuple[str, list[str]]] = []


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class Pinged(DomainEvent):
    type = "test.pinged"
    public = False
    n: int = 0


class Recorder:
    def in_transaction(self, events):
        SEEN.append(("in_transaction", [f"{e.type}:{e.n}" for e in events]))

    def on_commit(self, events):
        SEEN.append(("on_commit", [f"{e.type}:{e.n}" for e in events]))


class Broken:
    def on_commit(self, events):
        raise RuntimeError("boom")


class Refusing:
    def in_transaction(self, events):
        raise ValueError("refused")


@pytest.fixture(autouse=True)
def _recorder(settings):
    SEEN.clear()
    settings.DOMAIN_EVENT_HANDLERS = [
        "common.tests.test_events.Broken",
        "common.tests.test_events.Recorder",
    ]


def test_handlers_get_the_whole_batch_once_it_commits():
    with transaction.atomic():
        emit_many([Pinged(n=1), Pinged(n=2)])
        assert SEEN == [("in_transaction", ["test.pinged:1", "test.pinged:2"])]  # not yet out

    assert SEEN[-1] == ("on_commit", ["test.pinged:1", "test.pinged:2"])


def test_a_rolled_back_change_emits_nothing():
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        emit(Pinged(n=3))
        _ = 1 / 0

    assert [kind for kind, _ in SEEN] == ["in_transaction"]  # the outbox rolled back with it


def test_a_failing_handler_is_logged_and_never_stops_the_others(caplog):
    with caplog.at_level(logging.ERROR, logger="common.events"):
        emit(Pinged(n=4))

    assert SEEN[-1] == ("on_commit", ["test.pinged:4"])
    assert "Broken failed on test.pinged" in caplog.text


def test_a_handler_may_refuse_the_change_inside_the_transaction(settings):
    settings.DOMAIN_EVENT_HANDLERS = [
        "common.tests.test_events.Refusing",
        "common.tests.test_events.Recorder",
    ]
    with pytest.raises(ValueError, match="refused"), transaction.atomic():
        emit(Pinged(n=5))

    assert SEEN == []


def test_events_round_trip_through_json_and_list_their_types():
    event = Pinged(n=6)
    assert event_from_json(event.to_json()) == event
    assert "test.pinged" in event_types()
    assert "test.pinged" not in event_types(public_only=True)
