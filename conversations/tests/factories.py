import factory
from django.db import connection
from django.utils import timezone

from conversations.models import (
    Conversation,
    ConversationStatus,
    Customer,
    Direction,
    Message,
    MessageStatus,
    SenderKind,
)
from whatsapp.tests.factories import WhatsAppAccountFactory


class CustomerFactory(factory.django.DjangoModelFactory[Customer]):
    class Meta:
        model = Customer

    wa_id = factory.Sequence(lambda n: f"55119876{n:05d}")
    phone = factory.LazyAttribute(lambda o: f"+{o.wa_id}")
    name = factory.Faker("name", locale="pt_BR")


class ConversationFactory(factory.django.DjangoModelFactory[Conversation]):
    class Meta:
        model = Conversation

    customer = factory.SubFactory(CustomerFactory)
    whatsapp_account = factory.SubFactory(WhatsAppAccountFactory)
    status = ConversationStatus.PENDING
    last_message_at = factory.LazyFunction(timezone.now)
    last_inbound_at = factory.LazyFunction(timezone.now)


class MessageFactory(factory.django.DjangoModelFactory[Message]):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    direction = Direction.IN
    sender = SenderKind.CUSTOMER
    body = factory.Faker("sentence", locale="pt_BR")
    status = MessageStatus.RECEIVED
    wa_message_id = factory.Sequence(lambda n: f"wamid.TEST{n:08d}")


def search_limit_queries() -> int:
    """What a search adds to a page's queries on PostgreSQL: its time limit's SAVEPOINT (inside
    the test's transaction), ``set_config('statement_timeout', …)`` and RELEASE; the customers
    matching by name or phone (their ids go into the query, so that the planner knows how many
    they are); the page's customers (fetched for its rows, not joined to every match); nothing
    elsewhere."""
    return 5 if connection.vendor == "postgresql" else 0
