"""Settings for the test suite: the real settings, with a throwaway secret key.

Everything else (database, Redis) still comes from the environment, so CI runs on PostgreSQL and
Redis while a laptop runs on SQLite and in-memory layers.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789abcdef")
# No API rate limits unless a test sets them (supportdesk/tests/test_api_hardening.py does).
for _scope in ("USER", "ANON", "LOGIN_IP", "LOGIN_ACCOUNT"):
    os.environ.setdefault(f"RATE_LIMIT_{_scope}", "100000/min")

from .settings import *  # noqa: F403
