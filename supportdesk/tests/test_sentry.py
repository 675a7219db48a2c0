"""``SENTRY_DSN`` (contract §11): errors reach Sentry when it is set — here a local HTTP server
standing in for Sentry receives the envelope — and the SDK is not started when it is not."""

import gzip
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import django, logging, sentry_sdk
django.setup()
print("active", sentry_sdk.get_client().is_active())
try:
    raise RuntimeError("boom from the desk")
except RuntimeError:
    logging.getLogger("supportdesk.tests").exception("something broke")
sentry_sdk.flush(timeout=10)
"""


class _Sentry(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.received.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    clean.update(DJANGO_SETTINGS_MODULE="supportdesk.settings_test", **env)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )


def test_errors_are_reported_to_sentry_when_a_dsn_is_set() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sentry)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = _run(SENTRY_DSN=f"http://publickey@127.0.0.1:{port}/42")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "active True" in result.stdout
    received = server.received  # type: ignore[attr-defined]
    assert received, "no envelope reached the fake Sentry"
    path, body = received[0]
    assert path.startswith("/api/42/envelope/")
    assert b"boom from the desk" in body


def test_sentry_is_not_started_without_a_dsn() -> None:
    result = _run()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "active False" in result.stdout
