"""Helpers for the check tests: a CheckContext from env settings, a hand-made Machine and app,
as tests/golden/test_render.py builds plans."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wsgistack.app.spec import AppSpec, StaticDir
from wsgistack.checks import CheckContext
from wsgistack.config import load_config
from wsgistack.app.interpreter import AppPython
from wsgistack.machine import Machine
from wsgistack.render.stack import render
from wsgistack.plan.stack import make_plan

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MB = 1024 * 1024

MACHINE = Machine(cpus=2, memory_limit=512 * MB, somaxconn=4096, euid=1000, nginx=NGINX, python=sys.executable)
APP_PYTHON = AppPython(sys.executable, "wsgistack's own interpreter", "3.11.2", uwsgi="/opt/venv/bin/uwsgi",
                       uwsgi_dist="pyuwsgi", uwsgi_version="2.0.30", binary_path="/opt/venv/bin/python")
ROOT_MACHINE = dataclasses.replace(MACHINE, euid=0, nginx_user="www-data")

MakeCtx = Callable[..., CheckContext]


def flask_app(project: Path) -> AppSpec:
    static = project / "static"
    static.mkdir(exist_ok=True)
    return AppSpec(kind="flask", module="app", attr="app", path=project, static=(StaticDir("/static/", static, "static"),))


def django_app(project: Path) -> AppSpec:
    return AppSpec(kind="django", module="mysite.wsgi", attr="application", path=project,
                   django_settings="mysite.settings", staticfiles=True,
                   static=(StaticDir("/static/", project / "var/static", "static"),
                           StaticDir("/media/", project / "var/media", "media")))


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user may enter, as nginx's workers must when the tests run as root
    (pytest's tmp_path sits under a 0700 directory)."""
    with tempfile.TemporaryDirectory(prefix="wst-checks-", dir="/tmp") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


@pytest.fixture
def project(public_dir: Path) -> Path:
    path = public_dir / "proj"
    path.mkdir()
    return path


@pytest.fixture
def make_ctx(project: Path, public_dir: Path) -> Iterator[MakeCtx]:
    """make_ctx(env, machine=, app=, deploy=, **plan_changes): the context the checks see."""
    contexts: list[CheckContext] = []

    def make(env: dict[str, str] | None = None, *, machine: Machine = MACHINE, app: AppSpec | None | str = "flask",
             deploy: bool = False, python: AppPython = APP_PYTHON, **plan_changes: Any) -> CheckContext:
        env = {"WSGISTACK_RUNTIME_DIR": str(public_dir / "rt"), **(env or {})}
        loaded = load_config(project, env=env)
        spec = flask_app(project) if app == "flask" else django_app(project) if app == "django" else app
        if loaded.config.role == "web":
            spec = None
        python = None if loaded.config.role == "web" else python
        plan = make_plan(loaded, machine, spec, python)  # type: ignore[arg-type]
        if plan_changes:
            plan = dataclasses.replace(plan, **plan_changes)
        ctx = CheckContext(loaded=loaded, plan=plan, machine=machine, env={}, deploy=deploy, python=python,
                           files=render(plan))
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


def ids(findings: Any) -> list[str]:
    return [f.id for f in findings]


def with_nginx_conf(ctx: CheckContext, text: str) -> CheckContext:
    """Point the nginx checks at a hand-written nginx.conf instead of the rendered one."""
    directory = ctx.tempdir() / "handmade"
    directory.mkdir()
    (directory / "nginx.conf").write_text(text)
    (directory / "mime.types").write_text("types { text/html html; }\n")
    (directory / "uwsgi_params").write_text("uwsgi_param QUERY_STRING $query_string;\n")
    ctx.__dict__["nginx_dir"] = directory
    ctx.__dict__.pop("nginx_tree", None)
    return ctx
