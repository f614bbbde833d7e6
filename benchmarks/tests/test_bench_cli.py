"""The bench CLI's stack list: granian variants, twins for every stack; the report records what ran."""

from __future__ import annotations

import click
import pytest

from wsgistack_bench import cli, report
from wsgistack_bench.harness import BenchOptions, BenchResults, Sample, Scenario, check_targets, stack_config
from wsgistack_bench.load import LoadResult
from wsgistack_bench.stacks import Process, StackPlan


def test_granian_variants_run_right_after_granian_defaults() -> None:
    builders = cli._builders(["ceiling", "granian-nginx", "tiangolo"], [], [], ["bt1:blocking_threads=1",
                                                                              "noka:upstream_keepalive=0"])
    assert list(builders) == ["ceiling", "granian-nginx", "bt1", "noka", "tiangolo"]
    with pytest.raises(click.BadParameter, match="unknown granian knob"):
        cli._builders(["granian-nginx"], [], [], ["x:threads=1"])
    with pytest.raises(click.BadParameter, match="already"):
        cli._builders(["granian-nginx"], [], [], ["tiangolo:blocking_threads=1"])


def test_twin_all_twins_every_stack() -> None:
    builders = cli._builders(["ceiling", "candidate", "granian-nginx"], [], [])
    assert list(cli._twins(builders, ("all",))) == [
        "ceiling", "candidate", "granian-nginx", "ceiling-twin", "candidate-twin", "granian-nginx-twin"]
    assert list(cli._twins(builders, ("candidate", "candidate"))) == [
        "ceiling", "candidate", "granian-nginx", "candidate-twin"]
    with pytest.raises(click.BadParameter):
        cli._twins(builders, ("seed",))


def test_report_says_what_each_stack_ran_and_which_conclusions_lack_twins() -> None:
    plan = StackPlan("granian-nginx", "http://127.0.0.1:1", (
        Process("granian", ("granian", "--blocking-threads", "1"), {"BENCH_APP": "hello:application"}, "."),),
        config={"blocking_threads": 1})
    results = BenchResults(options=BenchOptions(), scenarios=[Scenario("django c32", "django", "/", 32)],
                           stacks={"django": ["w", "granian-nginx"]})
    results.configs["django/granian-nginx"] = stack_config(plan)
    for stack in ("w", "granian-nginx"):
        results.samples.append(Sample(stack, "django c32", 1, LoadResult(1000, 1.0, 1.0, 2.0, 0, 0, "wrk"), 0.2))
    checks = check_targets(results, "w")
    text = report.markdown(results, checks, "w")
    assert "`granian --blocking-threads 1`" in text and "blocking_threads=1" in text
    assert "| Django ÷ granian+Nginx | 1 | ≥ 1.00 | pass | no twin: w, granian-nginx |" in text
    data = report.to_json(results, checks)
    assert data["configs"]["django/granian-nginx"]["processes"][0]["argv"] == ["granian", "--blocking-threads", "1"]
    target = next(t for t in data["targets"] if t["name"] == "Django ÷ granian+Nginx")
    assert target["twins_resolved"] is False
    assert tuple(target["rests_on"][1]) == ("granian-nginx", "django c32")


def test_pages_narrow_the_scenarios_and_an_unknown_page_is_named() -> None:
    scenarios = [Scenario("django c32", "django", "/", 32), Scenario("django-hello c32", "django", "/hello", 32),
                 Scenario("django-hello c256", "django", "/hello", 256), Scenario("static 1k nginx", "hello", "/s", 32)]
    assert [s.name for s in cli.only_pages(scenarios, "django-hello")] == [
        "django-hello c32", "django-hello c256", "static 1k nginx"]
    with pytest.raises(click.BadParameter, match=r"no such page among the apps measured: dj \(pages: django, django-hello\)"):
        cli.only_pages(scenarios, "django-hello,dj")
