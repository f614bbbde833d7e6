"""The OS seam: start a stack's processes, wait until it answers, stop it, read memory.

Every process is started in its own session (process group) with output to a
log file in the stack's work dir, and stopped by signalling that group only:
the harness never touches processes it did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .load import pin
from .stacks import Process, StackPlan, inherited_env


class StackStartError(RuntimeError):
    """A stack did not come up; the message carries the tail of its logs."""


@dataclass
class RunningStack:
    plan: StackPlan
    workdir: Path
    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.popens]


def start(plan: StackPlan, workdir: Path, cpus: tuple[int, ...], check_path: str,
          timeout_s: float = 30.0) -> RunningStack:
    """Start every process of ``plan`` pinned to ``cpus`` and wait until ``check_path`` answers 2xx."""
    running = RunningStack(plan, workdir)
    try:
        for proc in plan.processes:
            running.popens.append(_spawn(proc, workdir, cpus))
        wait_ready(running, plan.base_url + check_path, timeout_s)
    except BaseException:
        stop(running)
        raise
    return running


def _spawn(proc: Process, workdir: Path, cpus: tuple[int, ...]) -> subprocess.Popen[bytes]:
    log = open(workdir / f"{proc.name}.log", "ab")  # noqa: SIM115 -- owned by the child
    env = {**inherited_env(os.environ), **proc.env}
    try:
        return subprocess.Popen(
            pin(list(proc.argv), cpus), cwd=proc.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    finally:
        log.close()


def wait_ready(running: RunningStack, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        for popen in running.popens:
            if popen.poll() is not None:
                raise StackStartError(f"{running.plan.name}: a process exited with {popen.returncode}\n"
                                      + log_tail(running.workdir))
        try:
            request = urllib.request.Request(url, headers={"Connection": "close"})
            with urllib.request.urlopen(request, timeout=5) as response:
                if 200 <= response.status < 300:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise StackStartError(f"{running.plan.name}: {url} not ready after {timeout_s:g}s ({last_error})\n"
                          + log_tail(running.workdir))


def log_tail(workdir: Path, lines: int = 15) -> str:
    parts = []
    for log in sorted(workdir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(parts)


def stop(running: RunningStack, grace_s: float = 8.0) -> None:
    """TERM each process group we started, then KILL what is left after ``grace_s``."""
    for popen in running.popens:
        _signal_group(popen, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for popen in running.popens:
        try:
            popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(popen, signal.SIGKILL)
            popen.wait(5)
    # Children (uWSGI workers, nginx workers) share the leader's group: sweep it.
    for popen in running.popens:
        _signal_group(popen, signal.SIGKILL)


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(popen.pid, sig)  # the group id is the leader's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


# --- CPU time --------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pgids: list[int]) -> float:
    """User + system CPU time used so far by every process of these groups (the stack's
    masters and workers), including the children they have reaped (a respawned worker's
    time is in its master's cutime/cstime), so the difference of two readings is what the
    stack spent between them, whatever else the machine was doing."""
    return sum(cpu_by_process(pgids).values())


def cpu_by_process(pgids: list[int]) -> dict[str, float]:
    """:func:`cpu_seconds` split by kind of process (nginx, uwsgi, manager, or the command's
    name): where a stack's CPU time goes."""
    out: dict[str, float] = {}
    for pid in group_members(pgids):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            kind = _kind(stat[stat.index("(") + 1: stat.rindex(")")], pid)
        except (OSError, ValueError):
            continue  # exited meanwhile: its time is in its parent's cutime once reaped
        # After the ")" that ends comm, field N of proc(5) is at index N - 3:
        # utime (14), stime (15), cutime (16), cstime (17).
        fields = stat.rsplit(")", 1)[1].split()
        out[kind] = out.get(kind, 0.0) + sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
    return out


def _kind(comm: str, pid: int) -> str:
    if comm.startswith("nginx"):
        return "nginx"
    if "uwsgi" in comm.lower():  # uwsgi, or "wsgistack uWSGI" with auto-procname
        return "uwsgi"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if b"wsgistack.runner.manager" in cmdline:
        return "manager"
    if b"uwsgi" in cmdline:
        return "uwsgi"
    if comm.startswith("granian") or b"\0-m\0granian\0" in cmdline:  # wsgistack runs `python -m granian`
        return "granian"
    return comm.split()[0] if comm.strip() else "other"


# --- memory ----------------------------------------------------------------


@dataclass(frozen=True)
class ProcMemory:
    pid: int
    name: str
    rss_kb: int
    pss_kb: int


def group_members(pgids: list[int]) -> list[int]:
    """PIDs whose process group is one of ``pgids`` (what we started, and their children),
    and every descendant of those (wsgistack's process manager starts nginx and uWSGI in
    sessions of their own)."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the ")" that ends comm: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if int(fields[2]) in pgids:
            members.add(pid)
    grew = True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in members and pid not in members}
        members |= new
        grew = bool(new)
    return sorted(members)


def memory_of(pid: int) -> ProcMemory | None:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    values = {}
    for line in rollup.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key] = int(rest.split()[0])
    name = " ".join(a.decode(errors="replace") for a in cmdline if a)[:60]
    return ProcMemory(pid, name, values.get("Rss", 0), values.get("Pss", 0))


def stack_memory(running: RunningStack) -> list[ProcMemory]:
    found = (memory_of(pid) for pid in group_members(running.pids))
    # taskset exec()s the server, so the leader's cmdline is the server's own.
    return [m for m in found if m is not None]
