"""machine: the binaries and kernel limits the stack depends on."""

from __future__ import annotations

import re
import subprocess

from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import ERROR, WARNING, Finding, declare
from wsgistack.checks.registry import register
from wsgistack.machine import nginx_version
from wsgistack.plan import DEFAULT_LISTEN
from wsgistack.runner import INSTALL_NGINX_HINT

# Oldest versions the rendered files are tested with (Debian 11's nginx; pyuwsgi's floor).
MIN_NGINX = (1, 18)
MIN_UWSGI = (2, 0, 28)

E001 = declare("machine.E001", ERROR, "nginx is not installed (or not on PATH)", INSTALL_NGINX_HINT)
E002 = declare(
    "machine.E002",
    ERROR,
    "uWSGI is not installed in this environment",
    "install it next to wsgistack: pip install pyuwsgi",
)
W003 = declare(
    "machine.W003",
    WARNING,
    f"nginx is older than {'.'.join(map(str, MIN_NGINX))}, the oldest version wsgistack's config is tested with",
    "install a current nginx (Debian 12 ships 1.22) or the nginx.org packages",
)
W004 = declare(
    "machine.W004",
    WARNING,
    f"uWSGI is older than {'.'.join(map(str, MIN_UWSGI))}, the oldest version wsgistack's config is tested with",
    "pip install -U pyuwsgi (a distribution's uwsgi may also lack the built-in Python plugin)",
)
W005 = declare(
    "machine.W005",
    WARNING,
    "net.core.somaxconn is below the listen queue wsgistack plans: bursts of connections are refused early",
    "raise it: sysctl -w net.core.somaxconn=4096 (persist in /etc/sysctl.d/; "
    "in a container: docker run --sysctl net.core.somaxconn=4096), or lower uwsgi.listen",
)
def version_tuple(text: str | None) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in match.groups() if x is not None) if match else None


def uwsgi_version(uwsgi: str) -> str | None:
    try:
        out = subprocess.run([uwsgi, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


@register()
def binaries_present(ctx: CheckContext) -> list[Finding]:
    machine, role = ctx.machine, ctx.config.role
    found = []
    if role in ("all", "web") and not machine.nginx:
        found.append(E001())
    if role in ("all", "app") and not machine.uwsgi:
        found.append(E002(hint=f"install it next to wsgistack: {machine.python} -m pip install pyuwsgi"))
    return found


@register(slow=True)
def versions(ctx: CheckContext) -> list[Finding]:
    machine, role = ctx.machine, ctx.config.role
    found = []
    if machine.nginx and role in ("all", "web"):
        text = nginx_version(machine.nginx)
        ctx.facts["nginx"] = text or "?"
        version = version_tuple(text)
        if version is not None and version < MIN_NGINX:
            found.append(W003(f"nginx {text} ({machine.nginx}) is older than {'.'.join(map(str, MIN_NGINX))}"))
    if machine.uwsgi and role in ("all", "app"):
        text = uwsgi_version(machine.uwsgi)
        ctx.facts["uWSGI"] = text or "?"
        version = version_tuple(text)
        if version is not None and version < MIN_UWSGI:
            found.append(W004(f"uWSGI {text} ({machine.uwsgi}) is older than {'.'.join(map(str, MIN_UWSGI))}"))
    return found


@register()
def somaxconn(ctx: CheckContext) -> list[Finding]:
    plan = ctx.plan
    if plan is None:
        return []
    wanted = DEFAULT_LISTEN if ctx.config.uwsgi.listen == "auto" else int(ctx.config.uwsgi.listen)
    if ctx.machine.somaxconn >= wanted:
        return []
    return [W005(
        f"net.core.somaxconn = {ctx.machine.somaxconn}, below the planned listen queue of {wanted}: "
        f"uWSGI and nginx are capped at {plan.listen}",
        obj=f"uwsgi.listen (from {ctx.loaded.origin('uwsgi.listen')})",
    )]
