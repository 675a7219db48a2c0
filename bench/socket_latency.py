"""Webhook → browser-socket latency benchmark (issue 5).

PostgreSQL + Redis + daphne (``--server uvicornx2``: uvicorn, 2 workers) + a real Celery worker
on this machine. 50 agents of one department hold a console socket each (``/ws/?token=<JWT>``);
signed webhooks bring customer messages into that department's conversations, and every socket
times the ``new_message`` frame from the moment the webhook was posted. Prints p50/p95/max over
all (message, socket) pairs and any frame that never arrived.

Then, with ``--idle N``, what idle consoles cost: N more sockets (the agents' tokens in turn) held
open for ``--idle-seconds`` (at least two heartbeats), beside the floor of the same server with
none of them over the same time: the server's resident memory they add and its share of a core.

    .venv/bin/python bench/socket_latency.py [--sockets 50] [--messages 200] [--rate 20]
        [--idle 1000] [--idle-seconds 65] [--server daphne|uvicornx2]
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets
from websockets.protocol import State

from bench import harness

DATABASE = "supportdesk_bench_socket"

SETUP = """
import json
from rest_framework_simplejwt.tokens import AccessToken
from django.contrib.auth.hashers import make_password
from accounts.models import User
from conversations.models import Conversation, Customer
from departments.models import Department
from whatsapp.models import WhatsAppAccount
dept, _ = Department.objects.get_or_create(name="Suporte")
account, _ = WhatsAppAccount.objects.get_or_create(
    phone_number_id="{phone}", defaults={{"name": "Bench"}})
tokens = []
password = make_password("Bench-Pass-123")  # hashed once: 500 agents set up in seconds
for i in range({sockets}):
    email = f"agent{{i}}@bench.local"
    user = User.objects.create(email=email, password=password, name=f"Agent {{i}}")
    user.departments.add(dept)
    tokens.append(str(AccessToken.for_user(user)))
wa_ids = []
for i in range({customers}):
    wa_id = f"5511955{{i:06d}}"
    customer = Customer.objects.create(wa_id=wa_id, phone="+" + wa_id, name=f"Cliente {{i}}")
    Conversation.objects.create(customer=customer, whatsapp_account=account, department=dept,
                                status="pending")
    wa_ids.append(wa_id)
print(json.dumps({{"tokens": tokens, "wa_ids": wa_ids}}))
"""


NEW_MESSAGE = '{"type": "new_message"'  # how the server's frames of the kind start (json.dumps)
CONNECTING_AT_ONCE = 25  # consoles open over time, not in one instant: handshakes in flight


async def listen(  # noqa: PLR0917
    url: str,
    token: str,
    arrivals: dict[str, list[float]],
    ready: asyncio.Event,
    counter: list[int],
    total: int,
    stop: asyncio.Event,
    gate: asyncio.Semaphore,
) -> None:
    """Hold one agent's socket; ``counter`` is [connected, failed]: ``ready`` once all tried."""
    try:
        async with gate:
            ws = await websockets.connect(
                f"{url}?token={token}", origin="http://127.0.0.1", open_timeout=30, max_size=2**22
            )
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
        counter[1] += 1
        if sum(counter) == total:
            ready.set()
        return

    async def read() -> None:
        async for raw in ws:
            now = time.perf_counter()
            # Only the frames timed are parsed: the load generator shares the server's two cores,
            # and decoding every other frame (as many conversation_update as new_message) cost it
            # a good part of a core at 20,000 frames/s. A frame of another shape is not counted,
            # so it would show as missing, never as fast.
            if not isinstance(raw, str) or not raw.startswith(NEW_MESSAGE):
                continue
            wamid = json.loads(raw)["data"].get("wa_message_id") or ""
            if wamid.startswith("wamid.SOCK."):
                arrivals.setdefault(wamid, []).append(now)

    async with ws:
        counter[0] += 1
        if sum(counter) == total:
            ready.set()
        reader = asyncio.create_task(read())
        await stop.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.exceptions.WebSocketException):
            await reader


async def post(port: int, body: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST /api/v1/webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nX-Hub-Signature-256: {harness.sign(body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    await writer.drain()
    status = int((await reader.readline()).split(b" ")[1])
    writer.close()
    return status


async def measure(  # noqa: PLR0917 - the run's parameters
    port: int, tokens: list[str], wa_ids: list[str], messages: int, rate: float, server: str
) -> None:
    url = f"ws://127.0.0.1:{port}/ws/"
    arrivals: dict[str, list[float]] = {}
    ready, stop = asyncio.Event(), asyncio.Event()
    counter = [0, 0]
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    opening = time.perf_counter()
    listeners = [
        asyncio.create_task(listen(url, t, arrivals, ready, counter, len(tokens), stop, gate))
        for t in tokens
    ]
    await asyncio.wait_for(ready.wait(), timeout=300)
    print(
        f"sockets open           {counter[0]}/{len(tokens)} in "
        f"{time.perf_counter() - opening:.1f} s ({CONNECTING_AT_ONCE} handshakes at a time), "
        f"{counter[1]} refused or timed out"
    )
    sockets = counter[0]  # the frames expected: one per message and open socket
    await asyncio.sleep(1)
    sent_at: dict[str, float] = {}
    statuses: dict[int, int] = {}
    cpu_before, started = harness.cpu_seconds(), time.perf_counter()
    base_ts = int(time.time())
    for i in range(messages):
        wamid = f"wamid.SOCK.{i:06d}"
        body = harness.text_delivery(wa_ids[i % len(wa_ids)], wamid, f"mensagem {i}", base_ts + i)
        sent_at[wamid] = time.perf_counter()
        status = await post(port, body)
        statuses[status] = statuses.get(status, 0) + 1
        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - sent_at[wamid])))
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if sum(len(v) for v in arrivals.values()) >= messages * sockets:
            break
        await asyncio.sleep(0.2)
    cpu_after, elapsed = harness.cpu_seconds(), time.perf_counter() - started
    stop.set()
    await asyncio.gather(*listeners, return_exceptions=True)

    latencies = sorted(
        (t - sent_at[w]) * 1000 for w, times in arrivals.items() for t in times if w in sent_at
    )
    expected = messages * sockets

    def pct(p: float) -> float:
        return harness.percentile(latencies, p)

    print(
        f"\n== {server} + Celery worker: {sockets} agent sockets, {messages} webhooks "
        f"at {rate:g}/s (HTTP statuses {statuses})"
    )
    print(
        f"frames received        {len(latencies)}/{expected} (missing {expected - len(latencies)})"
    )
    print(
        f"webhook -> socket      p50 {pct(0.50):7.1f} ms   p95 {pct(0.95):7.1f} ms   "
        f"max {latencies[-1] if latencies else 0:7.1f} ms   (target p95 < 150 ms)"
    )
    shares = {k: 100 * (cpu_after[k] - cpu_before.get(k, 0.0)) / elapsed for k in cpu_after}
    print(
        f"CPU (% of a core)      {elapsed:.1f} s from the first webhook to the last frame: "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]))
    )


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (uvicorn's workers), in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(entry) != pid and int(fields[1]) != pid:  # the process or its child
                continue
            with open(f"/proc/{entry}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


async def idle_cost(port: int, pid: int, tokens: list[str], count: int, seconds: float) -> None:
    """The server's memory and CPU with ``count`` idle consoles open, against none."""
    url = f"ws://127.0.0.1:{port}/ws/"
    await asyncio.sleep(2)
    before = harness.cpu_seconds()["server-socket"]
    await asyncio.sleep(seconds)
    floor_cpu = (harness.cpu_seconds()["server-socket"] - before) / seconds
    memory_before = rss_mb(pid)

    opening = asyncio.Semaphore(50)  # consoles opening together, as after a deploy

    async def connect(token: str) -> Any:
        async with opening:
            return await websockets.connect(
                f"{url}?token={token}", origin="http://127.0.0.1", open_timeout=60
            )

    started = time.perf_counter()
    results = await asyncio.gather(
        *(connect(tokens[i % len(tokens)]) for i in range(count)), return_exceptions=True
    )
    sockets = [r for r in results if not isinstance(r, BaseException)]
    opened_in = time.perf_counter() - started
    frames = [0]

    async def read(ws: Any) -> None:  # a console reads what it is sent (presence, heartbeats)
        async for _ in ws:
            frames[0] += 1

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    await asyncio.sleep(2)
    before = harness.cpu_seconds()["server-socket"]
    await asyncio.sleep(seconds)
    idle_cpu = (harness.cpu_seconds()["server-socket"] - before) / seconds
    memory_after = rss_mb(pid)
    alive = sum(1 for ws in sockets if ws.state is State.OPEN)
    closed = sorted({ws.close_code for ws in sockets if ws.state is not State.OPEN}, key=str)
    refused = sorted({type(r).__name__ for r in results if isinstance(r, BaseException)})
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    await asyncio.gather(*readers, return_exceptions=True)

    print(f"\n== {count} idle console sockets, {seconds:g} s each way")
    print(
        f"opened                 {len(sockets)}/{count} in {opened_in:.1f} s "
        f"(refused: {refused or 'none'}); {alive} still open "
        f"(closed with {closed or 'none'}); {frames[0]} frames read"
    )
    print(
        f"server memory          {memory_before:7.1f} MB without, {memory_after:7.1f} MB with: "
        f"+{memory_after - memory_before:.1f} MB   (target < 150 MB)"
    )
    print(
        f"server CPU             {100 * floor_cpu:5.2f}% of a core without (floor), "
        f"{100 * idle_cpu:5.2f}% with   (target < 10%)"
    )


def run(main: Any) -> None:
    """The load generator on uvloop (as the servers are): it shares their two cores."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--idle", type=int, default=0, help="idle sockets to cost (e.g. 1000)")
    parser.add_argument("--idle-seconds", type=float, default=65.0, dest="idle_seconds")
    parser.add_argument(
        "--server", default="daphne", help="daphne, uvicorn or uvicornxN (N worker processes)"
    )
    args = parser.parse_args()

    harness.fresh_database(DATABASE)
    env = harness.bench_env(DATABASE)
    setup = SETUP.format(
        phone=harness.PHONE_NUMBER_ID, sockets=args.sockets, customers=args.customers
    )
    out = harness.manage_shell(setup, env)
    data = json.loads(out.strip().splitlines()[-1])
    port = harness.free_port()
    with (
        harness.process(harness.worker_command(), env, "worker-socket"),
        harness.process(harness.server_command(args.server, port), env, "server-socket") as server,
    ):
        harness.wait_http(port)
        run(measure(port, data["tokens"], data["wa_ids"], args.messages, args.rate, args.server))
        if args.idle:
            run(idle_cost(port, server.pid, data["tokens"], args.idle, args.idle_seconds))


if __name__ == "__main__":
    main()
