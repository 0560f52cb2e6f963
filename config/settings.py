"""Settings, all from the environment (12-factor); with nothing set, an embedded default.

The embedded default (SQLite and kombu's filesystem broker under var/) lets `make run` work on a
machine with no services; production sets DATABASE_URL and REDIS_URL (see README's table).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import plotly
from csp.constants import NONE, SELF
from kombu import Exchange, Queue

from config import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.env_str("VAR_DIR") or BASE_DIR / "var")

DEBUG = env.env_bool("DEBUG", default=False)
SECRET_KEY = env.persistent_secret("SECRET_KEY", VAR_DIR / "secret_key", make=env.new_secret_key)
FIELD_ENCRYPTION_KEYS = env.fernet_keys(
    "FIELD_ENCRYPTION_KEY",
    env.persistent_secret("FIELD_ENCRYPTION_KEY", VAR_DIR / "field_encryption_key", make=env.new_fernet_key),
)
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.env_list("CSRF_TRUSTED_ORIGINS", [])
ALLOW_PRIVATE_ENDPOINTS = env.env_bool("ALLOW_PRIVATE_ENDPOINTS", default=False)
REQUIRE_APPROVAL = env.env_bool("REQUIRE_APPROVAL", default=False)
# Private networks the operator trusts even when ALLOW_PRIVATE_ENDPOINTS is off (e.g. an in-house inference
# cluster); cloud metadata addresses stay refused.
ENDPOINT_ALLOWED_NETWORKS = env.env_networks("ENDPOINT_ALLOWED_NETWORKS")
# A local (Hugging Face) model runs on our GPUs, so a non-staff user's request waits for staff by default.
LOCAL_MODELS_REQUIRE_APPROVAL = env.env_bool("LOCAL_MODELS_REQUIRE_APPROVAL", default=True)
# Per-user quota: at most SUBMISSION_QUOTA submissions per SUBMISSION_QUOTA_DAYS (failed and cancelled ones
# do not count; staff have none). 0 turns submitting off for non-staff users.
SUBMISSION_QUOTA = env.env_int("SUBMISSION_QUOTA", 5)
SUBMISSION_QUOTA_DAYS = env.env_int("SUBMISSION_QUOTA_DAYS", 7, minimum=1)
STATUS_POLL_SECONDS = env.env_float("STATUS_POLL_SECONDS", 3.0, minimum=0.2)
SPEC_FILE = BASE_DIR / "specs" / "versions.json"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "leaderboard",
    "evalworkers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {"default": env.database_config("DATABASE_URL", VAR_DIR / "db.sqlite3")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so that worker processes started by the tests share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# django-axes checks every login (the site's and the admin's) before the password is tried.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "leaderboard:my-submissions"
LOGOUT_REDIRECT_URL = "leaderboard:index"
# Password-reset mail: printed on the console unless the deployment names a backend (e.g. SMTP with EMAIL_HOST).
EMAIL_BACKEND = env.env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env.env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env.env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.env_str("DEFAULT_FROM_EMAIL", "LongCtx Leaderboard <noreply@localhost>")
# A submitter confirms an e-mail address (a signed link) before the first submission; the link lasts this long.
EMAIL_CONFIRMATION_DAYS = env.env_int("EMAIL_CONFIRMATION_DAYS", 3, minimum=1)

# --- Abuse resistance ------------------------------------------------------------------------------------
# Login throttling (django-axes, site and admin): after LOGIN_FAILURE_LIMIT failures an account, and separately a
# client address, is locked for LOGIN_LOCKOUT_MINUTES (staff can unlock earlier: admin "Access attempts", or
# `manage.py axes_reset_username NAME` / `axes_reset_ip ADDRESS`). Every attempt is recorded.
AXES_FAILURE_LIMIT = env.env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.env_int("LOGIN_LOCKOUT_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lock ends when it said it would
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "leaderboard.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "leaderboard.client_address.client_address"
AXES_SENSITIVE_PARAMETERS: list[str] = []  # the security log names the account and the address (never a password)
# Reverse proxies in front of the app that append to X-Forwarded-For (0: use the connection's address). Throttles
# and lockouts key on the client address read this way; trusting more hops than there are lets clients forge it.
TRUSTED_PROXY_COUNT = env.env_int("TRUSTED_PROXY_COUNT", 0)
# Rate limits per client address, "N/s|m|h|d" or "off": sign-ups, submission attempts, and anonymous reads of the
# API and the CSV exports (answered 429 with Retry-After).
SIGNUP_RATE = env.env_rate("SIGNUP_RATE", "5/h")
SUBMIT_RATE = env.env_rate("SUBMIT_RATE", "20/h")
CONFIRMATION_MAIL_RATE = env.env_rate("CONFIRMATION_MAIL_RATE", "3/h")
API_RATE = env.env_rate("API_RATE", "120/m")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# plotly.js is served from the plotly package's own copy (same version as the Python side; no CDN, works offline).
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/plotly", Path(plotly.__file__).parent / "package_data")]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The throttles' counters: shared by every web process (Redis when REDIS_URL names one, else files under var/).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": env.throttle_cache("REDIS_URL", VAR_DIR / "throttle"),
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# HTTPS=true (the production configuration, behind a TLS-terminating proxy that sets X-Forwarded-Proto): redirect
# plain HTTP, send HSTS, mark cookies secure. `manage.py check --deploy --fail-level WARNING` passes with it.
HTTPS = env.env_bool("HTTPS", default=False)
if not DEBUG and HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # container health checks speak plain HTTP inside the network
    SECURE_HSTS_SECONDS = env.env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.env_bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Joining the browsers' preload list is the operator's decision (hard to undo), not a default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Content-Security-Policy on every response: scripts and styles only from our own static files (no inline code,
# no eval); charts read their figures from JSON data blocks (leaderboard/charts.py, static/js/charts.js).
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # SHA-256 of ""
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # plotly.js clears its colour bars' style attribute (style=""): allow exactly that empty value, no other.
        "style-src-attr": ["'unsafe-hashes'", EMPTY_STYLE_HASH],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Celery (read by evalworkers.celery with namespace="CELERY") --------------------------------
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = env.broker_url(VAR_DIR / "broker")
# Redis re-delivers a task whose worker died (SIGKILL, lost machine) after this many seconds. It is only the
# backstop: the scheduler's recovery (WORKER_LOST_AFTER_S below) hands a lost worker's cells on within minutes, and
# a cell is leased, so a late re-delivery of a cell someone else holds does nothing. Keep it above the hard time
# limit, or Redis re-delivers tasks that are still running (harmless, but a wasted worker slot each time).
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = env.env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600, minimum=1)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = env.env_int("CELERY_TASK_TIME_LIMIT", 3 * 3600 + 300, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "api"
CELERY_TASK_QUEUES = (
    Queue("api", Exchange("api", type="direct"), routing_key="api"),
    Queue("gpu", Exchange("gpu", type="direct"), routing_key="gpu"),
    # The scheduler's own work (recovery), on a worker of its own: it must run while every api and gpu slot is
    # busy with long cells, or when the worker that died was the only api worker.
    Queue("control", Exchange("control", type="direct"), routing_key="control"),
)
# A submission's tasks go to its kind's queue (leaderboard.models.ModelKind.queue), named when they are sent.
CELERY_TASK_ROUTES = {
    "evalworkers.tasks.heartbeat": {"queue": "api"},
    "evalworkers.tasks.recover_lost_work": {"queue": "control"},
}
CELERY_TASK_ALWAYS_EAGER = env.env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT.")

# --- Evaluation engine --------------------------------------------------------------------------------
EVAL_CONCURRENCY = env.env_int("EVAL_CONCURRENCY", 8, minimum=1)
EVAL_PER_HOST_LIMIT = env.env_int("EVAL_PER_HOST_LIMIT", 16, minimum=1)
EVAL_REQUEST_TIMEOUT_S = env.env_float("EVAL_REQUEST_TIMEOUT_S", 300.0, minimum=0.1)
EVAL_DEADLINE_S = env.env_float("EVAL_DEADLINE_S", 900.0, minimum=0.1)
EVAL_MAX_RETRIES = env.env_int("EVAL_MAX_RETRIES", 4)
EVAL_BACKOFF_BASE_S = env.env_float("EVAL_BACKOFF_BASE_S", 1.0)
EVAL_BACKOFF_CAP_S = env.env_float("EVAL_BACKOFF_CAP_S", 30.0)
EVAL_BREAKER_THRESHOLD = env.env_int("EVAL_BREAKER_THRESHOLD", 10, minimum=1)
EVAL_STREAM = env.env_bool("EVAL_STREAM", default=True)
EVAL_PROBE_TIMEOUT_S = env.env_float("EVAL_PROBE_TIMEOUT_S", 30.0, minimum=0.1)
# How long the pre-flight probe keeps retrying transient failures (connection errors, timeouts, 429, 5xx).
EVAL_PROBE_RETRY_S = env.env_float("EVAL_PROBE_RETRY_S", 120.0, minimum=0.0)
# Local models (queue "gpu"): where the reference model is prepared, the device and dtype, whether a repo id may
# be fetched from a hub (off by default: workers use what is in the local cache), files some KV methods need, and
# an optional cap on KV-cache memory past which a cell is recorded as out of memory.
EVAL_MODELS_DIR = Path(env.env_str("EVAL_MODELS_DIR") or VAR_DIR / "models")
EVAL_DOWNLOADS_DIR = Path(env.env_str("EVAL_DOWNLOADS_DIR") or VAR_DIR / "downloads")
EVAL_LOCAL_DEVICE = env.env_str("EVAL_LOCAL_DEVICE") or "auto"
EVAL_LOCAL_DTYPE = env.env_str("EVAL_LOCAL_DTYPE") or "auto"
EVAL_LOCAL_OFFLINE = env.env_bool("EVAL_LOCAL_OFFLINE", default=True)
KV_FILES_DIR = Path(env.env_str("KV_FILES_DIR")) if env.env_str("KV_FILES_DIR") else None
EVAL_LOCAL_MEMORY_LIMIT_BYTES = env.env_int("EVAL_LOCAL_MEMORY_LIMIT_BYTES", 0, minimum=0)

# --- Worker liveness and recovery (evalworkers/liveness.py, evalworkers/recovery.py) ---------------------------
# Every worker writes its heartbeat (and refreshes the lease of each cell it runs) this often...
WORKER_HEARTBEAT_S = env.env_float("WORKER_HEARTBEAT_S", 10.0, minimum=1.0)
# ...and is shown as lost, its cells handed to a live worker, when not seen for this long (three heartbeats).
WORKER_LOST_AFTER_S = env.env_float("WORKER_LOST_AFTER_S", 3 * WORKER_HEARTBEAT_S, minimum=2 * WORKER_HEARTBEAT_S)
# A live worker's cell that stored no sample for this long is stuck and handed on too: a sample may take up to the
# per-sample deadline (EVAL_DEADLINE_S, retries included), plus five minutes for calibration and writes.
CELL_STALL_AFTER_S = env.env_float("CELL_STALL_AFTER_S", EVAL_DEADLINE_S + 300.0, minimum=60.0)
# The scheduler (celery beat) looks for lost and stuck work this often. With the defaults a killed worker's cells
# are running again within WORKER_LOST_AFTER_S + RECOVERY_INTERVAL_S = 45 s (plus the wait for a free worker).
RECOVERY_INTERVAL_S = env.env_float("RECOVERY_INTERVAL_S", 15.0, minimum=1.0)
CELERY_BEAT_SCHEDULE = {
    "recover-lost-work": {
        "task": "evalworkers.tasks.recover_lost_work",
        "schedule": RECOVERY_INTERVAL_S,
        "options": {"queue": "control", "expires": RECOVERY_INTERVAL_S},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.env_str("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
