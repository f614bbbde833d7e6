"""What the kernel and uWSGI say about running processes: /proc and uWSGI's stats socket.

Standard library only (the process manager uses it to recycle workers; `status` and the ops
listener to show them). Reading never believes a path it should not: the stats socket must be
a socket, not a link, in a directory of its owner's.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> None:
    """prctl(2), best effort (not Linux: nothing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def die_with_parent(signum: int) -> None:
    """For a child, before it execs: ``signum`` when the process that started it goes, however
    it goes (PR_SET_PDEATHSIG)."""
    prctl(PR_SET_PDEATHSIG, signum)


def rss_bytes(pid: int) -> int:
    """A process's resident set from /proc (0 if it is gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the ")" that ends comm: field N of proc(5) is at
    index N - 3 (state 0, ppid 1, starttime 19). Raises OSError when the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent_of(pid: int) -> int | None:
    """A live process's parent pid, or None when it is gone."""
    try:
        return int(_stat(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def child_pids(pid: int) -> list[int]:
    """The children of ``pid`` (uWSGI's master: its workers), from /proc."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):  # a kernel without CONFIG_PROC_CHILDREN: scan
        return [int(s.parent.name) for s in Path("/proc").glob("[0-9]*/stat") if parent_of(int(s.parent.name)) == pid]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...), from /proc: what a process group
    misses when a child started its own session (RQ's work horse calls setsid)."""
    found: list[int] = []
    frontier = [pid]
    while frontier and len(found) < 10000:
        kids = [k for p in frontier for k in child_pids(p) if k not in found]
        found.extend(kids)
        frontier = kids
    return found


def memory_and_age(pid: int) -> tuple[float, float] | None:
    """(RSS in MB, seconds since it started) of a live process, or None if it is gone."""
    try:
        started = int(_stat(pid)[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    resident = rss_bytes(pid)
    return (resident / (1024 * 1024), uptime - started / _TICKS) if resident else None


def started_at(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or None if it is gone."""
    try:
        ticks = int(_stat(pid)[19])
        # The boot's wall time from the uptime (to 10 ms; /proc/stat's btime is whole seconds).
        boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return boot + ticks / _TICKS


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (it exited, its parent has not reaped it yet) does not;
    another user's process does (kill(2) says EPERM)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = _stat(pid)[0]
    except FileNotFoundError:  # gone meanwhile; with no /proc at all, kill(2)'s answer
        return not os.path.isdir("/proc/self")
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def read_uwsgi_stats(path: str, timeout: float = 2.0) -> dict[str, Any]:
    """uWSGI's stats (a JSON document its stats socket writes, then closes); raises OSError /
    ValueError when the socket is not there, not a socket (a link is never followed) or not
    uWSGI's."""
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        raise ValueError(f"{path} is not a socket")
    parent = os.lstat(os.path.dirname(path) or ".")
    if parent.st_uid != info.st_uid and parent.st_uid != 0:
        raise ValueError(f"{path} is not its directory owner's")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        chunks, size = [], 0
        while (chunk := sock.recv(65536)) and size < 16 << 20:
            chunks.append(chunk)
            size += len(chunk)
    data = json.loads(b"".join(chunks))
    if not isinstance(data, dict):
        raise ValueError("not uWSGI's stats")
    return data


def with_rss(stats: dict[str, Any]) -> dict[str, Any]:
    """uWSGI's stats report a worker's RSS only with memory-report on, and only once it has
    served a request: fill in the real number from /proc where they say 0."""
    for worker in stats.get("workers", []):
        if not worker.get("rss") and isinstance(worker.get("pid"), int):
            worker["rss"] = rss_bytes(int(worker["pid"]))
    return stats


def _worker_file(path: str) -> dict[str, Any]:
    """A granian worker's status line, as the shim wrote it (the app's user's file: read for
    display only, never a link, small, every value checked for its type)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        data = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else {}


def read_granian_stats(main_pid: int, workers_dir: str) -> dict[str, Any]:
    """granian's workers in the shape of uWSGI's stats (``workers``: id, pid, status, requests,
    rss): its main process's children from /proc, each with what wsgistack's shim wrote about
    it (requests served, busy since, draining). granian itself has no stats socket."""
    workers = []
    for index, pid in enumerate(sorted(child_pids(main_pid)), 1):
        info = _worker_file(os.path.join(workers_dir, str(pid)))
        busy = info.get("busy")
        requests = info.get("requests")
        in_flight = info.get("in_flight")
        workers.append({
            "id": index,
            "pid": pid,
            "status": ("draining" if info.get("draining") is True else "busy" if isinstance(busy, int | float) else
                       "idle") if info else "starting",
            "requests": requests if isinstance(requests, int) else 0,
            "in_flight": in_flight if isinstance(in_flight, int) else 0,
            "busy_seconds": round(time.time() - busy, 1) if isinstance(busy, int | float) else None,
            "rss": rss_bytes(pid),
        })
    return {"server": "granian", "workers": workers}


# --- the kernel's view of a listening unix socket (sock_diag netlink) ---------------------------

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
UDIAG_SHOW_NAME, UDIAG_SHOW_RQLEN = 0x01, 0x10
UNIX_DIAG_NAME, UNIX_DIAG_RQLEN = 0, 4
TCP_LISTEN = 10


def unix_listen_queues(paths: set[str] | None = None) -> dict[str, tuple[int, int]]:
    """For each listening unix stream socket bound to one of ``paths`` (all when None): the
    connections waiting to be accepted and the queue's capacity, as the kernel counts them
    (sock_diag's UNIX_DIAG_RQLEN: for a listener, its accept queue and its backlog). uWSGI
    reports no queue for a unix socket, and /proc/net/unix has no such column. Linux only;
    an empty answer elsewhere, or when netlink is not allowed."""
    import struct

    found: dict[str, tuple[int, int]] = {}
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError):
        return found
    with sock:
        sock.settimeout(2.0)
        # struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2]
        body = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 1 << TCP_LISTEN, 0, UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN,
                           0xFFFFFFFF, 0xFFFFFFFF)
        header = struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        try:
            sock.sendto(header + body, (0, 0))
            while True:
                data = sock.recv(1 << 16)
                offset, done = 0, False
                while offset + 16 <= len(data):
                    length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
                    if length < 16:
                        return found
                    if kind in (NLMSG_DONE, NLMSG_ERROR):
                        done = True
                        break
                    name, queue = _unix_diag_attrs(data[offset + 16 + 16 : offset + length])
                    if name is not None and queue is not None and (paths is None or name in paths):
                        found[name] = queue
                    offset += (length + 3) & ~3
                if done or not data:
                    return found
        except OSError:
            return found


def _unix_diag_attrs(attrs: bytes) -> tuple[str | None, tuple[int, int] | None]:
    """UNIX_DIAG_NAME and UNIX_DIAG_RQLEN from a unix_diag_msg's attributes (after its 16
    bytes: family, type, state, pad, ino, cookie[2])."""
    import struct

    name, queue, offset = None, None, 0
    while offset + 4 <= len(attrs):
        length, kind = struct.unpack_from("=HH", attrs, offset)
        if length < 4:
            break
        value = attrs[offset + 4 : offset + length]
        if kind == UNIX_DIAG_NAME:
            name = value.split(b"\0", 1)[0].decode("utf-8", "replace") if value[:1] != b"\0" else "@" + value[1:].decode(
                "utf-8", "replace")
        elif kind == UNIX_DIAG_RQLEN and len(value) >= 8:
            queue = struct.unpack_from("=II", value)
        offset += (length + 3) & ~3
    return name, queue


def listen_queue(path: str) -> tuple[int, int] | None:
    """(waiting, capacity) of the listening unix socket at ``path``, or None."""
    return unix_listen_queues({path}).get(path)


def worker_respawns(worker: dict[str, Any]) -> int:
    """Times uWSGI respawned a worker: its stats' respawn_count counts the first spawn too."""
    count = worker.get("respawn_count")
    return max(0, int(count) - 1) if isinstance(count, int) else 0
