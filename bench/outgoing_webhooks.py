"""Outgoing webhooks benchmark (contract §8): one slow or failing subscriber must not delay
another's deliveries.

PostgreSQL + Redis + a real Celery worker on the webhooks queue (threads pool), all on this
machine, and three receivers on 127.0.0.1: healthy (200 at once), slow (200 after 2 s) and flaky
(500 to the first attempt of each delivery, 200 to the next). N conversations are closed through
the real service as fast as one process can; each close is delivered to the three. Prints the
healthy receiver's event→delivery latency p50/p95, when the slow and flaky ones were done, and
lost / duplicated deliveries.

    .venv/bin/python bench/outgoing_webhooks.py [--events 1000] [--threads 50]
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

DATABASE = "supportdesk_bench_webhooks"
QUEUE = "bench-hooks"
SLOW_SECONDS = 2.0


MODES = ("healthy", "slow", "flaky")


def pct(latencies: list[float], p: float) -> float:
    return harness.percentile(latencies, p) * 1000


SETUP = """
from django.utils import timezone
from accounts.models import User
from conversations.models import Conversation, Customer
from integrations import services
from whatsapp.models import WhatsAppAccount
admin = User.objects.create(email="bench-admin@example.com", name="Bench", role="admin")
for url in {urls!r}:
    services.subscription_create(actor=admin, url=url, events=["conversation.closed"])
account, _ = WhatsAppAccount.objects.get_or_create(
    phone_number_id="{phone}", defaults={{"name": "Bench"}}
)
customers = Customer.objects.bulk_create(
    Customer(wa_id=f"55119{{i:08d}}", phone=f"+55119{{i:08d}}", name=f"C{{i}}")
    for i in range({count})
)
Conversation.objects.bulk_create(
    Conversation(customer=c, whatsapp_account=account, status="open",
                 last_message_at=timezone.now())
    for c in customers
)
"""

EMIT = """
import time
from conversations.models import Conversation
from conversations.services import conversation_close
started = time.monotonic()
for conversation in list(Conversation.objects.filter(status="open").order_by("pk")):
    conversation_close(conversation=conversation, actor=None)
print(f"EMITTED {time.monotonic() - started:.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait at most")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--receivers", default="healthy,slow,flaky", help="which receivers subscribe"
    )
    args = parser.parse_args()

    harness.fresh_database(DATABASE)
    chosen = [mode for mode in MODES if mode in args.receivers.split(",")]
    receivers = harness.Receivers(slow=SLOW_SECONDS, nice=0)  # its timing is the figure
    env = harness.bench_env(DATABASE, CELERY_QUEUE=QUEUE, OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true")
    harness.manage_shell(
        SETUP.format(
            urls=[receivers.url(mode) for mode in chosen],
            phone=harness.PHONE_NUMBER_ID,
            count=args.events,
        ),
        env,
    )
    worker = [
        str(harness.VENV_BIN / "celery"),
        "-A",
        "supportdesk",
        "worker",
        f"--queues={QUEUE}.webhooks",
        "--pool=threads",
        f"--concurrency={args.threads}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    with receivers, contextlib.ExitStack() as workers:
        for n in range(args.workers):
            workers.enter_context(harness.process(worker, env, f"worker-webhooks-{n}"))
        time.sleep(3)  # the workers connect to Redis
        started = time.time()
        output = harness.manage_shell(EMIT, env)
        emitted_in = float(output.split("EMITTED")[-1])
        deadline = time.monotonic() + args.wait
        expected = args.events
        while time.monotonic() < deadline:
            stats = receivers.stats()
            if all(stats.get(mode, {}).get("delivered", 0) >= expected for mode in chosen):
                break
            time.sleep(0.25)
        status = dict(
            harness.query(
                DATABASE,
                "SELECT status, count(*) FROM integrations_webhookdelivery GROUP BY status",
            )
        )

    pending = status.get("pending", 0)
    print(
        f"\n== {args.events} conversation.closed events x {len(chosen)} subscribers "
        f"({args.receivers}); {args.workers} webhooks workers x {args.threads} threads; "
        f"events emitted in {emitted_in:.1f} s"
    )
    empty: dict[str, Any] = {"delivered": 0, "latencies": [], "requests": 0, "duplicates": 0}
    got = {mode: stats.get(mode, empty) for mode in chosen}
    if "healthy" in got:
        latencies = got["healthy"]["latencies"]
        print(
            f"{'healthy: event -> delivery':<34} p50 {pct(latencies, 0.50):8.1f} ms  "
            f"p95 {pct(latencies, 0.95):8.1f} ms  max {pct(latencies, 1.0):8.1f} ms  "
            f"({got['healthy']['delivered']}/{expected})"
        )
    for mode, what in (("slow", f"slow ({SLOW_SECONDS:g} s)"), ("flaky", "flaky (500, then 200)")):
        if mode not in got:
            continue
        tally = got[mode]
        done = tally["last_done"] - started if tally["delivered"] else float("nan")
        print(
            f"{what:<34} {tally['delivered']}/{expected} delivered, the last "
            f"{done:.1f} s after the first event; p50 {pct(tally['latencies'], 0.5):.0f} ms, "
            f"{tally['requests']} requests"
        )
    # Lost: never written, or given up on (a pending delivery is still being retried).
    lost = len(chosen) * expected - sum(status.values()) + status.get("failed", 0)
    duplicates = sum(tally["duplicates"] for tally in got.values())
    print(f"{'delivery rows (by status)':<34} {sum(status.values())}: {status}")
    if pending:
        print(f"{'':<34} ({pending} still pending at the end: retried, not lost)")
    print(f"{'lost / duplicated deliveries':<34} {lost} / {duplicates}")


if __name__ == "__main__":
    main()
