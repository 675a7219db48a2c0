"""Shared machinery for the benchmarks: a fresh PostgreSQL database, our real servers and workers
as subprocesses, and an asyncio HTTP/1.1 load generator with keep-alive connections.

Everything runs on this machine (127.0.0.1 only); every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_HOST_URL = PG_ADMIN_URL.rsplit("/", 1)[0]
REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
APP_SECRET = "bench-app-secret"  # noqa: S105 - benchmark only
PHONE_NUMBER_ID = "100000000000001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_env(
    database: str,
    *,
    pg_host_url: str | None = None,
    redis_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of our servers and workers on ``database`` (of the machine's PostgreSQL
    and Redis, or of private instances: ``pg_host_url``, ``redis_url``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": str(ROOT),
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + "x" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": f"{pg_host_url or PG_HOST_URL}/{database}",
            "REDIS_URL": redis_url or REDIS_BASE,
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "WHATSAPP_ACCESS_TOKEN": "",
            "LOG_LEVEL": "WARNING",
            "DB_POOL_MAX_SIZE": extra.pop("DB_POOL_MAX_SIZE", "16"),
        }
    )
    env.update(extra)
    return env


def fresh_database(database: str) -> None:
    """Drop and create ``database``, migrate it, flush the bench Redis db."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    env = bench_env(database)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    import redis

    redis.Redis.from_url(REDIS_BASE).flushdb()


def queue_length(queue: str) -> int:
    """Tasks waiting in a Celery queue on the bench Redis (kombu keeps each queue as a list)."""
    import redis

    return int(redis.Redis.from_url(REDIS_BASE).llen(queue))


def query(database: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(f"{PG_HOST_URL}/{database}") as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], name: str) -> Iterator[subprocess.Popen]:
    log = open(ROOT / "bench" / f".{name}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    _sessions[name] = proc.pid
    try:
        yield proc
    finally:
        _sessions.pop(name, None)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# As the README's production command: frames are not compressed (see README, "Production").
UVICORN_WS_OPTIONS = ["--ws-per-message-deflate", "false"]


def server_command(kind: str, port: int) -> list[str]:
    if kind == "daphne":
        return [
            str(VENV_BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--access-log",
            os.devnull,
            "supportdesk.asgi:application",
        ]
    if kind.startswith("uvicorn"):
        workers = kind.rsplit("x", maxsplit=1)[-1] if "x" in kind else "2"
        return [
            str(VENV_BIN / "uvicorn"),
            "supportdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            workers,
            "--no-access-log",
            "--log-level",
            "warning",
            *UVICORN_WS_OPTIONS,
        ]
    raise ValueError(kind)


def worker_command(concurrency: int = 2) -> list[str]:
    # On this shared 2-core box the webhook's acknowledgement is the latency-critical path and the
    # processing is asynchronous: the worker runs at a lower CPU priority (production runs it on
    # its own machines). BENCH_WORKER_NICE=0 measures them on equal terms.
    nice = os.environ.get("BENCH_WORKER_NICE", "10")
    return [
        "nice",
        "-n",
        nice,
        str(VENV_BIN / "celery"),
        "-A",
        "supportdesk",
        "worker",
        "-c",
        str(concurrency),
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def wait_http(port: int, path: str = "/health", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=2) as s,
        ):
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.3)
    raise RuntimeError(f"server on :{port} did not become healthy")


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def text_delivery(wa_id: str, wamid: str, text: str, ts: int) -> bytes:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA-BENCH",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550001111",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [
                                {"profile": {"name": f"Cliente {wa_id[-4:]}"}, "wa_id": wa_id}
                            ],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": wamid,
                                    "timestamp": str(ts),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    duration: float = 0.0
    # when each body was first sent (wall clock, time.time()): what a delivery's effects are
    # measured from
    sent_at: dict[bytes, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    def pct(self, p: float) -> float:
        return percentile(self.latencies, p, empty=float("nan")) * 1000

    def line(self, label: str) -> str:
        errs = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"{label:<34} {self.rate:8.1f} req/s  p50 {self.pct(0.50):7.1f} ms  "
            f"p99 {self.pct(0.99):7.1f} ms  ok {self.ok}/{self.sent}  errors {errs}"
        )


async def _connection(port: int, jobs: asyncio.Queue, result: LoadResult, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            try:
                body = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-Hub-Signature-256: {sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            started = time.perf_counter()
            result.sent_at.setdefault(body, time.time())
            result.sent += 1
            writer.write(head.encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and "close" in value.lower():
                    close = True
            if length:
                await reader.readexactly(length)
            elapsed = time.perf_counter() - started
            status = status_line.split(b" ")[1].decode() if status_line else "eof"
            if status == "200":
                result.ok += 1
                result.latencies.append(elapsed)
            else:
                result.errors[status] = result.errors.get(status, 0) + 1
            if close or not status_line:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _load(port: int, bodies: list[bytes], concurrency: int, path: str) -> LoadResult:
    jobs: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        jobs.put_nowait(body)
    result = LoadResult()
    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(_connection(port, jobs, result, path) for _ in range(concurrency))),
        timeout=600,
    )
    result.duration = time.perf_counter() - started
    return result


def run_load(port: int, bodies: list[bytes], *, concurrency: int = 32, path: str) -> LoadResult:
    return asyncio.run(_load(port, bodies, concurrency, path))


def percentile(values: list[float], p: float, *, empty: float = 0.0) -> float:
    """The ``p`` quantile (0..1) of ``values`` (nearest rank), ``empty`` when there are none."""
    if not values:
        return empty
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def manage_shell(code: str, env: dict[str, str]) -> str:
    """Run ``code`` in ``manage.py shell`` with ``env``; what it printed."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


# Processes outside the bench's own sessions, by command line.
CPU_BY_NAME = {"postgres": "postgres", "redis": "redis-server"}
_sessions: dict[str, int] = {}  # what process() started: name -> session id


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) used so far by each process group of the bench, from /proc.

    Servers and workers are counted by the session ``process()`` started them in (their children
    included); PostgreSQL and Redis by name; the load generator is this process.
    """
    tick = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys([*_sessions, *CPU_BY_NAME, "load generator"], 0.0)
    by_session = {sid: name for name, sid in _sessions.items()}
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        session = int(fields[3])
        if int(entry) == own:
            totals["load generator"] += used
        elif session in by_session:
            totals[by_session[session]] += used
        else:
            for group, name in CPU_BY_NAME.items():
                if name in cmdline:
                    totals[group] += used
                    break
    return totals


def cpu_line(before: dict[str, float], after: dict[str, float], count: int, label: str) -> str:
    per = {k: 1000 * (after.get(k, 0.0) - before.get(k, 0.0)) / count for k in after}
    parts = ", ".join(f"{k.split('-')[0]} {v:.2f}" for k, v in per.items())
    return f"{label:<34} {parts} (total {sum(per.values()):.2f})"


class Receivers:
    """The webhook receivers (``bench/receiver.py``) in a process of their own, for ``with``."""

    def __init__(self, *, slow: float = 2.0, nice: int = 19) -> None:
        self.port = free_port()
        self.slow = slow
        self.nice = int(os.environ.get("BENCH_RECEIVER_NICE", nice))
        self._process: contextlib.AbstractContextManager[subprocess.Popen] | None = None

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def __enter__(self) -> Receivers:
        # It stands for systems elsewhere (production never runs them beside the desk): where the
        # desk's own figures are measured (the ingest bench), the lowest CPU priority, so what it
        # costs is not taken from our server; where its own timing is the figure (the outgoing
        # bench), nice 0. BENCH_RECEIVER_NICE overrides both.
        command = [
            "nice",
            "-n",
            str(self.nice),
            sys.executable,
            str(ROOT / "bench" / "receiver.py"),
            f"--port={self.port}",
            f"--slow={self.slow}",
        ]
        self._process = process(command, dict(os.environ), "receiver")
        self._process.__enter__()
        wait_http(self.port, "/stats")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._process is not None:
            self._process.__exit__(*exc)


# --- Meta's side of the webhook: a paced stream, and every delivery not answered 200 again ---


@dataclass
class MetaDelivery:
    """One delivery as Meta sees it: sent until some attempt is answered ``200``."""

    key: str  # the message id (wamid) it carries
    body: bytes
    attempts: int = 0
    acknowledged: bool = False


@dataclass
class StreamResult:
    deliveries: list[MetaDelivery]
    answers: dict[str, int] = field(default_factory=dict)  # every attempt's answer, by status
    slowest: float = 0.0  # seconds, the slowest answer (a timeout counts as MetaStream.timeout)
    duration: float = 0.0

    @property
    def sent(self) -> int:
        return sum(1 for d in self.deliveries if d.attempts)

    @property
    def acknowledged(self) -> set[str]:
        return {d.key for d in self.deliveries if d.acknowledged}

    def answers_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.answers.items())) or "none"


class MetaStream:
    """Meta delivering ``deliveries`` to the webhook at ``rate`` per second on up to
    ``concurrency`` keep-alive connections. Meta retries whatever was not answered ``200``
    (another status, a reset connection, no answer within ``timeout``) with a backoff: here
    ``retry_base`` seconds doubling up to ``retry_cap`` (Meta's own go on for 7 days). Bounded:
    gives up at ``deadline`` seconds after the start."""

    def __init__(
        self,
        port: int,
        deliveries: list[MetaDelivery],
        *,
        rate: float,
        concurrency: int = 16,
        timeout: float = 10.0,
        retry_base: float = 0.5,
        retry_cap: float = 4.0,
        deadline: float = 120.0,
        path: str = "/api/v1/webhooks/whatsapp",
    ) -> None:
        self.port, self.rate, self.concurrency, self.timeout = port, rate, concurrency, timeout
        self.retry_base, self.retry_cap, self.deadline, self.path = (
            retry_base,
            retry_cap,
            deadline,
            path,
        )
        self.result = StreamResult(deliveries=deliveries)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), self.timeout
            )
        except (OSError, TimeoutError):
            return None

    async def _post(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], body: bytes
    ) -> tuple[str, bool]:
        """The answer's status (or ``reset``/``timeout``) and whether the connection is reusable."""
        reader, writer = connection
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
        )

        async def exchange() -> tuple[str, bool]:
            writer.write(head.encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                return "reset", False
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and "close" in value.lower():
                    close = True
            if length:
                await reader.readexactly(length)
            return status_line.split(b" ")[1].decode(), not close

        try:
            return await asyncio.wait_for(exchange(), self.timeout)
        except TimeoutError:
            return "timeout", False
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            return "reset", False

    async def _sender(self, due: asyncio.PriorityQueue, started: float) -> None:
        connection = None
        try:
            while True:
                at, index = await due.get()
                if index < 0:
                    return
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                delivery = self.result.deliveries[index]
                connection = connection or await self._open()
                sent_at = time.monotonic()
                delivery.attempts += 1
                if connection is None:
                    status, reusable = "refused", False
                else:
                    status, reusable = await self._post(connection, delivery.body)
                took = time.monotonic() - sent_at
                self.result.slowest = max(self.result.slowest, took)
                self.result.answers[status] = self.result.answers.get(status, 0) + 1
                if not reusable and connection is not None:
                    connection[1].close()
                    connection = None
                if status == "200":
                    delivery.acknowledged = True
                elif time.monotonic() - started < self.deadline:
                    backoff = min(self.retry_cap, self.retry_base * 2 ** (delivery.attempts - 1))
                    due.put_nowait((time.monotonic() + backoff, index))
                due.task_done()
        finally:
            if connection is not None:
                connection[1].close()

    async def _run(self) -> StreamResult:
        due: asyncio.PriorityQueue = asyncio.PriorityQueue()
        started = time.monotonic()
        for index in range(len(self.result.deliveries)):
            due.put_nowait((started + index / self.rate, index))
        senders = [asyncio.create_task(self._sender(due, started)) for _ in range(self.concurrency)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(due.join(), self.deadline + self.timeout + 5)
        for _ in senders:
            due.put_nowait((0.0, -1))
        await asyncio.wait_for(asyncio.gather(*senders, return_exceptions=True), self.timeout + 5)
        self.result.duration = time.monotonic() - started
        return self.result

    def run(self) -> StreamResult:
        return asyncio.run(self._run())
