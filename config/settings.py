"""Settings for the lending service, read from the environment (12-factor).

The spec's variable names and defaults are kept (DJANGO_*, DATABASE_*, *_URL, LOG_LEVEL); everything
else is additive. With DJANGO_DEBUG false the service refuses to start without a secret key.
"""

from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from lending.observability import logs

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# --- Core -----------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false.")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Admin lockout after repeated failed logins (AXES_* below).
    "axes",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "lending",
    # SIP2 kiosk accounts (the gateway process, `python -m sip_gateway`, reads them).
    "sip_gateway",
]

MIDDLEWARE = [
    # First, so it sees every answer: a strict Content-Security-Policy, a page's one for the admin and docs.
    "lending.csp.ContentSecurityPolicyMiddleware",
    "lending.api.middleware.RequestIdMiddleware",
    # /health/* and /metrics answer here, before host validation and the HTTPS redirect.
    "lending.api.middleware.ProbeMiddleware",
    # One log line per request, with our request id and the duration (lending.observability.logs).
    "lending.observability.logs.RequestLogMiddleware",
    # A Host not in ALLOWED_HOSTS: JSON 400 `disallowed_host`, also in debug mode.
    "lending.api.middleware.AllowedHostMiddleware",
    "lending.api.middleware.BodySizeLimitMiddleware",
    # API views: undeclared query parameters (400) and addresses locked out after failed authentications.
    "lending.api.middleware.ApiRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, Swagger UI, ReDoc) served by the app itself in production.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Sessions, authentication and messages, for the admin's paths only (the API uses keys).
    "lending.api.admin_stack.AdminOnlyMiddleware",
    # The admin's change lists: a filter the database would choke on is a 400, not a crash.
    "lending.admin.filters.AdminFilterMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Answers by status, view and method, and their latency (the metrics the alerts and dashboard read).
    "lending.observability.request_metrics.RequestMetricsMiddleware",
    # Last, as django-axes asks: refuses a locked-out admin login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
# Every spec path is routed with and without its trailing slash, so no redirect is ever needed
# (a redirected POST would lose its body).
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# DATABASE_URL wins when set; otherwise the spec's DATABASE_* variables (SQLite by default).
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    DATABASES = {
        "default": {
            "ENGINE": env.str("DATABASE_ENGINE", default="django.db.backends.sqlite3"),
            "NAME": env.str("DATABASE_NAME", default=str(BASE_DIR / "db.sqlite3")),
            "USER": env.str("DATABASE_USER", default=""),
            "PASSWORD": env.str("DATABASE_PASSWORD", default=""),
            "HOST": env.str("DATABASE_HOST", default="localhost"),
            "PORT": env.str("DATABASE_PORT", default="5432"),
        }
    }


# The limits of every PostgreSQL session of the service, in ms (0: the server's default): a statement
# or a lock wait past its limit fails instead of holding a worker (and, for an ALTER TABLE, every
# request queued behind its lock). They travel as the connection's libpq `options`, which a pooler
# drops (PgBouncer's ignore_startup_parameters, which a CloudNativePG Pooler always sets): so the
# migration Job also makes them the role's own defaults (`manage.py apply_role_timeouts`), and every
# long-running process logs at start what is in force (lending/db_session.py). The migrate role runs
# with longer values (docker/entrypoint.sh).
DATABASE_SESSION_TIMEOUTS_MS: dict[str, int] = {
    "statement_timeout": env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=15000),
    "lock_timeout": env.int("DATABASE_LOCK_TIMEOUT_MS", default=5000),
}


def _tune_database(database: dict) -> None:
    """Connection settings that matter for correctness and speed, per backend."""
    if database["ENGINE"].endswith("sqlite3"):
        # BEGIN IMMEDIATE takes the write lock up front: two lends never both read "a copy is free"
        # and then race to upgrade their locks. The timeout makes writers queue instead of failing.
        # secure_delete zeroes what a DELETE or UPDATE frees, so an erased email is not left in the file.
        database.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON;",
            }
        )
    else:
        # A PostgreSQL connection costs more to open than a whole lend: keep it, check it is alive (by
        # its socket, without a round trip: lending/db/postgresql/base.py).
        if database["ENGINE"] == "django.db.backends.postgresql":
            database["ENGINE"] = "lending.db.postgresql"
        database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        database["CONN_HEALTH_CHECKS"] = True
        database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        _set_postgresql_timeouts(database["OPTIONS"])
        if DATABASE_PREPARED_STATEMENTS:
            _prepare_statements(database["OPTIONS"])


# A statement run often is parsed and planned once per connection, then only executed: psycopg binds
# the parameters server-side and sends a statement run more than PREPARE_AFTER times on a connection as
# a named prepared statement (a lend costs about half the PostgreSQL CPU, tools/bench/REPORT.md). psycopg
# forgets a connection's prepared statements at every rollback (a refused write is one), so they are
# prepared again from their second run, not their sixth (psycopg's default): with one refusal in ten
# lends that keeps most of the gain. Behind PgBouncer in transaction mode it needs PgBouncer >= 1.21 with
# max_prepared_statements set (k8s/examples/cloudnative-pg/pooler.yaml); behind an older pooler, False.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
PREPARE_AFTER = 1


def _prepare_statements(options: dict) -> None:
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", PREPARE_AFTER)


def _set_postgresql_timeouts(options: dict) -> None:
    """The session limits sent at connect time (libpq `options`)."""
    flags = [f"-c {name}={ms}" for name, ms in DATABASE_SESSION_TIMEOUTS_MS.items() if ms > 0]
    if flags:
        options["options"] = " ".join(filter(None, [options.get("options", ""), *flags]))


_tune_database(DATABASES["default"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- I18N / static --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Served by WhiteNoise. In production the files are collected at build time with hashed, compressed
# names; in debug mode (tests, `make run`) they are served from the apps without collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- The admin (staff) ----------------------------------------------------------------------------
# ADMIN_ENABLED=false removes the admin (deployments that manage staff elsewhere); ADMIN_URL moves it.
ADMIN_ENABLED = env.bool("ADMIN_ENABLED", default=True)
ADMIN_URL = env.str("ADMIN_URL", default="admin/").strip("/") + "/"
# The admin's session, auth and messages middleware are present, inside AdminOnlyMiddleware
# (lending/api/admin_stack.py), which these checks cannot see.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]
if ADMIN_URL == "/":
    raise ImproperlyConfigured("ADMIN_URL must not be empty (set ADMIN_ENABLED=false to remove the admin).")
# django-axes first: it refuses a locked-out login before the password is checked. Then the model
# backend, which keeps API keys' permissions for superusers (lending.staff_auth).
AUTHENTICATION_BACKENDS = ["lending.staff_auth.AxesBackend", "lending.staff_auth.StaffModelBackend"]
# ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for one username lock that account out (from any
# address), and as many from one address lock that address out, for ADMIN_LOCKOUT_MINUTES;
# `manage.py axes_reset_username NAME` (or `axes_reset_ip`) lifts it sooner.
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=10)
if not 1 <= AXES_FAILURE_LIMIT <= 10:
    raise ImproperlyConfigured("ADMIN_LOGIN_FAILURE_LIMIT must be between 1 and 10.")
AXES_COOLOFF_TIME = env.float("ADMIN_LOCKOUT_MINUTES", default=60.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# The client address as the API throttles see it (TRUSTED_PROXIES), and no banner on every command.
AXES_CLIENT_IP_CALLABLE = "lending.api.proxies.axes_client_address"
AXES_VERBOSE = False
# Staff passwords: Django's validators, enforced by the admin's forms and `ensure_staff_user`.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("ADMIN_PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Security (production) ------------------------------------------------------------------------
# TLS usually ends at the ingress: SECURE_SSL_REDIRECT=False there. The probes and /metrics are
# never redirected (they are also answered before host validation, by ProbeMiddleware).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^health$", r"^metrics/?$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# A form posted without a valid CSRF token (the admin's; the API is exempt) gets the JSON error shape.
CSRF_FAILURE_VIEW = "lending.api.errors.csrf_failure"
if not DEBUG:
    # The ingress or load balancer says whether the client spoke HTTPS; believed only from TRUSTED_PROXIES.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_SECURE = True

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # UTF-8 JSON only, no duplicate keys, NaN or nesting deeper than 32 (lending/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["lending.api.parsers.StrictJSONParser"],
    # DRF's, with the plain `Accept` of nearly every call answered without walking its media ranges.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "lending.api.negotiation.JsonFirstNegotiation",
    # Service API keys (`Authorization: Api-Key <key>`), required when REQUIRE_API_KEY is true.
    "DEFAULT_AUTHENTICATION_CLASSES": ["lending.api.auth.ApiKeyAuthentication"],
    # ...holding the scope each view states (`required_scope`); everything is open when keys are off.
    "DEFAULT_PERMISSION_CLASSES": ["lending.api.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["lending.api.throttling.PerKeyThrottle", "lending.api.throttling.PerAddressThrottle"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "lending.api.errors.exception_handler",
    # drf-spectacular's, plus the scope each operation needs.
    "DEFAULT_SCHEMA_CLASS": "lending.api.scoped_schema.ScopedAutoSchema",
}
# Largest request body accepted by the API, in bytes; larger bodies get 413.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=16 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Listings (`/loans/`, `/reservations/`, `/getExpiredBooks/`): default and largest page (`limit`).
# `getExpiredBooks` pages only when asked or when more than API_MAX_PAGE_SIZE loans are overdue.
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=50)
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=1000)

# --- Service keys, throttling, cache -------------------------------------------------------------
# Every API call needs `Authorization: Api-Key <key>` (keys: `manage.py api_keys`). Health, metrics
# and the API docs stay open.
REQUIRE_API_KEY = env.bool("REQUIRE_API_KEY", default=not DEBUG)
# A verified key is trusted this long by each process (no query, no hash); a revocation made
# elsewhere reaches a process within this delay.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=10.0)
# Requests per API key and per client address ("<n>/<second|minute|hour|day>"; empty: no limit).
THROTTLE_RATE_PER_KEY = env.str("THROTTLE_RATE_PER_KEY", default="6000/min") or None
THROTTLE_RATE_PER_IP = env.str("THROTTLE_RATE_PER_IP", default="6000/min") or None
# Failed authentications (wrong, revoked or expired key) an address may make per minute; beyond, all
# its requests get 429 until the minute ends. 0: no limit.
AUTH_FAILURES_PER_MINUTE = env.int("AUTH_FAILURES_PER_MINUTE", default=20)
# Addresses or networks (CIDR) of the proxies whose X-Forwarded-For/-Proto are believed; from any
# other peer those headers are dropped (lending/api/proxies.py). Empty: none, REMOTE_ADDR is the client.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# The cache that holds the throttle counters; share it between processes and replicas in production
# (e.g. redis://127.0.0.1:6379/1). The default, local memory, is per process.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://lending")}
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    # A Redis that is down or unreachable must cost a request little: the rate limits fail open.
    _cache_timeout = env.float("CACHE_TIMEOUT_SECONDS", default=0.5)
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": _cache_timeout, "socket_timeout": _cache_timeout}
    )

# --- OpenAPI ----------------------------------------------------------------------------------------
SPECTACULAR_SETTINGS = {
    "TITLE": "Lending Management service",
    "DESCRIPTION": "Lends and returns books, lists overdue loans, renewals and holds. "
    'Errors share one shape: `{"error": {"code", "message", "details"?}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its viewers are public, like the contract they describe.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["lending.api.schema.drop_unslashed_duplicates"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "lending.api.schema.add_health_paths",
    ],
    "ENUM_NAME_OVERRIDES": {
        "LoanStatusEnum": "lending.models.LoanStatus",
        "HoldStatusEnum": "lending.models.HoldStatus",
        "BlockActionEnum": "lending.blocks.Action",
    },
}

# --- Loan policy ----------------------------------------------------------------------------------
LOAN_PERIOD_DAYS = env.int("LOAN_PERIOD_DAYS", default=60)
# Renewals allowed per loan; each extends the due date by LOAN_PERIOD_DAYS.
LOAN_MAX_RENEWALS = env.int("LOAN_MAX_RENEWALS", default=2)
# Open loans a patron may hold at once.
LOAN_MAX_ACTIVE_PER_PATRON = env.int("LOAN_MAX_ACTIVE_PER_PATRON", default=10)
# A patron with an overdue loan may not borrow.
LOAN_BLOCK_ON_OVERDUE = env.bool("LOAN_BLOCK_ON_OVERDUE", default=True)
# An overdue loan may be renewed.
LOAN_RENEW_OVERDUE_ALLOWED = env.bool("LOAN_RENEW_OVERDUE_ALLOWED", default=False)
# Days a returned copy is kept for the first patron in the holds queue.
HOLD_PICKUP_DAYS = env.int("HOLD_PICKUP_DAYS", default=3)
# The currency of every fine and fee lending assesses (ISO 4217), as the Fees service keeps it.
FINES_CURRENCY = env.str("FINES_CURRENCY", default="EUR")
# The library's time zone: due dates and pickup deadlines end at the end of a day there (lending.calendar).
LIBRARY_TIME_ZONE = env.str("LIBRARY_TIME_ZONE", default="UTC")
# Automated blocks (lending.blocks): this many overdue loans block borrowing, renewing and reserving ...
BLOCK_MAX_OVERDUE_LOANS = env.int("BLOCK_MAX_OVERDUE_LOANS", default=3)
# ... and so does any loan overdue by more than this many days.
BLOCK_MAX_OVERDUE_DAYS = env.int("BLOCK_MAX_OVERDUE_DAYS", default=30)


def _fines_block_limit(raw: str) -> Decimal | None:
    """FINES_BLOCK_LIMIT as a decimal amount; empty: no balance block (and no Fees call on writes)."""
    if not raw.strip():
        return None
    try:
        limit = Decimal(raw.strip())
    except InvalidOperation:
        raise ImproperlyConfigured(
            f'FINES_BLOCK_LIMIT must be a decimal amount such as "10.00", not {raw!r}.'
        ) from None
    if not limit.is_finite() or limit < 0:
        raise ImproperlyConfigured(f"FINES_BLOCK_LIMIT must be a finite amount of 0 or more, not {raw!r}.")
    return limit


# ... and so does a balance at the Fees service above this amount (lending.blocks.fees_standing).
FINES_BLOCK_LIMIT = _fines_block_limit(env.str("FINES_BLOCK_LIMIT", default=""))
# A return may be back-dated (the book drop emptied late) by at most this many days.
RETURN_BACKDATE_MAX_DAYS = env.int("RETURN_BACKDATE_MAX_DAYS", default=7)
# The scheduler renews loans due within DUE_SOON_REMINDER_DAYS when every rule allows (lending.auto_renew).
LOAN_AUTO_RENEW = env.bool("LOAN_AUTO_RENEW", default=False)
# The scheduler declares lost a loan overdue this many days or more (lending.services.lost); 0: never.
LOST_AFTER_OVERDUE_DAYS = env.int("LOST_AFTER_OVERDUE_DAYS", default=0)

# --- SIP2 gateway (`python -m sip_gateway`, sip_gateway/) -----------------------------------------------
# Where the gateway listens for kiosks, and the lending API it calls for them.
SIP_HOST = env.str("SIP_HOST", default="127.0.0.1")
SIP_PORT = env.int("SIP_PORT", default=6001)
LENDING_API_URL = env.str("LENDING_API_URL", default="http://127.0.0.1:8000")
# The gateway's /metrics and /health/live; 0 keeps them off.
SIP_METRICS_PORT = env.int("SIP_METRICS_PORT", default=9106)
# Seconds a connection may take to log in (93), and may stay silent once logged in (Koha's defaults).
SIP_LOGIN_TIMEOUT = env.float("SIP_LOGIN_TIMEOUT", default=60)
SIP_IDLE_TIMEOUT = env.float("SIP_IDLE_TIMEOUT", default=600)

# --- Peers ----------------------------------------------------------------------------------------
BOOK_MANAGEMENT_URL = env.str("BOOK_MANAGEMENT_URL", default="http://localhost:8001")
USER_MANAGEMENT_URL = env.str("USER_MANAGEMENT_URL", default="http://localhost:8002")
NOTIFICATION_SERVICE_URL = env.str("NOTIFICATION_SERVICE_URL", default="http://localhost:8003")
FEES_SERVICE_URL = env.str("FEES_SERVICE_URL", default="http://localhost:8004")
PEER_CONNECT_TIMEOUT = env.float("PEER_CONNECT_TIMEOUT", default=1.0)
PEER_READ_TIMEOUT = env.float("PEER_READ_TIMEOUT", default=3.0)
# Circuit breaker: opens after this many consecutive failures, half-opens after the cool-down.
PEER_BREAKER_FAIL_MAX = env.int("PEER_BREAKER_FAIL_MAX", default=5)
PEER_BREAKER_RESET_SECONDS = env.float("PEER_BREAKER_RESET_SECONDS", default=10.0)

# --- Outbox relay ---------------------------------------------------------------------------------
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
OUTBOX_BACKOFF_BASE_SECONDS = env.float("OUTBOX_BACKOFF_BASE_SECONDS", default=1.0)
OUTBOX_BACKOFF_MAX_SECONDS = env.float("OUTBOX_BACKOFF_MAX_SECONDS", default=300.0)
OUTBOX_POLL_INTERVAL_SECONDS = env.float("OUTBOX_POLL_INTERVAL_SECONDS", default=0.2)
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=50)
# Messages of a batch delivered side by side by `relay_outbox` (threads, each with a DB connection).
OUTBOX_DELIVERY_THREADS = env.int("OUTBOX_DELIVERY_THREADS", default=8)
# A claimed message not settled within the lease (a relay died) is picked up again.
OUTBOX_LEASE_SECONDS = env.float("OUTBOX_LEASE_SECONDS", default=30.0)
# An availability update that timed out may still be applied by the Book service after a newer one;
# the state is published again this long after (up to twice), once such a late write can no longer
# land. 0 turns the re-checks off.
OUTBOX_RECHECK_SECONDS = env.float("OUTBOX_RECHECK_SECONDS", default=30.0)

# --- Domain events on RabbitMQ (lending/events/domain_events.py) ------------------------------------------
# amqp://user:password@host:5672/vhost; empty: no events are written or published. Each loan and hold
# change then also writes an outbox message that the relay publishes to the topic exchange below.
EVENTS_BROKER_URL = env.str("EVENTS_BROKER_URL", default="")
EVENTS_EXCHANGE = env.str("EVENTS_EXCHANGE", default="lending.events")
# The CloudEvents `source` of every event.
EVENTS_SOURCE = env.str("EVENTS_SOURCE", default="/lending")
# Seconds before a broker that does not answer (connect, confirm, heartbeat) counts as down.
EVENTS_BROKER_TIMEOUT_SECONDS = env.float("EVENTS_BROKER_TIMEOUT_SECONDS", default=5.0)
# The key of the events' `patron_ref` (lending/patron_ref.py); empty: derived from SECRET_KEY. Set it to
# keep every patron's ref when DJANGO_SECRET_KEY changes.
PATRON_REF_KEY = env.str("PATRON_REF_KEY", default="")

# --- Tracing (lending/observability/tracing.py) ---------------------------------------------------------------------
# OpenTelemetry for Django, the peer clients and psycopg, exported over OTLP/HTTP; empty: off.
# The exporter also reads the other OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS...).
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")

# --- /metrics and liveness of the relay and the scheduler (lending/observability/ops_server.py) --------------------
# Each serves /metrics and /health/live on its own port; 0 turns the server off.
RELAY_METRICS_PORT = env.int("RELAY_METRICS_PORT", default=0)
SCHEDULER_METRICS_PORT = env.int("SCHEDULER_METRICS_PORT", default=0)
# Loopback by default; containers set 0.0.0.0 so that Prometheus and the kubelet reach it.
METRICS_ADDRESS = env.str("METRICS_ADDRESS", default="127.0.0.1")
# The relay's liveness fails when no pass (or batch) completed for this long: a batch is bounded by
# the peer timeouts, well under the default.
RELAY_STALL_SECONDS = env.float("RELAY_STALL_SECONDS", default=120.0)
# The scheduler's liveness fails when no pass completed within this many intervals.
SCHEDULER_STALL_INTERVALS = env.float("SCHEDULER_STALL_INTERVALS", default=3.0)

# --- Scheduled notices (`manage.py send_notices`) -----------------------------------------------
# A `due_soon_reminder` this many days before the due date.
DUE_SOON_REMINDER_DAYS = env.int("DUE_SOON_REMINDER_DAYS", default=3)
# An `overdue_notice` when a loan becomes overdue, then again every this many days.
OVERDUE_NOTICE_REPEAT_DAYS = env.int("OVERDUE_NOTICE_REPEAT_DAYS", default=7)
# One `digest` notification per patron per pass, listing that pass's reminders and overdue notices,
# instead of one notification per loan (lending.notices).
NOTICE_DIGEST = env.bool("NOTICE_DIGEST", default=False)
# Loans handled per transaction.
NOTICES_BATCH_SIZE = env.int("NOTICES_BATCH_SIZE", default=500)
# Seconds between passes of `send_notices --loop`.
NOTICES_INTERVAL_SECONDS = env.float("NOTICES_INTERVAL_SECONDS", default=60.0)

# --- Privacy: how long personal data is kept (lending/privacy.py, `manage.py anonymize_loans`) ------
# A returned loan (and a closed hold) keeps its patron's email this many days, then `anonymize_loans`
# replaces it with a random token.
LOAN_HISTORY_RETENTION_DAYS = env.int("LOAN_HISTORY_RETENTION_DAYS", default=120)
# Delivered outbox rows (notifications carry the patron's email) are deleted after this many days.
OUTBOX_RETENTION_DAYS = env.int("OUTBOX_RETENTION_DAYS", default=30)
# Rows anonymised or purged per short transaction.
PRIVACY_BATCH_SIZE = env.int("PRIVACY_BATCH_SIZE", default=1000)

# --- Idempotency keys -----------------------------------------------------------------------------
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
# A key still "in progress" after this long belongs to a request that died; it may be retried.
IDEMPOTENCY_LOCK_SECONDS = env.int("IDEMPOTENCY_LOCK_SECONDS", default=60)

# --- Logging --------------------------------------------------------------------------------------
# Through structlog (lending/observability/logs.py): JSON lines on stdout in production, readable lines in debug
# mode; the request id on every line, patron emails masked. LOG_FILE adds a rotating JSON file.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json").lower()
LOG_FILE = env.str("LOG_FILE", default="")
LOGGING = logs.logging_config(
    level=LOG_LEVEL,
    log_format=LOG_FORMAT,
    log_file=LOG_FILE,
    file_max_bytes=env.int("LOG_FILE_MAX_BYTES", default=10 * 1024 * 1024),
    file_backup_count=env.int("LOG_FILE_BACKUP_COUNT", default=5),
)
logs.configure_structlog()
