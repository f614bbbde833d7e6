"""config: settings that validate one by one but do not fit together or with the machine.

Numbered from 101: config.E001-E0xx are the errors ``load_config`` raises for values that
cannot be loaded at all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from wsgistack.checks.context import CheckContext, ini_value, walk
from wsgistack.checks.messages import ERROR, ID_RE, MESSAGES, WARNING, Finding, declare
from wsgistack.checks.registry import register
from wsgistack.plan.stack import FIXED_OVERHEAD, MB
from wsgistack.plan.stop import stop_plan

# Seconds a platform waits after SIGTERM before it sends SIGKILL: stop_timeout must end first.
SHUTDOWN_GRACE: dict[str, int] = {"heroku": 30}

E101 = declare(
    "config.E101",
    ERROR,
    "timeouts do not nest: uWSGI's harakiri must end before nginx's uwsgi_read_timeout, and that before the platform router's",
    "leave request_timeout at auto, or set it a few seconds below the router's limit; wsgistack derives nginx's timeout from it",
)
W102 = declare(
    "config.W102",
    WARNING,
    "the stop can take longer than the platform's shutdown grace: in-flight requests and jobs are killed with SIGKILL",
    "lower stop_timeout (nginx's and uWSGI's budgets, one after the other) or a background process's "
    "stop_timeout until the stop fits the platform's grace period (Heroku: 30 s)",
)
W103 = declare(
    "config.W103",
    WARNING,
    "the uWSGI workers do not fit in the memory limit",
    "lower uwsgi.processes (or leave it at auto, which sizes it from memory), or give the machine/container more memory",
)
W104 = declare(
    "config.W104",
    WARNING,
    "uwsgi.reload_on_rss allows the workers together to grow past the memory limit",
    "lower uwsgi.reload_on_rss (or set 0 = auto) so processes x reload_on_rss stays below the memory limit",
)
W105 = declare(
    "config.W105",
    WARNING,
    "server.trusted_proxies trusts every address: any client can set X-Forwarded-For and X-Forwarded-Proto",
    "list only your load balancer's or router's addresses/CIDRs in server.trusted_proxies",
)
W106 = declare(
    "config.W106",
    WARNING,
    "a server.static directory does not exist: nginx will answer 404 for its URLs",
    "create the directory or fix server.static's dir (relative paths are relative to app.path)",
)
W107 = declare(
    "config.W107",
    WARNING,
    "silence names a wsgistack check id that does not exist",
    "fix the id (see docs/doctor.md or `wsgistack doctor`); ids of Django, gixy and hadolint checks are not verified",
)


def _seconds(text: str | None) -> int | None:
    """nginx time ("33s", "2m", "33") or a plain uWSGI number, in seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", text.strip())
    if not match:
        return None
    value, unit = int(match[1]), match[2] or "s"
    return {"ms": value // 1000, "s": value, "m": value * 60, "h": value * 3600}[unit]


def _nginx_read_timeout(ctx: CheckContext) -> int | None:
    """nginx's wait for the app: the uwsgi_read_timeout of `location /` (the readiness
    location has its own, deliberately short one)."""
    found = None
    for directive, parents in walk(ctx.nginx_tree):
        if directive["directive"] in ("uwsgi_read_timeout", "proxy_read_timeout") and directive["args"]:
            in_app_location = bool(parents) and parents[-1]["directive"] == "location" and parents[-1]["args"] == ["/"]
            if in_app_location or found is None:
                found = _seconds(directive["args"][0])
            if in_app_location:
                break
    return found


@register()
def timeouts_nest(ctx: CheckContext) -> list[Finding]:
    """harakiri < nginx's uwsgi_read_timeout < router timeout, read from what we render."""
    plan = ctx.plan
    if plan is None:
        return []
    harakiri = _seconds(ini_value(ctx.uwsgi_options, "harakiri")) if plan.runs_uwsgi else plan.harakiri
    nginx = _nginx_read_timeout(ctx) if plan.runs_nginx else plan.nginx_timeout
    harakiri = plan.harakiri if harakiri is None else harakiri
    nginx = plan.nginx_timeout if nginx is None else nginx
    problems = []
    if harakiri >= nginx:
        problems.append(f"uWSGI harakiri = {harakiri}s is not shorter than nginx's uwsgi_read_timeout = {nginx}s")
    if plan.router_timeout is not None and nginx >= plan.router_timeout:
        problems.append(f"nginx waits {nginx}s, not less than the {ctx.config.platform} router's {plan.router_timeout}s")
    if not problems:
        return []
    return [E101("; ".join(problems) + ": a slow request is cut by the outer layer before the inner one can log and recover it",
                 obj=f"request_timeout (from {ctx.loaded.origin('request_timeout')})")]


@register()
def stop_within_platform_grace(ctx: CheckContext) -> list[Finding]:
    """The whole stop (plan/stop.py: nginx, then uWSGI, background processes beside them, each
    within its own budget) against the grace a platform gives and nobody can change."""
    grace = SHUTDOWN_GRACE.get(ctx.config.platform)
    stop = stop_plan(ctx.config)
    if grace is None or stop.total < grace:
        return []
    return [W102(f"a stop may take {stop.total}s ({stop.describe()}), but {ctx.config.platform} sends SIGKILL {grace}s "
                 "after SIGTERM", obj=f"stop_timeout (from {ctx.loaded.origin('stop_timeout')}), processes.*.stop_timeout")]


@register()
def workers_fit_in_memory(ctx: CheckContext) -> Iterator[Finding]:
    plan, limit = ctx.plan, ctx.machine.memory_limit
    if plan is None or not plan.runs_uwsgi or not limit:
        return
    origin = ctx.loaded.origin("uwsgi.processes")
    budget = plan.memory
    need = budget.need(plan.processes)
    if need > limit:
        fits = budget.fits(limit)
        yield W103(
            f"{plan.processes} worker{'s' if plan.processes != 1 else ''} need about {need // MB} MB ({budget.describe()}), "
            f"over the memory limit of {limit // MB} MB"
            + (f", which holds {fits}" if fits > 0 else ", which cannot hold even one worker beside the rest")
            + ": the OOM killer will end workers under load",
            obj=f"uwsgi.processes (from {origin})",
        )
    if ctx.config.uwsgi.reload_on_rss:
        ceiling = plan.processes * plan.reload_on_rss_mb * MB + FIXED_OVERHEAD
        if ceiling > limit:
            yield W104(
                f"{plan.processes} workers may each reach {plan.reload_on_rss_mb} MB before they are recycled "
                f"({ceiling // MB} MB in all), over the memory limit of {limit // MB} MB",
                obj=f"uwsgi.reload_on_rss (from {ctx.loaded.origin('uwsgi.reload_on_rss')})",
            )


@register()
def trusted_proxies_are_specific(ctx: CheckContext) -> list[Finding]:
    wide = [c for c in ctx.config.server.trusted_proxies if ipaddress.ip_network(c, strict=False).prefixlen == 0]
    if not wide:
        return []
    return [W105(f"server.trusted_proxies contains {', '.join(wide)}: every client may claim any address and scheme",
                 obj=f"server.trusted_proxies (from {ctx.loaded.origin('server.trusted_proxies')})")]


@register()
def static_dirs_exist(ctx: CheckContext) -> list[Finding]:
    if ctx.plan is None or not ctx.plan.runs_nginx:
        return []
    return [
        W106(f"{loc.url} is mapped to {loc.dir}, which does not exist", obj="server.static")
        for loc in ctx.plan.locations
        if loc.role == "extra" and not loc.dir.is_dir()
    ]


@register()
def silenced_ids_exist(ctx: CheckContext) -> list[Finding]:
    areas = {m.area for m in MESSAGES.values()}
    unknown = [
        i for i in ctx.config.silence
        if (m := ID_RE.match(i)) and m["area"] in areas and i not in MESSAGES
        # app.E001-E0xx and config.E001-E0xx are load errors (app.E100 carries them as origin ids)
        and not (m["area"] in ("app", "config") and int(m["number"]) < 100)
    ]
    return [W107(f"silence lists {i!r}, which no wsgistack check declares", obj=f"silence (from {ctx.loaded.origin('silence')})")
            for i in unknown]
