"""``wsgistack balance``: HAProxy in front of several nodes, under the process manager."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import load, overrides, table_options

BALANCE_OPTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("--node", "balancer.nodes", "an app node as host:port (repeatable)", True),
    ("--host", "balancer.host", "address HAProxy listens on", False),
    ("--port", "balancer.port", "port HAProxy listens on", False),
    ("--stats-port", "balancer.stats_port", "port of the stats page and /metrics", False),
    ("--runtime-dir", "runtime_dir", "directory for haproxy.cfg and the runtime API socket", False),
)


def balance_options(func: Any) -> Any:
    func = table_options(BALANCE_OPTIONS)(func)
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                        help="config file (default: wsgistack.toml or [tool.wsgistack] in pyproject.toml)")(func)


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
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
    _say(f"runtime dir: {plan.paths.runtime}")
    sys.exit(Manager(ProcessTable.read(plan.paths.processes)).run())


def _say(text: str) -> None:
    click.echo(f"wsgistack | {text}")
