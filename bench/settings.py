"""Settings for benchmark servers: production settings plus the bench-only floor endpoint.

``BENCH_SWEEP_SECONDS`` (``bench/faults.py``): beat's sweeps on a compressed clock, every that
many seconds instead of every 15-60 s, and the sweepers' "left behind for …" thresholds with it
(what a broker outage or a killed worker left is picked up in seconds, so that a bench of several
faults fits in minutes). Everything else is production's.
"""

import os

from supportdesk.settings import *  # noqa: F403
from supportdesk.settings import CELERY_BEAT_SCHEDULE

ROOT_URLCONF = "bench.urls"

_SWEEP = float(os.environ.get("BENCH_SWEEP_SECONDS") or 0)
if _SWEEP:
    for _entry in CELERY_BEAT_SCHEDULE.values():
        _entry["schedule"] = min(float(_entry["schedule"]), _SWEEP)
        # A sweep waits behind the backlog a fault left (production's expire just before the
        # next one): kept for longer here, piling up is harmless (each sweep is idempotent).
        _entry["options"] = {**_entry.get("options", {}), "expires": 30.0}
    # Long enough that a send or a delivery merely waiting behind a backlog is not queued again.
    CELERY_BEAT_SCHEDULE["whatsapp-outbound-requeue-stuck"]["kwargs"] = {
        "older_than_seconds": 10 * _SWEEP
    }
    CELERY_BEAT_SCHEDULE["integrations-webhook-deliveries-sweep"]["kwargs"] = {
        "grace_seconds": 2 * _SWEEP
    }
