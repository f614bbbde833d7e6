"""`wsgistack build` + `docker run` of the fixture projects, with the wsgistack pipx
installed from a wheel, and with no option beyond what each fixture's README requires.

Heavy: run it under the shared lock by hand (`flock /tmp/wsgistack-heavy.lock .venv/bin/python
-m pytest tests/userpaths/test_images.py`). The timings printed are measurements, not
assertions (benchmarks hold the goals).
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.docker.conftest as docker_conftest
from tests.docker.conftest import Container, docker, unique
from tests.userpaths.conftest import (
    Install, Owner, Postgres, Redis, Response, http, post_form, post_multipart, prepared, wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400), pytest.mark.usefixtures("docker_engine")]
docker_engine = docker_conftest.docker_engine  # the Docker tests' fixture: fails under CI=true without an engine

PRODUCT_FLAGS = ("--build-package", "gcc", "--build-package", "python3-dev", "--build-package", "libpq-dev",
                 "--package", "libpq5")  # the product's README


@pytest.fixture
def cleanup() -> Iterator[list[tuple[str, str]]]:
    """(kind, name) of images, containers and volumes a test made: removed afterwards."""
    made: list[tuple[str, str]] = []
    yield made
    for kind, name in reversed(made):
        if kind == "container":
            docker("rm", "-f", "-v", name, check=False)
        elif kind == "volume":
            docker("volume", "rm", "-f", name, check=False)
        elif kind == "image":
            docker("image", "rm", "-f", name, check=False)


def build(install: Install, project: Path, tag: str, *flags: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = install.run("build", "-t", tag, *flags, cwd=project, timeout=2400)
    return proc, time.monotonic() - started


def built(install: Install, project: Path, tag: str, cleanup: list[tuple[str, str]], *flags: str) -> float:
    cleanup.append(("image", tag))
    proc, took = build(install, project, tag, *flags)
    if proc.returncode != 0:
        pytest.fail(f"`wsgistack build -t {tag} {' '.join(flags)}` as {install.owner.name} failed ({proc.returncode}):\n"
                    f"{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    return took


def image_mb(tag: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip()) / 1e6


def container(tag: str, cleanup: list[tuple[str, str]], env: dict[str, str], volume: str) -> Container:
    c = Container(tag, env=env, args=("-v", f"{volume}:/data"))
    cleanup.append(("container", c.name))
    return c


def first_answer(c: Container, path: str = "/", timeout: float = 180) -> tuple[float, Response]:
    """Seconds from now to the first HTTP answer of ``path`` (any status) and that answer;
    fails with the container's logs if it exits or never answers."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            return time.monotonic() - started, http(c.url + path, timeout=5)
        except OSError:
            pass
        if c.state().get("Running") is False:
            break
        time.sleep(0.1)
    pytest.fail(f"{c.url}{path} never answered; state {c.state()}; logs:\n{c.logs()[-6000:]}", pytrace=False)


def test_flask_factory_image(owner: Owner, installed: Install, cleanup: list[tuple[str, str]]) -> None:
    project = prepared(owner, "flask_factory", "-e", ".", "pyuwsgi")
    tag = unique("up-flask") + ":test"
    built(installed, project, tag, cleanup)
    volume = unique("up-flask-data")
    cleanup.append(("volume", volume))
    c = container(tag, cleanup, {}, volume)
    _took, page = first_answer(c)
    assert page.status == 200, (page.status, c.logs()[-4000:])
    created = post_form(c.url + "/notes", {"body": "in the image"})
    assert created.status == 201, (created.status, created.body[:300], c.logs()[-4000:])
    docker("restart", c.name)
    first_answer(c)
    assert "in the image" in [n["body"] for n in http(c.url + "/notes").json()]  # type: ignore[union-attr]


def test_startproject_image(root: Owner, root_install: Install, cleanup: list[tuple[str, str]]) -> None:
    project = prepared(root, "startproject", "-r", "requirements.txt", "pyuwsgi")
    tag = unique("up-mysite") + ":test"
    built(root_install, project, tag, cleanup)
    volume = unique("up-mysite-data")
    cleanup.append(("volume", volume))
    env = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}  # its README
    c = container(tag, cleanup, env, volume)
    _took, page = first_answer(c, "/notes/")
    assert page.status == 200, (page.status, c.logs()[-4000:])
    created = post_form(c.url + "/notes/", {"body": "in the image"})
    assert created.status == 201, (created.status, created.body[:300], c.logs()[-4000:])
    assert http(c.url + "/static/admin/css/base.css").status == 200
    c.close()
    again = container(tag, cleanup, env, volume)  # a new container on the same data volume
    first_answer(again, "/notes/")
    assert "in the image" in [n["body"] for n in http(again.url + "/notes/").json()]  # type: ignore[union-attr]


def test_product_build_without_its_flags_says_which_packages(root: Owner, root_install: Install,
                                                             cleanup: list[tuple[str, str]]) -> None:
    project = prepared(root, "product", "-r", "requirements/dev.txt", "pyuwsgi")
    tag = unique("up-product-noflags") + ":test"
    cleanup.append(("image", tag))
    proc, _took = build(root_install, project, tag)  # the README's flags forgotten
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-3000:]
    assert "docker.E006" in said and "--build-package gcc" in said and "libpq-dev" in said, said[-3000:]
    # psycopg-c includes Python.h: with only the hint's gcc + libpq-dev the build fails again
    # ("fatal error: Python.h: No such file or directory"), so the hint must name python3-dev too
    assert "python3-dev" in said, said[-3000:]


def test_product_image(root: Owner, root_install: Install, postgres: Postgres, redis: Redis,
                       cleanup: list[tuple[str, str]]) -> None:
    project = prepared(root, "product", "-r", "requirements/dev.txt", "pyuwsgi")
    tag = unique("up-product") + ":test"
    took = built(root_install, project, tag, cleanup, *PRODUCT_FLAGS)
    size = image_mb(tag)
    volume = unique("up-product-data")
    cleanup.append(("volume", volume))
    env = {"SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": postgres.create_database(), "REDIS_URL": redis.url,
           "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    first = container(tag, cleanup, {**env, "WSGISTACK_APP__MIGRATE": "true"}, volume)  # the README's first deploy
    to_first, page = first_answer(first)
    assert page.status == 200, (page.status, first.logs()[-6000:])
    upload = b"numbers\n" * 100
    created = post_multipart(first.url + "/documents/", {"title": "in the image"}, {"file": ("n.txt", upload)})
    assert created.status == 201, (created.status, created.body[:300], first.logs()[-6000:])
    doc = created.json()
    assert isinstance(doc, dict)
    done = wait_for(lambda: http(f"{first.url}/documents/{doc['id']}/").json().get("processed"), timeout=60)  # type: ignore[union-attr]
    assert done, first.logs()[-6000:]  # the worker (role all) processed it
    # The README's one-off commands: `docker exec C python manage.py ...` from the WORKDIR.
    check = docker("exec", first.name, "python", "manage.py", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    first.close()
    second = container(tag, cleanup, env, volume)  # a restart: a new container, same volume, no migrate
    restart, page = first_answer(second)
    assert page.status == 200, second.logs()[-6000:]
    assert "the same as at the last start" in second.logs(), second.logs()[-4000:]  # Django's checks cached
    print(f"\nproduct image: built in {took:.0f}s, {size:.1f} MB; first 200 {to_first:.1f}s after docker run, "
          f"restart {restart:.1f}s")
