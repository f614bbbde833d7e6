"""The container entrypoint: the same library calls as ``wsgistack run``, then ``exec``.

Order matters, so that a bad container fails *before* anything starts:
config from the environment -> plan (app detection) -> binaries -> deploy-mode preflight
checks -> render (all in `runner.prepare`, shared with `run`) -> (web role) wait for the
uWSGI upstream -> prestart -> exec the process manager, which becomes the container's main
process and receives its signals directly.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from wsgistack.config import load_config
from wsgistack.errors import WsgistackError
from wsgistack import runner
from wsgistack.plan import Plan
from wsgistack.runner import run_prestart
from wsgistack.runner.manager import Say, is_ready

DEFAULT_PROJECT = "/app"


def wait_for_upstream(plan: Plan, timeout: float, say: Callable[[str], None]) -> None:
    """Role web: nginx without its uWSGI would answer 502 to everyone; wait, then fail clearly."""
    upstream = plan.upstream
    ready = upstream.ready
    deadline = time.monotonic() + timeout
    next_note = 0.0
    while not is_ready(ready):
        now = time.monotonic()
        if now > deadline:
            raise WsgistackError(
                "entrypoint.E001",
                f"the uWSGI upstream {upstream.nginx} (UWSGI_URI) is not reachable after {timeout:g}s",
                "start the app container (WSGISTACK_ROLE=app) first and check that UWSGI_URI names its socket: "
                "host:port for TCP, or unix:/path on a volume both containers mount",
            )
        if now >= next_note:
            say(f"waiting for uWSGI at {upstream.nginx} ...")
            next_note = now + 5
        time.sleep(0.2)


def prepare(env: Mapping[str, str], project: Path, say: Callable[[str], None]) -> Plan:
    loaded = load_config(project, env=env)
    if isinstance(say, Say):
        say.json_mode = loaded.config.server.log_format == "json"
    plan = runner.prepare(loaded, env, say, deploy=True)
    if plan.role == "web":
        wait_for_upstream(plan, plan.config.upstream_wait, say)
    run_prestart(plan, env, say)
    return plan


def main(project: Path | None = None, prestart_only: bool = False) -> None:
    """Prepare, then replace this process with the manager (never returns on success).
    With ``prestart_only`` (the Kubernetes migration Job), return after the prestart steps."""
    say = Say()

    project = project or Path(os.environ.get("WSGISTACK_PROJECT_DIR", "") or (DEFAULT_PROJECT if Path(DEFAULT_PROJECT).is_dir() else "."))
    started = time.monotonic()
    plan = prepare(os.environ, project, say)
    if prestart_only:
        say(f"prestart done in {time.monotonic() - started:.2f}s (--prestart-only: nothing else starts)")
        return
    say(f"ready to start in {time.monotonic() - started:.2f}s; handing over to the process manager")
    sys.stdout.flush()
    python = plan.machine.python
    os.execv(python, [python, "-m", "wsgistack.runner.manager", str(plan.paths.processes)])
