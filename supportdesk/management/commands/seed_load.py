"""``manage.py seed_load``: a big desk for load tests and benchmarks (``bench/scale.py``).

    manage.py seed_load --conversations 100000 --messages-per 10 [--customers N] [--agents N]
                        [--departments N] [--tags N] [--seed N] [--rollups] [--i-know]

It makes departments (``Suporte``, ``Vendas``, ``Financeiro``, ``Cobrança``…), agents and a
supervisor (``…@seed-load.local``, no usable password), tags, customers, and conversations with
their messages and their history, spread over the last 90 days: most closed, the latest ones
with the bot, waiting in a queue or open. Every denormalised field is what the services would
have left (``last_message_at``, ``last_inbound_at``, ``first_response_at``, ``closed_at``,
``unread_count``), and each conversation's ``ConversationEvent`` rows (queued, taken over,
closed) are written, so ``--rollups`` (or ``manage.py reports_rebuild`` afterwards) derives the
reports' segments and daily roll-ups from them exactly as for a real desk.

On PostgreSQL the rows go in with COPY (psycopg 3 ``cursor.copy``), a chunk of conversations per
transaction, with a progress line per chunk: a million messages in about a minute on a small
box. Elsewhere (SQLite) ``bulk_create`` does the same, slower.

It refuses to touch a database that holds conversations or customers it did not make itself
(real data) unless ``--i-know`` (``--force``) is given. Its rows are recognisable: customers'
``bsuid`` starts with ``seed-load-``, conversations come through the number ``seed-load``.
"""

# Generated load-test data, not secrets: the standard generator, seeded, is what we want.
# ruff: noqa: S311

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import DateTimeField, Max, Model
from django.utils import timezone

from accounts.models import Role, User
from conversations.models import (
    Conversation,
    ConversationEvent,
    Customer,
    Message,
    Tag,
)
from departments.models import Department
from reports.services import segments_rebuild
from whatsapp.models import WhatsAppAccount

MARK = "seed-load-"  # customers' bsuid prefix
NUMBER = "seed-load"  # the business number's phone_number_id
EMAIL_DOMAIN = "seed-load.local"
DEPARTMENT_NAMES = ["Suporte", "Vendas", "Financeiro", "Cobrança", "Pós-venda", "Logística"]
TAG_NAMES = ["vip", "reclamação", "atraso", "reembolso", "boleto", "cancelamento", "novo", "b2b"]
TAG_COLORS = ["#2563eb", "#dc2626", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2"]
FIRST = ["Ana", "João", "Maria", "José", "Conceição", "Luís", "Fernanda", "Antônio", "Beatriz"]
FIRST += ["Márcio", "Letícia", "Sebastião", "Cláudia", "Otávio", "Júlia", "Raimundo", "Débora"]
LAST = ["Silva", "Souza", "Oliveira", "Araújo", "Gonçalves", "Lima", "Pereira", "Conceição"]
LAST += ["Magalhães", "Brandão", "Simões", "Gusmão", "Falcão", "Estêvão", "Assunção", "Peixoto"]
CUSTOMER_SAYS = [
    "Olá, preciso da segunda via do boleto",
    "Meu pedido ainda não chegou",
    "Quero cancelar a assinatura",
    "A entrega está atrasada há uma semana",
    "Não consigo acessar minha conta, esqueci a senha",
    "Gostaria de saber o preço do plano anual",
    "O produto veio com defeito, quero trocar",
    "Vocês emitem nota fiscal?",
    "Fui cobrado duas vezes no cartão",
    "Obrigado pela ajuda!",
    "Qual é o prazo de reembolso?",
    "Ainda estou aguardando retorno",
]
AGENT_SAYS = [
    "Olá! Vou verificar para você.",
    "Pode me informar o número do pedido?",
    "Já enviei a segunda via por e-mail.",
    "O reembolso é feito em até 7 dias úteis.",
    "Sua solicitação foi registrada, obrigado pela paciência.",
    "A transportadora confirmou a entrega para amanhã.",
    "Cancelamento concluído. Posso ajudar em algo mais?",
]
BOT_SAYS = "Olá! Escolha uma opção: 1 Suporte, 2 Vendas, 3 Financeiro"
SPAN = timedelta(days=90)


@dataclass
class Chunk:
    """The rows of a chunk of conversations, per table, as tuples in :data:`COLUMNS`' order."""

    customers: list[tuple[Any, ...]] = field(default_factory=list)
    conversations: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[Any, ...]] = field(default_factory=list)


COLUMNS: dict[str, tuple[type[Model], tuple[str, ...]]] = {
    "customers": (
        Customer,
        (
            "id",
            "created_at",
            "updated_at",
            "wa_id",
            "bsuid",
            "phone",
            "name",
            "notes",
            "name_set_by_desk",
        ),
    ),
    "conversations": (
        Conversation,
        (
            "id",
            "created_at",
            "updated_at",
            "status",
            "first_response_at",
            "closed_at",
            "last_inbound_at",
            "last_message_at",
            "unread_count",
            "assigned_to_id",
            "department_id",
            "whatsapp_account_id",
            "customer_id",
            "priority",
        ),
    ),
    "messages": (
        Message,
        (
            "conversation_id",
            "created_at",
            "updated_at",
            "direction",
            "sender",
            "sender_user_id",
            "type",
            "body",
            "status",
            "media_id",
            "media_file",
            "media_mime_type",
            "media_filename",
            "media_sha256",
            "error",
            "media_error",
            "send_attempts",
            "status_history",
        ),
    ),
    "events": (
        ConversationEvent,
        ("conversation_id", "kind", "actor_id", "before", "after", "created_at"),
    ),
    "tags": (Conversation.tags.through, ("conversation_id", "tag_id")),
}


@dataclass(frozen=True)
class Plan:
    conversations: int
    messages_per: int
    customers: int
    first_customer: int  # ids are allocated past the existing ones
    first_conversation: int
    account: int
    agents: dict[int, list[int]]  # department id -> agent ids
    tags: list[int]
    now: datetime
    seed: int


def _state(status: str, department: int | None, agent: int | None) -> dict[str, Any]:
    return {"status": status, "department": department, "assigned_to": agent}


def _customer_row(plan: Plan, index: int) -> tuple[Any, ...]:
    pk = plan.first_customer + index
    rng = random.Random(plan.seed * 7_919 + pk)
    digits = f"55{11 + pk % 89:02d}9{pk:08d}"
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    created = plan.now - SPAN - timedelta(days=1)
    return (pk, created, created, digits, f"{MARK}{pk}", "+" + digits, name, "", False)


def _status(rng: random.Random, plan: Plan, index: int) -> str:
    """Closed, except (now and then) the latest conversation of a customer: one in progress per
    customer and number at most."""
    if index < plan.conversations - plan.customers:
        return "closed"
    active_share = min(1.0, 0.15 * plan.conversations / plan.customers)
    if rng.random() >= active_share:
        return "closed"
    return rng.choices(["bot", "pending", "open"], weights=[2, 3, 5])[0]


def _conversation(plan: Plan, index: int, chunk: Chunk) -> None:  # noqa: PLR0912, PLR0915 - one story
    """One conversation's rows: its messages, events and tags, and the row with the fields the
    services keep up to date."""
    pk = plan.first_conversation + index
    rng = random.Random(plan.seed * 1_000_003 + pk)
    status = _status(rng, plan, index)
    department = rng.choice(list(plan.agents)) if status != "bot" else None
    agent = (
        rng.choice(plan.agents[department]) if status in {"open", "closed"} and department else None
    )
    step = SPAN / plan.conversations
    at = plan.now - SPAN + step * index + timedelta(seconds=rng.randint(0, 59))
    created = at
    latest = plan.now - timedelta(seconds=30)
    gap = min(timedelta(minutes=10), (latest - created) / max(plan.messages_per, 1))
    last_in = last_out = first_response = None
    order = rng.randint(10_000, 99_999)
    unread = 0

    def message(direction: str, sender: str, body: str, user: int | None) -> None:
        nonlocal at, last_in, last_out, first_response, unread
        kind = "interactive" if sender == "bot" else "text"
        if direction == "in":
            last_in = at
            unread = unread + 1 if status != "closed" else 0
            state = "read" if status == "closed" else "received"
        else:
            last_out = at
            unread = 0
            state = "read"
            if sender == "agent" and first_response is None:
                first_response = at
        chunk.messages.append(
            (
                pk,
                at,
                at,
                direction,
                sender,
                user,
                kind,
                body,
                state,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                0,
                "[]",
            )
        )
        at += gap * (0.3 + rng.random() * 0.7)

    def event(kind: str, actor: int | None, before: dict[str, Any], after: dict[str, Any]) -> None:
        chunk.events.append((pk, kind, actor, before, after, at))

    customer_text = f"{rng.choice(CUSTOMER_SAYS)} (pedido {order})"
    message("in", "customer", customer_text, None)
    total = plan.messages_per
    if total > 1:
        message("out", "bot", BOT_SAYS, None)
    if status != "bot" and total > 2:
        message("in", "customer", str(1 + list(plan.agents).index(department or 0) % 3), None)
    if status != "bot":
        event("queued", None, _state("bot", None, None), {**_state("pending", department, None)})
    if agent is not None:
        event(
            "taken_over",
            agent,
            _state("pending", department, None),
            _state("open", department, agent),
        )
    written = min(total, 2) + (1 if status != "bot" and total > 2 else 0)
    for turn in range(total - written):
        if status == "bot":
            if turn % 2:
                message("out", "bot", BOT_SAYS, None)
            else:
                message("in", "customer", rng.choice(CUSTOMER_SAYS), None)
        elif status == "pending" or turn % 2:
            message("in", "customer", rng.choice(CUSTOMER_SAYS), None)
        else:
            message("out", "agent", rng.choice(AGENT_SAYS), agent)
    last = at - gap * 0.3
    closed_at = None
    if status == "closed":
        closed_at = last + timedelta(minutes=1)
        at = closed_at
        event(
            "closed", agent, _state("open", department, agent), _state("closed", department, agent)
        )
        unread = 0
    last_activity = max(t for t in (last_in, last_out, closed_at) if t is not None)
    chunk.conversations.append(
        (
            pk,
            created,
            last_activity,
            status,
            first_response,
            closed_at,
            last_in,
            last_activity,
            unread,
            agent,
            department,
            plan.account,
            plan.first_customer + index % plan.customers,
            rng.choices(["low", "normal", "high", "urgent"], weights=[1, 12, 3, 1])[0],
        )
    )
    if plan.tags and rng.random() < 0.2:
        for tag in rng.sample(plan.tags, k=min(len(plan.tags), rng.randint(1, 2))):
            chunk.tags.append((pk, tag))


def chunks(plan: Plan, size: int) -> Iterator[tuple[int, Chunk]]:
    """The rows, ``size`` conversations at a time (the customers come with the first chunks)."""
    for begin in range(0, plan.conversations, size):
        chunk = Chunk()
        end = min(begin + size, plan.conversations)
        for index in range(begin, min(end, plan.customers)):
            chunk.customers.append(_customer_row(plan, index))
        for index in range(begin, end):
            _conversation(plan, index, chunk)
        yield end, chunk
    for index in range(plan.conversations, plan.customers):  # more customers than conversations
        chunk = Chunk(customers=[_customer_row(plan, index)])
        yield plan.conversations, chunk


def _write_copy(chunk: Chunk) -> None:
    from psycopg.types.json import Jsonb  # noqa: PLC0415 - PostgreSQL only

    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        for name, (model, columns) in COLUMNS.items():
            rows = getattr(chunk, name)
            if not rows:
                continue
            table = model._meta.db_table
            with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                if name == "events":
                    for row in rows:
                        copy.write_row((*row[:3], Jsonb(row[3]), Jsonb(row[4]), row[5]))
                else:
                    for row in rows:
                        copy.write_row(row)


@contextmanager
def _own_timestamps(model: type[Model]) -> Iterator[None]:
    """``bulk_create`` would stamp ``auto_now``/``auto_now_add`` fields with the present: the
    generated history keeps its own moments (the ORM path only; COPY writes them as they are)."""
    fields = [f for f in model._meta.concrete_fields if isinstance(f, DateTimeField)]
    saved = [(f, f.auto_now, f.auto_now_add) for f in fields]
    for f in fields:
        f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def _write_orm(chunk: Chunk) -> None:
    for name, (model, columns) in COLUMNS.items():
        rows = getattr(chunk, name)
        if name == "messages":
            rows = [(*row[:-1], []) for row in rows]
        objects = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        with _own_timestamps(model):
            model._default_manager.bulk_create(objects, batch_size=500)  # type: ignore[attr-defined]


def _reset_sequences() -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (Customer, Conversation):
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {table}))",  # noqa: S608
                [table],
            )


class Command(BaseCommand):
    help = "Fill the database with a big generated desk (load tests, bench/scale.py)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--conversations", type=int, default=1000)
        parser.add_argument("--messages-per", type=int, default=10, dest="messages_per")
        parser.add_argument("--customers", type=int, help="default: 60%% of the conversations")
        parser.add_argument("--departments", type=int, default=4)
        parser.add_argument("--agents", type=int, default=20)
        parser.add_argument("--tags", type=int, default=len(TAG_NAMES))
        parser.add_argument("--seed", type=int, default=15)
        parser.add_argument("--chunk-size", type=int, default=5000, dest="chunk_size")
        parser.add_argument(
            "--rollups",
            action="store_true",
            help="then derive the reports' segments and roll-ups (manage.py reports_rebuild)",
        )
        parser.add_argument(
            "--i-know",
            "--force",
            action="store_true",
            dest="force",
            help="run even though the database holds conversations or customers of its own",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, per = options["conversations"], options["messages_per"]
        if count < 1 or per < 1 or options["agents"] < 1 or options["departments"] < 1:
            raise CommandError("--conversations, --messages-per, --agents, --departments: ≥ 1")
        if not options["force"] and self._real_data():
            raise CommandError(
                "This database holds conversations or customers that seed_load did not make "
                "(real data?). Refusing to add load-test rows to it; pass --i-know to do it anyway."
            )
        plan = self._plan(options)
        begun = time.perf_counter()
        write = _write_copy if connection.vendor == "postgresql" else _write_orm
        messages = 0
        for done, chunk in chunks(plan, max(1, options["chunk_size"])):
            with transaction.atomic():
                write(chunk)
            messages += len(chunk.messages)
            elapsed = time.perf_counter() - begun
            self.stdout.write(
                f"{done:>9}/{count} conversations, {messages:>10} messages  "
                f"{elapsed:6.1f} s  ({messages / max(elapsed, 1e-9):,.0f} messages/s)"
            )
        _reset_sequences()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for model in (Customer, Conversation, Message, ConversationEvent):
                    cursor.execute(f"ANALYZE {model._meta.db_table}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {count} conversations, {messages} messages, {plan.customers} customers "
                f"in {time.perf_counter() - begun:.1f} s."
            )
        )
        if options["rollups"]:
            first = plan.first_conversation
            segments_rebuild(
                conversation_ids=range(first, first + count),
                chunk_size=1000,
                progress=lambda d, t: self.stdout.write(f"roll-ups {d}/{t} conversations"),
            )
        else:
            self.stdout.write("Reports: run `manage.py reports_rebuild` (or pass --rollups).")

    @staticmethod
    def _real_data() -> bool:
        return (
            Customer.objects.exclude(bsuid__startswith=MARK).exists()
            or Conversation.objects.exclude(whatsapp_account__phone_number_id=NUMBER).exists()
        )

    def _plan(self, options: dict[str, Any]) -> Plan:
        count = options["conversations"]
        with transaction.atomic():
            account, _ = WhatsAppAccount.objects.get_or_create(
                phone_number_id=NUMBER, defaults={"name": "Carga (seed_load)"}
            )
            departments = []
            for n in range(options["departments"]):
                name = DEPARTMENT_NAMES[n] if n < len(DEPARTMENT_NAMES) else f"Fila {n + 1}"
                department, _ = Department.objects.get_or_create(name=name)
                departments.append(department)
            agents: dict[int, list[int]] = {d.pk: [] for d in departments}
            for n in range(options["agents"]):
                email = f"agente{n + 1}@{EMAIL_DOMAIN}"
                user = User.objects.filter(email=email).first()
                if user is None:
                    user = User.objects.create_user(email, None, name=f"Agente de carga {n + 1}")
                department = departments[n % len(departments)]
                user.departments.add(department)
                agents[department.pk].append(user.pk)
            if not User.objects.filter(email=f"supervisor@{EMAIL_DOMAIN}").exists():
                User.objects.create_user(
                    f"supervisor@{EMAIL_DOMAIN}",
                    None,
                    name="Supervisão de carga",
                    role=Role.SUPERVISOR,
                )
            tags = []
            for n in range(options["tags"]):
                name = TAG_NAMES[n] if n < len(TAG_NAMES) else f"carga-{n + 1}"
                tag = Tag.objects.filter(name__iexact=name).first() or Tag.objects.create(
                    name=name, color=TAG_COLORS[n % len(TAG_COLORS)]
                )
                tags.append(tag.pk)
        agents = {pk: ids for pk, ids in agents.items() if ids}
        return Plan(
            conversations=count,
            messages_per=options["messages_per"],
            customers=max(1, options["customers"] or count * 6 // 10),
            first_customer=(Customer.objects.aggregate(m=Max("pk"))["m"] or 0) + 1,
            first_conversation=(Conversation.objects.aggregate(m=Max("pk"))["m"] or 0) + 1,
            account=account.pk,
            agents=agents,
            tags=tags,
            now=timezone.now(),
            seed=options["seed"],
        )
