"""machine: the binaries and kernel limits the stack depends on."""

from __future__ import annotations

from wsgistack.app.interpreter import MIN_PYUWSGI_TEXT
from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import ERROR, WARNING, Finding, declare
from wsgistack.checks.registry import register
from wsgistack.machine import INSTALL_NGINX_HINT, nginx_version, version_tuple
from wsgistack.plan.stack import DEFAULT_LISTEN

# Oldest nginx the rendered files are tested with (Debian 11's); pyuwsgi's is
# wsgistack.app.interpreter.MIN_PYUWSGI, which `run` enforces.
MIN_NGINX = (1, 18)

E001 = declare("machine.E001", ERROR, "nginx is not installed (or not on PATH)", INSTALL_NGINX_HINT)
E002 = declare(
    "machine.E002",
    ERROR,
    "uWSGI (pyuwsgi) is not installed in the app's environment",
    "install it with the app's interpreter: <app python> -m pip install pyuwsgi",
)
W003 = declare(
    "machine.W003",
    WARNING,
    f"nginx is older than {'.'.join(map(str, MIN_NGINX))}, the oldest version wsgistack's config is tested with",
    "install a current nginx (Debian 12 ships 1.22) or the nginx.org packages",
)
E004 = declare(
    "machine.E004",
    ERROR,
    f"pyuwsgi in the app's environment is older than {MIN_PYUWSGI_TEXT}, the oldest wsgistack supports (`run` refuses it)",
    f"upgrade it with the app's interpreter: <app python> -m pip install --upgrade 'pyuwsgi>={MIN_PYUWSGI_TEXT}'",
)
W005 = declare(
    "machine.W005",
    WARNING,
    "net.core.somaxconn is below the listen queue wsgistack plans: bursts of connections are refused early",
    "raise it: sysctl -w net.core.somaxconn=4096 (persist in /etc/sysctl.d/; "
    "in a container: docker run --sysctl net.core.somaxconn=4096), or lower uwsgi.listen",
)


@register()
def binaries_present(ctx: CheckContext) -> list[Finding]:
    machine, role = ctx.machine, ctx.config.role
    found = []
    if role in ("all", "web") and not machine.nginx:
        found.append(E001())
    python = ctx.python
    if role in ("all", "app") and python is not None:
        if python.uwsgi is None:
            found.append(E002(f"uWSGI (pyuwsgi) is not installed in the app's environment: {python.python}, {python.why}",
                              hint=f"add it there: {python.install_uwsgi}"))
        elif python.uwsgi_too_old:
            found.append(E004(f"{python.uwsgi_dist} {python.uwsgi_version} in the app's environment ({python.python}) "
                              f"is older than {MIN_PYUWSGI_TEXT}", hint=f"upgrade it: {python.upgrade_uwsgi}"))
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
    python = ctx.python
    if python is not None and role in ("all", "app"):
        ctx.facts["app Python"] = f"{python.version} ({python.python})"
        if python.uwsgi_version:
            ctx.facts["uWSGI"] = f"{python.uwsgi_dist} {python.uwsgi_version}"
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
