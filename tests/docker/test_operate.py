"""Operating the image: background processes (role all and role worker), JSON logs, request
ids and the ops listener, in the demo image the session builds once (conftest)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.conftest import free_port
from tests.docker.conftest import Container, docker, wait_http

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
    health = docker("exec", c.name, "python3", "-I", "-S", "/opt/venv/wsgistack-healthcheck.py", check=False)
    assert health.returncode == 0, health.stderr
    started = time.monotonic()
    docker("stop", "-t", "10", c.name)
    assert time.monotonic() - started < 10
    assert c.wait_exit(5) == 0, c.logs()
