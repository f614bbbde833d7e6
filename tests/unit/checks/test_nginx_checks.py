"""nginx.*: nginx -t, gixy-ng and our own rules on the rendered nginx.conf."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.checks.conftest import ROOT_MACHINE, MakeCtx, ids, with_nginx_conf
from wsgistack.checks import nginx
from wsgistack.plan.stack import Location

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                 reason="nginx not installed")

# Rendered configs gixy-ng and our rules must find nothing in (as tests/golden's cases).
CASES = {
    "default": {},
    "tcp-421": {"WSGISTACK_UWSGI__SOCKET": "tcp", "WSGISTACK_SERVER__UNKNOWN_HOST": "421"},
    "heroku-proxy-any-host": {"WSGISTACK_PLATFORM": "heroku", "PORT": "5000", "WSGISTACK_SERVER__HOST": "0.0.0.0",
                              "WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8", "NGINX_SERVER_NAME": "*"},
    "public-named": {"WSGISTACK_SERVER__HOST": "0.0.0.0", "NGINX_SERVER_NAME": "example.com www.example.com"},
    "web-role": {"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.2:8001"},
    "no-gzip-no-log": {"WSGISTACK_SERVER__GZIP": "false", "WSGISTACK_SERVER__ACCESS_LOG": "false"},
}


@needs_nginx
@pytest.mark.parametrize("case", sorted(CASES))
def test_nginx_accepts_what_we_render(make_ctx: MakeCtx, case: str) -> None:
    assert nginx.nginx_accepts_config(make_ctx(CASES[case], app="django")) == []


@needs_nginx
@pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t checks the `user` directive only as root")
def test_nginx_accepts_the_root_render(make_ctx: MakeCtx) -> None:
    assert nginx.nginx_accepts_config(make_ctx(machine=ROOT_MACHINE, app="django")) == []


@needs_nginx
def test_nginx_rejecting_the_config_is_an_error_with_its_message(make_ctx: MakeCtx) -> None:
    # The same URL twice (only a hand-made plan can have it): nginx refuses a duplicate location.
    ctx = make_ctx(locations=(Location("/files/", Path("/srv/a"), "extra"), Location("/files/", Path("/srv/b"), "extra")))
    found = nginx.nginx_accepts_config(ctx)
    assert ids(found) == ["nginx.E001"]
    assert "duplicate location" in found[0].message
    assert "nginx.conf:" in found[0].message and "wsgistack-doctor-" not in found[0].message


@needs_nginx
def test_a_directory_name_with_spaces_or_semicolons_is_quoted(make_ctx: MakeCtx) -> None:
    # It used to end the alias early ("unknown directive"): nginx.conf quotes such a path.
    ctx = make_ctx(locations=(Location("/files/", Path("/srv/a;b c{d}#e"), "extra"),))
    assert nginx.nginx_accepts_config(ctx) == []
    assert 'alias "/srv/a;b c{d}#e/";' in ctx.rendered["nginx.conf"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_gixy_and_our_rules_find_nothing_in_what_we_render(make_ctx: MakeCtx, case: str) -> None:
    ctx = make_ctx(CASES[case], app="django", deploy=True)
    found = [*nginx.gixy(ctx), *nginx.alias_keeps_slash(ctx), *nginx.server_tokens_off(ctx), *nginx.body_size_limited(ctx)]
    assert found == []
    assert ctx.facts["gixy-ng"]


BAD = """
events {}
http {
    server_tokens on;
    server {
        listen 0.0.0.0:8080;
        server_name _;
        location /static { alias /srv/static/; }
        location /media/ { alias /srv/media; }
        location / { uwsgi_pass 127.0.0.1:8001; }
    }
}
"""


def test_gixy_findings_keep_the_plugin_as_origin_id(make_ctx: MakeCtx) -> None:
    found = nginx.gixy(with_nginx_conf(make_ctx(), BAD))
    traversal = [f for f in found if f.origin_id == "gixy.alias_traversal"]
    assert ids(traversal) == ["nginx.E003"]  # HIGH
    assert traversal[0].obj == "nginx.conf:8"
    assert "alias" in traversal[0].details and "gixy.getpagespeed.com" in traversal[0].hint
    assert not [f for f in found if f.origin_id == "gixy.version_disclosure"]  # ours: nginx.W011


def test_in_process_gixy_agrees_with_its_command_line(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(BAD)
    cli = subprocess.run([sys.executable, "-m", "gixy", "-f", "json", "--skips", ",".join(nginx.GIXY_SKIPS), str(conf)],
                         capture_output=True, text=True)
    assert cli.returncode in (0, 1), cli.stderr
    key = lambda i: (i["plugin"], i["severity"], i.get("line"))  # noqa: E731
    assert sorted(map(key, nginx.gixy_report(str(conf)))) == sorted(map(key, json.loads(cli.stdout)))


def test_alias_without_its_trailing_slash(make_ctx: MakeCtx) -> None:
    found = nginx.alias_keeps_slash(with_nginx_conf(make_ctx(), BAD))
    assert ids(found) == ["nginx.W010"]
    assert found[0].obj == "nginx.conf:9"
    assert "/media/" in found[0].message


def test_server_tokens(make_ctx: MakeCtx) -> None:
    assert ids(nginx.server_tokens_off(with_nginx_conf(make_ctx(), BAD))) == ["nginx.W011"]
    missing = nginx.server_tokens_off(with_nginx_conf(make_ctx(), "events {}\nhttp { server { listen 80; } }\n"))
    assert ids(missing) == ["nginx.W011"]
    assert "default: on" in missing[0].message


def test_body_size_unlimited_or_implicit(make_ctx: MakeCtx) -> None:
    implicit = nginx.body_size_limited(with_nginx_conf(make_ctx(), BAD))
    assert ids(implicit) == ["nginx.W012"] and "1 MB default" in implicit[0].message
    unlimited = "events {}\nhttp { client_max_body_size 0; server { listen 80; } }\n"
    found = nginx.body_size_limited(with_nginx_conf(make_ctx(), unlimited))
    assert ids(found) == ["nginx.W012"] and "disables the upload limit" in found[0].message


def test_public_listen_for_any_host(make_ctx: MakeCtx) -> None:
    assert ids(nginx.public_listen_checks_host(with_nginx_conf(make_ctx(), BAD))) == ["nginx.W013"]
    any_public = make_ctx({"WSGISTACK_SERVER__HOST": "0.0.0.0", "NGINX_SERVER_NAME": "*"}, deploy=True)
    found = nginx.public_listen_checks_host(any_public)
    assert ids(found) == ["nginx.W013"]
    assert "0.0.0.0:8000" in found[0].message
    assert nginx.public_listen_checks_host(make_ctx({"NGINX_SERVER_NAME": "*"})) == []  # loopback
    named = make_ctx({"WSGISTACK_SERVER__HOST": "0.0.0.0", "NGINX_SERVER_NAME": "example.com"})
    assert nginx.public_listen_checks_host(named) == []


@pytest.mark.parametrize(("listen", "loopback"), [
    ("127.0.0.1:8000", True), ("[::1]:8000", True), ("[::1]", True), ("localhost:80", True), ("unix:/run/x.sock", True),
    ("8000", False), ("*:80", False), ("0.0.0.0:80", False), ("[::]:80", False), ("10.0.0.5:80", False),
    ("example.com:80", False),
])
def test_loopback_listen_forms(listen: str, loopback: bool) -> None:
    assert nginx._is_loopback(listen) is loopback


@pytest.mark.parametrize("pip_present", [True, False])
def test_missing_gixy_is_mentioned_only_where_pip_can_install_it(make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch,
                                                                  pip_present: bool) -> None:
    """The image has no pip on purpose: an info telling to `pip install gixy-ng` there is noise."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setitem(sys.modules, "gixy", None)  # import gixy -> ImportError
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real_find_spec(name, *a) if pip_present else None) if name == "pip" else real_find_spec(name, *a))
    found = nginx.gixy(make_ctx(app="django"))
    assert ids(found) == (["nginx.I007"] if pip_present else [])
