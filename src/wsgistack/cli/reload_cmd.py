"""``wsgistack reload [PATH]``: re-render the configs and reload nginx and uWSGI gracefully."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from wsgistack import machine as machine_mod
from wsgistack.cli.options import config_options, overrides, project_dir_argument
from wsgistack.cli.rollout_cmd import judge, verified, verify_options
from wsgistack.ops import control as ops


@click.command()
@project_dir_argument
@click.option("--chain", is_flag=True, help="reload uWSGI workers one at a time (zero downtime; needs app.lazy_apps)")
@click.option("--no-render", is_flag=True, help="reload without re-rendering the configuration")
@click.option("--yes", is_flag=True, help="allow a change of the listening address or port (the old one stops answering)")
@click.option("--diff", "show_diff", is_flag=True, help="print what changes in each rendered file (unified diff), then apply")
@click.option("--dry-run", is_flag=True, help="print the changes and the diff, apply nothing")
@verify_options
@click.option("--verify-seconds", type=click.FloatRange(1, 600), default=5.0, show_default=True,
              help="--verify: how long the probe goes on after the reload was asked for (uWSGI's workers restart in it)")
@config_options
def command(path: Path, chain: bool, no_render: bool, yes: bool, show_diff: bool, dry_run: bool, verify: str,
            verify_post: str, verify_clients: int, verify_seconds: float, config_file: Path | None, **params: Any) -> None:
    """Apply configuration and code changes to a running `wsgistack run` without dropping requests.

    Keeps the settings the stack was started with (from its environment and flags); applies
    the config file as it is now and this command's own flags. This shell's environment is
    not read, except WSGISTACK_RUNTIME_DIR to find the stack. With --verify, probe traffic
    goes to the stack's own address (nginx) while it reloads."""
    cli = overrides(params)
    if no_render:
        if dry_run or show_diff:
            raise click.UsageError("--no-render renders nothing to compare: drop --diff / --dry-run")
        paths = ops.locate(path, cli, config_file, os.environ)
        target = _address(paths) if verify else ("", 0, "")
        result = verified(verify, verify_post, verify_clients, target[:2], target[2],
                          lambda on_swap: _swap(on_swap, lambda: ops.reload(paths, chain=chain), verify_seconds, bool(verify)))
    else:
        pending = ops.prepare_reload(path, cli, config_file, os.environ, machine_mod.detect())
        for note in pending.notes:
            click.echo(f"note: {note}")
        lines = pending.lines()
        click.echo("changes (setting: old -> new, source):" if lines else "no setting changes")
        for line in lines:
            click.echo(f"  {line}")
        if show_diff or dry_run:
            diff = pending.diff()
            click.echo("\n".join(diff) if diff else "no rendered file changes")
        for note in pending.restart_notes:
            click.echo(f"note: {note}")
        pending.confirm(yes)
        if chain and pending.plan.runs_uwsgi and not pending.plan.granian:
            ops.refuse_chain_without_lazy_apps(pending.plan.paths)
        if dry_run:
            click.echo("dry run: nothing written, nothing reloaded")
            return
        for f in pending.files:
            click.echo(f"updated {f.path}")
        target = _address(pending.plan.paths) if verify else ("", 0, "")
        result = verified(verify, verify_post, verify_clients, target[:2], target[2],
                          lambda on_swap: _swap(on_swap, lambda: ops.apply_reload(pending, chain=chain, say=click.echo), verify_seconds,
                                                bool(verify)))
    judge(result)


def _address(paths: Any) -> tuple[str, int, str]:
    """Where the running stack answers (its health.json: nginx's address and a Host it serves)."""
    from wsgistack.contracts import Health

    health = Health.read(paths.health)
    return health.http_host, health.http_port, health.host_header


def _swap(on_swap: Any, do: Any, seconds: float, probing: bool) -> None:
    on_swap("start")
    for line in do():
        click.echo(line)
    if probing:
        time.sleep(seconds)  # the probe goes on while uWSGI's workers restart
    on_swap("end")
