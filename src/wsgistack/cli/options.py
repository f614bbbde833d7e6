"""Options shared by the commands that resolve a config, declared once as a table."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wsgistack.config import LoadedConfig

# (flag, dotted config key, help, multiple)
CONFIG_OPTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("--app", "app.target", "WSGI target: module:callable, module:factory() or auto", False),
    ("--python", "app.python", "the app's Python interpreter or virtualenv (default: VIRTUAL_ENV, ./.venv, ./venv)", False),
    ("--host", "server.host", "address nginx listens on", False),
    ("--port", "server.port", "port nginx listens on", False),
    ("--server-name", "server.server_names", "a Host name to serve (repeatable; * = any)", True),
    ("--processes", "uwsgi.processes", "uWSGI worker processes (or auto)", False),
    ("--threads", "uwsgi.threads", "threads per worker", False),
    ("--socket", "uwsgi.socket", "unix or tcp between nginx and uWSGI", False),
    ("--role", "role", "all, app (uWSGI only) or web (nginx only)", False),
    ("--runtime-dir", "runtime_dir", "directory for sockets, pidfiles and rendered configs", False),
    ("--timeout", "request_timeout", "seconds a request may run (or auto)", False),
    ("--tls", "tls.mode", "HTTPS: off, self-signed (a local dev CA), files or acme", False),
    ("--tls-port", "tls.port", "port nginx serves HTTPS on (server.port then redirects)", False),
)


def _param_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def table_options(table: tuple[tuple[str, str, str, bool], ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for a table of (flag, dotted key, help, multiple): each sets one setting."""
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for flag, dotted, help_text, multiple in reversed(table):
            func = click.option(flag, _param_name(flag), multiple=multiple, default=None, help=f"{help_text} [{dotted}]")(func)
        return func
    return decorate


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = table_options(CONFIG_OPTIONS)(func)
    func = click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="config file (default: wsgistack.toml or [tool.wsgistack] in pyproject.toml)",
    )(func)
    return func


def overrides(params: dict[str, Any], table: tuple[tuple[str, str, str, bool], ...] = CONFIG_OPTIONS) -> dict[str, tuple[Any, str]]:
    """Pop the config flags from a command's params: dotted key -> (value, flag)."""
    out: dict[str, tuple[Any, str]] = {}
    ctx = click.get_current_context(silent=True)
    target = ctx.meta.get(_TARGET_META) if ctx and table is CONFIG_OPTIONS else None
    for flag, dotted, _help, multiple in table:
        value = params.pop(_param_name(flag), None)
        if multiple:
            value = list(value) if value else None
        if value is not None:
            out[dotted] = (value, flag)
    if target:
        if "app.target" in out and out["app.target"][0] != target:
            raise click.UsageError(f"the WSGI target is given twice: {target!r} and --app {out['app.target'][0]!r}")
        out["app.target"] = (target, "TARGET")
    for name, dotted in (("migrate", "app.migrate"), ("collectstatic", "app.collectstatic")):
        if table is not CONFIG_OPTIONS:
            break
        value = params.pop(name, None)
        if value is not None:
            out[dotted] = (value, f"--{name}" if value else f"--no-{name}")
    return out


def load(path: Path, params: dict[str, Any], extra: dict[str, tuple[Any, str]] | None = None) -> LoadedConfig:
    """Resolve the config for a command from its flags, the environment and the config file
    (the start sequence's first step, pipeline.load)."""
    from wsgistack import pipeline

    cli = overrides(params)
    cli.update(extra or {})
    return pipeline.load(path, env=os.environ, cli=cli, config_file=params.pop("config_file", None))


# `wsgistack run myapp:app`, as gunicorn, uvicorn, granian and waitress take it: a PATH that
# does not exist and has a WSGI target's shape is the target (app.target), served from ".".
TARGET_SHAPE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(\))?")
_TARGET_META = "wsgistack.target"


class ProjectOrTarget(click.Path):
    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and TARGET_SHAPE.fullmatch(value) and not Path(value).exists():
            if ctx is not None:
                ctx.meta[_TARGET_META] = value
            return Path(".")
        return super().convert(value, param, ctx)


project_argument = click.argument(
    "path", type=ProjectOrTarget(exists=True, file_okay=False, path_type=Path), default=".", metavar="[PATH|TARGET]"
)
