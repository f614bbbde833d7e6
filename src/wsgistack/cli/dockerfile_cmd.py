"""``wsgistack dockerfile [PATH]``: write Dockerfile + .dockerignore (+ wsgistack's wheel)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import project_dir_argument

from wsgistack.cli.console import note

from wsgistack.render.dockerfile import DEFAULT_BASE, DockerfileOptions



def recipe_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `dockerfile` and `build` (one declaration, one help text)."""
    for option in reversed(
        [
            click.option("--base", default=DEFAULT_BASE, show_default=True,
                         help="base image for both stages (Debian-based: apt-get, python3, nginx)"),
            click.option("--requirements", default=None,
                         help="the app's requirements file, relative to PATH (default: requirements.txt; without one, "
                              "pyproject.toml's [project] dependencies, pinned by uv.lock/poetry.lock when there is one)"),
            click.option("--package", "packages", multiple=True, help="extra Debian package at runtime (repeatable), e.g. libpq5"),
            click.option("--build-package", "build_packages", multiple=True,
                         help="extra Debian package to build wheels with (repeatable), e.g. gcc"),
            click.option("--writable", multiple=True,
                         help="project dir the app writes to (repeatable); STATIC_ROOT/MEDIA_ROOT are found by themselves"),
            click.option("--keep", multiple=True,
                         help="path .dockerignore must let through although it looks secret, e.g. app/secret_utils.py"),
            click.option("--heroku", is_flag=True,
                         help="for Heroku: build the library that lets nginx and uWSGI drain when every process gets SIGTERM"),
            click.option("--keep-apt", is_flag=True,
                         help="keep apt, debconf and perl in the image (about 17 MB; removed by default: nothing installs packages at run time)"),
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
    return f


def options_from(params: dict[str, Any]) -> DockerfileOptions:
    return DockerfileOptions(
        base=params["base"],
        requirements=params["requirements"],
        packages=tuple(params["packages"]),
        build_packages=tuple(params["build_packages"]),
        writable=tuple(params["writable"]),
        keep=tuple(params["keep"]),
        heroku=params["heroku"],
        keep_apt=params["keep_apt"],
        acme=params.get("acme", False),
    )


def _config_wants_acme(path: Path) -> bool:
    """The project's own config file (not this shell's environment) sets tls.mode = acme."""
    from wsgistack.config import load_config
    from wsgistack.errors import WsgistackError

    try:
        return load_config(path, env={}).config.tls.mode == "acme"
    except WsgistackError:
        return False


def write(path: Path, params: dict[str, Any], stdout: bool = False) -> str:
    """Write the recipe, say what it leaves out of the image; returns the Dockerfile's name."""
    from wsgistack.image import ignore
    from wsgistack.image.recipe import recipe, write_recipe

    options = options_from(params)
    if not options.acme and _config_wants_acme(path):
        options = dataclasses.replace(options, acme=True)
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
        left_out = ignore.left_out(path.resolve(), dockerignore.read_text(encoding="utf-8"))
        for line in ignore.summary(left_out, verbose=params.get("verbose", False)):
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
