"""The environment alone switches between the embedded desk and production services."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "pool": settings.DATABASES["default"].get("OPTIONS", {}).get("pool"),
    "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE"),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG,
    "access": settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds(),
    "refresh": settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds(),
}))
"""


def _probe(*, without: set[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Import the real settings in a fresh process: this environment less `without`, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in without}
    clean.update({"DJANGO_SETTINGS_MODULE": "supportdesk.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def _settings_with(**env: str) -> dict:
    result = _probe(without={"DATABASE_URL", "REDIS_URL", "DEBUG"}, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_nothing_set_gives_the_embedded_desk() -> None:
    conf = _settings_with(SECRET_KEY="x" * 50)
    assert conf["engine"] == "django.db.backends.sqlite3"
    assert conf["layer"] == "channels.layers.InMemoryChannelLayer"
    assert conf["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert conf["eager"] is True
    assert conf["debug"] is False
    assert conf["access"] == 15 * 60
    assert conf["refresh"] == 7 * 24 * 3600


def test_database_and_redis_urls_switch_to_postgres_pool_and_redis() -> None:
    conf = _settings_with(
        SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/whatever",
        REDIS_URL="redis://127.0.0.1:6379/7",
    )
    assert conf["engine"] == "django.db.backends.postgresql"
    assert conf["pool"]["max_size"] >= 1  # Django's psycopg pool, not CONN_MAX_AGE
    assert conf["conn_max_age"] == 0
    assert conf["layer"] == "channels_redis.core.RedisChannelLayer"
    assert conf["cache"] == "common.cache.FailSoftRedisCache"  # Django's, a miss when Redis is down
    assert conf["eager"] is False
    assert conf["broker"] == "redis://127.0.0.1:6379/7"


def test_token_lifetimes_come_from_the_environment() -> None:
    conf = _settings_with(SECRET_KEY="x" * 50, JWT_ACCESS_LIFETIME="5m", JWT_REFRESH_LIFETIME="1d")
    assert conf["access"] == 300
    assert conf["refresh"] == 86400


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _probe(without={"SECRET_KEY", "DEBUG"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_gives_a_development_secret_key() -> None:
    result = _probe(without={"SECRET_KEY"}, DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is True


@pytest.mark.django_db
def test_ci_runs_the_suite_on_postgresql() -> None:
    """CI exports SUPPORTDESK_REQUIRE_POSTGRES: the suite must not silently fall back to SQLite."""
    if not os.environ.get("SUPPORTDESK_REQUIRE_POSTGRES"):
        pytest.skip("only enforced in CI")
    assert connection.vendor == "postgresql"
    assert settings.REDIS_URL, "CI must run against Redis too"
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith("channels_redis")
