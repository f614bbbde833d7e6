"""``wsgistack entrypoint``: what a wsgistack image runs (configured by the environment only)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from wsgistack.cli.console import note

from wsgistack.contracts import Say
from wsgistack.start import entrypoint


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@click.option("--prestart-only", is_flag=True,
              help="run the prestart steps (migrate, collectstatic, app.prestart) and exit: the Kubernetes migration Job")
@click.option("--build-step", is_flag=True,
              help="the image build's step (a RUN in the Dockerfile): detect the app with the image's Python, "
                   "make its static/media dirs writable, collect static files")
def command(path: Path | None, prestart_only: bool, build_step: bool) -> None:
    """Render config from the environment, check it, run prestart, then exec nginx + uWSGI.

    Settings come only from the environment and the project's wsgistack.toml (PORT,
    WEB_CONCURRENCY, UWSGI_URI, NGINX_SERVER_NAME, WSGISTACK_* ...): the same image runs in
    every environment. PATH defaults to $WSGISTACK_PROJECT_DIR, else /app.
    """
    if build_step:
        from wsgistack.image.buildstep import build_step as run_step
        from wsgistack.layout import IMAGE_UID

        _record, notes = run_step(path or entrypoint.project_dir(os.environ), os.environ, IMAGE_UID)
        for line in notes:
            note(line, err=False)
        return
    say = Say()  # JSON lines once the config says server.log_format = "json"
    started = time.monotonic()
    plan = entrypoint.prepare(os.environ, path or entrypoint.project_dir(os.environ), say)
    if prestart_only:
        say(f"prestart done in {time.monotonic() - started:.2f}s (--prestart-only: nothing else starts)")
        return
    say(f"ready to start in {time.monotonic() - started:.2f}s; handing over to the process manager")
    entrypoint.exec_manager(plan)

