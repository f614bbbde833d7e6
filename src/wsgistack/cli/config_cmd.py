"""``wsgistack config [PATH]``: the resolved configuration, and where each value came from."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.console import Console, Table

from wsgistack.app.interpreter import choose
from wsgistack.cli.options import config_options, load, project_dir_argument
from wsgistack.config import describe
from wsgistack.config.sources import masked_dump


@click.command()
@project_dir_argument
@click.option("--origin", is_flag=True, help="show where each value came from and its env var names")
@click.option("--json", "as_json", is_flag=True, help="print the resolved config as JSON")
@click.option("--show-secrets", is_flag=True,
              help="show the values of credentials (app.env, ops.basic_auth, balancer.stats_auth) instead of ********")
@config_options
def command(path: Path, origin: bool, as_json: bool, show_secrets: bool, **params: Any) -> None:
    """Print the resolved configuration (defaults < file < environment < CLI).

    Credentials are masked (app.env's values, the passwords of ops.basic_auth and
    balancer.stats_auth), here and in every message wsgistack prints; --show-secrets shows them."""
    loaded = load(path, params)
    if as_json:
        click.echo(json.dumps(masked_dump(loaded.config, reveal=show_secrets), indent=2))
        return
    table = Table(title=f"wsgistack config ({loaded.config_file or 'no config file'})", show_lines=False)
    table.add_column("setting")
    table.add_column("value")
    if origin:
        table.add_column("from")
        table.add_column("environment")
    for key, value, source, names in describe(loaded, reveal=show_secrets):
        shown = json.dumps(value) if not isinstance(value, str) else value
        row = [key, shown] + ([source, names] if origin else [])
        table.add_row(*row, style=None if source == "default" else "bold")
    # A terminal's own width; piped (a file, a pager), wide enough that rows stay one line each
    # unless COLUMNS says otherwise.
    wide = origin and not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    Console(width=200 if wide else None).print(table)
    if origin and loaded.config.role != "web":
        python, why = choose(loaded, os.environ)
        click.echo(f"app interpreter: {python}\n  chosen: {why}\n  order: app.python (--python, WSGISTACK_APP__PYTHON), "
                   "VIRTUAL_ENV, .venv/venv/env in the project, wsgistack's own interpreter")
