"""Editing flows in the Django admin: nodes inline, options on the node, publish as an action."""

import pytest
from django.urls import reverse

from botflows.models import FlowVersion, MenuOption
from departments.models import BusinessSchedule

pytestmark = pytest.mark.django_db


def test_admin_edits_a_flow_with_inlines_and_publishes_it(client, admin_user, demo_flow):
    client.force_login(admin_user)

    page = client.get(reverse("admin:botflows_flow_change", args=[demo_flow.pk]))
    assert page.status_code == 200
    assert b"menu" in page.content and b"greeting" in page.content

    node = demo_flow.nodes.get(key="menu")
    page = client.get(reverse("admin:botflows_flownode_change", args=[node.pk]))
    assert page.status_code == 200
    assert b"Financeiro" in page.content

    MenuOption.objects.filter(node=node, number=3).update(title="Boletos")
    response = client.post(
        reverse("admin:botflows_flow_changelist"),
        {"action": "publish", "_selected_action": [demo_flow.pk]},
        follow=True,
    )
    assert response.status_code == 200
    latest = FlowVersion.objects.filter(flow=demo_flow).order_by("-number").first()
    assert latest.number == 2
    assert latest.definition["nodes"]["menu"]["options"][2]["title"] == "Boletos"


def test_supervisors_have_no_bot_administration(client, supervisor, demo_flow):
    client.force_login(supervisor)

    assert client.get(reverse("admin:botflows_flow_changelist")).status_code == 403
    assert client.get(reverse("admin:departments_businessschedule_changelist")).status_code == 403


def test_business_hours_are_edited_with_hours_and_holidays_inline(client, admin_user, departments):
    client.force_login(admin_user)
    url = reverse("admin:departments_businessschedule_add")
    assert client.get(url).status_code == 200

    response = client.post(
        url,
        {
            "department": departments["Suporte"].pk,
            "time_zone": "America/Manaus",
            "out_of_hours_message": "",
            "hours-TOTAL_FORMS": "1",
            "hours-INITIAL_FORMS": "0",
            "hours-0-weekday": "0",
            "hours-0-opens_at": "08:00",
            "hours-0-closes_at": "17:00",
            "holidays-TOTAL_FORMS": "1",
            "holidays-INITIAL_FORMS": "0",
            "holidays-0-date": "2026-12-25",
            "holidays-0-name": "Natal",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    schedule = BusinessSchedule.objects.get(department=departments["Suporte"])
    assert schedule.time_zone == "America/Manaus"
    assert schedule.hours.count() == 1 and schedule.holidays.count() == 1
