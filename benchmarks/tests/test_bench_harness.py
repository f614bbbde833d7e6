"""Medians, ratios, the serial bound, CPU split and target checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgistack_bench.harness import (
    BenchOptions,
    BenchResults,
    BurstSample,
    Sample,
    Scenario,
    check_targets,
    default_scenarios,
    serial_bound,
    split_cpus,
    summarise,
)
from wsgistack_bench.load import BurstResult, LoadResult
from wsgistack_bench.stacks import AppTarget


def result(rps: float, p99: float = 5.0, errors: int = 0, non2xx: int = 0) -> LoadResult:
    return LoadResult(requests=int(rps * 10), duration_s=10.0, p50_ms=p99 / 2, p99_ms=p99,
                      errors=errors, non2xx=non2xx, tool="wrk")


def test_summarise_takes_medians_and_sums_failures() -> None:
    samples = [Sample("a", "s", i, result(r, p99, errors=e)) for i, (r, p99, e) in
               enumerate([(100, 9, 0), (300, 1, 1), (200, 5, 0)])]
    s = summarise(samples)[("a", "s")]
    assert s.rps == 200
    assert s.p99_ms == 5
    assert s.errors == 1
    assert s.rounds == 3


def test_serial_bound() -> None:
    assert serial_bound(100_000, 25_000) == pytest.approx(20_000)


@pytest.mark.parametrize(("cpus", "expected"), [
    ([0], ((), ())),
    ([0, 1], ((0,), (1,))),
    ([0, 1, 2, 3], ((0, 1), (2, 3))),
    ([0, 1, 2], ((0, 1), (2,))),
])
def test_split_cpus(cpus: list[int], expected: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    assert split_cpus(cpus) == expected


def test_default_scenarios_static_only_on_primary() -> None:
    apps = [AppTarget("hello", Path("."), "hello:application", "/hello"),
            AppTarget("django", Path("."), "demo.wsgi:application", "/")]
    scenarios = default_scenarios(apps, ["cand"], [32, 256])
    names = [s.name for s in scenarios]
    assert names[:4] == ["hello c32", "hello c256", "django c32", "django c256"]
    static = [s for s in scenarios if s.name.startswith("static")]
    assert len(static) == 4 and all(s.stacks == ("cand",) and s.app == "hello" for s in static)
    assert not static[0].runs_on("seed")


def _results() -> BenchResults:
    rps = {  # django c32 / hello c32
        "ceiling": (40_000, 60_000), "cand": (1_500, 12_000), "seed": (1_000, 9_000),
        "gunicorn-sync": (700, 3_000), "granian-nginx": (1_400, 11_000),
        "uwsgi-alone": (1_600, 14_000), "granian-alone": (1_700, 20_000),
    }
    samples = []
    for stack, (django, hello) in rps.items():
        samples.append(Sample(stack, "django c32", 1, result(django, p99=12)))
        samples.append(Sample(stack, "hello c32", 1, result(hello)))
    samples += [Sample("cand", "static 1k nginx", 1, result(30_000)),
                Sample("cand", "static 1k whitenoise", 1, result(2_000))]
    scenarios = [Scenario("django c32", "django", "/", 32), Scenario("hello c32", "hello", "/hello", 32)]
    r = BenchResults(options=BenchOptions(), scenarios=scenarios, stacks={"django": list(rps)}, samples=samples)
    r.bursts.append(BurstSample("cand", "django", 1, BurstResult(1000, 1000, 0, 0, 10.0, {"200": 1000})))
    return r


def test_check_targets() -> None:
    checks = {c.name: c for c in check_targets(_results(), "cand")}
    bound = serial_bound(40_000, 1_700)
    assert checks["Django ÷ serial bound"].value == pytest.approx(1_500 / bound)
    assert checks["Django ÷ seed"].value == pytest.approx(1.5) and checks["Django ÷ seed"].passed
    assert checks["Django ÷ best gunicorn+Nginx"].value == pytest.approx(1_500 / 700)
    assert checks["Django ÷ granian+Nginx"].passed
    assert checks["Django p99 at 32 conns (ms)"].passed
    assert checks["hello ÷ seed"].value == pytest.approx(12_000 / 9_000)
    assert checks["burst errors + non-2xx"].passed
    assert checks["static 1k: Nginx ÷ whitenoise"].value == pytest.approx(15)
    assert checks["static 100k: Nginx ÷ whitenoise"].passed is None  # not measured
    assert checks["static 100k: whitenoise CPU/req ÷ Nginx's"].passed is None
    assert checks["stack PSS after load (MB)"].passed is None


def test_check_targets_flags_errors() -> None:
    r = _results()
    r.samples.append(Sample("cand", "django c256", 1, result(1_000, errors=3)))
    checks = {c.name: c for c in check_targets(r, "cand")}
    assert checks["errors + non-2xx under load"].passed is False


def test_cpu_per_request_median_and_twin_agreement() -> None:
    from wsgistack_bench.harness import Sample, summarise, twin_agreement

    samples = [Sample("w", "hello c32", n, result(1000), cpu) for n, cpu in enumerate((0.30, 0.32, 0.31))]
    samples += [Sample("w-twin", "hello c32", n, result(1000), cpu) for n, cpu in enumerate((0.31, 0.31, 0.33))]
    samples.append(Sample("old", "hello c32", 1, result(1000)))  # no CPU reading: no CPU figures
    s = summarise(samples)
    # 10 s at 1000 req/s = 10,000 requests; 0.31 s / 10,000 = 31 µs.
    assert s[("w", "hello c32")].cpu_us == pytest.approx(31.0)
    assert s[("w", "hello c32")].cpu_us_values == pytest.approx((30.0, 32.0, 31.0))
    assert s[("old", "hello c32")].cpu_us is None
    (agreement,) = twin_agreement(s)
    assert (agreement.stack, agreement.scenario) == ("w", "hello c32")
    assert agreement.difference == pytest.approx(0.0)


def test_cpu_seconds_of_this_process_group_grows_with_work() -> None:
    import os

    from wsgistack_bench.procs import cpu_seconds

    before = cpu_seconds([os.getpgid(0)])
    deadline = __import__("time").process_time() + 0.2
    while __import__("time").process_time() < deadline:
        pass
    assert cpu_seconds([os.getpgid(0)]) - before >= 0.15


def test_cpu_split_by_process_kind() -> None:
    import os

    from wsgistack_bench.harness import Sample, summarise
    from wsgistack_bench.procs import cpu_by_process, cpu_seconds

    split = cpu_by_process([os.getpgid(0)])
    assert split and sum(split.values()) == pytest.approx(cpu_seconds([os.getpgid(0)]), abs=0.05)
    samples = [Sample("w", "hello c32", n, result(1000), 0.3, {"nginx": 0.1, "uwsgi": u})
               for n, u in enumerate((0.2, 0.25, 0.15))]
    # 10,000 requests: nginx 10 µs each, uWSGI the median 20 µs.
    assert summarise(samples)[("w", "hello c32")].cpu_split_us == pytest.approx({"nginx": 10.0, "uwsgi": 20.0})


def test_granian_run_as_a_module_is_split_as_granian() -> None:
    """wsgistack runs `python3 -m granian` (its comm is python3), the bare stack the granian
    script: both are granian in the split, so the two stacks' columns compare."""
    import subprocess
    import sys

    from wsgistack_bench.procs import _kind

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m", "granian"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        comm = Path(f"/proc/{child.pid}/comm").read_text().strip()
        assert _kind(comm, child.pid) == "granian"
        assert _kind(comm, other.pid) == comm
    finally:
        for p in (child, other):
            p.kill()
            p.wait()


def test_issue_15_checks_per_round_ratios_and_static_cost() -> None:
    from wsgistack_bench.harness import round_ratio

    r = BenchResults(options=BenchOptions(), scenarios=[], stacks={})
    for rnd, (mine, theirs) in enumerate(((3_000, 2_000), (1_000, 2_000), (2_200, 2_000)), start=1):
        r.samples += [Sample("w", "django-hello c32", rnd, result(mine)),
                      Sample("tiangolo", "django-hello c32", rnd, result(theirs)),
                      Sample("seed", "django-hello c32", rnd, result(1_000))]
    r.samples += [Sample("w", "static 1k nginx", 1, result(1_000), 0.2),  # 20 µs per request
                  Sample("w", "static 1k whitenoise", 1, result(1_000), 1.0)]  # 100 µs
    assert round_ratio(r, "w", "tiangolo", "django-hello c32") == pytest.approx(1.1)  # 1.5, 0.5, 1.1
    checks = {c.name: c for c in check_targets(r, "w")}
    assert checks["django-hello c32 ÷ tiangolo (per-round ratios)"].passed
    assert checks["django-hello c32 ÷ seed (per-round ratios)"].value == pytest.approx(2.2)
    assert checks["static 1k: whitenoise CPU/req ÷ Nginx's"].value == pytest.approx(5.0)
    assert checks["static 1k: whitenoise CPU/req ÷ Nginx's"].passed is False


def test_think_times_make_their_own_scenarios() -> None:
    apps = [AppTarget("hello", Path("."), "hello:application", "/hello", extra_pages=(("-x", "/x"),))]
    scenarios = default_scenarios(apps, [], [32], static=False, think_ms=(0, 2))
    assert [(s.name, s.think_ms) for s in scenarios] == [
        ("hello c32", 0), ("hello c32 t2ms", 2), ("hello-x c32", 0), ("hello-x c32 t2ms", 2)]
