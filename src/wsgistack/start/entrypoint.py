"""The container entrypoint: the start with the deploy flags, then ``exec`` of the manager.

Order matters, so that a bad container fails *before* anything starts: config from the
environment -> plan (app detection) -> binaries -> render -> deploy-mode preflight checks ->
write -> (web role) wait for the uWSGI upstream -> prestart, all in :func:`wsgistack.start.run`;
then the process manager replaces this process, so it is the container's main process and
receives its signals directly. Role balancer composes the balancer's own start instead
(:func:`wsgistack.start.balancer`: plan, render, write, ``haproxy -c``) and execs the same
process manager on HAProxy's process table.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

from wsgistack import start
from wsgistack.contracts import SECRET_ENV
from wsgistack.layout import APP_DIR
from wsgistack.plan.balancer import BalancerPlan
from wsgistack.plan.stack import Plan


def project_dir(env: Mapping[str, str]) -> Path:
    """$WSGISTACK_PROJECT_DIR, else /app when it exists, else the current directory."""
    return Path(env.get("WSGISTACK_PROJECT_DIR", "") or (str(APP_DIR) if Path(APP_DIR).is_dir() else "."))


def prepare(env: Mapping[str, str], project: Path, say: Callable[[str], None]) -> Plan | BalancerPlan:
    loaded = start.resolve(project, env=env)
    if loaded.config.role == "balancer":
        planned = start.balancer(loaded)
        say(f"role balancer: haproxy -> {', '.join(s.address for s in planned.servers)}; readiness GET "
            f"{planned.check_path} (Host {planned.check_host}); stats page {planned.stats_url}")
        say(f"runtime dir: {planned.paths.runtime}")
        return planned
    return start.run(project, env=env, flags=start.ENTRYPOINT, say=say, loaded=loaded).plan


def exec_manager(plan: Plan | BalancerPlan) -> NoReturn:
    """Replace this process with the process manager (never returns). The app's own
    environment (app.env) goes in the manager's environment, which only its user and root can
    read, never in a file (contracts.SECRET_ENV). The balancer has no app environment."""
    env = dict(os.environ)
    if isinstance(plan, BalancerPlan):
        python = sys.executable
    else:
        python = plan.machine.python
        if plan.config.app.env:
            env[SECRET_ENV] = json.dumps(dict(plan.config.app.env))
    os.execve(python, [python, "-m", "wsgistack.runner.manager", str(plan.paths.processes)], env)


def exec_command(env: Mapping[str, str], project: Path, argv: list[str]) -> NoReturn:
    """A one-off command in the image (`docker run IMAGE python manage.py createsuperuser`):
    replace this process with it, in the app's directory (app.path), with the app's
    environment (app.env, DJANGO_SETTINGS_MODULE from app.django_settings); nothing else of
    the start runs. As the image's user, like the app."""
    import shutil

    from wsgistack import ids
    from wsgistack.errors import WsgistackError

    loaded = start.resolve(project, env=env)
    child_env = {**env, **loaded.config.app.env}
    if loaded.config.app.django_settings:
        child_env.setdefault("DJANGO_SETTINGS_MODULE", loaded.config.app.django_settings)
    program = shutil.which(argv[0], path=child_env.get("PATH")) if "/" not in argv[0] else argv[0]
    if program is None:
        raise WsgistackError(ids.ENTRYPOINT_E002, f"{argv[0]!r} is not a command in the image (nor a directory)",
                             "give a program on the image's PATH (python, the app's venv scripts) and its arguments, "
                             "e.g. docker run --rm -it IMAGE python manage.py createsuperuser")
    os.chdir(start.app_path(loaded))
    os.execve(program, argv, child_env)

