"""Managing flows themselves: create, change settings, delete (or retire) — admins only, audited,
one flow per number, one default flow, and conversations in progress never lose their version."""

import pytest

from accounts.models import AuditLogEntry
from botflows import services
from botflows.models import BotSession, Flow, FlowNode, FlowVersion, SessionState
from common.exceptions import NotPermitted, ServiceError
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory
from whatsapp.tests.factories import WhatsAppAccountFactory

from .conftest import Chat

pytestmark = pytest.mark.django_db


def _entries(flow_pk: int) -> list[AuditLogEntry]:
    return list(
        AuditLogEntry.objects.filter(target_type="botflows.flow", target_id=str(flow_pk)).order_by(
            "id"
        )
    )


# --- create ------------------------------------------------------------------------------------


def test_admin_creates_a_flow_for_a_number_and_it_is_audited(admin_user):
    number = WhatsAppAccountFactory(name="Vendas")

    flow = services.flow_create(actor=admin_user, name="  Vendas  ", whatsapp_account=number)

    assert flow.name == "Vendas" and flow.whatsapp_account == number
    assert flow.is_active and not flow.is_default
    (entry,) = _entries(flow.pk)
    assert entry.actor == admin_user
    assert entry.after["created"] == {
        "name": "Vendas",
        "whatsapp_account": number.pk,
        "is_default": False,
        "is_active": True,
    }


def test_a_new_default_flow_takes_the_mark_from_the_previous_one(admin_user, demo_flow):
    flow = services.flow_create(actor=admin_user, name="Natal", is_default=True)

    demo_flow.refresh_from_db()
    assert flow.is_default and not demo_flow.is_default
    assert list(Flow.objects.filter(is_default=True)) == [flow]
    assert _entries(flow.pk)[0].after["undefaulted"] == [demo_flow.pk]


def test_a_number_gets_one_flow_only(admin_user):
    number = WhatsAppAccountFactory(name="Loja")
    services.flow_create(actor=admin_user, name="Loja", whatsapp_account=number)

    with pytest.raises(ServiceError) as error:
        services.flow_create(actor=admin_user, name="Outra", whatsapp_account=number)

    assert error.value.code == "number_taken"
    assert "already has a flow: Loja." in error.value.message
    assert Flow.objects.count() == 1


def test_a_flow_needs_a_name(admin_user):
    with pytest.raises(ServiceError) as error:
        services.flow_create(actor=admin_user, name="   ")

    assert error.value.code == "missing_name"
    assert not Flow.objects.exists()


def test_only_admins_manage_flows(agent, supervisor, demo_flow):
    for actor in (agent, supervisor, None):
        with pytest.raises(NotPermitted):
            services.flow_create(actor=actor, name="x")
        with pytest.raises(NotPermitted):
            services.flow_update(
                actor=actor,
                flow=demo_flow,
                name="x",
                whatsapp_account=None,
                is_default=True,
                is_active=True,
            )
        with pytest.raises(NotPermitted):
            services.flow_delete(actor=actor, flow=demo_flow)
    assert list(Flow.objects.values_list("name", flat=True)) == ["Main menu"]


# --- update ------------------------------------------------------------------------------------


def _update(flow: Flow, actor, **changes) -> Flow:
    fields = {
        "name": flow.name,
        "whatsapp_account": flow.whatsapp_account,
        "is_default": flow.is_default,
        "is_active": flow.is_active,
        **changes,
    }
    return services.flow_update(actor=actor, flow=flow, **fields)


def test_admin_renames_moves_and_deactivates_a_flow(admin_user):
    first, second = WhatsAppAccountFactory(), WhatsAppAccountFactory()
    flow = services.flow_create(actor=admin_user, name="Loja", whatsapp_account=first)

    flow = _update(flow, admin_user, name="Loja 2", whatsapp_account=second, is_active=False)

    flow.refresh_from_db()
    assert (flow.name, flow.whatsapp_account, flow.is_active) == ("Loja 2", second, False)
    entry = _entries(flow.pk)[-1]
    assert entry.before["whatsapp_account"] == first.pk
    assert entry.after["whatsapp_account"] == second.pk
    # the first number is free again
    services.flow_create(actor=admin_user, name="Nova", whatsapp_account=first)


def test_saving_unchanged_settings_writes_no_audit_entry(admin_user, demo_flow):
    _update(demo_flow, admin_user)

    assert _entries(demo_flow.pk) == []


def test_making_a_flow_default_un_defaults_the_previous_one(admin_user, demo_flow):
    flow = services.flow_create(actor=admin_user, name="Natal")

    _update(flow, admin_user, is_default=True)

    demo_flow.refresh_from_db()
    flow.refresh_from_db()
    assert flow.is_default and not demo_flow.is_default
    assert _entries(flow.pk)[-1].after["undefaulted"] == [demo_flow.pk]


def test_the_default_flow_stays_default_until_another_one_is_made_default(admin_user, demo_flow):
    services.flow_create(actor=admin_user, name="Loja", whatsapp_account=WhatsAppAccountFactory())

    with pytest.raises(ServiceError) as error:
        _update(demo_flow, admin_user, is_default=False)

    assert error.value.code == "default_required"
    demo_flow.refresh_from_db()
    assert demo_flow.is_default


def test_the_only_flow_may_stop_being_the_default(admin_user, demo_flow):
    _update(demo_flow, admin_user, is_default=False)

    demo_flow.refresh_from_db()
    assert not demo_flow.is_default


def test_moving_a_flow_to_a_number_with_a_flow_is_refused(admin_user):
    taken = WhatsAppAccountFactory(name="Loja")
    services.flow_create(actor=admin_user, name="Loja", whatsapp_account=taken)
    flow = services.flow_create(actor=admin_user, name="Outra")

    with pytest.raises(ServiceError) as error:
        _update(flow, admin_user, whatsapp_account=taken)

    assert error.value.code == "number_taken"
    flow.refresh_from_db()
    assert flow.whatsapp_account is None


# --- delete ------------------------------------------------------------------------------------


def test_an_unused_flow_is_deleted_with_its_nodes_and_versions(admin_user, demo_flow):
    flow = services.flow_create(actor=admin_user, name="Loja", whatsapp_account=None)
    services.flow_node_create(actor=admin_user, flow=flow, key="hi", kind="end", text="Oi")
    services.flow_publish(flow=flow, actor=admin_user)
    pk = flow.pk

    assert services.flow_delete(actor=admin_user, flow=flow) is None

    assert not Flow.objects.filter(pk=pk).exists()
    assert not FlowNode.objects.filter(flow_id=pk).exists()
    assert not FlowVersion.objects.filter(flow_id=pk).exists()
    assert _entries(pk)[-1].before["deleted"]["nodes"] == ["hi"]


def test_a_flow_with_conversations_in_progress_is_not_deleted(admin_user, demo_flow):
    # given: the only flow, default, with a customer at its menu
    Chat(ConversationFactory(status=ConversationStatus.BOT)).say("Oi")

    with pytest.raises(ServiceError) as error:
        services.flow_delete(actor=admin_user, flow=demo_flow)

    assert error.value.code == "in_progress"
    assert "1 conversation in progress still runs on Main menu" in error.value.message
    assert Flow.objects.filter(pk=demo_flow.pk, is_active=True, is_default=True).exists()


def test_a_flow_only_past_conversations_ran_on_is_retired_not_deleted(admin_user, demo_flow):
    # given: a conversation that the bot handed over long ago
    conversation = ConversationFactory(status=ConversationStatus.BOT)
    Chat(conversation).say("Oi")
    BotSession.objects.filter(conversation=conversation).update(state=SessionState.HANDED_OFF)
    number = WhatsAppAccountFactory()
    _update(demo_flow, admin_user, whatsapp_account=number)

    retired = services.flow_delete(actor=admin_user, flow=demo_flow)

    assert retired is not None
    demo_flow.refresh_from_db()
    assert (demo_flow.is_active, demo_flow.is_default, demo_flow.whatsapp_account) == (
        False,
        False,
        None,
    )
    assert BotSession.objects.get(conversation=conversation).flow_version.flow == demo_flow
    assert _entries(demo_flow.pk)[-1].after["retired"]["is_active"] is False
    # its number and the default mark are free for a new flow
    services.flow_create(actor=admin_user, name="Nova", whatsapp_account=number, is_default=True)


def test_a_closed_conversation_does_not_block_deleting(admin_user, demo_flow):
    conversation = ConversationFactory(status=ConversationStatus.BOT)
    Chat(conversation).say("Oi")
    conversation.status = ConversationStatus.CLOSED
    conversation.save(update_fields=["status"])

    assert services.flow_delete(actor=admin_user, flow=demo_flow) is not None  # retired


def test_the_default_flow_is_not_deleted_while_other_flows_exist(admin_user, demo_flow):
    other = services.flow_create(actor=admin_user, name="Loja")

    with pytest.raises(ServiceError) as error:
        services.flow_delete(actor=admin_user, flow=demo_flow)

    assert error.value.code == "is_default"
    assert "make another flow the default first" in error.value.message
    # once another flow is the default, it goes
    _update(other, admin_user, is_default=True)
    demo_flow.refresh_from_db()
    assert services.flow_delete(actor=admin_user, flow=demo_flow) is None
    assert list(Flow.objects.all()) == [other]
