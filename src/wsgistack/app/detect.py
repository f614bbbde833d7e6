"""Find the WSGI application: Django (manage.py), Flask, or an explicit ``module:callable``.

The import itself happens in :mod:`wsgistack.standalone.probe`, in a subprocess running the same
interpreter uWSGI will use; this module decides what to look for and turns the probe's
answer into an :class:`AppSpec` or a distinct, actionable :class:`AppError`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wsgistack import ids
from wsgistack.app.interpreter import helper_argv
from wsgistack.app.spec import AppSpec, StaticDir
from wsgistack.contracts import Trust, read_json
from wsgistack.errors import AppError, WsgistackError

# Tried in order when app.target = "auto" and there is no manage.py.
FLASK_CANDIDATES = (
    "wsgi:application",
    "wsgi:app",
    "app:app",
    "app:application",
    "app:create_app()",
    "main:app",
    "application:application",
)

_MANAGE_RE = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")
# A manage.py is Django's when it sets Django up: names DJANGO_SETTINGS_MODULE or imports
# django (execute_from_command_line). Flask-Script's and Click's manage.py do neither.
_DJANGO_MANAGE_RE = re.compile(r"DJANGO_SETTINGS_MODULE|^\s*(?:from|import)\s+django\b", re.M)


def _manage_text(path: Path) -> str | None:
    manage = path / "manage.py"
    return manage.read_text(encoding="utf-8", errors="replace") if manage.is_file() else None


def is_django_manage(path: Path) -> bool:
    """True when the project's manage.py sets up Django (not Flask-Script's or another's)."""
    text = _manage_text(path)
    return text is not None and _DJANGO_MANAGE_RE.search(text) is not None


def django_settings_from_manage(path: Path) -> str | None:
    text = _manage_text(path)
    match = _MANAGE_RE.search(text) if text is not None else None
    return match.group(1) if match else None


PROBE_TIMEOUT = 120  # app.import_timeout's default
WAIT_NOTE_AFTER = 5.0  # seconds before the first "waiting for the import" line
Say = Callable[[str], None]


def run_probe(python: str, request: Mapping[str, Any], env: Mapping[str, str], user: str | None = None,
              timeout: float = PROBE_TIMEOUT, say: Say | None = None) -> dict[str, Any]:
    """The probe's answer for ``request``, run by ``python`` as ``user``. An import that does
    not finish within ``timeout`` is app.E011 with the stack it waits in (the probe dumps it
    itself, faulthandler); while it waits, ``say`` hears what is being waited for."""
    with tempfile.TemporaryDirectory(prefix="wsgistack-probe-") as tmp:
        req, res = Path(tmp, "request.json"), Path(tmp, "result.json")
        req.write_text(json.dumps({**request, "timeout": timeout}))
        as_user: dict[str, Any] = {}
        trust = Trust.me()
        if user:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
            os.chown(req, entry.pw_uid, entry.pw_gid)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            trust = Trust.only(entry.pw_uid)  # what the app's user wrote: never a link, in our temp dir
        what = request.get("django_settings") or ", ".join(request.get("targets", [])[:3]) or "the app"
        proc = subprocess.Popen(helper_argv(python, "probe", str(req), str(res)), cwd=request["path"], env=dict(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **as_user)
        started = time.monotonic()
        wait = WAIT_NOTE_AFTER
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                waited = time.monotonic() - started
                if waited > timeout + 10:  # the probe's own deadline did not fire: a stuck interpreter
                    proc.kill()
                    stdout, stderr = proc.communicate()
                    raise _hung(what, timeout, stderr) from None
                if say is not None:
                    say(f"waiting for the app's import ({what}, pid {proc.pid}, {python}): {waited:.0f}s of "
                        f"app.import_timeout = {timeout:g}s")
                wait = 10.0
        if "Timeout (" in stderr and not res.exists():  # faulthandler's "Timeout (0:02:00)!" then the stacks
            raise _hung(what, timeout, stderr)
        if proc.returncode != 0 or not res.exists():
            raise AppError(
                ids.APP_E009,
                f"inspecting the application crashed (exit code {proc.returncode})",
                "run the app's import by hand to see the problem: python -c 'import <your module>'",
                details=(stderr or stdout)[-4000:],
            )
        try:
            result = read_json(res, trust)
        except WsgistackError as exc:
            raise AppError(ids.APP_E009, "the app probe's answer cannot be believed", exc.hint, details=exc.message) from None
        if not isinstance(result, dict):
            raise AppError(ids.APP_E009, "the app probe's answer is not an object", "")
        return result


def _hung(what: str, timeout: float, stderr: str) -> AppError:
    return AppError(
        ids.APP_E011,
        f"importing the app ({what}) did not finish within {timeout:g}s (app.import_timeout)",
        "the stack below shows where the import waits: a database, a network service or input at import time; "
        "connect lazily (at the first request), or raise app.import_timeout if it is only slow",
        details=stderr[-6000:],
    )


def _manage_note(path: Path) -> str:
    return " (there is one, but it does not set up Django)" if (path / "manage.py").is_file() else ""


def _raise_for(result: Mapping[str, Any], path: Path, target: str | None) -> None:
    kind = result["error"]
    module = result.get("module", "")
    detail = result.get("detail", "")
    if kind == "nothing-found":
        tried = ", ".join(a["target"] for a in result.get("attempts", []))
        raise AppError(
            ids.APP_E001,
            f"no WSGI application found in {path}",
            "point wsgistack at it: `wsgistack run --app module:callable` or app.target in wsgistack.toml "
            "(a Django project needs manage.py; a Flask app an `app` or `create_app()` in app.py or wsgi.py)",
            details=(f"looked for manage.py{_manage_note(path)} and {tried}") if tried else "",
        )
    if kind == "missing-module":
        raise AppError(
            ids.APP_E002,
            f'module "{module}" could not be found (from {target or "auto-detection"})',
            f"check the spelling and that {path} is the project directory (it is put on sys.path)",
            details=detail,
        )
    if kind == "import-failed":
        raise AppError(
            ids.APP_E003,
            f'importing "{module}" raised an exception',
            "the traceback above is from your code: fix it, then run again",
            details=detail,
        )
    if kind == "missing-attr":
        raise AppError(
            ids.APP_E004,
            f'module "{module}" has no attribute "{result.get("attr")}"',
            f"use module:callable with one of its callables: {detail}" if detail else "use module:callable",
        )
    if kind == "not-callable":
        raise AppError(
            ids.APP_E005,
            f'"{module}:{result.get("attr")}" is a {detail}, not a WSGI callable',
            "point at the application object (e.g. app = Flask(__name__)) or a factory written as create_app()",
        )
    if kind == "factory-failed":
        raise AppError(
            ids.APP_E006,
            f'calling the factory "{module}:{result.get("attr")}()" raised an exception',
            "the traceback above is from your code",
            details=detail,
        )
    if kind == "no-django":
        raise AppError(
            ids.APP_E007,
            "this is a Django project but Django is not installed in this environment",
            "install the project's requirements into the app's environment (the interpreter `wsgistack config --origin` "
            "names): <that python> -m pip install -r requirements.txt, or point app.python (--python) at the right one",
        )
    if kind == "no-wsgi-application":
        raise AppError(ids.APP_E008, f"{module} does not set WSGI_APPLICATION", 'add WSGI_APPLICATION = "<project>.wsgi.application"')
    raise AppError(ids.APP_E009, f"unexpected probe result: {kind}", "", details=detail)


def detect_app(
    path: Path,
    target: str = "auto",
    django_settings: str = "",
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    server_names: tuple[str, ...] = (),
    timeout: float = PROBE_TIMEOUT,
    say: Say | None = None,
    measure: bool = True,
) -> AppSpec:
    """Resolve what uWSGI should load. Raises :class:`AppError` with a distinct id per failure.
    ``server_names``: the Host names nginx serves (Django says which of them it refuses).
    ``measure``: also import a Django project's WSGI module and URLconf, to measure the app's
    whole size (AppSpec.rss; other apps are imported whole anyway)."""
    import sys

    python = python or sys.executable
    base_env = dict(env if env is not None else os.environ)
    base_env.pop("DJANGO_SETTINGS_MODULE", None)
    request: dict[str, Any] = {"path": str(path), "server_names": list(server_names), "measure": measure}
    settings = None
    if target == "auto":
        settings = django_settings or django_settings_from_manage(path)
        if settings:
            request["django_settings"] = settings
        elif is_django_manage(path):
            raise AppError(
                ids.APP_E010,
                f"{path / 'manage.py'} does not name a settings module",
                "set app.django_settings in wsgistack.toml or DJANGO_SETTINGS_MODULE",
            )
        else:
            request["targets"] = list(FLASK_CANDIDATES) + _package_candidates(path)
    else:
        request["targets"] = [target]
        request["explicit"] = True
        # A Django project served through a callable named explicitly (gunicorn's habit,
        # `mysite.wsgi:application`) is still a Django project: its settings are probed too.
        settings = django_settings or (django_settings_from_manage(path) if is_django_manage(path) else None)
        if settings:
            request["django_settings"] = settings
            base_env["DJANGO_SETTINGS_MODULE"] = settings
    result = run_probe(python, request, base_env, user, timeout=timeout, say=say)
    if "error" in result:
        _raise_for(result, path, None if target == "auto" else target)
    static = tuple(
        StaticDir(url=s["url"], dir=(path / s["dir"]).resolve(), role=s.get("role", "static")) for s in result.get("static", [])
    )
    kind = result["kind"]
    return AppSpec(
        kind=kind,
        module=result["module"],
        attr=result["attr"],
        path=path,
        factory=bool(result.get("factory")),
        django_settings=result.get("settings") or (django_settings or None),
        static=static,
        staticfiles=bool(result.get("staticfiles")),
        writes=tuple((path / w).resolve() for w in result.get("writes", [])),
        storage=tuple((path / w).resolve() for w in result.get("storage", [])),
        databases=tuple((str(alias), str(engine)) for alias, engine in result.get("databases", [])),
        debug=result.get("debug"),
        secret_key_set=result.get("secret_key_set"),
        allowed_hosts=tuple(result["allowed_hosts"]) if "allowed_hosts" in result else None,
        rejected_hosts=tuple(result["rejected_hosts"]) if "rejected_hosts" in result else None,
        rss=int(result["rss"]) if isinstance(result.get("rss"), int) and result["rss"] > 0 and result.get(
            "rss_complete", True) else None,
    )


def _package_candidates(path: Path) -> list[str]:
    """Packages and modules in the project dir that define a WSGI app, by a text scan
    (``create_app``, ``app =``, ``application``), so nothing is imported to find them."""
    out = []
    for module in sorted(path.glob("*.py")):
        if module.stem in ("setup", "manage", "conftest") or f"{module.stem}:" in " ".join(FLASK_CANDIDATES):
            continue
        text = module.read_text(encoding="utf-8", errors="replace")
        for attr, pattern in (("application", r"^(def application\(|application\s*=)"), ("app", r"^app\s*=")):
            if re.search(pattern, text, re.M):
                out.append(f"{module.stem}:{attr}")
                break
    for init in sorted(path.glob("*/__init__.py")):
        text = init.read_text(encoding="utf-8", errors="replace")
        pkg = init.parent.name
        if "def create_app" in text:
            out.append(f"{pkg}:create_app()")
        elif re.search(r"^app\s*=", text, re.M):
            out.append(f"{pkg}:app")
    return out


# What a settings module that needs a run-time variable raises at import, naming it: KeyError
# of os.environ, "Set the SECRET_KEY environment variable" (django-environ), decouple's
# "SECRET_KEY not found. Declare it as envvar", ImproperlyConfigured of a product's own.
_KEY_ERROR_RE = re.compile(r"^KeyError: '([A-Za-z_][A-Za-z0-9_]*)'$", re.M)
_NAMED_RE = re.compile(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])\b")
PLACEHOLDER = "wsgistack-build-placeholder"
MAX_PLACEHOLDERS = 5


def missing_variables(detail: str, env: Mapping[str, str]) -> list[str]:
    """The environment variables an import failure names that ``env`` does not set (from the
    exception's own line, the traceback's last)."""
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    names = _KEY_ERROR_RE.findall(last) or _NAMED_RE.findall(last)
    return [n for n in dict.fromkeys(names) if n not in env]


def detect_for_image(
    path: Path,
    target: str = "auto",
    django_settings: str = "",
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> tuple[AppSpec, tuple[str, ...]]:
    """Detection where the run-time environment is not (the image's build step, compose and
    kube files written on a laptop): settings that refuse to import without a variable such
    as SECRET_KEY are imported again with a placeholder value for each variable the error
    names (what `SECRET_KEY=dummy manage.py collectstatic` in a Dockerfile does by hand), in
    the probe's process only. Returns the app and the variables given placeholders; raises
    the last AppError when that does not help."""
    base = dict(env if env is not None else os.environ)
    placeholders: list[str] = []
    while True:
        try:
            spec = detect_app(path, target=target, django_settings=django_settings, python=python,
                              env={**base, **{name: PLACEHOLDER for name in placeholders}}, timeout=timeout, measure=False)
            return spec, tuple(placeholders)
        except AppError as exc:
            if exc.id not in (ids.APP_E003, ids.APP_E006) or len(placeholders) >= MAX_PLACEHOLDERS:
                raise
            names = [n for n in missing_variables(exc.details or "", base) if n not in placeholders]
            if not names:
                raise
            placeholders += names[: MAX_PLACEHOLDERS - len(placeholders)]
