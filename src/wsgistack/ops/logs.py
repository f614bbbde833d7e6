"""`wsgistack logs`: the stack's lines (nginx, the app server, the app, the background
processes, wsgistack's own) from the process manager's copy of its output.

The manager writes every line it prints to stdout to ``state/stack.log`` too
(contracts.LogFile: the starter's, 0600, rotated to ``stack.log.1`` at ``log_limit``), so
the file is in the order the manager relayed the lines: each process's lines in the order it
wrote them, and lines of different processes in the order the manager read them (it reads
its children's pipes in batches, RELAY_INTERVAL apart: two processes' lines of the same
tenth of a second may come in either order). Both files are read with the trust rule
(contracts.open_trusted): ours (or root's), never a link, readable by no one else.

The request id joins a request's lines: nginx's access line names it (``id=`` in text,
``"request_id"`` in JSON), and so does every app log record made while it handled the request
(wsgistack's shim sets ``request_id`` on them; the app's log format shows it).
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from wsgistack import ids
from wsgistack.contracts import Trust, open_trusted, rotated
from wsgistack.errors import UsageError, WsgistackError
from wsgistack.layout import Paths

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


def lines(paths: Paths, request_id: str | None = None, last: int = 0) -> list[str]:
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
    found: Iterable[str] = (line for chunk in chunks for line in chunk.decode("utf-8", "replace").splitlines() if keep(line))
    return list(deque(found, maxlen=last) if last > 0 else found)


def follow(paths: Paths, request_id: str | None = None, last: int = 0, *, poll: float = POLL,
           stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """The ``last`` lines (all with 0), then each new one as the manager appends it, through
    rotations (the rest of the old file first, then the new one from its start), until
    ``stop()`` says so. The file is opened before it is read: no line falls between the two."""
    keep = request_filter(request_id)
    _reachable(paths)
    fd: int | None = None
    try:
        try:
            fd = open_trusted(paths.log, _trust())
        except FileNotFoundError:
            raise _missing(paths) from None
        try:
            older = _read(rotated(paths.log))
        except FileNotFoundError:
            older = b""
        *complete, pending = (older + _read_new(fd)).split(b"\n")
        found = (line for line in (raw.decode("utf-8", "replace") for raw in complete) if keep(line))
        yield from (deque(found, maxlen=last) if last > 0 else found)
        while not stop():
            if fd is None:
                try:
                    fd = open_trusted(paths.log, _trust())  # the new file after a rotation
                except FileNotFoundError:
                    time.sleep(poll)
                    continue
            data = _read_new(fd)
            if data:
                *complete, pending = (pending + data).split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace")
                    if keep(line):
                        yield line
                continue
            if _replaced(fd, paths.log):
                os.close(fd)
                fd = None
                continue
            time.sleep(poll)
    finally:
        if fd is not None:
            os.close(fd)


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
