"""``wsgistack run [PATH]``: serve the app locally through real nginx and uWSGI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack import machine as machine_mod
from wsgistack.checks import preflight
from wsgistack.cli.options import config_options, load, overrides, save_invocation
from wsgistack.plan import build_plan
from wsgistack.runner import check_binaries, run_prestart, serve, write_runtime


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@config_options
@click.option("--migrate/--no-migrate", default=None, help="Django: run migrate before start [app.migrate]")
@click.option("--collectstatic/--no-collectstatic", default=None, help="Django: run collectstatic [app.collectstatic]")
def command(path: Path, migrate: bool | None, collectstatic: bool | None, **params: Any) -> None:
    """Serve the app in PATH through nginx -> uWSGI until Ctrl-C."""
    extra = {}
    if migrate is not None:
        extra["app.migrate"] = (migrate, "--migrate" if migrate else "--no-migrate")
    if collectstatic is not None:
        extra["app.collectstatic"] = (collectstatic, "--collectstatic" if collectstatic else "--no-collectstatic")
    cli = {**overrides(dict(params)), **extra}
    loaded = load(path, params, extra)
    machine = machine_mod.detect()
    plan = build_plan(loaded, machine, os.environ)
    check_binaries(plan)
    say = _say
    if plan.app is not None:
        say(f"app: {plan.app.kind} {plan.app.target} in {plan.app.path}")
    for note in plan.notes:
        say(note)
    # Refuses to start on ERROR findings (doctor.E001); warnings are shown and the run goes on.
    for finding in preflight(plan, loaded, deploy=False, env=os.environ).findings:
        for line in finding.render().splitlines():
            say(line)
    write_runtime(plan)
    save_invocation(plan.paths.private, cli)
    say(f"runtime dir: {plan.paths.runtime}")
    run_prestart(plan, os.environ, say)
    sys.exit(serve(plan))


def _say(text: str) -> None:
    click.echo(f"wsgistack | {text}")
