"""The machine-load guard: parsing /proc, the arithmetic of other work, refusing a busy start,
retrying a noisy sample, twins for every conclusion (no timing assertions: fake clocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgistack_bench import harness, machineload, procs
from wsgistack_bench.harness import (
    BenchOptions,
    BenchResults,
    MachineBusy,
    Sample,
    Scenario,
    TargetCheck,
    check_machine,
    measure_sample,
    summarise,
    twin_coverage,
)
from wsgistack_bench.load import LoadResult
from wsgistack_bench.machineload import CpuTicks, Interference, LoadPolicy, MachineLoad, Snapshot
from wsgistack_bench.stacks import StackPlan

PROC_STAT = """\
cpu  53432 13 38824 604108 1990 0 3550 433 0 0
cpu0 26000 5 19000 302000 900 0 1800 200 0 0
intr 1 2 3
"""


def test_parse_proc_stat_and_loadavg() -> None:
    ticks = machineload.parse_proc_stat(PROC_STAT)
    assert ticks == CpuTicks(busy=53432 + 13 + 38824 + 0 + 3550, idle=604108 + 1990, steal=433)
    assert ticks.total == ticks.busy + ticks.idle + ticks.steal
    assert machineload.parse_loadavg("7.82 5.59 2.55 4/286 22555\n") == (7.82, 5.59, 2.55)
    with pytest.raises(ValueError):
        machineload.parse_proc_stat("intr 1 2\n")


def _snap(at: float, busy: int, own_s: float = 0.0, steal: int = 0) -> Snapshot:
    return Snapshot(at, CpuTicks(busy=busy, idle=0, steal=steal), own_s)


def test_interference_subtracts_the_stack_the_generator_and_the_harness() -> None:
    # 4 s; 600 ticks busy at 100 Hz = 6 CPU-seconds: the stack 3.2, the generator and the
    # harness (their rusage) 1.6, so 1.2 CPU-seconds of other work: 0.3 CPUs.
    other = machineload.interference(_snap(10.0, 1000, own_s=5.0), _snap(14.0, 1600, own_s=6.6, steal=40),
                                     stack_cpu_s=3.2, clock_ticks=100)
    assert other.other_cpus == pytest.approx(0.3)
    assert other.steal_cpus == pytest.approx(0.1)
    assert other.seconds == pytest.approx(4.0)


def _machine(other_cpus: float) -> MachineLoad:
    return MachineLoad((3.0, 2.0, 1.0), Interference(other_cpus, 0.0, 2.0), 2)


def test_policy_judges_the_measured_window_not_the_load_average() -> None:
    policy = LoadPolicy(max_other_cpus=0.25)
    assert policy.before_run(_machine(0.1)) == []  # load average 3 on 2 CPUs: reported, not judged
    (problem,) = policy.before_run(_machine(0.9))
    assert "0.90 CPUs" in problem and "threshold 0.25" in problem and "load average 3.00" in problem


def _results(policy: LoadPolicy) -> BenchResults:
    return BenchResults(options=BenchOptions(load_policy=policy), scenarios=[], stacks={})


def test_a_busy_machine_refuses_to_start_unless_allowed() -> None:
    results = _results(LoadPolicy())
    with pytest.raises(MachineBusy, match="--allow-busy"):
        check_machine(results, results.options.load_policy, lambda _m: None, probe=lambda: _machine(1.2))
    assert results.machine_load is not None and results.machine_load.idle_window.other_cpus == 1.2

    allowed = _results(LoadPolicy(allow_busy=True))
    check_machine(allowed, allowed.options.load_policy, lambda _m: None, probe=lambda: _machine(1.2))
    assert allowed.warnings and "busy machine" in allowed.warnings[0]

    quiet = _results(LoadPolicy())
    check_machine(quiet, quiet.options.load_policy, lambda _m: None, probe=lambda: _machine(0.05))
    assert quiet.warnings == []


def _fake_snapshots(monkeypatch: pytest.MonkeyPatch, others: list[float]) -> None:
    """Each sample reads two snapshots; the n-th pair shows ``others[n]`` CPUs of other work."""
    clock = iter(range(1000))
    queue: list[Snapshot] = []
    for other in others:
        t = next(clock) * 10.0
        queue += [_snap(t, 0), _snap(t + 1.0, int(other * machineload.CLOCK_TICKS))]
    monkeypatch.setattr(machineload, "snapshot", lambda: queue.pop(0))


def _stack() -> procs.RunningStack:
    return procs.RunningStack(StackPlan("s", "http://127.0.0.1:1", ()), Path("."))  # no processes: no CPU


def test_a_noisy_sample_is_measured_again_and_the_quietest_attempt_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_snapshots(monkeypatch, [0.9, 0.4, 0.1])
    calls = []

    def load() -> LoadResult:
        calls.append(1)
        return LoadResult(1000 * len(calls), 1.0, 1.0, 2.0, 0, 0, "wrk")

    options = BenchOptions(load_policy=LoadPolicy(max_other_cpus=0.25), noisy_retries=2)
    sample = measure_sample(_stack(), "s", Scenario("hello c32", "hello", "/hello", 32), 1, options, load,
                            lambda _m: None, pause_s=0)
    assert len(calls) == 3
    assert sample.attempts == 3 and not sample.noisy
    assert sample.result.requests == 3000 and sample.interference.other_cpus == pytest.approx(0.1)


def test_a_sample_still_noisy_after_its_retries_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsgistack_bench import report

    _fake_snapshots(monkeypatch, [0.9, 0.6])
    options = BenchOptions(load_policy=LoadPolicy(max_other_cpus=0.25), noisy_retries=1)
    sample = measure_sample(_stack(), "s", Scenario("hello c32", "hello", "/hello", 32), 1, options,
                            lambda: LoadResult(1000, 1.0, 1.0, 2.0, 0, 0, "wrk"), lambda _m: None, pause_s=0)
    assert sample.noisy and sample.attempts == 2 and sample.interference.other_cpus == pytest.approx(0.6)
    results = BenchResults(options=options, scenarios=[], stacks={}, samples=[sample])
    assert summarise(results.samples)[("s", "hello c32")].noisy_rounds == 1
    (warning,) = report.load_warnings(results)
    assert "1 of 1 samples" in warning and "s / hello c32" in warning
    data = report.to_json(results)
    assert data["samples"][0]["noisy"] is True and data["samples"][0]["interference"]["other_cpus"] == 0.6


def _with_cpu(stack: str, scenario: str, cpu_values: tuple[float, ...]) -> list[Sample]:
    return [Sample(stack, scenario, n, LoadResult(10_000, 10.0, 1.0, 2.0, 0, 0, "wrk"), cpu)
            for n, cpu in enumerate(cpu_values)]


def test_twin_coverage_names_what_ran_without_a_twin() -> None:
    samples = (_with_cpu("w", "hello c32", (0.50,)) + _with_cpu("w-twin", "hello c32", (0.51,))
               + _with_cpu("g", "hello c32", (0.30,)) + _with_cpu("g-twin", "hello c32", (0.36,))
               + _with_cpu("t", "hello c32", (0.54,)))
    s = summarise(samples)
    both = TargetCheck("w ÷ g", 1.0, "≤ 1.05", True, (("w", "hello c32"), ("g", "hello c32")))
    coverage = twin_coverage(both, s)
    assert coverage.missing == () and coverage.worst == pytest.approx(0.06 / 0.33)
    assert coverage.resolved is False and "> 3%" in coverage.describe()
    close = TargetCheck("w ÷ t", 1.0, "≤ 1.05", True, (("w", "hello c32"), ("t", "hello c32"), ("x", "hello c32")))
    coverage = twin_coverage(close, s)
    assert coverage.missing == ("t",)  # x was not measured at all: the check itself says n/a
    assert coverage.resolved is False and "no twin: t" in coverage.describe()
    assert twin_coverage(TargetCheck("w", 1.0, "", True, (("w", "hello c32"),)), s).resolved is True
    # A check that could not be evaluated concludes nothing, twinned or not.
    assert twin_coverage(TargetCheck("w ÷ t", None, "", None, (("t", "hello c32"),)), s).describe() == "–"


def test_every_comparing_target_names_the_stacks_it_rests_on() -> None:
    r = BenchResults(options=BenchOptions(), scenarios=[], stacks={})
    checks = {c.name: c for c in harness.check_targets(r, "w")}
    assert checks["Django ÷ granian+Nginx"].rests_on == (("w", "django c32"), ("granian-nginx", "django c32"))
    assert ("candidate", "hello c32") in checks["hello c32: CPU/req ÷ candidate"].rests_on


def test_the_server_cpus_busy_time_checks_the_accounting() -> None:
    from wsgistack_bench import report

    per_cpu = machineload.parse_proc_stat_per_cpu(PROC_STAT)
    assert list(per_cpu) == [0] and per_cpu[0].busy == 26000 + 5 + 19000 + 0 + 1800
    before = Snapshot(0.0, CpuTicks(0, 0, 0), 0.0, {0: CpuTicks(1000, 0, 0), 1: CpuTicks(0, 0, 0)})
    after = Snapshot(2.0, CpuTicks(400, 0, 0), 0.0, {0: CpuTicks(1200, 0, 0), 1: CpuTicks(200, 0, 0)})
    other = machineload.interference(before, after, stack_cpu_s=1.0, clock_ticks=100, server_cpus=(0,))
    assert other.server_busy_s == pytest.approx(2.0)  # CPU 1 (the load generator's) is not counted
    assert machineload.interference(before, after, clock_ticks=100).server_busy_s is None  # unpinned
    seen = Sample("s", "hello c32", 1, LoadResult(1000, 1.0, 1.0, 2.0, 0, 0, "wrk"), 1.0, None, other)
    assert seen.accounted == pytest.approx(0.5)
    results = BenchResults(options=BenchOptions(), scenarios=[], stacks={}, samples=[seen])
    assert summarise(results.samples)[("s", "hello c32")].accounted == pytest.approx(0.5)
    (warning,) = report.load_warnings(results)
    assert "s / hello c32 (50%)" in warning and "does not see" in warning


# --- the server core's own speed (machineload.CoreProbe) ----------------------------------------


def test_the_core_probe_times_its_piece_on_the_cpu_it_is_pinned_to() -> None:
    import os
    import time

    cpu = sorted(os.sched_getaffinity(0))[0]
    with machineload.CoreProbe((cpu,), interval_s=0.0, work=2_000) as core:
        while len(core.pieces_ms) < 5:
            time.sleep(0.01)
    assert core.median_ms is not None and core.median_ms > 0
    with machineload.CoreProbe(()) as none:  # no pinned server CPUs: nothing is timed
        pass
    assert none.median_ms is None
    assert machineload.slower_by(1.1, 1.0) == pytest.approx(0.1)
    assert machineload.slower_by(None, 1.0) is None


class _FakeCore:
    """A core probe whose n-th use reports the n-th of ``values`` (ms)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def __call__(self, _cpus: object) -> "_FakeCore":
        self.median_ms = self.values.pop(0)
        return self

    def __enter__(self) -> "_FakeCore":
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


def test_a_sample_taken_while_the_core_ran_slow_is_measured_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsgistack_bench import report

    _fake_snapshots(monkeypatch, [0.0, 0.0, 0.0, 0.0, 0.0])
    calls = []

    def load() -> LoadResult:
        calls.append(1)
        return LoadResult(1000 * len(calls), 1.0, 1.0, 2.0, 0, 0, "wrk")

    options = BenchOptions(load_policy=LoadPolicy(max_other_cpus=0.25), noisy_retries=2, max_core_slowdown=0.08,
                           server_cpus=(0,))
    scenario = Scenario("hello c32", "hello", "/hello", 32)
    fastest = {("s", "hello c32"): 1.0}  # the twin ran at 1.0 ms earlier in the run
    messages: list[str] = []
    sample = measure_sample(_stack(), "s", scenario, 1, options, load, messages.append, pause_s=0,
                            fastest_core=fastest, probe=_FakeCore([1.30, 1.02]))
    assert len(calls) == 2 and sample.attempts == 2
    assert sample.core_ms == 1.02 and not sample.slow and sample.result.requests == 2000
    assert "ran 30% slower than its fastest" in messages[0]

    # Slow on every attempt: the least slow is kept, marked, and the report says so.
    calls.clear()
    options = BenchOptions(load_policy=LoadPolicy(max_other_cpus=0.25), noisy_retries=1, max_core_slowdown=0.08,
                           server_cpus=(0,))
    slow = measure_sample(_stack(), "s-twin", scenario, 2, options, load, lambda _m: None, pause_s=0,
                          fastest_core=fastest, probe=_FakeCore([1.5, 1.2]))
    assert slow.slow and slow.core_ms == 1.2 and slow.attempts == 2
    results = BenchResults(options=options, scenarios=[scenario], stacks={"hello": ["s", "s-twin"]},
                           samples=[sample, slow])
    (warning,) = report.load_warnings(results)
    assert "1 of 2 samples" in warning and "s-twin / hello c32" in warning and "8%" in warning
    assert report.to_json(results)["samples"][1]["slow"] is True
    assert summarise(results.samples)[("s-twin", "hello c32")].slow_rounds == 1


def test_the_report_says_how_many_rounds_twins_within_3_percent_need() -> None:
    from wsgistack_bench import report

    def sample(stack: str, rnd: int, cpu_s: float, core_ms: float) -> Sample:
        return Sample(stack, "hello c32", rnd, LoadResult(100_000, 3.0, 1.0, 2.0, 0, 0, "wrk"), cpu_s,
                      core_ms=core_ms)

    # Each stack's CPU per request moves 5 % round to round (40, 42, 44 µs: cv 4.8 %).
    samples = [sample(stack, rnd, cpu, 1.0 + rnd / 100) for stack in ("s", "s-twin")
               for rnd, cpu in enumerate((4.0, 4.2, 4.4))]
    quiet = [Sample("q", "django c32", rnd, LoadResult(100_000, 3.0, 1.0, 2.0, 0, 0, "wrk"), 100.0)
             for rnd in range(3)]
    noise, still = harness.round_noise(samples + quiet, 0.03)  # per scenario: one noisy page is not another's
    assert noise.scenario == "hello c32" and noise.rounds == 3
    assert noise.spread == pytest.approx(0.0476, abs=1e-3)
    assert noise.expected_twin_difference == pytest.approx(0.0487, abs=1e-3)
    assert noise.rounds_needed == 8  # (1.2533 * sqrt(2) * 0.0476 / 0.03)^2 = 7.9
    assert still.scenario == "django c32" and still.spread == 0 and still.rounds_needed == 1
    assert harness.round_noise(samples[:1]) == []  # one round: nothing to say
    (twins,) = harness.twin_agreement(summarise(samples))
    assert twins.core_ms == pytest.approx(1.01) and twins.twin_core_ms == pytest.approx(1.01)
    results = BenchResults(options=BenchOptions(), scenarios=[Scenario("hello c32", "hello", "/", 32)],
                           stacks={"hello": ["s", "s-twin"]}, samples=samples)
    text = report.markdown(results, [], "s")
    assert "| core ms | twin's |" in text and "| 1.010 | 1.010 |" in text
    assert "| hello c32 | 4.8% | 3 | 4.9% | 8 |" in text
    assert report.to_json(results)["round_noise"][0]["rounds_needed"] == 8
