"""The desk's own processes for tests that need the real thing: a daphne serving the ASGI
application, a Celery worker on a queue of the test's own. Plain context managers (no pytest):
each test's fixture builds the environment it needs and starts them through here.

    with celery_worker(env, queues=[f"{queue}.intake", queue]) as worker, daphne(env) as base:
        requests.get(f"{base}/health")
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import requests

ROOT = Path(__file__).resolve().parent.parent.parent
DAPHNE = (sys.executable, "-m", "daphne")
CELERY_WORKER = (sys.executable, "-m", "celery", "-A", "supportdesk", "worker")
CELERY_WORKER += ("--without-gossip", "--without-mingle", "--without-heartbeat")


def test_database_url() -> str:
    """The URL of the test run's database (the one pytest-django created), for a process of
    the desk to share it."""
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def desk_environment(
    *, queue: str, redis_url: str, fake_graph: Any = None, **extra: str
) -> dict[str, str]:
    """The environment of a worker or server process of the desk sharing this test's database,
    queueing what it queues (drains, the bot's turns) on ``queue``, talking to ``fake_graph``
    (a fake Graph API) when given."""
    from whatsapp.tests.fake_graph import APP_SECRET

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": redis_url,
        "PYTHONPATH": str(ROOT),
        "CELERY_QUEUE": queue,
        "WHATSAPP_APP_SECRET": APP_SECRET,
    }
    if fake_graph is not None:
        env.update(
            {
                "WHATSAPP_PHONE_NUMBER_ID": fake_graph.phone_number_id,
                "WHATSAPP_API_URL": fake_graph.base_url,
                "WHATSAPP_ACCESS_TOKEN": fake_graph.token,
            }
        )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes], *, timeout: float = 20) -> None:
    """SIGTERM (a worker finishes its task, daphne its requests), SIGKILL past ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_http(base: str, process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """Until ``base/health`` answers (whatever its status); the first request imports the whole
    desk, slow on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "the server did not start"
        try:
            requests.get(f"{base}/health", timeout=5)
            return
        except requests.RequestException:
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.2)


@contextlib.contextmanager
def daphne(
    env: Mapping[str, str],
    *,
    port: int | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    stderr: int | IO[bytes] | None = subprocess.DEVNULL,
) -> Iterator[str]:
    """A daphne serving ``supportdesk.asgi:application`` with ``env``; yields its base URL once
    it answers, stops it after."""
    port = port or free_port()
    process = subprocess.Popen(
        [*DAPHNE, "-b", "127.0.0.1", "-p", str(port), "supportdesk.asgi:application"],
        cwd=ROOT,
        env=dict(env),
        stdout=stdout,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base, process)
        yield base
    finally:
        stop(process)


@contextlib.contextmanager
def celery_worker(
    env: Mapping[str, str],
    *,
    queues: Sequence[str],
    options: Sequence[str] = ("--pool=solo", "--concurrency=1"),
    loglevel: str = "WARNING",
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker of the desk with ``env``, consuming ``queues`` (no gossip, mingle or
    heartbeat: nothing of another test's workers reaches it); stopped after."""
    process = subprocess.Popen(
        [*CELERY_WORKER, *options, f"--queues={','.join(queues)}", f"--loglevel={loglevel}"],
        cwd=ROOT,
        env=dict(env),
        stdout=stdout,
        stderr=stderr,
    )
    try:
        yield process
    finally:
        stop(process)
