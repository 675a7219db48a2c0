"""Settings for benchmark servers: production settings plus the bench-only floor endpoint."""

from supportdesk.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
