"""``wsgistack run [PATH]``: serve the app locally through real nginx and uWSGI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack import start
from wsgistack.cli.options import (
    GunicornAwareCommand,
    bind_option,
    bind_overrides,
    config_options,
    model_options,
    overrides,
    project_argument,
    table_options,
)
from wsgistack.contracts import Say
from wsgistack.start import serve


@click.command(cls=GunicornAwareCommand)
@project_argument
@config_options
@table_options(model_options("run"))  # --migrate, --collectstatic
@bind_option
def command(path: Path, config_file: Path | None, bind: str | None, **params: Any) -> None:
    """Serve the app in PATH through nginx -> uWSGI until Ctrl-C.

    PATH is the project directory (default: the current one), or the WSGI target itself,
    as gunicorn takes it: `wsgistack run myapp:app`, `wsgistack run mysite.wsgi` (its
    `application`), `wsgistack run 'pkg:create_app()'`; `-b HOST:PORT` and `-w N` as in gunicorn.
    """
    cli = overrides(params)
    for dotted, value in bind_overrides(bind).items():
        if dotted in cli:
            raise click.UsageError(f"--bind and {cli[dotted][1]} both set {dotted}: give one of them")
        cli[dotted] = value
    # config -> app -> plan -> checks -> render -> write -> prestart (wsgistack/start.py)
    started = start.run(path, env=os.environ, cli=cli, config_file=config_file, flags=start.RUN, say=Say())
    sys.exit(serve(started.plan))  # then supervise nginx and uWSGI until they stop
