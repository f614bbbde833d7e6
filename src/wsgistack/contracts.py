"""Every file one wsgistack process writes and another reads, as a typed, versioned value.

A contract is a frozen dataclass with its file name, its version, one writer (``write``) and
one reader (``read``). ``read`` applies the file's **trust rule** before it believes a byte:

- the path is opened without following a link (``O_NOFOLLOW``) and must be a regular file;
- its owner must be one the reader trusts (by default: the reader itself and root), and no
  one else may write it (no group/other write bit), nor its directory;
- a file that holds secrets must not be readable by anyone but its owner (``private``);
- the JSON must be this contract's version and every field its declared type.

Otherwise it raises :class:`~wsgistack.errors.WsgistackError` with ``trust.E001`` (someone
else could have written it) or ``trust.E002`` (missing, malformed, another version). Started
as root, wsgistack runs the app as an unprivileged user who may be compromised: nothing that
user can write is believed by root through this module, and nothing root-only is written
readable by it.

Standard library only: the process manager (which imports nothing else of wsgistack) and
the renewer read their files through here. The log line every process prints (``NAME | text``
or one JSON object) is the other contract between processes, so it lives here too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import sys
import time
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from wsgistack import ids
from wsgistack.procfs import alive, parent_of
from wsgistack.errors import WsgistackError

MAX_BYTES = 16 * 1024 * 1024
# Seconds the process manager waits for a process it SIGKILLed (the kernel frees its memory,
# its master reaps its workers) before it gives up on it: part of every stop's budget.
KILL_GRACE = 1.0
C = TypeVar("C", bound="Contract")


# --- the trust rule ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    """Who may have written a file its reader believes."""

    owners: frozenset[int]  # uids the file (and its directory) may belong to
    private: bool = False  # holds secrets: readable by its owner only

    @classmethod
    def me(cls, *, private: bool = False) -> Trust:
        """Written by this user or by root (a file in a stack's runtime dir, read by its starter
        or by the app's user reading what root wrote for it)."""
        return cls(frozenset({os.geteuid(), 0}), private)

    @classmethod
    def only(cls, uid: int, *, private: bool = False) -> Trust:
        return cls(frozenset({uid}), private)


def untrusted(path: Path | str, why: str) -> WsgistackError:
    return WsgistackError(
        ids.TRUST_E001,
        f"refusing to believe {path}: {why}",
        "someone else may have written it: remove it (or the directory) and restart the stack; wsgistack writes "
        "these files itself, owned by the user that started it, never writable by another",
    )


def unreadable(path: Path | str, why: str) -> WsgistackError:
    return WsgistackError(
        ids.TRUST_E002, f"cannot use {path}: {why}",
        "restart the stack with this version of wsgistack (it writes the file anew)",
    )


def _check(path: Path | str, info: os.stat_result, trust: Trust) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise untrusted(path, "it is not a regular file")
    if info.st_uid not in trust.owners:
        raise untrusted(path, f"it belongs to uid {info.st_uid}, not to {' or '.join(map(str, sorted(trust.owners)))}")
    if info.st_mode & 0o022:
        raise untrusted(path, f"others may write it (mode {info.st_mode & 0o777:o})")
    if trust.private and info.st_mode & 0o077:
        raise untrusted(path, f"it holds secrets and others may read it (mode {info.st_mode & 0o777:o})")


def check_dir(directory: Path, trust: Trust) -> None:
    """A directory whose entries a reader believes: no link, owned by a trusted user (or root),
    and writable by no one else (a sticky world-writable dir such as /tmp is not one)."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise unreadable(directory, exc.strerror or str(exc)) from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise untrusted(directory, "it is a link or not a directory")
    if info.st_uid not in trust.owners | {0}:
        raise untrusted(directory, f"the directory belongs to uid {info.st_uid}")
    if info.st_mode & 0o022:
        raise untrusted(directory, f"others may write into the directory (mode {info.st_mode & 0o777:o})")


def open_trusted(path: Path | str, trust: Trust) -> int:
    """A read-only descriptor of ``path``, once the trust rule holds for it and its directory
    (checked on the open file: no race between the check and the read)."""
    check_dir(Path(path).parent, trust)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (getattr(os, "ELOOP", 40), 40):
            raise untrusted(path, "it is a symbolic link") from None
        raise unreadable(path, exc.strerror or str(exc)) from None
    try:
        _check(path, os.fstat(fd), trust)
    except BaseException:
        os.close(fd)
        raise
    return fd


def marker_exists(path: Path | str, trust: Trust) -> bool:
    """Whether a marker is there (a file whose existence is all it says, e.g. private/drain),
    believed under the trust rule without opening or following it: its directory checked, then
    ``lstat``: a regular file owned by a trusted user and writable by nobody else. A link,
    another kind of file or another owner raises trust.E001 (the reader says it was refused)."""
    check_dir(Path(path).parent, trust)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise unreadable(path, exc.strerror or str(exc)) from None
    if stat.S_ISLNK(info.st_mode):
        raise untrusted(path, "it is a symbolic link")
    _check(path, info, trust)
    return True


def read_bytes(path: Path | str, trust: Trust) -> bytes:
    """The file's bytes, once the trust rule holds for it and its directory."""
    with os.fdopen(open_trusted(path, trust), "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise unreadable(path, f"it is larger than {MAX_BYTES} bytes")
    return data


def read_json(path: Path | str, trust: Trust) -> Any:
    try:
        return json.loads(read_bytes(path, trust))
    except (ValueError, UnicodeDecodeError) as exc:
        raise unreadable(path, f"it is not JSON ({exc})") from None


def write_bytes(path: Path | str, data: bytes, mode: int = 0o644, *, uid: int = -1, gid: int = -1) -> None:
    """Atomically (a new file renamed over the old: a reader never sees half), never through a
    link: the temporary file is created exclusively, with its mode and owner before any byte."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            if uid != -1 or gid != -1:
                os.fchown(fh.fileno(), uid, gid)
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- typed values from JSON --------------------------------------------------------------------


def _convert(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where}: unexpected null")
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected an object")
        return _build(kind, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list")
        inner = args[0] if args else Any
        return tuple(_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or kind is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected an object")
        key_t, val_t = args if args else (str, Any)
        return {_convert(k, key_t, where): _convert(v, val_t, f"{where}.{k}") for k, v in value.items()}
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number")
        return float(value)
    if kind in (str, int, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
        return value
    raise ValueError(f"{where}: cannot read a {kind!r}")


def _build(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _convert(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}.{f.name} is missing")
    return cls(**values)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Contract:
    """Base of every cross-process file: ``text()``/``write()`` for its writer, ``read()`` for
    its reader. Subclasses are frozen dataclasses with ``FILE`` and ``VERSION``."""

    FILE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def to_json(self) -> dict[str, Any]:
        return {"version": self.VERSION, **_plain(self)}

    def text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls: type[C], data: Any, where: str = "") -> C:
        where = where or cls.FILE
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object")
        if data.get("version") != cls.VERSION:
            raise ValueError(f"{where}: version {data.get('version')!r}, this wsgistack reads version {cls.VERSION}")
        return typing.cast(C, _build(cls, {k: v for k, v in data.items() if k != "version"}, where))

    def write(self, path: Path | str, mode: int = 0o644, *, uid: int = -1, gid: int = -1) -> None:
        write_bytes(path, self.text().encode(), mode, uid=uid, gid=gid)

    @classmethod
    def read(cls: type[C], path: Path | str, trust: Trust | None = None) -> C:
        """The file as this contract, once its trust rule holds. FileNotFoundError when there
        is none (the caller decides what absence means); trust.E001 / trust.E002 otherwise."""
        data = read_json(path, trust or Trust.me())
        try:
            return cls.from_json(data, str(path))
        except ValueError as exc:
            raise unreadable(path, str(exc)) from None


# --- the process table: what the process manager runs (processes.json) --------------------------


@dataclass(frozen=True)
class Ready:
    """When a process counts as started: every condition holds (a file exists: uWSGI creates
    one once a worker accepts; a unix or TCP socket accepts)."""

    file: str = ""
    unix: str = ""
    tcp_host: str = ""
    tcp_port: int = 0

    @property
    def empty(self) -> bool:
        return not (self.file or self.unix or self.tcp_port)

    def describe(self) -> str:
        """What it waits for, as a reader says it (not the dataclass's repr)."""
        parts = [f"file {self.file}" if self.file else "", f"unix socket {self.unix}" if self.unix else "",
                 f"TCP {self.tcp_host}:{self.tcp_port}" if self.tcp_port else ""]
        return " and ".join(p for p in parts if p) or "nothing"


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)  # never a secret: see ProcessTable.secret_env
    secret_env: bool = False  # also gets the app's own environment (app.env), which no file holds
    stop_signal: str = "TERM"
    ready: Ready = field(default_factory=Ready)
    drop_env_prefix: str = ""
    death_signal: str = "KILL"
    preload: str = ""
    restart: str = ""  # background processes: always | on-failure | never ("" = any exit stops the stack)
    user: str = ""
    group: str = ""
    env_prepend: dict[str, str] = field(default_factory=dict)
    # Its own stop budget: seconds from its stop signal to SIGKILL (None: the table's
    # stop_timeout). It is signalled once every process named in stop_after has exited
    # (uWSGI after nginx, which passes it the requests it is finishing); the others at once.
    stop_timeout: float | None = None
    stop_after: tuple[str, ...] = ()
    recycle: dict[str, float] = field(default_factory=dict)
    # Optional (the ops listener): the start never waits for it, and its failing, however
    # often, never stops the site; it is restarted with backoff and said.
    optional: bool = False


@dataclass(frozen=True)
class ProcessTable(Contract):
    """Written by the start (render.stack / render.balancer), read by the process manager, which
    runs it as the same user: owner-checked, never holds a secret (the app's ``app.env`` reaches
    the manager in memory (`run`) or in its own environment (the image's exec), see
    :data:`SECRET_ENV`)."""

    FILE: ClassVar[str] = "processes.json"

    runtime_dir: str
    processes: tuple[ProcessSpec, ...]
    stop_timeout: float = 8
    url: str = ""
    cleanup: tuple[str, ...] = ()
    state_file: str = ""
    log_format: str = "text"
    # The manager's copy of its output (`wsgistack logs`): see LogFile. "" = none.
    log_file: str = ""
    log_limit: int = 10 * 1024 * 1024
    drain_file: str = ""
    drain_delay: float = 0
    # Background processes: the first restart waits restart_backoff, each quick one after it
    # twice as long; a run shorter than restart_reset is a quick exit, and restart_limit quick
    # exits in a row are a crash loop, which fails the stack.
    restart_backoff: float = 1.0
    restart_reset: float = 10.0
    restart_limit: int = 5


# The app's secret environment (app.env) for the process manager an entrypoint execs: JSON in
# this variable of the manager's own environment (readable by its user and root only, like
# any process's), removed before a child starts.
SECRET_ENV = "_WSGISTACK_APP_ENV"


@dataclass(frozen=True)
class Health(Contract):
    """What the image's HEALTHCHECK (standalone/healthcheck.py, stdlib only, which parses this
    shape itself) asks: nginx's readiness path with a Host it serves, else uWSGI's socket, else
    the background processes in the manager's state file."""

    FILE: ClassVar[str] = "health.json"

    http_host: str = ""
    http_port: int = 0
    path: str = "/"
    host_header: str = "localhost"
    uwsgi: Ready | None = None
    state_file: str = ""
    background: tuple[str, ...] = ()


# --- the process manager's live view (manager.json) ---------------------------------------------


@dataclass(frozen=True)
class ProcessState:
    name: str
    kind: str  # server | background
    state: str
    restarts: int = 0
    pid: int | None = None
    restart: str | None = None
    since: float | None = None
    last_exit: str | None = None


@dataclass(frozen=True)
class ManagerState(Contract):
    """Written by the process manager as it runs; read by `status`, `reload` and `drain` (which
    signal only pids listed here, and only while each is still the manager's child) and by the
    ops listener. Owner-checked: root believes only its own."""

    FILE: ClassVar[str] = "manager.json"

    manager_pid: int
    started: float
    stopping: bool
    processes: tuple[ProcessState, ...]

    def pid(self, name: str) -> int | None:
        """The pid of process ``name`` if it still runs as this manager's child (a pid the
        kernel gave to another process meanwhile is not it)."""
        for p in self.processes:
            if p.name == name and p.pid and parent_of(p.pid) == self.manager_pid:
                return p.pid
        return None

    @property
    def alive(self) -> bool:
        return alive(self.manager_pid)  # (an exited manager its parent has not reaped is not)


def read_pidfile(path: Path | str, trust: Trust, parent: int | None = None) -> int | None:
    """The pid in a pidfile, believed when the file passes ``trust`` and, with ``parent``, the
    process is that parent's child (so a stale or planted number never gets a signal)."""
    try:
        pid = int(read_bytes(path, trust).split()[0])
    except FileNotFoundError:
        return None
    except (ValueError, IndexError):
        return None
    if pid <= 1 or (parent is not None and parent_of(pid) != parent):
        return None
    return pid if alive(pid) else None


# --- the settings of the processes beside nginx and uWSGI ---------------------------------------


@dataclass(frozen=True)
class OpsAuth:
    user: str
    salt: str
    iterations: int
    hash: str


@dataclass(frozen=True)
class OpsSettings(Contract):
    """Written by the start (root), read by the ops listener (the app's user): mode 0640,
    group the app's, so no other local user reads even the password's hash."""

    FILE: ClassVar[str] = "ops.json"

    host: str
    port: int
    manager_state: str
    history: int = 600
    interval: float = 2
    auth: OpsAuth | None = None
    nginx_udp: str | None = None
    nginx_ports: tuple[int, ...] = ()
    uwsgi_stats: str | None = None
    uwsgi_socket: str | None = None
    # Drain from the page (POST /drain, behind auth): the marker the listener may write (in the
    # app's private dir, which the readiness shim also reads), and the one `wsgistack drain` writes.
    app_drain: str | None = None
    drain: str | None = None
    # Beside `wsgistack balance`: HAProxy's runtime API, for the page's view of the nodes.
    haproxy_socket: str | None = None
    haproxy_backend: str = "nodes"
    summary: dict[str, str] = field(default_factory=dict)
    # server.app_server = "granian": its workers' status files (the shim's); its pid is the
    # manager's child "granian" (manager_state).
    granian_workers: str | None = None


@dataclass(frozen=True)
class RenewerSettings(Contract):
    """Written by the start, read by the ACME renewer (both the starter): mode 0600."""

    FILE: ClassVar[str] = "tls-renewer.json"

    names: tuple[str, ...]
    cert: str
    key: str
    config_dir: str
    webroot: str
    directory: str
    email: str
    ca_bundle: str
    challenge_port: int
    certbot: str
    nginx_pid: str
    nginx_conf: str
    nginx_https_conf: str


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedOrigin:
    kind: str
    where: str = ""
    raw: str | None = None


@dataclass(frozen=True)
class RecordedSetting:
    value: Any
    origin: RecordedOrigin | None = None


@dataclass(frozen=True)
class StartRecord(Contract):
    """What a start resolved, for `reload`: every non-secret setting with its origin (never the
    environment, never app.env), the config file, tls.data_dir's default and the interpreter
    uWSGI runs. In the runtime dir's state part (the starter's own, 0700), mode 0600: written
    and read by the starter only, so the app's user can neither plant nor read it."""

    FILE: ClassVar[str] = "start.json"
    VERSION: ClassVar[int] = 2

    settings: dict[str, RecordedSetting]
    config_file: str | None = None
    data_dir: str | None = None
    python: str | None = None
    python_why: str = ""
    app_uid: int | None = None  # the app's user (started as root): owner of what uWSGI writes
    # The static roots the start prepared (collectstatic runs at start only): a reload that
    # would point nginx elsewhere says a restart must fill the new one first.
    static_roots: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildRecord(Contract):
    """What the image's build step did (``/app/.wsgistack/build.json``): written as root at
    build, read at every start by the image's user, who may not write it (owner root, 0644)."""

    FILE: ClassVar[str] = "build.json"

    app: str | None = None
    kind: str | None = None
    app_path: str | None = None  # app.path resolved inside the image
    writable: tuple[str, ...] = ()
    static_collected: dict[str, str] | None = None  # dir, stamp, settings
    notes: tuple[str, ...] = ()
    # What the image's own Python found the app writes inside the project, for the compose
    # files and manifests: {"role": static|media|data, "url": "/static/" (or ""), "path": relative}
    data_dirs: tuple[dict[str, str], ...] = ()
    placeholders: tuple[str, ...] = ()  # variables the settings needed at import, given a placeholder at build


@dataclass(frozen=True)
class RestartCache(Contract):
    """What a start in an image keeps in the data volume ($DATA_DIR/.wsgistack/restart.json) so
    the next start of the same image, config and environment skips work: the digest of the
    check findings it said, and Django's checks' result. Owner-checked and private: a file the
    app's user planted is not believed (the start then checks again)."""

    FILE: ClassVar[str] = "restart.json"

    findings: str = ""
    django_key: str = ""
    django: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RestartCache:
        """The cache, or an empty one: missing, unreadable, or not a private file of ours (the
        app's user may write the data volume) all mean "check again"."""
        try:
            return cls.read(path, Trust.only(os.geteuid(), private=True))
        except (FileNotFoundError, WsgistackError):
            return cls()

    def replace(self, **changes: Any) -> RestartCache:
        return dataclasses.replace(self, **changes)

    def save(self, path: Path) -> None:
        """Best effort: a read-only or foreign volume means the next start checks again."""
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            self.write(path, 0o600)
        except OSError:
            pass


@dataclass(frozen=True)
class ImagesRecord(Contract):
    """Per tag, the image and build stages the last `wsgistack build` made (the next build
    removes them): ``.wsgistack/images.json`` in the project, the builder's own."""

    FILE: ClassVar[str] = "images.json"

    tags: dict[str, dict[str, Any]] = field(default_factory=dict)


# --- the log line ---------------------------------------------------------------------------------


def log_time() -> str:
    """The time as nginx writes it in JSON logs ($time_iso8601): local, with its offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime()).replace("+0000", "+00:00")


def log_line(process: str, text: str, json_mode: bool, width: int = 9, when: str | None = None) -> bytes:
    """One line of output: ``NAME | text``, or with server.log_format = "json" a JSON object
    (so that ``docker logs | jq`` reads every line). Every line wsgistack prints about itself
    goes through here."""
    if json_mode:
        return (json.dumps({"time": when or log_time(), "process": process, "message": text}) + "\n").encode()
    return f"{process:>{width}} | {text}\n".encode()


@dataclass
class Say:
    """wsgistack's own lines (`run`, the entrypoint, build notes): text until the config says
    server.log_format = "json" (``json_mode``), then JSON like the manager's."""

    json_mode: bool = False
    stream: Any = None  # a binary stream (default: stdout)

    def __call__(self, text: str) -> None:
        self.as_process("wsgistack", text)

    def as_process(self, process: str, text: str) -> None:
        """A line on behalf of another process (a prestart step's output, named after it)."""
        out = self.stream or sys.stdout.buffer
        for part in text.splitlines() or [""]:
            out.write(log_line(process, part, self.json_mode))
        out.flush()


def say_lines(lines: Iterable[str], json_mode: bool = False, stream: Any = None) -> None:
    Say(json_mode, stream)("\n".join(lines))


def rotated(path: Path | str) -> Path:
    """Where a full :class:`LogFile` goes (one older file is kept: ``NAME.1``)."""
    path = Path(path)
    return path.with_name(path.name + ".1")


# When the manager wrote a line to its LogFile: UTC, microseconds, a fixed width (so the
# text sorts as the time does), then one space and the line as stdout had it. What `wsgistack
# logs --node` merges several nodes' lines by (their clocks, so keep them in sync: NTP).
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) ")
STAMP_WIDTH = len("2026-01-01T00:00:00.000000Z ")


def log_stamp(now: float | None = None) -> str:
    """The time ``now`` (default: this instant) as a LogFile line's stamp, without its space."""
    now = time.time() if now is None else now
    seconds = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((now - seconds) * 1e6):06d}Z"


class LogFile:
    """The process manager's own copy of the lines it prints, for `wsgistack logs`
    (ops/logs.py): in the runtime dir's state/ (the starter's, 0700), owned by the manager's
    user, mode 0600, never through a link. Each line is stdout's, byte for byte, after the time
    it was written (STAMP): it holds nothing else stdout does not. Lines are appended in the
    order the manager relays them. Once a write would take it past ``limit`` bytes it is
    renamed to ``NAME.1`` (replacing the older one) and begun anew: at most two files of
    ``limit`` bytes (plus one batch)."""

    def __init__(self, path: Path | str, limit: int) -> None:
        self.path = Path(path)
        self.limit = limit
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            os.close(fd)
            raise PermissionError(f"{self.path} is not a regular file of uid {os.geteuid()}")
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        self._fd, self._size = fd, info.st_size

    def write(self, data: bytes, now: float | None = None) -> None:
        """Append ``data`` (whole lines; a last line without its newline gets one), each line
        stamped with ``now`` (default: this instant), rotating first when it would not fit.
        Raises OSError."""
        if not data:
            return
        stamp = log_stamp(now).encode() + b" "
        body = data[:-1] if data.endswith(b"\n") else data
        data = stamp + body.replace(b"\n", b"\n" + stamp) + b"\n"  # one pass in C: 0.06 µs a line (a join per line: 0.2)
        if self._fd is None:
            self._open()
        if self._size and self._size + len(data) > self.limit:
            self.close()
            os.replace(self.path, rotated(self.path))
            self._open()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
