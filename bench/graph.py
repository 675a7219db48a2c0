"""Meta's Graph API for the benches: ``POST /{phone_number_id}/messages`` answered at once with a
wamid, on HTTP/1.1 keep-alive connections, in a process of its own (its CPU is counted apart, as
``graph``). ``GET /stats`` answers how many messages it was sent and how many were duplicates
(the same body text to the same recipient twice: the bench's replies are never alike twice
except the menus, so the figure is only a hint).

    python bench/graph.py --port 8124 [--token bench-graph-token] [--latency 0.0]

``--latency`` seconds before each answer (Meta's own take 0.1-0.3 s from most places).
"""

import argparse
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "bench-graph-token"  # noqa: S105 - benchmark only


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.messages = 0
        self.requests = 0

    def sent(self) -> int:
        with self.lock:
            self.messages += 1
            return next(self.ids)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"messages": self.messages, "requests": self.requests}


def handler(tally: Tally, token: str, latency: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(200, tally.stats())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            with tally.lock:
                tally.requests += 1
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._reply(401, {"error": {"message": "Invalid OAuth access token", "code": 190}})
                return
            if not self.path.rstrip("/").endswith("/messages"):
                self._reply(400, {"error": {"message": "Unsupported request", "code": 100}})
                return
            if payload.get("status") == "read":
                self._reply(200, {"success": True})
                return
            if latency:
                time.sleep(latency)
            number = tally.sent()
            recipient = payload.get("to") or payload.get("recipient")
            self._reply(
                200,
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": recipient, "wa_id": recipient}],
                    "messages": [{"id": f"wamid.GRAPH{number:08d}"}],
                },
            )

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler(Tally(), args.token, args.latency)
    )
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
