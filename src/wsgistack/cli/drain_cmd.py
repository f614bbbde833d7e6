"""``wsgistack drain`` / ``wsgistack undrain [PATH]``: take a running node out of (or back
into) its balancer's rotation, through its readiness path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import config_options, overrides, project_argument
from wsgistack.ops import control as ops


@click.command()
@project_argument
@config_options
def drain(path: Path, config_file: Path | None, **params: Any) -> None:
    """Make readiness answer 503 "draining": balancers stop sending new requests; the node serves on."""
    click.echo(ops.drain(ops.locate(path, overrides(params), config_file, os.environ)))


@click.command()
@project_argument
@config_options
def undrain(path: Path, config_file: Path | None, **params: Any) -> None:
    """Make readiness answer 200 again (after `wsgistack drain`)."""
    click.echo(ops.undrain(ops.locate(path, overrides(params), config_file, os.environ)))
