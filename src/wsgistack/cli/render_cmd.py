"""``wsgistack render [PATH] --out DIR``: write the nginx, uWSGI and process configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wsgistack import start
from wsgistack.cli.options import config_options, overrides, project_argument


@click.command()
@project_argument
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="output directory")
@config_options
def command(path: Path, out: Path, config_file: Path | None, **params: Any) -> None:
    """Render nginx.conf, uwsgi.ini and processes.json for the app in PATH into DIR.

    The runtime dir defaults to DIR, so `nginx -t -p DIR -c DIR/nginx.conf` works as is.
    """
    cli = overrides(params)
    cli.setdefault("runtime_dir", (str(out.resolve()), "--out"))
    # Refuses to write files that would not start or would be unsafe (doctor.E001).
    started = start.run(path, env=os.environ, cli=cli, config_file=config_file, flags=start.RENDER,
                             out=out, say=lambda line: click.echo(line, err=True))
    for written in started.written:
        click.echo(str(written))
