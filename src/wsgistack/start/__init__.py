"""The start sequence, once: config -> app -> plan -> checks -> render -> write -> prestart.

``run``, ``render``, ``reload`` (ops.prepare_reload), the container entrypoint and the
benchmark all call :func:`start`, each with its own :class:`Flags` (the presets below);
``status`` needs only the first step and calls :func:`runtime_paths`. A new capability (a
balancer, TLS certificates, manifests) adds a step or a file here, and every caller gets it.

Nothing here prints: progress goes to the ``say`` callback the CLI passes in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from wsgistack import hosts, ids
from wsgistack.app.access import check_user_can_run, unreachable_ancestor
from wsgistack.app.detect import AppSpec, detect_app
from wsgistack.app.interpreter import AppPython, check_uwsgi, save_started
from wsgistack.app.interpreter import resolve as resolve_python
from wsgistack.config import LoadedConfig, load_config, record
from wsgistack.errors import MissingBinaryError, WsgistackError
from wsgistack.layout import Paths
from wsgistack.layout import runtime_paths as _runtime_paths
from wsgistack.machine import INSTALL_NGINX_HINT, Machine, app_user, detect, host_facts
from wsgistack.plan.image import DataDir, ProjectFacts, image_name
from wsgistack.plan.stack import Plan, make_plan
from wsgistack.render import RenderedFile, write_files
from wsgistack.render.stack import render
from wsgistack.runner.manager import Manager, Say, is_ready, process_alive_from_pidfile
from wsgistack.start.prestart import collects_static, run_prestart

Output = Callable[[str], None]  # where progress lines go (the CLI passes runner.manager.Say)
Overrides = Mapping[str, tuple[Any, str]]  # dotted key -> (value, the flag that set it)


def _silent(_: str) -> None:
    pass


@dataclass(frozen=True)
class Flags:
    """Which steps a caller wants, and how."""

    checks: bool = True  # preflight: refuse to write files that would not start or are unsafe
    deploy: bool = False  # deploy-mode rules and the app's own checks (the container entrypoint)
    binaries: bool = True  # nginx and uwsgi must be installed here
    write: Literal["runtime", "out", "none"] = "runtime"  # the runtime dir, --out DIR, or nothing
    remember: bool = True  # record the resolved settings for `reload` (config.record)
    wait_upstream: bool = False  # role web: wait for the uWSGI it fronts
    prestart: bool = True  # collectstatic, migrate, app.prestart


RUN = Flags()
ENTRYPOINT = Flags(deploy=True, wait_upstream=True)
RENDER = Flags(binaries=False, write="out", remember=False, prestart=False)
# ops.apply_reload writes the files that changed (never processes.json: the running manager
# keeps its table) and records the settings once nginx and uWSGI took them.
RELOAD = Flags(checks=False, binaries=False, write="none", remember=False, prestart=False)
BENCH = Flags(checks=False, remember=False, prestart=False)  # the defaults; the harness prepares the app


@dataclass(frozen=True)
class Started:
    loaded: LoadedConfig
    plan: Plan
    files: tuple[RenderedFile, ...]
    written: tuple[Path, ...]


def run(
    project: Path,
    *,
    env: Mapping[str, str],
    cli: Overrides | None = None,
    config_file: Path | None = None,
    flags: Flags = RUN,
    out: Path | None = None,
    config_env: Mapping[str, str] | None = None,
    loaded: LoadedConfig | None = None,
    machine: Machine | None = None,
    python: AppPython | None = None,
    data_dir: Path | None = None,
    say: Output = _silent,
) -> Started:
    """The whole start, top to bottom. ``env`` is the environment the app runs with; the
    config is resolved from ``config_env`` (default: ``env``) and the ``cli`` overrides,
    unless the caller resolved it already (``loaded``: reload, from the recorded settings);
    likewise the app's interpreter (``python``: reload, the one the stack was started on) and
    tls.data_dir's default (``data_dir``: reload, the one the start found in its environment).
    ``machine``: the machine to plan for (default: this one, :func:`detect`); the benchmark
    plans for the CPUs its servers are pinned to, as a user's ``taskset`` would."""
    if loaded is None:
        loaded = load(project, env=env if config_env is None else config_env, cli=cli, config_file=config_file)
    if isinstance(say, Say):  # wsgistack's own lines as JSON too with server.log_format = "json"
        say.json_mode = loaded.config.server.log_format == "json"
    machine = machine or detect()
    python = python or find_python(loaded, env)  # the app's interpreter and its uWSGI
    if flags.binaries and python is not None and loaded.config.role != "web":
        # The app's uWSGI before its import: a venv without pyuwsgi is most often the wrong
        # venv, and importing the app there would only add a confusing ImportError.
        check_uwsgi(python)
    app = find_app(loaded, machine, env, python)  # imports the app, as the user uWSGI will run as
    host = host_facts(loaded, machine, env)  # users' groups, real paths: make_plan itself reads nothing
    if data_dir is not None:
        host = replace(host, data_dir=data_dir)
    plan = prepare_tls(make_plan(loaded, machine, app, python, host))  # + the dev certificate (tls.mode self-signed)
    if flags.binaries:
        check_binaries(plan)
    files = tuple(render(plan))  # rendered once: the checks look at the files we write
    if flags.checks:
        from wsgistack.checks import (
            preflight,  # pydantic models of every check: only when checking
        )

        findings = preflight(plan, loaded, deploy=flags.deploy, env=env, files=files).findings
        for line in said_once([f.render() for f in findings], env):
            say(line)
    written = write(plan, files, flags.write, out)
    if flags.write == "runtime":
        check_writable(plan)
        if flags.remember:  # what `wsgistack reload` keeps: the settings, not the environment
            record.save(plan.paths.private, loaded, data_dir=host.data_dir)
            if plan.python is not None:  # ...and the interpreter uWSGI runs
                save_started(plan.paths.private, plan.python)
        say(describe(plan))
        if plan.python is not None:
            say(f"app interpreter: {plan.python.python} (Python {plan.python.version}, {plan.python.uwsgi_dist} "
                f"{plan.python.uwsgi_version}; {plan.python.why})")
        for note in plan.notes:
            say(note)
        say(f"runtime dir: {plan.paths.runtime}")
    if flags.wait_upstream and plan.role == "web":
        wait_for_upstream(plan, plan.config.upstream_wait, say)
    if flags.prestart:
        run_prestart(plan, env, say)
    return Started(loaded, plan, files, written)


def said_once(rendered: list[str], env: Mapping[str, str]) -> list[str]:
    """The lines to say for the checks' findings (warnings, notes: errors stop the start
    before this). In a container with a data volume ($DATA_DIR), findings said at the last
    start with the same image, config and environment are one line, not the whole list
    again at every restart; anything new or changed is said in full."""
    lines = [line for text in rendered for line in text.splitlines()]
    data = env.get("DATA_DIR", "")
    if not rendered or not data:
        return lines
    import hashlib

    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    marker = Path(data) / ".wsgistack" / "start-findings.sha256"
    try:
        if marker.read_text(encoding="utf-8").strip() == digest:
            return [f"{len(rendered)} check findings, the same as at the last start (not repeated; "
                    "`wsgistack doctor --deploy` lists them)"]
    except OSError:
        pass
    try:
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(digest + "\n", encoding="utf-8")
    except OSError:
        pass  # a read-only volume: said every time, as before
    return lines


# --- 1. config ----------------------------------------------------------------------------


def load(project: Path, *, env: Mapping[str, str], cli: Overrides | None = None,
         config_file: Path | None = None) -> LoadedConfig:
    """Resolve the config: defaults < file < environment < command line."""
    return load_config(project, env=dict(env), cli=dict(cli or {}), config_file=config_file)


def runtime_paths(loaded: LoadedConfig) -> Paths:
    """Where a stack with this config keeps its files: all `status` needs (no app import)."""
    return _runtime_paths(loaded, os.geteuid())


# --- 2. app -------------------------------------------------------------------------------


def find_python(loaded: LoadedConfig, env: Mapping[str, str]) -> AppPython | None:
    """The app's interpreter (app.python, VIRTUAL_ENV, ./.venv, wsgistack's own); None for role web."""
    return None if loaded.config.role == "web" else resolve_python(loaded, env)


def find_app(loaded: LoadedConfig, machine: Machine, env: Mapping[str, str], python: AppPython | None) -> AppSpec | None:
    """Detect the app (not for the web role). Detection imports the app's code, so it runs as
    the same user uWSGI will: as root, importing settings as root would create files (a
    generated secret key, a data dir) that the app's real user then cannot write."""
    config = loaded.config
    if config.role == "web" or python is None:
        return None
    path = (config.app.path if config.app.path.is_absolute() else (loaded.project_dir / config.app.path)).resolve()
    user = app_user(config, machine)
    if user:
        check_user_can_run(user, python.import_dirs, path)
    return detect_app(path, target=config.app.target, django_settings=config.app.django_settings,
                      python=python.python, env={**env, **config.app.env}, user=user)


# --- 4. checks that need more than the plan -------------------------------------------------


def check_binaries(plan: Plan) -> None:
    if plan.runs_nginx and not plan.machine.nginx:
        raise MissingBinaryError(ids.RUN_E001, "nginx is not installed (or not on PATH)", INSTALL_NGINX_HINT)
    if plan.runs_uwsgi:
        assert plan.python is not None
        check_uwsgi(plan.python)  # run.E001 (missing from the app's environment), python.E003 (too old)
    if plan.tls is not None and plan.tls.mode == "acme" and not plan.machine.certbot:
        raise MissingBinaryError(
            ids.TLS_E003,
            "tls.mode = acme needs an ACME client, and certbot is not installed here",
            "install it next to wsgistack: pip install 'wsgistack[acme]' (or apt-get install certbot)",
        )


def check_ports(plan: Plan) -> None:
    """Refuse to start where another process already listens on nginx's address and port (a
    leftover server, another project's stack): nginx would say "Address already in use" five
    times and exit, and the manager only that nginx died."""
    if not plan.runs_nginx:
        return
    server = plan.config.server
    ports = [("server.port", "--port, PORT or server.port", server.port)]
    if plan.tls is not None:
        ports.append(("tls.port", "--tls-port or tls.port", plan.tls.port))
    for setting, how, port in ports:
        if _in_use(server.host, port):
            raise WsgistackError(
                ids.RUN_E006,
                f"{hosts.listen_address(server.host, port)} ({setting}) is already in use by another process",
                f"stop it (`ss -ltnp 'sport = :{port}'` names it), or give the stack another port: {how}",
            )


def _in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` as nginx does (SO_REUSEADDR, IPv6 only for an IPv6
    address) fails with EADDRINUSE. Any other failure (an address not on this machine, a
    privileged port) is left to nginx, whose message names it."""
    import errno
    import socket

    host = hosts.bare(host)
    try:
        infos = socket.getaddrinfo("0.0.0.0" if host in hosts.ANY_V4 else host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError:
        return False
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def check_reachable(plan: Plan) -> None:
    """Refuse to start a stack whose nginx workers could not reach the uWSGI socket."""
    user = plan.nginx_user
    if not (plan.runs_nginx and user and plan.upstream.kind == "unix"):
        return
    blocked = unreachable_ancestor(Path(plan.upstream.address), user)
    if blocked is not None:
        raise WsgistackError(
            ids.RUN_E003,
            f"nginx workers run as {user!r} and cannot reach {plan.upstream.address}: "
            f"{blocked} is not searchable by them (mode {blocked.stat().st_mode & 0o777:o})",
            "put the runtime dir somewhere they can traverse, e.g. --runtime-dir /tmp/myapp, "
            "or run wsgistack as a normal user",
        )


def app_writes(plan: Plan) -> list[Path]:
    """Directories the app (or its prestart steps) writes: STATIC_ROOT when collectstatic runs,
    MEDIA_ROOT, the directory of each SQLite database (SQLite writes its journal beside it)."""
    dirs: list[Path] = []
    if plan.app is None:
        return dirs
    if collects_static(plan):
        dirs += [loc.dir for loc in plan.locations if loc.role == "static"]
    dirs += [loc.dir for loc in plan.locations if loc.role == "media"]
    dirs += list(plan.app.writes)
    return list(dict.fromkeys(dirs))


_CAN_WRITE = (
    "import os, sys\n"
    "def ok(p):\n"
    "    while not os.path.isdir(p) and os.path.dirname(p) != p: p = os.path.dirname(p)\n"
    "    return os.access(p, os.W_OK | os.X_OK)\n"
    "print('\\n'.join(p for p in sys.argv[1:] if not ok(p)))\n"
)


def check_writable(plan: Plan) -> None:
    """Before prestart: the user the app runs as can write what it writes (run.E005). One
    error with the exact command, instead of a traceback from collectstatic or migrate."""
    dirs = app_writes(plan)
    if not dirs or plan.app is None:
        return
    argv = [plan.python.python if plan.python else plan.machine.python, "-c", _CAN_WRITE, *map(str, dirs)]
    # The same identity prestart and uWSGI get.
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **plan.run_as)
    if proc.returncode != 0:
        return  # the python itself cannot run as that user: run.E004 has said so
    blocked = [Path(line) for line in proc.stdout.splitlines() if line]
    if not blocked:
        return
    who = plan.uwsgi_user or os.environ.get("USER") or str(os.geteuid())
    image = _in_image_hint(plan, blocked)
    if image is not None:
        raise WsgistackError(ids.RUN_E005, f"the app runs as {who!r} and cannot write {', '.join(map(str, blocked))}", image)
    owner = f"{plan.uwsgi_user}:{plan.run_group}" if plan.uwsgi_user else who
    missing = [str(p) for p in blocked if not p.exists()]
    command = (f"mkdir -p {' '.join(missing)} && " if missing else "") + f"chown -R {owner} {' '.join(map(str, blocked))}"
    raise WsgistackError(
        ids.RUN_E005,
        f"the app runs as {who!r} and cannot write {', '.join(map(str, blocked))}",
        f"give that user the directories: {command}"
        + (" (or point STATIC_ROOT / MEDIA_ROOT / the database elsewhere)" if plan.uwsgi_user else ""),
    )


def _in_image_hint(plan: Plan, blocked: list[Path]) -> str | None:
    """In an image wsgistack built (its build record is there), the project dir is read-only
    on purpose: chown is not the fix. A database goes to $DATA_DIR (a volume); another
    directory is made writable at build time with --writable."""
    from wsgistack.layout import BUILD_RECORD

    app = plan.app
    if app is None or not (app.path / BUILD_RECORD).is_file():
        return None
    inside = [p for p in blocked if p.is_relative_to(app.path)]
    if not inside:
        return None
    databases = [p for p in inside if p in app.writes]
    others = [p.relative_to(app.path).as_posix() or "." for p in inside if p not in app.writes]
    hints = []
    if databases:
        hints.append(
            "the code directory is read-only in the image, as it should be: keep the SQLite database in the data "
            "directory, $DATA_DIR (/data, a volume: docker run -v myapp-data:/data IMAGE), e.g. DATABASES NAME = "
            "Path(os.environ.get('DATA_DIR', BASE_DIR)) / 'db.sqlite3'"
        )
    if others:
        hints.append("rebuild with " + " ".join(f"--writable {o}" for o in others)
                     + " (wsgistack build), or move that data to $DATA_DIR (a volume)")
    return "; ".join(hints)


def wait_for_upstream(plan: Plan, timeout: float, say: Output) -> None:
    """Role web: nginx without its uWSGI would answer 502 to everyone; wait, then fail clearly."""
    upstream = plan.upstream
    deadline = time.monotonic() + timeout
    next_note = 0.0
    while not is_ready(upstream.ready):
        now = time.monotonic()
        if now > deadline:
            raise WsgistackError(
                ids.ENTRYPOINT_E001,
                f"the uWSGI upstream {upstream.nginx} (UWSGI_URI) is not reachable after {timeout:g}s",
                "start the app container (WSGISTACK_ROLE=app) first and check that UWSGI_URI names its socket: "
                "host:port for TCP, or unix:/path on a volume both containers mount",
            )
        if now >= next_note:
            say(f"waiting for uWSGI at {upstream.nginx} ...")
            next_note = now + 5
        time.sleep(0.2)


# --- 6. write -----------------------------------------------------------------------------


def write(plan: Plan, files: tuple[RenderedFile, ...], mode: str, out: Path | None = None) -> tuple[Path, ...]:
    if mode == "out":
        assert out is not None
        written = write_files(list(files), out)
        (out / "nginx-temp").mkdir(exist_ok=True)
        return tuple(written)
    if mode == "none":
        return ()
    prepare_runtime_dir(plan)
    return tuple(write_files(list(files), plan.paths.runtime))


def prepare_runtime_dir(plan: Plan) -> None:
    """Create the runtime dir; refuse if another instance is live there, clear stale files."""
    paths = plan.paths
    for pidfile, what in ((paths.nginx_pid, "nginx"), (paths.uwsgi_pid, "uWSGI")):
        pid = process_alive_from_pidfile(pidfile)
        if pid:
            raise WsgistackError(
                ids.RUN_E002,
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
    check_ports(plan)  # another process on nginx's port: nginx would retry for 2.5 s, then fail
    check_reachable(plan)  # (find_app has already checked that the app's user can run it: run.E004)
    for stale in paths.transient:
        stale.unlink(missing_ok=True)


def describe(plan: Plan) -> str:
    if plan.app is None:
        return f"role {plan.role}: nginx -> {plan.upstream.nginx}"
    background = ", ".join(f"{b.name} ({' '.join(b.argv)})" for b in plan.background)
    if plan.role == "worker":
        return f"role worker: {background} in {plan.app.path}"
    return (
        f"role {plan.role}: {plan.app.kind} app {plan.app.target} in {plan.app.path}, "
        f"{plan.processes} processes x {plan.threads} threads"
        + (f"; background: {background}" if background else "")
    )  # (start says which interpreter, with its uWSGI, on the next line)


__all__ = [
    "BENCH", "ENTRYPOINT", "RELOAD", "RENDER", "RUN", "Flags", "Started", "start", "load", "runtime_paths",
    "find_python", "find_app", "check_binaries", "check_ports", "check_reachable", "check_writable", "app_writes", "wait_for_upstream",
    "write", "prepare_runtime_dir", "describe",
]


def build_plan(loaded: LoadedConfig, machine: Machine, env: Mapping[str, str], python: AppPython | None = None) -> Plan:
    """Find the app's interpreter, detect the app (unless this is the web role) and make the
    plan: the first steps of :func:`wsgistack.start.run`, for `doctor`, which checks
    without starting. ``python``: the app's interpreter when the caller resolved it already."""

    python = python or find_python(loaded, env)
    app = find_app(loaded, machine, env, python)
    return prepare_tls(make_plan(loaded, machine, app, python, host_facts(loaded, machine, env)))


def prepare_tls(plan: Plan) -> Plan:
    """The TLS side effects of planning: make (or reuse) the dev certificate for
    self-signed; for acme, see whether the certificate is there yet."""
    tls = plan.tls
    if tls is None or tls.mode == "files":
        return plan
    if tls.mode == "acme":
        return dataclasses.replace(plan, tls=dataclasses.replace(tls, ready=tls.cert.is_file() and tls.key.is_file()))
    from wsgistack.tls.certs import ensure_self_signed, trust_instructions

    leaf = ensure_self_signed(tls.data_dir, tls.names, tls.cert.parent)
    if leaf.ca_created:
        return dataclasses.replace(plan, notes=(*plan.notes, f"self-signed: {trust_instructions(leaf.ca)}"))
    return plan


def find_facts(path: Path, detect: bool = True) -> ProjectFacts:
    path = path.resolve()
    notes: list[str] = []
    kind = None
    dirs: list[DataDir] = []
    processes: tuple[str, ...] = ()
    if detect:
        from wsgistack.app.detect import detect_app
        from wsgistack.app.interpreter import choose
        from wsgistack.config import load_config

        try:
            loaded = load_config(path, env={k: v for k, v in os.environ.items() if k == "DJANGO_SETTINGS_MODULE"})
            config = loaded.config
            processes = tuple(config.processes)
            app_path = config.app.path if config.app.path.is_absolute() else path / config.app.path
            python, _why = choose(loaded, os.environ)  # the app's own environment on this machine
            spec = detect_app(app_path.resolve(), target=config.app.target, django_settings=config.app.django_settings,
                              python=python)
        except WsgistackError as exc:
            notes.append(f"note: could not detect the app here ({exc.id}: {exc.message}); no data directories prepared")
        else:
            kind = spec.kind
            # Django's STATIC_ROOT and MEDIA_ROOT are data (collected, uploaded); a Flask
            # app's static folder is part of its code: never left out of the image.
            for item in spec.static if spec.kind == "django" else ():
                if item.role not in ("static", "media"):
                    continue
                try:
                    rel = item.dir.resolve().relative_to(path)
                except ValueError:
                    notes.append(
                        f"note: {item.role} root {item.dir} is outside the project: the image does not prepare it; "
                        f"point it inside the project (e.g. env DJANGO_{item.role.upper()}_ROOT) to share it between containers"
                    )
                    continue
                if rel.parts:
                    dirs.append(DataDir(item.role, item.url, PurePosixPath(rel.as_posix())))
    return ProjectFacts(path=path, name=image_name(path), app_kind=kind, data_dirs=tuple(dirs), notes=tuple(notes),
                        processes=processes)


def serve(plan: Plan, on_ready: Callable[[Manager], None] | None = None) -> int:
    """Supervise nginx and uWSGI in this process until they stop; returns the exit code."""
    # Imported here: `python -m wsgistack.runner.manager` (the entrypoint's exec) must not
    # find the module already imported by its package.
    from wsgistack.runner.manager import Manager

    table = json.loads(plan.paths.processes.read_text())
    return Manager(table, on_ready=on_ready).run()
