"""``wsgistack rollout``: update the balancer's nodes one at a time, with no failed request."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from wsgistack import hosts

from wsgistack.cli.console import note

from wsgistack.cli.balance_cmd import BALANCE_OPTIONS, balance_options
from wsgistack.cli.options import load, overrides, project_dir_argument


@click.command()
@project_dir_argument
@balance_options
@click.option("--command", "update", default="",
              help="how to update a node, run by the shell: {host} {port} {node} {name} are filled in "
                   "(default, for a node on this machine: wsgistack reload PATH --host H --port P)")
@click.option("--node-runtime-dir", default="",
              help="the default update's --runtime-dir, e.g. /srv/rt/{host}-{port} (several nodes on one machine)")
@click.option("--drain-timeout", type=float, default=30.0, show_default=True,
              help="seconds a drained node's in-flight requests get before its update runs anyway")
@click.option("--ready-timeout", type=float, default=120.0, show_default=True,
              help="seconds a node gets to be ready after its update; past it the rollout stops there")
def command(path: Path, update: str, node_runtime_dir: str, drain_timeout: float, ready_timeout: float,
            **params: Any) -> None:
    """Drain each node at the running balancer, update it, wait until it is ready, put it back.

    Give the same settings as `wsgistack balance` (nodes, runtime dir): they name the balancer.
    Stops at the first node that does not come back ready; the others keep serving.
    """
    from wsgistack.machine import detect
    from wsgistack.ops.rollout import RolloutOptions, rollout
    from wsgistack.plan.balancer import make_balancer_plan

    loaded = load(path, params, overrides(params, BALANCE_OPTIONS))
    plan = make_balancer_plan(loaded, detect())
    reload_argv = [sys.executable, "-m", "wsgistack", "reload", str(path)]

    if node_runtime_dir and not update:
        # One reload command per node: its own runtime dir.
        for server in plan.servers:
            directory = node_runtime_dir.format(host=hosts.bare(server.host), port=server.port, name=server.name)
            options = RolloutOptions(reload_argv=[*reload_argv, "--runtime-dir", directory],
                                     drain_timeout=drain_timeout, ready_timeout=ready_timeout)
            rollout(plan, options, _say, nodes=[server])
    else:
        rollout(plan, RolloutOptions(command=update, reload_argv=reload_argv, drain_timeout=drain_timeout,
                                     ready_timeout=ready_timeout), _say)
    _say(f"rollout done: {len(plan.servers)} nodes updated")


def _say(text: str) -> None:
    note(f"{text}", err=False)
