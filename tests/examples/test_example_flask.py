"""Tests for examples/flask_demo (Flask test client, in-process)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import flask
import pytest

APP_PY = Path(__file__).resolve().parents[2] / "examples" / "flask_demo" / "app.py"
MODULE_NAME = "wsgistack_example_flask_app"  # avoid clashing with any other "app" module


@pytest.fixture(scope="module")
def demo_module() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, APP_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # Flask locates templates/ and static/ through sys.modules[__name__].
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(MODULE_NAME, None)


@pytest.fixture()
def client(demo_module: ModuleType):
    return demo_module.create_app({"TESTING": True}).test_client()


def test_module_level_app(demo_module: ModuleType) -> None:
    assert isinstance(demo_module.app, flask.Flask)
    assert Path(demo_module.app.root_path) == APP_PY.parent


def test_index_links_static_css(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'href="/static/style.css"' in html
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert css.mimetype == "text/css"
    css.close()


def test_healthz_and_hello(client) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.data, response.mimetype) == (200, b"ok", "text/plain")
    response = client.get("/hello")
    assert (response.status_code, response.data, response.mimetype) == (200, b"Hello, world!", "text/plain")


def test_slow(client, demo_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/slow?seconds=0.01").data == b"slept 0.01"
    slept: list[float] = []
    monkeypatch.setattr(demo_module.time, "sleep", slept.append)
    assert client.get("/slow?seconds=1000").data == b"slept 60"
    assert client.get("/slow?seconds=-3").data == b"slept 0"
    assert client.get("/slow").data == b"slept 1"
    assert slept == [60.0, 0.0, 1.0]
    for bad in ("abc", "nan", "inf", ""):
        assert client.get(f"/slow?seconds={bad}").status_code == 400


def test_whoami(client) -> None:
    data = client.get("/whoami").get_json()
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
    assert data["app"] == "flask"
    assert data["scheme"] == "http" and data["is_secure"] is False
    assert data["host"] == "localhost"
    assert data["remote_addr"] == "127.0.0.1"
    assert data["x_forwarded_for"] is None and data["x_forwarded_proto"] is None
    assert data["pid"] == os.getpid()


def test_whoami_scheme_comes_from_wsgi_environ(client) -> None:
    data = client.get("/whoami", base_url="https://demo.example.org").get_json()
    assert data["scheme"] == "https" and data["is_secure"] is True
    assert data["host"] == "demo.example.org"


def test_whoami_reports_but_does_not_trust_forwarded_headers(client) -> None:
    data = client.get(
        "/whoami",
        headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        environ_overrides={"REMOTE_ADDR": "10.0.0.5"},
    ).get_json()
    assert data["x_forwarded_for"] == "203.0.113.7"
    assert data["x_forwarded_proto"] == "https"
    assert data["scheme"] == "http"
    assert data["remote_addr"] == "10.0.0.5"


def test_upload_size(client) -> None:
    size = 3 * 1024 * 1024 + 7
    response = client.post("/upload-size", data=b"x" * size, content_type="application/octet-stream")
    assert response.data == str(size).encode()
    assert client.get("/upload-size").status_code == 405


def test_config_from_prefixed_env(demo_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "from-the-environment")
    assert demo_module.create_app().config["SECRET_KEY"] == "from-the-environment"
