"""``wsgistack entrypoint``: what a wsgistack image runs (configured by the environment only)."""

from __future__ import annotations

from pathlib import Path

import click

from wsgistack import entrypoint


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
def command(path: Path | None) -> None:
    """Render config from the environment, check it, run prestart, then exec nginx + uWSGI.

    Settings come only from the environment and the project's wsgistack.toml (PORT,
    WEB_CONCURRENCY, UWSGI_URI, NGINX_SERVER_NAME, WSGISTACK_* ...): the same image runs in
    every environment. PATH defaults to $WSGISTACK_PROJECT_DIR, else /app.
    """
    entrypoint.main(path)
