"""``wsgistack reload [PATH]``: re-render the configs and reload nginx and uWSGI gracefully."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wsgistack import machine as machine_mod
from wsgistack import ops
from wsgistack.cli.options import config_options, load
from wsgistack.plan import build_plan
from wsgistack.render import render, write_files


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.option("--chain", is_flag=True, help="reload uWSGI workers one at a time (zero downtime; needs app.lazy_apps)")
@click.option("--no-render", is_flag=True, help="reload without re-rendering the configuration")
@config_options
def command(path: Path, chain: bool, no_render: bool, **params: Any) -> None:
    """Apply configuration and code changes to a running `wsgistack run` without dropping requests."""
    import os

    loaded = load(path, params, reuse_run_options=True)
    plan = build_plan(loaded, machine_mod.detect(), os.environ)
    if not no_render:
        # processes.json is left alone: the running manager already has its table.
        files = [f for f in render(plan) if f.path != "processes.json"]
        for f in files:
            current = plan.paths.runtime / f.path
            if not current.is_file() or current.read_text() != f.content:
                click.echo(f"updated {f.path}")
        write_files(files, plan.paths.runtime)
    for line in ops.reload(plan, chain=chain):
        click.echo(line)
