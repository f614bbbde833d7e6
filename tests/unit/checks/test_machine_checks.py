"""machine.*: binaries, versions and the kernel's listen queue."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.checks.conftest import APP_PYTHON, MACHINE, MakeCtx, ids
from wsgistack.checks import machine


def test_missing_binaries(make_ctx: MakeCtx) -> None:
    assert machine.binaries_present(make_ctx()) == []
    no_nginx = make_ctx(machine=dataclasses.replace(MACHINE, nginx=None))
    assert ids(machine.binaries_present(no_nginx)) == ["machine.E001"]
    no_uwsgi = dataclasses.replace(APP_PYTHON, uwsgi=None, uwsgi_dist=None, uwsgi_version=None, binary_path=None)
    found = machine.binaries_present(make_ctx(python=no_uwsgi))
    assert ids(found) == ["machine.E002"]
    assert found[0].hint == f"add it there: {APP_PYTHON.python} -m pip install pyuwsgi"  # the app's interpreter
    web = make_ctx({"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001"}, python=no_uwsgi)
    assert machine.binaries_present(web) == []  # the web role runs no uWSGI


def test_pyuwsgi_older_than_supported_is_an_error_with_the_upgrade_command(make_ctx: MakeCtx) -> None:
    old = dataclasses.replace(APP_PYTHON, uwsgi_version="2.0.18")
    found = machine.binaries_present(make_ctx(python=old))
    assert ids(found) == ["machine.E004"]
    assert f"{APP_PYTHON.python} -m pip install --upgrade 'pyuwsgi>=2.0.28'" in found[0].hint


@pytest.mark.parametrize(("nginx", "expected"), [("1.22.1", []), ("1.14.2", ["machine.W003"])])
def test_versions(make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch, nginx: str, expected: list[str]) -> None:
    monkeypatch.setattr(machine, "nginx_version", lambda path: nginx)
    ctx = make_ctx()
    assert ids(machine.versions(ctx)) == expected
    assert ctx.facts == {"nginx": nginx, "app Python": f"3.11.2 ({APP_PYTHON.python})", "uWSGI": "pyuwsgi 2.0.30"}


def test_version_numbers() -> None:
    assert machine.version_tuple("nginx version: nginx/1.22.1") == (1, 22, 1)
    assert machine.version_tuple("2.0.30.post1") == (2, 0, 30)
    assert machine.version_tuple("1.25") == (1, 25)
    assert machine.version_tuple("unknown") is None


def test_somaxconn_below_the_planned_listen_queue_names_the_sysctl(make_ctx: MakeCtx) -> None:
    assert machine.somaxconn(make_ctx()) == []
    found = machine.somaxconn(make_ctx(machine=dataclasses.replace(MACHINE, somaxconn=128)))
    assert ids(found) == ["machine.W005"]
    assert "net.core.somaxconn = 128" in found[0].message
    assert "sysctl -w net.core.somaxconn" in found[0].hint
    small = make_ctx({"WSGISTACK_UWSGI__LISTEN": "100"}, machine=dataclasses.replace(MACHINE, somaxconn=128))
    assert machine.somaxconn(small) == []
