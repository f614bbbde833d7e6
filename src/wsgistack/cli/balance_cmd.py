"""``wsgistack balance``: HAProxy in front of several nodes, under the process manager."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.console import note

from wsgistack.cli.options import command_options, config_file_option, load, overrides, project_dir_argument, table_options

# The [balancer] settings' own flags (declared on the model: config/model.py), and --runtime-dir.
BALANCE_OPTIONS = command_options("balance")


def balance_options(func: Any) -> Any:
    return config_file_option(table_options(BALANCE_OPTIONS)(func))


@click.command()
@project_dir_argument
@balance_options
def command(path: Path, **params: Any) -> None:
    """Balance requests over the nodes with HAProxy until Ctrl-C (stats page on --stats-port)."""
    from wsgistack import start
    from wsgistack.contracts import ProcessTable
    from wsgistack.runner.manager import Manager

    loaded = load(path, params, overrides(params, BALANCE_OPTIONS))
    plan = start.balancer(loaded)
    _say(f"haproxy -> {', '.join(s.address for s in plan.servers)}; readiness GET {plan.check_path} (Host {plan.check_host})")
    _say(f"stats page {plan.stats_url} (Prometheus at /metrics); runtime API {plan.paths.socket}")
    for line in plan.notes:
        _say(line)
    _say(f"runtime dir: {plan.paths.runtime}")
    sys.exit(Manager(ProcessTable.read(plan.paths.processes)).run())


def _say(text: str) -> None:
    note(f"{text}", err=False)
