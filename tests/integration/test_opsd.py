"""The ops listener in `wsgistack run`: /metrics, /status.json, and /status in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, SERVERS, Stack, clean_env, free_port, http, server_env, start_stack

pytestmark = pytest.mark.integration

METRICS = (
    "wsgistack_http_requests_total", "wsgistack_http_upstream_seconds_bucket", "wsgistack_nginx_active_connections",
    "wsgistack_uwsgi_workers", "wsgistack_uwsgi_listen_queue", "wsgistack_uwsgi_listen_queue_overflows_total",
    "wsgistack_uwsgi_worker_rss_bytes", "wsgistack_uwsgi_worker_respawns_total", "wsgistack_uwsgi_harakiri_total",
    "wsgistack_process_restarts_total",
)
# granian has no stats socket: its workers from /proc and the shim's counters.
GRANIAN_METRICS = (
    "wsgistack_http_requests_total", "wsgistack_http_upstream_seconds_bucket", "wsgistack_nginx_active_connections",
    "wsgistack_granian_workers", "wsgistack_granian_worker_rss_bytes", "wsgistack_granian_worker_requests_total",
    "wsgistack_granian_worker_in_flight", "wsgistack_process_restarts_total",
)


def get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if auth:
        import base64

        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


@pytest.fixture(scope="module", params=SERVERS)
def ops_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Stack, str]:
    tmp = tmp_path_factory.mktemp(f"ops-{request.param}")
    port = free_port()
    env = server_env(request.param, WSGISTACK_OPS__PORT=str(port),
                     WSGISTACK_PROCESSES__TICK__COMMAND="python -c 'import time; time.sleep(3600)'")
    stack = start_stack(tmp, EXAMPLES / "hello", env=env, ready_path="/hello")
    stack.extra["server"] = request.param
    try:
        yield stack, f"http://127.0.0.1:{port}"
    finally:
        stack.stop()


def test_metrics_count_requests_across_workers(ops_stack: tuple[Stack, str]) -> None:
    stack, ops = ops_stack
    for _ in range(30):
        assert http(stack.url + "/hello").status == 200
    for _ in range(5):
        http(stack.url + "/nope")
    http(stack.url + "/_wsgistack/live")  # never counted
    deadline = time.monotonic() + 10
    while True:
        status, body = get(ops + "/metrics")
        assert status == 200
        text = body.decode()
        counted = (metric(text, "wsgistack_http_requests_total", '{status_class="2xx"}') >= 30
                   and metric(text, "wsgistack_http_requests_total", '{status_class="4xx"}') >= 5
                   and metric(text, "wsgistack_http_upstream_seconds_count") >= 35)
        if counted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    server = stack.extra["server"]
    for name in GRANIAN_METRICS if server == "granian" else METRICS:
        assert name in text, name
    assert metric(text, "wsgistack_http_requests_total", '{status_class="2xx"}') >= 30
    assert metric(text, "wsgistack_http_requests_total", '{status_class="4xx"}') >= 5
    assert metric(text, "wsgistack_http_upstream_seconds_count") >= 35
    prefix = f"wsgistack_{server}"
    assert metric(text, f"{prefix}_workers", '{state="idle"}') + metric(text, f"{prefix}_workers", '{state="busy"}') >= 2
    assert metric(text, "wsgistack_process_restarts_total", '{process="tick"}') == 0
    assert metric(text, "wsgistack_process_up", '{process="nginx"}') == 1
    assert metric(text, f"{prefix}_worker_rss_bytes", '{worker="1"}') > 1_000_000
    if server == "granian":  # the shim counts what each worker served (written every half second)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = get(ops + "/metrics")[1].decode()
            served = sum(metric(text, f"{prefix}_worker_requests_total", f'{{worker="{w}"}}') for w in (1, 2))
            if served >= 30:
                break
            time.sleep(0.2)
        assert served >= 30, text


def test_status_json_has_history_processes_and_config(ops_stack: tuple[Stack, str]) -> None:
    stack, ops = ops_stack
    for _ in range(10):
        http(stack.url + "/hello")
        time.sleep(0.3)
    time.sleep(2.2)
    status, body = get(ops + "/status.json")
    assert status == 200
    data = json.loads(body)
    assert len(data["history"]) >= 2
    assert any(s["rps"] > 0 for s in data["history"])
    assert {p["name"] for p in data["processes"]} >= {stack.extra["server"], "tick", "ops", "nginx"}
    assert data["app_server"] == stack.extra["server"]
    assert data["summary"]["role"] == "all" and data["workers"]
    assert get(ops + "/nothing")[0] == 404


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("chromium is missing (make system-deps installs it): the status page cannot be tested in a browser")


def test_status_page_renders_charts_with_data_in_a_browser(ops_stack: tuple[Stack, str], tmp_path: Path) -> None:
    stack, ops = ops_stack
    for _ in range(14):  # traffic across three or more 2-second samples (latency has points only there)
        http(stack.url + "/hello")
        time.sleep(0.4)
    time.sleep(2.2)
    profile = tempfile.mkdtemp(prefix="wst-chromium-")
    try:
        out = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=6000", "--dump-dom", ops + "/status"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    dom = out.stdout
    assert 'data-updates="' in dom, out.stderr[-2000:]
    canvases = re.findall(r'<canvas id="c-([a-z_0-9]+)"[^>]*>', dom)
    assert set(canvases) == {"rps", "latency_ms", "error_rate", "busy", "queue", "rss_mb"}
    for tag in re.findall(r"<canvas [^>]*>", dom):
        points = int(re.search(r'data-points="(\d+)"', tag).group(1))
        painted = int(re.search(r'data-painted="(\d+)"', tag).group(1))
        assert points >= 2 and painted > 100, tag
    # The process table and the configuration summary are filled in.
    assert "<td>tick</td>" in dom and "<td>nginx</td>" in dom
    assert "processes x" in dom
    name = "granian" if stack.extra["server"] == "granian" else "uWSGI"
    assert f'<span id="server-name">{name}</span> workers' in dom
    workers = re.search(r'<table id="workers">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert workers and workers.group(1).count("<tr>") >= 2, dom[-3000:]  # one row per worker


def test_the_listen_queue_is_the_kernels_on_the_unix_socket_under_overload(tmp_path: Path, stacks: list[Stack]) -> None:
    """Issue 24 item 5: uWSGI reports no queue (0) and no capacity (0) for a unix socket, so the
    metric and the chart read 0 while 40 clients waited on 2 busy workers. The kernel's
    sock_diag count is what they show now; and a worker that never respawned has 0 respawns."""
    import os
    import signal
    import threading

    from tests.conftest import WSGISTACK, load, wait_in_flight

    port = free_port()
    stack = start_stack(tmp_path, EXAMPLES / "hello", "--processes", "2",
                        env=clean_env(WSGISTACK_OPS__PORT=str(port), WSGISTACK_UWSGI__THREADS="1"), ready_path="/hello")
    stacks.append(stack)
    ops = f"http://127.0.0.1:{port}"
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    text = get(ops + "/metrics")[1].decode()
    assert metric(text, "wsgistack_uwsgi_listen_queue_limit") == min(4096, somaxconn)  # _max read 0
    assert "wsgistack_uwsgi_listen_queue_max" not in text
    for worker in ("1", "2"):
        assert metric(text, "wsgistack_uwsgi_worker_respawns_total", f'{{worker="{worker}"}}') == 0  # it read 1

    # Both workers busy for a while, 20 more requests behind them: all 20 wait in the queue.
    slow = [threading.Thread(target=http, args=(stack.url + "/slow?seconds=8",), kwargs={"timeout": 60}) for _ in range(2)]
    for t in slow:
        t.start()
    wait_in_flight(stack.runtime_dir, count=2)
    queued: dict[str, list[int | str]] = {}
    behind = threading.Thread(target=lambda: queued.update(statuses=load(stack.url + "/hello", 20, clients=20, timeout=60)))
    behind.start()
    seen = {"metrics": 0.0, "status.json": 0, "status": 0}
    deadline = time.monotonic() + 20
    while min(seen.values()) < 20 and time.monotonic() < deadline:
        seen["metrics"] = max(seen["metrics"], metric(get(ops + "/metrics")[1].decode(), "wsgistack_uwsgi_listen_queue"))
        seen["status.json"] = max(seen["status.json"], json.loads(get(ops + "/status.json")[1])["listen_queue"] or 0)
        st = subprocess.run([*WSGISTACK, "status", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir), "--json"],
                            capture_output=True, text=True, env=clean_env(), timeout=30)
        seen["status"] = max(seen["status"], json.loads(st.stdout)["listen_queue"] or 0)
        time.sleep(0.1)
    assert min(seen.values()) >= 20, seen
    behind.join(60)
    for t in slow:
        t.join(60)
    assert queued["statuses"] == [200] * 20
    # The page's chart has the queue in its samples too.
    time.sleep(2.2)
    history = json.loads(get(ops + "/status.json")[1])["history"]
    assert max(s["queue"] or 0 for s in history) > 0, history

    # A worker killed is respawned: its count is 1, the other's still 0.
    data = json.loads(get(ops + "/status.json")[1])
    victim = next(w for w in data["workers"] if w["id"] == 1)
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = get(ops + "/metrics")[1].decode()
        if metric(text, "wsgistack_uwsgi_worker_respawns_total", '{worker="1"}') == 1:
            break
        time.sleep(0.2)
    assert metric(text, "wsgistack_uwsgi_worker_respawns_total", '{worker="1"}') == 1
    assert metric(text, "wsgistack_uwsgi_worker_respawns_total", '{worker="2"}') == 0
