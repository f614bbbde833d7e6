"""Settings for the wsgistack Django demo.

Everything environment-specific comes from environment variables (12-factor),
so the same code runs unchanged on a laptop, in CI and behind Nginx + uWSGI.
The defaults are chosen so that a plain ``python manage.py migrate &&
python manage.py runserver`` works with no configuration at all.

All paths are derived from this file's location, never from the current
working directory, because uWSGI may start the app from anywhere.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


# --- helpers ---------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in _TRUE


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def _load_or_create_secret_key(data_dir: Path) -> str:
    """Return DJANGO_SECRET_KEY, the key file's contents, or a persisted key.

    The generated key is written once to ``<data_dir>/secret_key`` (mode 0600)
    so that sessions and CSRF tokens survive restarts. Several uWSGI workers
    may import settings at the same moment, so the file is published
    atomically with ``os.link``: exactly one process wins, everybody else
    reads the winner's complete key.
    """
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        return key

    key_file = os.environ.get("DJANGO_SECRET_KEY_FILE", "").strip()
    if key_file:
        key = Path(key_file).expanduser().read_text(encoding="utf-8").strip()
        if not key:
            raise RuntimeError(f"DJANGO_SECRET_KEY_FILE {key_file!r} is empty")
        return key

    path = data_dir / "secret_key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass

    fd, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=".secret_key.")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")  # 64 chars
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            pass  # another worker won the race; use its key
    finally:
        os.unlink(tmp_name)
    return path.read_text(encoding="utf-8").strip()


# --- core ------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)

DATA_DIR = env_path("DEMO_DATA_DIR", BASE_DIR / "var")
DATA_DIR.mkdir(parents=True, exist_ok=True)
# What must outlive a container (the database, the generated secret key) goes to $DATA_DIR
# when it is set: the wsgistack image sets it to /data, a volume (docker run -v demo-data:/data).
STATE_DIR = env_path("DATA_DIR", DATA_DIR)
STATE_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = _load_or_create_secret_key(STATE_DIR)

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "posts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"

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


# --- database --------------------------------------------------------------
# Sessions live in this database (Django's default session engine), so any
# uWSGI worker -- or any host sharing the DB -- can serve any request without
# sticky sessions, as in the seed article.

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_path("DJANGO_DB_PATH", STATE_DIR / "db.sqlite3"),
        # Persistent connections buy nothing with SQLite and would keep file
        # handles open in every worker.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            # Several uWSGI workers write concurrently (sessions, posts):
            # wait for the lock instead of failing with "database is locked",
            # take the write lock up front, and let readers run during writes.
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

# A server database instead, as in seed 004: DATABASE_URL (e.g.
# mysql://demo:pw@10.0.0.21:3306/demo) is the primary, DATABASE_REPLICA_URLS
# (comma-separated) the read replicas. Writes, sessions and auth go to the
# primary; other reads to a healthy replica (demo/routers.py), except for a user
# who just wrote: their reads stay on the primary for DATABASE_PIN_SECONDS.
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
if DATABASE_URL or DATABASE_REPLICA_URLS:
    from demo.databases import database_settings

    DATABASES = database_settings(DATABASE_URL, DATABASE_REPLICA_URLS, DATABASES["default"])
REPLICA_DATABASES = [alias for alias in DATABASES if alias != "default"]
if REPLICA_DATABASES:
    DATABASE_ROUTERS = ["demo.routers.ReplicaRouter"]
    # `manage.py test`: the replicas are test mirrors of the primary (TEST.MIRROR), whose
    # test transactions they never see; the router then reads from the primary.
    TESTING = sys.argv[1:2] == ["test"]
    # Pins a user's reads to the primary for MULTIDB_PINNING_SECONDS after any
    # request that may write (a cookie, so it holds on every node behind a
    # balancer); first, so the pin covers the session and auth reads too.
    MIDDLEWARE.insert(0, "multidb.middleware.PinningRouterMiddleware")
    # A safe request whose replica is lost mid-query runs once more on the primary (last:
    # its process_exception sees the view's exception first).
    MIDDLEWARE.append("demo.routers.ReplicaFailoverMiddleware")
    MULTIDB_PINNING_SECONDS = env_int("DATABASE_PIN_SECONDS", 15)
    MULTIDB_PINNING_COOKIE_HTTPONLY = True
    # How often a worker re-checks that a replica answers and is not behind.
    DATABASE_REPLICA_CHECK_SECONDS = float(os.environ.get("DATABASE_REPLICA_CHECK_SECONDS", "") or 1)
    # ...and skips it when it does not reach the primary's position within this time.
    DATABASE_REPLICA_MAX_LAG = float(os.environ.get("DATABASE_REPLICA_MAX_LAG", "") or 0.5)

# Posts in Cassandra instead (seed 004's PostModel, posts/cassandra_store.py):
# POSTS_BACKEND=cassandra, CASSANDRA_HOSTS=10.0.0.31,10.0.0.32 (contact points).
POSTS_BACKEND = os.environ.get("POSTS_BACKEND", "").strip().lower() or "django"
if POSTS_BACKEND not in ("django", "cassandra"):
    raise RuntimeError(f"POSTS_BACKEND={POSTS_BACKEND!r}: expected django or cassandra")
CASSANDRA_HOSTS = env_list("CASSANDRA_HOSTS", ["127.0.0.1"])
CASSANDRA_KEYSPACE = os.environ.get("CASSANDRA_KEYSPACE", "").strip() or "posts_db"
CASSANDRA_REPLICATION = env_int("CASSANDRA_REPLICATION", 1)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True


# --- static & media --------------------------------------------------------
# In production Nginx serves both directories directly; Django only computes
# the URLs. Hashed static names (manifest storage) let Nginx send far-future
# cache headers for /static/.

STATIC_URL = "/static/"
STATIC_ROOT = env_path("DJANGO_STATIC_ROOT", DATA_DIR / "static")
MEDIA_URL = "/media/"
MEDIA_ROOT = env_path("DJANGO_MEDIA_ROOT", DATA_DIR / "media")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    },
}


# --- security ----------------------------------------------------------------
# TLS terminates at Nginx. wsgistack passes the real scheme to Django through
# ``wsgi.url_scheme``, so SECURE_PROXY_SSL_HEADER is off by default (trusting a
# client-controllable header is only safe when the proxy always overwrites it).

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Usually Nginx does the http->https redirect; this is for setups where it doesn't.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"


# --- logging ---------------------------------------------------------------
# Log to stderr only; uWSGI / the container runtime collects it.

LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO").strip().upper() or "INFO"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        # Replace Django's default handlers (DEBUG-only console + mail_admins)
        # so every record goes to stderr exactly once.
        "django": {"handlers": ["stderr"], "level": LOG_LEVEL, "propagate": False},
    },
}
