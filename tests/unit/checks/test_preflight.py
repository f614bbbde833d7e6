"""preflight(): what run, render and the container entrypoint check before starting."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from tests.unit.checks.conftest import MACHINE, ROOT_MACHINE, MakeCtx, ids
from wsgistack.checks import PreflightError, preflight
from wsgistack.checks.preflight import PREFLIGHT_EXCLUDES
from wsgistack.checks.registry import registry


def test_a_clean_plan_passes_and_returns_the_report(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    report = preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=False, env={})
    assert report.errors == []


def test_machine_and_dockerfile_checks_are_not_part_of_it(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(machine=dataclasses.replace(MACHINE, nginx=None, somaxconn=16))
    report = preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=True, env={}, app_checks=False)
    assert not [f for f in report.findings if f.id.startswith(("machine.", "docker."))]
    assert {c.name for c in registry.checks if c.tags & set(PREFLIGHT_EXCLUDES)} >= {"binaries_present", "dockerfile_lint"}


def test_an_error_refuses_to_start_with_every_finding_and_its_hint(make_ctx: MakeCtx, project: Path) -> None:
    ctx = make_ctx({"WSGISTACK_SERVER__STATIC": "/files/=.", "WSGISTACK_PLATFORM": "heroku"}, nginx_timeout=40)
    with pytest.raises(PreflightError) as exc:
        preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=False, env={})
    err = exc.value
    assert err.id == "doctor.E001"
    assert err.exit_code == 1
    assert ids(err.report.errors) == ["config.E101", "perms.E009"]
    text = err.render()
    assert text.startswith("error[doctor.E001]: refusing to start: 2 checks failed (config.E101, perms.E009)")
    assert "  error[perms.E009]: /files/: serves" in text
    assert "    hint: map static URLs to a dedicated directory" in text
    assert "WSGISTACK_SILENCE" in err.hint


def test_silenced_findings_never_stop_a_start(make_ctx: MakeCtx) -> None:
    ctx = make_ctx({"WSGISTACK_SERVER__STATIC": "/files/=.", "WSGISTACK_SILENCE": "perms.E009"})
    report = preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=False, env={})
    assert ids(report.silenced) == ["perms.E009"]
    ctx = make_ctx({"WSGISTACK_SERVER__STATIC": "/files/=."})
    assert preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=False, env={}, silenced={"perms.E009"}).errors == []


def test_deploy_mode_is_stricter(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(machine=ROOT_MACHINE, uwsgi_user=None)
    assert ids(preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=False, env={}).findings) == ["perms.W002"]
    with pytest.raises(PreflightError, match="perms.E001"):
        preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=True, env={}, app_checks=False)


def test_deploy_mode_runs_the_apps_own_checks(make_ctx: MakeCtx, project: Path) -> None:
    pytest.importorskip("django")
    (project / "mysite").mkdir()
    (project / "mysite" / "__init__.py").write_text("")
    (project / "mysite" / "settings.py").write_text('DEBUG = True\nSECRET_KEY = "x" * 60 + "abcdefgh"\nALLOWED_HOSTS = ["*"]\n')
    ctx = make_ctx(app="django")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(__import__("sys").path)}
    assert not [f for f in preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=False, env=env).findings if f.id.startswith("app.")]
    with pytest.raises(PreflightError) as exc:
        preflight(ctx.plan, ctx.loaded, files=ctx.files, deploy=True, env=env)
    assert ids(exc.value.report.errors) == ["app.E101"]
