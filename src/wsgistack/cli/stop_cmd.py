"""``wsgistack stop [PATH]``: stop a running `wsgistack run` from another shell, as Ctrl-C in its
own would (nginx first, then the app server finishes the requests it holds)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import config_options, overrides, project_argument
from wsgistack.ops import control as ops


@click.command()
@project_argument
@click.option("--wait", "wait", type=click.FloatRange(0, 3600), default=60.0, show_default=True,
              help="seconds to wait for the stack to stop (its own stop budgets run meanwhile)")
@config_options
def command(path: Path, wait: float, config_file: Path | None, **params: Any) -> None:
    """Stop the stack running for PATH (found as `status` finds it): SIGTERM to its process manager, then wait."""
    paths = ops.locate(path, overrides(params), config_file, os.environ)
    click.echo(ops.stop(paths, wait, say=click.echo))
