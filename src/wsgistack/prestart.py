"""Prestart steps: Django's collectstatic and migrate, then the user's own commands.

They run after the files are written and before anything serves, as the user uWSGI runs as.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from wsgistack.errors import PrestartError
from wsgistack.interpreter import helper_argv
from wsgistack.plan import Plan
from wsgistack import errorids as ids


def prestart_commands(plan: Plan) -> list[tuple[str, list[str]]]:
    """(label, argv) for each prestart step, in order."""
    steps: list[tuple[str, list[str]]] = []
    app = plan.app
    if app is None:
        return steps
    assert plan.python is not None
    # A worker container runs one background process: collectstatic and migrate are the app
    # container's (run from several places at once they would race).
    if app.kind == "django" and plan.role != "worker":
        django_steps = []
        if collects_static(plan):
            django_steps.append("collectstatic")
        if plan.config.app.migrate:
            django_steps.append("migrate")
        if django_steps:
            steps.append((" + ".join(django_steps), helper_argv(plan.python.python, "djangoprestart", *django_steps)))
    for command in plan.config.app.prestart:
        steps.append((command, shlex.split(command)))
    return steps


def collects_static(plan: Plan) -> bool:
    """Django's collectstatic runs: it is on, staticfiles is installed and STATIC_ROOT is set."""
    app = plan.app
    has_static_root = any(loc.role == "static" for loc in plan.locations)
    return bool(app and app.kind == "django" and plan.config.app.collectstatic and app.staticfiles and has_static_root)


def run_prestart(plan: Plan, env: Mapping[str, str], say: Callable[[str], None]) -> None:
    assert plan.app is not None or not plan.config.app.prestart
    cwd = plan.app.path if plan.app else Path.cwd()
    child_env = {**env, **plan.app_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH", "")]))}
    # Prestart steps run as the user uWSGI runs as, not as root: the files they create
    # (the SQLite database, collected static files, media dirs) must belong to whoever
    # serves them, and the app's code (migrations, settings) never runs as root. Chowning
    # instead would need to know every path an app writes, and would hide the problem.
    as_user: dict[str, object] = {}
    if plan.uwsgi_user:
        as_user = {"user": plan.uwsgi_user, "group": plan.run_group, "extra_groups": []}
    hint = "fix the problem shown above, or switch the step off (app.collectstatic / app.migrate = false)"
    if plan.uwsgi_user:
        hint = (
            f"prestart steps run as {plan.uwsgi_user!r}, like uWSGI: the directories they write (database, "
            f"STATIC_ROOT, MEDIA_ROOT) must be writable by it (chown -R {plan.uwsgi_user}: DIR); otherwise " + hint
        )
    for label, argv in prestart_commands(plan):
        say(f"prestart: {label}" + (f" (as {plan.uwsgi_user})" if plan.uwsgi_user else ""))
        try:
            proc = subprocess.run(argv, cwd=cwd, env=child_env, capture_output=True, text=True, check=False, **as_user)  # type: ignore[call-overload]
        except FileNotFoundError:
            raise PrestartError(ids.PRESTART_E001, f"prestart command not found: {argv[0]}", "check app.prestart") from None
        except PermissionError as exc:
            raise PrestartError(
                ids.PRESTART_E001, f"prestart step {label!r} cannot start as {plan.uwsgi_user!r}: {exc}", hint
            ) from None
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            raise PrestartError(
                ids.PRESTART_E002,
                f"prestart step {label!r} failed with exit code {proc.returncode}",
                hint,
                details=output[-4000:],
            )
        if output:
            for line in output.splitlines():
                say(f"  {line}")
