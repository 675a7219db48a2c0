"""Webhook ingest benchmark (issue 4).

PostgreSQL + Redis + our ASGI server + a real Celery worker, all on this machine. N signed
deliveries from many customers (5% of them delivered twice, as Meta does) at 32 concurrent
connections. Prints acknowledged deliveries/s, ack latency p50/p99, processed messages/s, the
backlog when the load ends, lost and duplicated messages, the bot's replies (sent to Meta) per
second sustained over its work and each customer's first reply from their first delivery
(p50/p95) — and, in the same run, the floor: the same server answering a bare view that checks
the HMAC and inserts one row.

    .venv/bin/python bench/webhook_ingest.py [--deliveries 3000] [--servers daphne,uvicornx2]
        [--subscribers N]   # N outgoing-webhook subscriptions to every event (a local receiver)
        [--graph fake|sandbox] [--graph-latency S]  # where the bot's replies are sent
"""

import argparse
import contextlib
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

DATABASE = "supportdesk_bench_ingest"
WEBHOOK = "/api/v1/webhooks/whatsapp"


def deliveries(
    count: int, customers: int, seed: int = 7
) -> tuple[list[bytes], int, dict[bytes, str]]:
    """The bodies (5% twice, shuffled), how many unique, and each body's customer (wa_id)."""
    rng = random.Random(seed)
    base_ts = int(time.time()) - 3600
    senders = [f"55119{rng.randrange(customers) + 10_000_000:08d}" for _ in range(count)]
    bodies = [
        harness.text_delivery(
            wa_id=senders[i],
            wamid=f"wamid.BENCH.{i:07d}",
            text=f"Olá, preciso de ajuda com o pedido {i}",
            ts=base_ts + i,
        )
        for i in range(count)
    ]
    duplicates = [bodies[i] for i in rng.sample(range(count), count // 20)]
    mixed = bodies + duplicates
    rng.shuffle(mixed)
    return mixed, count, dict(zip(bodies, senders, strict=True))


BOT_WAIT = 180  # seconds the bench waits for the bot's turns after the intake


def bot_replies_sent() -> int:
    return harness.query(
        DATABASE,
        "SELECT count(*) FROM conversations_message WHERE sender = 'bot' AND status <> 'queued'",
    )[0][0]


def bot_replies_queued() -> int:
    return harness.query(
        DATABASE,
        "SELECT count(*) FROM conversations_message WHERE sender = 'bot' AND status = 'queued'",
    )[0][0]


# When each bot reply went to the Graph API (its status history's "sent" entry), by customer.
REPLIES_SENT_SQL = """
SELECT cu.wa_id,
       (jsonb_path_query_first(m.status_history, '$[*] ? (@.status == "sent").at') #>> '{}')
           ::timestamptz
FROM conversations_message m
JOIN conversations_conversation c ON c.id = m.conversation_id
JOIN conversations_customer cu ON cu.id = c.customer_id
WHERE m.sender = 'bot' AND m.status <> 'queued' AND cu.wa_id LIKE '55119%%'
"""


def bot_figures(load: harness.LoadResult, customer_of: dict[bytes, str], started: float) -> str:
    """Replies/s sustained over the bot's work (its first reply sent to its last), when the last
    went (from the load's start), and each customer's first reply from their first delivery."""
    sent = [(wa_id, at.timestamp()) for wa_id, at in harness.query(DATABASE, REPLIES_SENT_SQL)]
    if len(sent) < 2:
        return f"{'bot replies/s sustained':<34} n/a ({len(sent)} replies)"
    moments = sorted(at for _wa_id, at in sent)
    span = moments[-1] - moments[0]
    first_delivery: dict[str, float] = {}
    for body, at in load.sent_at.items():
        key = customer_of.get(body, "")[-8:]
        first_delivery[key] = min(at, first_delivery.get(key, at))
    first_reply: dict[str, float] = {}
    for wa_id, at in sent:
        key = (wa_id or "")[-8:]
        first_reply[key] = min(at, first_reply.get(key, at))
    waits = [at - first_delivery[key] for key, at in first_reply.items() if key in first_delivery]
    p = harness.percentile
    return (
        f"{'bot replies/s sustained':<34} {len(sent) / span:8.1f} replies/s ({len(sent)} replies "
        f"from the first sent to the last, {span:.1f} s; the last {moments[-1] - started:.1f} s "
        f"after the load began)\n"
        f"{'first reply per customer':<34} p50 {p(waits, 0.5):.2f} s  p95 {p(waits, 0.95):.2f} s  "
        f"max {max(waits):.2f} s from the customer's first delivery ({len(waits)}/"
        f"{len(first_delivery)} customers answered)"
    )


def wait_stored(unique: int, deadline: float) -> int:
    """Until every unique message is stored (or the deadline): how many are."""
    stored = 0
    while time.monotonic() < deadline:
        stored = harness.query(
            DATABASE,
            "SELECT count(*) FROM conversations_message WHERE wa_message_id LIKE 'wamid.BENCH.%%'",
        )[0][0]
        if stored >= unique:
            break
        time.sleep(0.25)
    return stored


def bot_settle(deadline: float) -> None:
    """The last tasks taken from the queue may still be at work: until the count of sent
    replies stops moving (and none waits queued) for two seconds."""
    settled, last = 0, -1
    while time.monotonic() < deadline and settled < 4:
        now_sent = bot_replies_sent()
        settled = settled + 1 if now_sent == last and not bot_replies_queued() else 0
        last = now_sent
        time.sleep(0.5)


def wait_idle(worker: str, timeout: float = 120) -> None:
    """Until the worker is done with the warm-up (its deliveries and the bot's turns).

    Nothing waits in the database or the queues, and the worker used under 5% of a core for
    half a second.
    """
    deadline = time.monotonic() + timeout
    used = harness.cpu_seconds()[worker]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = harness.cpu_seconds()[worker]
        busy, used = now - used > 0.025, now
        received = harness.query(
            DATABASE, "SELECT count(*) FROM whatsapp_webhookevent WHERE status = 'received'"
        )[0][0]
        if not (busy or received or harness.queue_length("celery")):
            return


def provision_number() -> None:
    # The number, and the demo bot flow of contract §3: every customer gets its menu (and a
    # friendly retry for text that is not an option, then the human queue), as on a real desk.
    code = (
        "from whatsapp.models import WhatsAppAccount;"
        f"WhatsAppAccount.objects.get_or_create(phone_number_id='{harness.PHONE_NUMBER_ID}',"
        "defaults={'name': 'Bench'});"
        "from botflows.services import flow_ensure_demo; flow_ensure_demo()"
    )
    harness.manage_shell(code, harness.bench_env(DATABASE))


def subscribe(url: str, count: int) -> None:
    code = (
        "from integrations.models import WebhookSubscription;"
        f"[WebhookSubscription.objects.create(url='{url}', events=['*'], secret='bench-{{n}}'"
        f".format(n=n)) for n in range({count})]"
    )
    harness.manage_shell(code, harness.bench_env(DATABASE, OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true"))


def intake_worker(subscribers: int) -> list[str]:
    """The worker: every queue; with subscribers, as deployed (docker-compose.yaml), intake and
    the bot only, the outgoing webhooks having a worker of their own."""
    command = harness.worker_command()
    return [*command, "--queues=celery.intake,celery"] if subscribers else command


def webhooks_worker(subscribers: int, env: dict[str, str]) -> Any:
    """With subscribers, the webhooks' own worker (threads pool). Deliveries are the least urgent
    work on this shared 2-core box (production gives them machines of their own): the lowest CPU
    priority, so acknowledging Meta and storing what customers write come first."""
    if not subscribers:
        return contextlib.nullcontext()
    command = [
        *harness.worker_command(concurrency=20),
        "--queues=celery.webhooks",
        "--pool=threads",
    ]
    command[2] = os.environ.get("BENCH_WEBHOOKS_WORKER_NICE", "19")  # nice -n <this> celery ...
    return harness.process(command, env, "worker-webhooks")


def graph_api(kind: str, latency: float) -> tuple[Any, dict[str, str]]:
    """``fake``: Meta's Graph API as a process of its own (``bench/graph.py``, standing for Meta
    elsewhere: the lowest CPU priority), and the environment that sends to it; ``sandbox``: the
    desk's sandbox transport (the sender records the message sent without any HTTP)."""
    if kind == "sandbox":
        return contextlib.nullcontext(), {}
    port = harness.free_port()
    command = [
        "nice",
        "-n",
        os.environ.get("BENCH_GRAPH_NICE", "19"),
        sys.executable,
        str(harness.ROOT / "bench" / "graph.py"),
        f"--port={port}",
        f"--latency={latency}",
    ]
    env = {
        "WHATSAPP_API_URL": f"http://127.0.0.1:{port}/v25.0",
        "WHATSAPP_ACCESS_TOKEN": "bench-graph-token",
    }
    return harness.process(command, dict(os.environ), "graph"), env


def floor_and_warmup(count: int) -> tuple[list[bytes], list[bytes]]:
    floor = [
        harness.text_delivery("5511900000000", f"wamid.FLOOR.{i}", "x", 0) for i in range(count)
    ]
    warmup = [
        harness.text_delivery("5511900000001", f"wamid.WARMUP.{i}", "aquecimento", 0)
        for i in range(200)
    ]
    return floor, warmup


def subscribed(subscribers: int) -> harness.Receivers | None:
    """With subscribers: their receiver (a process of its own) and the subscriptions to it."""
    if not subscribers:
        return None
    receivers = harness.Receivers()
    subscribe(receivers.url("healthy"), subscribers)
    return receivers


def subscribers_report(receivers: harness.Receivers | None, subscribers: int) -> str:
    """What the subscribers received (once the deliveries are done, waiting up to a minute)."""
    if receivers is None:
        return ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pending = harness.query(
            DATABASE, "SELECT count(*) FROM integrations_webhookdelivery WHERE status = 'pending'"
        )[0][0]
        if not pending:
            break
        time.sleep(0.5)
    healthy = receivers.stats().get("healthy", {})
    expected = harness.query(DATABASE, "SELECT count(*) FROM integrations_webhookdelivery")[0][0]
    return (
        f"{'outgoing webhook deliveries':<34} {healthy.get('delivered', 0)}/{expected} received "
        f"by the {subscribers} subscribers (a receiver process), "
        f"{healthy.get('duplicates', 0)} duplicated"
    )


def integrity() -> tuple[int, int, int]:
    """Messages stored, distinct message ids, customers with two open conversations."""
    rows, distinct = harness.query(
        DATABASE,
        "SELECT count(*), count(DISTINCT wa_message_id) FROM conversations_message "
        "WHERE wa_message_id LIKE 'wamid.BENCH.%%'",
    )[0]
    open_twice = harness.query(
        DATABASE,
        "SELECT count(*) FROM (SELECT customer_id FROM conversations_conversation "
        "WHERE status <> 'closed' GROUP BY customer_id, whatsapp_account_id "
        "HAVING count(*) > 1) AS t",
    )[0][0]
    return rows, distinct, open_twice


def run(
    server: str,
    count: int,
    customers: int,
    concurrency: int,
    *,
    subscribers: int = 0,
    graph: str = "fake",
    graph_latency: float = 0.0,
) -> None:
    harness.fresh_database(DATABASE)
    provision_number()
    graph_process, graph_env = graph_api(graph, graph_latency)
    env = harness.bench_env(DATABASE, OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true", **graph_env)
    port = harness.free_port()
    bodies, unique, customer_of = deliveries(count, customers)
    floor_bodies, warmup_bodies = floor_and_warmup(count)
    receivers = subscribed(subscribers)
    with (
        graph_process,
        receivers or contextlib.nullcontext(),
        harness.process(intake_worker(subscribers), env, f"worker-{server}"),
        webhooks_worker(subscribers, env),
        harness.process(harness.server_command(server, port), env, f"server-{server}"),
    ):
        harness.wait_http(port)
        # Both endpoints warm up alike (each server process's first requests open connections
        # and import what they use) before anything is measured.
        harness.run_load(port, floor_bodies[:200], concurrency=concurrency, path="/bench/floor")
        harness.run_load(port, warmup_bodies, concurrency=concurrency, path=WEBHOOK)
        wait_idle(f"worker-{server}")
        cpu_before = harness.cpu_seconds()
        floor = harness.run_load(port, floor_bodies, concurrency=concurrency, path="/bench/floor")
        cpu_floor = harness.cpu_seconds()

        started, started_wall = time.monotonic(), time.time()
        load = harness.run_load(port, bodies, concurrency=concurrency, path=WEBHOOK)
        backlog = harness.query(
            DATABASE, "SELECT count(*) FROM whatsapp_webhookevent WHERE status = 'received'"
        )[0][0]
        stored = wait_stored(unique, started + max(2 * load.duration, 5) + 60)
        processed_after = time.monotonic() - started
        cpu_after = harness.cpu_seconds()
        bot_sent = bot_replies_sent()
        # The bot's turns wait behind intake (its queue goes first): how long until they are done.
        bot_deadline = time.monotonic() + BOT_WAIT
        while time.monotonic() < bot_deadline and harness.queue_length("celery") > 0:
            time.sleep(0.5)
        bot_settle(bot_deadline)
        cpu_bot = harness.cpu_seconds()
        bot_done_after = time.monotonic() - started
        bot_sent_all, bot_left = bot_replies_sent(), harness.queue_length("celery")
        bot_line = bot_figures(load, customer_of, started_wall)
        rows, distinct, open_twice = integrity()
        subscribers_line = subscribers_report(receivers, subscribers)

    ratio = load.rate / floor.rate if floor.rate else float("nan")
    print(
        f"\n== {server}: {len(bodies)} deliveries ({unique} unique messages, "
        f"{customers} customers), {concurrency} connections, {subscribers} webhook subscribers, "
        f"sends to {'the fake Graph API' if graph == 'fake' else 'the sandbox transport'}"
        + (f" ({graph_latency * 1000:.0f} ms per answer)" if graph == "fake" else "")
    )
    print(floor.line("floor (HMAC + one INSERT)"))
    print(load.line("webhook (store + queue)"))
    print(harness.cpu_line(cpu_before, cpu_floor, len(floor_bodies), "CPU ms per floor request"))
    print(harness.cpu_line(cpu_floor, cpu_after, len(bodies), "CPU ms per delivery (all work)"))
    print(
        f"{'bot replies':<34} {bot_sent} sent when all was stored; {bot_sent_all} after "
        f"{bot_done_after:.1f} s ({bot_left} tasks still queued)"
    )
    print(bot_line)
    print(
        harness.cpu_line(
            cpu_after, cpu_bot, max(bot_sent_all - bot_sent, 1), "CPU ms per reply after intake"
        )
    )
    print(f"{'ack rate vs floor':<34} {ratio:8.2f} x   (target >= 0.90)")
    within = processed_after <= 2 * load.duration
    print(f"{'backlog when the load ended':<34} {backlog} deliveries")
    print(
        f"{'processed':<34} {stored}/{unique} messages in {processed_after:.1f} s "
        f"({stored / processed_after:.1f} msg/s); load took {load.duration:.1f} s; "
        f"within 2x load: {'yes' if within else 'NO'}"
    )
    print(f"{'lost / duplicated messages':<34} {unique - distinct} / {rows - distinct}")
    print(f"{'customers with 2 open conversations':<34} {open_twice}")
    if subscribers_line:
        print(subscribers_line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--servers", default="daphne,uvicornx2")
    parser.add_argument("--subscribers", type=int, default=0)
    parser.add_argument(
        "--graph",
        choices=["fake", "sandbox"],
        default="fake",
        help="where the sender sends: a fake Graph API process (default) or the sandbox",
    )
    parser.add_argument(
        "--graph-latency", type=float, default=0.0, help="seconds the fake Graph API takes"
    )
    args = parser.parse_args()
    for server in args.servers.split(","):
        run(
            server,
            args.deliveries,
            args.customers,
            args.concurrency,
            subscribers=args.subscribers,
            graph=args.graph,
            graph_latency=args.graph_latency,
        )


if __name__ == "__main__":
    main()
