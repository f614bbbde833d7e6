"""``wsgistack render [PATH] --out DIR``: write the nginx, uWSGI and process configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wsgistack import machine as machine_mod
from wsgistack.checks import preflight
from wsgistack.cli.options import config_options, load
from wsgistack.plan import build_plan
from wsgistack.render import render, write_files


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="output directory")
@config_options
def command(path: Path, out: Path, **params: Any) -> None:
    """Render nginx.conf, uwsgi.ini and processes.json for the app in PATH into DIR.

    The runtime dir defaults to DIR, so `nginx -t -p DIR -c DIR/nginx.conf` works as is.
    """
    if params.get("runtime_dir") is None:
        params["runtime_dir"] = str(out.resolve())
    loaded = load(path, params)
    plan = build_plan(loaded, machine_mod.detect(), os.environ)
    # Refuses to write files that would not start or would be unsafe (doctor.E001).
    for finding in preflight(plan, loaded, deploy=False, env=os.environ).findings:
        click.echo(finding.render(), err=True)
    for written in write_files(render(plan), out):
        click.echo(str(written))
    (out / "nginx-temp").mkdir(exist_ok=True)
