"""``manage.py seed_demo``: the demo desk of contract §3 (run by ``make run``).

Idempotent by construction: every row is looked up by its natural key (e-mail, department name,
phone number id, bot setting key, customer WhatsApp id) and only created when missing. Rows that
exist are left exactly as they are, so a second run changes nothing and a password somebody
changed is kept; ``--reset-passwords`` puts the demo passwords back on the demo users.

Conversations are built through ``conversations.services`` (the same calls WhatsApp, the bot and
the console make), so their event rows and timestamps are real.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.test.utils import override_settings
from django.utils.translation import gettext as _

from accounts.models import Role, User
from botflows import services as bot_services
from botflows.models import BotConfiguration, Flow
from conversations import services
from conversations.models import ConversationStatus, Customer, MessageType
from departments.models import Department
from whatsapp.identity import wa_id_variants
from whatsapp.models import MessageTemplate, WhatsAppAccount
from whatsapp.services import accounts as whatsapp_accounts
from whatsapp.services.inbound import customer_upsert

ALL = "__all__"

DEPARTMENTS: list[tuple[str, str]] = [
    ("Suporte", "Dúvidas de uso, problemas técnicos e pedidos."),
    ("Vendas", "Planos, preços e novas contratações."),
    ("Financeiro", "Boletos, pagamentos e notas fiscais."),
]


# Sandbox only: what sync_templates would bring from Meta for a real number.
DEMO_TEMPLATE = {
    "name": "retomar_atendimento",
    "language": "pt_BR",
    "body": "Olá, {{1}}! Podemos continuar o seu atendimento por aqui?",
}


@dataclass(frozen=True)
class DemoUser:
    key: str
    name: str
    email: str
    password: str
    role: str
    departments: tuple[str, ...] | str


# Contract §3: these logins are printed by ``make run`` and documented in the README.
USERS: list[DemoUser] = [
    DemoUser("admin", "Admin", "admin@suporte.com", "Admin@123", Role.ADMIN, ALL),
    DemoUser(
        "supervisor", "Supervisor", "supervisor@suporte.com", "Super@123", Role.SUPERVISOR, ALL
    ),
    DemoUser("ana", "Ana", "agente1@suporte.com", "Agente@123", Role.AGENT, ("Suporte",)),
    DemoUser("bruno", "Bruno", "agente2@suporte.com", "Agente@123", Role.AGENT, ("Vendas",)),
]

GREETING = "Olá! 👋 Bem-vindo(a) ao atendimento da SupportDesk."
MENU_OPTIONS: list[dict[str, str]] = [
    {"id": "1", "label": "Suporte", "department": "Suporte"},
    {"id": "2", "label": "Vendas", "department": "Vendas"},
    {"id": "3", "label": "Financeiro", "department": "Financeiro"},
]
MENU_PROMPT = "Como podemos ajudar? Responda com o número da opção:"
MENU: dict[str, Any] = {"text": MENU_PROMPT, "button": "Ver opções", "options": MENU_OPTIONS}
MENU_TEXT = "\n".join([MENU_PROMPT, *(f"{o['id']} - {o['label']}" for o in MENU_OPTIONS)])
HANDOFF_KEYWORDS = ["atendente", "humano", "falar com alguém"]

BOT_SETTINGS: dict[str, tuple[Any, str]] = {
    "greeting": (GREETING, "First message the bot sends to a customer."),
    "menu": (MENU, "Main menu: options 1 Suporte, 2 Vendas, 3 Financeiro."),
    "handoff_keywords": (HANDOFF_KEYWORDS, "Words that hand the customer to a human."),
}


@dataclass(frozen=True)
class DemoCustomer:
    wa_id: str
    name: str
    scenario: str  # bot | pending | open | closed


# Oldest first: the last one created is the most recent activity in the inbox.
CUSTOMERS: list[DemoCustomer] = [
    DemoCustomer("5531990000004", "Pedro Almeida", "closed"),
    DemoCustomer("5521990000003", "Carla Mendes", "open"),
    DemoCustomer("5511990000002", "João Santos", "pending"),
    DemoCustomer("5511990000001", "Maria Oliveira", "bot"),
]


def _handlers_without_bot() -> list[str]:
    """Every domain-event handler but the bot's, for the demo's scripted conversations."""
    return [h for h in settings.DOMAIN_EVENT_HANDLERS if h != "botflows.handlers.BotHandler"]


class Command(BaseCommand):
    help = (
        "Load the demo desk (contract §3): users, departments, a WhatsApp number, bot settings "
        "and a few conversations. Idempotent; refuses to run when DEBUG is off."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Set the demo passwords again on demo users that already exist.",
        )

    def handle(self, *args: Any, reset_passwords: bool = False, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                _(
                    "seed_demo creates accounts with well-known passwords and refuses to run "
                    "when DEBUG is off. Run it on a development desk with DEBUG=true "
                    "(make run does)."
                )
            )
        self.created = 0
        with transaction.atomic():
            departments = self.seed_departments()
            users = self.seed_users(departments, reset_passwords=reset_passwords)
            account = self.seed_whatsapp_account()
            self.seed_template(account)
            self.seed_bot_settings(users["admin"])
            self.seed_conversations(account, departments, users)
        if self.created:
            self.stdout.write(
                self.style.SUCCESS(_("Demo data ready (%d rows created).") % self.created)
            )
        else:
            self.stdout.write(self.style.SUCCESS(_("Demo data already in place; nothing changed.")))

    # -- output ----------------------------------------------------------------------------

    def report(self, what: str, created: bool) -> None:
        if created:
            self.created += 1
        if self.verbosity >= 1:
            state = _("created") if created else _("exists")
            self.stdout.write(f"  {what}: {state}")

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.verbosity = options.get("verbosity", 1)
        return super().execute(*args, **options)

    # -- steps -----------------------------------------------------------------------------

    def seed_departments(self) -> dict[str, Department]:
        departments = {}
        for name, description in DEPARTMENTS:
            department, created = Department.objects.get_or_create(
                name=name, defaults={"description": description}
            )
            self.report(_("department %s") % name, created)
            departments[name] = department
        return departments

    def seed_users(
        self, departments: dict[str, Department], *, reset_passwords: bool
    ) -> dict[str, User]:
        users = {}
        for demo in USERS:
            user = User.objects.filter(email__iexact=demo.email).first()
            created = user is None
            if user is None:
                user = User.objects.create_user(
                    demo.email, demo.password, name=demo.name, role=demo.role
                )
                names = departments.keys() if demo.departments == ALL else demo.departments
                user.departments.set([departments[n] for n in names])
            elif reset_passwords:
                user.set_password(demo.password)
                user.save(update_fields=["password", "updated_at"])
                self.stdout.write(f"  {demo.email}: " + _("password reset"))
            self.report(f"{demo.email} ({demo.role})", created)
            users[demo.key] = user
        return users

    def seed_whatsapp_account(self) -> WhatsAppAccount:
        # The same number WhatsApp intake and the /sandbox/ simulator use: WHATSAPP_PHONE_NUMBER_ID,
        # or the sandbox's own id when that is unset.
        existed = WhatsAppAccount.objects.filter(
            phone_number_id=whatsapp_accounts.default_phone_number_id()
        ).exists()
        account = whatsapp_accounts.account_get_default()
        self.report(_("WhatsApp number %s") % account, not existed)
        return account

    def seed_template(self, account: WhatsAppAccount) -> None:
        """An approved template on the sandbox number, so that a newcomer can answer a customer
        whose 24-hour window has closed. With a real token templates come from sync_templates."""
        if settings.WHATSAPP_ACCESS_TOKEN:
            return
        template, created = MessageTemplate.objects.get_or_create(
            account=account,
            name=DEMO_TEMPLATE["name"],
            language=DEMO_TEMPLATE["language"],
            defaults={
                "status": "APPROVED",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": DEMO_TEMPLATE["body"]}],
            },
        )
        self.report(_("WhatsApp template %s") % template.name, created)

    def seed_bot_settings(self, admin: User) -> None:
        for key, (value, description) in BOT_SETTINGS.items():
            created = not BotConfiguration.objects.filter(key=key).exists()
            if created:
                bot_services.bot_config_set(
                    key=key, value=value, actor=admin, description=description
                )
            self.report(_("bot setting %s") % key, created)
        # The bot's demo flow (greeting, then the menu) built from those settings; idempotent.
        existed = Flow.objects.filter(is_default=True).exists()
        flow = bot_services.flow_ensure_demo()
        self.report(_("bot flow %s") % flow, not existed)

    def seed_conversations(
        self,
        account: WhatsAppAccount,
        departments: dict[str, Department],
        users: dict[str, User],
    ) -> None:
        if settings.WHATSAPP_ACCESS_TOKEN:
            # With a real Graph API token the agents' and bot's demo replies would be sent to
            # these (made-up, but dialable) numbers: no demo conversations then.
            self.stdout.write(
                "  "
                + _("demo conversations skipped: WHATSAPP_ACCESS_TOKEN is set (real WhatsApp).")
            )
            return
        for demo in CUSTOMERS:
            if Customer.objects.filter(wa_id__in=wa_id_variants(demo.wa_id)).exists():
                self.report(_("customer %s") % demo.name, False)
                continue
            customer = customer_upsert(wa_id=demo.wa_id, name=demo.name)
            # The story is scripted, the bot's lines included: the live bot sits it out.
            with override_settings(DOMAIN_EVENT_HANDLERS=_handlers_without_bot()):
                self.play(demo, customer, account, departments, users)
            self.report(
                _("customer %(name)s (%(scenario)s)")
                % {"name": demo.name, "scenario": ConversationStatus(demo.scenario).label},
                True,
            )

    def play(
        self,
        demo: DemoCustomer,
        customer: Customer,
        account: WhatsAppAccount,
        departments: dict[str, Department],
        users: dict[str, User],
    ) -> None:
        """Replay one customer's story through the services."""
        conversation, _new = services.conversation_open_for_customer(
            customer=customer, whatsapp_account_id=account.pk
        )
        counter = iter(range(1, 100))

        def customer_says(body: str) -> None:
            services.message_record_inbound(
                conversation=conversation,
                type=MessageType.TEXT,
                body=body,
                wa_message_id=f"wamid.demo.{demo.wa_id}.{next(counter)}",
            )

        def bot_says(body: str) -> None:
            services.message_create_outbound(conversation=conversation, actor=None, body=body)

        def agent_says(agent: User, body: str) -> None:
            services.message_create_outbound(conversation=conversation, actor=agent, body=body)

        first_name = demo.name.split()[0]
        openers = {
            "bot": "Oi, boa tarde!",
            "pending": "Olá, estou sem acesso ao sistema desde ontem.",
            "open": "Oi! Meu pedido ainda não chegou.",
            "closed": "Bom dia, queria saber os preços dos planos.",
        }
        customer_says(openers[demo.scenario])
        bot_says(GREETING)
        bot_says(MENU_TEXT)
        if demo.scenario == "bot":
            return

        choice, department = {
            "pending": ("1", "Suporte"),
            "open": ("1", "Suporte"),
            "closed": ("2", "Vendas"),
        }[demo.scenario]
        customer_says(choice)
        services.conversation_route_to_department(
            conversation=conversation, department=departments[department], reason="menu"
        )
        bot_says(f"Certo! Você está na fila de {department}. Um atendente já vai falar com você.")
        if demo.scenario == "pending":
            return

        agent = users["ana"] if demo.scenario == "open" else users["bruno"]
        services.conversation_take_over(conversation=conversation, actor=agent)
        if demo.scenario == "open":
            agent_says(
                agent, f"Oi {first_name}, sou a Ana do Suporte. Pode me passar o número do pedido?"
            )
            customer_says("Claro, é o pedido 48213.")
            return

        agent_says(
            agent,
            f"Olá {first_name}! Sou o Bruno, de Vendas. Te enviei a tabela de planos por e-mail.",
        )
        customer_says("Recebi, obrigado!")
        services.conversation_close(conversation=conversation, actor=agent)
