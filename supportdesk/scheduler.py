"""The embedded default's Celery beat: the periodic tasks of ``CELERY_BEAT_SCHEDULE``, run in the
web process on their own schedule (contract §10 "Timers work in the embedded default too").

Under ``make run`` there is no broker and no ``celery beat``: tasks run eagerly, so nothing would
ever call the sweepers, the scheduled messages' sender or the auto-close. One daemon thread of
the server process does what beat would do: it reads the same schedule (numbers, timedeltas or
crontabs, through Celery's own ``is_due``), and runs each due task in-process with
``Task.apply`` — no queue, no broker of its own. Database connections are closed after every run.

It starts only where it should (:func:`inprocess_beat_wanted`): ``INPROCESS_BEAT`` is on (by
default when tasks are eager, i.e. no ``REDIS_URL``), and the process is the server
(``runserver``'s serving child, or daphne). Tests, ``manage.py`` commands and production
(``REDIS_URL`` set, ``make beat`` runs celery beat) never start it.
"""

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import Celery
from celery.schedules import BaseSchedule, maybe_schedule
from django.apps import apps
from django.db import close_old_connections, connections
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)

# Never sleep longer than this between looks at the schedule (a stop is noticed as fast).
MAX_SLEEP = 5.0


@dataclass
class BeatEntry:
    name: str
    task: str
    schedule: BaseSchedule
    last_run_at: datetime
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    runs: int = 0


def _schedule_of(value: Any, app: Celery) -> BaseSchedule:
    """A beat entry's ``schedule`` (seconds, a timedelta or a schedule) as Celery reads it."""
    schedule = maybe_schedule(value, app=app)
    if not isinstance(schedule, BaseSchedule):
        raise TypeError(f"not a beat schedule: {value!r}")
    return schedule


class InProcessBeat:
    """Runs the due entries of a beat schedule, in this process; :meth:`tick` is one look."""

    def __init__(self, *, app: Celery, schedule: Mapping[str, Mapping[str, Any]]) -> None:
        self.app = app
        # The tasks are imported on the first look, not here: the server builds its beat in
        # ``AppConfig.ready()``, inside ``django.setup()``, where importing them through Celery's
        # loader called ``django.setup()`` again (its Django fix-up) and failed ("populate()
        # isn't reentrant"), killing the server's main thread before it listened.
        self._tasks_loaded = False
        now = app.now()
        self.entries = [
            BeatEntry(
                name=name,
                task=str(entry["task"]),
                schedule=_schedule_of(entry["schedule"], app),
                args=tuple(entry.get("args") or ()),
                kwargs=dict(entry.get("kwargs") or {}),
                # like celery beat: the first run is one interval after start
                last_run_at=now,
            )
            for name, entry in schedule.items()
        ]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load_tasks(self) -> None:
        """Every app's ``tasks`` module (their shared tasks register with the app), once Django
        is set up. Not Celery's ``import_default_modules``: its Django fix-up would run the
        system checks from this thread."""
        if not self._tasks_loaded:
            autodiscover_modules("tasks")
            self._tasks_loaded = True

    def tick(self) -> float:
        """Run every due entry once; returns the seconds until the next one is due."""
        self._load_tasks()
        wait = MAX_SLEEP
        for entry in self.entries:
            due, next_in = entry.schedule.is_due(entry.last_run_at)
            if due:
                entry.last_run_at = self.app.now()
                self._run(entry)
                due, next_in = entry.schedule.is_due(entry.last_run_at)
            wait = min(wait, max(float(next_in), 0.05))
        return wait

    def _run(self, entry: BeatEntry) -> None:
        try:
            task = self.app.tasks[entry.task]
        except KeyError:
            logger.error("in-process beat: no task %s (entry %s)", entry.task, entry.name)
            return
        try:
            task.apply(args=entry.args, kwargs=entry.kwargs, throw=True)
        except Exception:
            logger.exception("in-process beat: %s failed", entry.name)
        finally:
            entry.runs += 1
            # this thread's connections are never left open between runs (a caller inside a
            # transaction, as a test is, keeps its own)
            if not any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
                connections.close_all()

    def run_forever(self) -> None:
        # started from AppConfig.ready(): the other apps finish setting up first
        while not apps.ready and not self._stop.is_set():
            self._stop.wait(0.05)
        close_old_connections()
        while not self._stop.is_set():
            self._stop.wait(self.tick())

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run_forever, name="inprocess-beat", daemon=True)
        self._thread.start()
        logger.info("in-process beat started: %s", ", ".join(entry.name for entry in self.entries))
        return self._thread

    def stop(self, timeout: float | None = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def inprocess_beat_wanted(
    *, enabled: bool, argv: Sequence[str], environ: Mapping[str, str]
) -> bool:
    """Whether this process is the server of an embedded desk: ``runserver``'s serving process
    (the autoreloader's child, or ``--noreload``) or daphne."""
    if not enabled or not argv:
        return False
    program = argv[0].rsplit("/", 1)[-1]
    if program == "daphne" or program.startswith("daphne"):
        return True
    if "runserver" not in argv[1:3]:
        return False
    return environ.get("RUN_MAIN") == "true" or "--noreload" in argv


_started: InProcessBeat | None = None
_lock = threading.Lock()


def inprocess_beat_start(
    *, app: Celery, schedule: Mapping[str, Mapping[str, Any]]
) -> InProcessBeat | None:
    """Start the one in-process beat of this process (a second call changes nothing)."""
    global _started  # noqa: PLW0603 - one scheduler per process
    with _lock:
        if _started is None and schedule:
            _started = InProcessBeat(app=app, schedule=schedule)
            _started.start()
        return _started


def maybe_start(
    *,
    settings: Any,
    argv: Sequence[str],
    environ: Mapping[str, str],
    app_factory: Callable[[], Celery],
) -> InProcessBeat | None:
    if not inprocess_beat_wanted(
        enabled=bool(getattr(settings, "INPROCESS_BEAT", False)), argv=argv, environ=environ
    ):
        return None
    return inprocess_beat_start(app=app_factory(), schedule=settings.CELERY_BEAT_SCHEDULE)
