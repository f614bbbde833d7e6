"""``wsgistack logs [PATH]``: the running (or last) stack's lines, from its process manager's
copy of its output (ops/logs.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import config_options, overrides, project_argument
from wsgistack.ops import control
from wsgistack.ops import logs as stack_logs


@click.command()
@project_argument
@click.option("--request-id", "request_id", metavar="ID", help="only the lines naming this request id (the X-Request-ID response header)")
@click.option("-f", "--follow", is_flag=True, help="keep printing lines as the stack writes them (Ctrl-C ends)")
@click.option("-n", "--lines", "last", type=click.IntRange(min=0), default=0, show_default=True,
              help="only the last N lines (0: all that are kept, up to 2 x 10 MB)")
@config_options
def command(path: Path, request_id: str | None, follow: bool, last: int, config_file: Path | None, **params: Any) -> None:
    """Show the stack's nginx, app server, app and background-process lines, in the order they were relayed."""
    paths = control.locate(path, overrides(params), config_file, os.environ)
    if not follow:
        for line in stack_logs.lines(paths, request_id, last):
            click.echo(line)
        return
    try:
        for line in stack_logs.follow(paths, request_id, last):
            click.echo(line)
    except KeyboardInterrupt:
        pass
