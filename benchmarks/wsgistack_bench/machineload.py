"""How busy the machine is with things that are not the benchmark.

CPU time per request looks load-independent, but it is not: a server's cost per request
depends on the rate it is driven at (at saturation wake-ups and system calls are shared by
several requests, below it each request pays its own), and a closed-loop load generator
drives a stack more slowly when other jobs take CPU from it or from the generator.
granian behind nginx measured 26 µs per hello request at saturation and 60-72 µs at a
third of that rate, with the same binary and flags (issue 25). So a run on a busy machine
measures something else than a run on a quiet one, and the two must not be compared.

This module measures the load that is not ours: before a run, /proc/loadavg and the CPU
busy over a short window in which the harness runs nothing; during a run, per sample, the
CPU busy from /proc/stat minus the CPU time of the stack under test, of the load generator
and of the harness itself. The parsing and arithmetic are pure; :func:`snapshot` and
:func:`probe` read /proc.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Default threshold: CPUs busy with other work while a sample runs. Two identical stacks
# agree within 1 % only on a quiet machine (FIELD-NOTES: 0.6-0.8 % quiet, 4-16 % busy);
# tick-sampled accounting leaves about +-0.1 CPU of noise in the estimate itself.
DEFAULT_MAX_OTHER_CPUS = 0.25


@dataclass(frozen=True)
class CpuTicks:
    """The aggregate ``cpu`` line of /proc/stat, in clock ticks."""

    busy: int  # user + nice + system + irq + softirq
    idle: int  # idle + iowait
    steal: int  # taken by the hypervisor for other guests: nobody in this machine used it

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.steal


def _ticks(fields: list[str]) -> CpuTicks:
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    values = [int(v) for v in fields[1:9]] + [0] * max(0, 8 - len(fields[1:9]))
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return CpuTicks(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal)


def parse_proc_stat(text: str) -> CpuTicks:
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return _ticks(fields)
    raise ValueError("no aggregate cpu line in /proc/stat")


def parse_proc_stat_per_cpu(text: str) -> dict[int, CpuTicks]:
    """The ``cpuN`` lines: what each CPU did (the servers' CPUs are pinned, see harness)."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("cpu") and fields[0][3:].isdigit():
            out[int(fields[0][3:])] = _ticks(fields)
    return out


def parse_loadavg(text: str) -> tuple[float, float, float]:
    one, five, fifteen = (float(v) for v in text.split()[:3])
    return one, five, fifteen


@dataclass(frozen=True)
class Snapshot:
    """What is needed to tell our CPU time from everyone else's over an interval."""

    at: float  # time.monotonic()
    cpu: CpuTicks
    own_s: float  # CPU seconds of the harness and its reaped children (the load generator) so far
    per_cpu: Mapping[int, CpuTicks] = field(default_factory=dict)


def _own_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def snapshot() -> Snapshot:
    text = Path("/proc/stat").read_text()
    return Snapshot(time.monotonic(), parse_proc_stat(text), _own_seconds(), parse_proc_stat_per_cpu(text))


@dataclass(frozen=True)
class Interference:
    """CPUs busy with work that is not the benchmark, averaged over one interval."""

    other_cpus: float  # busy CPUs minus the stack, the load generator and the harness
    steal_cpus: float
    seconds: float
    # Busy CPU-seconds of the CPUs the servers are pinned to: the stack's own CPU time should
    # account for nearly all of it (a process or thread the harness does not see would not).
    server_busy_s: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {k: None if v is None else round(v, 3) for k, v in asdict(self).items()}


def interference(before: Snapshot, after: Snapshot, stack_cpu_s: float = 0.0,
                 clock_ticks: int = CLOCK_TICKS, server_cpus: Sequence[int] = ()) -> Interference:
    """Other work between two snapshots. ``stack_cpu_s``: the CPU time the stack under test
    spent meanwhile (read from its processes); the harness's own and its reaped children's
    (the load generator, waited for inside the interval) come from the snapshots."""
    seconds = max(after.at - before.at, 1e-6)
    busy_s = (after.cpu.busy - before.cpu.busy) / clock_ticks
    ours = stack_cpu_s + (after.own_s - before.own_s)
    steal_s = (after.cpu.steal - before.cpu.steal) / clock_ticks
    server_busy = None
    if server_cpus and all(c in before.per_cpu and c in after.per_cpu for c in server_cpus):
        server_busy = sum(after.per_cpu[c].busy - before.per_cpu[c].busy for c in server_cpus) / clock_ticks
    return Interference(other_cpus=(busy_s - ours) / seconds, steal_cpus=steal_s / seconds, seconds=seconds,
                        server_busy_s=server_busy)


@dataclass(frozen=True)
class MachineLoad:
    """The machine before a run: the kernel's load average and a measured idle window."""

    loadavg: tuple[float, float, float]
    idle_window: Interference  # nothing of the benchmark ran in it
    cpus: int

    def to_dict(self) -> dict[str, object]:
        return {"loadavg": list(self.loadavg), "cpus": self.cpus, **self.idle_window.to_dict()}


def probe(window_s: float = 2.0) -> MachineLoad:
    """Measure the machine with nothing of ours running (call it before starting stacks)."""
    loadavg = parse_loadavg(Path("/proc/loadavg").read_text())
    before = snapshot()
    time.sleep(window_s)
    return MachineLoad(loadavg, interference(before, snapshot()), os.cpu_count() or 1)


@dataclass(frozen=True)
class LoadPolicy:
    """When the machine counts as too busy to measure."""

    max_other_cpus: float = DEFAULT_MAX_OTHER_CPUS
    allow_busy: bool = False  # measure anyway (every result stays marked)

    def too_busy(self, load: Interference) -> bool:
        return load.other_cpus > self.max_other_cpus

    def before_run(self, machine: MachineLoad) -> list[str]:
        """Problems with starting now, as messages; empty when the machine is quiet. The load
        average is reported, not judged: it lags a minute and counts the previous run's own
        threads, while the idle window measures this moment."""
        problems = []
        if self.too_busy(machine.idle_window):
            problems.append(
                f"{machine.idle_window.other_cpus:.2f} CPUs were busy with other work over "
                f"{machine.idle_window.seconds:.1f} s before the run (threshold {self.max_other_cpus:g}; "
                f"load average {machine.loadavg[0]:.2f} on {machine.cpus} CPUs)")
        return problems


# --- the server core's own speed ---------------------------------------------------------------
#
# On a virtual machine the same work does not always take the same CPU time: a fixed Python
# loop pinned to one vCPU here took 15.1 to 27.5 ms a piece, second by second, for periods of
# up to 10 s, while /proc/stat showed no steal and nothing else running (the host's other
# tenants share the physical core; measured 2026-12-08, docs/benchmarks.md), which no load
# check inside the machine can see. So every sample also times a fixed piece of work on the
# server CPUs while the stack runs: its CPU time (not its wall time, which the busy core's
# scheduling would decide) says how fast the core was. It finds the stretches when the core
# was far slower (the harness measures those samples again); a stack's smaller round-to-round
# moves it tracks only weakly (r 0.83 in one set of 12 samples, 0.24-0.38 in another of 14),
# so no figure is scaled by it.

PROBE_WORK = 20_000  # loop iterations a piece: about 0.9 ms of CPU here
PROBE_INTERVAL_S = 0.05  # a piece every 50 ms: under 2 % of a server CPU


def reference_work(n: int = PROBE_WORK) -> int:
    """The fixed piece of work: pure-Python arithmetic, what the servers' Python code does most."""
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


class CoreProbe:
    """Times :func:`reference_work` on each of ``cpus`` every ``interval_s`` while in the ``with``
    block (a thread per CPU, pinned to it). :attr:`pieces_ms` holds the CPU time of each piece."""

    def __init__(self, cpus: Sequence[int], interval_s: float = PROBE_INTERVAL_S, work: int = PROBE_WORK) -> None:
        self.cpus = tuple(cpus)
        self.interval_s = interval_s
        self.work = work
        self.pieces_ms: list[float] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, cpu: int) -> None:
        try:
            os.sched_setaffinity(0, {cpu})  # 0: this thread only
        except OSError:
            return
        reference_work(self.work)  # warm: the first piece pays for the bytecode cache
        while not self._stop.is_set():
            start = time.thread_time()
            reference_work(self.work)
            self.pieces_ms.append((time.thread_time() - start) * 1000)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "CoreProbe":
        for cpu in self.cpus:
            thread = threading.Thread(target=self._run, args=(cpu,), name=f"core-probe-{cpu}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.pieces_ms) if len(self.pieces_ms) >= 5 else None


def slower_by(core_ms: float | None, fastest_ms: float | None) -> float | None:
    """How much slower the core ran than at its fastest: 0.10 = the same work took 10 % longer."""
    if core_ms is None or not fastest_ms:
        return None
    return core_ms / fastest_ms - 1
