"""One request id end to end, and JSON logs that stay JSON whatever a client sends."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import (SERVERS, Stack, clean_env, deployed_python, free_port, http, server_env, shared_dir, start_stack,
                            worker_user)

pytestmark = pytest.mark.integration

APP = '''\
import logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="app-log id=%(request_id)s %(message)s")
log = logging.getLogger("app")

def application(environ, start_response):
    log.info("handling %s", environ.get("PATH_INFO"))
    # An app that sets its own X-Request-ID: nginx's is the one the client gets.
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Request-ID", "made-by-the-app")])
    return [environ.get("HTTP_X_REQUEST_ID", "none").encode()]
'''


def project(tmp_path: Path) -> Path:
    app = shared_dir(tmp_path, "proj")
    (app / "idapp.py").write_text(APP)
    (app / "idapp.py").chmod(0o644)
    return app


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def json_lines(stack: Stack) -> list[dict[str, object]]:
    """Every line of the stack's output, each parsed strictly (UTF-8, one JSON object)."""
    out = []
    for number, line in enumerate(stack.log_path.read_bytes().splitlines(), 1):
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise AssertionError(f"line {number} is not JSON ({exc}): {line!r}") from None
        assert isinstance(obj, dict) and obj.get("process"), line
        out.append(obj)
    return out


def wait_for_log(stack: Stack, predicate, timeout: float = 10) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        lines = json_lines(stack)
        if predicate(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.parametrize("server", SERVERS)
def test_request_id_end_to_end_and_json_logs_survive_hostile_bytes(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    env = server_env(server, WSGISTACK_SERVER__LOG_FORMAT="json", WSGISTACK_APP__TARGET="idapp:application")
    stack = start_stack(tmp_path, project(tmp_path), env=env, ready_path="/_wsgistack/live")
    stacks.append(stack)

    resp = http(stack.url + "/first")
    rid = resp.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert resp.body.decode() == rid  # the app saw the same id (HTTP_X_REQUEST_ID)
    # A client cannot choose the id (no trusted proxy): nginx makes its own.
    other = http(stack.url + "/second", headers={"X-Request-ID": "client-chosen"})
    assert other.headers["x-request-id"] != "client-chosen" and other.body.decode() == other.headers["x-request-id"]
    # One header, nginx's, even though the app sets its own.
    head = raw(stack.port, b"GET /third HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert head.lower().count(b"x-request-id:") == 1

    # Health checks are not logged.
    assert http(stack.url + "/_wsgistack/live").status == 200
    assert http(stack.url + "/_wsgistack/ready").status == 200

    hostile = [
        # nginx refuses control bytes in the request line (400, logged with an empty path)...
        b"GET /a\x01\x7f HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        # ...but takes quotes, backslashes, braces and bytes that are not UTF-8 there, and
        # control bytes and escape sequences in header values.
        b'GET /a"b\\c\xff\xfe%22{"x":1}<script> HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        b'User-Agent: ua"\\\x01\x1b[31m\xff\xc3\x28 }{\r\nReferer: "},{"status":999\r\nConnection: close\r\n\r\n',
        b"GET /\xc3\xa9t\xc3\xa9 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: \xe2\x82\r\nConnection: close\r\n\r\n",
        b"BR\xffOKEN\r\n\r\n",
        b'GET /q?x="\\u0000 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: a"b\r\nConnection: close\r\n\r\n',
    ]
    for request in hostile:
        raw(stack.port, request)

    lines = wait_for_log(stack, lambda ls: sum(1 for l in ls if l["process"] == "nginx" and "status" in l) >= 8)
    access = [l for l in lines if l["process"] == "nginx" and "status" in l]
    assert len(access) >= 8, lines
    first = next(l for l in access if l["path"] == "/first")
    assert first["request_id"] == rid and first["method"] == "GET" and first["status"] == 200
    assert isinstance(first["bytes"], int) and isinstance(first["request_time"], float)
    for key in ("time", "upstream_time", "client", "user_agent", "host", "referer"):
        assert key in first
    assert first["client"] == "127.0.0.1"
    assert not [l for l in access if "/_wsgistack/" in str(l.get("path"))], "health checks were logged"
    assert any(str(l.get("path")).startswith('/a"b\\c\ufffd\ufffd%22{"x":1}') for l in access), "the hostile path was not logged"
    assert any(l.get("referer") == '"},{"status":999' for l in access)
    assert any(str(l.get("user_agent", "")).startswith('ua"\\\x01') for l in access)
    # The app's own log line carries the id (the shim's %(request_id)s), wrapped as the app server's.
    app_lines = [l for l in lines if l["process"] == server and "app-log" in str(l.get("message"))]
    assert f"app-log id={rid} handling /first" in [l["message"] for l in app_lines]
    assert any(l["process"] == "wsgistack" for l in lines)


@pytest.mark.parametrize("server", SERVERS)
def test_trusted_proxy_request_id_is_kept_and_502_page_shows_the_id(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    # Nothing listens there: every request is nginx's own 502 (granian's upstream is a unix socket).
    dead = f"127.0.0.1:{free_port()}" if server == "uwsgi" else f"unix:{shared_dir(tmp_path, 'gone')}/app.sock"
    env = server_env(server, WSGISTACK_SERVER__TRUSTED_PROXIES="127.0.0.1")
    stack = start_stack(tmp_path, project(tmp_path), "--role", "web", env={**env, "UWSGI_URI": dead},
                        ready_path="/_wsgistack/live")
    stacks.append(stack)
    resp = http(stack.url + "/", headers={"X-Request-ID": "lb-1234-abcd"})
    assert resp.status == 502
    assert resp.headers["x-request-id"] == "lb-1234-abcd"
    assert b"Request ID: <code>lb-1234-abcd</code>" in resp.body
    # An id that could break a log line or a page is not believed, even from the proxy.
    bad = http(stack.url + "/", headers={"X-Request-ID": 'x" <b>'})
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])
    assert f"Request ID: <code>{bad.headers['x-request-id']}</code>".encode() in bad.body
    log = stack.log_with("id=lb-1234-abcd")
    assert "id=lb-1234-abcd" in log  # the text access log names it too


def test_wsgistack_logs_joins_a_requests_lines_by_its_id(tmp_path: Path, stacks: list[Stack]) -> None:
    """`wsgistack logs --request-id ID` (ops/logs.py): nginx's access line and the app's record
    of one request, from the manager's copy of its output, in the order the manager relayed
    them; no other request's lines."""
    app = project(tmp_path)
    env = clean_env(WSGISTACK_APP__TARGET="idapp:application")
    stack = start_stack(tmp_path, app, env=env, ready_path="/_wsgistack/live")
    stacks.append(stack)
    # Not from a trusted proxy: nginx makes the id, the response says which.
    rid = http(stack.url + "/joined", headers={"X-Request-ID": "client-chosen"}).headers["x-request-id"]
    other = http(stack.url + "/not-this-one").headers["x-request-id"]
    assert rid != other and rid != "client-chosen"

    def logs(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        as_user = ["runuser", "-u", user, "--"] if user else []
        return subprocess.run([*as_user, deployed_python(), "-m", "wsgistack", "logs", str(app), "--runtime-dir", str(stack.runtime_dir),
                               *args], capture_output=True, text=True, env=env, cwd=app, timeout=60)

    nginx_line = '"GET /joined HTTP/1.1" 200'
    app_line = f"app-log id={rid} handling /joined"
    deadline = time.monotonic() + 15  # the manager relays in batches; bounded, not a timing assertion
    while True:
        found = logs("--request-id", rid)
        assert found.returncode == 0, found.stderr
        lines = found.stdout.splitlines()
        if (any(nginx_line in l for l in lines) and any(app_line in l for l in lines)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    [access] = [l for l in lines if l.lstrip().startswith("nginx |")]
    assert nginx_line in access and access.endswith(f"id={rid}")
    [record] = [l for l in lines if l.lstrip().startswith("uwsgi |")]
    assert record.endswith(app_line)
    assert len(lines) == 2 and not [l for l in lines if "/not-this-one" in l or other in l], lines
    # In the order the manager relayed them: the order of its stdout.
    printed = stack.log_with(f"id={rid}").splitlines()
    assert [printed.index(l) for l in lines] == sorted(printed.index(l) for l in lines)
    # The file is the starter's alone.
    log = stack.runtime_dir / "state" / "stack.log"
    assert log.stat().st_mode & 0o777 == 0o600 and log.stat().st_uid == os.geteuid()
    # The last N lines, unfiltered: the other request's access line is the newest nginx line.
    tail = logs("--lines", "50").stdout.splitlines()
    assert len(tail) <= 50 and any(f"id={other}" in l for l in tail)
    # The app's user (the one a compromised app runs as) cannot read it, and is told why.
    if os.geteuid() == 0 and worker_user():
        denied = logs("--request-id", rid, user=worker_user())
        assert denied.returncode != 0 and "ops.E006" in denied.stderr and rid not in denied.stdout, denied
