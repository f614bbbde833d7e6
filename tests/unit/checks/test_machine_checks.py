"""machine.*: binaries, versions and the kernel's listen queue."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.checks.conftest import MACHINE, MakeCtx, ids
from wsgistack.checks import machine


def test_missing_binaries(make_ctx: MakeCtx) -> None:
    assert machine.binaries_present(make_ctx()) == []
    no_nginx = make_ctx(machine=dataclasses.replace(MACHINE, nginx=None))
    assert ids(machine.binaries_present(no_nginx)) == ["machine.E001"]
    no_uwsgi = dataclasses.replace(MACHINE, uwsgi=None)
    found = machine.binaries_present(make_ctx(machine=no_uwsgi))
    assert ids(found) == ["machine.E002"]
    assert "-m pip install pyuwsgi" in found[0].hint
    web = make_ctx({"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001"}, machine=no_uwsgi)
    assert machine.binaries_present(web) == []  # the web role runs no uWSGI


@pytest.mark.parametrize(("nginx", "uwsgi", "expected"), [
    ("1.22.1", "2.0.30", []),
    ("1.14.2", "2.0.30", ["machine.W003"]),
    ("1.25.0", "2.0.18", ["machine.W004"]),
])
def test_versions(make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch, nginx: str, uwsgi: str, expected: list[str]) -> None:
    monkeypatch.setattr(machine, "nginx_version", lambda path: nginx)
    monkeypatch.setattr(machine, "uwsgi_version", lambda path: uwsgi)
    ctx = make_ctx()
    assert ids(machine.versions(ctx)) == expected
    assert ctx.facts == {"nginx": nginx, "uWSGI": uwsgi}


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
