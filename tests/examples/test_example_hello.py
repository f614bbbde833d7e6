"""Tests for examples/hello/hello.py, the framework-free WSGI app."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest

HELLO_PY = Path(__file__).resolve().parents[2] / "examples" / "hello" / "hello.py"


@pytest.fixture(scope="module")
def hello() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wsgistack_example_hello", HELLO_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(
    app: Any, path: str, *, method: str = "GET", query: str = "", body: bytes = b"", **extra: str
) -> tuple[str, dict[str, str], bytes]:
    """Call the app through wsgiref's PEP 3333 validator."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body),
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra)
    setup_testing_defaults(environ)
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        captured["status"], captured["headers"] = status, dict(headers)
        return lambda data: None

    result = validator(app)(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        result.close()
    return captured["status"], captured["headers"], data


@pytest.mark.parametrize("path", ["/", "/hello"])
def test_hello(hello: ModuleType, path: str) -> None:
    status, headers, body = call(hello.application, path)
    assert status == "200 OK"
    assert body == b"Hello, world!"
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["Content-Length"] == "13"


def test_healthz(hello: ModuleType) -> None:
    assert call(hello.application, "/healthz")[::2] == ("200 OK", b"ok")


def test_not_found(hello: ModuleType) -> None:
    assert call(hello.application, "/nope")[0] == "404 Not Found"


def test_slow(hello: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    assert call(hello.application, "/slow", query="seconds=0.01")[2] == b"slept 0.01"
    slept: list[float] = []
    monkeypatch.setattr(hello.time, "sleep", slept.append)
    assert call(hello.application, "/slow", query="seconds=1000")[2] == b"slept 60"
    assert call(hello.application, "/slow", query="seconds=-1")[2] == b"slept 0"
    assert call(hello.application, "/slow")[2] == b"slept 1"
    assert slept == [60.0, 0.0, 1.0]
    for bad in ("seconds=abc", "seconds=nan", "seconds=inf", "seconds="):
        assert call(hello.application, "/slow", query=bad)[0] == "400 Bad Request"


def test_whoami(hello: ModuleType) -> None:
    status, headers, body = call(hello.application, "/whoami", HTTP_HOST="demo.example.org:8443")
    assert status == "200 OK"
    assert headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert set(data) == {
        "app",
        "scheme",
        "is_secure",
        "host",
        "remote_addr",
        "x_forwarded_for",
        "x_forwarded_proto",
        "pid",
    }
    assert data["app"] == "hello"
    assert data["scheme"] == "http"
    assert data["is_secure"] is False
    assert data["host"] == "demo.example.org:8443"
    assert data["x_forwarded_for"] is None and data["x_forwarded_proto"] is None
    assert data["pid"] == os.getpid()


def test_whoami_scheme_and_forwarded_headers(hello: ModuleType) -> None:
    data = json.loads(
        call(
            hello.application,
            "/whoami",
            REMOTE_ADDR="10.0.0.5",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
            HTTP_X_FORWARDED_PROTO="https",
            **{"wsgi.url_scheme": "https"},
        )[2]
    )
    assert data["scheme"] == "https" and data["is_secure"] is True
    assert data["remote_addr"] == "10.0.0.5"
    assert data["x_forwarded_for"] == "203.0.113.7"
    assert data["x_forwarded_proto"] == "https"


def test_upload_size(hello: ModuleType) -> None:
    size = 3 * 1024 * 1024 + 7
    assert call(hello.application, "/upload-size", method="POST", body=b"x" * size)[2] == str(size).encode()
    assert call(hello.application, "/upload-size", method="POST")[2] == b"0"
    status, headers, _ = call(hello.application, "/upload-size")
    assert status == "405 Method Not Allowed" and headers["Allow"] == "POST"


def test_boom_raises(hello: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        call(hello.application, "/boom")


def test_stdlib_only() -> None:
    """The module must import and serve with site-packages disabled."""
    script = (
        "import importlib.util, io, sys\n"
        f"spec = importlib.util.spec_from_file_location('hello', {str(HELLO_PY)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "out = []\n"
        "body = mod.application({'PATH_INFO': '/hello', 'wsgi.input': io.BytesIO()},"
        " lambda s, h: out.append(s))\n"
        "print(out[0], b''.join(body).decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200 OK Hello, world!"
