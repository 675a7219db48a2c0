from unittest import mock

import pytest
from django.db.utils import OperationalError


@pytest.mark.django_db
def test_health_reports_database_and_redis(client, settings) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "up"
    expected = "up" if settings.REDIS_URL else "not_configured"
    assert body["redis"]["status"] == expected


@pytest.mark.django_db
def test_health_answers_503_when_the_database_is_down(client) -> None:
    # The database is made unreachable for the health check's cursor only.
    with mock.patch(
        "supportdesk.health.connection.cursor", side_effect=OperationalError("connection refused")
    ):
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["database"]["status"] == "down"


@pytest.mark.django_db
def test_health_answers_503_when_configured_redis_is_unreachable(client, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["redis"]["status"] == "down"


def test_health_with_the_database_server_really_down(tmp_path) -> None:
    """A real unreachable PostgreSQL (closed port), in a separate process: 503, not a crash."""
    import os
    import subprocess
    import sys

    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client(HTTP_HOST='localhost').get('/health');"
        "print(r.status_code, json.dumps(r.json()))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings",
        "SECRET_KEY": "x" * 50,
        "DEBUG": "true",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing",
        "DB_POOL_MIN_SIZE": "0",
        "DB_POOL_TIMEOUT": "1",
    }
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.stdout.startswith("503"), result.stderr[-2000:]
