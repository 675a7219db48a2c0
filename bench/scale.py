"""The desk at scale (issue 15): 100k conversations and 1M messages, the lists, a conversation,
the search, the stats and the CSV.

A fresh PostgreSQL database is filled by the real ``manage.py seed_load`` (COPY; its
denormalised fields and events as the services keep them) and, unless ``--no-rollups``, the
reports' roll-ups are derived from it by ``reports_rebuild``'s service; then ``VACUUM ANALYZE``,
as autovacuum would have done. uvicorn (production settings, DEBUG off, 2 workers) serves it,
and each figure is p50/p95 of N sequential requests on one keep-alive connection after a
warm-up, printed beside the floor measured in the same run (``GET /health``: the same server,
one query):

- API lists: an agent's inbox, a supervisor's, a filtered one (``status=pending&department=``);
- the console: its inbox page (``/``, full page) and a conversation opened in it (``/c/<id>/``,
  htmx pane), as the supervisor (session cookie);
- ``GET /conversations/:id/history``;
- the search (``GET /conversations?search=``, as the supervisor, who sees everything): a
  phrase, a word, part of a phone number, a name without its accents, nothing matching;
- ``GET /conversations/stats`` for the last 30 days, and the CSV of those days (one download).

Then the webhook's ack rate: 1,500 signed deliveries alone, then again while 4 supervisors search
without pause (the searches under their statement timeout).

Targets: inbox, console inbox and open p95 ≤ 50 ms; every search p95 ≤ 100 ms; stats ≤ 200 ms;
acks during the search storm within 20% of the rate without it.

    .venv/bin/python bench/scale.py [--conversations 100000] [--messages-per 10]
                                    [--messages 10000000] [--requests 25] [--reuse]
                                    [--no-rollups]

``--reuse`` keeps the database of an earlier run when it has as many conversations: only
``migrate`` and ``VACUUM ANALYZE``. ``BENCH_SCALE_DATABASE`` names another database than
``supportdesk_bench_scale`` (two checkouts benching one after the other keep theirs).
``BENCH_SCALE_EXPLAIN=1`` also prints ``EXPLAIN ANALYZE`` of the search queries (the indexes they
use).
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench import harness

# BENCH_SCALE_DATABASE: another database name, so two checkouts can bench side by side.
DATABASE = os.environ.get("BENCH_SCALE_DATABASE", "supportdesk_bench_scale")

SETUP = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import User
from conversations.models import Conversation, Customer
supervisor = User.objects.get(email="supervisor@seed-load.local")
agent = User.objects.get(email="agente1@seed-load.local")
session = SessionStore()
session[SESSION_KEY] = str(supervisor.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = supervisor.get_session_auth_hash()
session.save()
recent = Conversation.objects.order_by("-last_message_at").values_list("pk", flat=True)[:200]
customer = Customer.objects.filter(name__contains="Simões").order_by("-pk").first()
print(json.dumps({
    "supervisor": str(AccessToken.for_user(supervisor)),
    "agent": str(AccessToken.for_user(agent)),
    "department": agent.departments.values_list("pk", flat=True).first(),
    "session": session.session_key,
    "session_cookie": settings.SESSION_COOKIE_NAME,
    "conversation": recent[150],
    "phone_part": customer.phone[-7:-1],
}))
"""

EXPLAIN = """
from django.db import connection
from accounts.models import User
from conversations import selectors
from conversations.search import conversation_list_search
user = User.objects.get(email="supervisor@seed-load.local")
for text in {texts!r}:
    rows = selectors.conversation_list_visible_to(user=user)
    rows = conversation_list_search(rows=rows, text=text)[:26]
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN ANALYZE " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
    print("-- EXPLAIN ANALYZE search", repr(text), plan[-1].strip())
    for line in plan:
        if "Index" in line and "Cond" not in line or "Seq Scan" in line:
            print("  ", line.strip())
"""


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def timed_gets(
    port: int, path: str, headers: dict[str, str], *, warmup: int, count: int
) -> list[float]:
    """``count`` sequential GETs on one keep-alive connection after ``warmup``: ms each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
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


def fill(env: dict[str, str], conversations: int, messages_per: int, rollups: bool) -> None:
    begun = time.perf_counter()
    command = [sys.executable, "manage.py", "seed_load", "--conversations", str(conversations)]
    command += ["--messages-per", str(messages_per), "--agents", "30", "--chunk-size", "10000"]
    if rollups:
        command.append("--rollups")
    with subprocess.Popen(
        command, cwd=harness.ROOT, env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            # every chunk's line of the load; the roll-ups' every 10,000 conversations
            rollup = line.startswith("roll-ups")
            done, _, total = line.split()[1].partition("/") if rollup else ("", "", "")
            if not done or int(done) % 10_000 == 0 or done == total:
                print("  ", line.rstrip(), f"({time.perf_counter() - begun:.0f} s)", flush=True)
    if proc.returncode:
        raise RuntimeError("seed_load failed")
    vacuum()
    print(f"-- filled in {time.perf_counter() - begun:.0f} s", flush=True)


def vacuum() -> None:
    with psycopg.connect(f"{harness.PG_HOST_URL}/{DATABASE}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def reusable(conversations: int) -> bool:
    try:
        rows = harness.query(DATABASE, "SELECT count(*) FROM conversations_conversation")
    except psycopg.Error:
        return False
    return bool(rows[0][0] == conversations)


def measure(port: int, setup: dict[str, Any], requests: int) -> None:
    supervisor = {"Authorization": f"Bearer {setup['supervisor']}", "Accept": "application/json"}
    agent = {"Authorization": f"Bearer {setup['agent']}", "Accept": "application/json"}
    console = {"Cookie": f"{setup['session_cookie']}={setup['session']}"}
    htmx = {**console, "HX-Request": "true"}
    today = datetime.now(ZoneInfo("America/Sao_Paulo")).date()  # the desk's TIME_ZONE
    month = f"from={today - timedelta(days=29)}&to={today}"
    pk = setup["conversation"]
    floor = timed_gets(port, "/health", {}, warmup=5, count=requests)
    floor_text = f"floor p50 {statistics.median(floor):5.1f} p95 {_pct(floor, 0.95):5.1f}"
    cases: list[tuple[str, str, dict[str, str], float]] = [
        ("agent inbox (API)", "/api/v1/conversations", agent, 50),
        ("supervisor inbox (API)", "/api/v1/conversations", supervisor, 50),
        (
            "filtered inbox (API)",
            f"/api/v1/conversations?status=pending&department={setup['department']}",
            supervisor,
            50,
        ),
        ("console inbox page /", "/?tab=all", console, 50),
        ("conversation open (console)", f"/c/{pk}/", htmx, 50),
        ("conversation open (API)", f"/api/v1/conversations/{pk}", supervisor, 50),
        ("history (API)", f"/api/v1/conversations/{pk}/history", supervisor, 0),
        ("search phrase", "/api/v1/conversations?search=%22segunda+via%22", supervisor, 100),
        ("search word", "/api/v1/conversations?search=reembolso", supervisor, 100),
        (
            "search phone part",
            f"/api/v1/conversations?search={setup['phone_part']}",
            supervisor,
            100,
        ),
        ("search name", "/api/v1/conversations?search=simoes", supervisor, 100),
        ("search no match", "/api/v1/conversations?search=zzqqxx", supervisor, 100),
        ("search (console)", "/inbox/?tab=all&q=reembolso", htmx, 100),
        ("stats, 30 days", f"/api/v1/conversations/stats?{month}", supervisor, 200),
    ]
    print(f"\n== uvicorn x2, {requests} sequential requests each (ms); {floor_text} ms (/health)")
    for label, path, headers, target in cases:
        times = timed_gets(port, path, headers, warmup=3, count=requests)
        p95 = _pct(times, 0.95)
        verdict = "" if not target else ("  ok" if p95 <= target else "  OVER")
        print(
            f"{label:<30} p50 {statistics.median(times):7.1f}  p95 {p95:7.1f}  "
            f"max {max(times):7.1f}  {floor_text}"
            + (f"  (target p95 ≤ {target:.0f}){verdict}" if target else ""),
            flush=True,
        )
    begun = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", f"/api/v1/reports/conversations.csv?{month}", headers=supervisor)
    response = conn.getresponse()
    size = lines = 0
    while chunk := response.read1(1 << 16):
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - begun
    print(
        f"{'CSV export, 30 days':<30} {lines - 1} rows, {size / 2**20:.1f} MB in {elapsed:.2f} s "
        f"(status {response.status})"
    )


STORM_DELIVERIES = 1500
STORM_SEARCHERS = 4  # supervisors searching all at once, each as fast as answers come


def _acks(port: int, tag: str, count: int, connections: int = 8) -> tuple[float, float, int]:
    """``count`` signed deliveries over ``connections`` keep-alive connections: acks/s, p99 ms,
    how many were not 200."""
    ts = int(time.time())
    bodies = [
        harness.text_delivery(f"55119{n % 400:08d}", f"wamid.STORM.{tag}.{n}", f"oi {n}", ts + n)
        for n in range(count)
    ]
    times: list[float] = []
    bad = [0]

    def run(part: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in part:
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": harness.sign(body),
            }
            begun = time.perf_counter()
            conn.request("POST", "/api/v1/webhooks/whatsapp", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            times.append((time.perf_counter() - begun) * 1000)
            if response.status != 200:
                bad[0] += 1
        conn.close()

    begun = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(run, [bodies[i::connections] for i in range(connections)]))
    elapsed = time.perf_counter() - begun
    return count / elapsed, harness.percentile(sorted(times), 0.99), bad[0]


def storm(port: int, setup: dict[str, Any]) -> None:
    """The webhook's ack rate alone, then while supervisors search without pause (issue 15 §4:
    a search storm never starves the intake; the searches run under their statement timeout)."""
    supervisor = {"Authorization": f"Bearer {setup['supervisor']}", "Accept": "application/json"}
    texts = ["reembolso", "%22segunda+via%22", setup["phone_part"], "simoes", "boleto"]
    _acks(port, "warm", 200)
    alone, alone_p99, alone_bad = _acks(port, "alone", STORM_DELIVERIES)
    stop = threading.Event()
    answers: dict[int, int] = {}

    def search(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = n
        while not stop.is_set():
            conn.request(
                "GET", f"/api/v1/conversations?search={texts[i % len(texts)]}", headers=supervisor
            )
            response = conn.getresponse()
            response.read()
            answers[response.status] = answers.get(response.status, 0) + 1
            i += 1
        conn.close()

    searchers = [threading.Thread(target=search, args=(n,)) for n in range(STORM_SEARCHERS)]
    for thread in searchers:
        thread.start()
    time.sleep(1)
    stormy, stormy_p99, stormy_bad = _acks(port, "storm", STORM_DELIVERIES)
    stop.set()
    for thread in searchers:
        thread.join()
    ratio = stormy / alone
    verdict = "  ok" if ratio >= 0.8 else "  UNDER"
    print(
        f"\n== webhook acks, {STORM_DELIVERIES} signed deliveries over 8 connections\n"
        f"{'alone':<30} {alone:7.1f} acks/s  p99 {alone_p99:6.1f} ms  not 200: {alone_bad}\n"
        f"{'during a search storm':<30} {stormy:7.1f} acks/s  p99 {stormy_p99:6.1f} ms  "
        f"not 200: {stormy_bad}  ({STORM_SEARCHERS} searchers: answers {answers})\n"
        f"{'storm / alone':<30} {ratio:7.2f}   (target ≥ 0.80){verdict}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages-per", type=int, default=10, dest="messages_per")
    parser.add_argument(
        "--messages", type=int, default=0, help="all messages (the large run: 10000000)"
    )
    parser.add_argument("--requests", type=int, default=25)
    parser.add_argument("--reuse", action="store_true", help="keep an earlier run's database")
    parser.add_argument("--no-rollups", action="store_true", help="skip the reports' rebuild")
    args = parser.parse_args()
    if args.messages:
        args.messages_per = max(1, round(args.messages / args.conversations))

    begun = time.perf_counter()
    env = harness.bench_env(DATABASE, JWT_ACCESS_LIFETIME="2h")
    if args.reuse and reusable(args.conversations):
        print(f"-- reusing {DATABASE} ({args.conversations} conversations)", flush=True)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=harness.ROOT,
            env=env,
            check=True,
        )
        vacuum()
    else:
        print(f"-- a fresh database {DATABASE}", flush=True)
        harness.fresh_database(DATABASE)
        fill(env, args.conversations, args.messages_per, not args.no_rollups)
    counts = harness.query(
        DATABASE,
        "SELECT (SELECT count(*) FROM conversations_conversation),"
        " (SELECT count(*) FROM conversations_message),"
        " (SELECT count(*) FROM conversations_customer),"
        " (SELECT pg_size_pretty(pg_total_relation_size('conversations_message')))",
    )[0]
    print(
        f"-- {counts[0]} conversations, {counts[1]} messages, {counts[2]} customers; "
        f"messages table {counts[3]} with its indexes"
    )
    setup = json.loads(harness.manage_shell(SETUP, env).strip().splitlines()[-1])
    if os.environ.get("BENCH_SCALE_EXPLAIN"):
        texts = ['"segunda via"', "reembolso", setup["phone_part"], "simoes", "zzqqxx"]
        print(harness.manage_shell(EXPLAIN.format(texts=texts), env))
    # The console's pages need the static files' manifest of production settings.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=harness.ROOT,
        env=env,
        check=True,
    )
    port = harness.free_port()
    with harness.process(harness.server_command("uvicorn", port), env, "server-scale"):
        harness.wait_http(port)
        measure(port, setup, args.requests)
        storm(port, setup)
    print(f"-- bench done in {time.perf_counter() - begun:.0f} s; load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
