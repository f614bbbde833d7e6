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


# --- role balancer (the balancer's image), the runtime API through a relay --------------------


def test_role_balancer_is_refused_by_the_stack_commands(tmp_path: Path) -> None:
    """`wsgistack run` with role balancer would start nothing: it says which command runs it."""
    from wsgistack import start

    loaded = load_config(tmp_path, env={"WSGISTACK_ROLE": "balancer", "WSGISTACK_BALANCER__NODES": "127.0.0.1:8001"})
    with pytest.raises(WsgistackError) as err:
        start.plan(loaded, env={}, machine=MACHINE)
    assert err.value.id == "balancer.E008" and "wsgistack balance" in err.value.hint


def test_the_entrypoint_runs_the_balancers_start_for_role_balancer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Role balancer composes the balancer's own start (plan, render, write, haproxy -c), and
    its health.json points the image's HEALTHCHECK at HAProxy's own liveness answer."""
    import json

    from wsgistack.start import entrypoint
    from wsgistack.plan.balancer import BalancerPlan

    calls = []
    monkeypatch.setattr("wsgistack.start.balancer", lambda loaded: calls.append(loaded) or plan_for(
        {"WSGISTACK_BALANCER__NODES": "127.0.0.1:8001", "WSGISTACK_RUNTIME_DIR": str(tmp_path)}))
    said: list[str] = []
    env = {"WSGISTACK_ROLE": "balancer", "WSGISTACK_BALANCER__NODES": "127.0.0.1:8001 127.0.0.1:8002"}
    planned = entrypoint.prepare(env, tmp_path, said.append)
    assert isinstance(planned, BalancerPlan) and calls[0].config.balancer.nodes == ("127.0.0.1:8001", "127.0.0.1:8002")
    assert any("role balancer: haproxy ->" in line for line in said)
    from wsgistack.render.balancer import render_balancer

    health = json.loads({f.path: f.content for f in render_balancer(planned)}["health.json"])
    assert (health["http_port"], health["path"]) == (planned.config.balancer.port, planned.live_path)


def test_the_relay_frames_each_answer_and_the_relayed_api_reads_them(tmp_path: Path) -> None:
    """`wsgistack entrypoint --runtime-api` (in the balancer's container) against a fake
    HAProxy socket, read by RelayedRuntimeAPI as a rollout does: several commands, one process."""
    import socket
    import sys
    import threading

    from wsgistack.ops.balance import RelayedRuntimeAPI

    sock_path = tmp_path / "haproxy.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(8)
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                line = conn.recv(4096).decode().strip()
                seen.append(line)
                conn.sendall(b"" if line.startswith("set server") else f"# pxname,svname\nreply to {line}\n".encode())

    threading.Thread(target=serve, daemon=True).start()
    code = ("import sys; from pathlib import Path; from wsgistack.ops.balance import RuntimeAPI, relay; "
            f"relay(RuntimeAPI(Path({str(sock_path)!r})), sys.stdin.buffer, sys.stdout.buffer)")
    api = RelayedRuntimeAPI([sys.executable, "-c", code], describe="relay")
    try:
        assert api.command("show stat") == "# pxname,svname\nreply to show stat\n"
        api.set_state("nodes", "node1", "drain")  # an empty answer: accepted
        assert api.command("show info").endswith("reply to show info\n")
        assert api._proc is not None and api._proc.poll() is None  # one relay for every command
    finally:
        api.close()
        server.close()
    assert seen == ["show stat", "set server nodes/node1 state drain", "show info"]
    assert "| relay" in api.how_to("set server nodes/node1 state ready")


def test_a_relay_that_cannot_reach_the_socket_is_balancer_e006(tmp_path: Path) -> None:
    import sys

    from wsgistack.ops.balance import RelayedRuntimeAPI

    code = ("import sys; from pathlib import Path; from wsgistack.ops.balance import RuntimeAPI, relay; "
            f"relay(RuntimeAPI(Path({str(tmp_path / 'none.sock')!r})), sys.stdin.buffer, sys.stdout.buffer)")
    api = RelayedRuntimeAPI([sys.executable, "-c", code])
    with pytest.raises(WsgistackError) as err:
        api.command("show stat")
    api.close()
    assert err.value.id == "balancer.E006"
    with pytest.raises(WsgistackError) as gone:
        RelayedRuntimeAPI([sys.executable, "-c", "pass"]).command("show stat")
    assert gone.value.id == "balancer.E006" and "the relay exited" in gone.value.message


def test_maxconn_auto_is_the_nodes_workers_when_the_config_says_them() -> None:
    nodes = {"WSGISTACK_BALANCER__NODES": "10.0.0.1:80"}
    # The default is no limit (HAProxy 2.6 kept requests queued past a rollout's drain with one).
    assert plan_for({**nodes, "WSGISTACK_UWSGI__PROCESSES": "4"}).server_maxconn == 0
    nodes["WSGISTACK_BALANCER__MAXCONN"] = "auto"
    plan = plan_for({**nodes, "WSGISTACK_UWSGI__PROCESSES": "4", "WSGISTACK_UWSGI__THREADS": "2"})
    assert plan.server_maxconn == 8 and "balancer.maxconn auto = 8 per node" in plan.notes[0]
    # Sized on each node from its own CPUs: unknown here, so no limit, and a note says how to queue.
    unknown = plan_for(nodes)
    assert unknown.server_maxconn == 0 and "uwsgi.processes is auto" in unknown.notes[0]
    assert plan_for({**nodes, "WSGISTACK_BALANCER__MAXCONN": "0", "WSGISTACK_UWSGI__PROCESSES": "4"}).server_maxconn == 0
    assert plan_for({**nodes, "WSGISTACK_BALANCER__MAXCONN": "20"}).server_maxconn == 20


def test_the_balancer_knows_the_hosts_the_nodes_serve_as_nginx_does() -> None:
    import re

    def served(names: str) -> re.Pattern[str]:
        plan = plan_for({"WSGISTACK_BALANCER__NODES": "10.0.0.1:80", "WSGISTACK_SERVER__SERVER_NAMES": names})
        return re.compile(plan.host_regex, re.I)

    named = served("shop.example.com *.cdn.example.com .example.org mail.* [::1] 10.0.0.5")
    for host in ("shop.example.com", "SHOP.example.com:8080", "shop.example.com.", "a.cdn.example.com", "a.b.cdn.example.com",
                 "example.org", "www.example.org", "mail.example.net", "[::1]:8000", "10.0.0.5"):
        assert named.match(host), host
    for host in ("evil.example", "shop.example.com.evil.example", "xshop.example.com", "cdn.example.com", "example.org.evil",
                 "mail", "[::2]", "10.0.0.50", "shop.example.com:80:80", "", "shop.example.com/x"):
        assert not named.match(host), host
    assert plan_for({"WSGISTACK_BALANCER__NODES": "10.0.0.1:80", "WSGISTACK_SERVER__SERVER_NAMES": "*"}).host_regex == ""
