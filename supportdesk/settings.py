"""SupportDesk settings.

Everything comes from the environment (django-environ, one ``env``). With nothing set the desk runs
embedded: SQLite, in-memory channel layer, eager Celery tasks, local-memory cache and the sandbox
WhatsApp transport. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-dev-only-supportdesk-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (production). "
        "Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS", default=["http://localhost:8000", "http://127.0.0.1:8000"]
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "channels",
    "django_htmx",
    "accounts",
    "departments",
    "conversations",
    "botflows",
    "whatsapp",
    "reports",
    "integrations",
    "supportdesk",  # the project's top: demo data (seed_demo), which alone knows every app
]

# Who reacts to the desk's domain events (common/events.py), in this order; an app adds its
# handler here instead of being imported by the app that emits.
DOMAIN_EVENT_HANDLERS = [
    "conversations.handlers.RealtimeHandler",
    # Automatic assignment (contract §10): queues a conversation entered, agents freed.
    "conversations.handlers.AssignmentHandler",
    "whatsapp.handlers.ChannelSender",
    "botflows.handlers.BotHandler",
    # Segments and roll-ups of the reports, written inside the emitting transaction.
    "reports.handlers.SegmentRecorder",
    # Outgoing webhooks (contract §8): writes its outbox rows inside the emitting transaction.
    "integrations.handlers.WebhookHandler",
]
# The channel a conversation's messages go through (conversations/channels.py), the way Django
# finds EMAIL_BACKEND: the core validates and asks what it can do through this port.
CONVERSATION_CHANNEL = "whatsapp.channel.WhatsAppChannel"

MIDDLEWARE = [
    # First: the request id (X-Request-ID, on log lines and tasks) and the HTTP metrics, so that
    # redirects and errors of every middleware below are counted too (common/middleware.py).
    "common.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, and sync-only: under ASGI the whole chain then runs in one thread (a sync-only
    # middleware higher up makes Django hop loop -> thread -> loop around it, and an async chain
    # of Django's MiddlewareMixin hops per hook). Measured on /bench/floor with one uvicorn
    # worker: 4.4 ms CPU per request, against 5.0 ms with this one in the middle of the list and
    # 6.1 ms with every middleware async-capable.
    "common.api.ApiJsonErrorsMiddleware",
]

ROOT_URLCONF = "supportdesk.urls"
ASGI_APPLICATION = "supportdesk.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# PostgreSQL goes through Django's built-in psycopg 3 pool: under ASGI every request runs in its
# own context, so CONN_MAX_AGE would keep one connection per context and exhaust the server.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        "timeout": env.int("DB_POOL_TIMEOUT", default=10),
    }
# A PostgreSQL replica for the heavy reads (search, reports, the CSV export, the board):
# common/replica.py. Writes, and reads inside a write's transaction, stay on the primary.
READ_REPLICA = bool(env.str("DATABASE_REPLICA_URL", default=""))
if READ_REPLICA:
    _replica = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"] = {  # the primary's pool settings, the replica's own URL options
        **_replica,
        "CONN_MAX_AGE": DATABASES["default"].get("CONN_MAX_AGE", 0),
        "OPTIONS": {**DATABASES["default"].get("OPTIONS", {}), **_replica.get("OPTIONS", {})},
    }
DATABASE_ROUTERS = ["common.replica.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache -------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CHANNEL_LAYER_REDIS_OPTIONS = {"socket_timeout": 30}  # seconds, past channels-redis's 5 s pop
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default: the layer's blocking
                # 5 s BZPOPMIN answered a moment late then raised in every idle socket's
                # consumer and closed it (1011). The read waits longer than the pop.
                "hosts": [{"address": REDIS_URL, **CHANNEL_LAYER_REDIS_OPTIONS}],
                "prefix": env.str("CHANNELS_PREFIX", "supportdesk"),
            },
        }
    }
    CACHES = {
        "default": {
            # Django's RedisCache, where an unreachable Redis is a miss, not a 500.
            "BACKEND": "common.cache.FailSoftRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "supportdesk",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Without Redis, tasks run eagerly; the in-memory transport is named with a host so kombu does
# not warn that none was supplied.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# Several desks (or test runs) can share one Redis, each on its own queue.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
# Webhook intake has a queue of its own that every worker empties before any other: a burst of
# bot turns and sends never delays the storing (and showing) of what customers write.
CELERY_TASK_QUEUES = [
    Queue(f"{CELERY_TASK_DEFAULT_QUEUE}.intake"),  # supportdesk.celery.intake_queue
    Queue(CELERY_TASK_DEFAULT_QUEUE),
    # Outgoing webhook deliveries (supportdesk.celery.webhooks_queue), last: a slow or failing
    # receiver never holds up the intake or the bot (run workers with `-Q <queue>.webhooks` to
    # give them processes of their own).
    Queue(f"{CELERY_TASK_DEFAULT_QUEUE}.webhooks"),
]
CELERY_TASK_ROUTES = ("supportdesk.celery.route_task",)
CELERY_BROKER_TRANSPORT_OPTIONS = {"queue_order_strategy": "priority"}
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task at a time per process: a drain is never stuck behind tasks a process reserved.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers log through LOGGING below (one format everywhere, LOG_FORMAT=json included), with the
# request id of the request that queued each task (common/context.py, supportdesk/celery.py).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# `celery -A supportdesk beat` (one process): what a broker outage left behind.
CELERY_BEAT_SCHEDULE = {
    # Safety net: deliveries left 'received' (broker down when they arrived, a lost task).
    "whatsapp-webhook-drain": {
        "task": "whatsapp.tasks.webhook_drain",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    "whatsapp-outbound-requeue-stuck": {
        "task": "whatsapp.tasks.outbound_requeue_stuck",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Pending webhook deliveries whose task was lost (broker outage, purge) are queued again.
    "integrations-webhook-deliveries-sweep": {
        "task": "integrations.tasks.webhook_deliveries_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The admins' "waiting longer than N minutes" priority rules.
    "conversations-priority-rules-sweep": {
        "task": "conversations.tasks.priority_rules_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Automatic assignment's safety net: what waits in round-robin/least-busy queues.
    "conversations-assignment-sweep": {
        "task": "conversations.tasks.assignment_sweep_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Scheduled messages whose send_at has come go out (contract §10).
    "conversations-scheduled-messages-send": {
        "task": "conversations.tasks.scheduled_messages_send",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    # Conversations idle while waiting for the customer, per department's auto_close_minutes.
    "conversations-auto-close-sweep": {
        "task": "conversations.tasks.auto_close_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The admins are e-mailed (once per incident) when the webhook intake falls behind.
    "whatsapp-intake-lag-check": {
        "task": "whatsapp.tasks.intake_lag_check",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
# Every interval of the schedule (and its ``expires``) multiplied by this: 1 in production; a
# test of the real beat → broker → worker path shortens it (0.05: the 15 s sender runs every
# 0.75 s, the minute sweeps every 3 s).
BEAT_INTERVAL_SCALE = env.float("BEAT_INTERVAL_SCALE", default=1.0)
if BEAT_INTERVAL_SCALE <= 0:
    raise ImproperlyConfigured("BEAT_INTERVAL_SCALE must be a positive number.")
if BEAT_INTERVAL_SCALE != 1.0:
    for _entry in CELERY_BEAT_SCHEDULE.values():
        _entry["schedule"] = float(_entry["schedule"]) * BEAT_INTERVAL_SCALE  # type: ignore[arg-type]
        _options: dict[str, float] = _entry.get("options", {})  # type: ignore[assignment]
        if "expires" in _options:
            _options["expires"] = float(_options["expires"]) * BEAT_INTERVAL_SCALE
# Without a broker (the embedded default) the web process runs this schedule itself, in a
# thread (supportdesk/scheduler.py): the demo's timers fire like production's. Never in
# production, where `make beat` runs celery beat; never in tests or management commands.
INPROCESS_BEAT = env.bool("INPROCESS_BEAT", default=CELERY_TASK_ALWAYS_EAGER)

# --- Auth --------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.DeskJWTAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "common.api.DeskPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.api_exception_handler",
    # Rate limits, "N/s|min|hour|day" (supportdesk/api.py). The whole API per user or per IP;
    # logins per IP (every attempt) and per account (failed attempts).
    "DEFAULT_THROTTLE_CLASSES": [
        "common.api.ApiUserRateThrottle",
        "common.api.ApiAnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("RATE_LIMIT_USER", default="600/min"),
        "anon": env.str("RATE_LIMIT_ANON", default="60/min"),
        "login_ip": env.str("RATE_LIMIT_LOGIN_IP", default="20/min"),
        "login_account": env.str("RATE_LIMIT_LOGIN_ACCOUNT", default="5/min"),
    },
    # Client IPs come from X-Forwarded-For as set by this many trusted reverse proxies.
    "NUM_PROXIES": env.int("RATE_LIMIT_NUM_PROXIES", default=0 if DEBUG else 1),
}
# The search (docs/search.md): each search runs under this PostgreSQL statement_timeout (0: none);
# a cancelled one answers 503 "search_timeout" (the console says so).
SEARCH_STATEMENT_TIMEOUT_MS = env.int("SEARCH_STATEMENT_TIMEOUT_MS", default=2000)
# While the WhatsApp intake takes a burst (50+ deliveries a second in a process), searches start
# one at a time across the desk, one every this many ms (0: no turns), each waiting up to
# SEARCH_BURST_WAIT_SECONDS for its turn, else 503 "search_busy". The port the search asks.
SEARCH_BURST_INTERVAL_MS = env.int("SEARCH_BURST_INTERVAL_MS", default=400)
SEARCH_BURST_WAIT_SECONDS = env.float("SEARCH_BURST_WAIT_SECONDS", default=5.0)
SEARCH_YIELD_TO = "whatsapp.services.intake.webhook_intake_burst"
# Big lists count their rows up to this many, then say "N+" (``count_capped``) instead of an exact
# COUNT(*) over every row at each page (GET /conversations, the console's tabs).
LIST_COUNT_CAP = env.int("LIST_COUNT_CAP", default=1_000)
# A search counts its results up to this (docs/search.md): past it `count_capped` is true.
SEARCH_COUNT_CAP = env.int("SEARCH_COUNT_CAP", default=1_000)
# Customer satisfaction (conversations/services/csat.py): asked when a conversation an agent
# handled is closed inside the 24-hour window; a reply later than this many hours is no score.
CSAT_ENABLED = env.bool("CSAT_ENABLED", default=True)
CSAT_REPLY_HOURS = env.int("CSAT_REPLY_HOURS", default=24)
# The session login forms (console /login/, /admin/login/): failed attempts allowed per window
# (accounts/login_throttle.py) for an account from one IP, an account from anywhere, and one IP.
LOGIN_FAILURES_ACCOUNT_IP = (env.int("LOGIN_FAILURES_ACCOUNT_IP", default=5), 15 * 60)
LOGIN_FAILURES_ACCOUNT = (env.int("LOGIN_FAILURES_ACCOUNT", default=100), 60 * 60)
LOGIN_FAILURES_IP = (env.int("LOGIN_FAILURES_IP", default=50), 15 * 60)
# Request size limits: non-file bodies (JSON, form fields; WhatsApp webhooks are up to 3 MB) and
# files uploaded with a message (API_UPLOAD_MAX_BYTES, checked by the messages API).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("REQUEST_MAX_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
DATA_UPLOAD_MAX_NUMBER_FILES = 5
API_UPLOAD_MAX_BYTES = env.int("API_UPLOAD_MAX_BYTES", default=16 * 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.models.Role",
        "ApiKeyRoleEnum": "accounts.models.API_KEY_ROLE_CHOICES",
        "ConversationStatusEnum": "conversations.models.ConversationStatus",
        "MessageStatusEnum": "conversations.models.MessageStatus",
        "DeliveryStatusEnum": "integrations.models.DeliveryStatus",
    },
    "TITLE": "SupportDesk API",
    "DESCRIPTION": "WhatsApp customer-support desk: conversations, messages, users, departments.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc served from our own static files (offline, CSP 'self').
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["common.api.schema_without_slash_twins"],
}


def _duration(value: str) -> timedelta:
    """Parse ``15m``, ``7d``, ``12h``, ``30s`` or plain seconds."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    value = value.strip().lower()
    if value[-1:] in units:
        return timedelta(**{units[value[-1]]: float(value[:-1])})
    return timedelta(seconds=float(value))


SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": _duration(env.str("JWT_ACCESS_LIFETIME", default="15m")),
    "REFRESH_TOKEN_LIFETIME": _duration(env.str("JWT_REFRESH_LIFETIME", default="7d")),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    # Tokens carry a hash of the password hash: a password change revokes them all.
    "CHECK_REVOKE_TOKEN": True,
}

CORS_ALLOWED_ORIGINS = env.list(
    "CORS_ALLOWED_ORIGINS", default=[env.str("FRONTEND_URL")] if env.str("FRONTEND_URL", "") else []
)

# --- WhatsApp / OpenAI -------------------------------------------------------------------------
WHATSAPP_API_URL = env.str("WHATSAPP_API_URL", default="https://graph.facebook.com/v25.0")
WHATSAPP_PHONE_NUMBER_ID = env.str("WHATSAPP_PHONE_NUMBER_ID", default="")
WHATSAPP_ACCESS_TOKEN = env.str("WHATSAPP_ACCESS_TOKEN", default="")
WHATSAPP_APP_SECRET = env.str("WHATSAPP_APP_SECRET", default="")
WEBHOOK_VERIFY_TOKEN = env.str("WEBHOOK_VERIFY_TOKEN", default="")
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
# Hosts media is ever downloaded from, besides WHATSAPP_API_URL's (no SSRF through payload URLs).
WHATSAPP_MEDIA_HOSTS = env.list("WHATSAPP_MEDIA_HOSTS", default=["lookaside.fbsbx.com"])
# Per-type download caps in bytes (Meta's limits); override with e.g. WHATSAPP_MEDIA_MAX_IMAGE.
WHATSAPP_MEDIA_MAX_BYTES = {
    kind: env.int(f"WHATSAPP_MEDIA_MAX_{kind.upper()}", default=default)
    for kind, default in {
        "image": 5 * 1024 * 1024,
        "video": 16 * 1024 * 1024,
        "audio": 16 * 1024 * 1024,
        "document": 100 * 1024 * 1024,
        "sticker": 500 * 1024,
    }.items()
}
# Deliveries a webhook drain task stores together (one transaction, one INSERT of messages).
WHATSAPP_INTAKE_BATCH = env.int("WHATSAPP_INTAKE_BATCH", default=300)
WHATSAPP_WEBHOOK_MAX_BODY = env.int("WHATSAPP_WEBHOOK_MAX_BODY", default=3 * 1024 * 1024)
WHATSAPP_CONNECT_TIMEOUT = env.float("WHATSAPP_CONNECT_TIMEOUT", default=5.0)
WHATSAPP_READ_TIMEOUT = env.float("WHATSAPP_READ_TIMEOUT", default=30.0)
# Conversations one batch of sends goes to at once (threads of a worker process, each with its
# kept-alive connection to the Graph API; a conversation's messages go one after another).
WHATSAPP_SEND_CONCURRENCY = env.int("WHATSAPP_SEND_CONCURRENCY", default=8)
# --- Outgoing webhooks (integrations) -------------------------------------------------------
# Seconds to connect and to wait for the answer of a webhook receiver (and the bot's http node).
OUTGOING_WEBHOOK_TIMEOUT = env.float("OUTGOING_WEBHOOK_TIMEOUT", default=10.0)
# Deliver to loopback, private and link-local addresses too (a receiver on this host or network).
OUTGOING_WEBHOOKS_ALLOW_PRIVATE = env.bool("OUTGOING_WEBHOOKS_ALLOW_PRIVATE", default=False)
# Attempts in flight at once per subscription (0: no cap): a slow receiver gets this many worker
# threads, never all of them, so every other subscriber's deliveries keep flowing.
OUTGOING_WEBHOOKS_MAX_IN_FLIGHT = env.int("OUTGOING_WEBHOOKS_MAX_IN_FLIGHT", default=8)
# While the intake is busy (a burst of WhatsApp deliveries being stored), webhook deliveries wait
# up to this many seconds (0: never), so that acknowledging Meta and storing what customers write
# come first. The port the webhooks ask (integrations may not import the channel).
OUTGOING_WEBHOOKS_YIELD_SECONDS = env.float("OUTGOING_WEBHOOKS_YIELD_SECONDS", default=10.0)
OUTGOING_WEBHOOKS_YIELD_TO = "whatsapp.services.intake.webhook_intake_busy"

OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or None
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")

# --- i18n --------------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="pt-br")
LANGUAGES = [("pt-br", _("Portuguese (Brazil)")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="America/Sao_Paulo")
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security ----------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Sessions are read from the cache (Redis in production; written through to the database, which
# stays the truth when Redis is away): every console page read its session row first.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# Django 6's Content Security Policy (django.middleware.csp). Scripts only from our own origin or
# with the per-request nonce ({{ csp_nonce }}); no inline event handlers, no framing.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "media-src": [CSP.SELF, "blob:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "worker-src": [CSP.SELF, "blob:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # The load balancer's and Prometheus's scrapes reach the server processes directly.
    SECURE_REDIRECT_EXEMPT = [r"^health/?$", r"^metrics/?$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- E-mail: alerts to the admins (e.g. Meta refusing the access token) ---------------------
# ADMINS: comma list of addresses. EMAIL_URL: smtp://user:password@host:25, smtp+tls://...:587,
# smtp+ssl://...:465, or consolemail:// (the default under DEBUG: printed, not sent).
ADMINS = env.list("ADMINS", default=[])
SERVER_EMAIL = env.str("SERVER_EMAIL", default="supportdesk@localhost")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=SERVER_EMAIL)
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": (
            {
                "host": _email.get("EMAIL_HOST") or "localhost",
                "port": _email.get("EMAIL_PORT") or 25,
                "username": _email.get("EMAIL_HOST_USER") or "",
                "password": _email.get("EMAIL_HOST_PASSWORD") or "",
                "use_tls": bool(_email.get("EMAIL_USE_TLS")),
                "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
                "timeout": 10,
            }
            if _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
            else {}
        ),
    }
}

# --- Operability (contract §11, docs/operations.md) -------------------------------------------
# The admins are e-mailed when the oldest webhook delivery not processed yet is older than this
# (seconds; 0 turns the alert off). Once per incident: again only after the lag went back under.
INTAKE_LAG_ALERT_SECONDS = env.int("INTAKE_LAG_ALERT_SECONDS", default=300)
# GET /metrics answers only with "Authorization: Bearer <METRICS_TOKEN>"; unset: 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# What /metrics computes when scraped (each app's own; common/metrics.py). Counters and
# histograms are counted where things happen; with PROMETHEUS_MULTIPROC_DIR set (a directory
# every server and worker process of the host shares, emptied at start) they add up over all.
METRICS_COLLECTORS = [
    "whatsapp.metrics.ChannelCollector",
    "integrations.metrics.OutboxCollector",
    "supportdesk.metrics.CeleryQueuesCollector",
]

# LOG_FORMAT=json: one JSON object per line (python-json-logger), with request_id and, where
# known, user_id, conversation_id, event_id, task_id (common/logs.py). Otherwise plain text.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "common.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# SENTRY_DSN: errors (and, with SENTRY_TRACES_SAMPLE_RATE, a share of traces) go to Sentry, from
# the web processes and the Celery workers alike. Unset: the SDK is not even started.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        # No e-mail addresses or cookies, and no request bodies (customers' messages, webhooks).
        send_default_pii=False,
        max_request_body_size="never",
    )
