"""The image keeps wsgistack and the app apart (issue 17): /opt/wsgistack holds wsgistack and
its dependencies, /opt/venv the app's requirements and pyuwsgi only, each `pip check`ed
during the build. Both fixture projects are built with `wsgistack build` and served through
nginx; one image per fixture, built once per session and removed afterwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, WSGISTACK
from tests.docker.conftest import Container, docker, unique, wait_http

pytestmark = pytest.mark.docker

LIST = ("import importlib.metadata as m, json; "
        "print(json.dumps(sorted((d.metadata['Name'], d.version) for d in m.distributions())))")


def _build(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ctx = tmp_path_factory.mktemp("sep") / name
    shutil.copytree(FIXTURES / name, ctx, ignore=shutil.ignore_patterns("__pycache__"))
    tag = unique(name.replace("_", "-")) + ":test"
    started = time.monotonic()
    proc = subprocess.run([*WSGISTACK, "build", str(ctx), "-t", tag, "--plain"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"wsgistack build {name} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    print(f"\nbuilt {tag} in {time.monotonic() - started:.1f}s")
    yield tag
    docker("image", "rm", "-f", tag, check=False)


@pytest.fixture(scope="session")
def old_pins_image(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _build("old_pins", tmp_path_factory)


@pytest.fixture(scope="session")
def flask_script_image(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _build("flask_script", tmp_path_factory)


@pytest.fixture(scope="session")
def pip_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip as a wheel, to run from outside against an image that has none (pip runs from a zip)."""
    target = tmp_path_factory.mktemp("pip")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "pip", "-d", str(target)],
                   check=True, capture_output=True, timeout=300)
    return next(target.glob("pip-*.whl"))


def pip_in_image(image: str, wheel: Path, env: str, *args: str) -> str:
    """`pip ARGS` for one environment of the image, with a pip mounted from outside."""
    proc = docker("run", "--rm", "-v", f"{wheel}:/tmp/pip.whl:ro", "--entrypoint", f"{env}/bin/python", image,
                  "/tmp/pip.whl/pip", *args, "--disable-pip-version-check", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("Server", ""), resp.read()


def environments(image: str) -> dict[str, dict[str, str]]:
    """Distributions in each environment of the image (pip itself is gone: nothing installs
    packages at run time), asked of each environment's own interpreter."""
    out = {}
    for env in ("/opt/wsgistack", "/opt/venv"):
        proc = docker("run", "--rm", "--entrypoint", f"{env}/bin/python", image, "-I", "-c", LIST)
        out[env] = dict(json.loads(proc.stdout))
    return out


def test_old_pins_image_serves_its_page_with_its_own_versions(old_pins_image: str, pip_wheel: Path) -> None:
    c = Container(old_pins_image)
    try:
        wait_http(c.url + "/", container=c)
        status, server, body = get(c.url + "/")
        assert (status, server) == (200, "nginx")
        assert body.startswith(b"widget x 3\npydantic 1.10.") and b" jinja2 2.11.3 click 7.1.2" in body
        logs = c.logs()
        assert "app interpreter: /opt/venv/bin/python" in logs and "VIRTUAL_ENV=/opt/venv" in logs
    finally:
        c.close()
    envs = environments(old_pins_image)
    print("\n" + "\n".join(f"{env}: {sorted(dists.items())}" for env, dists in envs.items()))
    app, tool = envs["/opt/venv"], envs["/opt/wsgistack"]
    assert set(app) == {"pydantic", "Jinja2", "MarkupSafe", "click", "typing_extensions", "pyuwsgi"}, app
    assert app["pydantic"].startswith("1.") and app["Jinja2"].startswith("2.") and app["click"].startswith("7.")
    assert {"wsgistack", "pydantic", "Jinja2", "click"} <= set(tool) and "pyuwsgi" not in tool
    assert tool["pydantic"].startswith("2.") and tool["Jinja2"].startswith("3.") and tool["click"].startswith("8.")
    # `pip check` of each environment of the final image, on its own (the build ran it too).
    for env in ("/opt/wsgistack", "/opt/venv"):
        assert "No broken requirements found" in pip_in_image(old_pins_image, pip_wheel, env, "check")
        print(f"\npip list ({env}):\n" + pip_in_image(old_pins_image, pip_wheel, env, "list"))


def test_flask_script_manage_py_image_serves_the_flask_app(flask_script_image: str) -> None:
    c = Container(flask_script_image)
    try:
        wait_http(c.url + "/", container=c)
        assert get(c.url + "/")[::2] == (200, b"shop served by wsgistack\n")
        status, _server, css = get(c.url + "/static/site.css")
        assert status == 200 and b"teal" in css
        assert "flask app wsgi:app" in c.logs()
    finally:
        c.close()
    app = environments(flask_script_image)["/opt/venv"]
    assert "wsgistack" not in {name.lower() for name in app} and {"Flask", "pyuwsgi"} <= set(app)
