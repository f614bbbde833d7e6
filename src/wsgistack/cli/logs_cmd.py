"""``wsgistack logs [PATH]``: the running (or last) stack's lines, from its process manager's
copy of its output; with ``--node``, every node's behind a balancer, in time order
(ops/logs.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack import ids
from wsgistack.cli.options import config_options, overrides, project_argument
from wsgistack.errors import UsageError, WsgistackError
from wsgistack.ops import control
from wsgistack.ops import logs as stack_logs

EVERY = "\0every"  # --node given without an address: every node in balancer.nodes


@click.command()
@project_argument
@click.option("--request-id", "request_id", metavar="ID", help="only the lines naming this request id (the X-Request-ID response header)")
@click.option("-f", "--follow", is_flag=True, help="keep printing lines as the stack writes them (Ctrl-C ends)")
@click.option("-n", "--lines", "last", type=click.IntRange(min=0), default=0, show_default=True,
              help="only the last N lines (0: all that are kept, up to 2 x 10 MB)")
@click.option("-t", "--timestamps", is_flag=True, help="show when the process manager wrote each line (UTC)")
@click.option("--node", "nodes", multiple=True, is_flag=False, flag_value=EVERY, metavar="[HOST:PORT]",
              help="every node's lines behind the balancer (balancer.nodes), merged in time order, each after its "
                   "node's name; --node HOST:PORT (repeatable) for only those. Needs --node-runtime-dir or --command")
@click.option("--node-runtime-dir", default="", metavar="TEMPLATE",
              help="--node: each node's runtime dir on this machine, {host} {port} {name} filled in, e.g. /srv/rt/{host}")
@click.option("--command", "command_", default="", metavar="TEMPLATE",
              help="--node: how to get a node's lines, run by the shell: {host} {port} {node} {name} filled in and {args} "
                   "(the flags for that node's `wsgistack logs`; added at the end without it), "
                   "e.g. \"ssh {host} wsgistack logs /srv/app {args}\"")
@config_options
def command(path: Path, request_id: str | None, follow: bool, last: int, timestamps: bool, nodes: tuple[str, ...],
            node_runtime_dir: str, command_: str, config_file: Path | None, **params: Any) -> None:
    """Show the stack's nginx, app server, app and background-process lines, in the order they were relayed.

    With --node: every node's, behind `wsgistack balance`, merged by when each line was written.
    """
    if nodes:
        _fleet(path, request_id, follow, last, timestamps, nodes, node_runtime_dir, command_, config_file, params)
        return
    if node_runtime_dir or command_:
        raise UsageError(ids.OPS_E008, "--node-runtime-dir and --command go with --node",
                         "add --node (every node in balancer.nodes) or --node HOST:PORT")
    paths = control.locate(path, overrides(params), config_file, os.environ)
    if not follow:
        for line in stack_logs.lines(paths, request_id, last, timestamps):
            click.echo(line)
        return
    try:
        for line in stack_logs.follow(paths, request_id, last, timestamps=timestamps):
            click.echo(line)
    except KeyboardInterrupt:
        pass


def _fleet(path: Path, request_id: str | None, follow: bool, last: int, timestamps: bool, given: tuple[str, ...],
           node_runtime_dir: str, command_: str, config_file: Path | None, params: dict[str, Any]) -> None:
    addresses = [a for a in given if a != EVERY]
    if EVERY in given and addresses:
        raise UsageError(ids.OPS_E010, "--node alone (every node) and --node HOST:PORT together",
                         "give --node alone for every node in balancer.nodes, or --node HOST:PORT for each one")
    if not addresses:
        addresses = list(control.balancer_nodes(path, overrides(params), config_file, os.environ))
        if not addresses:
            raise UsageError(ids.OPS_E010, "--node: balancer.nodes is empty",
                             "give the nodes (--node 10.0.0.11:8000 --node 10.0.0.12:8000), or balancer.nodes in "
                             "wsgistack.toml as `wsgistack balance` has them")
    sources = stack_logs.sources(stack_logs.nodes(addresses), node_runtime_dir, command_)
    failures: list[WsgistackError] = []

    def failed(error: WsgistackError) -> None:
        failures.append(error)
        click.echo(error.render(), err=True)

    if not follow:
        for line in stack_logs.fleet_lines(sources, request_id, last, timestamps, failed):
            click.echo(line)
    else:
        lines = stack_logs.fleet_follow(sources, request_id, last, timestamps=timestamps, failed=failed)
        try:
            for line in lines:
                click.echo(line)
        except KeyboardInterrupt:
            pass
        finally:
            lines.close()  # ends every node's command now, wherever Ctrl-C came
    if failures:
        click.echo(f"{len(failures)} of {len(sources)} nodes' lines could not be read", err=True)
        sys.exit(1)
