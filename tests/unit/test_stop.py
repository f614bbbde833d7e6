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


def test_nginx_then_uwsgi_each_with_its_own_budget_and_background_beside_them() -> None:
    stop = stop_plan(config({}))
    assert [(s.name, s.budget, s.after) for s in stop.steps] == [("nginx", 8, ()), ("uwsgi", 8, ("nginx",))]
    # nginx 8 s, then uWSGI 8 s, each plus the wait for a SIGKILLed process (1 s)
    assert (stop.total, stop.grace) == (18, 20) and stop.total > DOCKER_DEFAULT_STOP
    assert stop.describe() == "nginx 8 s, then uwsgi 8 s"
    busy = stop_plan(config({**RQ, "WSGISTACK_OPS__PORT": "9100", "WSGISTACK_DRAIN_DELAY": "3"}))
    assert busy.budget("rq") == 35 and busy.budget("ops") == 2
    assert busy.total == 3 + 36  # the queue worker's budget is the longest branch, beside nginx's
    assert busy.describe() == "drain 3 s, then nginx 8 s, then uwsgi 8 s; beside them: rq 35 s, ops 2 s"
    assert stop_plan(config(RQ), run_processes=False).total == 18
    assert stop_plan(config(RQ), "worker", process="rq").total == 36
    assert stop_plan(config(RQ), "app").total == 9 and stop_plan(config(RQ), "web").total == 9


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
    assert single["web"]["stop_grace_period"] == "38s"  # role all runs rq too: 35 + 1 s (kill) + 2 s margin
    split = yaml.safe_load(render_compose(facts, ComposeOptions(image="shop", split=True, grace=found)).content)["services"]
    assert {k: v["stop_grace_period"] for k, v in split.items()} == {"app": "11s", "web": "11s", "worker-rq": "38s"}
    # Without the project's config: the defaults' budgets, never Docker's 10 s.
    default = yaml.safe_load(render_compose(facts, ComposeOptions(image="shop")).content)["services"]
    assert default["web"]["stop_grace_period"] == "20s"


def test_the_dockerfile_advises_the_stop_timeout_its_config_needs() -> None:
    from dataclasses import replace

    from tests.unit.container.test_container import FACTS, SOURCE
    from wsgistack.render.dockerfile import DockerfileOptions, render_dockerfile

    def dockerfile(facts: ProjectFacts) -> str:
        return {f.path: f.content for f in render_dockerfile(facts, SOURCE, DockerfileOptions())}["Dockerfile"]

    assert "docker run --stop-timeout 20, docker stop -t 20" in dockerfile(FACTS)  # the defaults' 18 s + margin
    assert "docker run --stop-timeout 38" in dockerfile(replace(FACTS, stop_grace=stop_plan(config(RQ)).grace))
