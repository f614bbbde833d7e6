"""Presenting results: a rich table for the terminal, Markdown and JSON for the record.

Everything here is pure (results in, text/objects out); the CLI prints and writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rich.table import Table

import shlex

from . import machineload
from .harness import (
    CEILING,
    BenchResults,
    Sample,
    Summary,
    TargetCheck,
    TWIN_RESOLUTION,
    ratio,
    round_noise,
    serial_bound,
    summarise,
    twin_agreement,
    twin_coverage,
)


@dataclasses.dataclass(frozen=True)
class Row:
    scenario: str
    stack: str
    rps: float
    to_ceiling: float | None
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int
    rounds: int
    spread: str  # min-max of req/s over rounds, to show the noise
    cpu_us: float | None = None  # CPU µs per request, median over rounds
    cpu_spread: str = ""  # min-max of CPU µs per request over rounds
    noisy_rounds: int = 0  # rounds measured on a machine busier than the load policy allows
    other_cpus_max: float | None = None  # CPUs of other work in the busiest round
    accounted: float | None = None  # the stack's CPU ÷ the server CPUs' busy time (median)
    core_ms: float | None = None  # the core probe's piece, median CPU ms (harness.Summary)
    slow_rounds: int = 0


def rows(results: BenchResults) -> list[Row]:
    """One row per (scenario, stack), in scenario order then stack start order."""
    summaries = summarise(results.samples)
    stack_order = [s for names in results.stacks.values() for s in names]
    out = []
    for scenario in results.scenarios:
        ceiling = summaries.get((CEILING, scenario.name))
        for stack in dict.fromkeys(stack_order):
            summary = summaries.get((stack, scenario.name))
            if summary is None:
                continue
            out.append(_row(summary, ceiling))
    return out


def _row(summary: Summary, ceiling: Summary | None) -> Row:
    lo, hi = min(summary.rps_values), max(summary.rps_values)
    return Row(
        scenario=summary.scenario, stack=summary.stack, rps=summary.rps,
        to_ceiling=ratio(summary.rps, ceiling.rps if ceiling else None),
        p50_ms=summary.p50_ms, p99_ms=summary.p99_ms, errors=summary.errors, non2xx=summary.non2xx,
        rounds=summary.rounds, spread=f"{lo:.0f}–{hi:.0f}", cpu_us=summary.cpu_us,
        cpu_spread=(f"{min(summary.cpu_us_values):.1f}–{max(summary.cpu_us_values):.1f}"
                    if summary.cpu_us_values else ""),
        noisy_rounds=summary.noisy_rounds, other_cpus_max=summary.other_cpus_max, accounted=summary.accounted,
        core_ms=summary.core_ms, slow_rounds=summary.slow_rounds,
    )


# Below saturation the server CPUs also spend time entering and leaving idle (measured: the
# stack's CPU was 80-99 % of CPU 0's busy time at 3.6k-37k hello req/s on a quiet machine).
MIN_ACCOUNTED = 0.75


def load_warnings(results: BenchResults) -> list[str]:
    """What makes these numbers less comparable than they look: a busy start (--allow-busy)
    and samples that stayed over the load threshold after their retries."""
    out = list(results.warnings)
    low = sorted(f"{x.stack} / {x.scenario} ({x.accounted:.0%})" for x in summarise(results.samples).values()
                 if x.accounted is not None and x.accounted < MIN_ACCOUNTED)
    if low:
        out.append("the stack's processes account for less than "
                   f"{MIN_ACCOUNTED:.0%} of the server CPUs' busy time in: {', '.join(low)}: something else ran "
                   "on the server CPUs, or the stack has processes or threads the harness does not see.")
    noisy = [s for s in results.samples if s.noisy]
    if noisy:
        worst = max(s.interference.other_cpus for s in noisy if s.interference)
        out.append(f"{len(noisy)} of {len(results.samples)} samples ran while more than "
                   f"{results.options.load_policy.max_other_cpus:g} CPUs did other work (up to {worst:.2f}), "
                   f"even after {results.options.noisy_retries} retries: {_where(noisy)}. Medians that include them are not comparable "
                   "with a quiet run (CPU per request depends on the rate a stack is driven at).")
    slow = [s for s in results.samples if s.slow]
    if slow:
        out.append(f"{len(slow)} of {len(results.samples)} samples ran while the server core itself was more than "
                   f"{results.options.max_core_slowdown:.0%} slower than at its fastest in this run (the core probe), "
                   f"even after {results.options.noisy_retries} retries: {_where(slow)}. Measure again.")
    return out


def _where(samples: Sequence[Sample]) -> str:
    """The stacks and scenarios of ``samples``, at most eight named."""
    where = sorted({f"{s.stack} / {s.scenario}" for s in samples})
    return ", ".join(where[:8]) + (f" and {len(where) - 8} more" if len(where) > 8 else "")


def _fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _fmt_cpu(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def table(results: BenchResults) -> Table:
    t = Table(title="wsgistack bench: medians over rounds")
    for col in ("scenario", "stack", "req/s", "÷ ceiling", "CPU µs/req", "p50 ms", "p99 ms", "errors", "non-2xx",
                "rounds", "other CPUs", "core ms"):
        t.add_column(col, justify="left" if col in ("scenario", "stack") else "right")
    previous = None
    for r in rows(results):
        scenario = r.scenario if r.scenario != previous else ""
        previous = r.scenario
        bad = r.errors or r.non2xx
        t.add_row(scenario, r.stack, f"{r.rps:,.0f}", _fmt_ratio(r.to_ceiling), _fmt_cpu(r.cpu_us), f"{r.p50_ms:.2f}",
                  f"{r.p99_ms:.2f}", f"[red]{r.errors}[/]" if bad else "0",
                  f"[red]{r.non2xx}[/]" if r.non2xx else "0", str(r.rounds),
                  "–" if r.other_cpus_max is None else
                  (f"[red]{r.other_cpus_max:.2f}[/]" if r.noisy_rounds else f"{r.other_cpus_max:.2f}"),
                  "–" if r.core_ms is None else (f"[red]{r.core_ms:.3f}[/]" if r.slow_rounds else f"{r.core_ms:.3f}"))
    return t


def targets_table(checks: Sequence[TargetCheck], primary: str, results: BenchResults | None = None) -> Table:
    t = Table(title=f"issue 5 targets for stack '{primary}'")
    for col in ("target", "value", "limit", "result", "twins"):
        t.add_column(col)
    summaries = summarise(results.samples) if results else {}
    for c in checks:
        verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "n/a"}[c.passed]
        twins = twin_coverage(c, summaries).describe() if results else ""
        t.add_row(c.name, "–" if c.value is None else f"{c.value:.3g}", c.target, verdict, twins)
    return t


def serial_bounds(results: BenchResults) -> dict[str, float]:
    """Per app scenario: 1/(1/ceiling + 1/fastest app alone)."""
    summaries = summarise(results.samples)
    out = {}
    for scenario in results.scenarios:
        ceiling = summaries.get((CEILING, scenario.name))
        alone = [s.rps for (stack, name), s in summaries.items()
                 if name == scenario.name and stack in ("uwsgi-alone", "granian-alone")]
        if ceiling and alone:
            out[scenario.name] = serial_bound(ceiling.rps, max(alone))
    return out


def markdown(results: BenchResults, checks: Sequence[TargetCheck], primary: str) -> str:
    o = results.options
    lines = [
        "# wsgistack bench results", "",
        f"Command: `{results.command}`" if results.command else "", "",
        "## Machine", "",
        *(f"- {k}: {v}" for k, v in results.machine.items()),
        *([f"- before the run: load average {results.machine_load.loadavg[0]:.2f} / "
           f"{results.machine_load.loadavg[1]:.2f} / {results.machine_load.loadavg[2]:.2f}, "
           f"{results.machine_load.idle_window.other_cpus:.2f} CPUs busy with other work, "
           f"steal {results.machine_load.idle_window.steal_cpus:.2f} "
           f"(threshold {o.load_policy.max_other_cpus:g} CPUs"
           + (", --allow-busy" if o.load_policy.allow_busy else "") + ")"] if results.machine_load else []),
        *(f"- **warning**: {w}" for w in load_warnings(results)), "",
        f"Method: every stack runs each scenario once per round, interleaved in the same order "
        f"(A B C A B C …), {o.rounds} rounds of {o.duration_s:g} s after a {o.warmup_s:g} s warm-up; "
        "medians over rounds. Servers (Nginx included) are pinned to the server CPUs, the load "
        "generator to the load CPUs. Errors and non-2xx are summed over rounds. CPU µs/req is the "
        "user + system time of every process of the stack (from /proc/PID/stat, reaped workers "
        "included) during the run, divided by the requests it completed; it depends on the rate the "
        "stack is driven at (`tNms` scenarios pause N ms per connection between requests, below "
        "saturation), so compare stacks at the same scenario only. Other work: CPUs busy "
        "outside the stack, the load generator and the harness during the sample (/proc/stat); "
        "a sample over the threshold is measured again, the quietest attempt kept. Accounted: the "
        "stack's CPU time ÷ the busy time of the server CPUs (about 100 % when nothing else runs "
        "there and no process or thread of the stack escapes the accounting). Core ms: while each "
        "sample runs, a fixed piece of Python work is timed (its own CPU time) on the server CPUs every "
        f"{machineload.PROBE_INTERVAL_S * 1000:g} ms; on a virtual machine the core itself runs slower at "
        "times, invisibly to /proc/stat, and every stack's CPU per request with it. A sample whose core "
        + ("ran more than " + f"{o.max_core_slowdown:.0%}" + " slower than the fastest seen for the same stack (and its "
           "twin) and scenario is measured again. " if o.max_core_slowdown is not None else "speed is only recorded. ")
        + "The probe is a gate, not a correction: beside a busy stack it tracks the stack's own round-to-round "
        "spread only weakly.", "",
        "## Throughput, CPU per request and latency", "",
        "| scenario | stack | req/s | ÷ ceiling | CPU µs/req | p50 ms | p99 ms | errors | non-2xx | req/s range "
        "| CPU µs/req range | accounted | other work, max CPUs | noisy rounds | core ms | slow rounds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows(results):
        other = "–" if r.other_cpus_max is None else f"{r.other_cpus_max:.2f}"
        accounted = "–" if r.accounted is None else f"{r.accounted:.0%}"
        lines.append(f"| {r.scenario} | {r.stack} | {r.rps:,.0f} | {_fmt_ratio(r.to_ceiling)} | {_fmt_cpu(r.cpu_us)} | "
                     f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {r.non2xx} | {r.spread} | {r.cpu_spread} | "
                     f"{accounted} | {other} | {r.noisy_rounds or ''} | "
                     f"{'–' if r.core_ms is None else f'{r.core_ms:.3f}'} | {r.slow_rounds or ''} |")
    twins = twin_agreement(summarise(results.samples))
    if twins:
        lines += ["", "## Method validation: the same stack twice in one run", "",
                  "| scenario | stack | CPU µs/req | twin's | difference | core ms | twin's |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for t in twins:
            lines.append(f"| {t.scenario} | {t.stack} | {t.cpu_us:.1f} | {t.twin_cpu_us:.1f} | {t.difference:.1%} | "
                         f"{'–' if t.core_ms is None else f'{t.core_ms:.3f}'} | "
                         f"{'–' if t.twin_core_ms is None else f'{t.twin_core_ms:.3f}'} |")
    noise = round_noise(results.samples, TWIN_RESOLUTION)
    if noise:
        lines += ["", "## Enough rounds? How far one stack's CPU per request moves from round to round", "",
                  "Spread: the coefficient of variation over rounds, pooled over the scenario's stacks. Two "
                  "identical stacks' medians are then expected this far apart (one standard deviation, "
                  "1.2533 x spread x sqrt(2 / rounds)); the last column is the rounds a twin difference of "
                  f"{TWIN_RESOLUTION:.0%} would take.", "",
                  "| scenario | spread | rounds | expected twin difference | rounds for "
                  f"{TWIN_RESOLUTION:.0%} |", "|---|---:|---:|---:|---:|"]
        for n in noise:
            lines.append(f"| {n.scenario} | {n.spread:.1%} | {n.rounds} | {n.expected_twin_difference:.1%} | "
                         f"{n.rounds_needed} |")
    summaries = summarise(results.samples)
    kinds = sorted({k for x in summaries.values() for k in x.cpu_split_us})
    if kinds:
        lines += ["", "## Where the CPU time goes: µs per request by process (medians over rounds)", "",
                  "| scenario | stack | " + " | ".join(kinds) + " |", "|---|---|" + "---:|" * len(kinds)]
        for (stack, scenario), x in summaries.items():
            if x.cpu_split_us:
                lines.append(f"| {scenario} | {stack} | "
                             + " | ".join(f"{x.cpu_split_us[k]:.1f}" if k in x.cpu_split_us else "–" for k in kinds)
                             + " |")
    bounds = serial_bounds(results)
    if bounds:
        lines += ["", "Serial bound 1/(1/ceiling + 1/fastest app alone), req/s: "
                  + ", ".join(f"{k}: {v:,.0f}" for k, v in bounds.items())]
    if results.bursts:
        lines += ["", f"## Burst: {o.burst_connections} simultaneous connections to /slow "
                  f"({o.slow_ms} ms per request)", "",
                  "| app | stack | round | 2xx | non-2xx | errors | seconds | outcomes |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for b in results.bursts:
            burst = b.result
            outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(burst.statuses.items()))
            lines.append(f"| {b.app} | {b.stack} | {b.round} | {burst.ok} | {burst.non2xx} | {burst.errors} | "
                         f"{burst.elapsed_s:.1f} | {outcomes} |")
    if results.memory:
        lines += ["", "## Memory after load (per process)", "",
                  "| app/stack | process | RSS MB | PSS MB |", "|---|---|---:|---:|"]
        for key, members in results.memory.items():
            for m in members:
                lines.append(f"| {key} | {m.name} | {m.rss_kb / 1024:.1f} | {m.pss_kb / 1024:.1f} |")
            total = sum(m.pss_kb for m in members) / 1024
            lines.append(f"| {key} | **total** | | **{total:.1f}** |")
    if checks:
        lines += ["", f"## Targets (stack `{primary}`)", "",
                  "A conclusion holds only where every stack it names ran beside its twin (`--twin`, "
                  "`--twin all`) and the twins agree within the difference claimed.", "",
                  "| target | value | limit | result | twins |", "|---|---:|---|---|---|"]
        for c in checks:
            verdict = {True: "pass", False: "**FAIL**", None: "n/a"}[c.passed]
            lines.append(f"| {c.name} | {'–' if c.value is None else f'{c.value:.3g}'} | {c.target} | {verdict} | "
                         f"{twin_coverage(c, summaries).describe()} |")
    if results.configs:
        lines += ["", "## What each stack ran", ""]
        for key, config in results.configs.items():
            settings = config.get("config") or {}
            lines.append(f"- **{key}**" + (": " + ", ".join(f"{k}={v}" for k, v in settings.items())
                                           if settings else ""))
            for proc in config.get("processes", []):  # type: ignore[union-attr]
                lines.append(f"  - `{shlex.join(proc['argv'])}`")
    if results.skipped:
        lines += ["", "## Skipped stacks", "", *(f"- {k}: {v}" for k, v in results.skipped.items())]
    return "\n".join(lines) + "\n"


def to_json(results: BenchResults, checks: Sequence[TargetCheck] = ()) -> dict[str, object]:
    """Raw samples plus summaries, for benchmarks/results/*.json."""
    summaries = summarise(results.samples)
    return {
        "command": results.command,
        "machine": results.machine,
        "machine_load": results.machine_load.to_dict() if results.machine_load else None,
        "warnings": load_warnings(results),
        "configs": results.configs,
        "options": dataclasses.asdict(results.options),
        "stacks": results.stacks,
        "skipped": results.skipped,
        "samples": [{"stack": s.stack, "scenario": s.scenario, "round": s.round, **s.result.to_dict(),
                     "cpu_s": s.cpu_s, "cpu_us_per_request": s.cpu_us_per_request,
                     "cpu_split_s": dict(s.cpu_split or {}),
                     "interference": s.interference.to_dict() if s.interference else None,
                     "accounted": s.accounted,
                     "attempts": s.attempts, "noisy": s.noisy, "core_ms": s.core_ms, "slow": s.slow}
                    for s in results.samples],
        "summary": [dataclasses.asdict(r) for r in rows(results)],
        "round_noise": [{"scenario": n.scenario, "spread": n.spread, "rounds": n.rounds,
                         "expected_twin_difference": n.expected_twin_difference, "rounds_needed": n.rounds_needed}
                        for n in round_noise(results.samples, TWIN_RESOLUTION)],
        "bursts": [{"stack": b.stack, "app": b.app, "round": b.round, **b.result.to_dict()}
                   for b in results.bursts],
        "memory": {k: [dataclasses.asdict(m) for m in v] for k, v in results.memory.items()},
        "targets": [{**dataclasses.asdict(c), "twins": twin_coverage(c, summaries).describe(),
                     "twins_resolved": twin_coverage(c, summaries).resolved} for c in checks],
    }

