import factory

from whatsapp.models import WhatsAppAccount


class WhatsAppAccountFactory(factory.django.DjangoModelFactory[WhatsAppAccount]):
    class Meta:
        model = WhatsAppAccount
        django_get_or_create = ("phone_number_id",)

    name = factory.Sequence(lambda n: f"Número {n}")
    phone_number_id = factory.Sequence(lambda n: f"1065403522{n:05d}")
    display_phone_number = factory.Sequence(lambda n: f"1555000{n:04d}")
