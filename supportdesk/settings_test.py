"""Settings for the test suite: the real settings, with a throwaway secret key.

Everything else (database, Redis) still comes from the environment, so CI runs on PostgreSQL and
Redis while a laptop runs on SQLite and in-memory layers.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789abcdef")
# No API rate limits unless a test sets them (supportdesk/tests/test_api_hardening.py does).
os.environ.setdefault("RATE_LIMIT_USER", "100000/min")
os.environ.setdefault("RATE_LIMIT_ANON", "100000/min")
os.environ.setdefault("RATE_LIMIT_LOGIN_IP", "100000/min")
os.environ.setdefault("RATE_LIMIT_LOGIN_ACCOUNT", "100000/min")

from .settings import *  # noqa: F403
