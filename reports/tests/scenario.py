"""A conversation lived through the desk's real services at explicit times (time-machine), shared
by the reports' tests: bot, queue, agent A, transfer to agent B, close, reopen, B again, close.

Monday 2026-11-23, America/Sao_Paulo (-03:00); Suporte opens 08:00-18:00 on Mondays.

    17:50:00 the customer writes (a conversation with the bot)   in 1
    17:50:30 the bot answers                                     out 1 (bot)
    17:52:00 the bot hands over to Suporte's queue               bot 120 s
    17:56:00 agent A takes over                                  queue 240 s (all open hours)
    17:59:00 A answers                                           first response 540 s; A's 180 s
    18:00:00 the customer writes                                 in 2 (A's segment)
    18:05:00 A transfers to agent B                              A 540 s (240 s in open hours)
    18:10:00 B answers                                           B's first reply 300 s (0 open)
    18:20:00 B closes                                            B 900 s (0 open)
    18:40:00 B reopens (back to B)
    18:42:00 the customer writes                                 in 3
    18:44:00 B answers                                           B's first reply 240 s
    18:50:00 B closes                                            B 600 s; resolution 3600 s
"""

import dataclasses
from collections.abc import Callable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import time_machine

from accounts.models import User
from conversations import services
from conversations.models import Conversation, Customer
from departments.models import BusinessHours, BusinessSchedule, Department, Weekday
from whatsapp.tests.factories import WhatsAppAccountFactory

ZONE = ZoneInfo("America/Sao_Paulo")
DAY = (2026, 11, 23)  # a Monday


def at(hour: int, minute: int, second: int = 0, *, day: tuple[int, int, int] = DAY) -> datetime:
    return datetime(*day, hour, minute, second, tzinfo=ZONE)


def open_mondays(department: Department) -> BusinessSchedule:
    schedule = BusinessSchedule.objects.create(department=department, time_zone="America/Sao_Paulo")
    BusinessHours.objects.create(
        schedule=schedule, weekday=Weekday.MONDAY, opens_at=time(8), closes_at=time(18)
    )
    return schedule


@dataclasses.dataclass
class Desk:
    """Runs services at given moments (the clock frozen there), then ``after_each``."""

    after_each: Callable[[], Any] | None = None

    def run(self, moment: datetime, step: Callable[[], Any]) -> Any:
        with time_machine.travel(moment, tick=False):
            result = step()
            if self.after_each is not None:
                self.after_each()
            return result

    def fresh(self, conversation: Conversation) -> Conversation:
        return Conversation.objects.get(pk=conversation.pk)


def live_the_scenario(
    *,
    customer: Customer,
    department: Department,
    agent_a: User,
    agent_b: User,
    after_each: Callable[[], Any] | None = None,
) -> Conversation:
    """The scenario; ``after_each`` (if given) runs after every step, the clock still there."""
    desk = Desk(after_each=after_each)
    account = WhatsAppAccountFactory()

    def customer_writes(conversation: Conversation | None, body: str) -> Conversation:
        if conversation is None:
            conversation, _ = services.conversation_open_for_customer(
                customer=customer, whatsapp_account_id=account.pk
            )
        services.message_record_inbound(conversation=conversation, body=body)
        return conversation

    c = desk.run(at(17, 50), lambda: customer_writes(None, "Olá"))
    desk.run(
        at(17, 50, 30),
        lambda: services.message_create_outbound(conversation=c, actor=None, body="Menu"),
    )
    desk.run(
        at(17, 52),
        lambda: services.conversation_route_to_department(conversation=c, department=department),
    )
    desk.run(at(17, 56), lambda: services.conversation_take_over(conversation=c, actor=agent_a))
    desk.run(
        at(17, 59),
        lambda: services.message_create_outbound(conversation=c, actor=agent_a, body="Oi!"),
    )
    desk.run(at(18, 0), lambda: customer_writes(c, "Meu pedido"))
    desk.run(
        at(18, 5),
        lambda: services.conversation_transfer(conversation=c, actor=agent_a, to_user=agent_b),
    )
    desk.run(
        at(18, 10),
        lambda: services.message_create_outbound(conversation=c, actor=agent_b, body="Vejo."),
    )
    desk.run(at(18, 20), lambda: services.conversation_close(conversation=c, actor=agent_b))
    desk.run(at(18, 40), lambda: services.conversation_reopen(conversation=c, actor=agent_b))
    desk.run(at(18, 42), lambda: customer_writes(c, "Mais uma coisa"))
    desk.run(
        at(18, 44),
        lambda: services.message_create_outbound(conversation=c, actor=agent_b, body="Claro."),
    )
    desk.run(at(18, 50), lambda: services.conversation_close(conversation=c, actor=agent_b))
    return desk.fresh(c)
