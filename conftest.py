"""Fixtures shared by every app's tests.

Tests run on whatever ``DATABASE_URL``/``REDIS_URL`` say: SQLite and in-memory locally, PostgreSQL
and Redis in CI. Celery runs eagerly unless a test starts a real worker.
"""

import pytest

# The fake Meta Graph API (``fake_graph``) and ``signed_webhook``: see whatsapp/tests/fake_graph.py.
pytest_plugins = ["whatsapp.tests.fake_graph"]


@pytest.fixture(autouse=True)
def _eager_celery(settings):  # type: ignore[no-untyped-def]
    """Tasks run in-process by default; worker tests override this with a real worker."""
    from supportdesk.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _plain_static(settings):  # type: ignore[no-untyped-def]
    """Templates render without a collected static manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def admin_user(db):  # type: ignore[no-untyped-def]
    from accounts.tests.factories import UserFactory

    return UserFactory(role="admin", email="admin@example.com", name="Admin")


@pytest.fixture
def supervisor(db):  # type: ignore[no-untyped-def]
    from accounts.tests.factories import UserFactory

    return UserFactory(role="supervisor", name="Sofia Supervisor")


@pytest.fixture
def support(db):  # type: ignore[no-untyped-def]
    from departments.tests.factories import DepartmentFactory

    return DepartmentFactory(name="Suporte")


@pytest.fixture
def sales(db):  # type: ignore[no-untyped-def]
    from departments.tests.factories import DepartmentFactory

    return DepartmentFactory(name="Vendas")


@pytest.fixture
def agent(support):  # type: ignore[no-untyped-def]
    """An agent of the Suporte department."""
    from accounts.tests.factories import UserFactory

    return UserFactory(role="agent", name="Ana Agente", departments=[support])


@pytest.fixture
def other_agent(sales):  # type: ignore[no-untyped-def]
    """An agent of another department (Vendas)."""
    from accounts.tests.factories import UserFactory

    return UserFactory(role="agent", name="Bruno Vendas", departments=[sales])


@pytest.fixture(autouse=True)
def _fresh_login_throttle(monkeypatch):  # type: ignore[no-untyped-def]
    """Each test counts failed logins from zero (the cache may be a Redis shared by the run)."""
    import uuid

    from accounts import login_throttle

    monkeypatch.setattr(login_throttle, "KEY_PREFIX", f"login-fail-{uuid.uuid4().hex}")


@pytest.fixture(autouse=True)
def _closed_breakers():  # type: ignore[no-untyped-def]
    """Each test starts with Redis and PostgreSQL taken as reachable (common/breaker.py): a test
    that stopped them leaves no "known down" mark to the next."""
    from common.breaker import BROKER, DATABASE

    BROKER.reset()
    DATABASE.reset()
    yield
    BROKER.reset()
    DATABASE.reset()
