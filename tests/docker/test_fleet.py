"""Seed 004 in containers (issue 23): `wsgistack compose --fleet 3 --offline` -> `docker-compose up -d
--build` with locally built images only (the balancer's image, MariaDB's from Debian, the demo's
image the other Docker tests build), then faults through Docker under bounded load through the
balancer's container, and a container rollout of a changed page with `--verify`.

One `up` for the whole module: each test starts from every node UP and leaves it so. The load
is the rollout's own probe (wsgistack.ops.verify.Probe) with the demo's scenario: logged-in
users (sessions in MariaDB) reading, writing a post and reading it back (read-your-writes),
anonymous readers (the replica), half of the clients on new connections, half kept alive.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import re
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import WSGISTACK, clean_env
from tests.docker.conftest import docker
from wsgistack.ops.verify import Client, Probe, ProbeOptions, ProbeResult, baseline

# The first test brings the fleet up (images built, MariaDB initialised): more than the default 300 s.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]

COMPOSE = shutil.which("docker-compose")
NODES = ("node1", "node2", "node3")


def free_run(count: int, start: int, span: int = 3000) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (host networking), in
    [start, start + span): below the kernel's ephemeral range (32768 and up here), so no
    outgoing connection takes one between this check and the containers' binds."""
    offset = secrets.randbelow(span - count)
    for tries in range(span):
        port = start + (offset + tries * (count + 1)) % (span - count)
        sockets: list[socket.socket] = []
        try:
            for p in range(port, port + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError(f"no {count} free consecutive ports in {start}-{start + span}")


@dataclass
class Fleet:
    project: str
    dir: Path
    port: int
    stats_port: int
    node_port: int
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        return subprocess.run([COMPOSE, "-p", self.project, "-f", str(self.dir / "compose.yaml"), *args], cwd=self.dir,
                              capture_output=True, text=True, timeout=timeout, env={**self.env, **env})

    def container(self, service: str) -> str:
        out = self.compose("ps", "-q", service)
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""

    def stats(self) -> dict[str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.stats_port, timeout=5)
        try:
            conn.request("GET", "/;csv")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {r["svname"]: r["status"] for r in rows if r.get("pxname") == "nodes" and r["svname"] != "BACKEND"}

    def health(self, service: str) -> str:
        cid = self.container(service)
        out = docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                     cid, check=False) if cid else None
        return out.stdout.strip() if out else "absent"

    def wait(self, what: str, predicate: object, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = predicate()  # type: ignore[operator]
                if last is True:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.5)
        pytest.fail(f"{what}: not within {timeout}s (last: {last}); logs:\n{self.logs()}", pytrace=False)

    def all_up(self) -> bool:
        return self.stats() == {n: "UP" for n in NODES}

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60").stdout[-12000:]


@pytest.fixture(scope="module")
def fleet(demo_image: str, demo_context: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed")
    tag = uuid.uuid4().hex[:8]
    project = f"wstfleet{tag}"
    # The demo project the other Docker tests build (its Dockerfile and layers: node 1's build
    # is all cache), with the fleet's own .env instead of the canary one.
    work = tmp_path_factory.mktemp("fleet") / "demo"
    shutil.copytree(demo_context, work, symlinks=True)
    port, stats_port, node_port, db_port = free_run(1, 20000), free_run(1, 23000), free_run(3, 26000), free_run(2, 29000)
    out = subprocess.run([*WSGISTACK, "compose", str(work), "--fleet", "3", "--offline", "--network", "host",
                          "--host", "127.0.0.1", "--port", str(port), "--stats-port", str(stats_port),
                          "--node-port", str(node_port), "--db-port", str(db_port), "-t", demo_image,
                          "-o", str(work / "compose.yaml")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    secrets_env = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(40), "DB_PASSWORD": secrets.token_hex(12),
                   "DB_ROOT_PASSWORD": secrets.token_hex(12), "DB_REPLICATION_PASSWORD": secrets.token_hex(12),
                   "BALANCER_IMAGE": f"wstfleet-balancer-{tag}:test", "DB_IMAGE": f"wstfleet-mariadb-{tag}:test"}
    (work / ".env").write_text("".join(f"{k}={v}\n" for k, v in secrets_env.items()))
    (work / ".env").chmod(0o600)
    fleet = Fleet(project, work, port, stats_port, node_port, clean_env())
    try:
        started = time.monotonic()
        up = fleet.compose("up", "-d", "--build", timeout=1200)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-8000:]
        fleet.wait("3 nodes UP on the stats page", fleet.all_up, timeout=240)
        print(f"\nfleet {project} up in {time.monotonic() - started:.1f}s (ports: balancer {port}, stats {stats_port}, "
              f"nodes {node_port}-{node_port + 2}, MariaDB {db_port}/{db_port + 1})")
        for image in (demo_image, secrets_env["BALANCER_IMAGE"], secrets_env["DB_IMAGE"]):
            size = docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip()
            print(f"image {image}: {int(size) / 1e6:.1f} MB")
        yield fleet
    finally:
        down = fleet.compose("down", "-v", "--remove-orphans", timeout=300)
        if down.returncode != 0:
            print(down.stderr)
        for image in (secrets_env["BALANCER_IMAGE"], secrets_env["DB_IMAGE"], f"wstfleet-demo-{tag}:v2"):
            docker("image", "rm", "-f", image, check=False)


# --- the demo's scenario, through the rollout's own probe ----------------------------------


def demo_scenario(probe: Probe, client: Client, index: int) -> None:
    """A registered user (its session in MariaDB, so every node must know the shared secret)
    and an anonymous reader (never pinned: reads from the replica), cycling through reads, a
    0.3 s request, a post that must show on the next page (read-your-writes) and an upload."""
    name = f"u{uuid.uuid4().hex[:10]}"
    ok200 = lambda s, h, t: "" if s == 200 else f"{s} {t[:120]!r}"  # noqa: E731
    status, _, _ = client.request("GET", "/accounts/register/")
    assert status == 200, status
    password = "pw-" + uuid.uuid4().hex
    status, _, text = client.form("/accounts/register/", {"username": name, "password1": password, "password2": password})
    assert status == 302, (status, text[:300])
    anon = Client(probe.options, keepalive=client.keepalive)
    n = 0
    try:
        while True:
            n += 1
            if not probe.more():
                break
            probe.step(client, "GET /", "GET", "/", ok200)
            if not probe.more():
                break
            probe.step(anon, "GET / anonymous (replica)", "GET", "/", ok200)
            if not probe.more():
                break
            probe.step(client, "GET /hello", "GET", "/hello", lambda s, h, t: "" if s == 200 and t == "Hello, world!" else f"{s} {t[:80]!r}")
            if not probe.more():
                break
            probe.step(client, "GET /slow", "GET", "/slow?seconds=0.3", ok200)
            if not probe.more():
                break
            marker = f"post {name} #{n} {uuid.uuid4().hex[:8]}"
            posted, _ = probe.step(client, "POST /posts/new/", "POST", "/posts/new/",
                                   lambda s, h, t: "" if s == 302 and h.get("location") == "/" else f"{s} {h.get('location')} {t[:120]!r}",
                                   fields={"body": marker})
            if not probe.more():
                break
            if posted:  # read-your-writes: the very next page shows it, whichever node serves it
                probe.step(client, "GET / after POST (read-your-writes)", "GET", "/",
                           lambda s, h, t: "" if s == 200 and marker in t else f"{s} post missing: {marker}")
            if not probe.more():
                break
            probe.step(client, "POST /upload-size", "POST", "/upload-size",
                       lambda s, h, t: "" if s == 200 and t == "2048" else f"{s} {t[:80]!r}",
                       body=b"x" * 2048, headers={"Content-Type": "application/octet-stream"})
    finally:
        anon.close()
        probe.result.keepalive_retries += anon.retries


def demo_probe(fleet: Fleet, requests: int = 1500) -> Probe:
    return Probe(ProbeOptions(host="127.0.0.1", port=fleet.port, clients=6, pause=0.25, max_requests=requests,
                              time_limit=180), scenario=demo_scenario)


def report(label: str, result: ProbeResult) -> str:
    kinds: dict[str, list[int]] = {}
    for s in result.samples:
        kinds.setdefault(s.kind, [0, 0])[0 if s.ok else 1] += 1
    text = f"{label}: {result.line()}; by kind {kinds}; first failures {result.first_failures(8)}"
    print("\n" + text)
    return text


def fault(fleet: Fleet, label: str, service: str, how: str, down_for: float = 6.0) -> ProbeResult:
    """Bounded load through the balancer; ``docker kill|stop`` the service's container a few
    seconds in, ``docker start`` it ``down_for`` seconds later; the load goes on until every
    node is UP again (and the service healthy), then 3 s more."""
    fleet.wait("every node UP before the fault", fleet.all_up)
    container = fleet.container(service)
    with demo_probe(fleet) as probe:
        baseline(probe)
        time.sleep(2)
        probe.swap_started()
        done = docker(how, container, timeout=60)
        assert done.returncode == 0, done.stderr
        time.sleep(down_for)
        assert docker("start", container).returncode == 0
        fleet.wait(f"{service} healthy again", lambda: fleet.health(service) == "healthy")
        fleet.wait("every node UP again", fleet.all_up)
        probe.swap_ended()
        probe.stop(after=3)
    assert not probe.errors, probe.errors
    report(label, probe.result)
    return probe.result


# --- the tests -----------------------------------------------------------------------------


def test_fleet_comes_up_with_three_nodes_up_and_one_session_on_every_node(fleet: Fleet) -> None:
    assert fleet.all_up(), fleet.stats()
    for service in ("balancer", *NODES, "db-primary", "db-replica"):
        assert fleet.health(service) == "healthy", (service, fleet.health(service))
    # The balancer's own liveness answer (its HEALTHCHECK), whatever the nodes do.
    conn = http.client.HTTPConnection("127.0.0.1", fleet.port, timeout=5)
    conn.request("GET", "/_wsgistack/live")
    assert conn.getresponse().status == 200
    # One user logged in through the balancer is logged in on every node (the shared secret,
    # sessions in MariaDB), asked directly, node by node.
    client = Client(ProbeOptions(host="127.0.0.1", port=fleet.port), keepalive=False)
    name, password = f"s{uuid.uuid4().hex[:8]}", "pw-" + uuid.uuid4().hex
    assert client.request("GET", "/accounts/register/")[0] == 200
    assert client.form("/accounts/register/", {"username": name, "password1": password, "password2": password})[0] == 302
    for i in range(3):
        direct = Client(ProbeOptions(host="127.0.0.1", port=fleet.node_port + i), keepalive=False)
        direct.cookies = dict(client.cookies)
        status, _, page = direct.request("GET", "/")
        assert status == 200 and name in page, (f"node{i + 1}", status, page[:300])


def test_docker_kill_of_a_node_fails_no_get(fleet: Fleet) -> None:
    result = fault(fleet, "docker kill node2, then docker start", "node2", "kill")
    assert not result.failed("GET"), result.first_failures(10)
    assert len(result.of("POST")) > 20


def test_docker_stop_of_a_node_fails_no_request(fleet: Fleet) -> None:
    result = fault(fleet, "docker stop node3, then docker start", "node3", "stop")
    assert not result.failed(), result.first_failures(10)
    assert len(result.of("POST")) > 20


def test_docker_kill_of_the_replica_fails_no_get(fleet: Fleet) -> None:
    result = fault(fleet, "docker kill db-replica, then docker start", "db-replica", "kill")
    assert not result.failed("GET"), result.first_failures(10)
    assert any(s.kind.endswith("(replica)") for s in result.samples)


def test_container_rollout_of_a_changed_page_with_verify(fleet: Fleet, demo_image: str) -> None:
    """A new image tag (the post list's heading changed) rolled across the node containers with
    `wsgistack rollout --compose --verify`: its own probe's line says 0 failed, and so does the
    demo's load beside it; every node serves the new page; .env keeps the tag for a later `up`."""
    fleet.wait("every node UP before the rollout", fleet.all_up)
    v2 = f"wstfleet-demo-{fleet.project.removeprefix('wstfleet')}:v2"
    changed = fleet.dir.parent / "demo-v2"
    shutil.copytree(fleet.dir, changed, symlinks=True, ignore=shutil.ignore_patterns(".env", "compose.yaml"))
    page = changed / "templates" / "posts" / "post_list.html"
    page.write_text(page.read_text().replace("<h1>Latest posts</h1>", "<h1>Latest posts</h1>\n  <p>wstfleet release 2</p>"))
    built = subprocess.run([*WSGISTACK, "build", str(changed), "-t", v2, "--plain"], capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-6000:]
    cmd = [*WSGISTACK, "rollout", "--compose", str(fleet.dir / "compose.yaml"), "-p", fleet.project, "--image", v2,
           "--verify", "/", "--verify-post", "/upload-size"]
    with demo_probe(fleet, requests=3000) as probe:
        baseline(probe)
        probe.swap_started()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=fleet.env, cwd=fleet.dir)
        probe.swap_ended()
        probe.stop(after=2)
    print(done.stdout[-6000:], done.stderr[-3000:])
    report("rollout v1 -> v2 (the demo's load beside it)", probe.result)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    line = re.search(r"verify: (\d+) requests, (\d+) failed, p99 during the swap ([\d.]+) ms", done.stdout)
    assert line and line.group(2) == "0" and int(line.group(1)) > 50, done.stdout[-3000:]
    assert not probe.result.failed(), probe.result.first_failures(10)
    for i in range(3):
        direct = Client(ProbeOptions(host="127.0.0.1", port=fleet.node_port + i), keepalive=False)
        status, _, text = direct.request("GET", "/")
        assert status == 200 and "wstfleet release 2" in text, (f"node{i + 1}", status)
    assert f"APP_IMAGE={v2}" in (fleet.dir / ".env").read_text()
    # A later `up -d` keeps the new image: nothing is recreated.
    before = {n: fleet.container(n) for n in NODES}
    again = fleet.compose("up", "-d", "--no-build")
    assert again.returncode == 0, again.stderr
    assert {n: fleet.container(n) for n in NODES} == before, again.stderr
    images = {n: docker("inspect", "-f", "{{.Config.Image}}", before[n]).stdout.strip() for n in NODES}
    assert set(images.values()) == {v2}, images
    fleet.wait("every node UP after the rollout", fleet.all_up)


# --- a measurement, not a test (no timing assertions): WSGISTACK_FLEET_CPU=1 -----------------


def _cpu_seconds(container: str) -> float:
    """CPU time of every process the container ran (its cgroup: reaped children and health
    checks included), in seconds."""
    full = docker("inspect", "-f", "{{.Id}}", container).stdout.strip()
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{full}/cpuacct.usage",
                 f"/sys/fs/cgroup/system.slice/docker-{full}.scope/cpu.stat"):
        p = Path(path)
        if p.is_file():
            text = p.read_text()
            if path.endswith("cpuacct.usage"):
                return int(text) / 1e9
            return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6
    pytest.skip("no cgroup CPU accounting found for the containers")


def _hammer(port: int, total: int, clients: int = 2) -> float:
    """``total`` GET /hello, a new connection each, from ``clients`` threads; returns seconds."""
    import threading

    left = [total]
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/hello", headers={"Host": "localhost", "Connection": "close"})
            assert conn.getresponse().read() == b"Hello, world!"
            conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


@pytest.mark.skipif(not __import__("os").environ.get("WSGISTACK_FLEET_CPU"), reason="a measurement: WSGISTACK_FLEET_CPU=1")
def test_measure_the_balancer_containers_cpu_per_request(fleet: Fleet) -> None:
    """The balancer container's CPU per request it adds, as a ratio to a node's own CPU per
    request hit directly, same run; idle rates (health checks) measured and subtracted."""
    fleet.wait("every node UP", fleet.all_up)
    balancer, node1 = fleet.container("balancer"), fleet.container("node1")
    nodes = [fleet.container(n) for n in NODES]
    total = 1500

    def idle_rates(seconds: float = 10.0) -> tuple[float, float, float]:
        b0, n0, a0 = _cpu_seconds(balancer), _cpu_seconds(node1), sum(_cpu_seconds(c) for c in nodes)
        time.sleep(seconds)
        return ((_cpu_seconds(balancer) - b0) / seconds, (_cpu_seconds(node1) - n0) / seconds,
                (sum(_cpu_seconds(c) for c in nodes) - a0) / seconds)

    rows = []
    for _ in range(2):  # interleaved twice
        idle_b, idle_n, idle_all = idle_rates()
        n0 = _cpu_seconds(node1)
        took = _hammer(fleet.node_port, total)
        direct = (_cpu_seconds(node1) - n0 - idle_n * took) / total
        b0, a0 = _cpu_seconds(balancer), sum(_cpu_seconds(c) for c in nodes)
        took_b = _hammer(fleet.port, total)
        via_b = (_cpu_seconds(balancer) - b0 - idle_b * took_b) / total
        via_nodes = (sum(_cpu_seconds(c) for c in nodes) - a0 - idle_all * took_b) / total
        rows.append((direct, via_b, via_nodes, idle_b, idle_n))
        print(f"\nCPU per GET /hello (new connection each, {total} requests, 2 clients): node hit directly "
              f"{direct * 1e6:.0f} us; through the balancer: balancer container {via_b * 1e6:.0f} us, nodes "
              f"{via_nodes * 1e6:.0f} us; ratio balancer/node {via_b / direct:.2f} (idle: balancer "
              f"{idle_b * 1e3:.1f} ms/s, node {idle_n * 1e3:.1f} ms/s)")
