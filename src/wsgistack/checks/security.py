"""perms: who runs what, and who can reach the sockets and files.

The ids are ``perms.*`` rather than ``security.*`` because Django owns ``security.W004``
and its kin, and doctor reports Django's ids too: one id must never mean two things.
"""

from __future__ import annotations

import grp
import pwd
import stat
from pathlib import Path

from wsgistack import hosts
from wsgistack.app.access import unreachable_ancestor
from wsgistack.checks.context import CheckContext, ini_value
from wsgistack.checks.messages import ERROR, WARNING, Finding, declare
from wsgistack.checks.registry import register

E001 = declare(
    "perms.E001",
    ERROR,
    "uWSGI would run the application as root: a bug in the app is a root compromise",
    'set user = "appuser" (an existing unprivileged account) in wsgistack.toml or WSGISTACK_USER, '
    "or start wsgistack as that user",
    mode="deploy",
)
W002 = declare(
    "perms.W002",
    WARNING,
    "uWSGI would run the application as root",
    'set user = "appuser" (an existing unprivileged account), or start wsgistack as a normal user; '
    'with --deploy this is an error unless user = "root" asks for it (rootless containers)',
)
E003 = declare(
    "perms.E003",
    ERROR,
    "the configured user does not exist on this machine",
    "create the account (useradd --system appuser) or fix the user setting",
)
W004 = declare(
    "perms.W004",
    WARNING,
    "the uWSGI unix socket is open to every local user: any of them can run requests as the app",
    "keep chmod-socket = 660 (owner and nginx's group), as wsgistack renders it",
)
W005 = declare(
    "perms.W005",
    WARNING,
    "uWSGI's stats are not on a private unix socket: they show every worker's requests and memory",
    "keep uwsgi.stats on its default unix socket in the runtime dir's private/ directory",
)
E006 = declare(
    "perms.E006",
    ERROR,
    "nginx's workers cannot read a static directory: its files will be 403s",
    "make the directory and its parents readable/searchable by the nginx worker user (chmod o+rx), "
    "move it under a public path, or set user so nginx runs as the files' owner",
)
E007 = declare(
    "perms.E007",
    ERROR,
    "nginx's workers cannot reach the uWSGI socket: every request will be a 502",
    "put the runtime dir somewhere they can traverse, e.g. --runtime-dir /tmp/myapp, or run wsgistack as a normal user",
)
W008 = declare(
    "perms.W008",
    WARNING,
    "uWSGI listens on a non-loopback address (role = app): the uwsgi protocol has no authentication",
    "expose that port only on a private network the web container shares, never publish it",
)
E009 = declare(
    "perms.E009",
    ERROR,
    "a static location serves the project, the runtime dir or / itself: source, settings and secrets become downloadable",
    "map static URLs to a dedicated directory (e.g. the app's static/ or Django's STATIC_ROOT), never the project root",
)
W010 = declare(
    "perms.W010",
    WARNING,
    "the ops listener is open to other machines without a password: anyone who reaches it reads the status page "
    "and metrics (request rates, paths' latency, workers, memory, the configuration summary)",
    'set ops.basic_auth = "user:password" (WSGISTACK_OPS__BASIC_AUTH), or keep ops.host on loopback '
    "(127.0.0.1, the default) and reach it through SSH or the metrics scraper's own network",
)


@register()
def ops_open_without_auth(ctx: CheckContext) -> list[Finding]:
    """ops.host off loopback (0.0.0.0, a public address, a name) and no ops.basic_auth."""
    ops = ctx.config.ops
    if not ops.port or ctx.config.role == "worker" or hosts.is_loopback(ops.host) or ops.basic_auth:
        return []
    return [W010(f"ops.host = {ops.host!r} (from {ctx.loaded.origin('ops.host')}) serves /status and /metrics on port "
                 f"{ops.port} to anyone who reaches it, and ops.basic_auth is empty", obj="ops.host")]


@register()
def uwsgi_not_root(ctx: CheckContext) -> list[Finding]:
    """Read from the rendered uwsgi.ini: started as root, uWSGI must drop to a uid."""
    plan = ctx.plan
    if plan is None or not plan.runs_uwsgi or not ctx.machine.is_root:
        return []
    if plan.granian:  # granian has no uid option: the process manager starts it as the user
        import json

        table = json.loads(ctx.rendered.get("processes.json") or "{}")
        uid = next((p.get("user") for p in table.get("processes", []) if p.get("name") == "granian"), None)
    else:
        uid = ini_value(ctx.uwsgi_options, "uid")
    if uid not in (None, "", "0", "root"):
        return []
    obj = f"user (from {ctx.loaded.origin('user')})"
    if ctx.config.user in ("root", "0"):  # asked for on purpose, e.g. a rootless container's uid 0
        return [W002('user = "root": uWSGI runs the application as root (meant for rootless containers only)', obj=obj)]
    return [E001(obj=obj) if ctx.deploy else W002(obj=obj)]


@register()
def user_exists(ctx: CheckContext) -> list[Finding]:
    user = ctx.config.user
    if not user or not ctx.machine.is_root:
        return []
    try:
        pwd.getpwnam(user)
    except KeyError:
        return [E003(f"user {user!r} does not exist", obj=f"user (from {ctx.loaded.origin('user')})")]
    return []


@register()
def socket_mode(ctx: CheckContext) -> list[Finding]:
    plan = ctx.plan
    if plan is None or not plan.runs_uwsgi or plan.upstream.kind != "unix":
        return []
    mode = ini_value(ctx.uwsgi_options, "chmod-socket")
    if mode is None:
        return []  # uWSGI's default follows the umask (owner only)
    bits = int(mode or "666", 8)
    if bits & 0o006:
        return [W004(f"chmod-socket = {mode} lets every local user write to {plan.upstream.address}", obj="uwsgi.ini")]
    return []


@register()
def stats_private(ctx: CheckContext) -> list[Finding]:
    plan = ctx.plan
    if plan is None or not plan.runs_uwsgi:
        return []
    value = ini_value(ctx.uwsgi_options, "stats")
    if value is None:
        return []
    path = Path(value)
    if not value.startswith("/") or plan.paths.private not in path.parents:
        return [W005(f"stats = {value}", obj="uwsgi.ini")]
    return []


def user_can_read_dir(path: Path, user: str) -> bool:
    """True when ``user`` may list and enter ``path`` (r and x for them); an absent path is fine."""
    try:
        entry = pwd.getpwnam(user)
        st = path.stat()
    except (KeyError, OSError):
        return True
    if entry.pw_uid == 0:
        return True
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    if st.st_uid == entry.pw_uid:
        need = stat.S_IRUSR | stat.S_IXUSR
    elif st.st_gid in groups:
        need = stat.S_IRGRP | stat.S_IXGRP
    else:
        need = stat.S_IROTH | stat.S_IXOTH
    return st.st_mode & need == need


@register()
def static_dirs_readable(ctx: CheckContext) -> list[Finding]:
    plan = ctx.plan
    user = plan.nginx_user if plan else None
    if plan is None or not plan.runs_nginx or not user:
        return []
    found = []
    for loc in plan.locations:
        blocked = unreachable_ancestor(loc.dir, user)
        if blocked is not None:
            mode = blocked.stat().st_mode & 0o777
            found.append(E006(f"served from {loc.dir}, but nginx's workers ({user}) cannot enter {blocked} (mode {mode:o})",
                              obj=loc.url))
        elif not user_can_read_dir(loc.dir, user):
            found.append(E006(f"served from {loc.dir}, which nginx's workers ({user}) cannot list and enter "
                              f"(mode {loc.dir.stat().st_mode & 0o777:o})", obj=loc.url))
    return found


@register()
def socket_reachable(ctx: CheckContext) -> list[Finding]:
    plan = ctx.plan
    user = plan.nginx_user if plan else None
    if plan is None or not (plan.runs_nginx and user and plan.upstream.kind == "unix"):
        return []
    blocked = unreachable_ancestor(Path(plan.upstream.address), user)
    if blocked is None:
        return []
    return [E007(f"nginx's workers run as {user!r} and cannot enter {blocked} (mode {blocked.stat().st_mode & 0o777:o}) "
                 f"on the way to {plan.upstream.address}", obj="runtime_dir")]




@register()
def uwsgi_tcp_private(ctx: CheckContext) -> list[Finding]:
    """role = app only: with role = all, make_plan refuses a public tcp_host (config.E011)."""
    plan = ctx.plan
    if plan is None or not plan.runs_uwsgi or plan.upstream.kind != "tcp":
        return []
    host, _port = hosts.split(plan.upstream.address)
    if not hosts.is_public(host):  # a wildcard or a name counts as public
        return []
    return [W008(f"uWSGI listens on {plan.upstream.address}", obj=f"uwsgi.tcp_host (from {ctx.loaded.origin('uwsgi.tcp_host')})")]


@register()
def static_not_project(ctx: CheckContext) -> list[Finding]:
    plan = ctx.plan
    if plan is None or not plan.runs_nginx:
        return []
    protected = {"the project": ctx.loaded.project_dir.resolve(), "the runtime dir": plan.paths.runtime.resolve()}
    if plan.app is not None:
        protected["the app"] = plan.app.path.resolve()
    found = []
    for loc in plan.locations:
        directory = loc.dir.resolve()
        for what, path in protected.items():
            if directory == path or directory in path.parents:
                found.append(E009(f"serves {directory}, which contains {what} ({path})", obj=loc.url))
                break
    return found
