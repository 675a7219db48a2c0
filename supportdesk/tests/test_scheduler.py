"""The embedded default's in-process beat (supportdesk/scheduler.py): CELERY_BEAT_SCHEDULE's
tasks run on time inside the server process, and only there."""

import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from celery.schedules import crontab
from django.utils import timezone

from conversations.models import Priority, PriorityRule, RuleCondition
from conversations.tests.factories import ConversationFactory
from supportdesk.celery import app
from supportdesk.scheduler import InProcessBeat, inprocess_beat_wanted, maybe_start

SWEEP = "conversations.tasks.priority_rules_sweep"


@pytest.mark.parametrize(
    ("argv", "environ", "wanted"),
    [
        (["manage.py", "runserver", "127.0.0.1:8000"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver", "--noreload"], {}, True),
        # the autoreloader's parent only watches files: its child serves (and runs the beat)
        (["manage.py", "runserver", "127.0.0.1:8000"], {}, False),
        (["/srv/.venv/bin/daphne", "supportdesk.asgi:application"], {}, True),
        (["manage.py", "migrate"], {"RUN_MAIN": "true"}, False),
        (["manage.py", "seed_demo"], {}, False),
        (["/x/.venv/bin/pytest", "-q"], {}, False),
        (["/x/.venv/bin/celery", "-A", "supportdesk", "worker"], {}, False),
    ],
)
def test_it_starts_only_in_the_server_process(argv: list[str], environ: Any, wanted: bool) -> None:
    assert inprocess_beat_wanted(enabled=True, argv=argv, environ=environ) is wanted


def test_never_when_disabled_as_in_production() -> None:
    argv = ["manage.py", "runserver", "--noreload"]
    assert not inprocess_beat_wanted(enabled=False, argv=argv, environ={})


def test_production_settings_leave_it_off(settings: Any) -> None:
    """With a broker (REDIS_URL: tasks not eager) the settings' default is off; `make beat`."""
    settings.INPROCESS_BEAT = False
    started = maybe_start(
        settings=settings,
        argv=["daphne", "supportdesk.asgi:application"],
        environ={},
        app_factory=lambda: app,
    )
    assert started is None


@pytest.mark.django_db
def test_a_due_entry_runs_and_then_waits_its_interval() -> None:
    # given a rule raising conversations that waited over 10 minutes, and one that waited 15
    PriorityRule.objects.create(
        name="Long wait", condition=RuleCondition.WAITING, minutes=10, priority=Priority.HIGH
    )
    waiting = ConversationFactory(last_inbound_at=timezone.now() - timedelta(minutes=15))
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        beat = InProcessBeat(app=app, schedule={"sweep": {"task": SWEEP, "schedule": 60.0}})
        # when the beat looks before the interval: nothing runs
        wait = beat.tick()
        assert beat.entries[0].runs == 0
        assert 0 < wait <= 60
        waiting.refresh_from_db()
        assert waiting.priority == Priority.NORMAL
        # when a minute has passed: the sweep runs once
        traveller.shift(61)
        beat.tick()
        assert beat.entries[0].runs == 1
        waiting.refresh_from_db()
        assert waiting.priority == Priority.HIGH
        beat.tick()
        assert beat.entries[0].runs == 1  # not again before the next minute


@pytest.mark.django_db
def test_crontab_entries_follow_their_schedule() -> None:
    with time_machine.travel("2026-12-02 10:00:30+00:00", tick=False) as traveller:
        beat = InProcessBeat(
            app=app, schedule={"hourly": {"task": SWEEP, "schedule": crontab(minute="0")}}
        )
        traveller.move_to("2026-12-02 10:30:00+00:00")
        beat.tick()
        assert beat.entries[0].runs == 0
        traveller.move_to("2026-12-02 11:00:05+00:00")
        beat.tick()
        assert beat.entries[0].runs == 1


@pytest.mark.django_db
def test_a_failing_task_does_not_stop_the_others() -> None:
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        beat = InProcessBeat(
            app=app,
            schedule={
                "broken": {"task": "no.such.task", "schedule": 1.0},
                "sweep": {"task": SWEEP, "schedule": 1.0},
            },
        )
        traveller.shift(2)
        beat.tick()
    assert beat.entries[0].runs == 0  # logged, skipped
    assert beat.entries[1].runs == 1


@pytest.mark.django_db(transaction=True)
def test_the_thread_fires_the_real_schedule_on_time(settings: Any) -> None:
    """The thread a server starts runs a beat entry of its own accord, on its interval."""
    PriorityRule.objects.create(
        name="Long wait", condition=RuleCondition.WAITING, minutes=10, priority=Priority.URGENT
    )
    waiting = ConversationFactory(last_inbound_at=timezone.now() - timedelta(minutes=15))
    beat = InProcessBeat(app=app, schedule={"sweep": {"task": SWEEP, "schedule": 0.5}})
    beat.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting.refresh_from_db()
            if waiting.priority == Priority.URGENT:
                break
            time.sleep(0.1)
    finally:
        beat.stop()
    assert waiting.priority == Priority.URGENT
    assert beat.entries[0].runs >= 1


def test_the_server_builds_its_beat_inside_django_setup_without_importing_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``AppConfig.ready()`` runs inside ``django.setup()``: importing the tasks there through
    Celery's loader re-entered it (the Django fix-up) and killed the server before it listened
    (``make run`` and embedded daphne answered nothing). They load on the thread's first look,
    with Django's own ``autodiscover_modules``, and only once."""
    from supportdesk import scheduler

    imported: list[str] = []
    monkeypatch.setattr(scheduler, "autodiscover_modules", imported.append)
    monkeypatch.setattr(
        app.loader, "import_default_modules", lambda: pytest.fail("Celery's loader was used")
    )
    beat = InProcessBeat(app=app, schedule={"sweep": {"task": SWEEP, "schedule": 60.0}})
    assert imported == []
    beat.tick()
    beat.tick()
    assert imported == ["tasks"]


@pytest.mark.django_db(transaction=True)
def test_the_thread_waits_for_django_to_be_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.apps import apps

    monkeypatch.setattr(apps, "ready", False)
    beat = InProcessBeat(app=app, schedule={"sweep": {"task": SWEEP, "schedule": 0.05}})
    beat.start()
    try:
        time.sleep(0.5)
        assert beat.entries[0].runs == 0  # still setting up: nothing imported, nothing run
        monkeypatch.setattr(apps, "ready", True)
        deadline = time.monotonic() + 10
        while beat.entries[0].runs == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        beat.stop()


def test_every_entry_of_the_settings_names_a_registered_task(settings: Any) -> None:
    """What the in-process beat (and celery beat) will call exists."""
    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
    assert "conversations-scheduled-messages-send" in settings.CELERY_BEAT_SCHEDULE
    assert "conversations-auto-close-sweep" in settings.CELERY_BEAT_SCHEDULE
