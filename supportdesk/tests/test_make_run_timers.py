"""A newcomer's ``make run`` (contract §1, §10): no Redis, eager tasks, SQLite. The server's own
in-process beat (``supportdesk/scheduler.py``) runs ``CELERY_BEAT_SCHEDULE`` on its real
intervals, so a message Ana schedules for a few seconds from now goes out by itself, within the
sender's 15 seconds, through the sandbox transport, as it would in production.

This runs the README's command itself in a process group of its own (migrations, demo data,
``runserver`` with its autoreloader), on a throwaway SQLite file, and talks to it over HTTP.
"""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not VENV_PYTHON.exists(), reason="make run uses the project's .venv (make test creates it)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        # the embedded default: none of the production services, nothing of the test run
        if key
        not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "CELERY_QUEUE", "DEBUG"}
        and not key.startswith(("WHATSAPP_", "PYTEST"))
    }
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    log = (tmp_path / "make-run.log").open("wb")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the autoreloader's child goes with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a fresh database: every migration, the demo data
        while True:
            assert process.poll() is None, _tail(tmp_path)
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, _tail(tmp_path)
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "make-run.log").read_text(errors="replace")[-3000:]


def test_a_message_scheduled_under_make_run_goes_out_by_itself(
    make_run: str, tmp_path: Path
) -> None:
    api = f"{make_run}/api/v1"
    login = requests.post(
        f"{api}/auth/login",
        json={"email": "agente1@suporte.com", "password": "Agente@123"},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access']}"}
    me = login.json()["user"]["id"]
    mine = requests.get(
        f"{api}/conversations",
        params={"assigned_to": me, "status": "open"},
        headers=headers,
        timeout=10,
    ).json()["results"]
    assert mine, "the demo data gives Ana a conversation in progress"
    conversation = mine[0]["id"]

    send_at = datetime.now(UTC) + timedelta(seconds=3)
    scheduled = requests.post(
        f"{api}/messages",
        json={
            "conversation": conversation,
            "body": "Volto a falar em breve!",
            "send_at": send_at.isoformat(),
        },
        headers=headers,
        timeout=10,
    )
    assert scheduled.status_code == 201, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    message_id = scheduled.json()["id"]

    def status() -> Any:
        messages = requests.get(
            f"{api}/messages",
            params={"conversation": conversation, "page_size": 200},
            headers=headers,
            timeout=10,
        ).json()["results"]
        return next(m["status"] for m in messages if m["id"] == message_id)

    # the sender runs every 15 s: by then it has gone, with nothing but the server running
    deadline = time.monotonic() + 45
    while status() in {"scheduled", "queued"}:
        assert time.monotonic() < deadline, _tail(tmp_path)
        time.sleep(1)
    assert status() in {"sent", "delivered", "read"}, _tail(tmp_path)
    assert datetime.now(UTC) >= send_at
    # the server came up after the migrations and the demo data, its beat with it
    log = (tmp_path / "make-run.log").read_text(errors="replace")
    assert "unapplied migration" not in log
    assert "isn't reentrant" not in log
    assert log.rindex("Applying ") < log.index("Starting ASGI/Daphne")
