"""Private PostgreSQL and Redis instances for fault tests and ``bench/faults.py`` (issue 16 §1).

Each lives in a temporary directory of its own and listens on 127.0.0.1 at a port of its own, so a
test or a bench can stop it, kill it and start it again without ever touching the machine's
shared PostgreSQL and Redis. Plain Python (no pytest): the fixtures and the bench both use it.

    with PrivatePostgres(port=55432) as pg, PrivateRedis(port=56379) as redis_server:
        pg.create_database("desk")         # DATABASE_URL = pg.url("desk")
        pg.stop()                          # connections refused from now on
        pg.start()                         # the same data directory again
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

# When run as root (CI, this project's machines), PostgreSQL's own programs refuse to run:
# they run as this user instead.
POSTGRES_USER = "postgres"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port_from(start: int, *, span: int = 200) -> int:
    """The first port from ``start`` where nothing listens and nothing can bind."""
    for port in range(start, start + span):
        if not port_is_free(port):
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {start}..{start + span}")


def _wait_port(port: int, *, up: bool, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_free(port) != up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} on :{port} did not {'start' if up else 'stop'}")


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for version in ("17", "16", "15", "14", "13"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"{name} (PostgreSQL's server programs) is not installed")


def postgres_available() -> bool:
    try:
        _pg_bin("initdb")
    except FileNotFoundError:
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            return False
    return True


class PrivatePostgres:
    """``initdb`` into a temporary directory, ``postgres`` on its own port (trust auth, local)."""

    def __init__(self, port: int | None = None, *, settings: dict[str, str] | None = None) -> None:
        self.port = port or free_port_from(55432)
        self.directory = Path(tempfile.mkdtemp(prefix="sd-private-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.directory),
            "max_connections": "200",
            "shared_buffers": "64MB",
            # Durable against a stopped or killed server (what these faults are); only a crash of
            # the machine itself could lose what fsync would have kept.
            "fsync": "off",
            "full_page_writes": "off",
            **(settings or {}),
        }
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", POSTGRES_USER, "--"]
            entry = pwd.getpwnam(POSTGRES_USER)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def host_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def initdb(self) -> None:
        subprocess.run(
            [
                *self._as_user,
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self, *, timeout: float = 60) -> None:
        if not self.data.exists():
            self.initdb()
        options = [f"--{name}={value}" for name, value in self.settings.items()]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *self._as_user,
                    _pg_bin("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    *options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres on :{self.port} did not start")

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def stop(self, *, mode: str = "fast", timeout: float = 60) -> None:
        """``fast``: every connection is closed, transactions in flight roll back; ``immediate``:
        the server processes are killed at once (recovery from the WAL at the next start)."""
        if self.process is None:
            return
        subprocess.run(
            [*self._as_user, _pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        _wait_port(self.port, up=False, timeout=timeout, what="postgres")

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str, *, template: str | None = None) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        self.admin(f'CREATE DATABASE "{name}"{suffix}')

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(mode="immediate", timeout=20)
        shutil.rmtree(self.directory, ignore_errors=True)


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


class PrivateRedis:
    """A ``redis-server`` on its own port, persisting nothing: stopped and started again, it is
    empty (a Redis lost, its queues with it — the harshest case)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port_from(56379)
        self.directory = Path(tempfile.mkdtemp(prefix="sd-private-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, *, timeout: float = 30) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise FileNotFoundError("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_port(self.port, up=True, timeout=timeout, what="redis-server")

    def stop(self, *, timeout: float = 30) -> None:
        """SIGKILL: the server goes away at once, as when its machine does."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=timeout)
        self.process = None
        _wait_port(self.port, up=False, timeout=timeout, what="redis-server")

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
