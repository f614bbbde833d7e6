"""Tests for examples/django_demo.

Django can be configured only once per process, and the rest of wsgistack's
suite may want its own settings, so everything here runs in subprocesses:
the demo's own test suite (``manage.py test``), the deploy check, and small
scripts that import the settings or call the real WSGI callable. Every run
gets a fresh DEMO_DATA_DIR under tmp_path, so nothing is written into the
repository, and runs from a cwd outside the project to prove that paths do
not depend on it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DJANGO_DIR = Path(__file__).resolve().parents[2] / "examples" / "django_demo"
MANAGE = DJANGO_DIR / "manage.py"

# Warnings `check --deploy` is expected to print with the default (plain HTTP,
# TLS-at-the-proxy-is-optional) environment.
EXPECTED_DEFAULT_DEPLOY_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def demo_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """A clean environment: no inherited DJANGO_*/DEMO_* variables, data in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEMO_"))}
    env["DEMO_DATA_DIR"] = str(tmp_path / "data")
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep __pycache__ out of examples/
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def manage(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(MANAGE), *args], env or demo_env(tmp_path), cwd=tmp_path)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


# Prints selected settings as JSON; argv: project dir, setting names...
DUMP_SETTINGS = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
from django.conf import settings
print(json.dumps({name: getattr(settings, name, None) for name in sys.argv[2:]}, default=str))
"""


def dump_settings(tmp_path: Path, env: dict[str, str], *names: str) -> dict[str, Any]:
    result = run([sys.executable, "-c", DUMP_SETTINGS, str(DJANGO_DIR), *names], env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    return json.loads(result.stdout)


# --- the demo's own Django test suite --------------------------------------


def test_manage_py_test_suite_passes(tmp_path: Path) -> None:
    """register -> login -> post with image -> list; ops endpoints; manifest static."""
    result = manage(tmp_path, "test", "posts", "--noinput", "-v", "2")
    assert result.returncode == 0, output(result)
    assert re.search(r"^OK", result.stderr, re.M), output(result)
    for name in (
        "test_register_login_post_with_image_and_list",
        "test_healthz",
        "test_whoami_plain_http",
        "test_pages_use_hashed_names",
    ):
        assert f"{name} " in result.stderr, f"{name} did not run\n{output(result)}"


def test_migrations_are_committed(tmp_path: Path) -> None:
    result = manage(tmp_path, "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, output(result)


# --- deploy check -------------------------------------------------------------


def test_check_deploy_has_no_errors(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "ERROR")
    assert result.returncode == 0, output(result)
    text = result.stdout + result.stderr
    assert "ERRORS:" not in text
    reported = set(re.findall(r"\((security\.[EW]\d+)\)", text))
    assert reported <= EXPECTED_DEFAULT_DEPLOY_WARNINGS, output(result)


def test_check_deploy_is_clean_when_hardened_via_env(tmp_path: Path) -> None:
    env = demo_env(
        tmp_path,
        DJANGO_SECURE_COOKIES="1",
        DJANGO_HSTS_SECONDS="31536000",
        DJANGO_HSTS_INCLUDE_SUBDOMAINS="1",
        DJANGO_HSTS_PRELOAD="1",
        DJANGO_SECURE_SSL_REDIRECT="1",
    )
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, output(result)
    assert "no issues" in result.stdout, output(result)


# --- settings come from the environment -------------------------------------------


def test_settings_defaults(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    s = dump_settings(
        tmp_path,
        env,
        "DEBUG",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "DATABASES",
        "MEDIA_ROOT",
        "MEDIA_URL",
        "STATIC_ROOT",
        "STATIC_URL",
        "STORAGES",
        "SESSION_ENGINE",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "WSGI_APPLICATION",
        "MIDDLEWARE",
        "LOGGING",
    )
    data = tmp_path / "data"
    assert s["DEBUG"] is False
    assert s["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "[::1]"]
    assert s["CSRF_TRUSTED_ORIGINS"] == []
    db = s["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(db["NAME"]) == data / "db.sqlite3"
    assert db["CONN_MAX_AGE"] == 0
    assert Path(s["MEDIA_ROOT"]) == data / "media"
    assert Path(s["STATIC_ROOT"]) == data / "static"
    assert (s["STATIC_URL"], s["MEDIA_URL"]) == ("/static/", "/media/")
    assert (
        s["STORAGES"]["staticfiles"]["BACKEND"]
        == "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
    )
    assert s["SESSION_ENGINE"] == "django.contrib.sessions.backends.db"
    assert s["SESSION_COOKIE_SECURE"] is False and s["CSRF_COOKIE_SECURE"] is False
    assert s["SECURE_HSTS_SECONDS"] == 0
    assert s["SECURE_PROXY_SSL_HEADER"] is None
    assert s["SECURE_SSL_REDIRECT"] is False
    assert s["WSGI_APPLICATION"] == "demo.wsgi.application"
    assert "django.middleware.csrf.CsrfViewMiddleware" in s["MIDDLEWARE"]
    assert s["LOGGING"]["handlers"]["stderr"]["stream"] == "ext://sys.stderr"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("0", False), ("false", False), ("no", False), ("", False)],
)
def test_debug_flag(tmp_path: Path, value: str, expected: bool) -> None:
    assert dump_settings(tmp_path, demo_env(tmp_path, DJANGO_DEBUG=value), "DEBUG")["DEBUG"] is expected


def test_settings_overrides(tmp_path: Path) -> None:
    env = demo_env(
        tmp_path,
        DJANGO_ALLOWED_HOSTS="demo.example.org, .example.net ,",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://demo.example.org,https://*.example.net",
        DJANGO_DB_PATH=str(tmp_path / "elsewhere" / "app.db"),
        DJANGO_MEDIA_ROOT=str(tmp_path / "uploads"),
        DJANGO_STATIC_ROOT=str(tmp_path / "collected"),
        DJANGO_SECURE_COOKIES="yes",
        DJANGO_HSTS_SECONDS="3600",
        DJANGO_SECURE_PROXY_SSL_HEADER="1",
    )
    s = dump_settings(
        tmp_path,
        env,
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "DATABASES",
        "MEDIA_ROOT",
        "STATIC_ROOT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
    )
    assert s["ALLOWED_HOSTS"] == ["demo.example.org", ".example.net"]
    assert s["CSRF_TRUSTED_ORIGINS"] == ["https://demo.example.org", "https://*.example.net"]
    assert Path(s["DATABASES"]["default"]["NAME"]) == tmp_path / "elsewhere" / "app.db"
    assert Path(s["MEDIA_ROOT"]) == tmp_path / "uploads"
    assert Path(s["STATIC_ROOT"]) == tmp_path / "collected"
    assert s["SESSION_COOKIE_SECURE"] is True and s["CSRF_COOKIE_SECURE"] is True
    assert s["SECURE_HSTS_SECONDS"] == 3600
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_data_dir_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "deep" / "nested" / "data"
    dump_settings(tmp_path, demo_env(tmp_path, DEMO_DATA_DIR=str(data_dir)), "DEBUG")
    assert data_dir.is_dir()


# --- secret key -----------------------------------------------------------------


def test_secret_key_is_generated_once_and_persisted(tmp_path: Path) -> None:
    env = demo_env(tmp_path, DJANGO_SECRET_KEY=None)
    first = dump_settings(tmp_path, env, "SECRET_KEY")["SECRET_KEY"]
    second = dump_settings(tmp_path, env, "SECRET_KEY")["SECRET_KEY"]
    assert first == second
    assert len(first) >= 50
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in key_file.parent.iterdir() if p.name.startswith(".secret_key")] == []


def test_secret_key_generation_is_race_free(tmp_path: Path) -> None:
    """Many workers starting at once must all end up with the same key."""
    env = demo_env(tmp_path, DJANGO_SECRET_KEY=None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DUMP_SETTINGS, str(DJANGO_DIR), "SECRET_KEY"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    keys = set()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        keys.add(json.loads(out)["SECRET_KEY"])
    assert len(keys) == 1


def test_secret_key_precedence(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("k" * 10 + secrets.token_urlsafe(50) + "\n")
    env = demo_env(tmp_path, DJANGO_SECRET_KEY=None, DJANGO_SECRET_KEY_FILE=str(key_file))
    assert dump_settings(tmp_path, env, "SECRET_KEY")["SECRET_KEY"] == key_file.read_text().strip()
    assert not (tmp_path / "data" / "secret_key").exists()

    env["DJANGO_SECRET_KEY"] = "from-env-" + secrets.token_urlsafe(50)
    assert dump_settings(tmp_path, env, "SECRET_KEY")["SECRET_KEY"] == env["DJANGO_SECRET_KEY"]


# --- the real WSGI callable, production-like -------------------------------------

# Loads demo/wsgi.py by file path (like `uwsgi --wsgi-file`) from a foreign cwd
# and calls `application` with a wsgiref environ. argv: path to wsgi.py.
CALL_WSGI = r"""
import importlib.util, io, json, sys
from wsgiref.util import setup_testing_defaults

spec = importlib.util.spec_from_file_location("demo_wsgi_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
application = module.application

def call(path, **extra):
    environ = {"PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "", "wsgi.input": io.BytesIO()}
    environ.update(extra)
    setup_testing_defaults(environ)
    seen = {}
    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers
    body = b"".join(application(environ, start_response))
    return {"status": seen["status"], "headers": dict(seen["headers"]), "body": body.decode()}

print(json.dumps({
    "healthz": call("/healthz"),
    "hello": call("/hello"),
    "whoami": call("/whoami", HTTP_HOST="localhost", REMOTE_ADDR="10.1.2.3",
                   HTTP_X_FORWARDED_FOR="203.0.113.7", **{"wsgi.url_scheme": "https"}),
    "home": call("/", HTTP_HOST="localhost"),
}))
"""


def test_wsgi_application_end_to_end(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    for args in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        result = manage(tmp_path, *args, env=env)
        assert result.returncode == 0, output(result)
    assert (tmp_path / "data" / "static" / "staticfiles.json").is_file()

    result = run([sys.executable, "-c", CALL_WSGI, str(DJANGO_DIR / "demo" / "wsgi.py")], env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    responses = json.loads(result.stdout)

    assert responses["healthz"]["status"] == "200 OK"
    assert responses["healthz"]["body"] == "ok"
    assert responses["hello"]["body"] == "Hello, world!"
    assert "Set-Cookie" not in responses["hello"]["headers"]

    whoami = json.loads(responses["whoami"]["body"])
    assert whoami["scheme"] == "https" and whoami["is_secure"] is True
    assert whoami["host"] == "localhost"
    assert whoami["remote_addr"] == "10.1.2.3"
    assert whoami["x_forwarded_for"] == "203.0.113.7"
    assert isinstance(whoami["pid"], int)

    home = responses["home"]
    assert home["status"] == "200 OK", home
    assert re.search(r'href="/static/posts/style\.[0-9a-f]{12}\.css"', home["body"])
