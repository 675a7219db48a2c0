import factory

from integrations.models import OutgoingEvent, WebhookSubscription


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory[WebhookSubscription]):
    """A subscription written straight to the table (no URL check, no cache bump): tests that
    need the outbox to see it call ``integrations.selectors.subscriptions_bump_version``."""

    class Meta:
        model = WebhookSubscription

    url = "https://hooks.example.com/supportdesk"
    events = factory.LazyFunction(lambda: ["*"])
    secret = factory.Sequence(lambda n: f"test-secret-{n:06d}-abcdefghij")
    description = factory.Sequence(lambda n: f"subscription {n}")


class OutgoingEventFactory(factory.django.DjangoModelFactory[OutgoingEvent]):
    """The stored event a delivery sends (its data as JSON text)."""

    class Meta:
        model = OutgoingEvent

    type = "conversation.closed"
    occurred_at = ""
    data = "{}"
