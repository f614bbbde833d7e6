"""The "wsgistack" stack: whatever ``wsgistack render`` produces with its defaults.

Built by wsgistack's own start sequence (:func:`wsgistack.pipeline.start` with the
``BENCH`` flags), as ``wsgistack run`` builds it.

Only what the benchmark needs is overridden: the port, the runtime dir, the
served app (the bench wrapper, so ``/slow`` and ``/wn/`` exist) and the static
mapping. Every performance setting stays at wsgistack's default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from .stacks import BENCHAPP, Process, StackContext, StackPlan, StackUnavailable, _prepare, app_env

_FLAG = "--bench"


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


def parse_variant_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``json:server.log_format=json,ops.port=9109`` -> ("json", {...}): a wsgistack stack
    with those settings changed (for the cost of a feature: json logs, the ops listener)."""
    name, _, rest = spec.partition(":")
    settings = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not KEY=VALUE (a dotted wsgistack setting)")
        settings[key.strip()] = value.strip()
    if not name or not settings:
        raise ValueError(f"{spec!r} is not NAME:KEY=VALUE,...")
    return name, settings


def wsgistack_variant(name: str, settings: dict[str, str]) -> Any:
    """A builder for the wsgistack stack with ``settings`` (dotted keys) changed."""
    def build(ctx: StackContext) -> StackPlan:
        extra = {key: (value, f"--variant {name}") for key, value in settings.items()}
        return dataclasses.replace(wsgistack_default(ctx, extra), name=name)

    return build


def wsgistack_default(ctx: StackContext, extra: dict[str, tuple[Any, str]] | None = None) -> StackPlan:
    from wsgistack import pipeline

    _prepare(ctx)
    env = app_env(ctx)
    try:
        # The start sequence `wsgistack run` uses, with the bench's flags (no preflight, no
        # prestart: the harness prepares the app). No environment for config resolution: the
        # bench must measure the defaults, whatever WSGISTACK_* variables the caller's shell has.
        started = pipeline.start(ctx.app.project_dir, env=env, config_env={}, cli={**bench_overrides(ctx), **(extra or {})},
                                 flags=pipeline.BENCH)
    except Exception as exc:  # a stack that cannot start is reported as skipped, not a crash
        raise StackUnavailable(f"wsgistack render failed: {type(exc).__name__}: {exc}") from exc
    return plan_from_rendered(started.plan.paths.processes, ctx, env)


def plan_from_rendered(manifest_path: Path, ctx: StackContext, env: dict[str, str]) -> StackPlan:
    """Turn ``processes.json`` from the renderer into a plan (pinning is added by the harness)."""
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
