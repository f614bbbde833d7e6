"""The framework: declared messages, the registry, silencing, sorting and the summary line."""

from __future__ import annotations

import pytest

from wsgistack.checks import AREAS, MESSAGES, CheckContext, Finding, Level, registry
from wsgistack.checks.messages import CheckMessage, declare
from wsgistack.checks.registry import Registry, Report

W = CheckMessage("test.W001", Level.WARNING, "a warning", "fix it")
E = CheckMessage("test.E002", Level.ERROR, "an error", "fix that")
NOTE = CheckMessage("test.I003", Level.INFO, "a note", "read it")


def test_ids_are_shaped_like_django_and_their_letter_is_their_level() -> None:
    with pytest.raises(ValueError, match="shaped"):
        CheckMessage("nginx-W1", Level.WARNING, "x", "y")
    with pytest.raises(ValueError, match="letter"):
        CheckMessage("nginx.E999", Level.WARNING, "x", "y")
    with pytest.raises(ValueError, match="hint"):
        CheckMessage("nginx.W999", Level.WARNING, "x", "")


def test_an_id_is_declared_once() -> None:
    some_id = next(iter(MESSAGES))
    with pytest.raises(ValueError, match="twice"):
        declare(some_id, MESSAGES[some_id].level, "again", "again")


def test_every_declared_message_belongs_to_a_documented_area() -> None:
    assert len(MESSAGES) > 30
    assert {m.area for m in MESSAGES.values()} <= set(AREAS)


def test_every_registered_check_is_a_plain_function_with_its_module_as_tag() -> None:
    names = [c.name for c in registry.checks]
    assert len(names) == len(set(names))
    for check in registry.checks:
        assert check.func.__module__.rpartition(".")[2] in check.tags


def test_a_finding_renders_like_an_error_with_its_hint() -> None:
    finding = W("alias /srv/x", obj="nginx.conf:3", details="line 1\nline 2")
    assert finding.render() == "warning[test.W001]: nginx.conf:3: alias /srv/x\n  line 1\n  line 2\n  hint: fix it"
    assert W().message == "a warning"
    assert W(hint="other").hint == "other"
    assert W(level=Level.CRITICAL).level == Level.CRITICAL


def _registry(*found: Finding, deploy_only: Finding | None = None, slow: Finding | None = None) -> Registry:
    reg = Registry()
    reg.register()(lambda ctx: list(found))
    if deploy_only is not None:
        reg.register(deploy=True)(lambda ctx: [deploy_only])
    if slow is not None:
        reg.register(slow=True)(lambda ctx: [slow])
    return reg


def _ctx() -> CheckContext:
    return CheckContext(loaded=None, plan=None, machine=None)  # type: ignore[arg-type]


def test_findings_are_sorted_most_serious_first_and_counted() -> None:
    report = _registry(NOTE(), W(), E()).run(_ctx(), deploy=False)
    assert [f.id for f in report.findings] == ["test.E002", "test.W001", "test.I003"]
    assert report.errors == [report.findings[0]]
    assert report.count(Level.WARNING) == 1
    assert report.summary() == "System check identified 3 issues (0 silenced)."


def test_silencing_by_our_id_or_by_the_tools_id() -> None:
    django = W("(security.W004) HSTS", origin_id="security.W004")
    report = _registry(django, E(), NOTE()).run(_ctx(), deploy=False, silenced={"security.W004", "test.I003"})
    assert [f.id for f in report.findings] == ["test.E002"]
    assert len(report.silenced) == 2
    assert report.summary() == "System check identified 1 issue (2 silenced)."
    assert Report(findings=()).summary() == "System check identified no issues (0 silenced)."


def test_deploy_only_and_slow_checks_are_selected_by_mode() -> None:
    reg = _registry(deploy_only=E(), slow=NOTE())
    assert [f.id for f in reg.run(_ctx(), deploy=False).findings] == ["test.I003"]
    assert [f.id for f in reg.run(_ctx(), deploy=True).findings] == ["test.E002", "test.I003"]
    assert reg.run(_ctx(), deploy=True, skip_slow=True).findings[0].id == "test.E002"
    assert len(reg.run(_ctx(), deploy=True, skip_slow=True).findings) == 1


def test_a_crashing_check_is_a_finding_not_a_traceback() -> None:
    reg = Registry()

    @reg.register()
    def broken(ctx: CheckContext) -> list[Finding]:
        raise KeyError("boom")

    report = reg.run(_ctx(), deploy=False)
    assert [f.id for f in report.findings] == ["doctor.E002"]
    assert "KeyError: 'boom'" in report.findings[0].details
    assert report.findings[0].obj == "broken"
