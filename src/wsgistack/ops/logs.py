"""`wsgistack logs`: the stack's lines (nginx, the app server, the app, the background
processes, wsgistack's own) from the process manager's copy of its output; with ``--node``,
every node's behind a balancer, merged in time order.

The manager writes every line it prints to stdout to ``state/stack.log`` too, after the time
it wrote it (contracts.LogFile and STAMP: the starter's, 0600, rotated to ``stack.log.1`` at
``log_limit``), so the file is in the order the manager relayed the lines: each process's
lines in the order it wrote them, and lines of different processes in the order the manager
read them (it reads its children's pipes in batches, RELAY_INTERVAL apart: two processes'
lines of the same tenth of a second may come in either order). Both files are read with the
trust rule (contracts.open_trusted): ours (or root's), never a link, readable by no one else.

The request id joins a request's lines: nginx's access line names it (``id=`` in text,
``"request_id"`` in JSON), and so does every app log record made while it handled the request
(wsgistack's shim sets ``request_id`` on them; the app's log format shows it). Behind
`wsgistack balance` the id is the balancer's own, passed to the node that served it: one id
finds the request's lines on whichever node they are.

Several nodes (``--node``): each node keeps its own file, so each is reached by a channel the
caller names: its runtime dir on this machine (FileSource, as `rollout --node-runtime-dir`),
or a shell command that runs `wsgistack logs --timestamps` there (CommandSource: ssh, docker
exec). Their lines are merged by their stamps (each node's clock) and kept in each node's own
order where the stamps tie; a node that cannot be read is said (ops.E009) and the others are
shown. The ops listener is not a channel: it runs as the app's user, who must not read the
file.
"""

from __future__ import annotations

import functools
import heapq
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wsgistack import hosts, ids
from wsgistack.contracts import STAMP, Trust, open_trusted, rotated
from wsgistack.errors import UsageError, WsgistackError
from wsgistack.layout import Paths
from wsgistack.procfs import die_with_parent

# The characters nginx keeps in a request id (docs/operations.md, "One request id").
ID_CHARS = re.compile(r"[A-Za-z0-9._:@/+=-]{1,200}")
POLL = 0.25  # seconds between looks at the file when following it


def request_filter(request_id: str | None) -> Callable[[str], bool]:
    """A test for the lines that name ``request_id`` as a whole word (``abc`` is not in
    ``abcd`` nor in ``x-abc``); every line passes without one."""
    if request_id is None:
        return lambda line: True
    if not ID_CHARS.fullmatch(request_id):
        raise UsageError(ids.OPS_E007, f"not a request id: {request_id!r}")
    word = re.compile(r"(?<![\w.-])" + re.escape(request_id) + r"(?![\w.-])")
    return lambda line: word.search(line) is not None


def _trust() -> Trust:
    return Trust.me(private=True)


def _read(path: Path) -> bytes:
    fd = open_trusted(path, _trust())
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _missing(paths: Paths) -> WsgistackError:
    return WsgistackError(ids.OPS_E006, f"no log file at {paths.log}")


def _reachable(paths: Paths) -> None:
    """state/ is the starter's alone (0700): anyone else is told so, not "permission denied"."""
    if paths.state.is_dir() and not os.access(paths.state, os.R_OK | os.X_OK):
        raise WsgistackError(ids.OPS_E006, f"cannot read {paths.log}: only the user that started the stack may",
                             "run `wsgistack logs` as that user (with sudo when the stack runs as root)")


@dataclass(frozen=True)
class Line:
    """One line of a stack's file: when the manager wrote it (contracts.STAMP's text; "" in a
    file from before the stamps) and the line as stdout had it."""

    stamp: str
    text: str


def parse(raw: Iterable[str], stamp: str = "") -> list[Line]:
    """Lines as the file (or a node's `logs --timestamps`) has them; a line without a stamp
    takes the one before it (``stamp`` for the first)."""
    out = []
    for line in raw:
        found = STAMP.match(line)
        if found:
            stamp, line = found.group(1), line[found.end():]
        out.append(Line(stamp, line))
    return out


class Assembler:
    """Bytes as they come (a file being appended to, a command's output) into complete
    :class:`Line` s: a line's start waits for its end; a line without a stamp takes the one
    of the line before it, across chunks."""

    def __init__(self) -> None:
        self._pending = b""
        self._stamp = ""

    def feed(self, data: bytes) -> list[Line]:
        *complete, self._pending = (self._pending + data).split(b"\n")
        found = parse((raw.decode("utf-8", "replace") for raw in complete), self._stamp)
        if found:
            self._stamp = found[-1].stamp
        return found


def show(line: Line, timestamps: bool = False, node: str = "", width: int = 0) -> str:
    """A line to print: as stdout had it; with ``node``, after the node's name (inside a JSON
    object as ``"node"``); with ``timestamps``, after its stamp ("-" for a line without)."""
    text = line.text
    if node:
        if text.startswith("{") and text.rstrip().endswith("}"):
            inner = text[1:].lstrip()
            text = '{"node":' + json.dumps(node) + ("" if inner.startswith("}") else ",") + inner
        else:
            text = f"{node:>{width}} | {text}"
    return f"{line.stamp or '-'} {text}" if timestamps else text


def read(paths: Paths, request_id: str | None = None, last: int = 0) -> list[Line]:
    """The stack's lines in the order they were relayed (the rotated half first), those naming
    ``request_id`` when given, the ``last`` of them when > 0."""
    keep = request_filter(request_id)
    _reachable(paths)
    chunks = []
    try:
        chunks.append(_read(rotated(paths.log)))
    except FileNotFoundError:
        pass
    try:
        chunks.append(_read(paths.log))
    except FileNotFoundError:
        if not chunks:
            raise _missing(paths) from None
    raw = (line for chunk in chunks for line in chunk.decode("utf-8", "replace").splitlines())
    found: Iterable[Line] = (line for line in parse(raw) if keep(line.text))
    return list(deque(found, maxlen=last) if last > 0 else found)


def lines(paths: Paths, request_id: str | None = None, last: int = 0, timestamps: bool = False) -> list[str]:
    """:func:`read`, as lines to print (:func:`show`)."""
    return [show(line, timestamps) for line in read(paths, request_id, last)]


class Tail:
    """One stack's file followed through its rotations. The file is opened before it is read:
    no line falls between the two. ``start()`` gives what is there (the rotated half first),
    each ``poll()`` the complete lines written since (the rest of an old file first, then the
    new one from its start)."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._fd: int | None = None
        self._lines = Assembler()

    def start(self) -> list[Line]:
        _reachable(self.paths)
        try:
            self._fd = open_trusted(self.paths.log, _trust())
        except FileNotFoundError:
            raise _missing(self.paths) from None
        try:
            older = _read(rotated(self.paths.log))
        except FileNotFoundError:
            older = b""
        return self._lines.feed(older + _read_new(self._fd))

    def poll(self) -> list[Line]:
        found: list[Line] = []
        while True:
            if self._fd is None:
                try:
                    self._fd = open_trusted(self.paths.log, _trust())  # the new file after a rotation
                except FileNotFoundError:
                    return found
            data = _read_new(self._fd)
            if data:
                found += self._lines.feed(data)
                continue
            if not _replaced(self._fd, self.paths.log):
                return found
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def follow(paths: Paths, request_id: str | None = None, last: int = 0, *, poll: float = POLL,
           stop: Callable[[], bool] = lambda: False, timestamps: bool = False) -> Iterator[str]:
    """The ``last`` lines (all with 0), then each new one as the manager appends it, through
    rotations, until ``stop()`` says so."""
    keep = request_filter(request_id)
    tail = Tail(paths)
    try:
        found = (line for line in tail.start() if keep(line.text))
        for line in deque(found, maxlen=last) if last > 0 else found:
            yield show(line, timestamps)
        while not stop():
            new = [line for line in tail.poll() if keep(line.text)]
            for line in new:
                yield show(line, timestamps)
            if not new:
                time.sleep(poll)
    finally:
        tail.close()


def _read_new(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 16):
        parts.append(chunk)
    return b"".join(parts)


def _replaced(fd: int, path: Path) -> bool:
    """The file at ``path`` is no longer the one open as ``fd`` (it was rotated or removed)."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return True
    mine = os.fstat(fd)
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev)


# --- several nodes (--node) ------------------------------------------------------------------

COMMAND_TIMEOUT = 120.0  # seconds a node's command gets to print its lines (not with --follow)


@dataclass(frozen=True)
class Node:
    name: str  # HAProxy's name for it (node1, node2, ...: balancer.nodes in order)
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class FileSource:
    """A node on this machine: its stack's file in its own runtime dir, read as :func:`read`."""

    def __init__(self, node: Node, paths: Paths) -> None:
        self.node, self.paths = node, paths
        self._tail: Tail | None = None
        self.failure: WsgistackError | None = None  # a file does not end (its errors are raised)

    def read(self, request_id: str | None, last: int) -> list[Line]:
        return read(self.paths, request_id, last)

    def start(self, request_id: str | None, last: int) -> list[Line]:
        self._tail = Tail(self.paths)
        return self._tail.start()

    def poll(self) -> list[Line]:
        return self._tail.poll() if self._tail is not None else []

    def signal_end(self) -> None:
        pass

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()


class CommandSource:
    """A node elsewhere: a shell command (ssh, docker exec) that runs `wsgistack logs
    --timestamps` on it and prints the lines. ``{args}`` in the command is replaced by those
    flags (with the request id, -n, -f); without it they are added at its end."""

    def __init__(self, node: Node, template: str) -> None:
        self.node, self.template = node, template
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines = Assembler()
        self.failure: WsgistackError | None = None

    def command(self, request_id: str | None, last: int, follow: bool) -> str:
        flags = ["--timestamps", *(["--request-id", request_id] if request_id else []), *(["-n", str(last)] if last else []),
                 *(["-f"] if follow else [])]
        args = shlex.join(flags)
        template = self.template if "{args}" in self.template else self.template + " {args}"
        try:
            return template.format(host=hosts.bare(self.node.host), port=self.node.port, node=self.node.address,
                                   name=self.node.name, args=args)
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(ids.OPS_E008, f"--command {self.template!r}: {exc!r} (it may name {{host}} {{port}} {{node}} "
                             "{name} {args}; write a literal brace twice: {{ }})") from None

    def read(self, request_id: str | None, last: int) -> list[Line]:
        command = self.command(request_id, last, False)
        proc = self._spawn(command, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise self._failed(command, f"gave no end within {COMMAND_TIMEOUT:.0f} s") from None
        finally:
            _end(proc)
        if proc.returncode != 0:
            raise self._failed(command, f"exited with {proc.returncode}", err)
        keep = request_filter(request_id)  # the node filtered them too; an older wsgistack there may not have
        return [line for line in parse(out.decode("utf-8", "replace").splitlines()) if keep(line.text)]

    def start(self, request_id: str | None, last: int) -> list[Line]:
        self._command = self.command(request_id, last, True)
        self._proc = self._spawn(self._command)
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        return self.poll()

    @staticmethod
    def _spawn(command: str, stderr: int | None = None) -> subprocess.Popen[bytes]:
        # Its own process group: ending it ends what the shell started (ssh, docker exec); and
        # it goes when we go, however we end (a SIGKILLed `logs -f` leaves no follower behind).
        return subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=stderr,  # noqa: S602 - the user's
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=functools.partial(die_with_parent, signal.SIGTERM))

    def poll(self) -> list[Line]:
        if self._proc is None or self._proc.stdout is None:
            return []
        chunks = []
        ended = False
        while True:
            try:
                chunk = os.read(self._proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                ended = True
                break
            chunks.append(chunk)
        found = self._lines.feed(b"".join(chunks))
        if ended:
            code = self._proc.wait()
            self._proc.stdout.close()
            self._proc = None
            self.failure = self._failed(self._command, f"ended (exit status {code})")
        return found

    def _failed(self, command: str, what: str, stderr: bytes = b"") -> WsgistackError:
        said = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return WsgistackError(ids.OPS_E009, f"{self.node.name} ({self.node.address}): `{command}` {what}",
                              details="\n".join(said))

    def signal_end(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        if self._proc is not None:
            _end(self._proc)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None


def _end(proc: subprocess.Popen[bytes]) -> None:
    """A node's command and whatever its shell started: TERM to its process group, then KILL."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


Source = FileSource | CommandSource


def nodes(addresses: Sequence[str]) -> tuple[Node, ...]:
    """The balancer's nodes, named as HAProxy names them; ops.E010 for one that is not host:port."""
    from wsgistack.plan.balancer import node_servers

    try:
        return tuple(Node(s.name, s.host, s.port) for s in node_servers(tuple(addresses)))
    except ValueError as exc:
        raise UsageError(ids.OPS_E010, f"--node {', '.join(addresses)}: {exc}") from None


def sources(found: Sequence[Node], runtime_dir: str = "", command: str = "") -> list[Source]:
    """One channel per node: ``runtime_dir`` (a template: {host} {port} {name}) for nodes on
    this machine, ``command`` for nodes elsewhere (ops.E008 without either, or with both)."""
    if bool(runtime_dir) == bool(command):
        raise UsageError(ids.OPS_E008, "`logs --node` needs either --node-runtime-dir or --command"
                         + (", not both" if runtime_dir else ""))
    if command:
        out = [CommandSource(node, command) for node in found]
        if out:
            out[0].command(None, 0, False)  # a template that cannot be filled in: ops.E008 once, before any node
        return out
    out: list[Source] = []
    for node in found:
        try:
            directory = runtime_dir.format(host=hosts.bare(node.host), port=node.port, name=node.name)
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(ids.OPS_E008, f"--node-runtime-dir {runtime_dir!r}: {exc!r} (it may name {{host}} {{port}} "
                             "{name})") from None
        out.append(FileSource(node, Paths(Path(directory))))
    return out


def _width(found: Sequence[Source]) -> int:
    return max((len(s.node.name) for s in found), default=0)


def fleet_lines(found: Sequence[Source], request_id: str | None = None, last: int = 0, timestamps: bool = False,
                failed: Callable[[WsgistackError], None] = lambda e: None) -> list[str]:
    """Every node's lines (those naming ``request_id``), merged by their stamps, each node's
    in its own order where they tie; the ``last`` of them when > 0. A node that cannot be
    read is given to ``failed`` (its error: ops.E006/E009, trust.E001) and left out."""
    request_filter(request_id)  # ops.E007 before any node is asked
    width = _width(found)
    per_node: list[list[tuple[str, Line]]] = []
    for source in found:
        try:
            got = source.read(request_id, last)  # filtered by the source, its last lines only
        except WsgistackError as exc:
            failed(_named(source, exc))
            continue
        per_node.append([(source.node.name, line) for line in got])
    merged: Iterable[tuple[str, Line]] = heapq.merge(*per_node, key=lambda item: item[1].stamp)
    kept = deque(merged, maxlen=last) if last > 0 else merged
    return [show(line, timestamps, name, width) for name, line in kept]


def fleet_follow(found: Sequence[Source], request_id: str | None = None, last: int = 0, *, timestamps: bool = False,
                 poll: float = POLL, stop: Callable[[], bool] = lambda: False,
                 failed: Callable[[WsgistackError], None] = lambda e: None) -> Iterator[str]:
    """:func:`fleet_lines`' lines, then every node's new ones as they come: those of one look
    at every node (every ``poll`` seconds) in the order of their stamps. Ends when ``stop()``
    says so or when no node is left to follow."""
    keep = request_filter(request_id)
    width = _width(found)
    live: list[Source] = []
    first: list[list[tuple[str, Line]]] = []
    try:
        for source in found:
            try:
                got = source.start(request_id, last)
            except WsgistackError as exc:
                failed(_named(source, exc))
                source.close()
                continue
            live.append(source)
            first.append([(source.node.name, line) for line in got if keep(line.text)])
        merged: Iterable[tuple[str, Line]] = heapq.merge(*first, key=lambda item: item[1].stamp)
        for name, line in deque(merged, maxlen=last) if last > 0 else merged:
            yield show(line, timestamps, name, width)
        while live and not stop():
            batch: list[tuple[str, Line]] = []
            for source in list(live):
                try:
                    batch += [(source.node.name, line) for line in source.poll() if keep(line.text)]
                except WsgistackError as exc:
                    failed(_named(source, exc))
                    live.remove(source)
                    continue
                if source.failure is not None:
                    failed(source.failure)
                    live.remove(source)
            batch.sort(key=lambda item: item[1].stamp)  # stable: each node's own order on a tie
            for name, line in batch:
                yield show(line, timestamps, name, width)
            if not batch:
                time.sleep(poll)
    finally:
        for source in found:  # every node's command is told at once, then each is waited for
            source.signal_end()
        for source in found:
            source.close()


def _named(source: Source, exc: WsgistackError) -> WsgistackError:
    """The error with the node it is about (a CommandSource's names it already)."""
    prefix = f"{source.node.name} ({source.node.address})"
    if exc.message.startswith(prefix):
        return exc
    return WsgistackError(exc.id, f"{prefix}: {exc.message}", exc.hint, exc.details)
