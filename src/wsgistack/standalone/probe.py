"""Runs inside the *application's* interpreter, in a subprocess, to inspect the app.

Importing a user's project has side effects (Django can only be configured once per
process, modules print, sys.path changes), so detection never imports it into wsgistack's
own process. Usage: ``python -c <this file> REQUEST.json RESULT.json`` (handed over as source by
wsgistack.app.interpreter.helper_argv: the app's environment needs no wsgistack). Stdlib only.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback
from typing import Any


def rss_bytes() -> int | None:
    """This interpreter's resident memory now (Linux /proc; None elsewhere): measured once the
    app is imported, it is what each uWSGI worker starts from (the plan sizes workers by it)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _split(target: str) -> tuple[str, str, bool]:
    module, _, attr = target.partition(":")
    factory = attr.endswith("()")
    return module, (attr[:-2] if factory else attr) or "application", factory


def _module_missing(exc: ModuleNotFoundError, module: str) -> bool:
    """True when the module itself (or a parent package) is absent, not something it imports."""
    return exc.name is not None and (module == exc.name or module.startswith(exc.name + "."))


def probe_target(target: str) -> dict[str, Any]:
    module, attr, factory = _split(target)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if _module_missing(exc, module):
            return {"error": "missing-module", "module": module, "detail": str(exc)}
        return {"error": "import-failed", "module": module, "detail": traceback.format_exc()}
    except BaseException:  # noqa: BLE001 - the user's module may raise anything; report it whole
        return {"error": "import-failed", "module": module, "detail": traceback.format_exc()}
    if not hasattr(mod, attr):
        public = sorted(n for n in vars(mod) if not n.startswith("_") and callable(getattr(mod, n)))
        return {"error": "missing-attr", "module": module, "attr": attr, "detail": ", ".join(public[:12])}
    obj = getattr(mod, attr)
    if not callable(obj):
        return {"error": "not-callable", "module": module, "attr": attr, "detail": type(obj).__name__}
    result: dict[str, Any] = {"module": module, "attr": attr, "factory": factory, "kind": "wsgi"}
    app = obj
    if factory:
        try:
            app = obj()
        except BaseException:  # noqa: BLE001
            return {"error": "factory-failed", "module": module, "attr": attr, "detail": traceback.format_exc()}
        if not callable(app):
            return {"error": "not-callable", "module": module, "attr": attr + "()", "detail": type(app).__name__}
    # Flask: let Nginx serve the app's own static folder.
    if type(app).__module__.startswith("flask") or hasattr(app, "static_url_path") and hasattr(app, "url_map"):
        result["kind"] = "flask"
        folder = getattr(app, "static_folder", None)
        url = getattr(app, "static_url_path", None)
        if folder and url and os.path.isdir(folder):
            result["static"] = [{"url": url.rstrip("/") + "/", "dir": os.path.abspath(folder), "role": "static"}]
        result["storage"] = _flask_writes(app)
    result["rss"] = rss_bytes()
    return result


def _flask_writes(app: Any) -> list[str]:
    """Directories a Flask app writes, from its config: its instance folder when a setting
    points into it (flaskr's DATABASE = instance/flaskr.sqlite), and the directory of each
    SQLite URI (SQLALCHEMY_DATABASE_URI and its binds)."""
    instance = os.path.abspath(str(getattr(app, "instance_path", "") or ""))
    found: list[str] = []
    values: list[Any] = []
    config = getattr(app, "config", {}) or {}
    for value in config.values():
        values.extend(value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value])
    for value in values:
        if not isinstance(value, str | os.PathLike):
            continue
        text = os.fspath(value)
        if isinstance(text, bytes):
            continue
        if text.startswith("sqlite:///") and text != "sqlite:///:memory:":
            path = text[len("sqlite:///"):].split("?")[0]
            directory = os.path.dirname(os.path.abspath(os.path.join(instance, path) if not os.path.isabs(path) else path))
            found.append(directory)
        elif instance and text.startswith(instance + os.sep):
            found.append(instance)
    return list(dict.fromkeys(found))


def _hosts(settings: Any, server_names: list[str]) -> dict[str, Any]:
    """DEBUG, whether SECRET_KEY is set, ALLOWED_HOSTS and the server names Django would refuse (its own validate_host,
    with the hosts Django allows itself when DEBUG is on and ALLOWED_HOSTS is empty): a start
    whose every request is a 400 is said before anything serves."""
    from django.http.request import validate_host

    allowed = [str(h) for h in settings.ALLOWED_HOSTS]
    effective = allowed or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    try:  # only whether there is one, never the key: Django raises ImproperlyConfigured for an empty one
        secret_key_set = bool(settings.SECRET_KEY)
    except Exception:  # noqa: BLE001
        secret_key_set = False
    return {
        "debug": bool(settings.DEBUG),
        "secret_key_set": secret_key_set,
        "allowed_hosts": allowed,
        "rejected_hosts": [h for h in server_names if "*" not in h and not validate_host(h.lower(), effective)],
    }


def _django_storages(settings: Any) -> list[str]:
    """The file-system locations of Django's STORAGES (4.2+) that the settings name
    (OPTIONS location), besides staticfiles (STATIC_ROOT, collectstatic's) and MEDIA_ROOT
    (the default storage's location, reported as media): the app writes uploads there."""
    found = []
    for alias, spec in (getattr(settings, "STORAGES", None) or {}).items():
        if alias == "staticfiles" or not isinstance(spec, dict):
            continue
        location = (spec.get("OPTIONS") or {}).get("location")
        backend = str(spec.get("BACKEND", ""))
        if location and ("FileSystemStorage" in backend or "filesystem" in backend.lower()):
            found.append(os.path.abspath(os.fspath(location)))
    return found


def probe_django(settings_module: str, server_names: list[str] | None = None, measure: bool = True) -> dict[str, Any]:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    try:
        spec = importlib.util.find_spec(settings_module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return {"error": "missing-module", "module": settings_module, "detail": "settings module not found"}
    try:
        from django.conf import settings

        wsgi_application = settings.WSGI_APPLICATION
        static_url, static_root = settings.STATIC_URL, settings.STATIC_ROOT
        media_url, media_root = settings.MEDIA_URL, settings.MEDIA_ROOT
        installed = list(settings.INSTALLED_APPS)
        # Each database's engine: app.migrate = auto migrates at start only when all are SQLite.
        databases = [[str(alias), str(db.get("ENGINE", ""))] for alias, db in settings.DATABASES.items()]
        # SQLite writes the database file and its journal beside it: the directory must be writable.
        writes = [
            os.path.dirname(os.path.abspath(str(db["NAME"])))
            for db in settings.DATABASES.values()
            if "sqlite3" in str(db.get("ENGINE", "")) and db.get("NAME") and str(db["NAME"]) != ":memory:"
            and not str(db["NAME"]).startswith("file:")
        ]
        hosts = _hosts(settings, server_names or [])
        storage = _django_storages(settings)
    except ModuleNotFoundError as exc:
        if exc.name == "django":
            return {"error": "no-django", "module": settings_module, "detail": str(exc)}
        return {"error": "import-failed", "module": settings_module, "detail": traceback.format_exc()}
    except BaseException:  # noqa: BLE001
        return {"error": "import-failed", "module": settings_module, "detail": traceback.format_exc()}
    if not wsgi_application:
        return {"error": "no-wsgi-application", "module": settings_module, "detail": ""}
    module, _, attr = str(wsgi_application).rpartition(".")
    if importlib.util.find_spec(module) is None:
        return {"error": "missing-module", "module": module, "detail": f"WSGI_APPLICATION = {wsgi_application!r}"}
    static = []
    if static_url and static_root and not str(static_url).startswith(("http://", "https://", "//")):
        static.append({"url": "/" + str(static_url).strip("/") + "/", "dir": str(static_root), "role": "static"})
    if media_url and media_root and not str(media_url).startswith(("http://", "https://", "//")):
        static.append({"url": "/" + str(media_url).strip("/") + "/", "dir": str(media_root), "role": "media"})
    return {
        "kind": "django",
        "module": module,
        "attr": attr,
        "factory": False,
        "settings": settings_module,
        "static": static,
        "staticfiles": "django.contrib.staticfiles" in installed,
        "writes": writes,
        "storage": storage,
        "databases": databases,
        **hosts,
        # The settings are imported: a fair part of the app. Its whole size (the WSGI module and
        # the URLconf, about 0.45 s more for the Django demo) only when the plan needs it.
        "rss": _django_app_rss(module) if measure else rss_bytes(),
        "rss_complete": measure,
    }


def _django_app_rss(module: str) -> int | None:
    """The app's memory as a worker holds it: the WSGI module imported (django.setup(): every
    app and model) and the URLconf resolved (the views, which a worker imports at its first
    request). Best effort: a failure here is uWSGI's to report (need-app), not detection's."""
    try:
        importlib.import_module(module)
        from django.urls import get_resolver

        get_resolver().url_patterns
    except BaseException:  # noqa: BLE001 - the app's code may raise anything; measure what got imported
        pass
    return rss_bytes()


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as fh:
        request = json.load(fh)
    if request.get("timeout"):
        # An import that waits (a database, a network service, input): dump every thread's
        # stack and exit once the time is up, so the caller can say where it waits.
        import faulthandler

        faulthandler.dump_traceback_later(float(request["timeout"]), exit=True, file=sys.stderr)
    sys.path.insert(0, request["path"])
    os.chdir(request["path"])
    result: dict[str, Any]
    if request.get("django_settings") and request.get("targets"):
        # An explicit target in a Django project (gunicorn's `mysite.wsgi:application`): still
        # Django (static, collectstatic, migrate), served through the callable named.
        result = probe_django(request["django_settings"], request.get("server_names"), bool(request.get("measure", True)))
        if "error" not in result:
            found = probe_target(request["targets"][0])
            if "error" in found:
                result = found
            else:
                result.update(module=found["module"], attr=found["attr"], factory=found["factory"])
    elif request.get("django_settings"):
        result = probe_django(request["django_settings"], request.get("server_names"), bool(request.get("measure", True)))
    else:
        attempts = []
        result = {"error": "nothing-found"}
        for target in request["targets"]:
            found = probe_target(target)
            if "error" not in found:
                result = found
                break
            attempts.append({"target": target, **found})
            # An explicit target, or a candidate that exists but is broken, stops the search:
            # guessing on past a broken app.py would hide the real error.
            if request.get("explicit") or found["error"] not in ("missing-module", "missing-attr"):
                result = found
                break
        result.setdefault("attempts", attempts)
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
