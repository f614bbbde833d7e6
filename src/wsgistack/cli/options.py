"""Options of the commands that resolve a config, generated from the config model's field
declarations (config.model.flag): a new setting with a flag appears on every command."""

from __future__ import annotations

import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wsgistack.config import FIELDS, LoadedConfig
from wsgistack.config.model import WSGI_TARGET

Row = tuple[str, str, str, bool]  # (flag, dotted config key, help, multiple)


def _multiple(dotted: str) -> bool:
    return typing.get_origin(FIELDS[dotted].annotation) is tuple


def _is_bool(dotted: str) -> bool:
    """A boolean setting, or one that is true, false or "auto" (app.migrate): --x/--no-x, and
    neither leaves it to the config (auto by default)."""
    ann = FIELDS[dotted].annotation
    return ann is bool or bool in typing.get_args(ann)


def model_options(command: str | None = None) -> tuple[Row, ...]:
    """The flags the config model declares (``json_schema_extra=flag("--port")`` in
    config/model.py), with the setting's description as their help, as gunicorn's settings
    do: the shared ones (command None), or those of one command ("run", "kube")."""
    rows = []
    for dotted, info in FIELDS.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if not extra.get("flag"):
            continue
        commands = extra.get("commands") or []
        if (command is None and not commands) or (command is not None and command in commands):
            rows.append((str(extra["flag"]), dotted, str(info.description or ""), _multiple(dotted)))
    return tuple(rows)


# The flags of every command that resolves a config (run, render, reload, status, config, doctor).
CONFIG_OPTIONS = model_options()


def _param_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def table_options(table: tuple[Row, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for a table of (flag, dotted key, help, multiple): each sets one setting;
    a boolean setting gets --flag/--no-flag."""
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for flag, dotted, help_text, multiple in reversed(table):
            decls = [f"{flag}/--no-{flag[2:]}" if _is_bool(dotted) else flag, _param_name(flag)]
            func = click.option(*decls, multiple=multiple, default=None, help=f"{help_text} [{dotted}]")(func)
        return func
    return decorate


config_file_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config file (default: wsgistack.toml or [tool.wsgistack] in pyproject.toml)",
)


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Every shared config flag (the model's), and --config."""
    return config_file_option(table_options(CONFIG_OPTIONS)(func))


def _commands_with_flags() -> list[str]:
    return sorted({c for info in FIELDS.values() if isinstance(info.json_schema_extra, dict)
                   for c in info.json_schema_extra.get("commands", ())})


def command_options(command: str | None) -> tuple[Row, ...]:
    """The flags a command that resolves a config has: the shared ones and its own (the
    balancer's commands have only their own: its --host and --port are HAProxy's)."""
    if command in BALANCER_COMMANDS:
        return model_options(command) + tuple(r for r in CONFIG_OPTIONS if r[1] == "runtime_dir")
    if command:
        return CONFIG_OPTIONS + model_options(command)
    # (a setting's flag on several commands, such as the [image] ones, is one row)
    return tuple(dict.fromkeys(CONFIG_OPTIONS + tuple(r for c in _commands_with_flags() if c not in BALANCER_COMMANDS
                                                      for r in model_options(c))))


BALANCER_COMMANDS = ("balance", "rollout")


def overrides(params: dict[str, Any], table: tuple[Row, ...] | None = None) -> dict[str, tuple[Any, str]]:
    """Pop the config flags from a command's params: dotted key -> (value, flag). Without a
    table, every flag the model declares that the command has (and a target given as PATH)."""
    out: dict[str, tuple[Any, str]] = {}
    ctx = click.get_current_context(silent=True)
    target = ctx.meta.get(_TARGET_META) if ctx and table is None else None
    if table is None:
        name = ctx.info_name if ctx else None
        table = command_options(name if name in (*_commands_with_flags(), *BALANCER_COMMANDS) else None)
    for flag, dotted, _help, multiple in table:
        value = params.pop(_param_name(flag), None)
        if multiple:
            value = list(value) if value else None
        if value is not None:
            out[dotted] = (value, f"--no-{flag[2:]}" if value is False else flag)
    if target:
        if "app.target" in out and out["app.target"][0] != target:
            raise click.UsageError(f"the WSGI target is given twice: {target!r} and --app {out['app.target'][0]!r}")
        out["app.target"] = (target, "TARGET")
    return out


def load(path: Path, params: dict[str, Any], extra: dict[str, tuple[Any, str]] | None = None) -> LoadedConfig:
    """Resolve the config for a command from its flags, the environment and the config file
    (the start sequence's first step, start.load)."""
    from wsgistack import start

    cli = overrides(params)
    cli.update(extra or {})
    return start.load(path, env=os.environ, cli=cli, config_file=params.pop("config_file", None))


# `wsgistack run myapp:app`, as gunicorn, uvicorn, granian and waitress take it: a PATH that
# does not exist and has a WSGI target's shape is the target (app.target), served from ".".
_TARGET_META = "wsgistack.target"


class ProjectOrTarget(click.Path):
    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and ":" in value and WSGI_TARGET.fullmatch(value) and not Path(value).exists():
            if ctx is not None:
                ctx.meta[_TARGET_META] = value
            return Path(".")
        return super().convert(value, param, ctx)


# The project directory (default: the current one), or for the commands that serve it, the
# WSGI target itself, as gunicorn takes it.
project_argument = click.argument(
    "path", type=ProjectOrTarget(exists=True, file_okay=False, path_type=Path), default=".", metavar="[PATH|TARGET]"
)
project_dir_argument = click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
