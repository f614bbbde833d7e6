"""The ops listener's pieces: nginx's datagrams, the kernel's connection count, basic auth."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry

from tests.conftest import free_port
from wsgistack.ops import listener as opsd
from wsgistack.app.spec import AppSpec
from wsgistack.config import load_config
from wsgistack.machine import Machine
from wsgistack.plan.stack import make_plan
from wsgistack.render.stack import ops_settings, render


def test_parse_nginx_datagrams() -> None:
    assert opsd.parse_line(b"<190>Nov 30 11:51:23 wsgistack: 200 0.004 0.005") == ("2xx", 0.004, 0.005)
    assert opsd.parse_line(b"<190>Nov 30 11:51:23 wsgistack: 404 - 0.000") == ("4xx", None, 0.0)
    # Two upstreams tried (a retry), and an internal redirect: the client waited for the sum.
    assert opsd.parse_line(b"<190>Nov 30 11:51:23 wsgistack: 502 0.001, 0.002 : 0.003 0.010")[1] == 0.006  # type: ignore[index]
    assert opsd.parse_line(b"garbage") is None
    assert opsd.parse_line(b"x: 2000 1 1") is None


def test_established_counts_only_nginx_ports(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue\n"
    (tmp_path / "tcp").write_text(header + "".join([
        "   0: 0100007F:1F40 0100007F:D2F0 01 00000000:00000000\n",  # :8000 established
        "   1: 0100007F:1F40 00000000:0000 0A 00000000:00000000\n",  # :8000 listening
        "   2: 0100007F:1F41 0100007F:D2F1 01 00000000:00000000\n",  # :8001
    ]))
    (tmp_path / "tcp6").write_text(header + "   0: 00000000000000000000000001000000:1F40 00000000000000000000000001000000:D2F2 01 0\n")
    assert opsd.established([8000], proc=str(tmp_path)) == 2


def test_ops_listener_is_off_by_default_and_rendered_when_on(tmp_path: Path) -> None:
    machine = Machine(cpus=2, memory_limit=None, somaxconn=4096, euid=1000, nginx="/usr/sbin/nginx",
                      python="/x/python")
    app = AppSpec(kind="wsgi", module="hello", attr="application", path=tmp_path)
    plan = make_plan(load_config(tmp_path, env={"WSGISTACK_RUNTIME_DIR": str(tmp_path / "rt")}), machine, app)
    assert not plan.runs_ops
    names = {f.path: f.content for f in render(plan)}
    assert "ops.json" not in names and "syslog:" not in names["nginx.conf"]
    env = {"WSGISTACK_RUNTIME_DIR": str(tmp_path / "rt"), "WSGISTACK_OPS__PORT": "9100", "WSGISTACK_OPS__BASIC_AUTH": "ops:s3cret"}
    plan = make_plan(load_config(tmp_path, env=env), machine, app)
    files = {f.path: f.content for f in render(plan)}
    assert "access_log syslog:server=127.0.0.1:9100,nohostname,tag=wsgistack wsgistack_ops;" in files["nginx.conf"]
    settings = json.loads(files["ops.json"])
    assert settings["host"] == "127.0.0.1" and settings["port"] == 9100
    assert "s3cret" not in files["ops.json"]  # a PBKDF2 hash, not the password
    table = json.loads(files["processes.json"])
    assert [p["name"] for p in table["processes"]] == ["uwsgi", "ops", "nginx"]


def test_basic_auth(tmp_path: Path) -> None:
    machine = Machine(cpus=2, memory_limit=None, somaxconn=4096, euid=1000, nginx="/usr/sbin/nginx",
                      python="/x/python")
    app = AppSpec(kind="wsgi", module="hello", attr="application", path=tmp_path)
    port = free_port()
    env = {"WSGISTACK_RUNTIME_DIR": str(tmp_path / "rt"), "WSGISTACK_OPS__PORT": str(port), "WSGISTACK_OPS__BASIC_AUTH": "ops:s3cret"}
    settings = ops_settings(make_plan(load_config(tmp_path, env=env), machine, app)).to_json()
    settings.update(nginx_udp=None, uwsgi_stats=None, manager_state=str(tmp_path / "none.json"))
    state = opsd.State(settings)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(opsd.Collector(state))  # type: ignore[arg-type]
    server = opsd._Server(("127.0.0.1", port), opsd.make_handler(state, registry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def status(auth: str | None) -> int:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
            if auth is not None:
                req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                    return resp.status
            except urllib.error.HTTPError as err:
                assert err.headers["WWW-Authenticate"] == 'Basic realm="wsgistack ops"'
                return err.code

        assert status(None) == 401
        assert status("ops:wrong") == 401
        assert status("other:s3cret") == 401
        assert status("ops:s3cret") == 200
        assert status("ops:s3cret") == 200  # the cached check
    finally:
        server.shutdown()
        server.server_close()


def test_counts_by_class_and_upstream_bucket() -> None:
    state = opsd.State({"manager_state": "/nonexistent", "nginx_udp": "x"})
    state.count_many([("2xx", 0.004, 0.005), ("2xx", 0.005, 0.006), ("5xx", 30.0, 30.0), ("4xx", None, 0.0)])
    assert state.requests["2xx"] == 2 and state.requests["5xx"] == 1 and state.requests["4xx"] == 1
    assert state.upstream_buckets[0] == 2  # both <= 5 ms
    assert sum(state.upstream_buckets) == 2 and state.upstream_count == 3  # 30 s: only in +Inf
    text = __import__("prometheus_client").generate_latest(_registry(state)).decode()
    assert 'wsgistack_http_upstream_seconds_bucket{le="0.005"} 2.0' in text
    assert 'wsgistack_http_upstream_seconds_bucket{le="+Inf"} 3.0' in text
    assert 'wsgistack_http_requests_total{status_class="2xx"} 2.0' in text


def _registry(state: opsd.State) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(opsd.Collector(state))  # type: ignore[arg-type]
    return registry


# --- the status page's drain marker and the balancer's listener (issue 24 item 6) -----------------


def test_status_believes_the_page_drain_marker_only_as_the_app_users_regular_file(tmp_path: Path) -> None:
    """private/drain is the app's user's (the ops listener makes it): `status` (root) looks at
    it with lstat under the trust rule; a planted link, even to a file that exists, is not
    believed and is said; `undrain` removes a link itself, never its target."""
    from wsgistack.layout import Paths
    from wsgistack.ops import control

    paths = Paths(tmp_path / "rt")
    paths.runtime.mkdir()
    paths.private.mkdir(mode=0o700)
    assert control.status(paths).draining is False
    paths.app_drain.touch(mode=0o644)
    st = control.status(paths)
    assert st.draining is True and st.refused == ()
    paths.app_drain.unlink()
    victim = tmp_path / "root-only"
    victim.write_text("keep")
    paths.app_drain.symlink_to(victim)
    st = control.status(paths)
    assert st.draining is False and "symbolic link" in st.refused[0]
    control.undrain(paths)
    assert not paths.app_drain.is_symlink() and victim.read_text() == "keep"
    paths.app_drain.mkdir()
    try:
        control.undrain(paths)
        raise AssertionError("a directory at private/drain was removed or ignored")
    except control.WsgistackError as exc:
        assert exc.id == "trust.E001"
    assert paths.app_drain.is_dir()


def test_the_listener_makes_its_marker_never_through_a_link(tmp_path: Path) -> None:
    marker, cli = tmp_path / "drain", tmp_path / "cli-drain"
    state = opsd.State({"app_drain": str(marker), "drain": str(cli), "manager_state": str(tmp_path / "none.json")})
    assert state.draining() == {"page": False, "cli": False}
    assert state.set_drain(True) == {"page": True, "cli": False}
    assert state.set_drain(False) == {"page": False, "cli": False}
    victim = tmp_path / "victim"
    marker.symlink_to(victim)
    try:
        state.set_drain(True)
        raise AssertionError("the marker was made through a link")
    except OSError:
        pass
    assert not victim.exists()


def test_the_balancers_listener_is_rendered_beside_haproxy_without_the_password(tmp_path: Path) -> None:
    from wsgistack.plan.balancer import make_balancer_plan
    from wsgistack.render.balancer import render_balancer

    machine = Machine(cpus=2, memory_limit=None, somaxconn=4096, euid=1000, nginx=None, python="/x/python",
                      haproxy="/usr/sbin/haproxy")
    env = {"WSGISTACK_RUNTIME_DIR": str(tmp_path / "rt"), "WSGISTACK_BALANCER__NODES": "127.0.0.1:8001 127.0.0.1:8002"}
    files = {f.path: f for f in render_balancer(make_balancer_plan(load_config(tmp_path, env=env), machine))}
    assert "ops.json" not in files
    assert [p["name"] for p in json.loads(files["processes.json"].content)["processes"]] == ["haproxy"]
    env.update(WSGISTACK_OPS__PORT="9100", WSGISTACK_OPS__BASIC_AUTH="ops:s3cret")
    files = {f.path: f for f in render_balancer(make_balancer_plan(load_config(tmp_path, env=env), machine))}
    table = json.loads(files["processes.json"].content)
    ops = next(p for p in table["processes"] if p["name"] == "ops")
    assert ops["argv"] == ["/x/python", "-m", "wsgistack.ops.listener", str(tmp_path / "rt" / "ops.json")]
    assert table["state_file"] == str(tmp_path / "rt" / "manager.json")
    settings = json.loads(files["ops.json"].content)
    assert settings["haproxy_socket"] == str(tmp_path / "rt" / "haproxy.sock") and settings["summary"]["role"] == "balancer"
    assert files["ops.json"].mode == 0o600
    assert not any("s3cret" in f.content for f in files.values())  # a PBKDF2 hash only


def test_watch_view_is_uwsgitop_like() -> None:
    import time

    from wsgistack.cli.status_cmd import watch_view
    from wsgistack.ops.control import Status

    workers = [{"id": 1, "pid": 11, "requests": 30, "status": "busy", "avg_rt": 2500, "rss": 20 << 20},
               {"id": 2, "pid": 12, "requests": 10, "status": "idle", "avg_rt": 1000, "rss": 10 << 20}]
    st = Status(runtime_dir="/rt", nginx_pid=5, uwsgi_pid=6, stats={"workers": workers}, draining=True,
                processes=({"name": "tick", "kind": "background", "state": "running", "pid": 9, "restarts": 0,
                            "since": time.time() - 75},), listen_queue=(3, 100))
    screen = watch_view(st, {11: 20, 12: 10}, 2.0)
    first, second = screen.splitlines()[:2]
    assert "up 1m1" in first and "DRAINING" in first
    assert "workers 1/2 busy" in second and "req/s 5.0" in second and "requests 40" in second and "listen queue 3/100" in second
    row = next(line for line in screen.splitlines() if line.split()[:1] == ["1"])
    assert row.split()[:8] == ["1", "75.0", "11", "30", "5.0", "0", "busy", "2.5"]
    assert "tick" in screen
