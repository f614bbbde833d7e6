"""The "wsgistack" stack: whatever ``wsgistack run`` starts with its defaults.

Built by wsgistack's own start sequence (:func:`wsgistack.start.run` with the
``BENCH`` flags) and run by wsgistack's own process manager
(``python -m wsgistack.runner.manager processes.json``), as ``wsgistack run`` does: the
manager relays nginx's access log (stdout) and checks the workers' memory, and its CPU
time is part of the stack's.

The stack is planned for the CPUs the servers are pinned to (``--server-cpus``), as
``wsgistack run`` under ``taskset`` would plan it, not for the harness's own CPUs.

Only what the benchmark needs is overridden: the port, the runtime dir, the served app
(the bench wrapper, so ``/slow`` and ``/wn/`` exist) and the static mapping. Every
performance setting stays at wsgistack's default, unless a variant
(``--variant NAME:section.setting=value,...``) overrides real settings, validated as
wsgistack validates any setting.

A protection that has no setting can be taken out of the rendered files for a measurement
with an *ablation* (``--variant NAME:-hidden_files``, see :data:`ABLATIONS`): bench-only,
never something a user can configure, and an ablation that no longer finds its text in
the rendered files is an error, not a silent no-op.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .stacks import BENCHAPP, Process, StackContext, StackPlan, StackUnavailable, _prepare, app_env

_FLAG = "--bench"
VARIANT_FLAG = "--variant"


def bench_overrides(ctx: StackContext) -> dict[str, tuple[Any, str]]:
    """CLI-level overrides (dotted key -> (value, flag)) for ``load_config``."""
    return {
        "server.host": ("127.0.0.1", _FLAG),
        "server.port": (ctx.port, _FLAG),
        "server.access_log": (None, _FLAG),  # None = keep the default
        "runtime_dir": (str(ctx.workdir / "run"), _FLAG),
        "app.path": (str(ctx.app.project_dir), _FLAG),
        "app.target": (BENCHAPP, _FLAG),
        "app.collectstatic": (False, _FLAG),  # the harness prepares the app itself
        "app.migrate": (False, _FLAG),
        "server.static": ([{"url": "/static/", "dir": str(ctx.static_dir)}], _FLAG),
        "uwsgi.tcp_port": (ctx.aux_port, _FLAG),
        # Started as root, wsgistack drops uWSGI and Nginx workers to www-data, which often
        # cannot read a development Python (pyenv under /root). Which user runs the
        # processes does not change what is measured, so the bench keeps root.
        "user": ("root" if os.geteuid() == 0 else None, _FLAG),
    }


# --- ablations: protections without a setting, taken out for one measurement -----------------

Edit = Callable[[str], str]


def _sub(pattern: str, repl: str, count: int = 0, flags: int = re.M | re.S) -> Edit:
    def edit(text: str) -> str:
        new, n = re.subn(pattern, repl, text, count=count, flags=flags)
        if not n:
            raise StackUnavailable(f"ablation found nothing to change (pattern {pattern!r}): the template changed")
        return new

    return edit


# name -> (rendered file, edit, what it removes)
ABLATIONS: dict[str, tuple[str, Edit, str]] = {
    "hidden_files": ("nginx.conf", _sub(r"^\s*location ~\* \S+ \{\n\s*return 404;\n\s*\}\n", ""),
                     "the hidden-file regex locations"),
    "disable_symlinks": ("nginx.conf", _sub(r"^\s*disable_symlinks [^;]*;\n", ""), "disable_symlinks on static files"),
    "host_map": ("nginx.conf",
                 _sub(r'map "\$host\|\$http_host" \$wsgistack_request_host \{.*?\n    \}',
                      "map $host $wsgistack_request_host {\n        default $host;\n    }", count=1),
                 "the Host-with-port regex map ($host instead)"),
    "double_upstream": ("nginx.conf", _sub(r"(upstream wsgistack_uwsgi \{\n(\s*server [^\n]*\n))\2", r"\1", count=1),
                        "the second upstream entry (the retry on a fresh connection)"),
    "request_id": ("nginx.conf", _sub(r"^\s*add_header X-Request-ID [^;]*;\n", ""),
                   "the X-Request-ID response header"),
    "param_scrub": ("uwsgi_params", _sub(r'^uwsgi_param HTTP_[A-Z_]+ "" if_not_empty;\n', ""),
                    "the empty HTTP_* params that suppress client-sent forwarding headers"),
    "error_pages": ("nginx.conf", _sub(r"^\s*error_page 50[24] @wsgistack_50[24];\n", ""),
                    "nginx's own 502/504 pages naming the request id"),
    # Not a protection: the access log's one write() per request, buffered instead (64 KB, flushed
    # at least every 100 ms; the process manager reads its pipe every 100 ms anyway).
    "log_writes": ("nginx.conf", _sub(r"access_log /dev/stdout wsgistack;", "access_log /dev/stdout wsgistack buffer=64k flush=100ms;",
                                      count=1), "one write per access log line (buffered instead)"),
    # The methods sent once (issue 20: PUT/DELETE never replayed): the `if` and its redirect.
    "sent_once": ("nginx.conf", _sub(r"^\s*if \(\$wsgistack_sent_once\) \{\n\s*return 418;\n\s*\}\n\s*error_page 418 = @wsgistack_once;\n", "",
                                     count=1), "the methods-sent-once redirect (PUT/DELETE to the upstream listed once)"),
    # granian: the keep-alive upstream's repeated entries (one per retry-able idle connection).
    "granian_entries": ("nginx.conf", _sub(r"(upstream wsgistack_granian \{\n(\s*server [^\n]*\n))\2+", r"\1", count=1),
                        "the granian upstream's repeated entries (one instead)"),
    # granian: the empty proxy_set_header lines that drop client-sent forwarding headers.
    "proxy_scrub": ("proxy_params", _sub(r'^proxy_set_header (?!Connection )[A-Za-z-]+ "";\n', ""),
                    "the empty proxy headers that drop client-sent forwarding headers (granian)"),
    # granian: the forwarding headers the app gets (its environ comes from X-Wsgistack-Cgi).
    "proxy_forwarded": ("proxy_params", _sub(r"^proxy_set_header (?:X-Forwarded-(?:Host|Proto|For)|X-Real-IP) [^;]*;\n", ""),
                        "X-Forwarded-Host/-Proto/-For and X-Real-IP to granian"),
    # The shim keeps loading the app (and the log-record hook); requests go to the app directly.
    "shim": ("wsgistack_app.py", _sub(r"\Z", "\n\napplication = _app  # bench ablation: no readiness wrapper\n",
                                      count=1), "the readiness/request-id wrapper around the app"),
}


def parse_variant_spec(spec: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """``"quiet:server.access_log=false,-hidden_files"`` -> (name, settings, ablations).
    A variant changes something (the same stack twice is ``--twin``)."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name or not rest.strip():
        raise ValueError(f"{spec!r} is not NAME:SECTION.SETTING=VALUE,... (or -ABLATION)")
    settings: dict[str, str] = {}
    ablations: list[str] = []
    for item in filter(None, (part.strip() for part in rest.split(","))):
        if item.startswith("-"):
            if item[1:] not in ABLATIONS:
                raise ValueError(f"variant {name!r}: unknown ablation {item!r}; known: "
                                 + ", ".join("-" + a for a in ABLATIONS))
            ablations.append(item[1:])
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"variant {name!r}: expected section.setting=value or -ablation, got {item!r}")
        settings[key.strip()] = value.strip()
    return name, settings, tuple(ablations)


def wsgistack_stack(name: str = "wsgistack", settings: Mapping[str, str] | None = None,
                    ablations: tuple[str, ...] = ()) -> Callable[[StackContext], StackPlan]:
    """wsgistack's stack, with real settings overridden (``settings``: dotted key -> value as
    on a command line) and bench-only ``ablations`` applied to the rendered files."""

    def build(ctx: StackContext) -> StackPlan:
        from wsgistack import start
        from wsgistack.errors import WsgistackError
        from wsgistack.machine import detect

        _prepare(ctx)
        env = app_env(ctx)
        cli = {**bench_overrides(ctx), **{k: (v, VARIANT_FLAG) for k, v in (settings or {}).items()}}
        try:
            # The start sequence `wsgistack run` uses, with the bench's flags (no preflight, no
            # prestart: the harness prepares the app). No environment for config resolution: the
            # bench must measure the defaults, whatever WSGISTACK_* variables the caller's shell has.
            # Planned for the server CPUs: the harness itself is not pinned.
            machine = dataclasses.replace(detect(), cpus=ctx.server_cpus)
            started = start.run(ctx.app.project_dir, env=env, config_env={}, cli=cli,
                                     flags=start.BENCH, machine=machine)
        except WsgistackError as exc:
            raise StackUnavailable(f"wsgistack refused the config: {exc}") from exc
        except Exception as exc:  # a stack that cannot start is reported as skipped, not a crash
            raise StackUnavailable(f"wsgistack render failed: {type(exc).__name__}: {exc}") from exc
        runtime = started.plan.paths.runtime
        for ablation in ablations:
            filename, edit, _ = ABLATIONS[ablation]
            path = runtime / filename
            if filename == "wsgistack_app.py":  # the shim the plan rendered (granian's has a directory of its own)
                path = started.plan.paths.granian_shim if started.plan.granian else started.plan.paths.shim
            path.write_text(edit(path.read_text()))
        (ctx.workdir / "variant.json").write_text(json.dumps(
            {"settings": dict(settings or {}), "ablations": list(ablations), "planned_cpus": ctx.server_cpus}, indent=2))
        return managed_plan(started.plan.paths.processes, ctx, env, name)

    return build


wsgistack_default = wsgistack_stack()


def managed_plan(manifest_path: Path, ctx: StackContext, env: dict[str, str], name: str = "wsgistack") -> StackPlan:
    """One process: wsgistack's process manager with the rendered ``processes.json``."""
    manager = Process("wsgistack", (sys.executable, "-m", "wsgistack.runner.manager", str(manifest_path)),
                      env, ctx.app.project_dir)
    return StackPlan(name, f"http://127.0.0.1:{ctx.port}", (manager,))


def plan_from_rendered(manifest_path: Path, ctx: StackContext, env: dict[str, str]) -> StackPlan:
    """Turn ``processes.json`` from the renderer into a plan of separate processes, without
    wsgistack's process manager (pinning is added by the harness)."""
    manifest = json.loads(manifest_path.read_text())
    processes = tuple(
        Process(
            name=str(p["name"]),
            argv=tuple(str(a) for a in p["argv"]),
            env={**env, **{str(k): str(v) for k, v in (p.get("env") or {}).items()}},
            cwd=Path(p.get("cwd") or ctx.app.project_dir),
        )
        for p in manifest["processes"]
    )
    return StackPlan("wsgistack", f"http://127.0.0.1:{ctx.port}", processes)


def listen_port(nginx_conf: str) -> int | None:
    """The first ``listen`` port in an nginx.conf (to cross-check the rendered config)."""
    match = re.search(r"^\s*listen\s+(?:[\d.]+:)?(\d+)", nginx_conf, re.M)
    return int(match.group(1)) if match else None


def wsgistack_balanced(ctx: StackContext) -> StackPlan:
    """The wsgistack stack behind `wsgistack balance` (HAProxy, one node): the balancer's
    cost, against the "wsgistack" stack hit directly in the same run. The node's nginx
    listens on the aux port (uWSGI stays on its unix socket); HAProxy on the client port,
    with the haproxy.cfg `wsgistack balance` renders (checks, retries, request ids)."""
    import socket

    from wsgistack.plan.balancer import make_balancer_plan
    from wsgistack.config import load_config
    from wsgistack.machine import detect
    from wsgistack.render.balancer import render_balancer
    from wsgistack.render import write_files

    machine = detect()
    if not machine.haproxy:
        raise StackUnavailable("haproxy is not installed")
    node = wsgistack_stack("wsgistack-balanced", {"server.port": str(ctx.aux_port)})(ctx)
    with socket.socket() as s:  # the stats page needs a port of its own
        s.bind(("127.0.0.1", 0))
        stats_port = s.getsockname()[1]
    runtime = ctx.workdir / "balancer"
    loaded = load_config(ctx.app.project_dir, env={}, cli={
        "balancer.nodes": ([f"127.0.0.1:{ctx.aux_port}"], _FLAG),
        "balancer.host": ("127.0.0.1", _FLAG),
        "balancer.port": (ctx.port, _FLAG),
        "balancer.stats_port": (stats_port, _FLAG),
        "runtime_dir": (str(runtime), _FLAG),
    })
    plan = make_balancer_plan(loaded, machine)
    write_files(render_balancer(plan), runtime)
    haproxy = Process("haproxy", (machine.haproxy, "-db", "-f", str(plan.paths.config)), {}, runtime)
    return StackPlan("wsgistack-balanced", f"http://127.0.0.1:{ctx.port}", (*node.processes, haproxy))
