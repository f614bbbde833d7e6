"""A small process manager for nginx + uWSGI (stdlib only; it is what the container execs).

Why not supervisord: an orchestrator must see a failure, and supervisord exits 0 when a
child dies (it needs an event listener that kills it, and still reports success); it also
adds a config dialect and a second Python process. This manager does exactly the job:

* starts the processes in order, waiting for each one's socket before the next;
* relays their output line by line, prefixed with the process name;
* on SIGTERM/SIGINT stops them gracefully, each within its own budget, in parallel except
  where order matters: nginx QUIT first, so it stops accepting and finishes in-flight
  requests, and uWSGI TERM (which drains its workers) once nginx has exited; background
  processes, the ops listener and the renewer from the start, beside nginx's drain;
* if any process exits on its own, stops the others and exits non-zero with the reason;
* reaps orphans (it may be PID 1) and removes sockets and pidfiles it knows of.
* recycles a uWSGI worker whose memory grew past its limit, checked from here on a timer
  (uWSGI's own reload-on-rss reads /proc in the worker after every request).

Background processes ([processes.NAME]: a scheduler, a queue worker) are more children of
the same loop, with a restart policy: restarted with a growing delay when they exit; one
that keeps crashing (``restart_limit`` quick exits in a row) stops the whole stack, non-zero,
like a uWSGI death. They stop beside nginx (a queue keeps what in-flight requests still
enqueue), each within its own stop_timeout, and their whole process group goes with them:
no orphans. Every stop is logged with the time it took.

The manager keeps a small JSON file of what runs (pids, restarts, states) for ``status``
and the ops listener, and a copy of every line it prints in a bounded, rotated file
(contracts.LogFile) for ``wsgistack logs``.

Usage: ``python -m wsgistack.runner.manager PROCESSES.json``.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from wsgistack.contracts import KILL_GRACE, SECRET_ENV, LogFile, ManagerState, ProcessState, ProcessTable, Ready, log_line
from wsgistack.procfs import PR_SET_CHILD_SUBREAPER, child_pids, descendants, die_with_parent, memory_and_age, parent_of, prctl

OPTIONAL_WAIT = 10.0  # seconds the start waits for an optional process (the ops listener) to be ready
START_TIMEOUT = 60.0
# Output (nginx's access log above all: a line per request) is relayed in batches: once
# serving, the manager reads its children's pipes at most every RELAY_INTERVAL seconds,
# from pipes enlarged to PIPE_SIZE so a busy nginx never waits for it. Waking up for every
# line cost a fifth of a small request's CPU time (docs/benchmarks.md); a batch of lines
# costs one wake-up, and a line waits at most this long.
RELAY_INTERVAL = 0.1
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python >= 3.10 on Linux has the name)
# Background processes: a restart waits at most this long (see ProcessTable.restart_backoff).
RESTART_BACKOFF_MAX = 30.0


def _child_setup(death_signal: signal.Signals = signal.SIGKILL) -> None:
    # If the manager is killed outright (SIGKILL), take the children with it. nginx gets a
    # TERM, so its master stops its workers too (they are not its children's children to
    # the kernel: killed outright, the master would leave them serving as orphans).
    die_with_parent(death_signal)


def is_ready(ready: Ready) -> bool:
    """True when every condition holds: the file exists (a process can create it once it is
    really ready: uWSGI binds its socket before it imports the app), and the process
    accepts connections on its socket."""
    try:
        if ready.file and not os.path.exists(ready.file):
            return False
        if ready.unix:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(ready.unix)
        if ready.tcp_port:
            with socket.create_connection((ready.tcp_host, ready.tcp_port), timeout=0.5):
                pass
    except OSError:
        return False
    return True


def _enlarge_pipe(fd: int) -> bool:
    """Room for a batch of output (PIPE_SIZE), where the kernel allows it (Linux). False: the
    pipe keeps its default size (64 KB), too small to wait RELAY_INTERVAL between reads
    without a busy nginx blocking on it, so the manager then reads as lines come."""
    try:
        import fcntl

        return fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", F_SETPIPE_SZ), PIPE_SIZE) >= PIPE_SIZE
    except (ImportError, OSError):
        return False  # not Linux, or over /proc/sys/fs/pipe-max-size or the user's pipe quota


def _read_available(fd: int, limit: int = 4 * PIPE_SIZE) -> tuple[bytes, bool]:
    """What a non-blocking pipe holds now (up to ``limit`` bytes), and whether it is closed."""
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        except OSError:
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks), False


def _valid_utf8(line: bytes) -> bytes:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        # escape=json leaves bytes >= 0x80 as they came (a hostile path): keep the line JSON.
        return line.decode("utf-8", "replace").encode("utf-8")
    return line








def _kill_tree(pid: int) -> None:
    """SIGKILL a child, its process group and every process below it: a descendant that
    started a session of its own (RQ's work horse does) is not in the group, and would keep
    running the job, and the pipe the manager reads, after its parent was killed."""
    below = descendants(pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for other in below:
        try:
            os.kill(other, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def describe_status(status: int) -> str:
    if status < 0:
        return f"was killed by signal {signal.Signals(-status).name}"
    return f"exited with code {status}"








@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stop_signal: signal.Signals
    ready: Ready
    drop_env_prefix: str = ""
    death_signal: signal.Signals = signal.SIGKILL
    preload: str = ""  # a library for LD_PRELOAD (before any the environment already names)
    # Background processes only: "always" | "on-failure" | "never" ("" = nginx/uWSGI: any
    # exit stops the stack), the user to run as, and paths put in front of PATH-like variables.
    restart: str = ""
    user: str = ""
    group: str = ""
    env_prepend: dict[str, str] = field(default_factory=dict)
    stop_timeout: float = 8.0  # its own budget after its stop signal, then SIGKILL
    stop_after: tuple[str, ...] = ()  # signalled once these have exited (uWSGI after nginx)
    proc: subprocess.Popen[bytes] | None = None
    status: int | None = None
    buffer: bytes = b""
    stop_sent_at: float | None = None  # when it got its stop signal (first time)
    stop_resent_at: float | None = None
    killed_at: float | None = None  # SIGKILLed past its budget
    became_ready: bool = False
    started_at: float = 0.0
    restarts: int = 0  # times it was started again after exiting
    quick_exits: int = 0  # exits in a row, each within RESTART_RESET of its start
    next_start: float | None = None  # when a pending restart is due (monotonic)
    finished: bool = False  # exited and, by its restart policy, stays down
    last_exit: str | None = None  # how its previous run ended (kept across a restart)
    # {"rss_mb": limit, "min_age": seconds, "interval": seconds}: recycle this process's
    # children (uWSGI's or granian's workers) above the limit, gracefully (see
    # Manager._recycle_bloated); with "drain" (seconds), "drain_signal" and "signal" (numbers),
    # a worker is first told to drain, then given "signal" (granian's), else SIGHUP (uWSGI's).
    recycle: dict[str, float] = field(default_factory=dict)
    optional: bool = False  # never waited for, never stops the stack (ProcessSpec.optional)
    next_recycle_check: float = 0.0
    recycling: set[int] = field(default_factory=set)  # workers told to go, not yet gone
    draining: dict[int, float] = field(default_factory=dict)  # worker -> when its drain ends
    reload_at: float | None = None  # a SIGHUP due once its workers have drained (granian's reload)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.status is None

    @property
    def state(self) -> str:
        if self.running:
            return "stopping" if self.stop_sent_at is not None else ("running" if self.became_ready else "starting")
        if self.next_start is not None:
            return "backoff"
        return "exited" if self.proc is not None else "waiting"


@dataclass
class Manager:
    table: ProcessTable
    out: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    on_ready: Callable[[Manager], None] | None = None
    # The app's own environment (app.env): never in the table's file (contracts.SECRET_ENV).
    secret_env: Mapping[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    exit_code: int = 0
    stopping: bool = False
    reason: str = ""
    _signals: list[int] = field(default_factory=list)
    _drain_until: float | None = None  # draining before a stop (drain_delay): when it ends
    _stop_began: float | None = None
    _stop_deadline: float = float("inf")

    def __post_init__(self) -> None:
        for spec in self.table.processes:
            self.children.append(
                Child(
                    name=spec.name,
                    argv=list(spec.argv),
                    env={**spec.env, **(self.secret_env if spec.secret_env else {})},
                    cwd=spec.cwd or os.getcwd(),
                    stop_signal=signal.Signals["SIG" + spec.stop_signal],
                    ready=spec.ready,
                    drop_env_prefix=spec.drop_env_prefix,
                    death_signal=signal.Signals["SIG" + spec.death_signal],
                    preload=spec.preload,
                    restart=spec.restart,
                    user=spec.user,
                    group=spec.group,
                    env_prepend=dict(spec.env_prepend),
                    stop_timeout=float(self.table.stop_timeout if spec.stop_timeout is None else spec.stop_timeout),
                    stop_after=tuple(spec.stop_after),
                    recycle=dict(spec.recycle),
                    optional=spec.optional,
                )
            )
        self.stop_timeout = float(self.table.stop_timeout)
        self.width = max((len(c.name) for c in self.children), default=5)
        self.restart_backoff = self.table.restart_backoff
        self.restart_reset = self.table.restart_reset
        self.restart_limit = self.table.restart_limit
        self.state_file = self.table.state_file
        self.started = time.time()
        self._selector: selectors.BaseSelector | None = None
        self.json_logs = self.table.log_format == "json"
        self._batch_output = True  # every pipe could be enlarged (see RELAY_INTERVAL)
        # What `wsgistack logs` reads: our stdout's lines in the same order, each after when we wrote it.
        self.log_file = LogFile(self.table.log_file, self.table.log_limit) if self.table.log_file else None

    # --- output -------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self._write(log_line("wsgistack", text, self.json_logs, self.width))

    def _write(self, data: bytes) -> None:
        try:
            self.out.write(data)
            self.out.flush()
        except (BrokenPipeError, ValueError):
            pass
        if self.log_file is not None:
            try:
                self.log_file.write(data)
            except OSError as exc:
                # A full disk must not stop the site: the lines still reach stdout.
                self.log_file.close()
                self.log_file = None
                self._write(log_line("wsgistack", f"stopped copying the output to {self.table.log_file}: {exc}",
                                     self.json_logs, self.width))

    def _relay(self, child: Child, chunk: bytes, final: bool = False) -> None:
        child.buffer += chunk
        *lines, child.buffer = child.buffer.split(b"\n")
        if final and child.buffer:
            lines.append(child.buffer)
            child.buffer = b""
        if not lines:
            return
        if self.json_logs:
            self._write(b"".join(self._json_line(child, line) for line in lines))
            return
        prefix = f"{child.name:>{self.width}} | ".encode()
        self._write(b"".join(prefix + line + b"\n" for line in lines))

    def _json_line(self, child: Child, line: bytes) -> bytes:
        line = line.rstrip(b"\r")
        if not line.strip():
            return b""
        # nginx's access log is JSON already (log_format ... escape=json), and so may be an
        # app's structured logs: passed on as they are when they parse as one object.
        if line.startswith(b'{"time":"') and child.name == "nginx":
            return _valid_utf8(line) + b"\n"
        if line.startswith(b"{") and line.endswith(b"}"):
            try:
                if isinstance(json.loads(line), dict):
                    return _valid_utf8(line) + b"\n"
            except ValueError:
                pass
        return log_line(child.name, line.decode("utf-8", "replace"), True)

    # --- lifecycle ----------------------------------------------------------------------

    def _start(self, child: Child, selector: selectors.BaseSelector) -> None:
        if child.proc is not None and child.proc.stdout is not None:  # a restart: finish the old pipe
            self._drain_pipe(child, selector)
        child.status = None
        child.stop_sent_at = child.stop_resent_at = child.killed_at = None
        child.next_start = None
        child.started_at = time.monotonic()
        # uWSGI reads every UWSGI_* variable as one of its options (UWSGI_URI would be a
        # strict-mode error, UWSGI_PROCESSES would override the rendered ini): the seeds'
        # UWSGI_* names are wsgistack settings, already rendered, so they are not passed on.
        env = {k: v for k, v in os.environ.items() if not k.startswith(child.drop_env_prefix)} if child.drop_env_prefix else dict(os.environ)
        env.update(child.env)
        if child.preload:
            env["LD_PRELOAD"] = " ".join(filter(None, (child.preload, env.get("LD_PRELOAD"))))
        # A child that drops privileges loses its parent-death signal (the kernel clears it
        # when the user changes); it can re-arm it, and check it was not orphaned meanwhile.
        env["_WSGISTACK_MANAGER_PID"] = str(os.getpid())
        for name, first in child.env_prepend.items():
            env[name] = os.pathsep.join(filter(None, (first, env.get(name, ""))))
        as_user: dict[str, Any] = {}
        if child.user:
            # The preexec function runs after the user change: the parent-death signal it
            # sets is kept (a change after it would clear it).
            as_user = {"user": child.user, "group": child.group or None, "extra_groups": []}
        try:
            child.proc = subprocess.Popen(
                child.argv,
                cwd=child.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only us, and we stop them in order.
                start_new_session=True,
                preexec_fn=functools.partial(_child_setup, child.death_signal),
                **as_user,
            )
        except OSError as exc:  # command not found, not executable, a cwd that vanished
            if not child.restart:
                raise
            self.say(f"{child.name} cannot start: {exc.strerror or exc}: {child.argv[0]}")
            child.proc = None
            child.status = 127
            self._on_exit(child)
            return
        assert child.proc.stdout is not None
        os.set_blocking(child.proc.stdout.fileno(), False)
        if not _enlarge_pipe(child.proc.stdout.fileno()):
            self._batch_output = False
        selector.register(child.proc.stdout, selectors.EVENT_READ, child)
        if child.restart:
            child.became_ready = True  # background processes have no readiness probe
        self._save_state()

    def _drain_pipe(self, child: Child, selector: selectors.BaseSelector) -> None:
        assert child.proc is not None and child.proc.stdout is not None
        pipe = child.proc.stdout
        try:
            data, _closed = _read_available(pipe.fileno())
        except ValueError:  # the pipe is closed already
            data = b""
        if data:
            self._relay(child, data)
        self._relay(child, b"", final=True)
        try:
            selector.unregister(pipe)
        except (KeyError, ValueError):
            pass
        pipe.close()

    def _save_state(self) -> None:
        """Write what runs, for `wsgistack status` and the ops listener (atomically: they may
        read it at any moment; contracts.ManagerState, readable by all, writable by us only)."""
        if not self.state_file:
            return
        now, wall = time.monotonic(), time.time()
        state = ManagerState(
            manager_pid=os.getpid(),
            started=self.started,
            stopping=self.stopping,
            processes=tuple(
                ProcessState(
                    name=c.name,
                    kind="background" if c.restart else "server",
                    pid=c.proc.pid if c.running and c.proc is not None else None,
                    state=c.state,
                    restarts=c.restarts,
                    restart=c.restart or None,
                    since=round(wall - (now - c.started_at), 3) if c.proc is not None else None,
                    last_exit=c.last_exit,
                )
                for c in self.children
            ),
        )
        try:
            state.write(self.state_file, 0o644)
        except OSError:
            pass

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP:
                self.say("SIGHUP: reloading nginx and the app server gracefully")
                for child in self.children:
                    # Background processes have no common meaning for HUP (it kills most).
                    if child.running and child.proc is not None and not child.restart:
                        if child.recycle.get("drain"):
                            self.drain_then_reload(child)
                        else:
                            os.kill(child.proc.pid, signal.SIGHUP)
            elif not self.stopping and self._drain_until is None and self.table.drain_file:
                self.begin_drain(signal.Signals(signum).name)
            elif not self.stopping and (self._drain_until is None or signum == signal.SIGINT):
                self.begin_stop(f"{signal.Signals(signum).name} received")
            elif signum == signal.SIGINT and self.stopping:
                self.say("second interrupt: killing everything now")
                self._kill_all()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for child in self.children:
                if child.proc is not None and child.proc.pid == pid and child.status is None:
                    child.status = os.waitstatus_to_exitcode(status)
                    child.proc.returncode = child.status
                    self._on_exit(child)

    def _on_exit(self, child: Child) -> None:
        child.last_exit = describe_status(child.status) if child.status is not None else None
        if child.restart and child.proc is not None:
            # What it started and left behind (its process group) goes with it: no orphans.
            # (Its own descendants in another session are ours now, as subreaper: see _kill_tree.)
            try:
                os.killpg(child.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._save_state()
        if self.stopping:
            self._stopped(child)
            return
        assert child.status is not None
        if child.restart:
            self._on_background_exit(child)
            return
        self._fail(child, f"{child.name} {describe_status(child.status)} unexpectedly")

    def _fail(self, child: Child, reason: str) -> None:
        assert child.status is not None
        self.exit_code = child.status if child.status > 0 else 1
        self.reason = reason
        others = ", ".join(c.name for c in self.children if c.running) or "nothing else"
        self.begin_stop(f"{self.reason}; stopping {others}")

    def _on_background_exit(self, child: Child) -> None:
        assert child.status is not None
        what = describe_status(child.status)
        again = child.restart == "always" or (child.restart == "on-failure" and child.status != 0)
        if not again:
            if child.status == 0:
                child.finished = True
                self.say(f"{child.name} {what} (restart = {child.restart}): not restarted")
                self._save_state()
                return
            self._fail(child, f"{child.name} {what} (restart = {child.restart})")
            return
        now = time.monotonic()
        if now - child.started_at >= self.restart_reset:
            child.quick_exits = 0
        child.quick_exits += 1
        if child.quick_exits >= self.restart_limit and child.optional:
            # An optional process that keeps failing is left down (and said), the site serves on.
            child.finished = True
            self.say(f"{child.name} {what}, {child.quick_exits} times in a row: it is optional, so it stays down and "
                     "the site serves on (see its output above)")
            self._save_state()
            return
        if child.quick_exits >= self.restart_limit:
            self._fail(
                child,
                f"{child.name} {what}: {child.quick_exits} exits in a row, each within {self.restart_reset:g}s of "
                "its start; giving up",
            )
            return
        delay = min(RESTART_BACKOFF_MAX, self.restart_backoff * 2 ** (child.quick_exits - 1))
        child.next_start = now + delay
        child.restarts += 1
        self.say(f"{child.name} {what}; restarting in {delay:g}s (restart {child.restarts})")
        self._save_state()

    def begin_drain(self, why: str) -> None:
        """Before a stop: the drain marker makes the readiness path answer 503 while nginx and
        uWSGI go on serving, for `drain.delay` seconds, so a balancer takes this node out
        before nginx stops accepting connections (no request of its meets a closed port)."""
        table = self.table
        try:
            # Never through a link (the runtime dir is ours; O_NOFOLLOW all the same).
            os.close(os.open(table.drain_file, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        except OSError as exc:
            self.begin_stop(f"could not create the drain marker {table.drain_file}: {exc.strerror}")
            return
        self._drain_until = time.monotonic() + table.drain_delay
        self.say(f"{why} received: draining for {table.drain_delay:g}s (readiness answers 503), then stopping gracefully "
                 "(Ctrl-C again: stop now)")

    def begin_stop(self, why: str = "") -> None:
        """Signal every process that waits for no other (nginx, the background processes, the
        ops listener), each with its own budget; the rest follow as what they wait for exits
        (see :meth:`_stop_next`). Says what gets how long, and the longest the stop can take."""
        self.stopping = True
        now = time.monotonic()
        self._stop_began = now
        for child in self.children:
            child.next_start = None  # a pending restart is off
        running = [c for c in self.children if c.running]
        now_names = [c for c in running if not self._waits_for(c)]
        later = [c for c in running if self._waits_for(c)]
        plan = ", ".join(f"{c.name} (up to {c.stop_timeout:g}s)" for c in now_names)
        for c in later:
            plan += f"; {c.name} once {' and '.join(self._waits_for(c))} exited (until {c.stop_timeout:g}s from now)"
        longest = self._longest_stop(running)
        # A safety net only: each process has its own deadline; this one is never reached
        # unless the clock or a process misbehaves (an unkillable one in D state).
        self._stop_deadline = now + longest + KILL_GRACE * (len(running) + 1)
        if running:
            head = f"{why}: stopping" if why else "stopping"
            self.say(f"{head} {plan}; at most {longest:g}s in all")
        elif why:
            self.say(why)
        self._stop_next(initial=True)
        self._save_state()

    def _waits_for(self, child: Child) -> list[str]:
        """The processes ``child`` is stopped after, of those still running."""
        return [c.name for c in self.children if c.name in child.stop_after and c is not child and c.running]

    def _longest_stop(self, running: list[Child]) -> float:
        """The longest a stop of these processes can take: the longest chain of budgets (a
        process after the ones it waits for), each plus the wait for a SIGKILLed process."""
        names = {c.name: c for c in running}
        memo: dict[str, float] = {}

        def finish(child: Child, seen: frozenset[str]) -> float:
            if child.name not in memo:  # every deadline counts from the stop's start (plan/stop.py)
                before = [finish(names[n], seen | {child.name}) for n in child.stop_after if n in names and n not in seen]
                memo[child.name] = max(max(before, default=0.0), child.stop_timeout + KILL_GRACE)
            return memo[child.name]

        return round(max((finish(c, frozenset()) for c in running), default=0.0), 3)

    def _stop_next(self, initial: bool = False) -> None:
        """Signal the processes whose turn it is (none of their stop_after runs any more), and
        SIGKILL, with its process group, one that is past its own budget: counted from the
        stop's start, so a process whose turn comes late gets what is left of it."""
        now = time.monotonic()
        began = self._stop_began if self._stop_began is not None else now
        for child in self.children:
            if not child.running or child.proc is None:
                continue
            if child.stop_sent_at is not None:
                if child.killed_at is None and now - began > child.stop_timeout:
                    self.say(f"{child.name} did not stop within its {child.stop_timeout:g}s: killing it (SIGKILL)")
                    child.killed_at = now
                    _kill_tree(child.proc.pid)
                    continue
                # A process still starting may lose the signal: nginx's master records a QUIT
                # that arrives before it waits for signals, then sleeps until the next one.
                # It has no requests in flight yet, so repeating the signal is harmless.
                if child.killed_at is None and not child.became_ready and now - (child.stop_resent_at or child.stop_sent_at) > 0.5:
                    child.stop_resent_at = now
                    self._signal(child, child.stop_signal)
                continue
            waits = self._waits_for(child)
            if waits:
                continue
            if child.stop_after and not initial:
                after = " and ".join(n for n in child.stop_after if any(c.name == n for c in self.children))
                left = max(0.0, child.stop_timeout - (now - began))
                self.say(f"stopping {child.name} now that {after} exited (up to {left:.1f}s: until {child.stop_timeout:g}s)")
            child.stop_sent_at = now
            self._signal(child, child.stop_signal)

    def _signal(self, child: Child, signum: signal.Signals) -> None:
        assert child.proc is not None
        try:
            os.kill(child.proc.pid, signum)
        except ProcessLookupError:
            pass

    def _stopped(self, child: Child) -> None:
        """A process that exited during the stop: how, and after how long (the truth, for the
        log: what each process took of its budget)."""
        if child.stop_sent_at is None:
            what = describe_status(child.status or 0)
            self.say(f"{child.name} {what} before its turn to stop")
            return
        took = time.monotonic() - child.stop_sent_at
        if child.killed_at is not None:
            self.say(f"{child.name} killed after {took:.2f}s (its budget: {child.stop_timeout:g}s into the stop)")
        elif child.status in (0, -child.stop_signal):
            self.say(f"{child.name} stopped in {took:.2f}s (its budget: {child.stop_timeout:g}s into the stop)")
        else:
            self.say(f"{child.name} {describe_status(child.status or 0)} while stopping, after {took:.2f}s")

    def _kill_all(self) -> None:
        for child in self.children:
            if child.running and child.proc is not None:
                _kill_tree(child.proc.pid)

    def _pump(self, selector: selectors.BaseSelector, timeout: float, batch: bool = False) -> None:
        """Relay what the children wrote. ``batch``: then wait RELAY_INTERVAL, so the next
        lines arrive together (nginx's access log would otherwise wake us once a request)."""
        events = selector.select(timeout)
        for key, _ in events:
            child: Child = key.data
            data, closed = _read_available(key.fd)
            if data:
                self._relay(child, data)
            if closed:
                selector.unregister(key.fileobj)
                self._relay(child, b"", final=True)
        if batch and events:
            time.sleep(RELAY_INTERVAL)

    def run(self) -> int:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        selector = selectors.DefaultSelector()
        try:
            self._run(selector)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._kill_all()
            self._cleanup()
            selector.close()
        if self.reason:
            self.say(f"exiting with code {self.exit_code}: {self.reason}")
        else:
            self.say("stopped")
        if self.log_file is not None:
            self.log_file.close()
        return self.exit_code

    def _restart_due(self, selector: selectors.BaseSelector) -> float:
        """Start the background processes whose backoff is over; seconds until the next."""
        now, wait = time.monotonic(), 0.2
        for child in self.children:
            if child.next_start is not None and not self.stopping:
                if now >= child.next_start:
                    self.say(f"restarting {child.name}")
                    self._start(child, selector)
                else:
                    wait = min(wait, child.next_start - now)
        return max(0.01, wait)

    def _active(self, selector: selectors.BaseSelector) -> bool:
        return any(c.running or c.next_start is not None for c in self.children) or bool(selector.get_map())

    def _run(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        for child in self.children:
            if self.stopping:
                break
            self._start(child, selector)
            deadline = time.monotonic() + (OPTIONAL_WAIT if child.optional else START_TIMEOUT)
            while not self.stopping and not child.ready.empty and not is_ready(child.ready):
                if child.optional and not child.running:
                    break  # it failed (and is restarted, or left down): the site does not wait for it
                self._pump(selector, 0.02)
                self._reap()
                self._handle_signals()
                if time.monotonic() > deadline and child.optional:
                    self.say(f"{child.name} did not open {child.ready.describe()} within {OPTIONAL_WAIT:g}s: it is "
                             "optional, so the site starts without waiting for it")
                    break
                if time.monotonic() > deadline:
                    self.exit_code, self.reason = 1, f"{child.name} did not open {child.ready.describe()} within {START_TIMEOUT:g}s"
                    self.begin_stop(self.reason)
            child.became_ready = not self.stopping
            self._save_state()
        if not self.stopping:
            if self.table.url:
                self.say(f"serving {self.table.url}  (Ctrl-C to stop)")
            if self.on_ready is not None:
                self.on_ready(self)
        while self._active(selector):
            self._pump(selector, self._restart_due(selector), batch=self._batch_output and not self.stopping)
            self._reap()
            self._handle_signals()
            if self._drain_until is not None and not self.stopping and time.monotonic() >= self._drain_until:
                self.begin_stop("drained")
            if not self.stopping:
                self._recycle_bloated()
            if self.stopping:
                self._stop_next()
                if time.monotonic() > self._stop_deadline:
                    late = ", ".join(c.name for c in self.children if c.running)
                    if late:
                        self.say(f"{late} still running {time.monotonic() - self._stop_began:.1f}s into the stop: killing")
                    self._kill_all()
                    self._stop_deadline = float("inf")
            if not self._active(selector):
                break

    def drain_then_reload(self, child: Child) -> None:
        """granian's reload: its workers drain first (their responses close their connections,
        so nginx keeps none a stopping worker would close under it), then granian's own SIGHUP
        replaces them one at a time."""
        for pid in child_pids(child.proc.pid) if child.proc is not None else []:
            self._signal_worker(child, pid, int(child.recycle.get("drain_signal", signal.SIGWINCH)))
        child.reload_at = time.monotonic() + child.recycle["drain"]

    def _signal_worker(self, child: Child, pid: int, signum: int) -> bool:
        # Only a worker of this child, as the kernel says now (a pid may have been reused).
        if child.proc is None or parent_of(pid) != child.proc.pid:
            return False
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def _drained(self) -> None:
        """Drains that are over: the reload signal, or the worker's own stop signal."""
        now = time.monotonic()
        for child in self.children:
            if child.reload_at is not None and now >= child.reload_at:
                child.reload_at = None
                if child.running and child.proc is not None:
                    os.kill(child.proc.pid, signal.SIGHUP)
            for pid, until in list(child.draining.items()):
                if now >= until:
                    del child.draining[pid]
                    self._signal_worker(child, pid, int(child.recycle.get("signal", signal.SIGTERM)))

    def _recycle_bloated(self) -> None:
        """Memory-based recycling from outside the workers, every few seconds. uWSGI's own
        (reload-on-rss, and memory-report for its stats) makes each worker read /proc after
        every request, which cost a fifth of a small request's CPU time (docs/benchmarks.md).
        A worker over the limit gets SIGHUP, uWSGI's graceful reload of one worker: it
        finishes the request it has, exits, and its master spawns a fresh one. A worker
        younger than min_age is left alone (uWSGI's min-worker-lifetime: no reload storm)."""
        self._drained()
        now = time.monotonic()
        for child in self.children:
            if not child.recycle or not child.running or child.proc is None or now < child.next_recycle_check:
                continue
            child.next_recycle_check = now + child.recycle.get("interval", 2.0)
            workers = child_pids(child.proc.pid)
            child.recycling &= set(workers)
            limit_mb = child.recycle["rss_mb"]
            for pid in workers:
                usage = memory_and_age(pid)
                if usage is None or pid in child.recycling:
                    continue
                rss_mb, age = usage
                if rss_mb > limit_mb and age >= child.recycle.get("min_age", 10.0):
                    drain = child.recycle.get("drain", 0.0)
                    if drain:  # granian: drain its connections first, then stop it
                        if not self._signal_worker(child, pid, int(child.recycle.get("drain_signal", signal.SIGWINCH))):
                            continue
                        child.draining[pid] = now + drain
                    else:  # uWSGI's graceful reload of one worker
                        try:
                            os.kill(pid, signal.SIGHUP)
                        except ProcessLookupError:
                            continue
                    child.recycling.add(pid)
                    self.say(f"{child.name} worker {pid} uses {rss_mb:.0f} MB, over its limit of {limit_mb:g} MB: "
                             "recycling it gracefully (it finishes its request first)")

    def _cleanup(self) -> None:
        # Reap anything left (grandchildren re-parented to us as subreaper).
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        for path in self.table.cleanup:
            try:
                Path(path).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.say(f"could not remove {path}: {exc.strerror}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m wsgistack.runner.manager PROCESSES.json", file=sys.stderr)
        return 2
    import json

    from wsgistack.errors import WsgistackError

    # The app's secret environment, from the entrypoint that exec'd us: not passed on as such.
    secret = json.loads(os.environ.pop(SECRET_ENV, "") or "{}")
    try:
        table = ProcessTable.read(argv[0])  # ours (or root's), never a link, writable by no one else
    except (WsgistackError, FileNotFoundError) as exc:
        print(exc.render() if isinstance(exc, WsgistackError) else f"no process table: {exc}", file=sys.stderr)
        return 2
    return Manager(table, secret_env=secret).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
