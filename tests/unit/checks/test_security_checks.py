"""perms.*: who runs what, and who can reach the sockets and files."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from tests.unit.checks.conftest import ROOT_MACHINE, MakeCtx, ids
from wsgistack.app.spec import AppSpec, StaticDir
from wsgistack.checks import security


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


needs_www_data = pytest.mark.skipif(not _has_user("www-data"), reason="needs the www-data account")


def test_uwsgi_as_root_is_a_warning_and_an_error_in_deploy_mode(make_ctx: MakeCtx) -> None:
    assert security.uwsgi_not_root(make_ctx({"WSGISTACK_USER": "www-data"}, machine=ROOT_MACHINE)) == []  # drops to a uid
    assert security.uwsgi_not_root(make_ctx()) == []  # not root at all
    dev = security.uwsgi_not_root(make_ctx(machine=ROOT_MACHINE, uwsgi_user=None))
    assert ids(dev) == ["perms.W002"]
    deploy = security.uwsgi_not_root(make_ctx(machine=ROOT_MACHINE, uwsgi_user=None, deploy=True))
    assert ids(deploy) == ["perms.E001"]
    assert "user" in deploy[0].obj and "appuser" in deploy[0].hint
    asked = security.uwsgi_not_root(make_ctx({"WSGISTACK_USER": "root"}, machine=ROOT_MACHINE, uwsgi_user=None, deploy=True))
    assert ids(asked) == ["perms.W002"]  # on purpose (rootless containers): a warning, even in deploy mode
    assert 'user = "root"' in asked[0].message


def test_a_user_that_does_not_exist(make_ctx: MakeCtx) -> None:
    found = security.user_exists(make_ctx({"WSGISTACK_USER": "no-such-user-xyz"}, machine=ROOT_MACHINE))
    assert ids(found) == ["perms.E003"]
    assert "WSGISTACK_USER" in found[0].obj
    assert security.user_exists(make_ctx({"WSGISTACK_USER": "no-such-user-xyz"})) == []  # not root: unused


def test_socket_mode(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    assert security.socket_mode(ctx) == []  # rendered 660
    ctx.__dict__["uwsgi_options"] = [("socket", "/run/x.sock"), ("chmod-socket", "666")]
    found = security.socket_mode(ctx)
    assert ids(found) == ["perms.W004"]
    assert "666" in found[0].message
    assert security.socket_mode(make_ctx({"WSGISTACK_UWSGI__SOCKET": "tcp"})) == []


def test_stats_only_on_a_private_unix_socket(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    assert security.stats_private(ctx) == []
    ctx.__dict__["uwsgi_options"] = [("stats", "0.0.0.0:9191")]
    assert ids(security.stats_private(ctx)) == ["perms.W005"]
    ctx.__dict__["uwsgi_options"] = [("stats", "/tmp/stats.sock")]  # a unix socket, but not in private/
    assert ids(security.stats_private(ctx)) == ["perms.W005"]


@needs_www_data
def test_static_dirs_nginx_cannot_read(make_ctx: MakeCtx, project: Path, public_dir: Path) -> None:
    private = public_dir / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    closed_parent = private / "static"
    closed_parent.mkdir()
    readable = public_dir / "ok"
    readable.mkdir()
    closed = public_dir / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    app = AppSpec(kind="flask", module="app", attr="app", path=project, static=(
        StaticDir("/a/", closed_parent, "static"), StaticDir("/b/", readable, "static"), StaticDir("/c/", closed, "static"),
    ))
    found = security.static_dirs_readable(make_ctx(machine=ROOT_MACHINE, app=app))
    assert ids(found) == ["perms.E006", "perms.E006"]
    assert {f.obj for f in found} == {"/a/", "/c/"}
    assert "cannot enter" in found[0].message and "(www-data)" in found[0].message
    assert security.static_dirs_readable(make_ctx(app=app)) == []  # not root: nginx runs as us


@needs_www_data
def test_socket_nginx_cannot_reach(make_ctx: MakeCtx, project: Path, public_dir: Path) -> None:
    private = public_dir / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    closed = make_ctx({"WSGISTACK_RUNTIME_DIR": str(private / "rt")}, machine=ROOT_MACHINE)
    found = security.socket_reachable(closed)
    assert ids(found) == ["perms.E007"]
    assert "uwsgi.sock" in found[0].message
    assert security.socket_reachable(make_ctx({"WSGISTACK_RUNTIME_DIR": str(public_dir / "rt")}, machine=ROOT_MACHINE)) == []


def test_uwsgi_on_a_public_address_in_the_app_role(make_ctx: MakeCtx) -> None:
    public = make_ctx({"WSGISTACK_ROLE": "app", "WSGISTACK_UWSGI__SOCKET": "tcp", "WSGISTACK_UWSGI__TCP_HOST": "0.0.0.0"})
    found = security.uwsgi_tcp_private(public)
    assert ids(found) == ["perms.W008"]
    assert "0.0.0.0:8001" in found[0].message
    loopback = make_ctx({"WSGISTACK_ROLE": "app", "WSGISTACK_UWSGI__SOCKET": "tcp"})
    assert security.uwsgi_tcp_private(loopback) == []


def test_a_static_location_that_serves_the_project(make_ctx: MakeCtx, project: Path) -> None:
    (project / "public").mkdir()
    assert security.static_not_project(make_ctx({"WSGISTACK_SERVER__STATIC": "/files/=public"})) == []
    found = security.static_not_project(make_ctx({"WSGISTACK_SERVER__STATIC": "/files/=."}))
    assert ids(found) == ["perms.E009"]
    assert found[0].obj == "/files/" and "contains the project" in found[0].message
    assert ids(security.static_not_project(make_ctx({"WSGISTACK_SERVER__STATIC": "/root/=/"}))) == ["perms.E009"]


def test_an_ops_listener_open_to_other_machines_without_a_password_is_a_warning(make_ctx: MakeCtx) -> None:
    opened = make_ctx({"WSGISTACK_OPS__PORT": "9100", "WSGISTACK_OPS__HOST": "0.0.0.0"})
    [found] = security.ops_open_without_auth(opened)
    assert found.id == "perms.W010" and "'0.0.0.0'" in found.message and "env WSGISTACK_OPS__HOST" in found.message
    for env in ({"WSGISTACK_OPS__PORT": "9100"},  # loopback, the default
                {"WSGISTACK_OPS__PORT": "9100", "WSGISTACK_OPS__HOST": "0.0.0.0", "WSGISTACK_OPS__BASIC_AUTH": "ops:pw"},
                {"WSGISTACK_OPS__PORT": "0", "WSGISTACK_OPS__HOST": "0.0.0.0"},  # off
                {"WSGISTACK_OPS__PORT": "9100", "WSGISTACK_OPS__HOST": "::1"}):
        assert security.ops_open_without_auth(make_ctx(env)) == [], env
