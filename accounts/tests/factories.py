from typing import Any

import factory

from accounts.models import Role, User

DEFAULT_PASSWORD = "Senha-Forte-123"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name", locale="pt_BR")
    role = Role.AGENT
    password = factory.django.Password(DEFAULT_PASSWORD)

    @factory.post_generation
    def departments(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            self.departments.set(extracted)
