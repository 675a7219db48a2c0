"""Fail fast while a dependency is known to be down (issue 16 §1).

When Redis or PostgreSQL goes away, every call that needs it can take long to fail: a Celery
publish retries for about 0.6 s before it gives up, a database connection is waited for up to
``DB_POOL_TIMEOUT`` (10 s). On the webhook's hot path that turns an outage into a backlog of
requests that Meta sees time out. A :class:`Breaker` remembers the failure for ``cooldown``
seconds, during which callers skip the call (and take their fallback at once: the delivery
stays ``received`` for the sweeper, the answer is a 503); then it lets **one** caller at a time
try again (a probe), until one succeeds. Per process, thread-safe, no I/O of its own.

    if BROKER.allow():
        try:
            task.delay()
        except Exception:
            BROKER.failed()
            raise
        BROKER.succeeded()
"""

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Breaker:
    def __init__(self, name: str, *, cooldown: float) -> None:
        self.name = name
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._down_until = 0.0  # time.monotonic(); 0: closed (all calls go through)
        self._probing = False
        self._on_recovery: list[Callable[[], object]] = []

    def on_recovery(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (in the thread that saw it) each time the dependency answers again
        after being down: what was skipped meanwhile can be done now."""
        self._on_recovery.append(callback)

    @property
    def is_open(self) -> bool:
        """Known down: the last call failed, and none succeeded since."""
        return self._down_until > 0

    def allow(self) -> bool:
        """Whether to make the call now. While down, ``False`` for ``cooldown`` seconds after
        the last failure, then ``True`` for one caller at a time: that caller must report with
        :meth:`succeeded` or :meth:`failed`."""
        if not self._down_until:
            return True
        with self._lock:
            if not self._down_until:
                return True
            if self._probing or time.monotonic() < self._down_until:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        if not self._down_until:
            return
        with self._lock:
            recovered = bool(self._down_until)
            self._down_until, self._probing = 0.0, False
        if not recovered:
            return
        logger.warning("%s reachable again", self.name)
        for callback in self._on_recovery:
            try:
                callback()
            except Exception:
                logger.exception("%s: a recovery callback failed", self.name)

    def failed(self) -> None:
        with self._lock:
            if not self._down_until:
                logger.warning(
                    "%s unreachable: calls are skipped for %.1f s at a time until it answers",
                    self.name,
                    self.cooldown,
                )
            self._down_until, self._probing = time.monotonic() + self.cooldown, False

    def reset(self) -> None:
        with self._lock:
            self._down_until, self._probing = 0.0, False


#: The Celery broker (Redis), as publishers of tasks see it.
BROKER = Breaker("the Celery broker", cooldown=2.0)
#: PostgreSQL, as the webhook's intake sees it.
DATABASE = Breaker("the database", cooldown=1.0)
