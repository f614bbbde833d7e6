"""``wsgistack bench``: measure wsgistack's stack side by side with reference setups.

Thin: parses options, builds the plan, calls :func:`wsgistack_bench.harness.run_bench`,
prints the table and writes the reports. All load stays on 127.0.0.1 and every
load test is bounded by ``--duration``.

Until the CLI group registers it, run it as ``python -m wsgistack.cli.bench``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console

from wsgistack_bench import harness, load, machineload, report, stacks
from wsgistack_bench.adapter import ABLATIONS, parse_variant_spec, wsgistack_balanced, wsgistack_default, wsgistack_stack

DEFAULT_STACKS = (
    "ceiling", "wsgistack", "candidate", "seed", "tiangolo", "gunicorn-sync", "gunicorn-gthread",
    "granian-nginx", "uwsgi-alone", "granian-alone",
)
BENCH_SECRET = "wsgistack-bench-not-a-secret-" + "x" * 40


def only_pages(scenarios: list[harness.Scenario], pages: str) -> list[harness.Scenario]:
    """The scenarios of the pages named (``hello,django-hello``); the static files' stay."""
    wanted = {p.strip() for p in pages.split(",") if p.strip()}
    known = {s.name.split()[0] for s in scenarios if not s.name.startswith("static ")}
    if unknown := sorted(wanted - known):
        raise click.BadParameter(f"no such page among the apps measured: {', '.join(unknown)} "
                                 f"(pages: {', '.join(sorted(known))})", param_hint="--pages")
    return [s for s in scenarios if s.name.startswith("static ") or s.name.split()[0] in wanted]


def _apps(which: str, hello_dir: Path, django_dir: Path, workroot: Path) -> list[stacks.AppTarget]:
    apps = []
    if which in ("hello", "all"):
        apps.append(stacks.AppTarget("hello", hello_dir.resolve(), "hello:application", "/hello"))
    if which in ("django", "all"):
        data = workroot / "django-data"
        apps.append(stacks.AppTarget("django", django_dir.resolve(), "demo.wsgi:application", "/", {
            "DJANGO_SETTINGS_MODULE": "demo.settings", "DEMO_DATA_DIR": str(data),
            "DJANGO_SECRET_KEY": BENCH_SECRET, "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_STATIC_ROOT": str(data / "static"),
            "DJANGO_LOG_LEVEL": "WARNING",
        }, extra_pages=(("-hello", "/hello"),)))
    return apps


def _variant_builders(variants: list[str]) -> dict[str, stacks.StackBuilder]:
    out: dict[str, stacks.StackBuilder] = {}
    for spec in variants:
        try:
            vname, settings, ablations = parse_variant_spec(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--variant") from exc
        out[vname] = wsgistack_stack(vname, settings, ablations)
    return out


def _granian_builders(specs: list[str]) -> dict[str, stacks.StackBuilder]:
    out: dict[str, stacks.StackBuilder] = {}
    for spec in specs:
        try:
            gname, assignments = stacks.parse_knob_spec(spec, "granian")
            knobs = stacks.GranianKnobs().with_assignments(assignments)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--granian") from exc
        if gname in DEFAULT_STACKS or gname == "wsgistack":
            raise click.BadParameter(f"{gname!r} is a stack name already", param_hint="--granian")
        out[gname] = stacks.granian_stack(gname, knobs)
    return out


def _builders(names: list[str], candidates: list[str], variants: list[str] = (),
              granians: list[str] = ()) -> dict[str, stacks.StackBuilder]:
    builders: dict[str, stacks.StackBuilder] = {}
    pending = _variant_builders(list(variants))
    pending_granian = _granian_builders(list(granians))
    for name in names:
        if name == "candidate":
            for spec in candidates or ["candidate"]:
                cname, assignments = stacks.parse_candidate_spec(spec)
                builders[cname] = stacks.candidate_stack(cname, stacks.Candidate().with_assignments(assignments))
        elif name == "wsgistack":
            builders[name] = wsgistack_default
            builders.update(pending)  # variants run right after the stack they vary
            pending = {}
        elif name == "wsgistack-balanced":  # behind `wsgistack balance` (HAProxy): the balancer's cost
            builders[name] = wsgistack_balanced
        elif name in stacks.REFERENCE_STACKS:
            builders[name] = stacks.REFERENCE_STACKS[name]
            if name == "granian-nginx":  # granian variants run right after granian's defaults
                builders.update(pending_granian)
                pending_granian = {}
        else:
            known = ", ".join(DEFAULT_STACKS)
            raise click.BadParameter(f"unknown stack {name!r}; known: {known}", param_hint="--stacks")
    builders.update(pending)
    builders.update(pending_granian)
    return builders


def _twins(builders: dict[str, stacks.StackBuilder], twins: tuple[str, ...]) -> dict[str, stacks.StackBuilder]:
    """Add STACK-twin for each --twin STACK; ``all`` twins every stack (every stack a
    conclusion can name is then validated in the same run)."""
    wanted = list(builders) if "all" in twins else list(dict.fromkeys(twins))
    out = dict(builders)
    for twin in wanted:
        if twin not in builders:
            raise click.BadParameter(f"{twin!r} is not among --stacks", param_hint="--twin")
        out[twin + harness.TWIN_SUFFIX] = builders[twin]
    return out


def _cpus(value: str | None) -> tuple[int, ...]:
    """"0,1" -> (0, 1); None or "" -> () (the caller's default)."""
    return tuple(int(c) for c in (value or "").split(",") if c.strip())


@click.command("bench")
@click.option("--app", "which", type=click.Choice(["hello", "django", "all"]), default="all", show_default=True)
@click.option("--stacks", "stack_list", default=",".join(DEFAULT_STACKS), show_default=True,
              help="comma-separated stacks, run in this order each round")
@click.option("--candidate", "candidates", multiple=True, metavar="NAME:KNOB=V,...",
              help="a candidate Nginx+uWSGI config (repeatable), e.g. p4:processes=4,threads=2")
@click.option("--variant", "variants", multiple=True, metavar="NAME:SECTION.SETTING=V,...",
              help="one more wsgistack stack with real settings changed (repeatable), e.g. "
                   "json:server.log_format=json or quiet:server.access_log=false,server.security_headers=false "
                   "(the cost of a feature, measured against the defaults); a -NAME item takes a protection "
                   "that has no setting out of the rendered files for the measurement (bench only): "
                   + ", ".join("-" + a for a in ABLATIONS))
@click.option("--rounds", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--duration", type=click.IntRange(1, 120), default=5, show_default=True, help="seconds per test")
@click.option("--warmup", type=click.IntRange(1, 30), default=1, show_default=True)
@click.option("--connections", default="32,256", show_default=True, help="comma-separated connection counts")
@click.option("--static/--no-static", default=True, show_default=True, help="1 KB / 100 KB: Nginx vs whitenoise")
@click.option("--burst/--no-burst", default=True, show_default=True,
              help="N simultaneous connections to a slow endpoint")
@click.option("--burst-connections", type=click.IntRange(1, 10000), default=1000, show_default=True)
@click.option("--burst-rounds", type=click.IntRange(1, 20), default=1, show_default=True)
@click.option("--burst-stacks", default=None, help="default: the primary stack, seed, tiangolo")
@click.option("--slow-ms", type=click.IntRange(1, 5000), default=20, show_default=True)
@click.option("--quick", is_flag=True, help="3 rounds x 3 s, 32 connections only")
@click.option("--hello-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("examples/hello"),
              show_default=True)
@click.option("--django-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("examples/django_demo"), show_default=True)
@click.option("--server-cpus", default=None, help="CPUs for the servers (default: first half)")
@click.option("--load-cpus", default=None, help="CPUs for the load generator (default: second half)")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="extra request header for every load test, e.g. 'Accept-Encoding: gzip'")
@click.option("--no-wrk", is_flag=True, help="use the pure-Python load generator even if wrk is installed")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--keep-workdir", is_flag=True, help="keep the generated configs and logs")
@click.option("--twin", "twins", multiple=True, metavar="STACK|all",
              help="run STACK twice (the second as STACK-twin) to show how far two identical stacks' CPU per "
                   "request differ in one run: the method's resolution; 'all' twins every stack (a target "
                   "check names the stacks it rests on that ran without a twin)")
@click.option("--granian", "granians", multiple=True, metavar="NAME:KNOB=V,...",
              help="one more granian-behind-Nginx stack with granian knobs changed (repeatable), e.g. "
                   "bt1:blocking_threads=1 or noka:upstream_keepalive=0; knobs: "
                   + ", ".join(f.name for f in dataclasses.fields(stacks.GranianKnobs)))
@click.option("--think-ms", "think", default="0", show_default=True,
              help="comma-separated pauses per connection between requests (ms); 0 = back to back "
                   "(saturation). E.g. 0,2,8: CPU per request also at a third and a tenth of saturation")
@click.option("--max-other-cpus", type=click.FloatRange(0.0), default=machineload.DEFAULT_MAX_OTHER_CPUS,
              show_default=True,
              help="CPUs of other work above which the machine is too busy: the run does not start, and a "
                   "sample taken meanwhile is taken again (--noisy-retries) and marked")
@click.option("--allow-busy", is_flag=True, help="measure on a busy machine anyway (results are marked)")
@click.option("--noisy-retries", type=click.IntRange(0, 10), default=2, show_default=True)
@click.option("--max-core-slowdown", type=click.FloatRange(0, 10), default=0.15, show_default=True,
              help="a sample during which the server core ran this much slower (0.15 = 15 %) than the fastest "
                   "seen for the same stack and scenario is taken again (--noisy-retries) and marked slow")
@click.option("--pages", default=None, metavar="PAGE,...",
              help="measure only these pages of the apps (hello, django, django-hello; default: every page)")
@click.option("--no-core-probe", is_flag=True,
              help="do not time the fixed piece of work on the server CPUs during each sample")
def command(which: str, stack_list: str, candidates: tuple[str, ...], variants: tuple[str, ...], rounds: int, duration: int, warmup: int,
            connections: str, static: bool, burst: bool, burst_connections: int, burst_rounds: int,
            burst_stacks: str | None, slow_ms: int, quick: bool, hello_dir: Path, django_dir: Path,
            server_cpus: str | None, load_cpus: str | None, headers: tuple[str, ...], no_wrk: bool,
            markdown_path: Path | None, json_path: Path | None, keep_workdir: bool,
            twins: tuple[str, ...], granians: tuple[str, ...], think: str, max_other_cpus: float,
            allow_busy: bool, noisy_retries: int, max_core_slowdown: float, no_core_probe: bool,
            pages: str | None) -> None:
    """Benchmark wsgistack against reference stacks, interleaved, medians over rounds."""
    console = Console(stderr=True, width=160)
    # A TERM (a timeout, a killed job) unwinds like Ctrl-C: run_bench's finally stops every
    # stack it started (they run in sessions of their own and would outlive the harness).
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(128 + signal.SIGTERM))
    if quick:
        rounds, duration, connections = 3, 3, "32"
    conns = [int(c) for c in connections.split(",") if c.strip()]
    default_server, default_load = harness.split_cpus(sorted(os.sched_getaffinity(0)))
    use_wrk = load.wrk_available() and not no_wrk
    if not use_wrk:
        console.print("[yellow]wrk not found: using the pure-Python load generator; "
                      "fast stacks will be generator-bound[/]")
    names = [n.strip() for n in stack_list.split(",") if n.strip()]
    builders = _twins(_builders(names, list(candidates), list(variants), list(granians)), twins)
    try:
        think_ms = sorted({int(t) for t in think.split(",") if t.strip()}) or [0]
    except ValueError as exc:
        raise click.BadParameter(f"expected milliseconds, got {think!r}", param_hint="--think-ms") from exc
    primary_order = [n for n in builders if n == "wsgistack"] + [
        n for n in builders
        if n not in stacks.REFERENCE_STACKS and n != "wsgistack" and not n.endswith(harness.TWIN_SUFFIX)]
    bursts = ([s.strip() for s in burst_stacks.split(",")] if burst_stacks else
              [*primary_order, "seed", "tiangolo"]) if burst else []
    options = harness.BenchOptions(
        rounds=rounds, duration_s=duration, warmup_s=warmup,
        server_cpus=_cpus(server_cpus) or default_server,
        load_cpus=_cpus(load_cpus) or default_load,
        use_wrk=use_wrk, burst_connections=burst_connections, burst_rounds=burst_rounds,
        burst_stacks=tuple(bursts), slow_ms=slow_ms,
        memory_app="django" if which in ("django", "all") else "hello",
        load_policy=machineload.LoadPolicy(max_other_cpus=max_other_cpus, allow_busy=allow_busy),
        noisy_retries=noisy_retries,
        max_core_slowdown=None if no_core_probe else max_core_slowdown, core_probe=not no_core_probe,
    )
    workroot = Path(tempfile.mkdtemp(prefix="wsgistack-bench-"))
    apps = _apps(which, hello_dir, django_dir, workroot)
    scenarios = [dataclasses.replace(s, headers=(*s.headers, *headers))
                 for s in harness.default_scenarios(apps, primary_order, conns, static=static, think_ms=think_ms)]
    if pages:
        try:
            scenarios = only_pages(scenarios, pages)
        except click.BadParameter:
            shutil.rmtree(workroot, ignore_errors=True)
            raise
    try:
        results = harness.run_bench(apps, builders, scenarios, options, workroot, harness.free_ports(),
                                    progress=lambda msg: console.print(msg, markup=False, highlight=False))
    except harness.MachineBusy as exc:
        raise click.ClickException(f"machine too busy to measure: {exc}") from exc
    finally:
        if keep_workdir:
            console.print(f"configs and logs kept in {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    args = sys.argv[1:]
    if args[:1] == ["bench"]:  # run as `wsgistack bench ...` rather than `python -m ...`
        args = args[1:]
    results.command = "wsgistack bench " + shlex.join(args)
    ran = {s.stack for s in results.samples}
    primary = next((n for n in primary_order if n in ran), "")
    checks = harness.check_targets(results, primary) if primary else []
    out = Console(width=max(120, Console().width))
    out.print(report.table(results))
    if checks:
        out.print(report.targets_table(checks, primary, results))
    for name, reason in results.skipped.items():
        out.print(f"[yellow]skipped {name}[/]: {reason}")
    for warning in report.load_warnings(results):
        out.print(f"[red]warning[/]: {warning}")
    if markdown_path:
        markdown_path.write_text(report.markdown(results, checks, primary))
        console.print(f"Markdown report written to {markdown_path}")
    if json_path:
        json_path.write_text(json.dumps(report.to_json(results, checks), indent=2))
        console.print(f"raw results written to {json_path}")


if __name__ == "__main__":
    command()
