"""Operating a running stack: status from uWSGI's stats socket and the pidfiles, and
graceful reloads through nginx's SIGHUP and uWSGI's master FIFO (seed 001's
``--connect-and-read`` / ``--reload`` done properly)."""

from __future__ import annotations

import dataclasses
import difflib
import errno
import os
import signal
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsgistack import contracts, ids
from wsgistack.app import interpreter
from wsgistack.config import record
from wsgistack.config.envvars import env_name
from wsgistack.config.sources import (
    DEFAULT,
    SECRET,
    LoadedConfig,
    from_env,
    load_config,
)
from wsgistack.errors import UsageError, WsgistackError
from wsgistack.layout import Paths
from wsgistack.machine import Machine
from wsgistack.plan.stack import Plan
from wsgistack.render import RenderedFile, write_files
from wsgistack.procfs import alive, child_pids, listen_queue, read_granian_stats, read_uwsgi_stats, started_at, with_rss
from wsgistack.contracts import ManagerState, Trust, untrusted

NOT_RUNNING_HINT = "start it with `wsgistack run` (same directory and settings), or pass the same --runtime-dir"
# A change to these takes the site off the address its users reach it on.
SITE_SETTINGS = ("server.host", "server.port", "tls.port")
# Settings a reload cannot apply: the process manager's table (the app's environment, stop
# timeout, which processes run and as whom, the ACME renewer, uWSGI's interpreter) is fixed at
# start, like the certificates a start prepares for tls.mode, and the runtime dir is where
# the reload found the stack. ([processes.NAME] are the manager's too; app.env is never recorded.)
NEXT_START = frozenset({"role", "process", "runtime_dir", "user", "platform", "stop_timeout", "upstream_wait", "tls.mode", "app.python",
                        "server.app_server"})
# With granian, its command line too: the process manager's table holds it, and granian's
# reload replaces its workers with the same flags.
GRANIAN_NEXT_START = frozenset({"uwsgi.processes", "uwsgi.threads", "uwsgi.listen", "server.worker_connections",
                                "request_timeout"})


def next_start(granian: bool) -> frozenset[str]:
    """The settings only a restart applies (see NEXT_START)."""
    return NEXT_START | GRANIAN_NEXT_START if granian else NEXT_START


@dataclass(frozen=True)
class Status:
    runtime_dir: str
    nginx_pid: int | None
    uwsgi_pid: int | None
    stats: dict[str, Any] | None
    # The process manager's table: every process it runs (background ones included), with
    # state and restarts; empty when no manager runs there.
    processes: tuple[dict[str, Any], ...] = ()
    draining: bool = False  # a drain marker exists: readiness answers 503 (`wsgistack drain`, or the status page's)
    # What status saw but did not believe (a planted page drain marker: trust.E001's message).
    refused: tuple[str, ...] = ()
    manager_pid: int | None = None
    app_server: str = "uwsgi"  # which one runs (uwsgi_pid is its pid): "uwsgi" or "granian"
    # The app server's listen queue (waiting, capacity): the kernel's for its unix socket,
    # uWSGI's for TCP.
    listen_queue: tuple[int, int] | None = None

    @property
    def running(self) -> bool:
        return bool(self.nginx_pid or self.uwsgi_pid or any(p.get("pid") for p in self.processes))


def read_manager_state(paths: Paths) -> ManagerState | None:
    """The process manager's state file, if a live manager wrote it, believed only as our own
    (or root's) file that no one else may write: its pids get signals."""
    try:
        state = ManagerState.read(paths.manager_state, Trust.me())
    except FileNotFoundError:
        return None
    return state if state.alive else None


def status(where: Paths | Plan, stats: bool = True) -> Status:
    """The stack whose files are at ``where`` (its Paths; a Plan is accepted too). Its pids come
    from the process manager's own state file, each checked to still be the manager's child
    (never from a pidfile the app's user could write); stats from uWSGI's stats socket when it
    has one (uwsgi.stats)."""
    paths = where.paths if isinstance(where, Plan) else where
    manager = read_manager_state(paths)
    granian_pid = manager.pid("granian") if manager else None
    uwsgi_pid = granian_pid or (manager.pid("uwsgi") if manager else None)
    nginx_pid = manager.pid("nginx") if manager else None
    found = None
    queue = None
    if granian_pid and stats:
        found = read_granian_stats(granian_pid, str(paths.workers_dir))
    elif uwsgi_pid and stats:
        try:
            found = with_rss(read_uwsgi_stats(str(paths.stats)))
        except (OSError, ValueError):
            found = None
    if uwsgi_pid and stats:  # either app server: the kernel's count on its unix socket
        queue = listen_queue(str(paths.socket))
        if queue is None and found is not None and "sockets" in found:
            queue = (int(found.get("listen_queue") or 0), int(((found.get("sockets") or [{}])[0]).get("max_queue") or 0))
    page_drained, refused = _page_drain(paths)
    return Status(
        runtime_dir=str(paths.runtime),
        refused=refused,
        nginx_pid=nginx_pid,
        uwsgi_pid=uwsgi_pid,
        stats=found,
        processes=tuple(dataclasses.asdict(p) for p in manager.processes) if manager else (),
        draining=paths.drain.exists() or page_drained,
        manager_pid=manager.manager_pid if manager else None,
        app_server="granian" if granian_pid else "uwsgi",
        listen_queue=queue,
    )


def _page_drain(paths: Paths) -> tuple[bool, tuple[str, ...]]:
    """The status page's drain marker (private/drain: the ops listener, the app's user, makes
    it), believed only under the trust rule: a regular file of the app's user (or ours), no
    link, in a directory no one else writes. Anything else there is not believed (and said)."""
    try:
        owners = frozenset({_app_uid(paths), os.geteuid()})
        return contracts.marker_exists(paths.app_drain, contracts.Trust(owners)), ()
    except FileNotFoundError:  # no private/ (nothing ran here yet)
        return False, ()
    except WsgistackError as exc:
        return False, (exc.message,)


def _require_running(paths: Paths) -> Status:
    """What runs in ``paths``, or ops.E001 when nothing does (reload, drain)."""
    current = status(paths, stats=False)
    if not current.running:
        raise WsgistackError(ids.OPS_E001, f"nothing is running in {paths.runtime}", NOT_RUNNING_HINT)
    return current


def _app_uid(paths: Paths) -> int:
    """Who may own what uWSGI writes (its FIFO): the app's user the start recorded, or ourselves."""
    try:
        started = record.read(paths)
    except WsgistackError:
        started = None
    return started.app_uid if started is not None and started.app_uid is not None else os.geteuid()


def write_fifo(fifo: Path, command: bytes, owner: int) -> None:
    """Write a command to uWSGI's master FIFO, in the app's own directory: never through a
    link, only into a FIFO (a regular file or a device planted there is refused: trust.E001),
    owned by the app's user or ourselves, and without blocking when no master reads it."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise untrusted(fifo, "it is a symbolic link") from None
        raise WsgistackError(
            ids.OPS_E002, f"cannot open uWSGI's master FIFO {fifo}: {exc.strerror}", "run as the user that started the stack"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISFIFO(info.st_mode):
            raise untrusted(fifo, "it is not a FIFO")
        if info.st_uid not in (owner, os.geteuid()):
            raise untrusted(fifo, f"it belongs to uid {info.st_uid}, not to the app's user (uid {owner})")
        os.write(fd, command)
    finally:
        os.close(fd)


def lazy_apps_running(paths: Paths) -> bool:
    """Whether the running uWSGI loads the app in each worker (app.lazy_apps): as the start
    (or the last reload, which re-execs the master) recorded it, else as its uwsgi.ini says."""
    try:
        started = record.read(paths)
    except WsgistackError:
        started = None
    if started is not None and "app.lazy_apps" in started.recorded.values:
        return bool(started.recorded.values["app.lazy_apps"])
    try:
        return any(line.replace(" ", "") == "lazy-apps=true" for line in paths.uwsgi_ini.read_text().splitlines())
    except OSError:
        return False


def refuse_chain_without_lazy_apps(paths: Paths) -> None:
    """ops.E005: uWSGI's chain reload replaces one worker at a time by forking it from the
    master; without lazy-apps the master holds the app it loaded at start, so every new
    worker runs the old code (the reload said "requested", exited 0 and changed nothing)."""
    if lazy_apps_running(paths):
        return
    raise UsageError(
        ids.OPS_E005,
        "reload --chain replaces one uWSGI worker at a time, each forked from uWSGI's master, which loaded the app "
        "at start: without app.lazy_apps every new worker would run the old code",
        "set app.lazy_apps = true (each worker then loads the app itself) and reload once without --chain, which "
        "restarts the master and applies it; from then on --chain reloads without a pause. Or reload without "
        "--chain: every worker at once, new requests wait (queued, not refused) until the longest one in flight ends",
    )


def _wait_replaced(main: int, old: set[int], timeout: float) -> str:
    """Until none of granian's old workers is left (each new one has loaded the app first)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = set(child_pids(main))
        if not now & old and len(now) >= len(old):
            return f"granian: {len(old)} workers replaced"
        time.sleep(0.2)
    return f"granian: still replacing its workers after {timeout:g}s (a long request finishes first)"


def reload(where: Paths | Plan, chain: bool = False, wait: float = 120.0) -> list[str]:
    """Ask the running nginx to re-read its config and uWSGI to reload its workers
    gracefully (in-flight requests finish, up to request_timeout: Plan.reload_mercy).
    ``chain`` reloads workers one at a time, so there is always a worker serving; it needs
    app.lazy_apps to pick up new code, and is refused without it (ops.E005). Signals go
    only to the manager's own children (contracts.ManagerState)."""
    paths = where.paths if isinstance(where, Plan) else where
    done: list[str] = []
    current = _require_running(paths)
    if current.app_server == "granian" and current.uwsgi_pid and current.manager_pid:
        # The process manager drains granian's workers first (their responses close their
        # connections, so nginx keeps none a stopping worker closes under it), then sends
        # granian its SIGHUP (one worker replaced at a time), and reloads nginx.
        from wsgistack.plan.stack import GRANIAN_DRAIN

        old = set(child_pids(current.uwsgi_pid))
        os.kill(current.manager_pid, signal.SIGHUP)
        done.append(f"granian (pid {current.uwsgi_pid}): workers drain for {GRANIAN_DRAIN:g}s, then granian replaces "
                    "them one at a time" + (" (--chain: granian always does)" if chain else ""))
        if current.nginx_pid:
            done.append(f"nginx (pid {current.nginx_pid}): configuration reloaded (SIGHUP, by the process manager)")
        if wait:
            done.append(_wait_replaced(current.uwsgi_pid, old, wait))
        return done
    if chain and current.uwsgi_pid:
        refuse_chain_without_lazy_apps(paths)
    if current.uwsgi_pid:
        write_fifo(paths.fifo, b"c" if chain else b"r", _app_uid(paths))
        done.append(f"uWSGI (pid {current.uwsgi_pid}): {'chain' if chain else 'graceful'} reload requested")
    if current.nginx_pid:
        os.kill(current.nginx_pid, signal.SIGHUP)
        done.append(f"nginx (pid {current.nginx_pid}): configuration reloaded (SIGHUP)")
    return done


def locate(project: Path, cli: Mapping[str, tuple[Any, str]], config_file: Path | None,
           env: Mapping[str, str]) -> Paths:
    """The running stack's paths, from the config alone (no app, no plan). Found from the
    flags, the config file and, of the shell's environment, only the runtime dir: nothing
    else in this shell is the stack's."""
    from wsgistack.start import runtime_paths

    return runtime_paths(_config_with(project, cli, config_file, env, "runtime_dir"))


def balancer_nodes(project: Path, cli: Mapping[str, tuple[Any, str]], config_file: Path | None,
                   env: Mapping[str, str]) -> tuple[str, ...]:
    """balancer.nodes from the config (and, of the shell's environment, only its own
    variable): the nodes `wsgistack logs --node` reads."""
    return _config_with(project, cli, config_file, env, "balancer.nodes").config.balancer.nodes


def _config_with(project: Path, cli: Mapping[str, tuple[Any, str]], config_file: Path | None, env: Mapping[str, str],
                 setting: str) -> LoadedConfig:
    """The config from the flags and the config file, and of the shell's environment only
    ``setting``'s own variable."""
    name = env_name(setting)
    return load_config(project, env={name: env[name]} if name in env else {}, cli=cli, config_file=config_file)


@dataclass(frozen=True)
class Reload:
    """A reload, resolved and rendered, not yet applied."""

    loaded: LoadedConfig
    plan: Plan
    changes: tuple[record.Change, ...]
    files: tuple[RenderedFile, ...]  # the rendered files that differ from the running ones
    notes: tuple[str, ...]  # what the reload leaves alone, and why
    data_dir: Path | None = None  # tls.data_dir's default as the start resolved it (kept in the record)
    app_uid: int | None = None  # the app's user the start recorded
    env: Mapping[str, str] = field(default_factory=dict)  # the environment the app was detected with
    # Rendered files that differ but that only a restart applies (processes.json: the running
    # manager keeps its table), and what else a restart would do that a reload does not.
    restart_files: tuple[RenderedFile, ...] = ()
    restart_notes: tuple[str, ...] = ()
    static_roots: tuple[str, ...] = ()  # what the start prepared (kept in the record)
    # The settings only a restart applies that changed, but whose new values render the same
    # files as the running ones (uwsgi.threads "auto" -> 4 where auto is 4): a restart would
    # change nothing, so they are not marked as waiting for one.
    same_when_restarted: bool = False

    def diff(self) -> list[str]:
        """A unified diff of each rendered file a reload would change, against the running one;
        the files only a restart applies, marked so."""
        out: list[str] = []
        runtime = self.plan.paths.runtime
        for f, restart in [*((f, False) for f in self.files), *((f, True) for f in self.restart_files)]:
            path = runtime / f.path
            try:
                old = path.read_text()
            except OSError:
                old = ""
            if restart:
                out.append(f"# {f.path}: changes, but only a restart applies it (the process manager keeps the table it "
                           "was started with)")
            out.extend(line.rstrip("\n") for line in difflib.unified_diff(
                old.splitlines(keepends=True), f.content.splitlines(keepends=True),
                fromfile=f"{f.path} (running)", tofile=f"{f.path} ({'after a restart' if restart else 'after the reload'})"))
        return out

    def confirm(self, yes: bool) -> None:
        """A reload that moves the site needs ``yes`` (ops.E003): it takes the site off the
        address its users reach it on."""
        tls_off = self.loaded.config.tls.mode == "off"
        moves = tuple(c for c in self.changes if c.setting in SITE_SETTINGS and not (tls_off and c.setting == "tls.port"))
        if not moves or yes:
            return
        raise UsageError(
            ids.OPS_E003,
            f"this reload moves the site off the address it listens on ({'; '.join(str(c) for c in moves)}): "
            "nothing would answer there any more",
            "pass --yes to move it; to keep it, undo the change where the new value comes from",
        )

    def lines(self) -> list[str]:
        """What changes, one line each: setting, old -> new, source."""
        restart_only = next_start(self.plan.granian)
        mark = (" [the same as what runs: a restart would change nothing]" if self.same_when_restarted
                else " [not applied: needs a restart]")
        return [str(c) + (mark if c.setting in restart_only else "") for c in self.changes]


def prepare_reload(project: Path, cli: Mapping[str, tuple[Any, str]], config_file: Path | None,
                   env: Mapping[str, str], machine: Machine) -> Reload:
    """Resolve what a running stack would run after a reload: the settings it was started
    with (config.record), the config file as it is now, and the reload's own flags. The
    shell's environment is not a source (see :func:`locate`); the app is detected with it,
    as the start did with its own."""
    from wsgistack import start

    located = locate(project, cli, config_file, env)
    _require_running(located)
    found = record.read(located)
    if found is None:
        raise WsgistackError(
            ids.OPS_E004,
            f"no record of the settings the stack in {located.runtime} was started with "
            f"({located.start_record})",
            "restart the stack with this version of wsgistack (it records them), or reload without re-rendering: "
            "wsgistack reload --no-render",
        )
    rec = found.recorded
    if config_file is None and rec.config_file is not None and not _found_by_itself(project, rec.config_file):
        config_file = rec.config_file  # given with --config at start: still that file
    # else the project's wsgistack.toml / pyproject.toml is looked for again, as a start would:
    # removing it is a change like any other (it used to fail: "cannot read" the removed file).
    wanted = load_config(project, env={}, cli=cli, config_file=config_file, started=rec.started())
    changes = tuple(record.changes(rec, wanted))
    # What the manager was given at start stays as it runs: keep the running values.
    restart_only = next_start(rec.values.get("server.app_server") == "granian")  # what runs now
    kept = {c.setting: (c.old, rec.origins.get(c.setting, DEFAULT)) for c in changes if c.setting in restart_only}
    loaded = wanted
    if kept:
        loaded = load_config(project, env={}, cli={k: v for k, v in cli.items() if k not in kept},
                             config_file=config_file, started={**rec.started(), **kept})
    # The start sequence with the reload's flags: app, plan, render (written by apply_reload).
    # uWSGI keeps the interpreter it was started on (the reloading shell's VIRTUAL_ENV is not it).
    # Likewise the certificates' data dir the start found in its environment (XDG_DATA_HOME, HOME).
    python = interpreter.as_started(found.python, found.python_why) if found.python else None
    started = start.run(project, env=env, loaded=loaded, flags=start.RELOAD, machine=machine, python=python,
                        data_dir=rec.data_dir)
    plan = started.plan
    changed = tuple(f for f in started.files if not _same(plan.paths.runtime / f.path, f.content))
    # What a restart would run: the kept settings with their new values (render is pure; the
    # app is not imported again). Its table is what the restart diff shows, and when it renders
    # the same files as the kept values, a restart would change nothing.
    restarted = started.files
    if kept:
        try:
            restarted = start.render(start.replan(plan, wanted, env=env))
        except WsgistackError:  # a combination only a start could refuse (role = balancer): said by the start
            kept = {}
    same_when_restarted = bool(kept) and {f.path: f.content for f in restarted} == {f.path: f.content for f in started.files}
    return Reload(
        loaded=loaded,
        plan=plan,
        changes=changes,
        # processes.json is left alone: the running manager already has its table.
        files=tuple(f for f in changed if f.path != "processes.json"),
        notes=tuple(_ignored_env(env, loaded)),
        data_dir=rec.data_dir,
        app_uid=found.app_uid,
        env=dict(env),
        restart_files=tuple(f for f in restarted
                            if f.path == "processes.json" and not _same(plan.paths.runtime / f.path, f.content)),
        restart_notes=tuple(_restart_notes(plan, changes, found.static_roots)),
        static_roots=found.static_roots,
        same_when_restarted=same_when_restarted,
    )


def _restart_notes(plan: Plan, changes: tuple[record.Change, ...], prepared: tuple[str, ...]) -> list[str]:
    """What a reload leaves for a restart to do beyond the settings it marks (Reload.lines): a
    static root nginx would serve that the start's collectstatic never filled."""
    from wsgistack.start.prestart import collects_static

    notes = []  # (the NEXT_START settings are marked in Reload.lines)
    new = [root for root in plan.static_roots if root not in prepared]
    if prepared and new and collects_static(plan):
        notes.append(f"STATIC_ROOT is now {', '.join(new)} (the start collected into {', '.join(prepared)}): the reload "
                     "runs collectstatic into it before nginx serves it")
    elif prepared and new:
        notes.append(
            f"STATIC_ROOT is now {', '.join(new)} (the start collected into {', '.join(prepared)}): collectstatic runs at "
            "start only, so after this reload nginx serves the new directory as it is; restart the stack (or run "
            "collectstatic into it first)")
    return notes


def _found_by_itself(project: Path, config_file: Path) -> bool:
    """Whether the start found this config file in the project (not given with --config)."""
    return config_file.name in ("wsgistack.toml", "pyproject.toml") and config_file.parent.resolve() == project.resolve()


def apply_reload(pending: Reload, chain: bool = False, say: Callable[[str], None] | None = None) -> list[str]:
    """Collect Django's static files (new code brings new ones; a STATIC_ROOT set since the
    start has none yet), write the changed files, reload nginx and uWSGI, and record what now
    runs. A collectstatic that fails applies nothing (prestart.E00x)."""
    from wsgistack.start.prestart import collects_static, run_prestart

    plan = pending.plan
    if chain and plan.runs_uwsgi and not plan.granian:
        refuse_chain_without_lazy_apps(plan.paths)  # before anything is written
    collected = collects_static(plan)
    if collected:
        run_prestart(plan, pending.env, say or (lambda _line: None), only=("collectstatic",))
    write_files(list(pending.files), plan.paths.runtime)
    done = reload(plan, chain=chain)
    record.save(plan.paths, pending.loaded, data_dir=pending.data_dir, python=plan.python, app_uid=pending.app_uid,
                static_roots=tuple(plan.static_roots) if collected else pending.static_roots)  # what was collected into
    return done


def _same(path: Path, content: str) -> bool:
    try:
        return path.read_text() == content
    except OSError:
        return False


def _ignored_env(env: Mapping[str, str], loaded: LoadedConfig) -> list[str]:
    """Settings in the reloading shell's environment that differ from what will run."""
    notes = []
    runtime_name = env_name("runtime_dir")
    shell, _problems = from_env({k: v for k, v in env.items() if k != runtime_name})
    running = record.values(loaded)
    for dotted, (_value, origin) in shell.items():
        if dotted in SECRET:
            continue
        now = running.get(dotted)
        if origin.raw is not None and origin.raw.strip() == ("" if now is None else str(now)):
            continue
        notes.append(
            f"not applied: {origin} from this shell's environment; the stack keeps {dotted} = {record.show(now, dotted)} "
            f"({loaded.origin(dotted)}): change it with a reload flag or in the config file"
        )
    return notes


def stop(paths: Paths, timeout: float, say: Callable[[str], None] = lambda _line: None) -> str:
    """Stop the stack in ``paths`` as Ctrl-C in its `wsgistack run` would: SIGTERM to its
    process manager (nginx stops first, then the app server finishes its requests, each within
    its stop budget), then wait up to ``timeout`` seconds (`stop --wait`) for the manager to exit. The pid is the
    manager's own state file's (owner-checked), believed only while that process started no
    later than the state says the manager did: a pid the kernel gave to another process since
    is never signalled."""
    manager = read_manager_state(paths)
    begun = started_at(manager.manager_pid) if manager else None
    if manager is None or begun is None or begun > manager.started + 0.25:  # (the manager set it after it began)
        raise WsgistackError(ids.OPS_E001, f"nothing is running in {paths.runtime}", NOT_RUNNING_HINT)
    pid = manager.manager_pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"stopped (the manager, pid {pid}, had exited)"
    except PermissionError:
        raise WsgistackError(ids.OPS_E012, f"the stack in {paths.runtime} runs as another user (its manager, pid {pid}): "
                             "this user may not signal it") from None
    say(f"stopping the stack in {paths.runtime} (SIGTERM to its manager, pid {pid})")
    t0 = time.monotonic()
    while alive(pid):
        if time.monotonic() - t0 > timeout:
            raise WsgistackError(ids.OPS_E011, f"the stack in {paths.runtime} is still stopping after {timeout:g} s "
                                 f"(its manager, pid {pid}, runs)")
        time.sleep(0.1)
    return f"stopped in {time.monotonic() - t0:.1f}s"


def drain(paths: Paths) -> str:
    """Create the drain marker: the readiness path answers 503 "draining" at once, so a
    balancer stops sending new requests here; the node itself keeps serving."""
    _require_running(paths)
    # In the runtime dir, ours: never through a link all the same.
    os.close(os.open(paths.drain, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    return f"draining: readiness answers 503 until `wsgistack undrain` ({paths.drain})"


def undrain(paths: Paths) -> str:
    """Remove the drain marker: readiness answers 200 again."""
    paths.drain.unlink(missing_ok=True)
    # The status page's, in the app's private dir: unlink removes the entry itself (a planted
    # link is removed, never followed); a directory planted there is refused, not removed.
    try:
        paths.app_drain.unlink(missing_ok=True)
    except IsADirectoryError:
        raise untrusted(paths.app_drain, "it is a directory, not the status page's marker") from None
    return "ready again: readiness answers 200"
