"""The start's steps that look at, or prepare, this machine: the runtime dir (made, or checked
to be the starter's own before anything in it is believed), the ports, the socket's reach,
the directories the app writes, the upstream of a web role, and the restart cache.

Every one raises an error with an id, a message naming what is wrong where, and a hint.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from wsgistack import hosts, ids
from wsgistack.app.access import unreachable_ancestor
from wsgistack.contracts import ManagerState, RestartCache, Trust, read_pidfile
from wsgistack.errors import WsgistackError
from wsgistack.plan.stack import Plan
from wsgistack.runner.manager import is_ready
from wsgistack.start.prestart import SQLITE_IN_DATA_DIR, collects_static

Output = Callable[[str], None]


def own_dir(path: Path, mode: int, *, create: bool = True) -> None:
    """Make ``path`` a directory of ours with ``mode``, or refuse (run.E007) when what is there
    is not ours: a link, another user's, or writable by others. The default runtime dir is a
    name anyone can compute under /tmp: another local user may have made it first."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise _not_ours(path, "it is a link or not a directory")
    if info.st_uid != os.geteuid():
        raise _not_ours(path, f"it belongs to uid {info.st_uid}, not to uid {os.geteuid()} (who is starting the stack)")
    if info.st_mode & 0o022:
        raise _not_ours(path, f"others may write into it (mode {info.st_mode & 0o777:o})")
    os.chmod(path, mode)


def _not_ours(path: Path, why: str) -> WsgistackError:
    return WsgistackError(
        ids.RUN_E007,
        f"refusing to use {path}: {why}",
        f"remove it (rm -r {path}) and start again, or give the stack a runtime dir of its own: --runtime-dir DIR "
        "(a directory only you can write)",
    )


def prepare_runtime_dir(plan: Plan) -> None:
    """Create the runtime dir (or check it is ours); refuse if another instance is live there;
    clear stale files. Its parts: the runtime dir (ours; traversable by nginx's workers when we
    are root), state/ (ours alone), private/ (the app's user's, where uWSGI writes)."""
    paths = plan.paths
    own_dir(paths.runtime, 0o711 if plan.machine.is_root else 0o700)
    live = _live_instance(plan)
    if live:
        raise WsgistackError(
            ids.RUN_E002,
            f"{live} from another wsgistack run is still running there ({paths.runtime})",
            "stop it first (Ctrl-C in its terminal, or kill -TERM the pid), or set a different runtime_dir",
        )
    own_dir(paths.state, 0o700)
    _app_dir(plan)
    own_dir(paths.nginx_temp, 0o700 if not plan.machine.is_root else 0o711)
    check_ports(plan)  # another process on nginx's port: nginx would retry for 2.5 s, then fail
    check_reachable(plan)  # (the app stage has checked that the app's user can run it: run.E004)
    for stale in paths.transient + paths.granian_transient:
        stale.unlink(missing_ok=True)


def _live_instance(plan: Plan) -> str | None:
    """What of an earlier run still runs here: its process manager (from its own state file),
    its nginx (nginx's pidfile, root's or ours), or a uWSGI accepting on the socket. A pid
    from a file the app's user could write is never believed."""
    paths = plan.paths
    try:
        state = ManagerState.read(paths.manager_state, Trust.me())
        # Its pid is ours: the earlier manager is gone and this process got its number, as a
        # container's pid 1 does when it is started again after `docker kill` or a crash
        # (the container's /tmp, and this file, survive that).
        if state.alive and state.manager_pid != os.getpid():
            return f"its process manager (pid {state.manager_pid})"
    except (FileNotFoundError, WsgistackError):
        pass
    pid = read_pidfile(paths.nginx_pid, Trust.me())
    if pid and pid != os.getpid() and _is_nginx(pid):
        return f"nginx (pid {pid}, {paths.nginx_pid})"
    if plan.runs_uwsgi and plan.upstream.kind == "unix" and os.path.exists(plan.upstream.address):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(plan.upstream.address)
            return f"uWSGI (it accepts on {plan.upstream.address})"
        except OSError:
            pass
    return None


def _is_nginx(pid: int) -> bool:
    """Whether ``pid`` is an nginx process (a stale pidfile's number may belong to anything
    by now: in a restarted container, to a health check's process)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "nginx"
    except OSError:
        return True  # no /proc to ask (or not ours to read): believe the pidfile, as before


def _app_dir(plan: Plan) -> None:
    """private/: the app's user's own (uWSGI writes its pidfile, FIFO and stats socket there
    after dropping privileges). Only this directory is its own: the runtime dir, where
    nginx.conf lives, stays ours, so the app cannot rewrite the config a root nginx master
    re-reads, nor plant a file root believes."""
    private = plan.paths.private
    try:
        info = os.lstat(private)
    except FileNotFoundError:
        os.mkdir(private, 0o700)
        info = os.lstat(private)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        private.unlink()  # only we can make entries in the runtime dir: a leftover, not a plant
        os.mkdir(private, 0o700)
    os.chmod(private, 0o700)
    if plan.uwsgi_user:
        import pwd

        entry = pwd.getpwnam(plan.uwsgi_user)
        os.lchown(private, entry.pw_uid, entry.pw_gid)
    else:
        os.lchown(private, os.geteuid(), os.getegid())


def said_once(rendered: list[str], cache_path: Path | None) -> list[str]:
    """The lines to say for the checks' findings (warnings, notes: errors stop the start
    before this). In a container with a data volume ($DATA_DIR), findings said at the last
    start with the same image, config and environment are one line, not the whole list
    again at every restart; anything new or changed is said in full."""
    lines = [line for text in rendered for line in text.splitlines()]
    if not rendered or cache_path is None:
        return lines
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()  # (in any order: the same findings)
    cache = RestartCache.load(cache_path)
    if cache.findings == digest:
        return [f"{len(rendered)} check findings, the same as at the last start (not repeated; "
                "`wsgistack doctor --deploy` lists them)"]
    cache.replace(findings=digest).save(cache_path)
    return lines


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
    MEDIA_ROOT, the directory of each SQLite database (SQLite writes its journal beside it),
    Django's STORAGES locations and Flask's instance folder (AppSpec.storage)."""
    dirs: list[Path] = []
    if plan.app is None:
        return dirs
    if collects_static(plan):
        dirs += [loc.dir for loc in plan.locations if loc.role == "static"]
    dirs += [loc.dir for loc in plan.locations if loc.role == "media"]
    dirs += list(plan.app.writes) + list(plan.app.storage)
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
    # A directory that holds the code (the project, app.path, a directory above them) is never
    # given away: the app's user could then rewrite its own code and its virtualenv. What the
    # app writes there (startproject's db.sqlite3 beside manage.py) moves to a directory of its own.
    code = [p for p in blocked if _holds_code(plan, p)]
    data = [p for p in blocked if p not in code]
    hints = []
    if code:
        databases = [p for p in code if p in plan.app.writes]
        where = (f" and, {SQLITE_IN_DATA_DIR}, started with DATA_DIR=/srv/data") if databases \
            else ", pointing the app's setting for it there"
        hints.append(
            f"{', '.join(map(str, code))} holds the app's code: never make it the app's; move "
            f"{'the SQLite database' if databases else 'what the app writes there'} to a directory of its own that "
            f"{who!r} may write, e.g. /srv/data (mkdir -p /srv/data && chown {owner} /srv/data){where}")
    if data:
        missing = [str(p) for p in data if not p.exists()]
        command = (f"mkdir -p {' '.join(missing)} && " if missing else "") + f"chown -R {owner} {' '.join(map(str, data))}"
        hints.append(f"give that user the directories it writes: {command}"
                     + (" (or point STATIC_ROOT / MEDIA_ROOT / the database elsewhere)" if plan.uwsgi_user else ""))
    raise WsgistackError(
        ids.RUN_E005,
        f"the app runs as {who!r} and cannot write {', '.join(map(str, blocked))}",
        "; ".join(hints),
    )


def _holds_code(plan: Plan, directory: Path) -> bool:
    """The project directory, app.path or one above them, or a directory with Python code in it."""
    app_path = plan.app.path if plan.app is not None else plan.project
    for root in (plan.project.resolve(), app_path.resolve()):
        if directory == root or root.is_relative_to(directory):
            return True
    try:
        return directory.is_dir() and any(child.suffix == ".py" for child in directory.iterdir())
    except OSError:
        return False


def _in_image_hint(plan: Plan, blocked: list[Path]) -> str | None:
    """In an image wsgistack built (its build record is there), the project dir is read-only
    on purpose: chown is not the fix. A database goes to $DATA_DIR (a volume); another
    directory is made writable at build time with --writable."""
    app = plan.app
    if app is None or plan.build is None:
        return None
    inside = [p for p in blocked if p.is_relative_to(plan.project)]
    if not inside:
        return None
    databases = [p for p in inside if p in app.writes]
    # --writable takes directories relative to the project (the build context), not to app.path.
    others = [p.relative_to(plan.project).as_posix() or "." for p in inside if p not in app.writes]
    hints = []
    if databases:
        hints.append(
            "the code directory is read-only in the image, as it should be: keep the SQLite database in the data "
            f"directory, $DATA_DIR (/data, a volume: docker run -v myapp-data:/data IMAGE), e.g. {SQLITE_IN_DATA_DIR}"
        )
    if others:
        hints.append("the code directory is read-only in the image (chown cannot help): rebuild with "
                     + " ".join(f"--writable {o}" for o in others)
                     + f" (wsgistack build; kept as [image] writable = {json.dumps(others)} in wsgistack.toml), "
                     "or move that data to $DATA_DIR (a volume)")
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
