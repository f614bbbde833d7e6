"""The stop's budgets (plan/stop.py): one derivation that the process table, the compose file,
the Kubernetes manifests, the Dockerfile's advice and doctor all follow (issue 24 item 1)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.unit.test_plan import MACHINE
from wsgistack.app.spec import AppSpec
from wsgistack.config import load_config
from wsgistack.plan.image import ProjectFacts
from wsgistack.plan.stack import make_plan
from wsgistack.plan.stop import DOCKER_DEFAULT_STOP, graces, stop_plan
from wsgistack.render.compose import ComposeOptions, render_compose
from wsgistack.render.stack import process_table

RQ = {"WSGISTACK_PROCESSES__RQ__COMMAND": "rq worker", "WSGISTACK_PROCESSES__RQ__STOP_TIMEOUT": "35"}


def config(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return load_config(Path("/srv/app"), env=env).config


def test_nginx_then_uwsgi_within_one_budget_and_background_beside_them() -> None:
    stop = stop_plan(config({}))
    # Every budget counts from the stop's start: nginx 6 s for its requests, then uWSGI (idle by
    # then) until 8 s; 1 s more for a SIGKILLed process: 9 s, within Docker's default 10 s.
    assert [(s.name, s.budget, s.after) for s in stop.steps] == [("nginx", 6, ()), ("uwsgi", 8, ("nginx",))]
    assert (stop.total, stop.grace) == (9, 10) and stop.grace <= DOCKER_DEFAULT_STOP
    assert stop.describe() == "nginx 6 s, then uwsgi until 8 s"
    busy = stop_plan(config({**RQ, "WSGISTACK_OPS__PORT": "9100", "WSGISTACK_DRAIN_DELAY": "3"}))
    assert busy.budget("rq") == 35 and busy.budget("ops") == 2
    assert busy.total == 3 + 36  # the queue worker's budget is the longest branch, beside nginx's
    assert busy.describe() == "drain 3 s, then nginx 6 s, then uwsgi until 8 s; beside them: rq 35 s, ops 2 s"
    assert stop_plan(config(RQ), run_processes=False).total == 9
    assert stop_plan(config(RQ), "worker", process="rq").total == 36
    # Alone in its container, each gets all of stop_timeout.
    assert stop_plan(config(RQ), "app").budget("uwsgi") == 8 and stop_plan(config(RQ), "web").budget("nginx") == 8
    assert stop_plan(config(RQ), "app").total == 9 and stop_plan(config(RQ), "web").total == 9
    # A short stop_timeout leaves the app server half of it; 1 s, all of it to both.
    assert [s.budget for s in stop_plan(config({"WSGISTACK_STOP_TIMEOUT": "3"})).steps] == [2, 3]
    assert [s.budget for s in stop_plan(config({"WSGISTACK_STOP_TIMEOUT": "1"})).steps] == [1, 1]
    long = stop_plan(config({"WSGISTACK_STOP_TIMEOUT": "30"}))
    assert [s.budget for s in long.steps] == [28, 30] and long.grace == 32 > DOCKER_DEFAULT_STOP


def test_the_process_table_carries_the_same_budgets() -> None:
    loaded = load_config(Path("/srv/app"), env={**RQ, "WSGISTACK_PROCESSES__TICK__COMMAND": "tick",
                                                "WSGISTACK_PROCESSES__TICK__COUNT": "2", "WSGISTACK_OPS__PORT": "9100"})
    plan = make_plan(loaded, MACHINE, AppSpec(kind="wsgi", module="app", attr="app", path=Path("/srv/app")))
    table = {p.name: p for p in process_table(plan).processes}
    stop = plan.stop
    assert set(table) == {s.name for s in stop.steps}
    for step in stop.steps:
        assert table[step.name].stop_timeout == step.budget, step.name
        assert table[step.name].stop_after == step.after, step.name
    assert table["uwsgi"].stop_after == ("nginx",) and table["rq"].stop_after == ()


def test_compose_gives_each_service_its_stop() -> None:
    facts = ProjectFacts(path=Path("/srv/app"), name="shop", app_kind="django", data_dirs=(), processes=("rq",))
    found = graces(config(RQ))
    single = yaml.safe_load(render_compose(facts, ComposeOptions(image="shop", grace=found)).content)["services"]
    assert single["web"]["stop_grace_period"] == "37s"  # role all runs rq too: 35 + 1 s (kill) + 1 s margin
    split = yaml.safe_load(render_compose(facts, ComposeOptions(image="shop", split=True, grace=found)).content)["services"]
    assert {k: v["stop_grace_period"] for k, v in split.items()} == {"app": "10s", "web": "10s", "worker-rq": "37s"}
    # Without the project's config: the defaults' budgets (which fit Docker's 10 s).
    default = yaml.safe_load(render_compose(facts, ComposeOptions(image="shop")).content)["services"]
    assert default["web"]["stop_grace_period"] == "10s"


def test_the_dockerfile_advises_the_stop_timeout_its_config_needs() -> None:
    from dataclasses import replace

    from tests.unit.container.test_container import FACTS, SOURCE
    from wsgistack.render.dockerfile import DockerfileOptions, render_dockerfile

    def dockerfile(facts: ProjectFacts) -> str:
        return {f.path: f.content for f in render_dockerfile(facts, SOURCE, DockerfileOptions())}["Dockerfile"]

    assert "--stop-timeout" not in dockerfile(FACTS)  # the defaults' 9 s + margin: Docker's own 10 s
    assert "within `docker stop`'s default 10 s" in dockerfile(FACTS)
    assert "docker run --stop-timeout 37" in dockerfile(replace(FACTS, stop_grace=stop_plan(config(RQ)).grace))
