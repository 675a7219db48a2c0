"""``GET /metrics`` (contract §11): Prometheus's text format after real requests, its protection,
and the counts of several processes adding up (prometheus-client's multiprocess mode)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

from whatsapp.models import WebhookEvent
from whatsapp.services import sandbox as wa
from whatsapp.tests.fake_graph import signed_webhook

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-for-tests"


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.SECURE_SSL_REDIRECT = False


@pytest.mark.django_db
def test_metrics_is_404_without_a_token_configured(client, settings) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 404


@pytest.mark.django_db
def test_metrics_needs_the_bearer_token(client, metrics_on) -> None:
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-it"})
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    basic = client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


@pytest.mark.django_db
def test_requests_are_counted_by_route_and_status_with_latency(
    client, metrics_on, admin_user
) -> None:
    before = scrape(client)
    client.force_login(admin_user)
    for pk in (101, 202, 303):  # three paths, one route
        assert client.get(f"/api/v1/conversations/{pk}").status_code == 404
    assert client.get("/health").status_code == 200
    assert client.get("/no/such/page/").status_code == 404
    after = scrape(client)

    route = "api/v1/conversations/<int:pk>"
    counted = "supportdesk_http_requests_total"
    assert (
        value(after, counted, method="GET", route=route, status="404")
        - value(before, counted, method="GET", route=route, status="404")
        == 3
    )
    assert not any("/101" in labels_value for (_n, labels) in after for _k, labels_value in labels)
    assert value(after, counted, method="GET", route="health", status="200") > value(
        before, counted, method="GET", route="health", status="200"
    )
    assert value(after, counted, method="GET", route="unmatched", status="404") > value(
        before, counted, method="GET", route="unmatched", status="404"
    )
    histogram = "supportdesk_http_request_duration_seconds"
    count = value(after, f"{histogram}_count", method="GET", route=route) - value(
        before, f"{histogram}_count", method="GET", route=route
    )
    assert count == 3
    assert value(after, f"{histogram}_bucket", method="GET", route=route, le="+Inf") >= 3
    assert value(after, f"{histogram}_sum", method="GET", route=route) > 0


@pytest.mark.django_db
def test_webhook_deliveries_and_the_intake_lag_are_exposed(client, metrics_on, fake_graph) -> None:
    before = scrape(client)
    body, headers = signed_webhook(wa.text_delivery(wa_id="5511987650002", body="Oi"))
    url = "/api/v1/webhooks/whatsapp"
    assert (
        client.post(url, body, content_type="application/json", headers=headers).status_code == 200
    )
    refused = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert (
        client.post(url, body, content_type="application/json", headers=refused).status_code == 403
    )
    # one delivery left unprocessed for a while: the lag is its age
    WebhookEvent.objects.create(raw_body="{}", phone_number_id=fake_graph.phone_number_id)
    after = scrape(client)

    name = "supportdesk_whatsapp_webhook_deliveries_total"
    for result in ("stored", "bad_signature"):
        assert value(after, name, result=result) - value(before, name, result=result) == 1
    assert value(after, "supportdesk_whatsapp_intake_pending") == 1
    assert value(after, "supportdesk_whatsapp_intake_lag_seconds") >= 0
    assert value(after, "supportdesk_metrics_collector_up", collector="ChannelCollector") == 1
    processed = "supportdesk_whatsapp_webhook_processed_total"
    assert (
        value(after, processed, result="processed") - value(before, processed, result="processed")
        == 1
    )


@pytest.mark.django_db
def test_a_failing_collector_leaves_the_rest_of_the_scrape(client, metrics_on, monkeypatch) -> None:
    from whatsapp import selectors

    def broken():
        raise RuntimeError("database away")

    monkeypatch.setattr(selectors, "webhook_intake_lag", broken)
    found = scrape(client)
    assert value(found, "supportdesk_metrics_collector_up", collector="ChannelCollector") == 0
    assert value(found, "supportdesk_metrics_collector_up", collector="OutboxCollector") == 1


@pytest.mark.django_db
@pytest.mark.skipif(not django_settings.REDIS_URL, reason="queue lengths come from Redis")
def test_celery_queue_lengths_come_from_redis(client, metrics_on) -> None:
    import redis

    from supportdesk.metrics import celery_queue_names

    queue = celery_queue_names()[-1]
    connection = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    connection.rpush(queue, b"{}", b"{}")
    connection.rpush(f"{queue}\x06\x163", b"{}")
    try:
        found = scrape(client)
    finally:
        connection.delete(queue, f"{queue}\x06\x163")
        connection.close()
    assert value(found, "supportdesk_celery_queue_length", queue=queue) == 3


CHILD = """
import sys, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="localhost")
for _ in range(int(sys.argv[1])):
    assert client.get("/favicon.ico").status_code == 301
"""

SCRAPE = """
import django
django.setup()
from django.test import Client
response = Client(HTTP_HOST="localhost").get("/metrics", headers={"Authorization": "Bearer %s"})
assert response.status_code == 200, response.status_code
print(response.content.decode())
"""


def test_counts_of_several_processes_add_up_in_multiprocess_mode(tmp_path) -> None:
    """Two server processes count requests into PROMETHEUS_MULTIPROC_DIR; a third one's scrape
    sums both (as daphne processes and Celery workers of one host do)."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "DEBUG"}}
    env.update(
        DJANGO_SETTINGS_MODULE="supportdesk.settings_test",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        METRICS_TOKEN=TOKEN,
        DEBUG="true",  # plain static files storage: no collected manifest needed
        PYTHONPATH=str(ROOT),
    )

    def run(script: str, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", script, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    run(CHILD, "3")
    run(CHILD, "4")
    assert len(list(directory.glob("counter_*.db"))) >= 2  # one file per process
    found = samples(run(SCRAPE % TOKEN))
    labels = {"method": "GET", "route": "favicon.ico", "status": "301"}
    assert value(found, "supportdesk_http_requests_total", **labels) == 7
    assert (
        value(
            found,
            "supportdesk_http_request_duration_seconds_count",
            method="GET",
            route="favicon.ico",
        )
        == 7
    )
