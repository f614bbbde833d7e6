"""Several real nodes (`wsgistack run` on 127.0.0.2-4, standing for three hosts) behind a real
`wsgistack balance`, and a bounded load generator that counts every failed request."""

from __future__ import annotations

import csv
import http.client
import io
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import WSGISTACK, clean_env, free_port, shared_dir

NODE_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")

FLEET_APP = '''\
"""A node's app for the fault tests: says which node and which version answered."""
import os
import time

VERSION = "{version}"


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path == "/whoami":
        import json
        data = json.dumps({k: environ.get(k) for k in ("REMOTE_ADDR", "HTTP_HOST", "wsgi.url_scheme",
                                                      "HTTP_X_FORWARDED_HOST", "HTTP_X_REQUEST_ID", "HTTP_PROXY")}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        text = "%s %s posted %d" % (VERSION, os.environ.get("NODE_NAME"), len(body))
    else:
        if path == "/slow":
            query = environ.get("QUERY_STRING") or ""
            time.sleep(float(query.split("seconds=", 1)[1]) if "seconds=" in query else 0.3)
        text = "%s %s rid=%s" % (VERSION, os.environ.get("NODE_NAME"), environ.get("HTTP_X_REQUEST_ID"))
    data = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
'''


def write_app(directory: Path, version: str) -> None:
    target = directory / "fleetapp.py"
    tmp = directory / ".fleetapp.py.tmp"
    tmp.write_text(FLEET_APP.replace("{version}", version))
    tmp.chmod(0o644)
    tmp.replace(target)


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    runtime_dir: Path
    host: str = ""
    port: int = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(timeout=10)
        return self.proc.returncode

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def common_port() -> int:
    """A port free on each of the three node addresses."""
    for _ in range(50):
        port = free_port(NODE_HOSTS[0])
        try:
            for host in NODE_HOSTS[1:]:
                import socket

                with socket.socket() as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise AssertionError("no common free port on 127.0.0.2-4")


def node_runtime_base(tmp_path: Path) -> Path:
    """The nodes' runtime dirs are BASE/<host> (`wsgistack rollout --node-runtime-dir BASE/{host}`)."""
    return shared_dir(tmp_path, "rt-nodes")


def start_node(tmp_path: Path, app_dir: Path, host: str, port: int, index: int, env: dict[str, str]) -> Proc:
    runtime = node_runtime_base(tmp_path) / host
    runtime.mkdir(mode=0o755, exist_ok=True)
    log_path = tmp_path / f"node-{host}.log"
    cmd = [*WSGISTACK, "run", str(app_dir), "--host", host, "--port", str(port), "--runtime-dir", str(runtime),
           "--processes", "2"]
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                            env=clean_env(NODE_NAME=f"node{index}", **env))
    return Proc(f"node{index}", proc, log_path, runtime, host, port)


def start_balancer(tmp_path: Path, app_dir: Path, nodes: list[Proc], env: dict[str, str] | None = None) -> Proc:
    port, stats = free_port(), free_port()
    runtime = shared_dir(tmp_path, "rt-balancer")
    log_path = tmp_path / "balancer.log"
    cmd = [*WSGISTACK, "balance", str(app_dir), "--host", "127.0.0.1", "--port", str(port), "--stats-port", str(stats),
           "--runtime-dir", str(runtime)]
    for node in nodes:
        cmd += ["--node", node.address]
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=clean_env(**(env or {})))
    balancer = Proc("balancer", proc, log_path, runtime, "127.0.0.1", port)
    balancer.stats_port = stats  # type: ignore[attr-defined]
    return balancer


def stats_rows(balancer: Proc) -> list[dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", balancer.stats_port, timeout=5)  # type: ignore[attr-defined]
    try:
        conn.request("GET", "/;csv")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return [dict(r) for r in csv.DictReader(io.StringIO(text.lstrip("# "))) if r.get("pxname")]


def node_states(balancer: Proc) -> dict[str, str]:
    return {r["svname"]: r["status"] for r in stats_rows(balancer) if r["pxname"] == "nodes" and r["svname"] != "BACKEND"}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, procs: list[Proc] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.proc.poll() is not None:
                raise AssertionError(f"{p.name} exited with {p.proc.returncode} while waiting for {what}:\n{p.log()}")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


# --- bounded load --------------------------------------------------------------------------


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    posts: int = 0
    failures: list[str] = field(default_factory=list)
    by_node: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> str:
        return (f"{self.sent} requests ({self.posts} POST), {self.ok} ok, {len(self.failures)} failed; "
                f"by node {dict(sorted(self.by_node.items()))}; first failures {self.failures[:5]}")


class Load:
    """`concurrency` clients, each a new connection per request (a browser's first request),
    alternating GET and, with ``posts``, POST; stops after ``total`` requests, after ``stop()``
    plus the tail, or at ``time_limit``."""

    def __init__(self, host: str, port: int, *, total: int = 3000, concurrency: int = 4, posts: bool = False,
                 path: str = "/", time_limit: float = 120.0) -> None:
        self.host, self.port, self.total, self.concurrency = host, port, total, concurrency
        self.posts, self.path, self.time_limit = posts, path, time_limit
        self.result = LoadResult()
        self._stop_at = float("inf")
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self._deadline = time.monotonic() + self.time_limit
        for i in range(self.concurrency):
            t = threading.Thread(target=self._client, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, after: float = 0.0) -> None:
        self._stop_at = time.monotonic() + after

    def __exit__(self, *exc: object) -> None:
        self.stop(0)
        for t in self._threads:
            t.join(timeout=self.time_limit + 30)

    def _next(self) -> int | None:
        with self.result.lock:
            now = time.monotonic()
            if self.result.sent >= self.total or now > self._stop_at or now > self._deadline:
                return None
            self.result.sent += 1
            return self.result.sent

    def _client(self, index: int) -> None:
        while (n := self._next()) is not None:
            post = self.posts and n % 2 == 0
            body = (f"payload-{n}-" * 8).encode() if post else None
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                # Every fourth request is slow, so some are in flight whatever the fault hits.
                path = "/slow" if n % 4 == 1 else self.path
                conn.request("POST" if post else "GET", path, body=body,
                             headers={"Host": "localhost", "Connection": "close"})
                resp = conn.getresponse()
                text = resp.read().decode(errors="replace")
                conn.close()
                good = resp.status == 200 and (not post or text.endswith(f"posted {len(body or b'')}"))
                problem = f"{'POST' if post else 'GET'} #{n}: {resp.status} {text[:80]!r}"
            except (OSError, http.client.HTTPException) as exc:
                good, text, problem = False, "", f"{'POST' if post else 'GET'} #{n}: {exc!r}"
            with self.result.lock:
                if post:
                    self.result.posts += 1
                if good:
                    self.result.ok += 1
                    node = text.split()[1] if len(text.split()) > 1 else "?"
                    self.result.by_node[node] = self.result.by_node.get(node, 0) + 1
                else:
                    self.result.failures.append(problem)


def burst(port: int, requests: list[bytes], *, concurrency: int, timeout: float = 60) -> Counter[str]:
    """Raw requests, ``concurrency`` connections at once (all at once when it is len(requests)),
    each on its own connection: the status each got, "closed" for a connection closed without
    an answer, or the error's name."""
    import asyncio
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, concurrency + 512):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, concurrency + 512), hard))

    async def one(gate: asyncio.Semaphore, data: bytes) -> str:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(data)
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(), timeout)
                finally:
                    writer.close()
                return answer[9:12].decode() or "closed"
            except Exception as exc:  # noqa: BLE001 - every failure counts, by kind
                return type(exc).__name__

    async def main() -> Counter[str]:
        gate = asyncio.Semaphore(concurrency)
        return Counter(await asyncio.gather(*(one(gate, data) for data in requests)))

    return asyncio.run(main())


class StateWatch:
    """Polls the balancer's view of every node while a test runs: any state but UP is kept."""

    def __init__(self, balancer: Proc, every: float = 0.2) -> None:
        self.balancer, self.every = balancer, every
        self.seen: list[tuple[float, dict[str, str]]] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                states = node_states(self.balancer)
            except OSError:
                states = {"stats page": "unreachable"}
            self.polls += 1
            if set(states.values()) != {"UP"}:
                self.seen.append((round(time.monotonic() - started, 1), states))
            self._stop.wait(self.every)

    def __enter__(self) -> StateWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def children(pid: int) -> Iterator[tuple[int, str]]:
    """(pid, command line) of pid's direct children."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            yield int(stat.parent.name), " ".join(c.decode(errors="replace") for c in cmdline)


def copy_app(tmp_path: Path, server: str = "uwsgi") -> Path:
    app_dir = shared_dir(tmp_path, "app")
    write_app(app_dir, "v1")
    # The nodes believe X-Forwarded-* from the balancer only; a stopping node answers readiness
    # "draining" for 3 s first, longer than the balancer's checks need to take it out (2 x 1 s).
    # In the file, not the environment: `wsgistack reload` (rollout) must render the same.
    # The nodes' workers are in the file too, so the balancer (reading the same file) knows them:
    # balancer.maxconn auto = 2 requests per node at once, the rest wait in HAProxy's queue.
    (app_dir / "wsgistack.toml").write_text(
        'drain_delay = 3\n[app]\ntarget = "fleetapp:application"\n[server]\ntrusted_proxies = ["127.0.0.1"]\n'
        f'app_server = "{server}"\n[uwsgi]\nprocesses = 2\n')
    return app_dir


__all__ = ["Load", "NODE_HOSTS", "StateWatch", "burst", "node_runtime_base", "Proc", "children", "common_port", "copy_app", "node_states", "shutil",
           "start_balancer", "start_node", "stats_rows", "wait_until", "write_app"]
