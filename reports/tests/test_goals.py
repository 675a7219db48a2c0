"""Goals: one agent or one department (a database constraint), targets in range, the progress
math, admins write them (audited) in the back office and supervisors only look."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from accounts.models import AuditLogEntry
from common.exceptions import NotPermitted, ServiceError
from reports import services
from reports.models import Goal, GoalMetric
from reports.selectors import goal_list_progress, goal_progress

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = False
    settings.LANGUAGE_CODE = "en"


def test_a_goal_is_for_an_agent_or_a_department(agent: Any, support: Any) -> None:
    for owner in ({"agent": agent, "department": support}, {}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Goal.objects.create(metric=GoalMetric.CSAT, target=4, **owner)
        with pytest.raises(ValidationError, match=r"Choose an agent or a department, not both\."):
            Goal(metric=GoalMetric.CSAT, target=4, **owner).full_clean()


@pytest.mark.parametrize(
    ("metric", "target", "valid"),
    [
        (GoalMetric.CSAT, 4.5, True),
        (GoalMetric.CSAT, 6, False),
        (GoalMetric.CSAT, 0.5, False),
        (GoalMetric.FIRST_RESPONSE, 300, True),
        (GoalMetric.FIRST_RESPONSE, 0, False),
        (GoalMetric.HANDLING, 40 * 86400, False),
        (GoalMetric.CONVERSATIONS_PER_DAY, 25, True),
        (GoalMetric.CONVERSATIONS_PER_DAY, -1, False),
    ],
)
def test_targets_in_range(support: Any, metric: str, target: float, valid: bool) -> None:
    goal = Goal(metric=metric, target=target, department=support)
    if valid:
        goal.full_clean()
        goal.save()
    else:
        with pytest.raises(ValidationError, match="The target is out of range"):
            goal.full_clean()
        with pytest.raises(IntegrityError), transaction.atomic():
            goal.save()


@pytest.mark.parametrize(
    ("target", "value", "lower", "met", "percent"),
    [
        (120, 60, True, True, 100),  # twice as fast as the ceiling
        (120, 120, True, True, 100),
        (120, 240, True, False, 50),  # twice as slow: half the bar
        (4.5, 3.6, False, False, 80),
        (4.0, 4.8, False, True, 100),
        (10, 0, False, False, 0),
        (10, None, False, None, 0),  # no data
    ],
)
def test_progress(
    target: float, value: float | None, lower: bool, met: bool | None, percent: int
) -> None:
    assert goal_progress(target=target, value=value, lower_is_better=lower) == (met, percent)


def test_progress_reads_the_agents_and_departments_rows(agent: Any, support: Any) -> None:
    from datetime import datetime, timedelta

    start = datetime(2026, 11, 23).astimezone()
    stats = {
        "from": start,
        "to": start + timedelta(days=2),
        "by_agent": [
            {
                "agent": {"id": agent.pk, "name": agent.name},
                "total": 5,
                "first_response_seconds_avg": 90.0,
                "handling_seconds_avg": 400.0,
                "csat": {"average": 4.0, "responses": 2},
            }
        ],
        "by_department": [
            {"department": None, "total": 1},
            {
                "department": {"id": support.pk, "name": support.name},
                "total": 12,
                "first_response_seconds_avg": 200.0,
                "handling_seconds_avg": None,
                "csat": {"average": None, "responses": 0},
            },
        ],
    }
    goals = [
        Goal(agent=agent, metric=GoalMetric.FIRST_RESPONSE, target=60),
        Goal(agent=agent, metric=GoalMetric.CONVERSATIONS_PER_DAY, target=2),
        Goal(department=support, metric=GoalMetric.CONVERSATIONS_PER_DAY, target=8),
        Goal(department=support, metric=GoalMetric.HANDLING, target=600),
    ]
    first, agent_volume, department_volume, handling = goal_list_progress(goals=goals, stats=stats)
    assert (first.value, first.met, first.percent) == (90.0, False, 67)
    assert (agent_volume.value, agent_volume.met) == (2.5, True)  # 5 in two days
    assert (department_volume.value, department_volume.met, department_volume.percent) == (
        6.0,
        False,
        75,
    )
    assert (handling.value, handling.met) == (None, None)


def test_only_admins_write_goals_and_it_is_audited(
    admin_user: Any, supervisor: Any, agent: Any, support: Any
) -> None:
    with pytest.raises(NotPermitted):
        services.goal_create(actor=supervisor, metric=GoalMetric.CSAT, target=4, department=support)
    goal = services.goal_create(actor=admin_user, metric=GoalMetric.CSAT, target=4, agent=agent)
    with pytest.raises(ServiceError, match="not both"):
        services.goal_update(goal=goal, actor=admin_user, department=support)
    services.goal_update(goal=goal, actor=admin_user, target=4.5)
    goal.refresh_from_db()
    assert goal.target == 4.5
    services.goal_delete(goal=goal, actor=admin_user)
    assert not Goal.objects.exists()
    entries = AuditLogEntry.objects.filter(target_type="reports.goal")
    assert entries.count() == 3


def test_the_back_office(admin_user: Any, supervisor: Any, agent: Any, support: Any) -> None:
    admin = Client()
    admin.force_login(admin_user)
    response = admin.post(
        "/admin/reports/goal/add/",
        {"metric": GoalMetric.FIRST_RESPONSE, "target": "300", "department": support.pk},
    )
    assert response.status_code == 302, response.content.decode()
    goal = Goal.objects.get()
    assert (goal.department, goal.target) == (support, 300)
    # Both owners: the constraint's message, nothing saved.
    response = admin.post(
        "/admin/reports/goal/add/",
        {"metric": GoalMetric.CSAT, "target": "4", "department": support.pk, "agent": agent.pk},
    )
    assert response.status_code == 200
    assert "Choose an agent or a department, not both." in response.content.decode()
    assert Goal.objects.count() == 1

    looker = Client()
    looker.force_login(supervisor)
    assert looker.get("/admin/reports/goal/").status_code == 200
    assert looker.get(f"/admin/reports/goal/{goal.pk}/change/").status_code == 200
    assert looker.get("/admin/reports/goal/add/").status_code == 403
    looker.post(f"/admin/reports/goal/{goal.pk}/change/", {"metric": "csat_average", "target": 4})
    goal.refresh_from_db()
    assert goal.metric == GoalMetric.FIRST_RESPONSE
