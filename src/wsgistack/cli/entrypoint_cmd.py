"""``wsgistack entrypoint``: what a wsgistack image runs (configured by the environment only)."""

from __future__ import annotations

from pathlib import Path

import click

from wsgistack import entrypoint


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@click.option("--prestart-only", is_flag=True,
              help="run the prestart steps (migrate, collectstatic, app.prestart) and exit: the Kubernetes migration Job")
def command(path: Path | None, prestart_only: bool) -> None:
    """Render config from the environment, check it, run prestart, then exec nginx + uWSGI.

    Settings come only from the environment and the project's wsgistack.toml (PORT,
    WEB_CONCURRENCY, UWSGI_URI, NGINX_SERVER_NAME, WSGISTACK_* ...): the same image runs in
    every environment. PATH defaults to $WSGISTACK_PROJECT_DIR, else /app.
    """
    entrypoint.main(path, prestart_only=prestart_only)
