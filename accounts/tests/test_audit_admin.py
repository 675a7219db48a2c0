"""The audit log in the back office: admins read it, nobody edits it."""

from typing import Any

import pytest

from accounts.models import AuditAction, AuditLogEntry
from accounts.services import audit_log_record
from supportdesk.tests.api_support import api_env

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def test_admins_read_the_audit_log_and_cannot_change_it(
    client: Any, admin_user: Any, agent: Any
) -> None:
    entry = audit_log_record(
        actor=admin_user,
        action=AuditAction.ROLE_CHANGED,
        target=agent,
        before={"role": "agent"},
        after={"role": "supervisor"},
        ip="203.0.113.5",
    )
    client.force_login(admin_user)
    listing = client.get("/admin/accounts/auditlogentry/")
    assert listing.status_code == 200
    assert "203.0.113.5" in listing.content.decode()
    assert client.get(f"/admin/accounts/auditlogentry/{entry.pk}/change/").status_code == 200
    assert client.get("/admin/accounts/auditlogentry/add/").status_code == 403
    deleted = client.post(f"/admin/accounts/auditlogentry/{entry.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 403
    assert AuditLogEntry.objects.filter(pk=entry.pk).exists()


def test_supervisors_do_not_see_the_audit_log(client: Any, supervisor: Any) -> None:
    client.force_login(supervisor)
    assert client.get("/admin/accounts/auditlogentry/").status_code == 403
