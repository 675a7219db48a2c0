from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.models import TimeStampedModel


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    SUPERVISOR = "supervisor", _("Supervisor")
    AGENT = "agent", _("Agent")


# What a supervisor may do in the back office: look at everything about conversations and the
# WhatsApp channel, and act on conversations (close, transfer). No user/department/bot admin.
SUPERVISOR_PERMISSIONS = frozenset(
    {
        "conversations.view_customer",
        "conversations.change_customer",
        "conversations.view_conversation",
        "conversations.change_conversation",
        "conversations.view_message",
        "conversations.view_conversationtransfer",
        "conversations.view_conversationevent",
        "conversations.view_conversationnote",
        "conversations.view_tag",
        "conversations.view_priorityrule",
        "departments.view_department",
        "reports.view_goal",
        "accounts.view_user",
        "whatsapp.view_whatsappaccount",
        "whatsapp.view_webhookevent",
    }
)


class Availability(models.TextChoices):
    """Whether an agent takes new conversations from automatic assignment (contract §10)."""

    AVAILABLE = "available", _("Available")
    AWAY = "away", _("Away")


DEFAULT_MAX_CONVERSATIONS = 5


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra_fields: Any) -> "User":
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(
        self, email: str, password: str | None = None, **extra_fields: Any
    ) -> "User":
        extra_fields["role"] = Role.ADMIN
        extra_fields["is_superuser"] = True
        extra_fields.setdefault("name", email.split("@", maxsplit=1)[0])
        return self.create_user(email, password, **extra_fields)

    def people(self) -> "models.QuerySet[User]":
        """The people who work the desk: every user but the service accounts of API keys."""
        return self.get_queryset().filter(is_service_account=False)


class User(AbstractBaseUser, PermissionsMixin, TimeStampedModel):
    """A person who works the desk. Logs in by e-mail; what they may do follows from ``role``."""

    email = models.EmailField(_("e-mail"), unique=True)
    name = models.CharField(_("name"), max_length=150)
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.AGENT)
    departments = models.ManyToManyField(
        "departments.Department",
        through="UserDepartment",
        related_name="members",
        blank=True,
        verbose_name=_("departments"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    is_service_account = models.BooleanField(
        _("integration account"),
        default=False,
        editable=False,
        help_text=_("The principal an API key acts as: never logs in, never shown as an agent."),
    )
    # How the console tells this person a customer wrote while they look elsewhere (the title
    # badge always does): a short sound, a desktop notification (the browser asks on a click).
    notify_sound = models.BooleanField(_("notification sound"), default=False)
    notify_desktop = models.BooleanField(_("desktop notifications"), default=False)
    # Automatic assignment (contract §10): how many open conversations it gives this person at
    # most, and whether they take new ones now (the agent switches it in the console).
    max_conversations = models.PositiveSmallIntegerField(
        _("maximum conversations"),
        default=DEFAULT_MAX_CONVERSATIONS,
        validators=[MinValueValidator(1)],
        help_text=_("Automatic assignment gives this person at most this many open conversations."),
    )
    availability = models.CharField(
        _("availability"),
        max_length=10,
        choices=Availability.choices,
        default=Availability.AVAILABLE,
        help_text=_("Away: automatic assignment gives this person no new conversations."),
    )
    # The agent's name on the first line of each free-form text they send ("*Ana:*").
    signature_enabled = models.BooleanField(_("sign my messages"), default=False)

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["name"]

    class Meta:
        ordering = ["name", "email"]
        verbose_name = _("user")
        verbose_name_plural = _("users")
        indexes: ClassVar = [
            models.Index(fields=["role", "is_active"], name="user_role_active_idx")
        ]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(max_conversations__gte=1), name="user_max_conversations_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(availability__in=["available", "away"]),
                name="user_availability_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_supervisor(self) -> bool:
        return self.role == Role.SUPERVISOR

    @property
    def is_agent(self) -> bool:
        return self.role == Role.AGENT

    @property
    def sees_everything(self) -> bool:
        """Admins and supervisors see every conversation; agents only their departments'."""
        return self.role in (Role.ADMIN, Role.SUPERVISOR)

    @property
    def is_staff(self) -> bool:  # the Django admin is for admins and supervisors
        return self.is_active and self.sees_everything

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        if not self.is_active:
            return False
        if self.role == Role.ADMIN or self.is_superuser:
            return True
        if self.role == Role.SUPERVISOR:
            return perm in SUPERVISOR_PERMISSIONS
        return False

    def has_module_perms(self, app_label: str) -> bool:
        if not self.is_active:
            return False
        if self.role == Role.ADMIN or self.is_superuser:
            return True
        if self.role == Role.SUPERVISOR:
            return any(p.startswith(f"{app_label}.") for p in SUPERVISOR_PERMISSIONS)
        return False


class UserDepartment(models.Model):
    """Which departments' queues a user works (the seed's ``user_departments``)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    department = models.ForeignKey(
        "departments.Department", on_delete=models.CASCADE, related_name="memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "user_departments"
        ordering = ["department__name"]
        verbose_name = _("department membership")
        verbose_name_plural = _("department memberships")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "department"], name="user_department_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} ∈ {self.department_id}"


class AuditAction(models.TextChoices):
    LOGIN_SUCCEEDED = "login_succeeded", _("Login succeeded")
    LOGIN_FAILED = "login_failed", _("Login failed")
    LOGIN_THROTTLED = "login_throttled", _("Login refused: too many failures")
    LOGOUT = "logout", _("Logout")
    USER_UPDATED = "user_updated", _("User updated")
    ROLE_CHANGED = "role_changed", _("Role changed")
    USER_DEACTIVATED = "user_deactivated", _("User deactivated")
    TRANSFER = "transfer", _("Conversation transferred")
    CONFIG_CHANGED = "config_changed", _("Configuration changed")
    API_KEY_CREATED = "api_key_created", _("API key created")
    API_KEY_REVOKED = "api_key_revoked", _("API key revoked")


class AuditLogEntry(models.Model):
    """Who did what, to what, from where: logins, role changes, transfers, configuration changes.

    Written only through ``accounts.services.audit_log_record``; never edited afterwards.
    """

    actor = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    action = models.CharField(_("action"), max_length=30, choices=AuditAction.choices)
    target_type = models.CharField(_("target type"), max_length=100, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_repr = models.CharField(_("target"), max_length=255, blank=True)
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        indexes: ClassVar = [
            models.Index(fields=["action", "created_at"], name="audit_action_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.target_repr}"


# Roles an integration key may act with (contract §8): never an agent's.
API_KEY_ROLES = (Role.ADMIN, Role.SUPERVISOR)
API_KEY_ROLE_CHOICES = [(role.value, role.label) for role in API_KEY_ROLES]


class ApiKey(TimeStampedModel):
    """An integration key (``Authorization: Api-Key <key>``), acting as its own service user.

    Only the SHA-256 of the key is stored: keys are 256-bit random values, so a fast hash is as
    safe as a password hash and lets one indexed query find the key. ``prefix`` (the key's first
    characters) tells keys apart in lists. Revoked keys are kept, marked, for the audit trail.
    """

    name = models.CharField(_("name"), max_length=100)
    role = models.CharField(
        _("role"),
        max_length=20,
        choices=API_KEY_ROLE_CHOICES,
    )
    prefix = models.CharField(_("prefix"), max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    user = models.OneToOneField(
        User,
        on_delete=models.PROTECT,
        related_name="api_key",
        verbose_name=_("acts as"),
        editable=False,
    )
    created_by = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked = models.BooleanField(_("revoked"), default=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(role__in=[role.value for role in API_KEY_ROLES]),
                name="api_key_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
