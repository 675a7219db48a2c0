"""The webhook subscribers of the benches: an HTTP receiver in a process of its own, standing
for the systems that receive our outgoing webhooks (elsewhere in production). In its own process
it neither shares the load generator's interpreter lock nor hides its CPU in the load
generator's figure (``harness.cpu_seconds`` counts it as ``receiver``).

The first part of the path says how it answers: ``/healthy`` (200 at once), ``/slow`` (200 after
``--slow`` seconds), ``/flaky`` (500 to the first attempt of each delivery, 200 to the next).
``GET /stats`` answers, per mode: requests, duplicates (a delivery id answered 200 twice), the
seconds from each event (its ``created_at``) to its first 200, and the time of the last one.

    python bench/receiver.py --port 8123 [--slow 2]
"""

import argparse
import json
import threading
import time
from collections import defaultdict
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.duplicates: dict[str, int] = defaultdict(int)
        self.seen: dict[str, set[str]] = defaultdict(set)
        self.delivered: dict[str, set[str]] = defaultdict(set)
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.last_done: dict[str, float] = defaultdict(float)

    def answer(self, mode: str, delivery: str, body: bytes) -> int:
        """The status to answer (counted as received now)."""
        with self.lock:
            self.requests[mode] += 1
            first_try = delivery not in self.seen[mode]
            self.seen[mode].add(delivery)
        return 500 if mode == "flaky" and first_try else 200

    def done(self, mode: str, delivery: str, body: bytes) -> None:
        now = time.time()
        try:
            occurred = datetime.fromisoformat(json.loads(body)["created_at"]).timestamp()
        except (ValueError, KeyError, TypeError):
            occurred = now
        with self.lock:
            if delivery in self.delivered[mode]:
                self.duplicates[mode] += 1
                return
            self.delivered[mode].add(delivery)
            self.latencies[mode].append(now - occurred)
            self.last_done[mode] = now

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                mode: {
                    "requests": self.requests[mode],
                    "duplicates": self.duplicates[mode],
                    "delivered": len(self.delivered[mode]),
                    "latencies": list(self.latencies[mode]),
                    "last_done": self.last_done[mode],
                }
                for mode in list(self.requests)
            }


def serve(port: int, slow: float) -> None:
    tally = Tally()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._send(200, json.dumps(tally.stats()).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            mode = self.path.strip("/").split("/")[0] or "healthy"
            delivery = self.headers.get("X-SupportDesk-Delivery", "")
            status = tally.answer(mode, delivery, body)
            if mode == "slow":
                time.sleep(slow)
            if status == 200:
                tally.done(mode, delivery, body)
            self._send(status)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow", type=float, default=2.0)
    args = parser.parse_args()
    serve(args.port, args.slow)


if __name__ == "__main__":
    main()
