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
            extra = FIELDS[dotted].json_schema_extra
            aliases = list(extra.get("aliases") or []) if isinstance(extra, dict) else []
            decls = [f"{flag}/--no-{flag[2:]}" if _is_bool(dotted) else flag, *aliases, _param_name(flag)]
            func = click.option(*decls, multiple=multiple, default=None, help=f"{help_text} [{dotted}]")(func)
        return func
    return decorate


def _not_a_gunicorn_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and value.suffix == ".py":
        raise click.BadParameter(
            f"{value} looks like a gunicorn config file (Python); wsgistack reads TOML: wsgistack.toml or "
            "[tool.wsgistack] in pyproject.toml. Its settings map to: bind -> server.host/server.port (--bind), "
            "workers -> uwsgi.processes (-w), threads -> uwsgi.threads, timeout -> request_timeout (--timeout); "
            "`wsgistack config --origin` lists every setting", ctx=ctx, param=param)
    return value


config_file_option = click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_not_a_gunicorn_config,
    help="config file (default: wsgistack.toml or [tool.wsgistack] in pyproject.toml)",
)


def bind_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """gunicorn's -b/--bind HOST:PORT (or :PORT, or PORT): server.host and server.port at once."""
    return click.option("-b", "--bind", "bind", default=None, metavar="HOST:PORT",
                        help="address and port nginx listens on, as gunicorn takes it [server.host, server.port]")(func)


def bind_overrides(value: str | None) -> dict[str, tuple[Any, str]]:
    """--bind's value as the two settings it sets."""
    if value is None:
        return {}
    from wsgistack import hosts

    if value.startswith(("unix:", "/")) or value.startswith("fd://"):
        raise click.UsageError(
            f"--bind {value}: nginx listens on TCP here; uWSGI behind it already uses a unix socket "
            "(uwsgi.socket = unix). Give --bind HOST:PORT, e.g. --bind 127.0.0.1:8000")
    text = value if ":" in value else f":{value}" if value.isdigit() else f"{value}:8000"
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise click.UsageError(f"--bind {value!r} is not HOST:PORT, e.g. --bind 127.0.0.1:8000") from None
    out: dict[str, tuple[Any, str]] = {"server.port": (number, "--bind")}
    if host:
        out["server.host"] = (hosts.bare(host) if host.startswith("[") else host, "--bind")
    return out


# gunicorn's flags that have no spelling here: each one's equivalent, said instead of "no such option".
GUNICORN_EQUIVALENTS = {
    "--reload": "gunicorn's --reload restarts on code changes; here run `wsgistack reload` after a change (uWSGI "
                "reloads its workers gracefully), or for development set uwsgi.options = {\"py-autoreload\" = 1}",
    "-k": "gunicorn's worker class: uWSGI's workers are processes (--processes) with threads (--threads)",
    "--worker-class": "gunicorn's worker class: uWSGI's workers are processes (--processes) with threads (--threads)",
    "--access-logfile": "nginx writes the access log to stdout (server.access_log); redirect the output to keep it",
    "--error-logfile": "nginx, uWSGI and wsgistack write their logs to stdout and stderr, each line prefixed with its process",
    "--log-level": "logs go to stdout; server.log_format = \"json\" gives one JSON object per line",
    "-D": "wsgistack run stays in the foreground: run it under systemd, Docker or your process manager",
    "--daemon": "wsgistack run stays in the foreground: run it under systemd, Docker or your process manager",
    "--preload": "the app is loaded before the workers fork by default (app.lazy_apps = false)",
    "--max-requests": "uwsgi.max_requests in wsgistack.toml (recycled workers are staggered)",
    "--chdir": "give the project directory as PATH (or app.path in wsgistack.toml)",
    "--keep-alive": "server.keepalive_timeout in wsgistack.toml (nginx holds the client connections)",
    "--graceful-timeout": "stop_timeout in wsgistack.toml (or WSGISTACK_STOP_TIMEOUT)",
    "-e": "the app's environment is this shell's, plus app.env in wsgistack.toml",
    "--env": "the app's environment is this shell's, plus app.env in wsgistack.toml",
}


class GunicornAwareCommand(click.Command):
    """A command that answers gunicorn's flags it does not take with their equivalent."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            said = GUNICORN_EQUIVALENTS.get(exc.option_name)
            if said is None:
                raise
            raise click.UsageError(f"{exc.option_name} is not a wsgistack option: {said}", ctx=ctx) from None


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
        if isinstance(value, str) and WSGI_TARGET.fullmatch(value) and not Path(value).exists() and (
            ":" in value or _is_module(value)
        ):
            if ctx is not None:
                ctx.meta[_TARGET_META] = value
            return Path(".")
        return super().convert(value, param, ctx)


def _is_module(dotted: str) -> bool:
    """A module here that `dotted` names (gunicorn's `mysite.wsgi`, its callable `application`)."""
    base = Path(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


# The project directory (default: the current one), or for the commands that serve it, the
# WSGI target itself, as gunicorn takes it.
project_argument = click.argument(
    "path", type=ProjectOrTarget(exists=True, file_okay=False, path_type=Path), default=".", metavar="[PATH|TARGET]"
)
project_dir_argument = click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
