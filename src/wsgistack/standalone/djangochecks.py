"""Runs inside the *application's* interpreter, in a subprocess: Django's system checks as data.

Like :mod:`wsgistack.standalone.probe`, it never runs in wsgistack's own process (Django can be set up
once per process, and settings have side effects). It reports the messages of
``manage.py check [--deploy]`` plus the few settings the doctor compares with the
wsgistack config. It never reports SECRET_KEY itself. Stdlib + Django only, and outside
the checks package, whose import (pydantic, Jinja2, every check) would cost ~170 ms per run.
Usage: ``python -c <this file> REQUEST.json RESULT.json`` (wsgistack.app.interpreter.helper_argv).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any


def django_report(request: dict[str, Any]) -> dict[str, Any]:
    os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core import checks
        from django.http.request import validate_host

        messages = checks.run_checks(include_deployment_checks=bool(request.get("deploy")))
    except BaseException:  # noqa: BLE001 - the user's settings may raise anything; report it whole
        return {"error": "checks-failed", "detail": traceback.format_exc()}
    kept = [m for m in messages if not m.is_silenced()]
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:  # what Django itself does in get_host()
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    return {
        "django": django.get_version(),
        "messages": [
            {
                "id": m.id or "",
                "level": int(m.level),
                "msg": str(m.msg),
                "hint": str(m.hint) if m.hint else "",
                "obj": "" if m.obj is None else str(m.obj),
            }
            for m in kept
        ],
        "silenced": len(messages) - len(kept),
        "debug": bool(settings.DEBUG),
        "secure_proxy_ssl_header": list(header) if header else None,
        "allowed_hosts": [str(h) for h in settings.ALLOWED_HOSTS],
        "rejected_hosts": [
            h for h in request.get("server_names", []) if "*" not in h and not validate_host(h.lower(), allowed)
        ],
    }


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as fh:
        request = json.load(fh)
    sys.path.insert(0, request["path"])
    os.chdir(request["path"])
    result = django_report(request)
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
