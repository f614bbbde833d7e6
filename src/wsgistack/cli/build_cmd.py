"""``wsgistack build [PATH] -t NAME``: write the recipe, then ``docker build`` it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.console import note

from wsgistack.cli.dockerfile_cmd import recipe_options, write
from wsgistack.cli.options import project_dir_argument


@click.command()
@project_dir_argument
@recipe_options
@click.option("-t", "--tag", default=None, help="image name[:tag] (default: the project directory's name)")
@click.option("--network", default="host", show_default=True, help="network for the build's RUN steps")
@click.option("--no-cache", is_flag=True, help="rebuild every layer")
@click.option("--plain", is_flag=True, help="show docker's full output instead of a progress display")
@click.option("--keep-dockerfile", is_flag=True,
              help="build the existing Dockerfile.wsgistack, else Dockerfile, as it is (do not regenerate)")
def command(path: Path, tag: str | None, network: str, no_cache: bool, plain: bool, keep_dockerfile: bool,
            **params: Any) -> None:
    """Build the image for the app in PATH (Dockerfile from `wsgistack dockerfile`)."""
    from wsgistack.image.build import docker_binary, docker_build, engine_has_bridge
    from wsgistack.plan.image import image_name, run_command

    docker_binary()  # fail first, before writing anything, when there is no docker
    from wsgistack.render.dockerfile import OWN_DOCKERFILE

    if keep_dockerfile:
        dockerfile = OWN_DOCKERFILE if (path / OWN_DOCKERFILE).is_file() else "Dockerfile"
    else:
        dockerfile = write(path, params)
    tag = tag or image_name(path)
    on_line, on_step, close = progress_callbacks(plain)
    said: list[str] = []  # what the image's build step said (wsgistack's own lines in docker's output)

    def line(text: str) -> None:
        if text.startswith("wsgistack | "):
            said.append(text)
        if on_line is not None:
            on_line(text)

    try:
        result = docker_build(path.resolve(), tag, dockerfile=dockerfile, network=network, no_cache=no_cache, on_line=line,
                              on_step=on_step)
    finally:
        close()
    if not plain:  # (--plain showed them in place)
        for text in said:
            click.echo(text, err=True)
    size = f", {result.size / 1e6:.1f} MB" if result.size else ""
    if result.removed:
        note(f"removed the previous build of {result.tag} ({len(result.removed)} untagged images)")
    click.echo(f"built {result.tag} in {result.seconds:.1f}s ({result.cached_steps} of {result.steps} steps cached{size})")
    volume = f"{image_name(path)}-data"
    bridge = engine_has_bridge()
    click.echo(f"run it: {run_command(result.tag, volume, bridge)}", err=True)
    if bridge is False:
        note("this Docker engine has no bridge network, so -p cannot publish a port: the container shares the "
             "host's network and binds PORT itself (http://127.0.0.1:8080; WSGISTACK_SERVER__HOST=127.0.0.1 "
             "keeps it on loopback)")
    note(f"the named volume keeps $DATA_DIR (/data) across containers; a one-off command (python manage.py "
         f"createsuperuser, flask init-db) runs in the app's directory with: docker run --rm -it -v {volume}:/data "
         f"{result.tag} COMMAND [ARGS], or docker exec -it CONTAINER COMMAND in a running one")


def progress_callbacks(plain: bool) -> tuple[Callable[[str], None] | None, Callable[[int, int, str], None] | None, Callable[[], None]]:
    """(on_line, on_step, close) for docker_build: a rich progress bar on a terminal when rich is installed,
    plain step lines otherwise (CI logs, or an image without rich)."""
    rich_ok = False
    if not plain and sys.stderr.isatty():
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            rich_ok = True
        except ImportError:
            pass
    if rich_ok:
        console = Console(stderr=True)
        progress = Progress(TextColumn("[bold]docker build"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), TextColumn("{task.description}"), console=console, transient=True)
        progress.start()
        task = progress.add_task("", total=None)

        def on_step(n: int, total: int, instruction: str) -> None:
            progress.update(task, completed=n - 1, total=total, description=instruction[:60])

        return None, on_step, progress.stop

    def on_line(line: str) -> None:
        if plain:
            click.echo(line, err=True)

    def on_step_plain(n: int, total: int, instruction: str) -> None:
        if not plain:
            click.echo(f"[{n}/{total}] {instruction[:100]}", err=True)

    return on_line, on_step_plain, lambda: None
