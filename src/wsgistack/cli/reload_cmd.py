"""``wsgistack reload [PATH]``: re-render the configs and reload nginx and uWSGI gracefully."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wsgistack import machine as machine_mod
from wsgistack.cli.options import config_options, overrides, project_dir_argument
from wsgistack.ops import control as ops


@click.command()
@project_dir_argument
@click.option("--chain", is_flag=True, help="reload uWSGI workers one at a time (zero downtime; needs app.lazy_apps)")
@click.option("--no-render", is_flag=True, help="reload without re-rendering the configuration")
@click.option("--yes", is_flag=True, help="allow a change of the listening address or port (the old one stops answering)")
@config_options
def command(path: Path, chain: bool, no_render: bool, yes: bool, config_file: Path | None, **params: Any) -> None:
    """Apply configuration and code changes to a running `wsgistack run` without dropping requests.

    Keeps the settings the stack was started with (from its environment and flags); applies
    the config file as it is now and this command's own flags. This shell's environment is
    not read, except WSGISTACK_RUNTIME_DIR to find the stack."""
    cli = overrides(params)
    if no_render:
        done = ops.reload(ops.locate(path, cli, config_file, os.environ), chain=chain)
    else:
        pending = ops.prepare_reload(path, cli, config_file, os.environ, machine_mod.detect())
        for note in pending.notes:
            click.echo(f"note: {note}")
        lines = pending.lines()
        click.echo("changes (setting: old -> new, source):" if lines else "no setting changes")
        for line in lines:
            click.echo(f"  {line}")
        pending.confirm(yes)
        for f in pending.files:
            click.echo(f"updated {f.path}")
        done = ops.apply_reload(pending, chain=chain)
    for line in done:
        click.echo(line)
