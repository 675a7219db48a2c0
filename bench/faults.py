"""Faults, with real processes (issue 16 §1): what SupportDesk acknowledges it never loses.

A private PostgreSQL (``initdb`` into a temporary directory, its own port from 55432) and a
private Redis (its own port from 56379) — never the machine's shared ones — our real ASGI server
(daphne, as the README runs it), real Celery workers (intake; outgoing webhooks on a threads
pool) and one Celery beat, a fake Graph API and a webhook receiver, all on 127.0.0.1.

For each fault, Meta (a paced stream of signed deliveries, each sent again with a backoff until
it is answered 200 — Meta retries anything else) delivers while the fault is injected mid-stream:

- ``worker-kill``: the intake worker (every process of it) SIGKILLed, then started again;
- ``redis-stop``: Redis SIGKILLed (it persists nothing: it comes back empty, its queues lost),
  started again after the outage; meanwhile an agent sends messages through the API, which must
  stay queued and go out exactly once to the fake Graph API when Redis is back;
- ``postgres-stop``: PostgreSQL stopped (``pg_ctl -m immediate``: its processes killed at once),
  started again; webhooks answer 503 meanwhile (never 500), Meta's redeliveries are stored once;
- ``webhooks-worker-kill``: the outgoing-webhook worker SIGKILLed mid-delivery (a receiver that
  answers after a short delay, so that deliveries are in flight), started again; the receiver
  counts deliveries by delivery id.

Beat runs its sweeps on a compressed clock (``BENCH_SWEEP_SECONDS``, bench/settings.py), so that
what a fault left behind is picked up in seconds. One verdict line per fault:

    fault  sent  acknowledged  stored  lost  duplicated

(lost: acknowledged but not stored as a message; duplicated: stored more than once; for the
outgoing webhooks: deliveries recorded, recorded as succeeded, received by the receiver, never
received, received twice), then what was answered and what else the fault touched.

    .venv/bin/python bench/faults.py [--deliveries 300] [--rate 50] [--outage 3]
        [--faults worker-kill,redis-stop,postgres-stop,webhooks-worker-kill]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from supportdesk.tests.private_services import PrivatePostgres, PrivateRedis
from whatsapp.tests.fake_graph import FakeGraph

TEMPLATE = "sd_faults_template"
QUEUE = "sdfaults"
SWEEP_SECONDS = 3
CUSTOMERS = 150
FAULTS = ("worker-kill", "redis-stop", "postgres-stop", "webhooks-worker-kill")
AGENT_SENDS = 10  # API sends made while Redis is down
WEBHOOK = "/api/v1/webhooks/whatsapp"
RECEIVER_MODE = "slow"  # bench/receiver.py: answers 200 after --slow seconds

SETUP = """
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken
from accounts.tests.factories import UserFactory
from conversations.tests.factories import ConversationFactory
from departments.tests.factories import DepartmentFactory
from whatsapp.models import WhatsAppAccount
account, _ = WhatsAppAccount.objects.get_or_create(
    phone_number_id="{phone}", defaults={{"name": "Bench", "display_phone_number": "15550001111"}}
)
support = DepartmentFactory(name="Suporte")
agent = UserFactory(role="agent", name="Ana Agente", email="ana@faults.example",
                    departments=[support])
conversation = ConversationFactory(
    whatsapp_account=account, department=support, assigned_to=agent, status="open",
    customer__wa_id="5511900009999", last_inbound_at=timezone.now(),
)
print("SETUP", RefreshToken.for_user(agent).access_token, conversation.pk)
"""

SUBSCRIBE = """
from integrations.models import WebhookSubscription
WebhookSubscription.objects.create(url="{url}", events=["*"], secret="bench-faults-secret")
"""


class Service:
    """One of our processes (``harness.process``), which a fault may kill and start again."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name, self.command, self.env = name, command, env
        self.starts = 0
        self._running: contextlib.AbstractContextManager[subprocess.Popen] | None = None
        self.pid = 0

    def start(self) -> Service:
        self.starts += 1
        suffix = "" if self.starts == 1 else f"-{self.starts}"
        self._running = harness.process(self.command, self.env, self.name + suffix)
        self.pid = self._running.__enter__().pid
        return self

    def kill(self) -> None:
        """SIGKILL to every process of it (the worker and its pool's children) at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Desk:
    """The private instances and what every fault shares."""

    pg: PrivatePostgres
    redis: PrivateRedis
    graph: FakeGraph
    receivers: harness.Receivers
    scratch: Path
    token: str = ""
    conversation_id: int = 0

    def env(self, database: str) -> dict[str, str]:
        return harness.bench_env(
            database,
            pg_host_url=self.pg.host_url,
            redis_url=self.redis.url(0),
            CELERY_QUEUE=QUEUE,
            BENCH_SWEEP_SECONDS=str(SWEEP_SECONDS),
            WHATSAPP_API_URL=self.graph.base_url,
            WHATSAPP_ACCESS_TOKEN=self.graph.token,
            OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true",
            OUTGOING_WEBHOOK_TIMEOUT="1",  # a killed attempt's claim lasts 2 * 1 + 5 s
        )

    def query(self, database: str, sql: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.pg.url(database)) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@dataclass
class Outcome:
    fault: str
    sent: int
    acknowledged: int
    stored: int
    lost: int
    duplicated: int
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.fault:<22} {self.sent:>6} {self.acknowledged:>13} {self.stored:>7} "
            f"{self.lost:>5} {self.duplicated:>11}"
        )


HEADER = (
    f"{'fault':<22} {'sent':>6} {'acknowledged':>13} {'stored':>7} {'lost':>5} {'duplicated':>11}"
)


def prepare(desk: Desk) -> None:
    """The template every fault's database is a copy of: migrated, a number, an agent and their
    open conversation (for the API sends), an access token for that agent."""
    desk.pg.create_database(TEMPLATE)
    env = desk.env(TEMPLATE)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=harness.ROOT,
        env=env,
        check=True,
    )
    out = harness.manage_shell(SETUP.format(phone=harness.PHONE_NUMBER_ID), env)
    line = next(row for row in out.splitlines() if row.startswith("SETUP "))
    _, desk.token, conversation = line.split()
    desk.conversation_id = int(conversation)


def stream(fault: str, count: int) -> list[harness.MetaDelivery]:
    now = int(time.time())
    return [
        harness.MetaDelivery(
            key=f"wamid.FAULT.{fault}.{i:06d}",
            body=harness.text_delivery(
                wa_id=f"55119{(i % CUSTOMERS) + 20_000_000:08d}",
                wamid=f"wamid.FAULT.{fault}.{i:06d}",
                text=f"Mensagem {i} durante {fault}",
                ts=now + i // 100,
            ),
        )
        for i in range(count)
    ]


SLOWEST: dict[str, float] = {}  # the slowest answer of each kind of request, seconds


def http(
    port: int, method: str, path: str, *, token: str = "", body: Any = None, timeout: float = 15
) -> str:
    """One request of an agent's client: its status (or ``timeout``/``reset``)."""
    started = time.monotonic()
    try:
        return _http(port, method, path, token=token, body=body, timeout=timeout)
    finally:
        kind = f"{method} {path}"
        SLOWEST[kind] = max(SLOWEST.get(kind, 0.0), time.monotonic() - started)


def slowest(*kinds: str) -> str:
    return ", ".join(f"{kind} {SLOWEST.pop(kind, 0.0):.1f} s" for kind in kinds)


def _http(port: int, method: str, path: str, *, token: str, body: Any, timeout: float) -> str:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http://127.0.0.1
            return str(answer.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except TimeoutError:
        return "timeout"
    except OSError:
        return "reset"


def tally(statuses: list[str]) -> str:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def settle(desk: Desk, database: str, until: Callable[[], bool], timeout: float = 90) -> float:
    """Wait until nothing is left 'received' and ``until()``; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        left = desk.query(
            database, "SELECT count(*) FROM whatsapp_webhookevent WHERE status = 'received'"
        )[0][0]
        if not left and until():
            break
        time.sleep(0.5)
    return time.monotonic() - started


def intake_outcome(desk: Desk, database: str, fault: str, result: harness.StreamResult) -> Outcome:
    rows = desk.query(
        database,
        "SELECT wa_message_id, count(*) FROM conversations_message "
        "WHERE direction = 'in' AND wa_message_id LIKE %s GROUP BY 1",
        f"wamid.FAULT.{fault}.%",
    )
    stored = dict(rows)
    acknowledged = result.acknowledged
    outcome = Outcome(
        fault=fault,
        sent=result.sent,
        acknowledged=len(acknowledged),
        stored=len(stored),
        lost=len(acknowledged - set(stored)),
        duplicated=sum(1 for n in stored.values() if n > 1),
    )
    statuses = dict(
        desk.query(database, "SELECT status, count(*) FROM whatsapp_webhookevent GROUP BY 1")
    )
    open_twice = desk.query(
        database,
        "SELECT count(*) FROM (SELECT customer_id FROM conversations_conversation "
        "WHERE status <> 'closed' GROUP BY customer_id, whatsapp_account_id "
        "HAVING count(*) > 1) AS t",
    )[0][0]
    outcome.notes.append(
        f"webhook answers: {result.answers_text()} (slowest {result.slowest:.1f} s); "
        f"deliveries stored: {', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}; "
        f"customers with two open conversations: {open_twice}"
    )
    return outcome


def processes(desk: Desk, env: dict[str, str], fault: str, port: int) -> dict[str, Service]:
    intake = [*harness.worker_command(concurrency=2), f"--queues={QUEUE}.intake,{QUEUE}"]
    webhooks = [
        *harness.worker_command(concurrency=20),
        f"--queues={QUEUE}.webhooks",
        "--pool=threads",
    ]
    beat = [
        str(harness.VENV_BIN / "celery"),
        "-A",
        "supportdesk",
        "beat",
        "--loglevel=WARNING",
        "-s",
        str(desk.scratch / f"beat-{fault}"),
    ]
    server = [
        str(harness.VENV_BIN / "daphne"),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--proxy-headers",
        "--access-log",
        os.devnull,
        "supportdesk.asgi:application",
    ]
    return {
        "worker": Service(f"faults-worker-{fault}", intake, env),
        "webhooks": Service(f"faults-webhooks-{fault}", webhooks, env),
        "beat": Service(f"faults-beat-{fault}", beat, env),
        "server": Service(f"faults-server-{fault}", server, env),
    }


def at(seconds: float, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in a thread ``seconds`` from now (the fault, while Meta streams)."""

    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_fault(desk: Desk, fault: str, args: argparse.Namespace) -> Outcome:  # noqa: PLR0915
    database = f"sd_faults_{fault.replace('-', '_')}"
    desk.pg.create_database(database, template=TEMPLATE)
    import redis

    redis.Redis.from_url(desk.redis.url(0)).flushall()  # a fresh desk: no queue, no cache
    env = desk.env(database)
    if fault == "webhooks-worker-kill":
        harness.manage_shell(SUBSCRIBE.format(url=desk.receivers.url(RECEIVER_MODE)), env)
    port = harness.free_port()
    services = processes(desk, env, fault, port)
    # Each message a customer writes is several events (message, conversation) for the receiver.
    count = args.deliveries if fault != "webhooks-worker-kill" else args.deliveries // 5
    deliveries = stream(fault, count)
    notes: list[str] = []
    graph_before = len(desk.graph.message_sends)
    with contextlib.ExitStack() as stack:
        for name in ("worker", "webhooks", "beat", "server"):
            stack.enter_context(services[name])
        harness.wait_http(port)
        # Warm: the first requests import the desk's code in the server and the worker.
        warm = [d.body for d in stream(f"warm-{fault}", 20)]
        harness.run_load(port, warm, concurrency=4, path=WEBHOOK)
        time.sleep(1)
        inject_at = 1.5
        thread: threading.Thread
        if fault == "worker-kill":

            def worker_kill() -> None:
                services["worker"].kill()
                time.sleep(args.outage)
                services["worker"].start()

            thread = at(inject_at, worker_kill)
        elif fault == "redis-stop":
            thread = at(inject_at, lambda: redis_outage(desk, port, args.outage, notes))
        elif fault == "postgres-stop":
            thread = at(inject_at, lambda: postgres_outage(desk, port, args.outage, notes))
        else:
            thread = at(inject_at, lambda: webhooks_kill(desk, services, fault, notes))
        result = harness.MetaStream(
            port, deliveries, rate=args.rate, concurrency=16, timeout=10, deadline=90
        ).run()
        thread.join(timeout=120)
        if fault == "redis-stop":
            settled = settle(desk, database, lambda: sends_out(desk, database) >= AGENT_SENDS)
        elif fault == "webhooks-worker-kill":
            settled = settle(desk, database, lambda: not outgoing_pending(desk, database))
        else:
            settled = settle(desk, database, lambda: True)
        notes.append(f"settled {settled:.0f} s after the stream ended ({result.duration:.0f} s)")
        outcome = intake_outcome(desk, database, fault, result)
        if fault == "redis-stop":
            notes.append(agent_sends_note(desk, database, graph_before))
        if fault == "webhooks-worker-kill":
            outcome = outgoing_outcome(desk, database, fault, outcome)
            left = desk.query(
                database,
                "SELECT id, attempts, claimed_until, next_attempt_at, last_error "
                "FROM integrations_webhookdelivery WHERE status = 'pending'",
            )
            if left:
                notes.append(f"still pending: {left[:5]}")
    outcome.notes.extend(notes)
    return outcome


def during(seconds: float, every: float, probe: Callable[[], None]) -> list[threading.Thread]:
    """Start ``probe`` in a thread of its own every ``every`` seconds for ``seconds`` (an agent's
    client meanwhile: a slow answer never stretches the outage)."""
    started, threads = time.monotonic(), []
    while time.monotonic() - started < seconds:
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        threads.append(thread)
        time.sleep(every)
    return threads


def redis_outage(desk: Desk, port: int, outage: float, notes: list[str]) -> None:
    desk.redis.stop()
    started = time.monotonic()
    sends: list[str] = []
    reads: list[str] = []
    numbers = iter(range(AGENT_SENDS))

    def agent() -> None:
        n = next(numbers)
        body = {"conversation": desk.conversation_id, "body": f"Envio do agente {n}"}
        sends.append(http(port, "POST", "/api/v1/messages", token=desk.token, body=body))
        reads.append(http(port, "GET", "/api/v1/conversations", token=desk.token))
        if n == AGENT_SENDS - 1:
            reads.append(http(port, "GET", "/health"))

    probes = during(outage * 0.8, outage * 0.8 / AGENT_SENDS, agent)
    time.sleep(max(0.0, outage - (time.monotonic() - started)))
    desk.redis.start()
    down = time.monotonic() - started
    for probe in probes:
        probe.join(timeout=30)
    notes.append(
        f"Redis down {down:.1f} s: agent's API sends answered {tally(sends)}; "
        f"API reads and /health answered {tally(reads)}; slowest "
        + slowest("POST /api/v1/messages", "GET /api/v1/conversations", "GET /health")
    )


def postgres_outage(desk: Desk, port: int, outage: float, notes: list[str]) -> None:
    desk.pg.stop(mode="immediate")
    started = time.monotonic()
    probes: list[str] = []

    def agent() -> None:
        probes.append(http(port, "GET", "/api/v1/conversations", token=desk.token, timeout=15))

    threads = during(outage * 0.8, 0.5, agent)
    threads += during(0.01, 1, lambda: probes.append(http(port, "GET", "/health", timeout=15)))
    time.sleep(max(0.0, outage - (time.monotonic() - started)))
    desk.pg.start()
    down = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=30)
    notes.append(
        f"PostgreSQL down {down:.1f} s: API reads and /health answered {tally(probes)}; slowest "
        + slowest("GET /api/v1/conversations", "GET /health")
    )


def webhooks_kill(desk: Desk, services: dict[str, Service], fault: str, notes: list[str]) -> None:
    """SIGKILL once deliveries are in flight (the receiver has requests it has not answered)."""
    deadline = time.monotonic() + 20
    while True:
        before = desk.receivers.stats().get(RECEIVER_MODE, {})
        answered = before.get("delivered", 0) + before.get("duplicates", 0)
        in_flight = before.get("requests", 0) - answered
        if (in_flight > 0 and answered > 20) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    services["webhooks"].kill()
    time.sleep(2)
    services["webhooks"].start()
    notes.append(
        f"outgoing-webhook worker SIGKILLed with {in_flight} requests in flight at the receiver "
        f"({before.get('delivered', 0)} delivered before), started again 2 s later"
    )


def sends_out(desk: Desk, database: str) -> int:
    return desk.query(
        database,
        "SELECT count(*) FROM conversations_message WHERE direction = 'out' "
        "AND body LIKE 'Envio do agente %%' AND status <> 'queued'",
    )[0][0]


def agent_sends_note(desk: Desk, database: str, graph_before: int) -> str:
    statuses = dict(
        desk.query(
            database,
            "SELECT status, count(*) FROM conversations_message WHERE direction = 'out' "
            "AND body LIKE 'Envio do agente %%' GROUP BY 1",
        )
    )
    bodies = [
        (send.get("text") or {}).get("body", "") for send in desk.graph.message_sends[graph_before:]
    ]
    ours = [b for b in bodies if b.startswith("Envio do agente ")]
    distinct = set(ours)
    return (
        f"agent's sends made while Redis was down: {sum(statuses.values())} stored "
        f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}); at the Graph API "
        f"{len(distinct)} of {AGENT_SENDS} arrived, {len(ours) - len(distinct)} twice"
    )


def outgoing_pending(desk: Desk, database: str) -> int:
    return desk.query(
        database, "SELECT count(*) FROM integrations_webhookdelivery WHERE status = 'pending'"
    )[0][0]


def outgoing_outcome(desk: Desk, database: str, fault: str, intake: Outcome) -> Outcome:
    stats = desk.receivers.stats().get(RECEIVER_MODE, {})
    statuses = dict(
        desk.query(database, "SELECT status, count(*) FROM integrations_webhookdelivery GROUP BY 1")
    )
    recorded = sum(statuses.values())
    received = int(stats.get("delivered", 0))
    outcome = Outcome(
        fault=fault,
        sent=recorded,
        acknowledged=statuses.get("succeeded", 0),
        stored=received,
        lost=max(0, recorded - received),
        duplicated=int(stats.get("duplicates", 0)),
    )
    outcome.notes.append(
        f"outgoing deliveries (columns): recorded {recorded}, succeeded "
        f"{statuses.get('succeeded', 0)}, received by id {received}, never received "
        f"{outcome.lost}, received twice {outcome.duplicated} (a receiver's 200 the killed worker "
        f"never recorded: delivered again under the same delivery id, at least once by design)"
    )
    outcome.notes.append(
        f"the intake meanwhile: sent {intake.sent}, acknowledged {intake.acknowledged}, "
        f"stored {intake.stored}, lost {intake.lost}, duplicated {intake.duplicated}"
    )
    outcome.notes.extend(intake.notes)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=300, help="per fault")
    parser.add_argument("--rate", type=float, default=50.0, help="new deliveries per second")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds each fault lasts")
    parser.add_argument("--faults", default=",".join(FAULTS))
    args = parser.parse_args()
    chosen = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(chosen) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="sd-faults-"))
    with (
        PrivatePostgres() as pg,
        PrivateRedis() as redis_server,
        harness.Receivers(slow=0.2, nice=0) as receivers,
    ):
        graph = FakeGraph().start()
        try:
            desk = Desk(
                pg=pg, redis=redis_server, graph=graph, receivers=receivers, scratch=scratch
            )
            prepare(desk)
            print(
                f"private PostgreSQL :{pg.port}, private Redis :{redis_server.port}; "
                f"{args.deliveries} deliveries per fault at {args.rate:.0f}/s, "
                f"faults of {args.outage:.0f} s, beat sweeping every {SWEEP_SECONDS} s",
                flush=True,
            )
            print(HEADER, flush=True)
            for fault in chosen:
                outcome = run_fault(desk, fault, args)
                print(outcome.line(), flush=True)
                for note in outcome.notes:
                    print(f"    {note}", flush=True)
        finally:
            graph.stop()
    print(f"({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
