"""``wsgistack entrypoint``: what a wsgistack image runs (configured by the environment only)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from wsgistack.cli.console import note

from wsgistack.contracts import Say
from wsgistack.start import entrypoint


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--prestart-only", is_flag=True,
              help="run the prestart steps (migrate, collectstatic, app.prestart) and exit: the Kubernetes migration Job")
@click.option("--build-step", is_flag=True,
              help="the image build's step (a RUN in the Dockerfile): detect the app with the image's Python, "
                   "make its static/media dirs writable, collect static files")
@click.option("--runtime-api", is_flag=True,
              help="role balancer: relay HAProxy runtime-API commands, one per line on stdin, to this container's "
                   "balancer (what `wsgistack rollout --compose` runs with docker exec -i)")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[PATH] [COMMAND [ARGS]...]")
def command(prestart_only: bool, build_step: bool, runtime_api: bool, args: tuple[str, ...]) -> None:
    """Render config from the environment, check it, run prestart, then exec nginx + uWSGI.

    Settings come only from the environment and the project's wsgistack.toml (PORT,
    WEB_CONCURRENCY, UWSGI_URI, NGINX_SERVER_NAME, WSGISTACK_* ...): the same image runs in
    every environment. PATH defaults to $WSGISTACK_PROJECT_DIR, else /app.

    With a COMMAND (`docker run IMAGE python manage.py createsuperuser`), only that command
    runs, in the app's directory (app.path) with the app's environment: a one-off task.
    """
    path: Path | None = None
    if args and Path(args[0]).is_dir():
        path, args = Path(args[0]), args[1:]
    if args:
        entrypoint.exec_command(os.environ, path or entrypoint.project_dir(os.environ), list(args))
    if build_step:
        from wsgistack.image.buildstep import build_step as run_step
        from wsgistack.layout import IMAGE_UID

        _record, notes = run_step(path or entrypoint.project_dir(os.environ), os.environ, IMAGE_UID)
        for line in notes:
            note(line, err=False)
        return
    if runtime_api:
        import sys

        from wsgistack import start
        from wsgistack.machine import detect
        from wsgistack.ops.balance import RuntimeAPI, relay
        from wsgistack.plan.balancer import make_balancer_plan

        loaded = start.resolve(path or entrypoint.project_dir(os.environ), env=os.environ)
        relay(RuntimeAPI(make_balancer_plan(loaded, detect()).paths.socket), sys.stdin.buffer, sys.stdout.buffer)
        return
    say = Say()  # JSON lines once the config says server.log_format = "json"
    started = time.monotonic()
    plan = entrypoint.prepare(os.environ, path or entrypoint.project_dir(os.environ), say)
    if prestart_only:
        say(f"prestart done in {time.monotonic() - started:.2f}s (--prestart-only: nothing else starts)")
        return
    say(f"ready to start in {time.monotonic() - started:.2f}s; handing over to the process manager")
    entrypoint.exec_manager(plan)

