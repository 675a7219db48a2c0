"""common.breaker (issue 16 §1): fail fast while a dependency is known to be down."""

import threading
import time

from common.breaker import Breaker


def test_a_failure_skips_calls_for_the_cooldown_then_lets_one_probe_through() -> None:
    breaker = Breaker("dependency", cooldown=0.2)
    assert breaker.allow() and not breaker.is_open
    breaker.failed()
    assert breaker.is_open
    assert not breaker.allow()
    time.sleep(0.25)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # one at a time
    breaker.failed()  # still down: another cooldown
    assert not breaker.allow()
    time.sleep(0.25)
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.is_open
    assert all(breaker.allow() for _ in range(5))


def test_recovery_callbacks_run_once_when_the_dependency_answers_again() -> None:
    breaker = Breaker("dependency", cooldown=0.0)
    calls: list[str] = []
    breaker.on_recovery(lambda: calls.append(threading.current_thread().name))
    breaker.on_recovery(lambda: 1 / 0)  # a failing callback is logged, never raised
    breaker.succeeded()
    assert calls == []  # it was never down
    breaker.failed()
    breaker.failed()
    assert breaker.allow()
    breaker.succeeded()
    breaker.succeeded()
    assert calls == [threading.current_thread().name]
