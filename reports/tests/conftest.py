from typing import Any

import pytest

from accounts.tests.factories import UserFactory
from conversations.models import Conversation
from conversations.tests.factories import CustomerFactory
from supportdesk.tests.api_support import api_env

from .scenario import live_the_scenario, open_mondays

__all__ = ["api_env"]


@pytest.fixture
def agent_b(support: Any) -> Any:
    return UserFactory(role="agent", name="Bia Suporte", departments=[support])


@pytest.fixture
def lived(support: Any, agent: Any, agent_b: Any) -> Conversation:
    """The scenario of :mod:`reports.tests.scenario`, agent A being ``agent`` (Ana Agente),
    Suporte open 08:00-18:00 on Mondays."""
    open_mondays(support)
    customer = CustomerFactory(name="João Conceição", wa_id="5511987650002", phone="+5511987650002")
    return live_the_scenario(customer=customer, department=support, agent_a=agent, agent_b=agent_b)
