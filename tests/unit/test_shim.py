"""The app shim uWSGI loads (templates/wsgistack_app.py.j2), rendered and run in-process: the
readiness path, and work nobody waits for (a request that waited past nginx's timeout) done
without the app. The real thing, under a burst, is tests/integration/test_hardening.py."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from wsgistack.app.spec import AppSpec
from wsgistack.config import load_config
from wsgistack.machine import Machine
from wsgistack.plan.stack import make_plan
from wsgistack.render.stack import render

MACHINE = Machine(cpus=2, memory_limit=None, somaxconn=4096, euid=1000, nginx="/usr/sbin/nginx", python="/usr/bin/python3")


@pytest.fixture
def shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[types.ModuleType, list[str]]:
    calls: list[str] = []
    app = types.ModuleType("shimtest_app")

    def application(environ, start_response):  # type: ignore[no-untyped-def]
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"app"]

    app.application = application  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shimtest_app", app)
    loaded = load_config(tmp_path, env={"WSGISTACK_RUNTIME_DIR": str(tmp_path / "rt"), "WSGISTACK_REQUEST_TIMEOUT": "10"})
    plan = make_plan(loaded, MACHINE, AppSpec(kind="wsgi", module="shimtest_app", attr="application", path=tmp_path))
    source = next(f.content for f in render(plan) if f.path == "wsgistack_app.py")
    module = types.ModuleType("wsgistack_app")
    exec(compile(source, "wsgistack_app.py", "exec"), module.__dict__)  # noqa: S102 - our own render
    return module, calls


def call(module: types.ModuleType, **environ: str) -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(module.application({"PATH_INFO": "/", **environ}, lambda status, headers: seen.append(status)))
    return seen[0], body


def test_a_request_that_waited_past_nginxs_timeout_never_reaches_the_app(shim, capsys) -> None:  # type: ignore[no-untyped-def]
    module, calls = shim
    assert module._NGINX_WAITS == 13  # request_timeout 10 + nginx's 3 s
    status, body = call(module, WSGISTACK_REQUEST_START=f"{time.time() - 14:.3f}")
    assert status.startswith("503") and b"nobody waits" in body
    assert calls == []
    assert "skipped 1 request(s) nobody waits for any more; the last: it waited 14.0 s" in capsys.readouterr().err
    # Fresh, or without the stamp (a request that did not come through nginx): the app answers.
    assert call(module, WSGISTACK_REQUEST_START=f"{time.time() - 1:.3f}") == ("200 OK", b"app")
    assert call(module) == ("200 OK", b"app")
    assert call(module, WSGISTACK_REQUEST_START="garbage") == ("200 OK", b"app")
    assert calls == ["/", "/", "/"]


def test_the_skip_is_said_once_a_minute_not_once_a_request(shim, capsys) -> None:  # type: ignore[no-untyped-def]
    module, _calls = shim
    old = f"{time.time() - 60:.3f}"
    for _ in range(500):
        call(module, WSGISTACK_REQUEST_START=old)
    assert capsys.readouterr().err.count("nobody waits") == 1


def test_readiness_is_answered_before_the_app(shim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    module, calls = shim
    assert call(module, PATH_INFO="/_wsgistack/ready") == ("200 OK", b"ready\n")
    (tmp_path / "rt").mkdir()
    (tmp_path / "rt" / "drain").touch()
    assert call(module, PATH_INFO="/_wsgistack/ready")[0].startswith("503")
    assert calls == []


def test_the_connection_is_looked_at_only_after_a_wait_in_the_queue(shim) -> None:  # type: ignore[no-untyped-def]
    """Inside uWSGI the shim polls the request's connection to see whether nginx still waits on
    it: for a request that waited in the queue (or whose wait is unknown), not for one taken at
    once (a poll(2) per request otherwise, 0.5 µs of every request)."""
    import socket

    module, calls = shim
    ours, nginx = socket.socketpair()
    polled: list[int] = []

    def connection_fd() -> int:
        polled.append(1)
        return ours.fileno()

    module._connection_fd = connection_fd
    try:
        nginx.close()  # nginx gave up on this request: its side of the connection is closed
        status, body = call(module, WSGISTACK_REQUEST_START=f"{time.time():.3f}")  # taken at once
        assert (status, body, polled) == ("200 OK", b"app", [])
        status, body = call(module, WSGISTACK_REQUEST_START=f"{time.time() - 1:.3f}")  # waited 1 s
        assert status.startswith("503") and b"nobody waits" in body and polled == [1]
        status, _body = call(module)  # no stamp: the wait is unknown, so it is looked at
        assert status.startswith("503") and polled == [1, 1]
        assert calls == ["/"]
    finally:
        ours.close()
