"""AI answers through the real ``openai`` client against a fake OpenAI-compatible HTTP server."""

import pytest

from botflows import services
from botflows.models import (
    AIAnswerLog,
    BotSession,
    Flow,
    FlowNode,
    KnowledgeArticle,
    MenuOption,
    NodeKind,
    OptionAction,
)
from common.exceptions import ServiceError
from conversations.models import ConversationStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def faq(db):
    return KnowledgeArticle.objects.create(
        title="Horário de entrega",
        body="Entregamos em até 3 dias úteis nas capitais.",
        keywords="entrega, prazo",
    )


@pytest.fixture
def at_menu(demo_flow, chat):
    chat.say("oi")
    return chat


def test_free_text_is_answered_from_the_knowledge_base(fake_openai, faq, at_menu):
    fake_openai.answer("Entregamos em até 3 dias úteis.", confidence=0.92)

    replies = at_menu.say("qual o prazo de entrega para São Paulo?")

    assert [r.body for r in replies] == ["Entregamos em até 3 dias úteis."]
    assert replies[0].sender == "bot"
    assert at_menu.conversation.status == ConversationStatus.BOT
    request = fake_openai.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    body = request["json"]
    assert body["model"] == "fake-model"
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"answer", "intent", "department", "confidence"}
    system = body["messages"][0]
    assert system["role"] == "system" and "3 dias úteis nas capitais" in system["content"]
    assert body["messages"][-1] == {
        "role": "user",
        "content": "qual o prazo de entrega para São Paulo?",
    }
    log = AIAnswerLog.objects.get()
    assert log.outcome == "answered"
    assert (log.prompt_tokens, log.completion_tokens, log.total_tokens) == (120, 30, 150)
    assert log.latency_ms >= 0 and log.confidence == 0.92
    assert log.conversation == at_menu.conversation


def test_the_model_hands_over_to_the_department_it_suggests_with_a_summary(fake_openai, at_menu):
    fake_openai.answer("", intent="handoff", department="Vendas", confidence=0.8)
    fake_openai.reply("Cliente quer um orçamento para 20 licenças.")

    replies = at_menu.say("quero um orçamento para 20 licenças")

    conversation = at_menu.conversation
    assert conversation.status == ConversationStatus.PENDING
    assert conversation.department.name == "Vendas"
    assert len(replies) == 1 and "Vendas" in replies[0].body
    session = BotSession.objects.get(conversation=conversation)
    assert session.summary == "Cliente quer um orçamento para 20 licenças."
    assert list(AIAnswerLog.objects.order_by("id").values_list("purpose", "outcome")) == [
        ("answer", "handoff"),
        ("summary", "answered"),
    ]


def test_low_confidence_hands_over(fake_openai, at_menu):
    fake_openai.answer("Talvez?", confidence=0.2, department="Financeiro")
    fake_openai.reply("Resumo")

    replies = at_menu.say("meu boleto veio com valor errado")

    assert at_menu.conversation.status == ConversationStatus.PENDING
    assert at_menu.conversation.department.name == "Financeiro"
    assert "Talvez" not in replies[0].body
    assert AIAnswerLog.objects.filter(purpose="answer").get().outcome == "low_confidence"


@pytest.mark.parametrize(
    "content",
    [
        "Claro! Entregamos em 3 dias.",  # not JSON
        '{"answer": "ok", "intent": "maybe", "department": null, "confidence": 0.9}',
        '{"answer": "ok", "intent": "answer", "department": null, "confidence": 7}',
        '{"answer": "ok"}',
    ],
)
def test_malformed_output_hands_over(fake_openai, at_menu, content):
    fake_openai.reply(content)

    replies = at_menu.say("qual o prazo de entrega?")

    assert at_menu.conversation.status == ConversationStatus.PENDING
    assert len(replies) == 1 and "in the queue" in replies[0].body
    assert AIAnswerLog.objects.filter(purpose="answer").get().outcome == "invalid"


def test_json_in_a_code_fence_is_accepted(fake_openai, at_menu):
    fake_openai.reply(
        '```json\n{"answer": "Sim!", "intent": "answer", "department": null, "confidence": 1}\n```'
    )

    assert [r.body for r in at_menu.say("vocês abrem sábado?")] == ["Sim!"]


def test_server_errors_hand_over_and_are_recorded(fake_openai, at_menu):
    fake_openai.fail(500)

    replies = at_menu.say("preciso de ajuda com meu pedido")

    assert at_menu.conversation.status == ConversationStatus.PENDING
    assert len(replies) == 1
    log = AIAnswerLog.objects.get(purpose="answer")
    assert log.outcome == "error" and "500" in log.error


def test_timeouts_hand_over(fake_openai, at_menu, admin_user):
    services.bot_config_set(key="ai_timeout_seconds", value=1, actor=admin_user)
    fake_openai.answer("too late", delay=2.5)

    replies = at_menu.say("preciso de ajuda com meu pedido")

    assert at_menu.conversation.status == ConversationStatus.PENDING
    assert "too late" not in replies[0].body
    log = AIAnswerLog.objects.get(purpose="answer")
    assert log.outcome == "timeout"
    assert 900 <= log.latency_ms < 2500


def test_after_n_ai_answers_a_human_takes_over(fake_openai, at_menu, admin_user):
    services.bot_config_set(key="ai_max_turns", value=2, actor=admin_user)
    fake_openai.answer("Resposta um.")
    fake_openai.answer("Resposta dois.")
    fake_openai.reply("Resumo")

    assert at_menu.say("primeira pergunta aqui")[0].body == "Resposta um."
    assert at_menu.say("segunda pergunta aqui")[0].body == "Resposta dois."
    at_menu.say("terceira pergunta aqui")

    assert at_menu.conversation.status == ConversationStatus.PENDING
    assert AIAnswerLog.objects.filter(purpose="answer").count() == 2


def test_ai_switched_off_in_the_settings_means_retry_not_model(fake_openai, at_menu, admin_user):
    services.bot_config_set(key="ai_enabled", value=False, actor=admin_user)

    replies = at_menu.say("qual o prazo de entrega?")

    assert replies[0].body.startswith("Sorry, I did not understand.")
    assert fake_openai.requests == []


@pytest.fixture
def ai_option_flow(departments):
    flow = Flow.objects.create(name="Com IA", is_default=True)
    menu = FlowNode.objects.create(flow=flow, key="menu", kind=NodeKind.MENU, text="Olá!")
    MenuOption.objects.create(
        node=menu,
        number=1,
        title="Dúvidas",
        action=OptionAction.AI,
        department=departments["Suporte"],
    )
    MenuOption.objects.create(
        node=menu,
        number=2,
        title="Vendas",
        action=OptionAction.DEPARTMENT,
        department=departments["Vendas"],
    )
    flow.start_node = menu
    flow.save()
    services.flow_publish(flow=flow, actor=None)
    return flow


def test_menu_option_leads_to_ai_answers(fake_openai, ai_option_flow, chat):
    chat.say("oi")
    prompt = chat.say("1")
    assert prompt[0].body == "Sure! Type your question and I will try to help."
    fake_openai.answer("Reinicie o aplicativo.")

    assert chat.say("o app travou")[0].body == "Reinicie o aplicativo."
    fake_openai.fail(503)
    fake_openai.reply("Resumo")
    chat.say("continua travado")

    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department.name == "Suporte"  # the option's department


def test_ai_option_without_ai_goes_to_its_department(ai_option_flow, chat):
    chat.say("oi")

    chat.say("1")

    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department.name == "Suporte"


def test_agents_get_a_draft_reply(fake_openai, faq, conversation):
    from conversations.services import message_record_inbound

    message_record_inbound(conversation=conversation, body="Qual o prazo de entrega?")
    fake_openai.reply("Olá! Entregamos em até 3 dias úteis nas capitais.")

    draft = services.bot_draft_reply(conversation=conversation)

    assert draft == "Olá! Entregamos em até 3 dias úteis nas capitais."
    assert conversation.messages.count() == 1  # a draft is never sent
    assert "Qual o prazo de entrega?" in fake_openai.requests[0]["json"]["messages"][1]["content"]
    assert AIAnswerLog.objects.get().purpose == "draft"


def test_draft_reply_needs_ai(conversation):
    with pytest.raises(ServiceError) as error:
        services.bot_draft_reply(conversation=conversation)
    assert error.value.code == "ai_disabled"


def test_draft_reply_failure_is_a_clear_error(fake_openai, conversation):
    fake_openai.fail(500)
    with pytest.raises(ServiceError) as error:
        services.bot_draft_reply(conversation=conversation)
    assert error.value.code == "ai_failed"
