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
