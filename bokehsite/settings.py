"""bokehsite settings.

Every setting comes from an environment variable with a default that lets a fresh checkout run
on SQLite and the in-memory channel layer. Nothing else in the project reads ``os.environ``.
"""

import ipaddress
import os
import re
import secrets
from pathlib import Path

import dj_database_url
from bokeh.util.paths import static_path as bokeh_static_path
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# A clone has templates/ and static/ beside the apps; an installed package has them inside bokehsite/.
ASSETS_DIR = BASE_DIR if (BASE_DIR / "templates").is_dir() else Path(__file__).resolve().parent


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envcount(name: str, default: str) -> int:
    """An integer that is zero or more."""
    value = envint(name, default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be 0 or more, not {value}")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envnetworks(name: str, default: str) -> list[str]:
    """Comma-separated addresses or networks (CIDRs): ``10.0.0.0/8,127.0.0.1``."""
    networks = envlist(name, default)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {network!r} is not an address or a network (CIDR), "
                                       "e.g. 10.0.0.0/8,127.0.0.1") from None
    return networks


def envseconds(name: str, default: str) -> float:
    """A duration in seconds, more than zero: ``15`` or ``0.5``."""
    value = os.environ.get(name, default)
    try:
        seconds = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise ImproperlyConfigured(f"{name} must be more than 0 seconds, not {value!r}")
    return seconds


def envrate(name: str, default: str) -> str:
    """A rate such as ``10/min``: a count, a slash, and second, minute, hour or day."""
    value = os.environ.get(name, default).strip()
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must be a rate such as 10/min or 100/hour, not {value!r}")
    return value


DATA_DIR = Path(os.environ.get("BOKEHSITE_DATA_DIR", BASE_DIR / "var"))
DEBUG = envbool("DEBUG", "0")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in DATA_DIR."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    "daphne",  # first, so `manage.py runserver` serves HTTP and websockets through ASGI
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us (never from a CDN)
    "channels",
    "accounts",
    "documents",
    "streaming",
    "datasets",
    "appserver",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bokehsite.urls"
ASGI_APPLICATION = "bokehsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [ASSETS_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.acting_user",
                "appserver.context_processors.served_apps",
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"))}


def _create_private_sqlite_file(name: str) -> None:
    """Create the SQLite file owner-only (0600, in a new directory 0700) before SQLite would
    create it world-readable. SQLite gives its journal, -wal and -shm files the same mode."""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process made it first


if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for each other instead of failing at once with "database is locked": a
    # transaction takes the write lock when it begins (IMMEDIATE), since one that read first
    # and then writes is refused at once while another writes. In WAL mode readers never wait
    # for the writer, and a commit is one append and one sync (still durable: synchronous FULL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
    _create_private_sqlite_file(str(DATABASES["default"]["NAME"]))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and envbool("DATABASE_POOL", "1"):
    # Each PostgreSQL connection is a server process; psycopg's pool keeps a few open. Each is
    # checked as it leaves the pool, so that after a database restart no request gets a dead one;
    # while the database is down, a request fails after DATABASE_POOL_TIMEOUT seconds instead of
    # holding the process's one database thread for psycopg's default 30.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"timeout": envint("DATABASE_POOL_TIMEOUT", "5")}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    # Only threads that live on keep a connection: the websocket side's one database thread
    # (Channels' database_sync_to_async), the background ones. An HTTP request runs in a thread
    # of its own and closes its connections as it finishes (``bokehsite.asgi``). On SQLite that
    # thread keeps its connection for ten minutes by default: opening one reads the schema and
    # closing the last one checkpoints the WAL, together about 4 ms of every stored change.
    _SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    DATABASES["default"]["CONN_MAX_AGE"] = envint("DATABASE_CONN_MAX_AGE", "600" if _SQLITE else "0")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A connection's membership of its groups lapses after this many seconds unless renewed, so the
# channels of a process that died leave them...
BOKEHSITE_GROUP_EXPIRY = envint("BOKEHSITE_GROUP_EXPIRY", "90")
# ...and each live connection renews its own this often: also how soon they are back after a Redis
# that keeps nothing restarts. Each renewal costs the layer one write per group.
BOKEHSITE_GROUP_RENEW = envint("BOKEHSITE_GROUP_RENEW", "5")
if not 0 < BOKEHSITE_GROUP_RENEW < BOKEHSITE_GROUP_EXPIRY:
    raise ImproperlyConfigured("BOKEHSITE_GROUP_RENEW must be more than 0 and less than BOKEHSITE_GROUP_EXPIRY")
# Messages waiting for one connection before the layer drops more (viewers then resync from the log).
BOKEHSITE_CHANNEL_CAPACITY = envint("BOKEHSITE_CHANNEL_CAPACITY", "100")
_LAYER = {"group_expiry": BOKEHSITE_GROUP_EXPIRY, "capacity": BOKEHSITE_CHANNEL_CAPACITY}
if REDIS_URL := os.environ.get("REDIS_URL"):
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streaming.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [{
                "address": REDIS_URL,
                # channels-redis waits for a connection's messages with a 5 s blocking read; a
                # socket timeout at or under that would break every connection idle for 5 s.
                "socket_timeout": 30,
                "socket_connect_timeout": 5,
                # After Redis restarts, the pooled connections to the old one fail once each:
                # try such a command again on a new connection instead of failing it.
                "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                "retry_on_error": [RedisConnectionError, RedisTimeoutError],
            }], **_LAYER},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "streaming.layers.LocalChannelLayer", "CONFIG": _LAYER}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Only `collectstatic` needs it: WhiteNoise serves straight from the finders below.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
STATICFILES_DIRS = [
    ASSETS_DIR / "static",
    # BokehJS is served from the installed `bokeh` package (under /static/bokeh/), never a CDN.
    ("bokeh", str(bokeh_static_path())),
]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))
MEDIA_URL = "media/"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- bokehsite -------------------------------------------------------------------------------
# Multi-user mode (the old `bokeh-server -m`); off means every request acts as DEFAULT_USERNAME.
BOKEHSITE_MULTI_USER = envbool("BOKEHSITE_MULTI_USER", "0")
BOKEHSITE_DEFAULT_USERNAME = "defaultuser"
# Whether people may create their own accounts; when off, admins create them in the Django admin.
BOKEHSITE_ALLOW_REGISTRATION = envbool("BOKEHSITE_ALLOW_REGISTRATION", "1")
# Whether people may log in with a local password (the login form, the API's login, the admin's
# login form, registration); off, they sign in only through single sign-on.
BOKEHSITE_LOCAL_LOGIN = envbool("BOKEHSITE_LOCAL_LOGIN", "1")
# Brute-force limits per client address, shared by the API and the HTML forms.
BOKEHSITE_THROTTLE_RATES = {
    "login": envrate("BOKEHSITE_LOGIN_RATE", "10/min"),
    "register": envrate("BOKEHSITE_REGISTER_RATE", "10/hour"),
}
# How many reverse proxies in front of the server append to X-Forwarded-For (DRF's NUM_PROXIES).
# 0 (the default): the client is the socket's peer and X-Forwarded-For is ignored, since any
# client can send it. N: the client is the N-th address from the end of X-Forwarded-For.
BOKEHSITE_TRUSTED_PROXIES = envcount("BOKEHSITE_TRUSTED_PROXIES", "0")
# GET /metrics (Prometheus): for a scraper presenting this bearer token, or from these addresses
# (comma-separated CIDRs, the client's address decided as for BOKEHSITE_TRUSTED_PROXIES). With
# neither, there is no /metrics and nothing is measured.
BOKEHSITE_METRICS_TOKEN = os.environ.get("BOKEHSITE_METRICS_TOKEN", "")
BOKEHSITE_METRICS_ALLOW = envnetworks("BOKEHSITE_METRICS_ALLOW", "")
# HTTPS, for a server that people reach only over HTTPS (directly or through a proxy): HSTS,
# HTTP redirected to HTTPS, session and CSRF cookies sent only over HTTPS.
BOKEHSITE_HTTPS = envbool("BOKEHSITE_HTTPS", "0")
if BOKEHSITE_TRUSTED_PROXIES:
    # The trusted proxy says whether the client came by HTTPS (it must set or overwrite this header).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if BOKEHSITE_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envcount("BOKEHSITE_HSTS_SECONDS", str(365 * 24 * 3600))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("BOKEHSITE_HSTS_INCLUDE_SUBDOMAINS", "1")
    SECURE_HSTS_PRELOAD = envbool("BOKEHSITE_HSTS_PRELOAD", "0")
    if not SECURE_HSTS_PRELOAD:
        # Asking browsers to hard-code HTTPS for the whole domain (the preload list) is the
        # domain owner's decision, not this server's default: BOKEHSITE_HSTS_PRELOAD=1 opts in.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Seconds a sandboxed plot frame's signed token stays valid (see documents/frames.py).
BOKEHSITE_FRAME_TOKEN_MAX_AGE = envint("BOKEHSITE_FRAME_TOKEN_MAX_AGE", "300")
# Changes of access reach open websockets at once, and expiring tokens and sessions when they
# expire; in case an announcement was lost, each also looks again at least this often (seconds).
BOKEHSITE_ACCESS_RECHECK = envint("BOKEHSITE_ACCESS_RECHECK", "300")
# Websockets one account may hold open at once, counted across every process (an anonymous
# client, and everyone in single-user mode, is counted by address); and one process. 0: no limit.
BOKEHSITE_MAX_CONNECTIONS_PER_USER = envcount("BOKEHSITE_MAX_CONNECTIONS_PER_USER", "200")
BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS = envcount("BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS", "10000")
# Largest request body the API accepts (documents carry their arrays, so this is generous).
BOKEHSITE_MAX_BODY_BYTES = envint("BOKEHSITE_MAX_BODY_BYTES", str(512 * 1024 * 1024))
# Live documents: how many each process keeps in memory, how often the event log is folded
# into a snapshot, and how many versions of history stay rebuildable.
BOKEHSITE_LIVE_DOCUMENTS = envint("BOKEHSITE_LIVE_DOCUMENTS", "32")
BOKEHSITE_SNAPSHOT_EVERY = envint("BOKEHSITE_SNAPSHOT_EVERY", "500")
BOKEHSITE_HISTORY = envint("BOKEHSITE_HISTORY", "10000")

# Exports: PNG and SVG are drawn by this Chromium (documents.images), by at most this many at once,
# each within this many seconds.
BOKEHSITE_CHROMIUM = os.environ.get("BOKEHSITE_CHROMIUM", "/usr/bin/chromium")
BOKEHSITE_EXPORT_WORKERS = max(1, envcount("BOKEHSITE_EXPORT_WORKERS", "2"))
BOKEHSITE_EXPORT_TIMEOUT = envcount("BOKEHSITE_EXPORT_TIMEOUT", "30")
# The document list's thumbnails: drawn in the background by that Chromium (documents.thumbnails),
# a document that keeps changing redrawn at most once every this many seconds.
BOKEHSITE_THUMBNAILS = envbool("BOKEHSITE_THUMBNAILS", "1")
BOKEHSITE_THUMBNAIL_INTERVAL = envcount("BOKEHSITE_THUMBNAIL_INTERVAL", "60")
# A viewer more than this many versions behind gets no more frames until it catches up...
BOKEHSITE_VIEWER_WINDOW = envint("BOKEHSITE_VIEWER_WINDOW", "64")
# ...and then the missed changes from the log, or a snapshot when more than this many.
BOKEHSITE_CATCHUP_LIMIT = envint("BOKEHSITE_CATCHUP_LIMIT", "1000")
# Django refuses to read request.body past this; our parsers enforce the limit above instead.
DATA_UPLOAD_MAX_MEMORY_SIZE = BOKEHSITE_MAX_BODY_BYTES
# Daphne's runserver (scripts/serve.sh) reads these: websocket messages may be as large as a body.
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = BOKEHSITE_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.SingleUserAuthentication",
        "accounts.authentication.TokenAuthentication",
        "accounts.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "documents.parsers.BundleParser",
        "documents.parsers.JSONParser",
    ],
    # JSON, and for browsers (Accept: text/html) DRF's browsable API.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "bokehsite.negotiation.ContentNegotiation",
    "EXCEPTION_HANDLER": "bokehsite.error_handler.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "bokehsite.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The client address the throttles count (accounts.throttling): never a header a client forges.
    "NUM_PROXIES": BOKEHSITE_TRUSTED_PROXIES,
}

# --- single sign-on (OpenID Connect; accounts/oidc.py) -----------------------------------------
# The provider's issuer URL, exactly as its ID tokens say it (some end in a slash); its endpoints
# come from <issuer>/.well-known/openid-configuration, read when the first sign-in needs them.
# Empty: no single sign-on.
BOKEHSITE_OIDC_ISSUER = os.environ.get("BOKEHSITE_OIDC_ISSUER", "").strip()
BOKEHSITE_OIDC_CLIENT_ID = os.environ.get("BOKEHSITE_OIDC_CLIENT_ID", "")
BOKEHSITE_OIDC_CLIENT_SECRET = os.environ.get("BOKEHSITE_OIDC_CLIENT_SECRET", "")
BOKEHSITE_OIDC_SCOPES = os.environ.get("BOKEHSITE_OIDC_SCOPES", "openid email profile").strip()
# The claim whose value names a new account, and the claim listing the user's groups (empty: none).
BOKEHSITE_OIDC_USERNAME_CLAIM = os.environ.get("BOKEHSITE_OIDC_USERNAME_CLAIM", "preferred_username").strip()
BOKEHSITE_OIDC_GROUPS_CLAIM = os.environ.get("BOKEHSITE_OIDC_GROUPS_CLAIM", "groups").strip()
# More groups than this in one groups claim refuse the sign-in (each one may become a Django group).
BOKEHSITE_OIDC_MAX_GROUPS = envcount("BOKEHSITE_OIDC_MAX_GROUPS", "200")
# What the login page's button says: "Log in with <name>" (default: the issuer's host name).
BOKEHSITE_OIDC_PROVIDER_NAME = os.environ.get("BOKEHSITE_OIDC_PROVIDER_NAME", "").strip()
# Seconds to wait for each answer of the provider.
BOKEHSITE_OIDC_TIMEOUT = envseconds("BOKEHSITE_OIDC_TIMEOUT", "10")
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"] if BOKEHSITE_LOCAL_LOGIN else []
if BOKEHSITE_OIDC_ISSUER:
    if not BOKEHSITE_OIDC_ISSUER.startswith(("https://", "http://")):
        raise ImproperlyConfigured(f"BOKEHSITE_OIDC_ISSUER must be an https:// (or http://) URL, not {BOKEHSITE_OIDC_ISSUER!r}")
    if not BOKEHSITE_OIDC_CLIENT_ID or not BOKEHSITE_OIDC_CLIENT_SECRET:
        raise ImproperlyConfigured("BOKEHSITE_OIDC_ISSUER needs BOKEHSITE_OIDC_CLIENT_ID and BOKEHSITE_OIDC_CLIENT_SECRET")
    if "openid" not in BOKEHSITE_OIDC_SCOPES.split():
        raise ImproperlyConfigured(f"BOKEHSITE_OIDC_SCOPES must include openid, not {BOKEHSITE_OIDC_SCOPES!r}")
    AUTHENTICATION_BACKENDS.append("accounts.oidc.Backend")
    # mozilla-django-oidc's own settings; the provider's endpoints are discovered (accounts.oidc).
    OIDC_RP_CLIENT_ID = BOKEHSITE_OIDC_CLIENT_ID
    OIDC_RP_CLIENT_SECRET = BOKEHSITE_OIDC_CLIENT_SECRET
    OIDC_RP_SCOPES = BOKEHSITE_OIDC_SCOPES
    OIDC_RP_SIGN_ALGO = "RS256"  # ID tokens signed with a key of the provider's JWKS
    OIDC_USE_NONCE = True
    OIDC_USE_PKCE = True
    OIDC_TIMEOUT = BOKEHSITE_OIDC_TIMEOUT
    OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
    LOGIN_REDIRECT_URL_FAILURE = LOGIN_URL
elif not BOKEHSITE_LOCAL_LOGIN:
    raise ImproperlyConfigured("BOKEHSITE_LOCAL_LOGIN=0 leaves no way to log in: set BOKEHSITE_OIDC_ISSUER too")

# --- storage --------------------------------------------------------------------------------
# Bytes each account's documents may take: snapshots, the change log and thumbnails
# (documents.quota); 0: no quota. The admin can set another for one account.
BOKEHSITE_STORAGE_QUOTA = envcount("BOKEHSITE_STORAGE_QUOTA", str(5 * 1024 ** 3))

# --- datasets ----------------------------------------------------------------------------------
# Where datasets live, one folder each (every process memory-maps them: with several hosts, a
# filesystem they share, mounted at the same path).
BOKEHSITE_DATASET_DIR = Path(os.environ.get("BOKEHSITE_DATASET_DIR", DATA_DIR / "datasets"))
# Bytes on disk each user's datasets (and uploads in progress) may take, summaries included.
BOKEHSITE_DATASET_QUOTA_BYTES = envcount("BOKEHSITE_DATASET_QUOTA_BYTES", str(50 * 1024 ** 3))
# Largest upload or append: the bytes of its columns.
BOKEHSITE_DATASET_MAX_BYTES = envcount("BOKEHSITE_DATASET_MAX_BYTES", str(16 * 1024 ** 3))
# Bytes of one upload chunk; the server tells clients, and refuses bigger bodies. By default
# 64 MiB, or the largest body if that is less.
BOKEHSITE_DATASET_CHUNK_BYTES = envint("BOKEHSITE_DATASET_CHUNK_BYTES",
                                       str(min(64 * 1024 * 1024, BOKEHSITE_MAX_BODY_BYTES // 64 * 64)))
# An upload that receives nothing for this many seconds is cancelled (manage.py prune_uploads, and
# when its owner starts another), so that an abandoned one does not hold the quota.
BOKEHSITE_DATASET_UPLOAD_EXPIRY = envcount("BOKEHSITE_DATASET_UPLOAD_EXPIRY", str(24 * 3600))
if not 1024 <= BOKEHSITE_DATASET_CHUNK_BYTES <= BOKEHSITE_MAX_BODY_BYTES or BOKEHSITE_DATASET_CHUNK_BYTES % 64:
    # A multiple of 64 (8-byte values times the summaries' 8 rows a block): a chunk then holds
    # whole summary blocks, which it writes as it arrives; a power of two holds the most levels.
    raise ImproperlyConfigured("BOKEHSITE_DATASET_CHUNK_BYTES must be a multiple of 64, at least 1024 and at most "
                               "BOKEHSITE_MAX_BODY_BYTES")
# A request body up to a chunk stays in memory (Django's ASGI handler spools larger ones to a
# temporary file, then reads it back): a chunk is read into memory whole anyway.
FILE_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, BOKEHSITE_DATASET_CHUNK_BYTES)

# --- apps -------------------------------------------------------------------------------------
# Bokeh apps served at /apps/<name>/, as `bokeh serve` takes them (scripts, notebooks, directories),
# their paths joined by os.pathsep; appserver.loading.app_specs names and checks them.
BOKEHSITE_APPS = [path for path in os.environ.get("BOKEHSITE_APPS", "").split(os.pathsep) if path.strip()]
# Names of apps anyone may open, without an account, in multi-user mode.
BOKEHSITE_PUBLIC_APPS = envlist("BOKEHSITE_PUBLIC_APPS", "")
# Seconds an app session nobody is connected to lives on (Bokeh's --unused-session-lifetime, in seconds).
BOKEHSITE_UNUSED_SESSION_LIFETIME = envseconds("BOKEHSITE_UNUSED_SESSION_LIFETIME", "15")
# App sessions at once, per app host process and per user; 0: no limit.
BOKEHSITE_MAX_SESSIONS = envcount("BOKEHSITE_MAX_SESSIONS", "100")
# MiB of resident memory per app process; past it the process takes no new sessions and is
# recycled (a fresh one started) once its last session has ended. 0: no limit.
BOKEHSITE_APP_MEMORY_LIMIT = envcount("BOKEHSITE_APP_MEMORY_LIMIT", "2048")
# Seconds of CPU time one callback of an app may take; past it its session is ended. 0: no limit.
BOKEHSITE_APP_CALLBACK_TIMEOUT = envcount("BOKEHSITE_APP_CALLBACK_TIMEOUT", "10")
# Development: a new session runs the app's code as it is now on disk (changed files are reloaded).
BOKEHSITE_APP_DEV = envbool("BOKEHSITE_APP_DEV", "0")
# App host processes each server process starts, which run the apps' code (Daphne never does);
# 0 when they run apart (bokeh-server --workers starts them itself; `bokehsite app-hosts`).
BOKEHSITE_APP_PROCESSES = envint("BOKEHSITE_APP_PROCESSES", "1")
if BOKEHSITE_APP_PROCESSES < 0:
    raise ImproperlyConfigured(f"BOKEHSITE_APP_PROCESSES must be 0 or more, not {BOKEHSITE_APP_PROCESSES}")
# Where this server is reached, for the app hosts it starts (bokeh-server sets it, so that they
# start with the server; otherwise they start with the first app page).
BOKEHSITE_SERVER_URL = os.environ.get("BOKEHSITE_SERVER_URL", "")

# The OpenAPI schema at /api/schema/ and its Swagger UI at /api/docs/ (bokehsite/openapi.py).
SPECTACULAR_SETTINGS = {
    "TITLE": "bokehsite API",
    "DESCRIPTION": (
        "Store, change and share Bokeh documents. In multi-user mode every call needs an API token "
        "(`Authorization: Token <secret>`) or a logged-in browser session; in single-user mode none. "
        "Document content travels as a bundle (`application/vnd.bokehsite.bundle`) or as JSON; "
        "every error is the `Error` envelope."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],  # the schema and its docs are public, in either mode
    "COMPONENT_SPLIT_REQUEST": True,
    "AUTHENTICATION_WHITELIST": [  # single-user mode needs no credentials: nothing to document
        "accounts.authentication.TokenAuthentication",
        "accounts.authentication.SessionAuthentication",
    ],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "bokehsite.openapi.add_error_component"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# "text" (Python's default lines) or "json" (one JSON object a line: bokehsite.log_format).
BOKEHSITE_LOG_FORMAT = os.environ.get("BOKEHSITE_LOG_FORMAT", "text").strip().lower()
if BOKEHSITE_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"BOKEHSITE_LOG_FORMAT must be text or json, not {BOKEHSITE_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "bokehsite.log_format.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             **({"formatter": "json"} if BOKEHSITE_LOG_FORMAT == "json" else {})}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

