"""``wsgistack run [PATH]``: serve the app locally through real nginx and uWSGI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import config_options, load, overrides
from wsgistack.runner import prepare, run_prestart, serve
from wsgistack.runner.manager import Say


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@config_options
@click.option("--migrate/--no-migrate", default=None, help="Django: run migrate before start [app.migrate]")
@click.option("--collectstatic/--no-collectstatic", default=None, help="Django: run collectstatic [app.collectstatic]")
def command(path: Path, migrate: bool | None, collectstatic: bool | None, **params: Any) -> None:
    """Serve the app in PATH through nginx -> uWSGI until Ctrl-C."""
    extra = {}
    if migrate is not None:
        extra["app.migrate"] = (migrate, "--migrate" if migrate else "--no-migrate")
    if collectstatic is not None:
        extra["app.collectstatic"] = (collectstatic, "--collectstatic" if collectstatic else "--no-collectstatic")
    cli = {**overrides(params), **extra}  # pops the flags from params: load() finds none left
    loaded = load(path, params, cli)
    say = Say(json_mode=loaded.config.server.log_format == "json")
    plan = prepare(loaded, os.environ, say, deploy=False)
    run_prestart(plan, os.environ, say)
    sys.exit(serve(plan))
