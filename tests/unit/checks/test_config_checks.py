"""config.*: settings that are valid alone but do not fit together or with the machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.unit.checks.conftest import MACHINE, MakeCtx, flask_app, ids
from wsgistack.checks import config


def test_timeouts_nest_by_default(make_ctx: MakeCtx) -> None:
    assert config.timeouts_nest(make_ctx()) == []
    assert config.timeouts_nest(make_ctx({"WSGISTACK_PLATFORM": "heroku"})) == []


def test_timeouts_that_do_not_nest_are_an_error(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    broken = make_ctx(nginx_timeout=ctx.plan.harakiri)  # nginx gives up with uWSGI, not after it
    found = config.timeouts_nest(broken)
    assert ids(found) == ["config.E101"]
    assert "harakiri = 30s is not shorter than nginx's uwsgi_read_timeout = 30s" in found[0].message


def test_nginx_timeout_beyond_the_router_is_an_error(make_ctx: MakeCtx) -> None:
    found = config.timeouts_nest(make_ctx({"WSGISTACK_PLATFORM": "heroku"}, nginx_timeout=30))
    assert ids(found) == ["config.E101"]
    assert "heroku router's 30s" in found[0].message


def test_stop_timeout_inside_the_platforms_grace(make_ctx: MakeCtx) -> None:
    assert config.stop_within_platform_grace(make_ctx({"WSGISTACK_PLATFORM": "heroku"})) == []
    assert config.stop_within_platform_grace(make_ctx({"WSGISTACK_STOP_TIMEOUT": "60"})) == []  # no platform
    found = config.stop_within_platform_grace(make_ctx({"WSGISTACK_PLATFORM": "heroku", "WSGISTACK_STOP_TIMEOUT": "30"}))
    assert ids(found) == ["config.W102"]
    assert "WSGISTACK_STOP_TIMEOUT" in found[0].obj


def test_workers_that_do_not_fit_in_memory(make_ctx: MakeCtx) -> None:
    assert list(config.workers_fit_in_memory(make_ctx())) == []  # auto sizes from memory
    found = list(config.workers_fit_in_memory(make_ctx({"WEB_CONCURRENCY": "8"})))  # 8 x 64 + 96 > 512
    assert ids(found) == ["config.W103"]
    assert "over the memory limit of 512 MB" in found[0].message
    assert "env WEB_CONCURRENCY" in found[0].obj


def test_workers_are_counted_at_the_apps_measured_size_with_the_background_processes(make_ctx: MakeCtx, project: Path) -> None:
    # Issue 24 item 4: "512 MB fits 6" for 200 MB workers, and a worker in the same container:
    # processes were OOM-killed 6 times in 30 s and nothing was said.
    from wsgistack.plan.stack import MB

    big = dataclasses.replace(flask_app(project), rss=200 * MB)
    eight = dataclasses.replace(MACHINE, cpus=8)
    ctx = make_ctx({"WSGISTACK_PROCESSES__RQ__COMMAND": "rq worker"}, app=big, machine=eight)
    assert ctx.plan.processes == 1  # auto: never 0, and...
    assert any("uwsgi.processes auto = 1 (cpus 8 -> 8; memory 512 MB holds 0: the app is 200 MB after import, "
               "a worker counted at 300 MB, 296 MB for nginx, uWSGI's master and the manager, 200 MB for 1 background "
               "process)" in n for n in ctx.plan.notes), ctx.plan.notes
    (found,) = config.workers_fit_in_memory(ctx)  # ...said to be too much
    assert found.id == "config.W103"
    assert "1 worker need about 796 MB" in found.message and "cannot hold even one worker" in found.message
    # A 42 MB app (the Django demo's size) in 512 MB: 5 workers, not the budget's 6, and no warning.
    demo = dataclasses.replace(flask_app(project), rss=42 * MB)
    ctx = make_ctx(app=demo, machine=eight)
    assert ctx.plan.processes == 5 and list(config.workers_fit_in_memory(ctx)) == []
    # lazy_apps: uWSGI's master never imports the app, so it takes less.
    assert make_ctx({"WSGISTACK_APP__LAZY_APPS": "true"}, app=demo, machine=eight).plan.processes == 6


def test_reload_on_rss_above_the_memory_limit(make_ctx: MakeCtx) -> None:
    assert list(config.workers_fit_in_memory(make_ctx({"WSGISTACK_UWSGI__RELOAD_ON_RSS": "150"}))) == []
    found = list(config.workers_fit_in_memory(make_ctx({"WSGISTACK_UWSGI__RELOAD_ON_RSS": "300"})))
    assert ids(found) == ["config.W104"]


def test_no_memory_limit_no_memory_findings(make_ctx: MakeCtx) -> None:
    machine = dataclasses.replace(MACHINE, memory_limit=None)
    assert list(config.workers_fit_in_memory(make_ctx({"WEB_CONCURRENCY": "64"}, machine=machine))) == []


def test_trusting_every_address_as_a_proxy(make_ctx: MakeCtx) -> None:
    assert config.trusted_proxies_are_specific(make_ctx({"WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8"})) == []
    found = config.trusted_proxies_are_specific(make_ctx({"WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8 0.0.0.0/0"}))
    assert ids(found) == ["config.W105"]
    assert "0.0.0.0/0" in found[0].message


def test_a_missing_static_directory(make_ctx: MakeCtx, project: Path) -> None:
    (project / "public").mkdir()
    assert config.static_dirs_exist(make_ctx({"WSGISTACK_SERVER__STATIC": "/files/=public"})) == []
    found = config.static_dirs_exist(make_ctx({"WSGISTACK_SERVER__STATIC": "/files/=nowhere"}))
    assert ids(found) == ["config.W106"]
    assert "/files/" in found[0].message


def test_silencing_an_id_that_does_not_exist(make_ctx: MakeCtx) -> None:
    fine = "nginx.W010 security.W004 gixy.alias_traversal hadolint.DL3008 app.E003 config.E001"
    assert config.silenced_ids_exist(make_ctx({"WSGISTACK_SILENCE": fine})) == []
    found = config.silenced_ids_exist(make_ctx({"WSGISTACK_SILENCE": "nginx.W999,perms.E001"}))
    assert ids(found) == ["config.W107"]
    assert "nginx.W999" in found[0].message

