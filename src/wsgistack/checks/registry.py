"""The check registry: plain functions ``(ctx) -> list[Finding]``, registered with tags.

Like Django's system checks: ``@register()`` adds a function; :func:`run_checks` runs the
selected ones and sorts what they found into a :class:`Report` (silenced findings are
kept apart, and counted in the summary line).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import ERROR, Finding, Level, declare

CheckFunc = Callable[[CheckContext], Iterable[Finding]]

CRASHED = declare(
    "doctor.E002",
    ERROR,
    "a check crashed (a bug in wsgistack, not in your project)",
    "report it with the traceback; meanwhile silence this id to start anyway",
)


@dataclass(frozen=True)
class Check:
    name: str
    func: CheckFunc
    tags: frozenset[str]
    deploy: bool  # only with --deploy
    slow: bool  # starts a subprocess or imports the app: not part of a quick preflight


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]  # most serious first
    silenced: tuple[Finding, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def at_least(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level >= level]

    def count(self, level: Level) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def errors(self) -> list[Finding]:
        return self.at_least(Level.ERROR)

    def summary(self) -> str:
        n = len(self.findings)
        issues = "no issues" if n == 0 else ("1 issue" if n == 1 else f"{n} issues")
        return f"System check identified {issues} ({len(self.silenced)} silenced)."


class Registry:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def register(
        self, *, tags: Collection[str] = (), deploy: bool = False, slow: bool = False
    ) -> Callable[[CheckFunc], CheckFunc]:
        """Register a check. Its module's name (config, nginx, ...) is always one of its tags."""

        def decorate(func: CheckFunc) -> CheckFunc:
            area = func.__module__.rpartition(".")[2]
            self.checks.append(Check(func.__name__, func, frozenset({area, *tags}), deploy, slow))
            return func

        return decorate

    def selected(
        self, *, deploy: bool, tags: Collection[str] | None = None, exclude_tags: Collection[str] = (), skip_slow: bool = False
    ) -> list[Check]:
        return [
            c
            for c in self.checks
            if (deploy or not c.deploy)
            and (tags is None or c.tags & set(tags))
            and not c.tags & set(exclude_tags)
            and not (skip_slow and c.slow)
        ]

    def run(
        self,
        ctx: CheckContext,
        *,
        deploy: bool | None = None,
        silenced: Collection[str] = (),
        tags: Collection[str] | None = None,
        exclude_tags: Collection[str] = (),
        skip_slow: bool = False,
    ) -> Report:
        deploy = ctx.deploy if deploy is None else deploy
        ctx.deploy = deploy
        started = time.monotonic()
        found: list[Finding] = []
        for check in self.selected(deploy=deploy, tags=tags, exclude_tags=exclude_tags, skip_slow=skip_slow):
            try:
                found.extend(check.func(ctx))
            except Exception:  # noqa: BLE001 - one broken check must not hide the others' findings
                found.append(CRASHED(f"the check {check.name!r} crashed", obj=check.name, details=traceback.format_exc()))
        silenced_set = set(silenced)
        kept = [f for f in found if not f.matches(silenced_set)]
        quiet = [f for f in found if f.matches(silenced_set)]

        def order(f: Finding) -> tuple[int, str, str, str]:
            return (-f.level, f.id, f.obj, f.message)

        return Report(
            findings=tuple(sorted(kept, key=order)),
            silenced=tuple(sorted(quiet, key=order)),
            facts=dict(ctx.facts),
            seconds=time.monotonic() - started,
        )


registry = Registry()
register = registry.register
run_checks = registry.run
