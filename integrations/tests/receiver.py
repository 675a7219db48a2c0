"""A real HTTP receiver on 127.0.0.1 (``http.server`` in a thread) for webhook deliveries.

It records every request (method, path, headers, raw body) and answers as it is told:
``receiver.answer(500, 200)`` makes the first request get a 500 and the next a 200;
``"hang"`` keeps the connection waiting ``hang_seconds`` before a 200. Then 200 for everyone.
"""

import dataclasses
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The client's (address, port): one per connection.
    client: tuple[str, int] = ("", 0)


class Receiver:
    def __init__(self, *, tls: Any = None, keep_alive: bool = False) -> None:
        #: HTTP/1.1 with connections kept open (the default answers as HTTP/1.0, one per request).
        self.keep_alive = keep_alive
        self.requests: list[Received] = []
        self._answers: list[int | str] = []
        self.hang_seconds = 5.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # an ssl.SSLContext: serve https
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hook"

    def answer(self, *answers: int | str) -> None:
        with self._lock:
            self._answers.extend(answers)

    def _next(self) -> int | str:
        with self._lock:
            return self._answers.pop(0) if self._answers else 200

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} requests came"
            time.sleep(0.02)
        return self.requests

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(
                    Received(
                        "POST", self.path, dict(self.headers.items()), body, self.client_address
                    )
                )
                answer = receiver._next()
                if answer == "hang":
                    time.sleep(receiver.hang_seconds)
                    answer = 200
                try:
                    payload = b"ok" if answer == 200 else b"receiver says no"
                    self.send_response(int(answer))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout): nothing to answer to
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> "Receiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
