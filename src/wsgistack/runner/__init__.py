"""The run sequence shared by ``wsgistack run`` and the container entrypoint:
prepare the runtime dir, write the rendered files, run prestart steps, then supervise."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from wsgistack.errors import MissingBinaryError, PrestartError, WsgistackError
from wsgistack.access import unreachable_ancestor
from wsgistack.config.sources import LoadedConfig
from wsgistack.interpreter import helper_argv
from wsgistack.plan import Plan
from wsgistack.render import render, write_files
from wsgistack.runner.manager import Manager, process_alive_from_pidfile

INSTALL_NGINX_HINT = (
    "install it: sudo apt-get install nginx-light (Debian/Ubuntu), "
    "sudo dnf install nginx (Fedora), brew install nginx (macOS)"
)


def check_binaries(plan: Plan) -> None:
    if plan.runs_nginx and not plan.machine.nginx:
        raise MissingBinaryError("run.E001", "nginx is not installed (or not on PATH)", INSTALL_NGINX_HINT)
    if plan.runs_uwsgi:
        from wsgistack.interpreter import check_uwsgi

        assert plan.python is not None
        check_uwsgi(plan.python)  # run.E001 (missing from the app's environment), python.E003 (too old)
    if plan.tls is not None and plan.tls.mode == "acme" and not plan.machine.certbot:
        raise MissingBinaryError(
            "tls.E003",
            "tls.mode = acme needs an ACME client, and certbot is not installed here",
            "install it next to wsgistack: pip install 'wsgistack[acme]' (or apt-get install certbot)",
        )


def check_reachable(plan: Plan) -> None:
    """Refuse to start a stack whose nginx workers could not reach the uWSGI socket."""
    user = plan.nginx_user
    if not (plan.runs_nginx and user and plan.upstream.kind == "unix"):
        return
    blocked = unreachable_ancestor(Path(plan.upstream.address), user)
    if blocked is not None:
        raise WsgistackError(
            "run.E003",
            f"nginx workers run as {user!r} and cannot reach {plan.upstream.address}: "
            f"{blocked} is not searchable by them (mode {blocked.stat().st_mode & 0o777:o})",
            "put the runtime dir somewhere they can traverse, e.g. --runtime-dir /tmp/myapp, "
            "or run wsgistack as a normal user",
        )


def prepare_runtime_dir(plan: Plan) -> None:
    """Create the runtime dir; refuse if another instance is live there, clear stale files."""
    paths = plan.paths
    for pidfile, what in ((paths.nginx_pid, "nginx"), (paths.uwsgi_pid, "uWSGI")):
        pid = process_alive_from_pidfile(pidfile)
        if pid:
            raise WsgistackError(
                "run.E002",
                f"{what} from another wsgistack run is still running there (pid {pid}, {pidfile})",
                "stop it first (Ctrl-C in its terminal, or kill -TERM the pid), or set a different runtime_dir",
            )
    # Traversable by nginx workers when we are root and they are not; listing stays private.
    paths.runtime.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.runtime, 0o711 if plan.machine.is_root else 0o700)
    paths.private.mkdir(exist_ok=True)
    os.chmod(paths.private, 0o700)
    if plan.uwsgi_user:
        # uWSGI writes its pidfile, FIFO and stats socket here after dropping privileges.
        # Only this directory is its own: the runtime dir, where nginx.conf lives, stays
        # root's, so the app cannot rewrite the config a root nginx master re-reads.
        import pwd

        entry = pwd.getpwnam(plan.uwsgi_user)
        os.chown(paths.private, entry.pw_uid, entry.pw_gid)
    paths.nginx_temp.mkdir(exist_ok=True)
    check_reachable(plan)  # (build_plan has already checked that the app's user can run it: run.E004)
    for stale in paths.transient:
        stale.unlink(missing_ok=True)


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
        has_static_root = any(loc.role == "static" for loc in plan.locations)
        if plan.config.app.collectstatic and app.staticfiles and has_static_root:
            django_steps.append("collectstatic")
        if plan.config.app.migrate:
            django_steps.append("migrate")
        if django_steps:
            steps.append((" + ".join(django_steps), helper_argv(plan.python.python, "djangoprestart", *django_steps)))
    for command in plan.config.app.prestart:
        steps.append((command, shlex.split(command)))
    return steps


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
            raise PrestartError("prestart.E001", f"prestart command not found: {argv[0]}", "check app.prestart") from None
        except PermissionError as exc:
            raise PrestartError(
                "prestart.E001", f"prestart step {label!r} cannot start as {plan.uwsgi_user!r}: {exc}", hint
            ) from None
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            raise PrestartError(
                "prestart.E002",
                f"prestart step {label!r} failed with exit code {proc.returncode}",
                hint,
                details=output[-4000:],
            )
        if output:
            for line in output.splitlines():
                say(f"  {line}")


def write_runtime(plan: Plan) -> Path:
    prepare_runtime_dir(plan)
    write_files(render(plan), plan.paths.runtime)
    return plan.paths.processes


def describe(plan: Plan) -> str:
    if plan.app is None:
        return f"role {plan.role}: nginx -> {plan.upstream.nginx}"
    python = f"\napp interpreter: {plan.python.python} (Python {plan.python.version}; {plan.python.why})" if plan.python else ""
    background = ", ".join(f"{b.name} ({' '.join(b.argv)})" for b in plan.background)
    if plan.role == "worker":
        return f"role worker: {background} in {plan.app.path}"
    return (
        f"role {plan.role}: {plan.app.kind} app {plan.app.target} in {plan.app.path}, "
        f"{plan.processes} processes x {plan.threads} threads"
        + (f"; background: {background}" if background else "")
        + python
    )


def prepare(loaded: LoadedConfig, env: Mapping[str, str], say: Callable[[str], None], *, deploy: bool) -> Plan:
    """Everything before prestart, for `run` and the entrypoint alike: plan (app detection),
    binaries, preflight checks (raise doctor.E001 on ERROR findings; the rest is said), then
    the runtime dir and rendered files."""
    from wsgistack.checks import preflight  # checks import this module: import late
    from wsgistack.config import record
    from wsgistack.machine import detect
    from wsgistack.plan import build_plan

    plan = build_plan(loaded, detect(), env)
    check_binaries(plan)
    for finding in preflight(plan, loaded, deploy=deploy, env=env).findings:
        for line in finding.render().splitlines():
            say(line)
    write_runtime(plan)
    # What `wsgistack reload` keeps: the settings this start resolved, not its environment.
    record.save(plan.paths.private, loaded)
    say(describe(plan))
    for note in plan.notes:
        say(note)
    say(f"runtime dir: {plan.paths.runtime}")
    return plan


def serve(plan: Plan, on_ready: Callable[[Manager], None] | None = None) -> int:
    """Supervise nginx and uWSGI in this process until they stop; returns the exit code."""
    import json

    table = json.loads(plan.paths.processes.read_text())
    return Manager(table, on_ready=on_ready).run()
