"""``wsgistack drain`` / ``wsgistack undrain [PATH]``: take a running node out of (or back
into) its balancer's rotation, through its readiness path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wsgistack import ops
from wsgistack.cli.options import config_options
from wsgistack.cli.status_cmd import plan_without_app


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@config_options
def drain(path: Path, **params: Any) -> None:
    """Make readiness answer 503 "draining": balancers stop sending new requests; the node serves on."""
    click.echo(ops.drain(plan_without_app(path, params)))


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@config_options
def undrain(path: Path, **params: Any) -> None:
    """Make readiness answer 200 again (after `wsgistack drain`)."""
    click.echo(ops.undrain(plan_without_app(path, params)))
