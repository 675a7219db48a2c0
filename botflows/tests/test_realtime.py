"""What the bot learned reaches the open conversation live: ``bot_context_update`` frames on the
real socket (``/ws/`` through the ASGI app), only for those who may see the conversation."""

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

from botflows import services
from botflows.models import BotSession, Flow, FlowNode, NodeKind
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory
from conversations.tests.test_consumers import (  # the socket helpers of the consumer tests
    _connect_session,
    _frames,
    _fresh_channel_layer,  # noqa: F401 - autouse fixture: a channel layer per test
    _run,
    _settle,
)

from .conftest import Chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _context_frames(frames: list[dict], conversation_id: int) -> list[dict]:
    return [
        f
        for f in frames
        if f["type"] == "bot_context_update" and f["data"]["conversationId"] == conversation_id
    ]


@database_sync_to_async
def _context_html(user: Any, conversation_id: int) -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse("botflows:context", args=[conversation_id])).content.decode()


async def test_a_stored_ai_summary_refreshes_the_panel_of_agents_who_see_it(
    agent, other_agent, support, fake_openai
) -> None:
    # given: a conversation the bot handed to Suporte, open on Ana's screen (subscribed)
    conversation = await database_sync_to_async(ConversationFactory)(
        status=ConversationStatus.PENDING, department=support
    )
    await database_sync_to_async(BotSession.objects.create)(
        conversation=conversation, state="handed_off"
    )
    ana = await _connect_session(agent)
    bruno = await _connect_session(other_agent)  # Vendas: may not see it
    subscribe = {"type": "subscribe:conversation", "data": {"conversationId": conversation.pk}}
    await ana.send_json_to(subscribe)
    await bruno.send_json_to(subscribe)  # refused: not his department
    await _settle(ana, bruno)

    # when: the AI's summary is stored on the session
    fake_openai.reply("Quer a segunda via do boleto de março.")
    summary = await _run(services.bot_summarize, conversation=conversation)

    # then: Ana's socket is told once, Bruno's hears nothing
    assert summary == "Quer a segunda via do boleto de março."
    assert _context_frames(await _frames(ana), conversation.pk) == [
        {"type": "bot_context_update", "data": {"conversationId": conversation.pk}}
    ]
    assert _context_frames(await _frames(bruno), conversation.pk) == []
    # and the panel her console fetches on that frame shows the summary
    assert "Quer a segunda via do boleto de março." in await _context_html(agent, conversation.pk)
    await ana.disconnect()
    await bruno.disconnect()


@database_sync_to_async
def _collect_flow(support: Any) -> None:
    flow = Flow.objects.create(name="Pedidos", is_default=True)
    ask = FlowNode.objects.create(
        flow=flow,
        key="order",
        kind=NodeKind.COLLECT,
        text="Your order number?",
        field_name="order",
        validation="number",
        department=support,
    )
    flow.start_node = ask
    flow.save()
    services.flow_publish(flow=flow, actor=None)


async def test_values_the_bot_collects_are_announced_to_the_new_queue_only(
    agent, other_agent, support
) -> None:
    # given: a flow that asks for the order number, then hands over to Suporte
    await _collect_flow(support)
    conversation = await database_sync_to_async(ConversationFactory)(status=ConversationStatus.BOT)
    chat = Chat(conversation)
    await _run(chat.say, body="oi")  # the bot asks for the number
    ana = await _connect_session(agent)
    bruno = await _connect_session(other_agent)
    await _settle(ana, bruno)

    # when: the customer answers
    await _run(chat.say, body="12345")

    # then: Suporte's agent is told (the conversation is in her queue now), Vendas' is not
    assert _context_frames(await _frames(ana), conversation.pk) == [
        {"type": "bot_context_update", "data": {"conversationId": conversation.pk}}
    ]
    assert _context_frames(await _frames(bruno), conversation.pk) == []
    html = await _context_html(agent, conversation.pk)
    assert "order" in html and "12345" in html
    await ana.disconnect()
    await bruno.disconnect()
