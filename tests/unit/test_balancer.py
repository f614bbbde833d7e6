"""The balancer's plan: settings -> what haproxy.cfg says (pure), and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgistack.plan.balancer import RETRYABLE_METHODS, make_balancer_plan
from wsgistack.start import balancer as prepare
from wsgistack.config import load_config
from wsgistack.errors import ConfigError, MissingBinaryError, WsgistackError
from wsgistack.machine import Machine

MACHINE = Machine(cpus=2, memory_limit=None, somaxconn=4096, euid=1000, nginx=None,
                  python="/usr/bin/python3", haproxy="/usr/sbin/haproxy")


def plan_for(env: dict[str, str], tmp_path: Path = Path("/srv/app")):
    return make_balancer_plan(load_config(tmp_path, env=env), MACHINE)


def test_nodes_from_the_environment_become_named_servers() -> None:
    plan = plan_for({"WSGISTACK_BALANCER__NODES": "10.0.0.11:8000, 10.0.0.12:8000"})
    assert [(s.name, s.address) for s in plan.servers] == [("node1", "10.0.0.11:8000"), ("node2", "10.0.0.12:8000")]
    assert plan.server("10.0.0.12:8000").name == "node2"
    assert plan.stats_url == "http://127.0.0.1:9080/"


def test_no_nodes_is_an_error_that_says_how_to_give_them() -> None:
    with pytest.raises(ConfigError) as err:
        plan_for({})
    assert err.value.id == "balancer.E001"
    assert "--node" in err.value.hint and "WSGISTACK_BALANCER__NODES" in err.value.hint


@pytest.mark.parametrize("bad", ["10.0.0.11", "10.0.0.11:0", "http://x:80", "a b:80"])
def test_a_node_that_is_not_host_port_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        plan_for({"WSGISTACK_BALANCER__NODES": bad})
    assert "balancer.nodes" in err.value.render()


def test_stats_auth_must_be_user_colon_password() -> None:
    with pytest.raises(ConfigError):
        plan_for({"WSGISTACK_BALANCER__NODES": "h:1", "WSGISTACK_BALANCER__STATS_AUTH": "nopassword"})
    plan = plan_for({"WSGISTACK_BALANCER__NODES": "h:1", "WSGISTACK_BALANCER__STATS_AUTH": "ops:pw:with:colons"})
    assert (plan.stats_user, plan.stats_password) == ("ops", "pw:with:colons")


def test_check_uses_the_readiness_path_and_a_host_the_nodes_serve() -> None:
    plan = plan_for({"WSGISTACK_BALANCER__NODES": "h:1", "WSGISTACK_SERVER__SERVER_NAMES": "*.example.com shop.example.com"})
    assert plan.check_host == "shop.example.com"
    assert plan.check_path == plan.config.server.ready_path
    assert plan_for({"WSGISTACK_BALANCER__NODES": "h:1", "WSGISTACK_BALANCER__CHECK_HOST": "x.test"}).check_host == "x.test"


def test_the_balancer_waits_longer_than_the_nodes_nginx() -> None:
    plan = plan_for({"WSGISTACK_BALANCER__NODES": "h:1", "WSGISTACK_REQUEST_TIMEOUT": "60"})
    assert plan.timeout_server > 60 + 3  # harakiri + nginx's grace


def test_post_is_never_replayed() -> None:
    assert "POST" not in RETRYABLE_METHODS and "GET" in RETRYABLE_METHODS


def test_missing_haproxy_names_the_install_command(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"WSGISTACK_BALANCER__NODES": "h:1", "WSGISTACK_RUNTIME_DIR": str(tmp_path / "b")})
    no_haproxy = Machine(**{**MACHINE.__dict__, "haproxy": None})
    with pytest.raises(MissingBinaryError) as err:
        prepare(loaded, no_haproxy)
    assert err.value.id == "balancer.E004" and err.value.exit_code == 3
    assert "apt-get install haproxy" in err.value.hint


def test_unknown_node_for_the_runtime_api_is_an_error() -> None:
    plan = plan_for({"WSGISTACK_BALANCER__NODES": "h:1"})
    with pytest.raises(WsgistackError) as err:
        plan.server("h:2")
    assert err.value.id == "balancer.E002"
