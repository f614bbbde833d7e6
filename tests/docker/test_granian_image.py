"""The image of a project whose config says server.app_server = "granian": the granian wheel
(and not pyuwsgi) in the app's environment, the same nginx in front, the same entrypoint,
health check and drained stop. The Django demo, built once with `wsgistack build`."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import EXAMPLES, WSGISTACK
from tests.docker.conftest import Container, docker, unique, wait_http

pytestmark = pytest.mark.docker

LIST = ("import importlib.metadata as m, json; "
        "print(json.dumps(sorted((d.metadata['Name'], d.version) for d in m.distributions())))")


@pytest.fixture(scope="session")
def granian_image(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ctx = tmp_path_factory.mktemp("granian") / "demo"
    shutil.copytree(EXAMPLES / "django_demo", ctx, ignore=shutil.ignore_patterns("__pycache__", "var"))
    with (ctx / "wsgistack.toml").open("a") as toml:
        toml.write('\n[server]\napp_server = "granian"\n')
    tag = unique("granian") + ":test"
    started = time.monotonic()
    proc = subprocess.run([*WSGISTACK, "build", str(ctx), "-t", tag, "--plain"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"wsgistack build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    print(f"\nbuilt {tag} in {time.monotonic() - started:.1f}s")
    yield tag
    docker("image", "rm", "-f", tag, check=False)


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def test_granian_image_serves_through_nginx_and_stops_draining(granian_image: str) -> None:
    app = dict(json.loads(docker("run", "--rm", "--entrypoint", "/opt/venv/bin/python", granian_image, "-I", "-c",
                                 LIST).stdout))
    assert "granian" in app and "pyuwsgi" not in app, app
    c = Container(granian_image)
    try:
        wait_http(c.url + "/_wsgistack/ready", container=c)
        status, headers, body = _get(c.url + "/hello")
        assert status == 200 and headers["server"] == "nginx" and headers.get("x-request-id"), headers
        assert _get(c.url + "/")[0] == 200
        logs = c.logs()
        assert "granian 2." in logs and "app interpreter: /opt/venv/bin/python" in logs, logs
        st = json.loads(docker("exec", c.name, "/opt/wsgistack/bin/wsgistack", "status", "--json").stdout)
        assert st["app_server"] == "granian" and len(st["stats"]["workers"]) >= 1, st
        health = docker("inspect", "-f", "{{json .Config.Healthcheck}}", c.name).stdout
        assert "wsgistack-healthcheck" in health
        # docker stop: nginx stops accepting, granian finishes the request it has.
        result: dict[str, int] = {}
        slow = threading.Thread(target=lambda: result.update(status=_get(c.url + "/slow?seconds=2")[0]))
        slow.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = docker("exec", c.name, "/opt/wsgistack/bin/wsgistack", "status", "--json", check=False)
            workers = (json.loads(out.stdout).get("stats") or {}).get("workers", []) if out.returncode == 0 else []
            if any(w.get("in_flight") for w in workers):
                break
            time.sleep(0.1)
        docker("stop", c.name, timeout=30)
        slow.join(10)
        assert result.get("status") == 200, c.logs()
        assert c.state().get("ExitCode") == 0, c.logs()
    finally:
        c.close()


def test_granian_in_the_wrong_image_is_one_clear_error(demo_image: str) -> None:
    """An image built for uWSGI, told at run time to use granian: refused before anything
    starts, with the fix (the image gets the wheel the project's config names)."""
    c = Container(demo_image, env={"WSGISTACK_SERVER__APP_SERVER": "granian"})
    try:
        code = c.wait_exit(60)
        logs = c.logs()
        assert code not in (0, None), logs
        assert "error[run.E001]: granian is not installed in the app's environment" in logs, logs
    finally:
        c.close()
