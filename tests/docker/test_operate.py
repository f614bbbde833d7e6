"""Operating the image: background processes (role all and role worker), JSON logs, request
ids and the ops listener, in the demo image the session builds once (conftest)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import WSGISTACK, free_port
from wsgistack.render.kube import HEALTHCHECK
from tests.docker.conftest import Container, docker, unique, wait_http

pytestmark = pytest.mark.docker

TICKER = "python -c 'import os, time; print(\"tick in\", os.getcwd(), flush=True); time.sleep(3600)'"


def wait_for(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_json_logs_request_id_ops_listener_and_a_background_process(run_container: type[Container]) -> None:
    ops = free_port()
    c = run_container(env={"WSGISTACK_SERVER__LOG_FORMAT": "json", "WSGISTACK_OPS__PORT": str(ops),
                           "WSGISTACK_PROCESSES__TICKER__COMMAND": TICKER})
    wait_http(c.url + "/", container=c)
    with urllib.request.urlopen(c.url + "/", timeout=10) as resp:
        rid = resp.headers["X-Request-ID"]
    assert rid and len(rid) == 32
    wait_for(lambda: b"wsgistack_http_requests_total" in urllib.request.urlopen(f"http://127.0.0.1:{ops}/metrics", timeout=5).read())
    with urllib.request.urlopen(f"http://127.0.0.1:{ops}/status", timeout=5) as resp:
        assert b"<canvas" in resp.read()
    wait_for(lambda: rid in c.logs())
    lines = [line for line in c.logs().splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]  # every line of `docker logs` is JSON
    assert any(o.get("process") == "nginx" and o.get("request_id") == rid for o in objects)
    assert any(o.get("process") == "ticker" and o.get("message") == "tick in /app" for o in objects)
    assert {o["process"] for o in objects} >= {"wsgistack", "uwsgi", "nginx", "ops", "ticker"}


def test_worker_role_runs_one_background_process_alone(run_container: type[Container]) -> None:
    c = run_container(env={"WSGISTACK_ROLE": "worker", "WSGISTACK_PROCESS": "ticker",
                           "WSGISTACK_PROCESSES__TICKER__COMMAND": TICKER})
    wait_for(lambda: "ticker | tick in /app" in c.logs(), timeout=60)
    assert "nginx" not in docker("exec", c.name, "sh", "-c", "cat /proc/[0-9]*/comm").stdout
    health = docker("exec", c.name, *HEALTHCHECK, check=False)  # the image's own HEALTHCHECK command
    assert health.returncode == 0, health.stderr
    docker("stop", "-t", "10", c.name)
    assert c.wait_exit(5) == 0, c.logs()  # 0, not 137: it stopped within Docker's 10 s, not killed


def test_split_compose_runs_each_background_process_in_its_own_worker(
    demo_context: Path, tmp_path: Path, docker_engine: None
) -> None:
    """`wsgistack compose --split` with [processes.ticker]: a worker-ticker service from the
    same image (role worker) beside app and web."""
    ctx = tmp_path / "demo"
    shutil.copytree(demo_context, ctx)
    with open(ctx / "wsgistack.toml", "a") as fh:
        fh.write(f"\n[processes.ticker]\ncommand = {json.dumps(TICKER)}\n")
    tag = unique("ops") + ":test"
    build = subprocess.run([*WSGISTACK, "build", str(ctx), "-t", tag, "--plain", "--force"], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    port = free_port()
    out = subprocess.run([*WSGISTACK, "compose", str(ctx), "--split", "-t", tag, "--host", "127.0.0.1", "--port", str(port)],
                         capture_output=True, text=True, check=True)
    assert "worker-ticker:" in out.stdout
    compose = tmp_path / "compose.yaml"
    compose.write_text(out.stdout)
    project = unique("work").replace("-", "")
    base = ["docker-compose", "-p", project, "-f", str(compose), "--project-directory", str(ctx)]
    try:
        up = subprocess.run([*base, "up", "-d", "--no-build"], capture_output=True, text=True, timeout=240)
        assert up.returncode == 0, up.stderr
        wait_http(f"http://127.0.0.1:{port}/", timeout=120)
        logs = lambda: subprocess.run([*base, "logs", "--no-color", "worker-ticker"], capture_output=True, text=True).stdout  # noqa: E731
        wait_for(lambda: "ticker | tick in /app" in logs(), timeout=60)
        # The web and app containers do not run it (role web/app run no background process).
        everything = subprocess.run([*base, "logs", "--no-color", "app", "web"], capture_output=True, text=True).stdout
        assert "tick in" not in everything
    finally:
        subprocess.run([*base, "down", "-v", "--remove-orphans", "-t", "10"], capture_output=True, text=True, timeout=120)
        docker("image", "rm", "-f", tag, check=False)
