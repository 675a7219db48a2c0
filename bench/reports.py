"""The reports at 100k conversations (issue 12): the stats' latency and the CSV's memory.

A fresh PostgreSQL database holds a year of a desk: 4 departments (two with opening hours and
holidays), 36 agents, a supervisor, ~60k customers and 100,000 conversations spread over the
last 365 days (more on weekdays and in office hours). Each conversation has the history the
desk's services would have stored for it: its messages (customer, bot, agents, the CSAT
question), its ``ConversationEvent`` rows (the bot's hand-over to a queue, a take-over,
transfers, closing, reopening, with the services' ``before``/``after`` states) and, for part of
the closed ones, a CSAT survey (answered or expired). Those rows are written with COPY; then
the **real rebuild service** (``manage.py reports_rebuild``, :func:`reports.services.
segments_rebuild`) derives the ``Segment`` and ``ConversationMetrics`` rows from them, and the
daily roll-ups (``DailyRollup``, ``DailyAgentRollup``) from those, by the same rules as the live
event handler (``reports/tests/test_rebuild.py`` and ``test_rollups.py`` hold the two equal).
So the rows the reports read are exactly what the desk would have written; nothing of theirs is
made up here. The tables are then ANALYZEd, as autovacuum would have done on a live desk.

Then daphne (the production ASGI server) serves the desk, and with a supervisor's bearer token:

- ``GET /api/v1/conversations/stats`` for the last 30 days and for the last 365 days (with
  ``bucket=hour`` on the month, ``business_hours=true``, a department and an agent on the
  year): N sequential requests each after a warm-up, p50/p95 beside the floor measured in the
  same run (``GET /api/v1/auth/me``: the same server, authentication and DRF stack, one query).
  Target: p95 < 200 ms for both ranges. Every range is whole days, so the stats read the daily
  roll-ups, except the series with ``bucket=hour`` and, with an agent, per department and the
  series, which read the conversations' rows (docs/reports.md).
- ``GET /api/v1/reports/conversations.csv`` for the whole year: rows and bytes counted, rows/s,
  and the server's memory growth: its RSS (``/proc/<pid>/status``) sampled every 50 ms during
  the download, peak minus the RSS before it. Target: growth < 100 MB.

    .venv/bin/python bench/reports.py [--conversations 100000] [--requests 30] [--reuse [--rebuild]]

``--reuse`` keeps the database of an earlier run when it is complete (as many conversations and
roll-ups as asked): no fill, but ``migrate`` (a change's columns and indexes, and their data
migrations), ``--rebuild`` to derive the segments and roll-ups again, then ``VACUUM ANALYZE``.
For iterating on the queries; the figures to report come from a fresh run.
"""

import argparse
import http.client
import itertools
import json
import math
import random
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench import harness

DATABASE = "supportdesk_bench_reports"
ZONE = ZoneInfo("America/Sao_Paulo")  # the desk's TIME_ZONE
SEED = 12

SETUP = """
import json
from datetime import date, time
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import Role, User
from departments.models import BusinessHours, BusinessSchedule, Department, Holiday
from whatsapp.models import WhatsAppAccount
account, _ = WhatsAppAccount.objects.get_or_create(
    phone_number_id="{phone}", defaults={{"name": "Bench"}})
sizes = {{"Suporte": 14, "Vendas": 10, "Financeiro": 7, "Cobrança": 5}}
departments, agents = {{}}, {{}}
for name, size in sizes.items():
    dept = Department.objects.create(name=name)
    departments[name] = dept.pk
    agents[dept.pk] = []
    for i in range(size):
        user = User.objects.create_user(
            f"{{name.lower()}}{{i}}@bench.local", "Bench-Pass-123",
            name=f"{{name}} Agente {{i:02d}}")
        user.departments.add(dept)
        agents[dept.pk].append(user.pk)
for name in ("Suporte", "Financeiro"):
    schedule = BusinessSchedule.objects.create(
        department_id=departments[name], time_zone="America/Sao_Paulo")
    for weekday in range(5):
        BusinessHours.objects.create(
            schedule=schedule, weekday=weekday, opens_at=time(8), closes_at=time(18))
    BusinessHours.objects.create(schedule=schedule, weekday=5, opens_at=time(9), closes_at=time(13))
    for day in ({holidays}):
        Holiday.objects.create(schedule=schedule, date=date.fromisoformat(day))
supervisor = User.objects.create_user(
    "supervisora@bench.local", "Bench-Pass-123", name="Supervisora", role=Role.SUPERVISOR)
print(json.dumps({{"account": account.pk, "departments": departments, "agents": agents,
                  "supervisor": supervisor.pk, "token": str(AccessToken.for_user(supervisor))}}))
"""

FIRST = ["Ana", "João", "Maria", "José", "Conceição", "Luís", "Fernanda", "Antônio", "Beatriz"]
LAST = ["Silva", "Souza", "Oliveira", "Araújo", "Gonçalves", "Lima", "Pereira", "Conceição"]
COMMENTS = ["Ótimo atendimento!", "Resolveram rápido", "Demorou, mas resolveu", "Não gostei"]
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 16, 15, 12, 14, 16, 15, 13, 11, 8, 6, 5, 4, 3, 2]


# --- Data ---------------------------------------------------------------------------------------


@dataclass
class Desk:
    """The rows of one generated year, ready for COPY."""

    conversations: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    messages: list[tuple] = field(default_factory=list)
    surveys: list[tuple] = field(default_factory=list)
    active: list[int] = field(default_factory=list)  # rows of conversations in progress


def _state(status: str, department: int | None, agent: int | None) -> dict[str, Any]:
    return {"status": status, "department": department, "assigned_to": agent}


def _lognormal(rng: random.Random, median: float, sigma: float, cap: float) -> timedelta:
    return timedelta(seconds=min(cap, rng.lognormvariate(math.log(median), sigma)))


class Life:
    """One conversation lived by the desk's rules (bot → queue → agents → closed), written as the
    services write it; stops at ``now`` (then it is still in progress)."""

    def __init__(self, desk: Desk, pk: int, now: datetime) -> None:
        self.desk, self.pk, self.now = desk, pk, now
        self.status, self.department, self.agent = "bot", None, None
        self.first_response: datetime | None = None
        self.closed_at: datetime | None = None
        self.last_in: datetime | None = None
        self.last: datetime | None = None

    def message(self, at: datetime, direction: str, sender: str, user: int | None = None) -> bool:
        if at > self.now:
            return False
        kind = "interactive" if sender == "bot" and direction == "out" else "text"
        status = "received" if direction == "in" else "read"
        self.desk.messages.append(
            (self.pk, at, direction, sender, user, kind, f"mensagem {sender}", status)
        )
        if direction == "in":
            self.last_in = at
        if sender == "agent" and self.first_response is None:
            self.first_response = at
        self.last = at
        return True

    def event(self, at: datetime, kind: str, actor: int | None, after: dict[str, Any]) -> bool:
        if at > self.now:
            return False
        before = _state(self.status, self.department, self.agent)
        self.status, self.department = after["status"], after["department"]
        self.agent = after["assigned_to"]
        self.closed_at = at if kind == "closed" else None
        self.desk.events.append((self.pk, kind, actor, Jsonb(before), Jsonb(after), at))
        self.last = max(self.last or at, at)
        return True


def live(  # noqa: PLR0911, PLR0912 - one conversation's story, step by step
    rng: random.Random,
    life: Life,
    opened: datetime,
    agents: dict[int, list[int]],
    weights: list[int],
) -> None:
    at = opened
    life.message(at, "in", "customer")
    at += timedelta(seconds=rng.randint(1, 5))
    if not life.message(at, "out", "bot"):
        return
    at += _lognormal(rng, 40, 0.6, 600)
    if not life.message(at, "in", "customer"):
        return
    at += timedelta(seconds=rng.randint(1, 5))
    if not life.message(at, "out", "bot"):
        return
    if rng.random() < 0.12:  # the bot answered it: closed when it goes idle
        at += _lognormal(rng, 1800, 0.5, 14400)
        life.event(at, "closed", None, _state("closed", None, None))
        return
    department = rng.choices(list(agents), weights=weights)[0]
    if not life.event(at, "queued", None, {**_state("pending", department, None), "reason": ""}):
        return
    hour = at.astimezone(ZONE).hour
    wait_median = 240 if 8 <= hour < 18 else 1800
    at += _lognormal(rng, wait_median, 1.0, 12 * 3600)
    agent = rng.choice(agents[department])
    if not life.event(at, "taken_over", agent, _state("open", department, agent)):
        return
    at += _lognormal(rng, 70, 0.9, 3600)
    if not _exchange(rng, life, at, agent, rng.randint(1, 5)):
        return
    at = life.last or at
    if rng.random() < 0.1:  # transferred once, now and then to another department's agent
        at += _lognormal(rng, 60, 0.8, 1800)
        if rng.random() < 0.3:
            department = rng.choices(list(agents), weights=weights)[0]
        to = rng.choice([a for a in agents[department] if a != agent] or [agent])
        if not life.event(at, "transferred", agent, {**_state("open", department, to), "note": ""}):
            return
        agent = to
        at += _lognormal(rng, 70, 0.9, 3600)
        if not _exchange(rng, life, at, agent, rng.randint(1, 3)):
            return
        at = life.last or at
    at += _lognormal(rng, 60, 0.8, 1800)
    if not life.message(at, "out", "agent", agent):
        return
    at += _lognormal(rng, 300, 0.8, 7200)
    if not life.event(at, "closed", agent, _state("closed", department, agent)):
        return
    if rng.random() < 0.05:  # the customer came back: reopened, answered, closed again
        at += _lognormal(rng, 6 * 3600, 0.8, 48 * 3600)
        if not life.event(at, "reopened", agent, _state("open", department, agent)):
            return
        at += timedelta(seconds=rng.randint(5, 60))
        life.message(at, "in", "customer")
        at += _lognormal(rng, 120, 0.8, 3600)
        if not life.message(at, "out", "agent", agent):
            return
        at += _lognormal(rng, 300, 0.8, 7200)
        if not life.event(at, "closed", agent, _state("closed", department, agent)):
            return
    if rng.random() < 0.55:  # CSAT asked (it is only asked after an agent's conversation)
        _survey(rng, life, at, agent)


def _exchange(rng: random.Random, life: Life, at: datetime, agent: int, turns: int) -> bool:
    """The agent answers, the customer writes back, ``turns`` times (False: ``now`` came)."""
    for _turn in range(turns):
        if not life.message(at, "out", "agent", agent):
            return False
        at += _lognormal(rng, 90, 0.8, 3600)
        if not life.message(at, "in", "customer"):
            return False
        at += _lognormal(rng, 60, 0.8, 1800)
    return True


def _survey(rng: random.Random, life: Life, closed: datetime, agent: int) -> None:
    asked = closed + timedelta(seconds=1)
    if not life.message(asked, "out", "bot"):
        return
    answered = asked + _lognormal(rng, 300, 1.2, 20 * 3600)
    if rng.random() < 0.35 or answered > life.now:
        life.desk.surveys.append((life.pk, agent, "expired", None, "", None, asked))
        return
    score = rng.choices([5, 4, 3, 2, 1], weights=[45, 28, 12, 6, 9])[0]
    life.message(answered, "in", "customer")
    comment = ""
    if rng.random() < 0.25:
        life.message(answered + timedelta(seconds=2), "out", "bot")
        comment = rng.choice(COMMENTS)
        answered += _lognormal(rng, 60, 0.7, 3600)
        life.message(answered, "in", "customer")
    life.desk.surveys.append((life.pk, agent, "completed", score, comment, answered, asked))


def _opened_moments(rng: random.Random, count: int, now: datetime) -> list[datetime]:
    """``count`` creation moments over the 365 days before ``now``, fewer at weekends and night."""
    today = now.astimezone(ZONE).date()
    days = [today - timedelta(days=n) for n in range(365)]
    day_weights = [0.45 if d.weekday() >= 5 else 1.0 for d in days]
    moments = []
    for day in rng.choices(days, weights=day_weights, k=count):
        hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        local = datetime(day.year, day.month, day.day, hour, tzinfo=ZONE)
        moment = (local + timedelta(seconds=rng.randrange(3600))).astimezone(UTC)
        moments.append(min(moment, now - timedelta(seconds=rng.randint(60, 3600))))
    return sorted(moments)


def generate(count: int, setup: dict[str, Any], now: datetime) -> Desk:
    rng = random.Random(SEED)
    agents = {int(k): v for k, v in setup["agents"].items()}
    weights = [45, 30, 15, 10][: len(agents)]
    desk = Desk()
    for pk, opened in enumerate(_opened_moments(rng, count, now), start=1):
        life = Life(desk, pk, now)
        live(rng, life, opened, agents, weights)
        if life.status != "closed":
            desk.active.append(pk - 1)
        desk.conversations.append(
            (
                pk,
                opened,
                life.last or opened,
                life.status,
                life.first_response,
                life.closed_at,
                life.last_in,
                life.last,
                0,
                life.agent,
                life.department,
                setup["account"],
            )
        )
        if pk % 20000 == 0:
            print(f"   generated {pk:>7}/{count} conversations", flush=True)
    return desk


def _customers(rng: random.Random, desk: Desk, regular: int) -> list[tuple]:
    """Regular customers come back (several conversations each); one in progress each at most,
    so conversations in progress get customers of their own."""
    rows = []
    for i in range(regular + len(desk.active)):
        digits = f"55119{i:08d}"
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        rows.append((i + 1, digits, "+" + digits, name))
    active = set(desk.active)
    own = iter(range(regular + 1, regular + len(desk.active) + 1))
    for index, row in enumerate(desk.conversations):
        customer = next(own) if index in active else rng.randint(1, regular)
        desk.conversations[index] = (*row, customer)
    return rows


def fill(count: int, setup: dict[str, Any]) -> Desk:
    started = time.perf_counter()
    now = datetime.now(UTC)
    desk = generate(count, setup, now)
    customers = _customers(random.Random(SEED + 1), desk, regular=int(count * 0.6))
    print(
        f"   {len(customers)} customers, {len(desk.conversations)} conversations, "
        f"{len(desk.messages)} messages, {len(desk.events)} events, {len(desk.surveys)} surveys "
        f"generated in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    tables = [
        (
            "conversations_customer (id, wa_id, phone, name, notes, created_at, updated_at)",
            ((pk, wa, phone, name, "", now, now) for pk, wa, phone, name in customers),
        ),
        (
            "conversations_conversation (id, created_at, updated_at, status, first_response_at,"
            " closed_at, last_inbound_at, last_message_at, unread_count, assigned_to_id,"
            " department_id, whatsapp_account_id, customer_id, priority)",
            ((*row, "normal") for row in desk.conversations),
        ),
        (
            "conversations_conversationevent (conversation_id, kind, actor_id, before, after,"
            " created_at)",
            iter(desk.events),
        ),
        (
            "conversations_message (conversation_id, created_at, updated_at, direction, sender,"
            " sender_user_id, type, body, status, media_id, media_file, media_mime_type,"
            " media_filename, media_sha256, error, media_error, send_attempts, status_history)",
            (
                (c, at, at, d, s, u, t, b, st, "", "", "", "", "", "", "", 0, "[]")
                for c, at, d, s, u, t, b, st in desk.messages
            ),
        ),
        (
            "conversations_csatsurvey (conversation_id, agent_id, status, score, comment,"
            " scored_at, created_at, updated_at)",
            ((*row, row[-1]) for row in desk.surveys),
        ),
    ]
    with psycopg.connect(f"{harness.PG_HOST_URL}/{DATABASE}") as conn:
        for table, rows in tables:
            begun = time.perf_counter()
            with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            print(f"   COPY {table.split()[0]} {time.perf_counter() - begun:.1f} s", flush=True)
        for table in ("conversations_customer", "conversations_conversation"):
            setval = "SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {}))"
            conn.execute(sql.SQL(setval).format(sql.Identifier(table)), (table,))
    return desk


REBUILD = """
from reports.services import segments_rebuild
segments_rebuild(conversation_ids=range({first}, {last}), chunk_size=1000,
                 progress=lambda done, total: print("rebuilt", done, total, flush=True))
"""


def rebuild(env: dict[str, str], count: int, workers: int) -> None:
    """The real rebuild service (``reports.services.segments_rebuild``, what ``manage.py
    reports_rebuild`` runs) derives the segments and roll-ups from the stored history; the
    conversations are split in ``workers`` ranges rebuilt side by side (one process each)."""
    begun = time.perf_counter()
    bounds = [1 + count * i // workers for i in range(workers + 1)]
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", REBUILD.format(first=lo, last=hi)],
            cwd=harness.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    done = [0] * workers

    def follow(index: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("rebuilt "):
                done[index] = int(line.split()[1])

    followers = [
        threading.Thread(target=follow, args=(i, p), daemon=True) for i, p in enumerate(procs)
    ]
    for follower in followers:
        follower.start()
    while any(p.poll() is None for p in procs):
        time.sleep(10)
        elapsed = time.perf_counter() - begun
        print(f"   rebuilt {sum(done):>7}/{count} ({elapsed:.0f} s)", flush=True)
    for follower in followers:
        follower.join()
    if any(p.returncode for p in procs):
        raise RuntimeError("the rebuild failed")
    with psycopg.connect(f"{harness.PG_HOST_URL}/{DATABASE}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"   rebuilt and analyzed in {time.perf_counter() - begun:.0f} s", flush=True)


REUSE_SETUP = """
import json
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import Role, User
from departments.models import Department
departments = dict(Department.objects.values_list("name", "pk"))
agents = {
    str(pk): list(User.objects.filter(departments=pk).order_by("pk").values_list("pk", flat=True))
    for pk in departments.values()
}
supervisor = User.objects.get(email="supervisora@bench.local", role=Role.SUPERVISOR)
print(json.dumps({"departments": departments, "agents": agents, "supervisor": supervisor.pk,
                  "token": str(AccessToken.for_user(supervisor))}))
"""


def reusable(count: int) -> bool:
    """The database of an earlier run is there with ``count`` conversations and roll-ups."""
    try:
        rows = harness.query(
            DATABASE,
            "SELECT (SELECT count(*) FROM conversations_conversation),"
            " (SELECT count(*) FROM reports_conversationmetrics)",
        )
    except psycopg.Error:
        return False
    return rows[0] == (count, count)


def reuse(env: dict[str, str], count: int, *, again: bool) -> dict[str, Any]:
    """Bring the kept database up to this code: migrate, rebuild if asked, analyze."""
    begun = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=harness.ROOT,
        env=env,
        check=True,
    )
    if again:
        rebuild(env, count, 2)
    else:
        with psycopg.connect(f"{harness.PG_HOST_URL}/{DATABASE}", autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    out = harness.manage_shell(REUSE_SETUP, env)
    print(f"   migrated and analyzed in {time.perf_counter() - begun:.0f} s", flush=True)
    return dict(json.loads(out.strip().splitlines()[-1]))


def describe() -> None:
    rows = harness.query(
        DATABASE,
        "SELECT (SELECT count(*) FROM reports_conversationmetrics),"
        " (SELECT count(*) FROM reports_segment),"
        " (SELECT count(*) FROM reports_segment WHERE kind = 'agent'),"
        " (SELECT count(csat_score) FROM reports_conversationmetrics),"
        " (SELECT sum(transfers) FROM reports_conversationmetrics),"
        " (SELECT pg_size_pretty(pg_total_relation_size('reports_conversationmetrics')"
        "  + pg_total_relation_size('reports_segment'))),"
        " (SELECT count(*) FROM reports_dailyrollup),"
        " (SELECT count(*) FROM reports_dailyagentrollup)",
    )
    metrics, segments, agent_segments, csat, transfers, size, daily, daily_agents = rows[0]
    statuses = dict(
        harness.query(
            DATABASE, "SELECT status, count(*) FROM conversations_conversation GROUP BY 1"
        )
    )
    print(
        f"   {metrics} roll-ups, {segments} segments ({agent_segments} with an agent), "
        f"{csat} CSAT answers, {transfers} transfers, {size} on disk; statuses {statuses}; "
        f"daily roll-ups: {daily} cells, {daily_agents} agents' cells"
    )


# --- Measuring ----------------------------------------------------------------------------------


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def timed_gets(port: int, token: str, path: str, *, warmup: int, count: int) -> list[float]:
    """``count`` sequential GETs on one keep-alive connection after ``warmup``: ms each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    times = []
    for i in range(warmup + count):
        begun = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - begun) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        if i >= warmup:
            times.append(elapsed)
    conn.close()
    return times


def rss_kb(pid: int, field_name: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for {pid}")


def stream_csv(port: int, token: str, path: str, pid: int) -> dict[str, float]:
    """Download the CSV, counting rows and bytes, while sampling the server's RSS every 50 ms."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_kb(pid))
            stop.wait(0.05)

    before = rss_kb(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    begun = time.perf_counter()
    sampler.start()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {response.read()[:300]!r}")
    size = lines = 0
    first_byte = 0.0
    tail = b""
    while chunk := response.read1(1 << 16):
        if not first_byte:
            first_byte = time.perf_counter() - begun
        size += len(chunk)
        lines += chunk.count(b"\n")
        tail = chunk[-1:]
    elapsed = time.perf_counter() - begun
    stop.set()
    sampler.join()
    conn.close()
    if tail != b"\n":
        raise RuntimeError("the CSV did not end with a complete row")
    return {
        "rows": lines - 1,  # the header; generated comments hold no line breaks
        "bytes": size,
        "seconds": elapsed,
        "first_byte_ms": first_byte * 1000,
        "rss_before_mb": before / 1024,
        "rss_peak_mb": max([before, *samples]) / 1024,
        "samples": len(samples),
    }


def measure(port: int, pid: int, setup: dict[str, Any], count: int, requests: int) -> None:
    token = setup["token"]
    today = datetime.now(ZONE).date()
    month = f"from={today - timedelta(days=29)}&to={today}"
    year = f"from={today - timedelta(days=364)}&to={today}"
    suporte = setup["departments"]["Suporte"]
    agent = setup["agents"][str(suporte)][0]
    floor = timed_gets(port, token, "/api/v1/auth/me", warmup=5, count=requests)
    cases = [
        ("month (30 days)", month, True),
        ("month, bucket=hour", month + "&bucket=hour", False),
        ("year (365 days)", year, True),
        ("year, business_hours=true", year + "&business_hours=true", False),
        ("year, department=Suporte", year + f"&department={suporte}", False),
        ("year, agent=one agent", year + f"&agent={agent}", False),
    ]
    print(f"\n== daphne, {count} conversations over a year, {requests} sequential requests each")
    print(
        f"{'floor GET /auth/me':<34} p50 {statistics.median(floor):7.1f} ms  "
        f"p95 {_pct(floor, 0.95):7.1f} ms"
    )
    for label, query, targeted in cases:
        times = timed_gets(
            port, token, f"/api/v1/conversations/stats?{query}", warmup=3, count=requests
        )
        target = "   (target p95 < 200 ms)" if targeted else ""
        print(
            f"{'stats ' + label:<34} p50 {statistics.median(times):7.1f} ms  "
            f"p95 {_pct(times, 0.95):7.1f} ms  max {max(times):7.1f} ms{target}",
            flush=True,
        )
    # Warm the CSV's code path on a month, then the whole year is measured.
    stream_csv(port, token, f"/api/v1/reports/conversations.csv?{month}", pid)
    csv = stream_csv(port, token, f"/api/v1/reports/conversations.csv?{year}", pid)
    growth = csv["rss_peak_mb"] - csv["rss_before_mb"]
    print(
        f"{'CSV, the whole year':<34} {csv['rows']:.0f} rows, {csv['bytes'] / 2**20:.1f} MB in "
        f"{csv['seconds']:.1f} s: {csv['rows'] / csv['seconds']:,.0f} rows/s, first byte "
        f"{csv['first_byte_ms']:.0f} ms"
    )
    print(
        f"{'CSV, server memory':<34} RSS {csv['rss_before_mb']:.0f} MB before, peak "
        f"{csv['rss_peak_mb']:.0f} MB ({csv['samples']:.0f} samples): growth {growth:.1f} MB"
        f"   (target < 100 MB)"
    )
    if csv["rows"] != count:
        print(f"!! the CSV has {csv['rows']:.0f} rows, expected {count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="per stats query (after warm-up)")
    parser.add_argument("--rebuild-workers", type=int, default=2, help="rebuild processes")
    parser.add_argument(
        "--reuse", action="store_true", help="keep a complete database of an earlier run"
    )
    parser.add_argument("--rebuild", action="store_true", help="with --reuse: rebuild again")
    args = parser.parse_args()

    begun = time.perf_counter()
    if args.reuse and reusable(args.conversations):
        print(f"-- reusing {DATABASE} ({args.conversations} conversations)", flush=True)
        env = harness.bench_env(DATABASE, JWT_ACCESS_LIFETIME="2h")
        setup = reuse(env, args.conversations, again=args.rebuild)
        describe()
        serve(env, setup, args.conversations, args.requests, begun)
        return
    print(f"-- a fresh database {DATABASE}", flush=True)
    harness.fresh_database(DATABASE)
    env = harness.bench_env(DATABASE, JWT_ACCESS_LIFETIME="2h")
    holidays = ", ".join(
        repr(str(d))
        for year in (datetime.now(ZONE).year - 1, datetime.now(ZONE).year)
        for d in (date(year, 1, 1), date(year, 4, 21), date(year, 9, 7), date(year, 12, 25))
    )
    out = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            SETUP.format(phone=harness.PHONE_NUMBER_ID, holidays=holidays + ","),
        ],
        cwd=harness.ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    setup = json.loads(out.strip().splitlines()[-1])
    print(f"-- filling: {args.conversations} conversations", flush=True)
    fill(args.conversations, setup)
    rebuild(env, args.conversations, args.rebuild_workers)
    describe()
    print(f"-- filled in {time.perf_counter() - begun:.0f} s", flush=True)
    serve(env, setup, args.conversations, args.requests, begun)


def serve(
    env: dict[str, str], setup: dict[str, Any], count: int, requests: int, begun: float
) -> None:
    port = harness.free_port()
    with harness.process(harness.server_command("daphne", port), env, "server-reports") as server:
        harness.wait_http(port)
        measure(port, server.pid, setup, count, requests)
    print(f"-- bench done in {time.perf_counter() - begun:.0f} s")


if __name__ == "__main__":
    main()
