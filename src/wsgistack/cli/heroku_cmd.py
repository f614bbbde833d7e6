"""``wsgistack heroku [PATH]``: write heroku.yml (and the Dockerfile it builds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wsgistack.cli.console import note

from wsgistack.cli.dockerfile_cmd import recipe_options, write
from wsgistack.cli.options import project_dir_argument


@click.command()
@project_dir_argument
@recipe_options
def command(path: Path, **params: Any) -> None:
    """Write heroku.yml, Dockerfile and .dockerignore for `git push heroku` (heroku stack:set container)."""
    from wsgistack.render import write_files
    from wsgistack.render.compose import render_heroku

    params["heroku"] = True  # the Dockerfile builds the term-drain library
    dockerfile = write(path, params)
    for written in write_files([render_heroku(dockerfile)], path):
        click.echo(str(written), err=True)
    note("next: heroku stack:set container && heroku config:set NGINX_SERVER_NAME=<app>.herokuapp.com")
