"""The start, once, as public stages: ``resolve -> plan -> render -> check -> write -> prestart``.

Each stage is a function of the previous stage's value:

- :func:`resolve`: the config (defaults < file < environment < command line);
- :func:`plan`: the app's interpreter (and its uWSGI, checked once), the app itself (:func:`detect`,
  the one detection entry: imported in a subprocess as the user it will run as), the host's
  facts, then the pure :func:`wsgistack.plan.stack.make_plan`;
- :func:`render`: every file, once (pure);
- :func:`check`: the binaries and the preflight checks, which only look at the plan and the files;
- :func:`write`: the runtime dir (made, or checked to be ours), the files, the dev certificate,
  the record `reload` keeps;
- :func:`prestart`: collectstatic, migrate, app.prestart, as the app's user.

``run`` (:func:`run` with :data:`RUN`), ``render`` (:data:`RENDER`), ``reload``
(ops.control.prepare_reload, :data:`RELOAD`), the image's entrypoint (:data:`ENTRYPOINT`) and
the benchmark (:data:`BENCH`) compose all of them with their own :class:`Flags`; ``doctor``
(:func:`doctor`) composes resolve, plan, render and check and writes nothing; the image's build
step and the compose/kube facts (:func:`project_facts`) compose resolve and detect; the
balancer (:func:`balancer`) its own plan, render, write and check. Nothing here prints:
progress goes to the ``say`` callback the CLI passes in.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from wsgistack import ids
from wsgistack.app.access import check_user_can_run
from wsgistack.app.detect import detect_app
from wsgistack.app.spec import AppSpec
from wsgistack.app.interpreter import AppPython, check_server
from wsgistack.app.interpreter import resolve as resolve_python
from wsgistack.config import LoadedConfig, load_config, record
from wsgistack.contracts import BuildRecord, Say
from wsgistack.errors import AppError, MissingBinaryError, WsgistackError
from wsgistack.layout import Paths
from wsgistack.layout import runtime_paths as _runtime_paths
from wsgistack.machine import INSTALL_NGINX_HINT, HostFacts, Machine, host_facts, run_as
from wsgistack.machine import detect as detect_machine
from wsgistack.plan.image import DataDir, ProjectFacts, image_name
from wsgistack.plan.stack import Plan, make_plan, memory_may_bind
from wsgistack.plan.stop import stop_plan
from wsgistack.render import RenderedFile, write_files
from wsgistack.render.stack import render as render_stack
from wsgistack.start.prestart import run_prestart
from wsgistack.start.runtime import check_writable, describe, prepare_runtime_dir, said_once, wait_for_upstream

if TYPE_CHECKING:
    from wsgistack.checks.registry import Report
    from wsgistack.runner.manager import Manager

Output = Callable[[str], None]  # where progress lines go (the CLI passes contracts.Say)
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
    remember: bool = True  # record the resolved settings for `reload` (contracts.StartRecord)
    wait_upstream: bool = False  # role web: wait for the uWSGI it fronts
    prestart: bool = True  # collectstatic, migrate, app.prestart


RUN = Flags()
ENTRYPOINT = Flags(deploy=True, wait_upstream=True)
RENDER = Flags(binaries=False, write="out", remember=False, prestart=False)
# ops.control.apply_reload writes the files that changed (never processes.json: the running
# manager keeps its table) and records the settings once nginx and uWSGI took them.
RELOAD = Flags(checks=False, binaries=False, write="none", remember=False, prestart=False)
BENCH = Flags(checks=False, remember=False, prestart=False)  # the defaults; the harness prepares the app


@dataclass(frozen=True)
class Started:
    loaded: LoadedConfig
    plan: Plan
    files: tuple[RenderedFile, ...]
    written: tuple[Path, ...]


# --- 1. resolve -------------------------------------------------------------------------------


def resolve(project: Path, *, env: Mapping[str, str], cli: Overrides | None = None,
            config_file: Path | None = None) -> LoadedConfig:
    """The config: defaults < file < environment < command line."""
    return load_config(project, env=dict(env), cli=dict(cli or {}), config_file=config_file)


load = resolve  # (the name the CLI's options use)


def runtime_paths(loaded: LoadedConfig) -> Paths:
    """Where a stack with this config keeps its files: all `status` needs (no app import)."""
    return _runtime_paths(loaded, os.geteuid())


# --- 2. plan ----------------------------------------------------------------------------------


def find_python(loaded: LoadedConfig, env: Mapping[str, str]) -> AppPython | None:
    """The app's interpreter (app.python, VIRTUAL_ENV, ./.venv, wsgistack's own); None for role web."""
    return None if loaded.config.role == "web" else resolve_python(loaded, env)


def app_path(loaded: LoadedConfig) -> Path:
    """app.path resolved against the project."""
    path = loaded.config.app.path
    return (path if path.is_absolute() else loaded.project_dir / path).resolve()


def detect(loaded: LoadedConfig, machine: Machine, env: Mapping[str, str], python: AppPython | None,
           host: HostFacts | None = None, *, as_app_user: bool = True, say: Output | None = None,
           measure: bool | None = None) -> AppSpec | None:
    """The app (None for the web role): the one detection entry. It imports the app's code, so
    it runs as the user uWSGI will run as: as root, importing settings as root would create
    files (a generated secret key, a data dir) that the app's real user then cannot write."""
    config = loaded.config
    if config.role == "web" or python is None:
        return None
    path = app_path(loaded)
    user = run_as(config, machine, host).user if as_app_user else None
    if user:
        check_user_can_run(user, python.import_dirs, path)
    if measure is None:  # the app's whole size, where it may decide the worker count (plan.stack)
        measure = memory_may_bind(config, machine)
    return detect_app(path, target=config.app.target, django_settings=config.app.django_settings,
                      python=python.python, env={**env, **config.app.env}, user=user,
                      server_names=config.server.server_names, timeout=config.app.import_timeout, say=say,
                      measure=measure)


find_app = detect


def detect_image(loaded: LoadedConfig, env: Mapping[str, str], python: str) -> tuple[AppSpec, tuple[str, ...]]:
    """The detection entry where the run-time environment is not (the image's build step, the
    compose files and manifests): settings that need a variable at import (SECRET_KEY) get a
    placeholder for it in the probe's process (app.detect.detect_for_image). Returns the app
    and those variables' names."""
    from wsgistack.app.detect import detect_for_image

    config = loaded.config
    return detect_for_image(app_path(loaded), target=config.app.target, django_settings=config.app.django_settings,
                            python=python, env={**env, **config.app.env}, timeout=config.app.import_timeout)


def plan(loaded: LoadedConfig, *, env: Mapping[str, str], machine: Machine | None = None,
         python: AppPython | None = None, data_dir: Path | None = None, uwsgi: bool = True,
         say: Output | None = None, measure: bool | None = None) -> Plan:
    """Interpreter, app, host facts, then the pure plan. ``python``: the interpreter the caller
    knows already (reload: the one the stack runs); ``data_dir``: tls.data_dir's default the
    caller knows (reload: the start's); ``uwsgi``: check the app's uWSGI (once, before the
    app's import: a venv without pyuwsgi is most often the wrong venv, and importing the app
    there would only add a confusing ImportError)."""
    if loaded.config.role == "balancer":
        raise WsgistackError(
            ids.BALANCER_E008,
            f"role = balancer (from {loaded.origin('role')}) runs HAProxy, not nginx and uWSGI: this command starts a stack",
            "run `wsgistack balance` with the same settings (the image's entrypoint does that for role balancer), "
            "or give this command another role (all, app, web, worker)",
        )
    machine = machine or detect_machine()
    python = python or find_python(loaded, env)
    if uwsgi and python is not None and loaded.config.role != "web":
        # run.E001 (missing from the app's environment), python.E003 (too old): uWSGI or granian
        check_server(python, loaded.config.server.app_server)
    host = host_facts(loaded, machine, env)  # users' groups, real paths, the build record: make_plan reads nothing
    if data_dir is not None:
        host = dataclasses.replace(host, data_dir=data_dir)
    app = detect(loaded, machine, env, python, host, say=say, measure=measure)
    return _acme_ready(make_plan(loaded, machine, app, python, host))


def _acme_ready(planned: Plan) -> Plan:
    """With tls.mode = "acme", nginx serves HTTPS once the certificate is there."""
    tls = planned.tls
    if tls is not None and tls.mode == "acme":
        planned = dataclasses.replace(planned, tls=dataclasses.replace(tls, ready=tls.cert.is_file() and tls.key.is_file()))
    return planned


def replan(planned: Plan, loaded: LoadedConfig, *, env: Mapping[str, str]) -> Plan:
    """The plan of another config for the app ``planned`` found, on its machine and interpreter
    (no second import of the app): what the start would run with ``loaded`` instead (reload:
    whether a setting only a restart applies would change anything)."""
    host = dataclasses.replace(host_facts(loaded, planned.machine, env), data_dir=planned.data_dir)
    return _acme_ready(make_plan(loaded, planned.machine, planned.app, planned.python, host))


# --- 3. render --------------------------------------------------------------------------------


def render(planned: Plan) -> tuple[RenderedFile, ...]:
    """Every file of the stack, once: the checks look at the files that are written."""
    return tuple(render_stack(planned))


# --- 4. check ---------------------------------------------------------------------------------


def check_binaries(planned: Plan) -> None:
    if planned.runs_nginx and not planned.machine.nginx:
        raise MissingBinaryError(ids.RUN_E001, "nginx is not installed (or not on PATH)", INSTALL_NGINX_HINT)
    if planned.tls is not None and planned.tls.mode == "acme" and not planned.machine.certbot:
        raise MissingBinaryError(
            ids.TLS_E003,
            "tls.mode = acme needs an ACME client, and certbot is not installed here",
            "install it next to wsgistack: pip install 'wsgistack[acme]' (or apt-get install certbot)",
        )


def check(planned: Plan, files: tuple[RenderedFile, ...], loaded: LoadedConfig, *, env: Mapping[str, str],
          deploy: bool = False, after_migrate: bool = False) -> Report:
    """The preflight checks on the plan and its files (checks only look); raises
    checks.PreflightError (doctor.E001) on an ERROR finding. ``after_migrate``: the app's
    own checks are left to :func:`check_after_migrate` (a start that migrates)."""
    from wsgistack.checks import preflight  # pydantic models of every check: only when checking

    return preflight(planned, loaded, deploy=deploy, env=env, files=files, app_checks=False if after_migrate else None)


def check_after_migrate(planned: Plan, files: tuple[RenderedFile, ...], loaded: LoadedConfig, *,
                        env: Mapping[str, str], deploy: bool) -> Report:
    """The app's own checks (Django's, which may query the schema), once migrate has run."""
    from wsgistack.checks import after_migrate

    return after_migrate(planned, loaded, deploy=deploy, env=env, files=files)


def migrates_then_checks(planned: Plan, flags: Flags) -> bool:
    """Whether this start runs Django's own checks after migrate, not in the preflight: it
    checks the app (deploy) and migrates Django before it serves. A deploy check that queries
    the schema then finds it, on a first deploy's empty database too."""
    app = planned.app
    return flags.checks and flags.deploy and flags.prestart and planned.migrate and app is not None and app.kind == "django"


def doctor(loaded: LoadedConfig, *, env: Mapping[str, str], machine: Machine | None = None, deploy: bool = False,
           dockerfile: Path | None = None, silenced: tuple[str, ...] = ()) -> Report:
    """Every check, as `wsgistack doctor` runs them: resolve, plan, render, check. Writes
    nothing (an app that cannot load is a finding, app.E100, so the other checks still run)."""
    from wsgistack.checks import CheckContext, run_checks

    machine = machine or detect_machine()
    python = None
    planned: Plan | None = None
    app_error: AppError | None = None
    try:
        python = find_python(loaded, env)
        planned = plan(loaded, env=env, machine=machine, python=python, uwsgi=False, measure=True)  # W103 needs the size
    except AppError as exc:
        app_error = exc
    files = render(planned) if planned is not None else None
    with CheckContext(loaded=loaded, plan=planned, machine=machine, env=dict(env), deploy=deploy, app_error=app_error,
                      dockerfile=dockerfile, python=python, files=files) as ctx:
        return run_checks(ctx, deploy=deploy, silenced={*loaded.config.silence, *silenced})


# --- 5. write ---------------------------------------------------------------------------------


def write(planned: Plan, files: tuple[RenderedFile, ...], mode: str, out: Path | None = None) -> tuple[Path, ...]:
    """``runtime``: the runtime dir (made, or refused when it is not ours: run.E007), the files
    (ops.json shared with the app's group), the dev certificate; ``out``: a directory the user
    reads; ``none``: nothing."""
    if mode == "none":
        return ()
    if mode == "out":
        assert out is not None
        written = write_files(list(files), out)
        (out / "nginx-temp").mkdir(exist_ok=True)
        return tuple(written)
    prepare_runtime_dir(planned)
    gid = -1
    if planned.run_group:
        import grp

        try:
            gid = grp.getgrnam(planned.run_group).gr_gid
        except KeyError:
            gid = -1
    return tuple(write_files(list(files), planned.paths.runtime, shared_gid=gid))


def make_certificates(planned: Plan) -> Plan:
    """tls.mode = self-signed: make (or reuse) the dev CA and the leaf the rendered nginx.conf
    names; a new CA adds the note that says how to trust it. Part of the write stage (doctor
    makes none)."""
    tls = planned.tls
    if tls is None or tls.mode != "self-signed":
        return planned
    from wsgistack.tls.certs import ensure_self_signed, trust_instructions

    leaf = ensure_self_signed(tls.data_dir, tls.names, tls.cert.parent)
    if leaf.ca_created:
        return dataclasses.replace(planned, notes=(*planned.notes, f"self-signed: {trust_instructions(leaf.ca)}"))
    return planned


def remember(planned: Plan, loaded: LoadedConfig, data_dir: Path) -> None:
    """What `wsgistack reload` keeps: the settings (never the environment, never app.env), the
    certificates' data dir and the interpreter uWSGI runs, in the state dir (ours alone)."""
    app_uid = None
    if planned.uwsgi_user:
        import pwd

        app_uid = pwd.getpwnam(planned.uwsgi_user).pw_uid
    record.save(planned.paths, loaded, data_dir=data_dir, python=planned.python, app_uid=app_uid,
                static_roots=planned.static_roots)


# --- 6. prestart ------------------------------------------------------------------------------


def prestart(planned: Plan, env: Mapping[str, str], say: Output = _silent) -> None:
    """collectstatic, migrate, app.prestart: as the app's user, after the write check."""
    run_prestart(planned, env, say)


# --- the whole start --------------------------------------------------------------------------


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
    ``machine``: the machine to plan for (default: this one); the benchmark plans for the CPUs
    its servers are pinned to, as a user's ``taskset`` would."""
    if loaded is None:
        loaded = resolve(project, env=env if config_env is None else config_env, cli=cli, config_file=config_file)
    if isinstance(say, Say):  # wsgistack's own lines as JSON too with server.log_format = "json"
        say.json_mode = loaded.config.server.log_format == "json"
    planned = plan(loaded, env=env, machine=machine, python=python, data_dir=data_dir, uwsgi=flags.binaries, say=say)
    if flags.binaries:
        check_binaries(planned)
    if flags.write == "runtime":
        # The dev certificate (tls.mode self-signed), before the checks: they look at the one
        # nginx will serve. In the data dir, not the runtime dir; doctor makes none.
        planned = make_certificates(planned)
    files = render(planned)
    later = migrates_then_checks(planned, flags)
    findings: tuple[Any, ...] = ()
    if flags.checks:
        findings = check(planned, files, loaded, env=env, deploy=flags.deploy, after_migrate=later).findings
        if not later:  # (a start that migrates says them all once its checks after migrate ran)
            for line in said_once([f.render() for f in findings], planned.restart_cache):
                say(line)
    written = write(planned, files, flags.write, out)
    if flags.write == "runtime":
        check_writable(planned)
        if flags.remember:
            remember(planned, loaded, planned.data_dir)
        say(describe(planned))
        if planned.python is not None:
            server = planned.python.server_version(planned.config.server.app_server)
            say(f"app interpreter: {planned.python.python} (Python {planned.python.version}, {server}; {planned.python.why})")
        for note in planned.notes:
            say(note)
        say(f"runtime dir: {planned.paths.runtime}")
    if flags.wait_upstream and planned.role == "web":
        wait_for_upstream(planned, planned.config.upstream_wait, say)
    if flags.prestart:
        prestart(planned, env, say)
    if later:
        findings += check_after_migrate(planned, files, loaded, env=env, deploy=flags.deploy).findings
        ordered = sorted(findings, key=lambda f: (-f.level, f.id, f.obj, f.message))  # as one preflight orders them
        for line in said_once([f.render() for f in ordered], planned.restart_cache):
            say(line)
    return Started(loaded, planned, files, written)


def serve(planned: Plan, on_ready: Callable[[Manager], None] | None = None) -> int:
    """Supervise the written process table in this process until it stops; returns the exit
    code. The app's own environment (app.env) is handed over in memory: no file holds it."""
    from wsgistack.contracts import ProcessTable
    from wsgistack.runner.manager import Manager

    table = ProcessTable.read(planned.paths.processes)
    return Manager(table, on_ready=on_ready, secret_env=dict(planned.config.app.env)).run()


# --- for images, compose files and manifests: the project's facts ------------------------------


def project_facts(path: Path, env: Mapping[str, str], *, detect_app_dirs: bool = True,
                  image_record: Callable[[], BuildRecord | None] | None = None) -> ProjectFacts:
    """What the image, compose files and manifests need to know of the project: its name, its
    background processes, and the directories the app writes inside it (STATIC_ROOT,
    MEDIA_ROOT, STORAGES locations, Flask's instance folder). Composed of the start's own
    stages (resolve, then the image's detection, :func:`detect_image`); the project's config
    file and DJANGO_SETTINGS_MODULE are read, not this shell's other settings. When the app
    cannot be imported here (a newer Python than this host's, a missing package),
    ``image_record`` (the CLI's: the built image's record, image.inspect) says what the image's
    own Python found."""
    path = path.resolve()
    notes: list[str] = []
    kind = None
    dirs: list[DataDir] = []
    processes: tuple[str, ...] = ()
    detected = False
    app_server = "uwsgi"
    app_dir = PurePosixPath(".")
    error: WsgistackError | None = None
    stop_grace = 0
    try:
        loaded = resolve(path, env={k: v for k, v in env.items() if k == "DJANGO_SETTINGS_MODULE"})
        processes = tuple(loaded.config.processes)
        app_server = loaded.config.server.app_server
        stop_grace = stop_plan(loaded.config, "all").grace
        if app_path(loaded).is_relative_to(path):
            app_dir = PurePosixPath(app_path(loaded).relative_to(path).as_posix())
    except WsgistackError as exc:
        notes.append(f"note: the project's config cannot be read ({exc.id}: {exc.message})")
        loaded = None
    if detect_app_dirs and loaded is not None:
        try:
            from wsgistack.app.interpreter import choose

            python, _why = choose(loaded, env)  # the app's own environment on this machine
            spec, placeholders = detect_image(loaded, env, python)
        except WsgistackError as exc:
            error = exc
        else:
            detected = True
            kind = spec.kind
            if placeholders:
                notes.append(f"note: the settings need {', '.join(placeholders)} at import: imported with a placeholder "
                             "to find the directories the app writes")
            dirs, outside = data_dirs(spec, path)
            notes += [f"note: {o}" for o in outside]
    if error is not None and image_record is not None:
        record = image_record()
        if record is not None and record.app is not None:
            detected, kind, error = True, record.kind, None
            dirs = [DataDir(d["role"], d.get("url", ""), PurePosixPath(d["path"])) for d in record.data_dirs]
            notes.append("note: the app cannot be imported here; the directories it writes are those the image found "
                         "with its own Python (its build record)")
    if error is not None:
        notes.append(f"note: could not detect the app here ({error.id}: {error.message})")
    return ProjectFacts(path=path, name=image_name(path), app_kind=kind, data_dirs=tuple(dirs), notes=tuple(notes),
                        processes=processes, detected=detected, app_server=app_server, app_dir=app_dir,
                        stop_grace=stop_grace,
                        error=None if error is None else error.render())


def data_dirs(spec: AppSpec, project: Path) -> tuple[list[DataDir], list[str]]:
    """The directories inside ``project`` the app writes (Django's STATIC_ROOT and MEDIA_ROOT,
    served by nginx; STORAGES locations and Flask's instance folder, role "data", served by no
    URL), and a line for each one outside it. A Flask app's static folder is its code: never
    one of them."""
    dirs: list[DataDir] = []
    outside: list[str] = []
    written = [(s.role, s.url, s.dir) for s in spec.static if spec.kind == "django" and s.role in ("static", "media")]
    written += [("data", "", d) for d in spec.storage]
    for role, url, directory in written:
        try:
            rel = directory.resolve().relative_to(project)
        except ValueError:
            what = f"{role} root" if role != "data" else "the directory"
            outside.append(f"{what} {directory} is outside the project: the image does not prepare it; point it inside "
                           f"the project (e.g. env DJANGO_{role.upper()}_ROOT) to share it between containers"
                           if role != "data" else f"{what} {directory} the app writes is outside the project: mount a "
                           "volume there")
            continue
        if rel.parts:
            dirs.append(DataDir(role, url, PurePosixPath(rel.as_posix())))
    return dirs, outside




from wsgistack.start.balancer import balancer  # noqa: E402 (it composes the stages above)

__all__ = [
    "BENCH", "ENTRYPOINT", "RELOAD", "RENDER", "RUN", "Flags", "Started", "resolve", "plan", "render", "check",
    "write", "prestart", "run", "doctor", "serve", "detect", "find_python", "runtime_paths", "project_facts", "balancer",
]
