"""Several nodes behind `wsgistack balance`: real HAProxy, real nodes on 127.0.0.2-4, bounded
load through the balancer while a node is killed, stopped or redeployed (issue 11)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SERVERS, WSGISTACK, clean_env, free_port, http
from tests.integration.fleet import (NODE_HOSTS, Load, Proc, children, common_port, copy_app, node_runtime_base, node_states,
                                     start_balancer, start_node, wait_until, write_app)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (Path("/usr/sbin/haproxy").exists()), reason="haproxy not installed (make test installs it)"),
]

NODE_ENV: dict[str, str] = {}  # the settings are in the app's wsgistack.toml (fleet.copy_app)


class Fleet:
    def __init__(self, tmp_path: Path, server: str = "uwsgi") -> None:
        self.tmp_path = tmp_path
        self.server = server
        self.app_dir = copy_app(tmp_path, server)
        self.port = common_port()
        self.nodes: list[Proc] = [start_node(tmp_path, self.app_dir, host, self.port, i, NODE_ENV)
                                  for i, host in enumerate(NODE_HOSTS, start=1)]
        for node in self.nodes:
            wait_until(lambda node=node: http(f"http://{node.address}/", host="localhost", timeout=2).status == 200,
                       60, f"{node.name} serving", [node])
        self.balancer = start_balancer(tmp_path, self.app_dir, self.nodes)
        wait_until(lambda: set(node_states(self.balancer).values()) == {"UP"} and len(node_states(self.balancer)) == 3,
                   30, "every node UP at the balancer", [self.balancer])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.balancer.port}"

    def all(self) -> list[Proc]:
        return [*self.nodes, self.balancer]


@pytest.fixture
def fleet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    started: list[Proc] = []
    try:
        f = Fleet(tmp_path, getattr(request, "param", "uwsgi"))  # the nodes' app server (indirect parametrize)
        started = f.all()
        yield f
    finally:
        logs = []
        for proc in reversed(started or []):
            proc.stop()
            logs.append(f"--- {proc.name} ---\n{proc.log()[-6000:]}")
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            print("\n".join(logs))


def test_balancer_spreads_requests_sets_request_id_and_forwarded_headers(fleet: Fleet) -> None:
    seen = set()
    for _ in range(6):
        resp = http(fleet.url + "/", headers={"X-Forwarded-Host": "evil.test"})
        assert resp.status == 200, resp
        version, node, rid = resp.body.decode().split()
        seen.add(node)
        assert rid.startswith("rid=") and len(rid) > len("rid=") + 30  # a uuid made up by HAProxy
    assert seen == {"node1", "node2", "node3"}
    kept = http(fleet.url + "/", headers={"X-Request-ID": "abc-123"})
    assert kept.body.decode().endswith("rid=abc-123")
    # Forwarding headers a client forges do not get through the balancer: the node (which
    # trusts the balancer's X-Forwarded-*) sees the real client, Host and scheme.
    import json

    seen_by_app = json.loads(http(fleet.url + "/whoami", headers={
        "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.test", "X-Forwarded-Proto": "https"}).body)
    assert seen_by_app["REMOTE_ADDR"] == "127.0.0.1"
    assert seen_by_app["HTTP_HOST"] == f"127.0.0.1:{fleet.balancer.port}"
    assert seen_by_app["wsgi.url_scheme"] == "http"
    assert "evil.test" not in str(seen_by_app["HTTP_X_FORWARDED_HOST"])


def test_stats_page_lists_nodes_and_state_and_metrics(fleet: Fleet) -> None:
    page = http(f"http://127.0.0.1:{fleet.balancer.stats_port}/")  # type: ignore[attr-defined]
    assert page.status == 200
    text = page.body.decode()
    for name in ("node1", "node2", "node3"):
        assert name in text
    assert "UP" in text
    metrics = http(f"http://127.0.0.1:{fleet.balancer.stats_port}/metrics")  # type: ignore[attr-defined]
    assert metrics.status == 200 and b'haproxy_server_status{proxy="nodes",server="node1"' in metrics.body


@pytest.mark.parametrize("fleet", SERVERS, indirect=True)
def test_sigkill_of_a_node_uwsgi_master_fails_no_get(fleet: Fleet) -> None:
    victim = fleet.nodes[1]
    main = ("--ini",) if fleet.server == "uwsgi" else ("--interface",)  # uWSGI's master, granian's main process
    uwsgi = [pid for pid, cmd in children(victim.proc.pid) if fleet.server in cmd and main[0] in cmd]
    assert len(uwsgi) == 1, list(children(victim.proc.pid))
    with Load("127.0.0.1", fleet.balancer.port, total=1500, concurrency=6) as load:
        time.sleep(2)
        os.kill(uwsgi[0], signal.SIGKILL)
        wait_until(lambda: node_states(fleet.balancer)["node2"] != "UP", 30, "node2 taken out")
        load.stop(after=3)
    result = load.result
    print("SIGKILL:", result.summary())
    assert result.failures == [], result.summary()
    assert result.by_node.get("node2", 0) > 0 and result.by_node.get("node1", 0) > 0
    assert victim.proc.wait(timeout=30) != 0  # the node's manager saw uWSGI die, stopped nginx, failed


@pytest.mark.parametrize("fleet", SERVERS, indirect=True)
def test_sigterm_of_a_node_fails_no_request_posts_included(fleet: Fleet) -> None:
    victim = fleet.nodes[0]
    with Load("127.0.0.1", fleet.balancer.port, total=3000, concurrency=6, posts=True) as load:
        time.sleep(2)
        victim.proc.send_signal(signal.SIGTERM)
        assert victim.proc.wait(timeout=30) == 0, victim.log()
        wait_until(lambda: node_states(fleet.balancer)["node1"] != "UP", 30, "node1 taken out")
        load.stop(after=2)
    result = load.result
    print("SIGTERM:", result.summary())
    assert result.failures == [], result.summary()
    assert result.posts > 20


@pytest.mark.parametrize("fleet", SERVERS, indirect=True)
def test_rollout_one_node_at_a_time_fails_no_request_and_new_code_answers(fleet: Fleet) -> None:
    write_app(fleet.app_dir, "v2")
    cmd = [*WSGISTACK, "rollout", str(fleet.app_dir), "--runtime-dir", str(fleet.balancer.runtime_dir),
           "--node-runtime-dir", str(node_runtime_base(fleet.tmp_path) / "{host}"),
           "--host", "127.0.0.1", "--port", str(fleet.balancer.port), "--verify", "/", "--verify-post", "/form"]
    for node in fleet.nodes:
        cmd += ["--node", node.address]
    with Load("127.0.0.1", fleet.balancer.port, total=5000, concurrency=6, posts=True) as load:
        time.sleep(1)
        done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=300)
        load.stop(after=2)
    result = load.result
    print("rollout:", result.summary())
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert result.failures == [], result.summary()
    assert result.posts > 20
    # The rollout's own probe (--verify) counted the same: its line, and nothing failed.
    verified = re.search(r"verify: (\d+) requests, (\d+) failed, p99 during the swap [\d.]+ ms \((\d+) GET .*; (\d+) POST", done.stdout)
    assert verified, done.stdout
    assert verified.group(2) == "0" and int(verified.group(3)) > 20 and int(verified.group(4)) > 20, verified.group(0)
    for node in fleet.nodes:
        body = http(f"http://{node.address}/", host="localhost").body.decode()
        assert body.startswith(f"v2 {node.name} "), body
    assert set(node_states(fleet.balancer).values()) == {"UP"}


def test_rollout_stops_at_the_first_node_that_does_not_come_back(fleet: Fleet) -> None:
    cmd = [*WSGISTACK, "rollout", str(fleet.app_dir), "--runtime-dir", str(fleet.balancer.runtime_dir),
           "--command", f"{sys.executable} -c 'import sys; sys.exit(0 if \"{{name}}\" == \"node1\" else 7)'",
           "--ready-timeout", "10"]
    for node in fleet.nodes:
        cmd += ["--node", node.address]
    done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error[rollout.E001]" in done.stderr and "127.0.0.3" in done.stderr
    states = node_states(fleet.balancer)
    assert states == {"node1": "UP", "node2": "DRAIN", "node3": "UP"}, states


def test_drain_command_takes_a_node_out_and_undrain_puts_it_back(fleet: Fleet) -> None:
    node = fleet.nodes[2]
    args = [str(fleet.app_dir), "--runtime-dir", str(node.runtime_dir), "--host", node.host, "--port", str(node.port)]
    done = subprocess.run([*WSGISTACK, "drain", *args], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    ready = http(f"http://{node.address}/_wsgistack/ready", host="localhost")
    assert (ready.status, ready.body) == (503, b"draining\n")
    wait_until(lambda: node_states(fleet.balancer)["node3"] == "DOWN", 30, "node3 out at the balancer")
    assert http(f"http://{node.address}/", host="localhost").status == 200  # it still serves
    done = subprocess.run([*WSGISTACK, "undrain", *args], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until(lambda: node_states(fleet.balancer)["node3"] == "UP", 30, "node3 back at the balancer")


def test_balance_stops_cleanly_on_ctrl_c_and_fails_when_haproxy_dies(tmp_path: Path) -> None:
    """`wsgistack balance` runs HAProxy under the process manager: logs relayed, SIGINT (Ctrl-C)
    stops it with exit 0, HAProxy dying makes it exit non-zero."""
    for kill_haproxy in (False, True):
        run = tmp_path / ("crash" if kill_haproxy else "clean")
        run.mkdir()
        balancer = start_balancer(run, run, [Proc("n", None, run, run, "127.0.0.2", 9)])  # type: ignore[arg-type]
        try:
            wait_until(lambda: "serving http://127.0.0.1" in balancer.log(), 30, "balancer serving", [balancer])
            assert http(f"http://127.0.0.1:{balancer.stats_port}/").status == 200  # type: ignore[attr-defined]
            if kill_haproxy:
                [haproxy] = [pid for pid, cmd in children(balancer.proc.pid) if "haproxy" in cmd]
                os.kill(haproxy, signal.SIGKILL)
                assert balancer.proc.wait(timeout=30) != 0
                assert "haproxy was killed by signal SIGKILL unexpectedly" in balancer.log()
            else:
                balancer.proc.send_signal(signal.SIGINT)
                assert balancer.proc.wait(timeout=30) == 0, balancer.log()
                assert "haproxy |" in balancer.log() and "stopped" in balancer.log()
        finally:
            balancer.stop(signal.SIGKILL)


def test_a_second_balancer_on_a_port_in_use_fails_instead_of_sharing_it(tmp_path: Path) -> None:
    """HAProxy binds with SO_REUSEPORT by default: a second `wsgistack balance` on the same port
    used to start and silently take half the traffic. `noreuseport` makes it fail to bind."""
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    first = start_balancer(first_dir, first_dir, [Proc("n", None, first_dir, first_dir, "127.0.0.2", 9)])  # type: ignore[arg-type]
    try:
        wait_until(lambda: "serving http://127.0.0.1" in first.log(), 30, "first balancer serving", [first])
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        second = subprocess.run(
            [*WSGISTACK, "balance", str(second_dir), "--node", "127.0.0.2:9", "--host", "127.0.0.1",
             "--port", str(first.port), "--stats-port", str(free_port()), "--runtime-dir", str(second_dir / "rt")],
            capture_output=True, text=True, env=clean_env(), timeout=60, cwd=second_dir)
        out = second.stdout + second.stderr
        assert second.returncode != 0, out
        assert "cannot bind socket" in out and "Address already in use" in out, out
        assert first.proc.poll() is None and http(f"http://127.0.0.1:{first.stats_port}/").status == 200  # type: ignore[attr-defined]
    finally:
        first.stop(signal.SIGKILL)
