"""The ops listener in `wsgistack run`: /metrics, /status.json, and /status in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, SERVERS, WSGISTACK, Stack, clean_env, free_port, http, server_env, start_stack

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
    canvases = re.findall(r'<canvas id="c-([a-z_0-9]+)"[^>]*data-points[^>]*>', dom)  # the drawn ones
    assert set(canvases) == {"rps", "classes", "latency_ms", "busy", "queue", "rss_mb"}  # 5xx: in "classes"
    for tag in re.findall(r"<canvas [^>]*data-points[^>]*>", dom):
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


# --- the page's panels and controls, in a real browser driven by chromedriver (issue 24 item 6) ---

AUTH = "ops:s3cret"


def post(url: str, token: str | None = None, *, auth: str | None = AUTH, origin: str | None = None) -> tuple[int, dict]:
    import base64

    req = urllib.request.Request(url, data=b"", method="POST")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    if token is not None:
        req.add_header("X-Wsgistack-Token", token)
    if origin is not None:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        body = err.read()
        return err.code, json.loads(body) if body.startswith(b"{") else {}


def traffic(url: str, rounds: int = 12) -> None:
    """Each status class, spread over several 2-second samples."""
    for _ in range(rounds):
        for path in ("/hello", "/hello", "/nope", "/boom"):
            http(url + path)
        time.sleep(0.5)


@pytest.mark.parametrize("server", SERVERS)
def test_status_page_panels_and_drain_from_the_page(server: str, tmp_path: Path, stacks: list[Stack]) -> None:
    """With either app server: the page's panels, and its Drain button behind basic auth makes
    the shim's readiness (uWSGI's or granian's) answer 503 through nginx."""
    from tests.webdriver import Browser

    port = free_port()
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server, WSGISTACK_OPS__PORT=str(port), WSGISTACK_OPS__BASIC_AUTH=AUTH),
                        ready_path="/hello")
    stacks.append(stack)
    ops = f"http://127.0.0.1:{port}"
    traffic(stack.url)
    time.sleep(2.2)
    with Browser(1280, 1300) as browser:
        browser.basic_auth(AUTH)
        browser.open(ops + "/status")
        assert browser.wait("return document.body.dataset.updates && +document.querySelector('#c-classes').dataset.points >= 3")
        charts = browser.run("return Object.fromEntries([...document.querySelectorAll('canvas')].filter(c => !c.parentElement.hidden)"
                             ".map(c => [c.id.slice(2), "
                             "{points: +c.dataset.points, painted: +c.dataset.painted, x: c.dataset.xticks, y: c.dataset.yticks, "
                             "legend: [...c.parentElement.querySelectorAll('.legend span')].map(e => e.textContent)}]))")
        assert set(charts) == {"rps", "classes", "latency_ms", "busy", "queue", "rss_mb"}  # not the balancer's
        for name, chart in charts.items():
            assert chart["points"] >= 2 and chart["painted"] > 100, (name, chart)
            # A time axis: the clock at the window's start, middle and end.
            assert re.fullmatch(r"\d\d:\d\d:\d\d,\d\d:\d\d:\d\d,\d\d:\d\d:\d\d", chart["x"]), (name, chart)
        for name in ("busy", "queue"):  # counts: whole-number ticks only
            assert all(float(v).is_integer() for v in charts[name]["y"].split(",")), charts[name]
        assert charts["latency_ms"]["legend"] == ["average", "p95"]
        assert {"2xx", "4xx", "5xx"} <= set(charts["classes"]["legend"]), charts["classes"]
        assert charts["busy"]["legend"] == ["busy", "workers"]
        totals = browser.run("return Object.fromEntries([...document.querySelectorAll('#totals .total')].map(e => "
                             "[e.querySelector('span').textContent, +e.querySelector('b').textContent.replace(/,/g, '')]))")
        assert totals["4xx"] >= 12 and totals["5xx"] >= 12 and totals["2xx"] >= 24, totals
        assert totals["requests"] >= totals["2xx"] + totals["4xx"] + totals["5xx"]
        assert re.match(r"up \d+(s|m)", browser.run("return document.getElementById('uptime').textContent"))
        assert browser.run("return document.getElementById('readiness').textContent") == "ready"
        shot = browser.screenshot()
        (tmp_path / "status-page.png").write_bytes(shot)
        # Drain from the page: readiness answers 503 through nginx; undrain: 200 again.
        browser.click("#drain")
        assert browser.wait("return document.getElementById('readiness').textContent == 'draining'")
        assert http(stack.url + "/_wsgistack/ready").status == 503
        shown = subprocess.run([*WSGISTACK, "status", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir), "--json"],
                               capture_output=True, text=True, env=clean_env(), timeout=30)
        # Believed as the app's user's own regular file (the listener made it), not refused.
        assert json.loads(shown.stdout)["draining"] is True and "not believed" not in shown.stderr, shown.stderr
        assert (stack.runtime_dir / "private" / "drain").stat().st_uid == (stack.runtime_dir / "private").stat().st_uid
        browser.click("#undrain")
        assert browser.wait("return document.getElementById('readiness').textContent == 'ready'")
        assert http(stack.url + "/_wsgistack/ready").status == 200
    # CSRF: the token the page got, the Origin its own; another site's page has neither.
    token = json.loads(get(ops + "/status.json", AUTH)[1])["csrf"]
    assert token and post(ops + "/drain")[0] == 403  # no token
    assert post(ops + "/drain", "forged")[0] == 403
    assert post(ops + "/drain", token, origin="http://evil.example")[0] == 403
    assert post(ops + "/drain", token, auth=None)[0] == 401
    assert http(stack.url + "/_wsgistack/ready").status == 200  # none of those drained it
    assert post(ops + "/drain", token, origin=ops) == (200, {"draining": {"page": True, "cli": False}})
    assert http(stack.url + "/_wsgistack/ready").status == 503
    undrain = subprocess.run([*WSGISTACK, "undrain", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir)],
                             capture_output=True, text=True, env=clean_env(), timeout=30)
    assert undrain.returncode == 0, undrain.stderr  # `wsgistack undrain` removes the page's marker too
    assert http(stack.url + "/_wsgistack/ready").status == 200


def test_without_basic_auth_the_page_has_no_controls(ops_stack: tuple[Stack, str]) -> None:
    stack, ops = ops_stack
    data = json.loads(get(ops + "/status.json")[1])
    assert data["controls"] is False and data["csrf"] is None
    code, body = post(ops + "/drain", "anything", auth=None)
    assert code == 403 and "needs ops.basic_auth" in body["error"]
    assert http(stack.url + "/_wsgistack/ready").status == 200


def test_status_watch_is_a_live_view_of_the_workers(ops_stack: tuple[Stack, str]) -> None:
    stack, _ops = ops_stack
    import threading

    done = threading.Event()

    def busy() -> None:
        while not done.is_set():
            http(stack.url + "/hello")

    loader = threading.Thread(target=busy)
    loader.start()
    try:
        out = subprocess.run([*WSGISTACK, "status", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir), "--watch",
                              "--interval", "1", "--count", "3"], capture_output=True, text=True, env=clean_env(), timeout=60)
    finally:
        done.set()
        loader.join(10)
    assert out.returncode == 0, out.stderr
    frames = out.stdout.split("wsgistack ")[1:]
    assert len(frames) == 3, out.stdout
    for frame in frames:
        assert "listen queue " in frame and "WID" in frame and "RPS" in frame and "RESPWN" in frame
        assert re.search(r"^\s+1 +[0-9.]+ +\d+ +\d+ ", frame, re.M), frame  # worker 1's row
    # Requests per second from one view to the next: a number once there are two views.
    assert re.search(r"^\s+\d+ +[0-9.]+ +\d+ +\d+ +[0-9]+\.[0-9] ", frames[-1], re.M), frames[-1]
    assert re.search(r"req/s [1-9]", frames[-1]), frames[-1]
    assert "tick" in frames[-1]  # the background process


def test_beside_the_balancer_the_page_shows_the_nodes_and_drains_one(tmp_path: Path, stacks: list[Stack]) -> None:
    """The listener beside `wsgistack balance` (ops.port in its config): HAProxy's view of each
    node (state, check, sessions, retries) from its runtime API, and drain/ready per node."""
    from tests.integration.fleet import Proc, stats_rows, wait_until
    from tests.webdriver import Browser

    nodes = []
    for i in range(2):
        sub = tmp_path / f"n{i}"
        sub.mkdir()
        nodes.append(start_stack(sub, EXAMPLES / "hello", ready_path="/hello"))
        stacks.append(nodes[-1])
    ops_port, port, stats = free_port(), free_port(), free_port()
    runtime = Path(tempfile.mkdtemp(prefix="wst-rt-balancer-", dir="/tmp"))
    cmd = [*WSGISTACK, "balance", str(EXAMPLES / "hello"), "--host", "127.0.0.1", "--port", str(port), "--stats-port", str(stats),
           "--runtime-dir", str(runtime), *[a for n in nodes for a in ("--node", f"127.0.0.1:{n.port}")]]
    log_path = tmp_path / "balancer.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                env=clean_env(WSGISTACK_OPS__PORT=str(ops_port), WSGISTACK_OPS__BASIC_AUTH=AUTH))
    balancer = Proc("balancer", proc, log_path, runtime, "127.0.0.1", port)
    balancer.stats_port = stats  # type: ignore[attr-defined]
    ops = f"http://127.0.0.1:{ops_port}"
    try:
        wait_until(lambda: get(ops + "/status.json", AUTH)[0] == 200 and all(
            n["state"] == "UP" for n in (json.loads(get(ops + "/status.json", AUTH)[1])["balancer"] or {}).get("nodes", [{}])),
            30, "the balancer's nodes UP on the page", [balancer])
        for _ in range(20):
            assert http(f"http://127.0.0.1:{port}/hello").status == 200
        data = json.loads(get(ops + "/status.json", AUTH)[1])
        view = data["balancer"]
        assert [n["name"] for n in view["nodes"]] == ["node1", "node2"]
        assert sum(n["total"] for n in view["nodes"]) >= 20 and view["frontend"]["total"] >= 20
        assert {n["address"] for n in view["nodes"]} == {f"127.0.0.1:{n.port}" for n in nodes}
        assert all(n["check"].startswith("L7OK") for n in view["nodes"]), view
        assert data["controls"] is True and data["summary"]["role"] == "balancer"
        with Browser(1280, 900) as browser:
            browser.basic_auth(AUTH)
            browser.open(ops + "/status")
            assert browser.wait("return !document.getElementById('balancer-card').hidden && "
                                "document.querySelectorAll('#balancer tbody tr').length == 2")
            assert browser.wait("return +document.getElementById('c-bal_sessions').dataset.points >= 2")
            shown = browser.run("return [...document.querySelectorAll('canvas')].filter(c => !c.parentElement.hidden).map(c => c.id)")
            assert shown == ["c-bal_rps", "c-bal_sessions"]  # no nginx, no app server here
            assert browser.run("return document.getElementById('c-bal_sessions').dataset.yticks").split(",")[0] == "0"
            rows = browser.run("return [...document.querySelectorAll('#balancer tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
            assert rows[0][0] == "node1" and rows[0][2] == "UP" and rows[0][-1] == "Drain", rows
            browser.click("#balancer button[data-node=node1]")
            assert browser.wait("return document.querySelector('#balancer tbody tr').cells[2].textContent == 'DRAIN'")
            (tmp_path / "status-page-balancer.png").write_bytes(browser.screenshot())
        states = {r["svname"]: r["status"] for r in stats_rows(balancer) if r["pxname"] == "nodes"}
        assert states["node1"] == "DRAIN" and states["node2"] == "UP"
        token = json.loads(get(ops + "/status.json", AUTH)[1])["csrf"]
        assert post(ops + "/balancer/ready?node=node1", token)[0] == 200
        assert post(ops + "/balancer/drain?node=nope", token)[0] == 409
        states = {r["svname"]: r["status"] for r in stats_rows(balancer) if r["pxname"] == "nodes"}
        assert states["node1"] == "UP"
    finally:
        assert balancer.stop() == 0, balancer.log()
        shutil.rmtree(runtime, ignore_errors=True)
