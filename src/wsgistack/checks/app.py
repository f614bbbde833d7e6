"""app: the application itself: that it loads, and for Django its own system checks
(``check --deploy``) plus the settings that must agree with the wsgistack config.

Django's messages keep Django's id (security.W004) in the message and as ``origin_id``,
so ``--silence security.W004`` and Django's SILENCED_SYSTEM_CHECKS both work. Three of them
are errors in deploy mode, where Django only warns: DEBUG, a weak SECRET_KEY and an empty
ALLOWED_HOSTS each make a production site unsafe or unusable. Numbered from 100:
app.E001-E0xx are the errors app detection raises (``wsgistack run`` stops on them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from wsgistack.app.interpreter import helper_argv
from wsgistack.app.spec import AppSpec
from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import ERROR, INFO, WARNING, Finding, Level, declare
from wsgistack.checks.registry import register
from wsgistack.contracts import BuildRecord, RestartCache, Trust, read_json
from wsgistack.errors import WsgistackError

E100 = declare(
    "app.E100",
    ERROR,
    "the application could not be loaded",
    "fix the error shown (its own id says which: app.E001-app.E010); `wsgistack run` stops on it too",
)
E101 = declare(
    "app.E101",
    ERROR,
    "Django runs with DEBUG = True: tracebacks, settings and SQL are shown to anyone",
    "set DEBUG = False in production (e.g. read it from an environment variable that defaults to off)",
    mode="deploy",
)
E102 = declare(
    "app.E102",
    ERROR,
    "Django's SECRET_KEY is weak: sessions, password reset links and signed data can be forged",
    "set a long random SECRET_KEY from the environment or a secret file: "
    "python -c 'import secrets; print(secrets.token_urlsafe(50))'",
    mode="deploy",
)
E103 = declare(
    "app.E103",
    ERROR,
    "Django's ALLOWED_HOSTS is empty: with DEBUG off every request is answered 400",
    "set ALLOWED_HOSTS to the host names in server.server_names",
)
W104 = declare(
    "app.W104",
    WARNING,
    "SECURE_PROXY_SSL_HEADER is set but server.trusted_proxies is empty",
    "wsgistack already passes the real scheme to Django as wsgi.url_scheme: list your TLS-terminating "
    "proxy in server.trusted_proxies and remove SECURE_PROXY_SSL_HEADER",
)
W105 = declare(
    "app.W105",
    WARNING,
    "nginx accepts host names that Django's ALLOWED_HOSTS rejects: those requests get 400",
    "make ALLOWED_HOSTS and server.server_names list the same names",
)
W106 = declare(
    "app.W106",
    WARNING,
    "no layer checks the Host header: server.server_names is \"*\" and ALLOWED_HOSTS contains \"*\"",
    "list your domain names in server.server_names (nginx then refuses others) or in ALLOWED_HOSTS",
    mode="deploy",
)
W111 = declare(
    "app.W111",
    WARNING,
    "django.contrib.staticfiles is installed but STATIC_ROOT is not set: no static file is served (the admin is unstyled)",
    "set STATIC_ROOT (e.g. STATIC_ROOT = BASE_DIR / 'staticfiles'): the start collects static files there and nginx "
    "serves them; a reload after setting it collects them too",
)
E107 = declare(
    "app.E107",
    ERROR,
    "Django's system checks could not run",
    "run `python manage.py check` in the project to see the problem, and fix it",
)
E108 = declare(
    "app.E108",
    ERROR,
    "Django's system checks need database tables that do not exist yet: the database has not been migrated",
    "migrate it first: `wsgistack run --migrate` (or app.migrate = true, WSGISTACK_APP__MIGRATE=true on one container, "
    "the Kubernetes migration Job), which migrates and then checks; a shared database is migrated once per release",
)
# How each database says a table is missing (PostgreSQL, SQLite, MySQL/MariaDB, Oracle).
_MISSING_TABLE_RE = re.compile(
    r'relation "([^"]+)" does not exist|no such table: (\S+)|Table \'([^\']+)\' doesn\'t exist|ORA-00942')


def _missing_table(detail: str) -> str | None:
    match = _MISSING_TABLE_RE.search(detail)
    if match is None:
        return None
    return next((g for g in match.groups() if g), "?")


E110 = declare(
    "app.E110",
    ERROR,
    "Django's system checks report an error (Django's id is in the message)",
    "follow Django's hint, or see https://docs.djangoproject.com/en/stable/ref/checks/ for the id",
)
W110 = declare(
    "app.W110",
    WARNING,
    "Django's system checks report a warning (Django's id is in the message)",
    "follow Django's hint, or see https://docs.djangoproject.com/en/stable/ref/checks/ for the id; "
    "silence it with --silence <Django id> or SILENCED_SYSTEM_CHECKS if it does not apply",
)
I110 = declare(
    "app.I110",
    INFO,
    "Django's system checks report an informational message (Django's id is in the message)",
    "see https://docs.djangoproject.com/en/stable/ref/checks/ for the id",
)

# Django's deploy warnings that are errors for us (DEBUG, SECRET_KEY, ALLOWED_HOSTS).
ESCALATED = {"security.W018": E101, "security.W009": E102, "security.W020": E103}

# Django gives no hint for its deploy checks; these say what to do behind wsgistack.
DJANGO_HINTS = {
    "security.W004": "once the site is served only over HTTPS, set SECURE_HSTS_SECONDS (start with 3600, then raise it)",
    "security.W008": "redirect http to https at your TLS terminator; or set SECURE_SSL_REDIRECT = True with that "
    "proxy in server.trusted_proxies, so Django sees the real scheme and does not loop",
    "security.W012": "set SESSION_COOKIE_SECURE = True when the site is served over HTTPS",
    "security.W016": "set CSRF_COOKIE_SECURE = True when the site is served over HTTPS",
}


@register()
def django_serves(ctx: CheckContext) -> list[Finding]:
    """What detection learnt of Django's settings, said by every start (no subprocess of its
    own): a site that would answer every request with 400, host names nginx serves that
    Django refuses, static files nobody serves."""
    app = ctx.plan.app if ctx.plan else None
    if app is None or app.kind != "django":
        return []
    found: list[Finding] = []
    server = ctx.config.server
    if app.debug is False and app.allowed_hosts == ():
        found.append(E103(
            "Django's ALLOWED_HOSTS is empty and DEBUG is off: every request would be answered 400 (Bad Request)",
            obj="ALLOWED_HOSTS",
            hint=f"set ALLOWED_HOSTS to the names nginx serves ({', '.join(server.server_names)}), e.g. from an environment "
                 "variable your settings read; or set server.server_names to the names you list there"))
    elif app.rejected_hosts:
        every = "*" not in server.server_names and set(app.rejected_hosts) >= set(server.server_names)
        found.append(W105(
            f"server.server_names lists {', '.join(app.rejected_hosts)}, which ALLOWED_HOSTS = {list(app.allowed_hosts or ())!r} "
            "rejects" + (": every request through nginx would be answered 400" if every else ""),
            obj="ALLOWED_HOSTS"))
    if ctx.deploy and app.secret_key_set is False:
        found.append(_empty_secret_key(ctx, app.django_settings or "the settings"))
    if app.staticfiles and not any(s.role == "static" for s in app.static):
        found.append(W111(obj="STATIC_ROOT"))
    return found


# What projects call their production settings beside the development ones (a settings package).
PRODUCTION_NAMES = ("production", "prod")


def production_settings(app: AppSpec) -> str | None:
    """The production settings module beside the one a start used, when it is a settings
    package's other module (Wagtail's template: manage.py picks mysite.settings.dev, and
    mysite.settings.production is next to it). Looks at files only; None when there is none."""
    module = app.django_settings or ""
    package, _, name = module.rpartition(".")
    if not package or name in PRODUCTION_NAMES:
        return None
    directory = app.path.joinpath(*package.split("."))
    for other in PRODUCTION_NAMES:
        if (directory / f"{other}.py").is_file():
            return f"{package}.{other}"
    return None


# The variables a settings module usually reads its key from.
SECRET_KEY_VARIABLES = ("SECRET_KEY", "DJANGO_SECRET_KEY")


def _empty_secret_key(ctx: CheckContext, settings: str) -> Finding:
    """An empty SECRET_KEY, said with the other facts of detection (E103 stopped a start before
    Django's checks said it, so the next start found it). When this start's environment has the
    variable, the settings do not read it: that is the fix, not "a longer key"."""
    env = {**ctx.env, **(ctx.plan.app_env if ctx.plan else {})}
    given = [name for name in SECRET_KEY_VARIABLES if env.get(name)]
    read = f"SECRET_KEY = os.environ[{(given or ['SECRET_KEY'])[0]!r}] (with import os)"
    if given:
        hint = f"the environment has {given[0]}, which {settings} does not read: add {read} to it"
    else:
        hint = (f"read it from the environment in {settings}, {read}, and give each start a long random one "
                "(e.g. docker run -e SECRET_KEY=...): python -c 'import secrets; print(secrets.token_urlsafe(50))'")
    return E102(f"Django's SECRET_KEY is empty: {settings} sets none, and sessions, CSRF tokens and signed data need it",
                obj="SECRET_KEY", hint=hint)


@register()
def app_loads(ctx: CheckContext) -> list[Finding]:
    err = ctx.app_error
    if err is None:
        return []
    return [E100(f"{err.id}: {err.message}", hint=err.hint or None, origin_id=err.id, details=err.details)]


def run_django_probe(ctx: CheckContext) -> dict[str, Any]:
    """Django's checks for the planned app, in the app's interpreter, as the app's user
    (about 0.5-1 s): the settings are the app's code, which never runs as root."""
    plan = ctx.plan
    assert plan is not None and plan.app is not None
    app = plan.app
    request = {
        "path": str(app.path),
        "settings": app.django_settings,
        "deploy": ctx.deploy,
        "server_names": list(ctx.config.server.server_names),
    }
    env = {**ctx.env, **plan.app_env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(app.path), ctx.env.get("PYTHONPATH", "")]))
    python = plan.python.python if plan.python else ctx.machine.python
    key = _restart_key(plan.build, plan.restart_cache, request, env, python)
    if key is not None and plan.restart_cache is not None:
        cache = RestartCache.load(plan.restart_cache)
        if cache.django_key == key and cache.django:
            return dict(cache.django)
    result = _probe(plan, python, request, env)
    if key is not None and plan.restart_cache is not None and "error" not in result:
        RestartCache.load(plan.restart_cache).replace(django_key=key, django=result).save(plan.restart_cache)
    return result


def _probe(plan: Any, python: str, request: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One run of the djangochecks helper; its answer is read back under the trust rule of a
    file the app's user wrote (contracts.read_json)."""
    as_user = plan.run_as
    with tempfile.TemporaryDirectory(prefix="wsgistack-checks-") as tmp:
        req, res = Path(tmp, "request.json"), Path(tmp, "result.json")
        req.write_text(json.dumps(request))
        trust = Trust.me()
        if as_user:
            import pwd

            entry = pwd.getpwnam(as_user["user"])
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
            os.chmod(req, 0o644)
            trust = Trust.only(entry.pw_uid)
        proc = subprocess.run(
            helper_argv(python, "djangochecks", str(req), str(res)),
            cwd=plan.app.path, env=env, capture_output=True, text=True, timeout=300, **as_user,
        )
        if proc.returncode != 0 or not res.exists():
            return {"error": "probe-crashed", "detail": (proc.stderr or proc.stdout)[-4000:]}
        try:
            result = read_json(res, trust)
        except WsgistackError as exc:
            return {"error": "probe-crashed", "detail": exc.render()}
        return result if isinstance(result, dict) else {"error": "probe-crashed", "detail": "not an object"}


def _restart_key(build: BuildRecord | None, cache: Path | None, request: dict[str, Any], env: dict[str, str],
                 python: str) -> str | None:
    """In an image wsgistack built (its build record), with a data volume ($DATA_DIR): the key
    under which the result of Django's checks for this very image, config and environment is
    kept, so a restart skips the subprocess (0.5-1 s). Anything different (another image,
    another variable or value; the container's HOSTNAME aside) checks again. None elsewhere."""
    import hashlib

    if build is None or cache is None:
        return None
    # wsgistack's own settings (WSGISTACK_*: what reaches the checks is in the request) and the
    # container's HOSTNAME do not change what Django's checks say: a first deploy with
    # WSGISTACK_APP__MIGRATE=true and the restarts without it share the result.
    seen = sorted((k, v) for k, v in env.items() if k != "HOSTNAME" and not k.startswith("WSGISTACK_"))
    material = json.dumps([request, seen, build.to_json(), python], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def django_findings(ctx: CheckContext, result: dict[str, Any]) -> list[Finding]:
    """Turn the probe's answer into findings (pure, so tests can feed it answers)."""
    if "error" in result:
        detail = result.get("detail", "")
        table = _missing_table(detail)
        if table is not None:
            return [E108(f"Django's system checks query the table {table}, which the database does not have yet: "
                         "it has not been migrated", obj=table, details=detail)]
        return [E107(details=detail)]
    if result.get("django"):
        ctx.facts["Django"] = result["django"]
    found: list[Finding] = []
    # The host facts detection already gave (django_serves says them at every start); an app
    # detected without them (an older probe, a test's spec) is said here instead.
    app = ctx.plan.app if ctx.plan else None
    known_hosts = app is not None and app.rejected_hosts is not None
    for msg in result["messages"]:
        django_id, level = msg["id"], Level(max(10, min(50, round(msg["level"] / 10) * 10)))
        text = f"({django_id}) {msg['msg']}" if django_id else msg["msg"]
        obj = "" if msg["obj"] in ("", "None", "?") else msg["obj"]
        if django_id == "security.W020" and known_hosts and app is not None and app.debug is False:
            continue  # said by django_serves (E103), from the detection's own facts
        if django_id == "security.W009" and ctx.deploy and app is not None and app.secret_key_set is False:
            continue  # said by django_serves (E102, an empty key), from the detection's own facts
        escalated = ESCALATED.get(django_id) if ctx.deploy else None
        if escalated is not None:
            better = production_settings(app) if escalated in (E101, E102) and app is not None else None
            hint = None if better is None else (
                f"{escalated.hint}; the settings in use are {app.django_settings}, and the project has {better}: "  # type: ignore[union-attr]
                f"DJANGO_SETTINGS_MODULE={better} (or [app] django_settings = {better!r} in wsgistack.toml, with which "
                "the image also collects static files at build)")
            found.append(escalated(text, obj=obj, origin_id=django_id, hint=hint))
            continue
        declared = E110 if level >= Level.ERROR else W110 if level == Level.WARNING else I110
        hint = msg["hint"] or DJANGO_HINTS.get(django_id) or None
        found.append(declared(text, obj=obj, origin_id=django_id, hint=hint, level=level))

    server = ctx.config.server
    if result.get("secure_proxy_ssl_header") and not server.trusted_proxies and ctx.plan and ctx.plan.runs_nginx:
        header = result["secure_proxy_ssl_header"]
        found.append(W104(
            f"SECURE_PROXY_SSL_HEADER = {tuple(header)!r} but server.trusted_proxies is empty: nginx replaces "
            f"X-Forwarded-Proto with the scheme it saw itself, so Django never sees your load balancer's https "
            f"(with SECURE_SSL_REDIRECT that is a redirect loop); wsgistack already passes the real scheme as wsgi.url_scheme",
            obj="SECURE_PROXY_SSL_HEADER",
        ))
    rejected = result.get("rejected_hosts") or []
    if rejected and not known_hosts:
        found.append(W105(
            f"server.server_names lists {', '.join(rejected)}, which ALLOWED_HOSTS = {result.get('allowed_hosts')!r} rejects",
            obj="ALLOWED_HOSTS",
        ))
    if ctx.deploy and "*" in server.server_names and "*" in (result.get("allowed_hosts") or []):
        found.append(W106(obj="ALLOWED_HOSTS"))
    return found


@register(slow=True, tags=("schema",))  # "schema": it may query the database (preflight.after_migrate)
def django_checks(ctx: CheckContext) -> list[Finding]:
    app = ctx.plan.app if ctx.plan else None
    if app is None or app.kind != "django" or not app.django_settings:
        return []
    return django_findings(ctx, run_django_probe(ctx))
