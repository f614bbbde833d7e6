"""nginx: the rendered nginx.conf, as nginx itself (``nginx -t``), gixy-ng and our own rules see it.

gixy-ng runs in-process on the rendered files (about 50 ms). Our rules cover what gixy
does not: an alias that drops the slash, an unlimited or implicit body size, and a public
listen that serves the app for any Host. ``server_tokens`` is ours too (gixy's
version_disclosure is skipped, so one problem is one finding).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import subprocess
from typing import Any

from wsgistack import hosts
from wsgistack.checks.context import CheckContext, walk
from wsgistack.checks.messages import ERROR, INFO, WARNING, Finding, declare
from wsgistack.checks.registry import register

E001 = declare(
    "nginx.E001",
    ERROR,
    "`nginx -t` rejects the rendered configuration",
    "fix the setting nginx names in its message (server.*, a static dir, user); "
    "`wsgistack render --out DIR` writes the files to read",
)
W002 = declare(
    "nginx.W002",
    WARNING,
    "`nginx -t` warns about the rendered configuration",
    "read nginx's warning; it usually names a duplicated server name or an ignored directive",
)
E003 = declare(
    "nginx.E003",
    ERROR,
    "gixy-ng reports a high-severity problem in the rendered configuration",
    "follow gixy's reference link for the plugin named in the message; report it to wsgistack if the template caused it",
)
W004 = declare(
    "nginx.W004",
    WARNING,
    "gixy-ng reports a medium- or low-severity problem in the rendered configuration",
    "follow gixy's reference link for the plugin named in the message",
)
I005 = declare(
    "nginx.I005",
    INFO,
    "gixy-ng reports a note on the rendered configuration",
    "follow gixy's reference link for the plugin named in the message",
)
W006 = declare(
    "nginx.W006",
    WARNING,
    "gixy-ng could not analyse the rendered configuration",
    "check that `nginx -t` accepts it; if it does, this is a gixy limitation: silence nginx.W006",
)
I007 = declare(
    "nginx.I007",
    INFO,
    "gixy-ng is not installed: the nginx configuration was not analysed",
    "install it into wsgistack's environment: pip install gixy-ng",
)
W010 = declare(
    "nginx.W010",
    WARNING,
    "an alias does not end with / while its location does: /static/app.css maps to <dir>app.css",
    "end the alias directory with / (wsgistack's server.static entries always do)",
)
W011 = declare(
    "nginx.W011",
    WARNING,
    "server_tokens is not off: nginx shows its version in the Server header and error pages",
    "set server_tokens off in the http block",
)
W012 = declare(
    "nginx.W012",
    WARNING,
    "client_max_body_size is unlimited (0) or left to nginx's default",
    "set server.max_body_size to the largest upload you accept, e.g. 20M",
)
W013 = declare(
    "nginx.W013",
    WARNING,
    "nginx listens on a public address and passes requests for any Host to the app",
    "set server.server_names (NGINX_SERVER_NAME) to your domain names; nginx then closes connections for other Hosts",
    mode="deploy",
)

# Plugins whose subject one of our rules reports (one problem, one finding).
GIXY_SKIPS = ("version_disclosure",)
GIXY_LEVELS = {"HIGH": E003, "MEDIUM": W004, "LOW": W004, "UNSPECIFIED": I005}


@register(tags=("nginx-t",))
def nginx_accepts_config(ctx: CheckContext) -> list[Finding]:
    nginx = ctx.machine.nginx
    directory = ctx.nginx_dir
    if nginx is None or directory is None:
        return []  # machine.E001 says nginx is missing
    conf = directory / "nginx.conf"
    proc = subprocess.run([nginx, "-t", "-p", str(directory), "-c", str(conf)], capture_output=True, text=True, timeout=60)
    # "nginx: [emerg] 123#123: getpwnam(...) failed in /tmp/.../nginx.conf:8" -> "getpwnam(...) failed in nginx.conf:8"
    lines = [
        re.sub(r"^\d+#\d+: ", "", ln.split("] ", 1)[-1]).replace(f"{directory}/", "")
        for ln in proc.stderr.splitlines()
    ]
    if proc.returncode != 0:
        problems = [ln for ln in lines if "test failed" not in ln and "syntax is ok" not in ln]
        return [E001(f"nginx -t: {problems[0] if problems else 'failed'}", obj="nginx.conf", details="\n".join(problems[1:]))]
    return [W002(f"nginx -t: {clean}", obj="nginx.conf") for ln, clean in zip(proc.stderr.splitlines(), lines) if "[warn]" in ln]


def gixy_report(path: str) -> list[dict[str, Any]]:
    """gixy-ng's findings for one file, as its own JSON formatter gives them (``gixy -f json``).
    Raises ImportError when gixy-ng is not installed."""
    from gixy.core.config import Config as GixyConfig
    from gixy.core.manager import Manager
    from gixy.formatters.json import JsonFormatter

    gixy_log = logging.getLogger("gixy")
    level = gixy_log.level
    gixy_log.setLevel(logging.CRITICAL)  # it logs parse problems itself; we report them
    try:
        formatter = JsonFormatter()
        with Manager(config=GixyConfig(skips=list(GIXY_SKIPS), load_default_vars=True)) as manager:
            with open(path, "rb") as fh, contextlib.redirect_stdout(io.StringIO()):
                manager.audit(path, fh, is_stdin=False)
            formatter.feed(path, manager)
        return list(json.loads(formatter.flush()))
    finally:
        gixy_log.setLevel(level)


@register(tags=("gixy",))
def gixy(ctx: CheckContext) -> list[Finding]:
    if ctx.nginx_dir is None:
        return []
    try:
        import gixy as gixy_pkg
    except ImportError:
        # Where pip is absent on purpose (the image), the hint could not be followed: say nothing.
        import importlib.util

        return [I007()] if importlib.util.find_spec("pip") is not None else []
    ctx.facts["gixy-ng"] = str(getattr(gixy_pkg, "version", "?"))
    try:
        issues = gixy_report(str(ctx.nginx_dir / "nginx.conf"))
    except Exception as exc:  # noqa: BLE001 - gixy's own parser errors have no stable class
        return [W006(f"gixy-ng failed: {exc}")]
    found = []
    tls = ctx.plan.tls if ctx.plan is not None else None
    for issue in issues:
        if issue.get("plugin") == "hsts_header" and tls is not None and tls.hsts_max_age is None:
            continue  # HSTS off on purpose: tls.hsts (auto is off for a dev certificate)
        declared = GIXY_LEVELS.get(str(issue.get("severity", "")).upper(), W004)
        reason = f" ({issue['reason']})" if issue.get("reason") else ""
        line = f":{issue['line']}" if issue.get("line") else ""
        found.append(declared(
            f"gixy {issue['plugin']}: {issue['summary']}{reason}",
            obj=f"nginx.conf{line}",
            origin_id=f"gixy.{issue['plugin']}",
            hint=f"{issue.get('description', '')} See {issue.get('reference', 'gixy docs')}".strip(),
            details=str(issue.get("config", "")).strip(),
        ))
    return found


def _is_prefix_location(args: list[str]) -> bool:
    return bool(args) and args[0] not in ("~", "~*", "=", "@") and not args[0].startswith("@")


@register()
def alias_keeps_slash(ctx: CheckContext) -> list[Finding]:
    found = []
    for directive, parents in walk(ctx.nginx_tree):
        if directive["directive"] != "alias" or not parents or parents[-1]["directive"] != "location":
            continue
        loc_args = parents[-1]["args"]
        url = loc_args[-1] if loc_args else ""
        target = directive["args"][0] if directive["args"] else ""
        if _is_prefix_location(loc_args) and url.endswith("/") and not target.endswith("/"):
            found.append(W010(f"location {url} has alias {target} without a trailing slash", obj=f"nginx.conf:{directive['line']}"))
    return found


@register()
def server_tokens_off(ctx: CheckContext) -> list[Finding]:
    if not ctx.nginx_tree:
        return []
    values = [d["args"][0] for d, parents in walk(ctx.nginx_tree) if d["directive"] == "server_tokens" and d["args"]]
    if values and all(v == "off" for v in values):
        return []
    shown = ", ".join(f"server_tokens {v}" for v in values if v != "off") or "no server_tokens directive (default: on)"
    return [W011(f"server_tokens is not off: {shown}", obj="nginx.conf")]


@register()
def body_size_limited(ctx: CheckContext) -> list[Finding]:
    if not ctx.nginx_tree:
        return []
    sizes = [(d, p) for d, p in walk(ctx.nginx_tree) if d["directive"] == "client_max_body_size"]
    unlimited = [d for d, _p in sizes if d["args"] and d["args"][0].strip().lower() in ("0", "0k", "0m", "0g")]
    if unlimited:
        return [W012("client_max_body_size 0 disables the upload limit: one client can fill the disk",
                     obj=f"nginx.conf:{unlimited[0]['line']}")]
    if not sizes:
        return [W012("no client_max_body_size: nginx's 1 MB default applies, unknown to the app",
                     obj="nginx.conf")]
    return []


def _is_loopback(listen: str) -> bool:
    """nginx listen forms: 8000, *:80, 0.0.0.0:80, 127.0.0.1:8000, [::1]:8000, localhost, unix:/path."""
    if listen.startswith("unix:"):
        return True
    if listen.isdigit() or listen.startswith("*"):
        return False  # a bare port listens on every address
    if listen.startswith("["):
        host = listen[1 : listen.find("]")]
    else:
        host = listen.rsplit(":", 1)[0] if ":" in listen else listen
    return hosts.is_loopback(host)  # a host name: assume public


@register(deploy=True)
def public_listen_checks_host(ctx: CheckContext) -> list[Finding]:
    found = []
    for directive, parents in walk(ctx.nginx_tree):
        if directive["directive"] != "server" or not parents or parents[-1]["directive"] != "http":
            continue
        body = directive.get("block", [])
        listens = [d["args"][0] for d in body if d["directive"] == "listen" and d["args"]]
        names = [a for d in body if d["directive"] == "server_name" for a in d["args"]]
        # The readiness location passes to uWSGI from every server, but only to wsgistack's
        # shim, which answers it before the app: it passes no Host to the app.
        ready = ["=", ctx.config.server.ready_path]
        serves_app = any(
            d["directive"] in ("uwsgi_pass", "proxy_pass") and not any(p.get("args") == ready for p in ps)
            for d, ps in walk(body)
        )
        public = [ln for ln in listens if not _is_loopback(ln)]
        if serves_app and public and all(n in ("_", "", "*") for n in names):
            found.append(W013(
                f"listen {public[0]} with server_name {' '.join(names) or '(none)'} passes every Host to the app",
                obj=f"nginx.conf:{directive['line']}",
            ))
    return found

