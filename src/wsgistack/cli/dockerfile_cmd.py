"""``wsgistack dockerfile [PATH]``: write Dockerfile + .dockerignore (+ wsgistack's wheel)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import model_options, overrides, project_dir_argument, table_options
from wsgistack.config import Config

from wsgistack.cli.console import note

from wsgistack.render.dockerfile import DockerfileOptions



# The image's settings ([image] in wsgistack.toml; config/model.py declares their flags).
IMAGE_OPTIONS = model_options("dockerfile")


def recipe_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `dockerfile`, `build` and `heroku` (one declaration, one help text):
    the [image] settings' flags, then those of one build only."""
    for option in reversed(
        [
            click.option("--heroku", is_flag=True,
                         help="for Heroku: build the library that lets nginx and uWSGI drain when every process gets SIGTERM"),
            click.option("--acme", is_flag=True,
                         help="install certbot, the ACME client tls.mode = acme runs (also when the project's config sets acme)"),
            click.option("--no-detect", is_flag=True, help="do not import the app to find its static and media dirs"),
            click.option("--force", is_flag=True,
                         help="overwrite a Dockerfile/.dockerignore wsgistack did not write (by default ours goes "
                              "beside your Dockerfile as Dockerfile.wsgistack, and your .dockerignore is kept)"),
            click.option("-v", "--verbose", is_flag=True, help="list every project file .dockerignore leaves out"),
        ]
    ):
        f = option(f)
    return table_options(IMAGE_OPTIONS)(f)


def image_config(path: Path, params: dict[str, Any]) -> Config:
    """The project's config for the image: its file, WSGISTACK_IMAGE__* from the environment,
    then this command's [image] flags (popped from ``params``). This shell's other settings
    (PORT, WSGISTACK_SERVER__...) are the containers' business, never the image's."""
    from wsgistack.config import load_config

    env = {k: v for k, v in os.environ.items() if k.startswith("WSGISTACK_IMAGE__")}
    return load_config(path, env=env, cli=overrides(params, IMAGE_OPTIONS)).config


def options_from(config: Config, params: dict[str, Any]) -> DockerfileOptions:
    image = config.image
    return DockerfileOptions(
        base=image.base,
        requirements=image.requirements or None,
        packages=image.packages,
        build_packages=image.build_packages,
        writable=image.writable,
        keep=image.keep,
        exclude=image.exclude,
        heroku=params["heroku"],
        keep_apt=image.keep_apt,
        acme=params.get("acme", False) or config.tls.mode == "acme",
    )


def write(path: Path, params: dict[str, Any], stdout: bool = False) -> str:
    """Write the recipe, say what it leaves out of the image; returns the Dockerfile's name."""
    from wsgistack.image import ignore
    from wsgistack.image.recipe import recipe, write_recipe

    options = options_from(image_config(path, params), params)
    files, wheel, notes = recipe(path, options, detect=not params["no_detect"])
    for line in notes:
        note(line)
    if stdout:
        # Only the wheel, the requirement copies and .dockerignore (which protects secrets) go to the project.
        written, notes = write_recipe(path, [f for f in files if f.path != "Dockerfile"], wheel, force=params["force"])
        click.echo(next(f.content for f in files if f.path == "Dockerfile"), nl=False)
        name = "Dockerfile"
    else:
        written, notes = write_recipe(path, files, wheel, force=params["force"])
        for item in written:
            click.echo(str(item), err=True)
        name = next((p.name for p in written if p.name.startswith("Dockerfile")), "Dockerfile")
    for line in notes:
        note(line)
    dockerignore = path / ".dockerignore"
    if dockerignore.is_file():
        text = dockerignore.read_text(encoding="utf-8")
        left_out = ignore.left_out(path.resolve(), text)
        for line in ignore.summary(left_out, verbose=params.get("verbose", False)):
            note(line)
        # What git ignores is often local: a settings module with secrets, a developer's data.
        for line in ignore.git_ignored_summary(path.resolve(), text, verbose=params.get("verbose", False)):
            note(line)
    return name


@click.command()
@project_dir_argument
@recipe_options
@click.option("--stdout", is_flag=True, help="print the Dockerfile instead of writing it (.dockerignore and the wheel are still written)")
def command(path: Path, stdout: bool, **params: Any) -> None:
    """Write a multi-stage Dockerfile and .dockerignore for the app in PATH.

    Dependencies are installed before the code is copied (a code change rebuilds in
    seconds); the image runs as uid 10001 (group 0), has a HEALTHCHECK and STOPSIGNAL, and
    starts with `wsgistack entrypoint`. Build it with `wsgistack build` or
    `docker build --network host -t NAME PATH`.
    """
    write(path, params, stdout=stdout)
