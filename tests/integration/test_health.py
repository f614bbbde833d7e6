"""Liveness and readiness paths (server.live_path, server.ready_path), the drain marker, and
apps loaded through wsgistack's shim by path (a factory app started as root)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, SERVERS, WSGISTACK, Stack, clean_env, http, server_env, shared_dir, start_stack

pytestmark = pytest.mark.integration

LIVE, READY = "/_wsgistack/live", "/_wsgistack/ready"


@pytest.mark.parametrize("server", SERVERS)
def test_health_answers_for_any_host_without_the_app_and_drains(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    stack = start_stack(tmp_path, EXAMPLES / "hello", ready_path=READY, env=server_env(server))
    stacks.append(stack)
    for host in ("localhost", "unknown.example"):  # an unknown Host is refused (444) for any other path
        live = http(stack.url + LIVE, host=host)
        assert (live.status, live.body) == (200, b"live\n")
        ready = http(stack.url + READY, host=host)
        assert (ready.status, ready.body) == (200, b"ready\n")
        assert ready.headers["cache-control"] == "no-store"
    with pytest.raises(OSError):  # the refusal still holds for the app's own paths
        http(stack.url + "/hello", host="unknown.example", timeout=3)

    marker = stack.runtime_dir / "drain"
    marker.touch()
    draining = http(stack.url + READY)
    assert (draining.status, draining.body) == (503, b"draining\n")
    # `wsgistack status` says so (a drained node looks healthy otherwise).
    st = subprocess.run([*WSGISTACK, "status", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir)],
                        capture_output=True, text=True, env=clean_env(), timeout=60)
    assert st.returncode == 0 and "readiness: draining" in st.stdout, st.stdout + st.stderr
    st = subprocess.run([*WSGISTACK, "status", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir), "--json"],
                        capture_output=True, text=True, env=clean_env(), timeout=60)
    assert json.loads(st.stdout)["draining"] is True
    assert http(stack.url + LIVE).status == 200  # nginx is alive while the node drains...
    assert http(stack.url + "/hello").status == 200  # ...and still serves what reaches it
    marker.unlink()
    assert http(stack.url + READY).status == 200

    # Health checks are not written to nginx's access log; the app's requests are. (uWSGI
    # logs 5xx answers, so a draining node's 503s are in its log: a drain is worth seeing.)
    time.sleep(0.3)
    access = [line for line in stack.log().splitlines() if line.lstrip().startswith("nginx |")]
    assert any("GET /hello" in line for line in access)
    assert not any(LIVE in line or READY in line for line in access)


@pytest.mark.parametrize("server", SERVERS)
def test_health_paths_are_settings(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    env = server_env(server, WSGISTACK_SERVER__LIVE_PATH="/livez", WSGISTACK_SERVER__READY_PATH="/readyz")
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=env, ready_path="/readyz")
    stacks.append(stack)
    assert http(stack.url + "/livez").body == b"live\n"
    assert http(stack.url + "/readyz").body == b"ready\n"


def test_factory_app_served_when_started_as_root(tmp_path: Path, stacks: list[Stack]) -> None:
    """Issue 10, defect 1: a module:factory() target started as root died with
    ModuleNotFoundError: wsgistack_app (the shim sat in a directory the app user cannot list)."""
    if os.geteuid() != 0:
        pytest.skip("the defect needs a start as root (uWSGI then runs as the nginx worker user)")
    project = shared_dir(tmp_path, "project")
    pkg = project / "flaskr"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "def create_app():\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "        return [b'made by the factory']\n"
        "    return app\n"
    )
    for path in (project, pkg, pkg / "__init__.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    stack = start_stack(tmp_path, project, "--app", "flaskr:create_app()", ready_path=READY)
    stacks.append(stack)
    assert http(stack.url + "/").body == b"made by the factory"


SLEEPER = '''
import time

def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(2)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]
'''


def test_busy_is_not_down_but_drain_and_a_missing_uwsgi_are(tmp_path: Path, stacks: list[Stack]) -> None:
    """Readiness stays 200 while every worker is busy (nginx answers "busy" when none is free
    within a second): a saturated node only queues, and a balancer must not take it out for
    that (measured before: a 1,000-connection burst marked all 3 nodes down). A drain is seen at
    once even then, and a node without its uWSGI is not ready."""
    import threading

    project = shared_dir(tmp_path, "project")
    (project / "sleeper.py").write_text(SLEEPER)
    stack = start_stack(tmp_path, project, "--app", "sleeper:application", "--processes", "2", ready_path=READY)
    stacks.append(stack)
    assert http(stack.url + READY).body == b"ready\n"  # a worker was free
    threads = [threading.Thread(target=http, args=(stack.url + "/sleep",), kwargs={"timeout": 60}) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # 16 x 2 s on 2 workers: about 16 s of queue
    busy = http(stack.url + READY, timeout=10)
    assert (busy.status, busy.body) == (200, b"busy\n"), busy
    assert busy.headers["cache-control"] == "no-store"
    marker = stack.runtime_dir / "drain"
    marker.touch()
    draining = http(stack.url + READY, timeout=10)
    assert (draining.status, draining.body) == (503, b"draining\n")  # at once, while every worker is busy
    assert draining.headers["retry-after"] == "5"
    marker.unlink()
    for t in threads:
        t.join(60)
    assert http(stack.url + READY).body == b"ready\n"

    # nginx up, its uWSGI not there (role web, nothing on UWSGI_URI): not ready.
    from tests.conftest import free_port

    web_dir = tmp_path / "web"  # its own runtime dir and log
    web_dir.mkdir()
    web = start_stack(web_dir, project, "--role", "web", env=clean_env(UWSGI_URI=f"127.0.0.1:{free_port()}"), ready_path=LIVE)
    stacks.append(web)
    down = http(web.url + READY, timeout=10)
    assert (down.status, down.body) == (503, b"not ready\n")
