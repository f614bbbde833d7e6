"""Interleaved rounds, medians, ratios, the serial bound and the target checks.

The machine is shared and noisy, so one number from one run means little:
every stack runs each scenario once per round, in the same order every round
(A B C A B C ...), and only medians over rounds and ratios between stacks
measured in the same run are reported.

The pure parts (:func:`summarise`, :func:`serial_bound`, :func:`check_targets`,
:func:`split_cpus`) are separate from :func:`run_bench`, which drives real
processes through :mod:`.procs`.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import machineload, procs
from .benchapp import SLOW_PATH, WHITENOISE_PREFIX
from .load import BurstResult, LoadError, LoadResult, LoadSpec, run_burst, run_load
from .stacks import AppTarget, StackBuilder, StackContext, StackPlan, StackUnavailable

CEILING = "ceiling"
STATIC_FILES = {"1k.css": 1024, "100k.css": 100 * 1024}


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    path: str
    connections: int
    stacks: tuple[str, ...] | None = None  # None: every stack of the app
    headers: tuple[str, ...] = ()
    # Per connection, a pause between a response and the next request: the stacks are then
    # driven at about connections / think seconds, below saturation, where a server's CPU per
    # request differs from its cost at saturation (and granian's by 2-3x, issue 25).
    think_ms: int = 0

    def runs_on(self, stack: str) -> bool:
        return self.stacks is None or stack in self.stacks


@dataclass(frozen=True)
class BenchOptions:
    rounds: int = 5
    duration_s: float = 5.0
    warmup_s: float = 1.0
    server_cpus: tuple[int, ...] = ()
    load_cpus: tuple[int, ...] = ()
    use_wrk: bool = True
    burst_connections: int = 1000
    burst_rounds: int = 1
    burst_timeout_s: float = 60.0
    burst_stacks: tuple[str, ...] = ()
    slow_ms: int = 20
    memory_app: str = "django"
    load_policy: machineload.LoadPolicy = machineload.LoadPolicy()
    noisy_retries: int = 2  # a sample taken while other work was busy is taken again, this often
    # The server core's speed (machineload.CoreProbe) is timed during every sample; one taken
    # while the core ran more than this much slower than the fastest seen for the same stack and
    # scenario in this run is taken again (within noisy_retries). None: time it, never retake.
    max_core_slowdown: float | None = 0.15
    core_probe: bool = True


@dataclass(frozen=True)
class Sample:
    stack: str
    scenario: str
    round: int
    result: LoadResult
    cpu_s: float | None = None  # CPU time (user + system) the stack's processes spent in this run
    cpu_split: Mapping[str, float] | None = None  # the same by kind of process (nginx, uwsgi, manager, ...)
    # CPUs busy with other work while this sample ran (machineload), and how many attempts it took.
    interference: machineload.Interference | None = None
    attempts: int = 1
    noisy: bool = False  # still over the load policy's threshold after the retries
    # Median CPU ms of the core probe's fixed piece of work on the server CPUs during the sample
    # (machineload.CoreProbe): how fast the core itself ran. None: not timed (no pinning).
    core_ms: float | None = None
    slow: bool = False  # the core ran slower than max_core_slowdown allows, even after the retries

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.cpu_s is None or not self.result.requests:
            return None
        return self.cpu_s * 1e6 / self.result.requests

    @property
    def accounted(self) -> float | None:
        """The stack's CPU time ÷ the busy time of the server CPUs it is pinned to (about 1 when
        nothing else runs there and the harness sees every process and thread of the stack)."""
        busy = self.interference.server_busy_s if self.interference else None
        if self.cpu_s is None or not busy:
            return None
        return self.cpu_s / busy

    def split_us_per_request(self) -> dict[str, float]:
        if not self.cpu_split or not self.result.requests:
            return {}
        return {k: v * 1e6 / self.result.requests for k, v in self.cpu_split.items()}


@dataclass(frozen=True)
class BurstSample:
    stack: str
    app: str
    round: int
    result: BurstResult


@dataclass(frozen=True)
class Summary:
    stack: str
    scenario: str
    rounds: int
    rps: float  # median over rounds
    p50_ms: float  # median of per-round p50
    p99_ms: float  # median of per-round p99
    errors: int  # summed over rounds: any error anywhere is a failure
    non2xx: int
    rps_values: tuple[float, ...]
    # CPU time per request (µs): the cost measure that other load on the machine barely
    # moves, unlike req/s. Median over rounds, and every round's value for the spread.
    cpu_us: float | None = None
    cpu_us_values: tuple[float, ...] = ()
    # Median CPU µs per request of each kind of process (nginx, uwsgi, manager, ...).
    cpu_split_us: Mapping[str, float] = field(default_factory=dict)
    noisy_rounds: int = 0  # rounds measured while the machine was busier than the load policy allows
    other_cpus_max: float | None = None  # the busiest of those rounds: CPUs of other work
    accounted: float | None = None  # median of Sample.accounted
    # The core probe: median over rounds of its piece's CPU ms, and the rounds still slow
    # after their retries. Not a correction: beside a busy stack the probe tracks the stack's
    # own CPU time per request weakly (r 0.24-0.38 over 14 samples, docs/benchmarks.md), so it
    # only finds the episodes when the core itself was far slower.
    core_ms: float | None = None
    slow_rounds: int = 0


@dataclass
class BenchResults:
    options: BenchOptions
    scenarios: list[Scenario]
    stacks: dict[str, list[str]]  # app -> stack names that ran
    samples: list[Sample] = field(default_factory=list)
    bursts: list[BurstSample] = field(default_factory=list)
    memory: dict[str, list[procs.ProcMemory]] = field(default_factory=dict)  # "app/stack" -> procs
    skipped: dict[str, str] = field(default_factory=dict)  # stack -> reason
    machine: dict[str, str] = field(default_factory=dict)
    command: str = ""
    machine_load: machineload.MachineLoad | None = None  # measured before the first stack started
    warnings: list[str] = field(default_factory=list)
    # "app/stack" -> what ran: every process's argv (and the environment the plan sets) plus the
    # stack's own configuration record (StackPlan.config), so a result names its flags.
    configs: dict[str, dict[str, object]] = field(default_factory=dict)


class MachineBusy(RuntimeError):
    """The machine is too busy with other work for the numbers to mean anything."""


# --- pure helpers ----------------------------------------------------------


def split_cpus(available: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(server CPUs, load CPUs): half each, load gets the rest; no pinning with one CPU."""
    cpus = sorted(available)
    if len(cpus) < 2:
        return (), ()
    n_load = len(cpus) // 2
    return tuple(cpus[: len(cpus) - n_load]), tuple(cpus[len(cpus) - n_load:])


def summarise(samples: Iterable[Sample]) -> dict[tuple[str, str], Summary]:
    """Median per (stack, scenario) over rounds."""
    grouped: dict[tuple[str, str], list[LoadResult]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    split: dict[tuple[str, str], dict[str, list[float]]] = {}
    noisy: dict[tuple[str, str], int] = {}
    other: dict[tuple[str, str], list[float]] = {}
    accounted: dict[tuple[str, str], list[float]] = {}
    core: dict[tuple[str, str], list[float]] = {}
    slow: dict[tuple[str, str], int] = {}
    for s in samples:
        if s.core_ms is not None:
            core.setdefault((s.stack, s.scenario), []).append(s.core_ms)
        slow[(s.stack, s.scenario)] = slow.get((s.stack, s.scenario), 0) + int(s.slow)
        grouped.setdefault((s.stack, s.scenario), []).append(s.result)
        noisy[(s.stack, s.scenario)] = noisy.get((s.stack, s.scenario), 0) + int(s.noisy)
        if s.interference is not None:
            other.setdefault((s.stack, s.scenario), []).append(s.interference.other_cpus)
        if (share := s.accounted) is not None:
            accounted.setdefault((s.stack, s.scenario), []).append(share)
        if (us := s.cpu_us_per_request) is not None:
            cpu.setdefault((s.stack, s.scenario), []).append(us)
        for kind, value in s.split_us_per_request().items():
            split.setdefault((s.stack, s.scenario), {}).setdefault(kind, []).append(value)
    out = {}
    for (stack, scenario), results in grouped.items():
        cpu_values = tuple(cpu.get((stack, scenario), ()))
        out[(stack, scenario)] = Summary(
            stack=stack, scenario=scenario, rounds=len(results),
            rps=statistics.median(r.rps for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            errors=sum(r.errors for r in results),
            non2xx=sum(r.non2xx for r in results),
            rps_values=tuple(r.rps for r in results),
            cpu_us=statistics.median(cpu_values) if cpu_values else None,
            cpu_us_values=cpu_values,
            cpu_split_us={k: statistics.median(v) for k, v in sorted(split.get((stack, scenario), {}).items())},
            noisy_rounds=noisy.get((stack, scenario), 0),
            other_cpus_max=max(other[(stack, scenario)]) if (stack, scenario) in other else None,
            accounted=statistics.median(accounted[(stack, scenario)]) if (stack, scenario) in accounted else None,
            core_ms=statistics.median(core[(stack, scenario)]) if (stack, scenario) in core else None,
            slow_rounds=slow.get((stack, scenario), 0),
        )
    return out


TWIN_SUFFIX = "-twin"


def twin_family(stack: str) -> str:
    """A stack and its twin share one name here (``wg-twin`` -> ``wg``)."""
    return stack[: -len(TWIN_SUFFIX)] if stack.endswith(TWIN_SUFFIX) else stack


@dataclass(frozen=True)
class TwinAgreement:
    """Method validation: the same stack started twice and measured in the same run."""
    stack: str
    scenario: str
    cpu_us: float
    twin_cpu_us: float
    core_ms: float | None = None  # each one's core probe (Summary.core_ms)
    twin_core_ms: float | None = None

    @property
    def difference(self) -> float:
        """Relative difference of the two medians, |a - b| / mean(a, b)."""
        return abs(self.cpu_us - self.twin_cpu_us) / ((self.cpu_us + self.twin_cpu_us) / 2)


def twin_agreement(summaries: Mapping[tuple[str, str], Summary]) -> list[TwinAgreement]:
    """For every stack that ran beside its twin (``--twin``), how far their CPU per request differ."""
    out = []
    for (stack, scenario), twin in summaries.items():
        if not stack.endswith(TWIN_SUFFIX):
            continue
        original = summaries.get((twin_family(stack), scenario))
        if original and original.cpu_us and twin.cpu_us:
            out.append(TwinAgreement(original.stack, scenario, original.cpu_us, twin.cpu_us,
                                     original.core_ms, twin.core_ms))
    return out


@dataclass(frozen=True)
class RoundNoise:
    """How much a stack's CPU per request moves from round to round on one scenario, and what
    that allows.

    Two identical stacks measured over ``rounds`` rounds each have medians about
    ``expected_twin_difference`` apart (one standard deviation: 1.2533 x spread / sqrt(rounds)
    for each median, sqrt(2) for their difference); the resolution needs ``rounds_needed``."""

    scenario: str
    spread: float  # pooled coefficient of variation of CPU µs/req over rounds, every stack of the scenario
    rounds: int
    resolution: float

    @property
    def expected_twin_difference(self) -> float:
        return 1.2533 * math.sqrt(2) * self.spread / math.sqrt(self.rounds)

    @property
    def rounds_needed(self) -> int:
        return max(1, math.ceil((1.2533 * math.sqrt(2) * self.spread / self.resolution) ** 2))


def round_noise(samples: Iterable[Sample], resolution: float = 0.03) -> list[RoundNoise]:
    """Per scenario, the round-to-round spread of CPU per request (pooled over its stacks that
    ran two rounds or more), in the order the scenarios first appear."""
    groups: dict[str, dict[str, list[float]]] = {}
    for s in samples:
        if (us := s.cpu_us_per_request) is not None:
            groups.setdefault(s.scenario, {}).setdefault(s.stack, []).append(us)
    out = []
    for scenario, stacks in groups.items():
        runs = [v for v in stacks.values() if len(v) >= 2]
        if not runs:
            continue
        cvs = [statistics.stdev(v) / statistics.mean(v) for v in runs]
        out.append(RoundNoise(scenario, math.sqrt(statistics.mean(cv * cv for cv in cvs)),
                              round(statistics.median(len(v) for v in runs)), resolution))
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def serial_bound(ceiling_rps: float, app_alone_rps: float) -> float:
    """Throughput if Nginx's work and the app's work are serialised on the same CPU.

    Each request costs 1/ceiling of proxy time plus 1/app-alone of app time;
    a proxied stack cannot beat the sum on shared cores.
    """
    return 1.0 / (1.0 / ceiling_rps + 1.0 / app_alone_rps)


def round_ratio(results: BenchResults, stack: str, other: str, scenario: str) -> float | None:
    """Median over rounds of stack's req/s ÷ other's in the same round (None if either is missing)."""
    by_round: dict[int, dict[str, float]] = {}
    for x in results.samples:
        if x.scenario == scenario and x.stack in (stack, other):
            by_round.setdefault(x.round, {})[x.stack] = x.result.rps
    ratios = [r[stack] / r[other] for r in by_round.values() if r.get(other) and stack in r]
    return statistics.median(ratios) if ratios else None


def rps_of(summaries: Mapping[tuple[str, str], Summary], stack: str, scenario: str) -> float | None:
    summary = summaries.get((stack, scenario))
    return summary.rps if summary else None


@dataclass(frozen=True)
class TargetCheck:
    name: str
    value: float | None
    target: str
    passed: bool | None  # None: could not be evaluated (a stack is missing)
    # The (stack, scenario) measurements the conclusion rests on: each needs a twin
    # (--twin) for the run to show that the method resolves the difference claimed.
    rests_on: tuple[tuple[str, str], ...] = ()


def _check(name: str, value: float | None, limit: float, higher_is_better: bool = True,
           fmt: str = "{:.2f}", on: Iterable[tuple[str, str]] = ()) -> TargetCheck:
    target = ("≥ " if higher_is_better else "≤ ") + fmt.format(limit)
    rests_on = tuple(dict.fromkeys(on))
    if value is None:
        return TargetCheck(name, None, target, None, rests_on)
    passed = value >= limit if higher_is_better else value <= limit
    return TargetCheck(name, value, target, passed, rests_on)


@dataclass(frozen=True)
class TwinCoverage:
    """Whether a conclusion's measurements were each validated by a twin in the same run."""

    missing: tuple[str, ...]  # stacks named by the conclusion that ran without a twin
    worst: float | None  # the largest twin difference among those that had one
    resolution: float  # the largest difference the conclusion may rest on

    @property
    def resolved(self) -> bool | None:
        """True: every stack twinned and every twin within the resolution; None: nothing to judge."""
        if self.missing:
            return False
        return None if self.worst is None else self.worst <= self.resolution

    def describe(self) -> str:
        parts = []
        if self.worst is not None:
            parts.append(f"twins within {self.worst:.1%}" if self.worst <= self.resolution
                         else f"twins differ {self.worst:.1%} (> {self.resolution:.0%})")
        if self.missing:
            parts.append("no twin: " + ", ".join(self.missing))
        return "; ".join(parts) or "–"


TWIN_RESOLUTION = 0.03  # issue 25: "twins within 3 %"


def twin_coverage(check: TargetCheck, summaries: Mapping[tuple[str, str], Summary],
                  resolution: float = TWIN_RESOLUTION) -> TwinCoverage:
    if check.value is None:  # not evaluated: nothing is concluded
        return TwinCoverage((), None, resolution)
    agreements = {(a.stack, a.scenario): a.difference for a in twin_agreement(summaries)}
    missing, worst = [], None
    for stack, scenario in check.rests_on:
        if (stack, scenario) not in summaries:
            continue  # not measured: the check says n/a on its own
        if (stack, scenario) in agreements:
            worst = max(worst or 0.0, agreements[(stack, scenario)])
        elif stack not in missing:
            missing.append(stack)
    return TwinCoverage(tuple(missing), worst, resolution)


def check_targets(results: BenchResults, primary: str) -> list[TargetCheck]:
    """Issue 5's targets for the ``primary`` stack (wsgistack, or a candidate standing in)."""
    s = summarise(results.samples)
    checks: list[TargetCheck] = []
    django, hello = "django c32", "hello c32"
    p = rps_of(s, primary, django)
    alone = [v for name in ("uwsgi-alone", "granian-alone") if (v := rps_of(s, name, django))]
    ceiling = rps_of(s, CEILING, django)
    bound = serial_bound(ceiling, max(alone)) if ceiling and alone else None
    checks.append(_check("Django ÷ serial bound", ratio(p, bound), 0.95, on=(
        (primary, django), (CEILING, django), ("uwsgi-alone", django), ("granian-alone", django))))
    checks.append(_check("Django ÷ seed", ratio(p, rps_of(s, "seed", django)), 1.4,
                         on=((primary, django), ("seed", django))))
    gunicorn = [v for name in ("gunicorn-sync", "gunicorn-gthread") if (v := rps_of(s, name, django))]
    checks.append(_check("Django ÷ best gunicorn+Nginx", ratio(p, max(gunicorn) if gunicorn else None), 2.0,
                         on=((primary, django), ("gunicorn-sync", django), ("gunicorn-gthread", django))))
    checks.append(_check("Django ÷ granian+Nginx", ratio(p, rps_of(s, "granian-nginx", django)), 1.0,
                         on=((primary, django), ("granian-nginx", django))))
    p99 = s.get((primary, django))
    checks.append(_check("Django p99 at 32 conns (ms)", p99.p99_ms if p99 else None, 15.0, False, "{:.1f}",
                         on=((primary, django),)))
    checks.append(_check("hello ÷ seed", ratio(rps_of(s, primary, hello), rps_of(s, "seed", hello)), 1.25,
                         on=((primary, hello), ("seed", hello))))
    failures = [x.errors + x.non2xx for (stack, _), x in s.items() if stack == primary]
    checks.append(_check("errors + non-2xx under load", float(sum(failures)) if failures else None,
                         0, False, "{:.0f}"))
    bursts = [b.result for b in results.bursts if b.stack == primary]
    checks.append(_check("burst errors + non-2xx", float(sum(b.errors + b.non2xx for b in bursts))
                         if bursts else None, 0, False, "{:.0f}"))
    # Issue 15: protections cost at most 5 % of CPU per request against the stripped candidate.
    for scenario in ("hello c32", "django-hello c32"):
        mine, candidate = s.get((primary, scenario)), s.get(("candidate", scenario))
        checks.append(_check(f"{scenario}: CPU/req ÷ candidate",
                             ratio(mine.cpu_us if mine else None, candidate.cpu_us if candidate else None),
                             1.05, False, on=((primary, scenario), ("candidate", scenario))))
    for size, limit in (("1k", 10.0), ("100k", 8.0)):
        nginx = rps_of(s, primary, f"static {size} nginx")
        app = rps_of(s, primary, f"static {size} whitenoise")
        static_on = ((primary, f"static {size} nginx"), (primary, f"static {size} whitenoise"))
        checks.append(_check(f"static {size}: Nginx ÷ whitenoise", ratio(nginx, app), limit, on=static_on))
        # Issue 15: the same as a cost ratio, which one load core cannot cap.
        nginx_cpu, app_cpu = s.get((primary, f"static {size} nginx")), s.get((primary, f"static {size} whitenoise"))
        checks.append(_check(f"static {size}: whitenoise CPU/req ÷ Nginx's",
                             ratio(app_cpu.cpu_us if app_cpu else None, nginx_cpu.cpu_us if nginx_cpu else None), limit,
                             on=static_on))
    # Issue 15: at least the tiangolo-equivalent's throughput at 32 connections on every page
    # (median of the per-round ratios: both measured in the same round), Django pages 2 x seed.
    pages = sorted({sc for (_, sc) in s if sc.endswith(" c32") and not sc.startswith("static")})
    for page in pages:
        checks.append(_check(f"{page} ÷ tiangolo (per-round ratios)", round_ratio(results, primary, "tiangolo", page), 1.0,
                             on=((primary, page), ("tiangolo", page))))
    for page in (p for p in pages if p.startswith("django")):
        checks.append(_check(f"{page} ÷ seed (per-round ratios)", round_ratio(results, primary, "seed", page), 2.0,
                             on=((primary, page), ("seed", page))))
    memory = results.memory.get(f"{results.options.memory_app}/{primary}")
    total_pss_mb = sum(m.pss_kb for m in memory) / 1024 if memory else None
    checks.append(_check("stack PSS after load (MB)", total_pss_mb, 512, False, "{:.0f}"))
    return checks


def scenario_name(page: str, connections: int, think_ms: int = 0) -> str:
    """``hello c32`` at saturation, ``hello c32 t2ms`` with a think time per connection."""
    return f"{page} c{connections}" + (f" t{think_ms}ms" if think_ms else "")


def default_scenarios(apps: Iterable[AppTarget], primary: Sequence[str], connections: Sequence[int],
                      static: bool = True, think_ms: Sequence[int] = (0,)) -> list[Scenario]:
    scenarios = []
    loads = [(c, t) for c in connections for t in think_ms]
    for app in apps:
        scenarios += [Scenario(scenario_name(app.name, c, t), app.name, app.page, c, think_ms=t) for c, t in loads]
        scenarios += [Scenario(scenario_name(f"{app.name}{label}", c, t), app.name, path, c, think_ms=t)
                      for label, path in app.extra_pages for c, t in loads]
    if static and primary:
        # Static files are app-independent: measured once, on the hello app's stacks.
        first = next(iter(apps), None)
        if first is not None:
            for name in STATIC_FILES:
                size = name.split(".")[0]
                scenarios.append(Scenario(f"static {size} nginx", first.name, f"/static/{name}", 32, tuple(primary)))
                scenarios.append(Scenario(f"static {size} whitenoise", first.name,
                                          f"{WHITENOISE_PREFIX}{name}", 32, tuple(primary)))
    return scenarios


def machine_info(options: BenchOptions) -> dict[str, str]:
    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "n/a"

    cpu_model = "n/a"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    somaxconn = Path("/proc/sys/net/core/somaxconn")

    def package(name: str) -> str:
        from importlib import metadata

        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpu": f"{os.cpu_count()} x {cpu_model}",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "nginx": version(["nginx", "-v"]),
        "uwsgi": version([str(Path(sys.executable).parent / "uwsgi"), "--version"]),
        "granian": package("granian"),
        "gunicorn": package("gunicorn"),
        "load generator": version(["wrk", "-v"]) if options.use_wrk else "python (wsgistack_bench.pyload)",
        "somaxconn": somaxconn.read_text().strip() if somaxconn.exists() else "n/a",
        "server cpus": ",".join(map(str, options.server_cpus)) or "unpinned",
        "load cpus": ",".join(map(str, options.load_cpus)) or "unpinned",
    }


# --- preparing the apps ----------------------------------------------------


def write_static_files(static_dir: Path) -> None:
    static_dir.mkdir(parents=True, exist_ok=True)
    static_dir.chmod(0o755)
    for name, size in STATIC_FILES.items():
        line = b"/* wsgistack bench static file: padding to a fixed size. */\n"
        (static_dir / name).write_bytes((line * (size // len(line) + 1))[:size])


def prepare_app(app: AppTarget, python: str) -> None:
    """Django only: migrate and collectstatic so the demo page renders (manifest storage needs it)."""
    manage = app.project_dir / "manage.py"
    if not manage.exists():
        return
    data_dir = app.env.get("DEMO_DATA_DIR")
    if data_dir:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **app.env}
    for args in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        proc = subprocess.run([python, str(manage), *args], cwd=app.project_dir, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 and "Unknown command" not in proc.stderr:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


# --- the run ---------------------------------------------------------------

Progress = Callable[[str], None]


def _start_stacks(app: AppTarget, builders: Mapping[str, StackBuilder], workroot: Path,
                  options: BenchOptions, ports: Iterable[int], results: BenchResults,
                  progress: Progress) -> dict[str, procs.RunningStack]:
    running: dict[str, procs.RunningStack] = {}
    try:
        _start_each(app, builders, workroot, options, iter(ports), results, progress, running)
    except BaseException:
        # Whatever is already up must not outlive a failed start.
        for stack in running.values():
            procs.stop(stack)
        raise
    return running


def _start_each(app: AppTarget, builders: Mapping[str, StackBuilder], workroot: Path, options: BenchOptions,
                port_iter: Iterator[int], results: BenchResults, progress: Progress,
                running: dict[str, procs.RunningStack]) -> None:
    src_dir = Path(__file__).resolve().parents[1]  # benchmarks/: servers import wsgistack_bench.benchapp
    for name, builder in builders.items():
        workdir = workroot / app.name / name
        ctx = StackContext(
            workdir=workdir, app=app, port=next(port_iter), aux_port=next(port_iter),
            static_dir=workroot / "static", bin_dir=Path(sys.executable).parent, src_dir=src_dir,
            slow_ms=options.slow_ms, server_cpus=max(1, len(options.server_cpus) or (os.cpu_count() or 1)),
        )
        try:
            plan: StackPlan = builder(ctx)
            plan = replace(plan, name=name)
            results.configs[f"{app.name}/{name}"] = stack_config(plan)
            progress(f"[{app.name}] starting {name}")
            running[name] = procs.start(plan, workdir, options.server_cpus, app.page if not plan.no_app else "/")
        except StackUnavailable as exc:
            results.skipped[name] = str(exc)
            progress(f"[{app.name}] skipping {name}: {exc}")
        except procs.StackStartError as exc:
            results.skipped[f"{app.name}/{name}"] = str(exc).splitlines()[0]
            progress(f"[{app.name}] {name} failed to start: {exc}")


def stack_config(plan: StackPlan) -> dict[str, object]:
    """What a stack runs, for the results: each process's argv and the environment its plan
    sets (the servers' own configuration variables from the caller's shell are dropped at
    spawn, see procs), and the builder's configuration record."""
    return {
        "processes": [{"name": p.name, "argv": list(p.argv), "env": dict(p.env)} for p in plan.processes],
        "config": dict(plan.config),
    }


def _load(stack: procs.RunningStack, scenario: Scenario, options: BenchOptions, duration: float,
          workroot: Path) -> LoadResult:
    spec = LoadSpec(
        url=stack.plan.base_url + scenario.path, connections=scenario.connections, duration_s=duration,
        headers=(*stack.plan.client_headers, *scenario.headers), think_ms=scenario.think_ms,
    )
    return run_load(spec, options.load_cpus, workroot, options.use_wrk)


def run_bench(apps: Sequence[AppTarget], builders: Mapping[str, StackBuilder], scenarios: Sequence[Scenario],
              options: BenchOptions, workroot: Path, ports: Iterable[int],
              progress: Progress = lambda _msg: None) -> BenchResults:
    """Start each app's stacks, run interleaved rounds, bursts and memory readings, stop everything."""
    results = BenchResults(options=options, scenarios=list(scenarios), stacks={})
    results.machine = machine_info(options)
    check_machine(results, options.load_policy, progress)
    # Nginx workers run unprivileged: they must traverse every directory to the sockets.
    workroot.chmod(0o755)
    write_static_files(workroot / "static")
    for app in apps:
        (workroot / app.name).mkdir(parents=True, exist_ok=True)
        (workroot / app.name).chmod(0o755)
        prepare_app(app, sys.executable)
        running = _start_stacks(app, builders, workroot, options, ports, results, progress)
        results.stacks[app.name] = list(running)
        try:
            _run_app(app, running, scenarios, options, workroot, results, progress)
        finally:
            for stack in running.values():
                procs.stop(stack)
    return results


def check_machine(results: BenchResults, policy: machineload.LoadPolicy, progress: Progress,
                  probe: Callable[[], machineload.MachineLoad] = machineload.probe) -> None:
    """Measure the machine before anything of ours runs; refuse to start when it is busy
    (unless the policy allows it: then the run goes on and says so)."""
    results.machine_load = probe()
    load = results.machine_load
    progress(f"machine before the run: load average {load.loadavg[0]:.2f}, "
             f"{load.idle_window.other_cpus:.2f} CPUs busy with other work, steal {load.idle_window.steal_cpus:.2f}")
    problems = policy.before_run(load)
    if problems and not policy.allow_busy:
        raise MachineBusy("; ".join(problems) + ". Wait for a quiet machine, or pass --allow-busy to measure "
                          "anyway (every result is then marked).")
    for problem in problems:
        results.warnings.append(f"started on a busy machine: {problem}")
        progress(f"warning: {problem} (--allow-busy)")


def measure_sample(stack: procs.RunningStack, name: str, scenario: Scenario, rnd: int, options: BenchOptions,
                   load: Callable[[], LoadResult], progress: Progress, pause_s: float = 2.0,
                   fastest_core: dict[tuple[str, str], float] | None = None,
                   probe: Callable[[Sequence[int]], machineload.CoreProbe] = machineload.CoreProbe) -> Sample:
    """One round of one scenario on one stack: the load, the stack's CPU time by process, the
    other work on the machine meanwhile, and how fast the server core itself ran. A sample
    taken while the machine was busier than the load policy allows, or while the core ran
    slower than ``options.max_core_slowdown`` allows against the fastest seen for this stack
    (and its twin) and scenario in the run (``fastest_core``, kept by the caller), is taken
    again (up to ``options.noisy_retries`` times after a pause); the best attempt is kept, and
    marked noisy or slow when even it was over a threshold."""
    policy = options.load_policy
    family = (twin_family(name), scenario.name)
    cpus = options.server_cpus if options.core_probe else ()
    best: Sample | None = None
    best_rank: tuple[int, float, float] | None = None
    for attempt in range(1, options.noisy_retries + 2):
        cpu_before = procs.cpu_by_process(stack.pids)
        machine_before = machineload.snapshot()
        with probe(cpus) as core:
            try:
                result = load()
            except LoadError as exc:
                # A stack that dies mid-run must show up as failing, not vanish.
                progress(f"round {rnd} {scenario.name} {name}: load failed: {exc}")
                result = LoadResult(0, options.duration_s, 0.0, 0.0, 1, 0, "failed")
        cpu_after = procs.cpu_by_process(stack.pids)
        split = {k: cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0) for k in {*cpu_before, *cpu_after}}
        other = machineload.interference(machine_before, machineload.snapshot(), sum(split.values()),
                                         server_cpus=options.server_cpus)
        core_ms = core.median_ms
        noisy = policy.too_busy(other)
        slowdown = None
        if fastest_core is not None and core_ms is not None:
            fastest_core[family] = min(fastest_core.get(family, core_ms), core_ms)
            slowdown = machineload.slower_by(core_ms, fastest_core[family])
        slow = (options.max_core_slowdown is not None and slowdown is not None
                and slowdown > options.max_core_slowdown)
        sample = Sample(name, scenario.name, rnd, result, sum(split.values()), split, other, attempt, noisy,
                        core_ms, slow)
        rank = (int(noisy) + int(slow), other.other_cpus, slowdown or 0.0)
        if best_rank is None or rank < best_rank:
            best, best_rank = sample, rank
        if not (noisy or slow) or attempt > options.noisy_retries:
            break
        why = (f"{other.other_cpus:.2f} CPUs busy with other work (threshold {policy.max_other_cpus:g})" if noisy
               else f"the server core ran {slowdown:.0%} slower than its fastest in this run "
                    f"(threshold {options.max_core_slowdown:.0%})")
        progress(f"round {rnd} {scenario.name} {name}: {why}: measuring again in {pause_s:g} s")
        time.sleep(pause_s)
    assert best is not None
    return replace(best, attempts=attempt)


def _run_app(app: AppTarget, running: Mapping[str, procs.RunningStack], scenarios: Sequence[Scenario],
             options: BenchOptions, workroot: Path, results: BenchResults, progress: Progress) -> None:
    mine = [s for s in scenarios if s.app == app.name]
    for scenario in mine:  # warm-up: imports, caches, cheaper spawning; results discarded
        for name, stack in running.items():
            if scenario.runs_on(name):
                _load(stack, scenario, options, options.warmup_s, workroot)
    fastest_core: dict[tuple[str, str], float] = {}
    for rnd in range(1, options.rounds + 1):
        for scenario in mine:
            for name, stack in running.items():
                if not scenario.runs_on(name):
                    continue
                sample = measure_sample(
                    stack, name, scenario, rnd, options,
                    lambda stack=stack, scenario=scenario: _load(stack, scenario, options, options.duration_s, workroot),
                    progress, fastest_core=fastest_core)
                results.samples.append(sample)
                cpu, result = sample.cpu_us_per_request, sample.result
                other = sample.interference.other_cpus if sample.interference else float("nan")
                progress(f"round {rnd}/{options.rounds} {scenario.name:<22} {name:<18} "
                         f"{result.rps:9.0f} req/s p99 {result.p99_ms:6.1f} ms "
                         f"cpu {'-' if cpu is None else f'{cpu:6.1f}'} us/req err {result.errors} "
                         f"non2xx {result.non2xx} other {other:.2f} CPUs"
                         + ("" if sample.core_ms is None else f" core {sample.core_ms:.3f} ms")
                         + (" NOISY" if sample.noisy else "") + (" SLOW" if sample.slow else ""))
    if app.name == options.memory_app:
        for name, stack in running.items():
            results.memory[f"{app.name}/{name}"] = procs.stack_memory(stack)
    for rnd in range(1, options.burst_rounds + 1):
        for name in options.burst_stacks:
            if name not in running:
                continue
            burst = run_burst(running[name].plan.base_url + SLOW_PATH, options.burst_connections,
                              options.burst_timeout_s, options.load_cpus)
            results.bursts.append(BurstSample(name, app.name, rnd, burst))
            progress(f"burst {rnd} {app.name} {name:<18} ok {burst.ok} non2xx {burst.non2xx} "
                     f"errors {burst.errors} in {burst.elapsed_s:.1f}s {burst.statuses}")
            time.sleep(1)  # let TIME_WAIT / listen queues settle between stacks


def free_ports(count: int = 1000) -> Iterable[int]:
    """Yield ports the kernel reports free on 127.0.0.1 (bound and released)."""
    import socket

    seen: set[int] = set()  # the kernel may hand the same free port out twice in a row
    while len(seen) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in seen:
            seen.add(port)
            yield port

