"""``wsgistack status [PATH]``: is the stack up, and what are uWSGI's workers doing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.console import Console, Table

from wsgistack.cli.options import config_options, overrides, project_argument
from wsgistack.ops import control as ops
from wsgistack.procfs import worker_respawns


@click.command()
@project_argument
@click.option("--json", "as_json", is_flag=True, help="print the app server's stats as JSON (uWSGI's own; granian's workers)")
@config_options
def command(path: Path, as_json: bool, config_file: Path | None, **params: Any) -> None:
    """Show whether nginx, uWSGI and the background processes are running, and per-worker uWSGI stats."""
    # Only the paths, from the config: no app import, no plan.
    st = ops.status(ops.locate(path, overrides(params), config_file, os.environ))
    if as_json:
        click.echo(json.dumps(
            {"nginx_pid": st.nginx_pid, "uwsgi_pid": st.uwsgi_pid, "app_server": st.app_server, "draining": st.draining,
             "processes": list(st.processes), "listen_queue": st.listen_queue[0] if st.listen_queue else None,
             "listen_queue_limit": st.listen_queue[1] if st.listen_queue else None, "stats": st.stats}, indent=2
        ))
        sys.exit(0 if st.running else 1)
    console = Console()
    console.print(f"runtime dir: {st.runtime_dir}")
    console.print(f"nginx: {'running, pid %d' % st.nginx_pid if st.nginx_pid else 'not running'}")
    server = "granian" if st.app_server == "granian" else "uWSGI"
    console.print(f"{server}: {'running, pid %d' % st.uwsgi_pid if st.uwsgi_pid else 'not running'}")
    if st.draining and st.running:
        console.print("readiness: draining (answers 503, balancers send nothing new; `wsgistack undrain` puts it back)")
    background = [p for p in st.processes if p.get("kind") == "background"]
    if background:
        table = Table("process", "pid", "state", "restarts", "restart", "last exit")
        for p in background:
            table.add_row(
                str(p["name"]), str(p.get("pid") or "-"), str(p["state"]), str(p["restarts"]),
                str(p.get("restart") or ""), str(p.get("last_exit") or "-"),
            )
        console.print(table)
    if st.stats and st.app_server == "granian":
        # granian has no stats socket: its workers from /proc, with what wsgistack's shim counts.
        if st.listen_queue:
            console.print(f"listen queue: {st.listen_queue[0]} waiting (limit {st.listen_queue[1]})")
        table = Table("worker", "pid", "status", "requests", "busy for", "RSS MB")
        for w in st.stats.get("workers", []):
            busy = w.get("busy_seconds")
            table.add_row(str(w["id"]), str(w["pid"]), str(w["status"]), str(w["requests"]),
                          "-" if busy is None else f"{busy:.1f}s", f"{w.get('rss', 0) / 1048576:.1f}")
        console.print(table)
    elif st.stats:
        waiting, limit = st.listen_queue or (0, 0)
        console.print(f"listen queue: {waiting} waiting (limit {limit}), {st.stats.get('listen_queue_errors', 0)} overflows")
        table = Table("worker", "pid", "status", "requests", "exceptions", "avg ms", "RSS MB", "respawns")
        for w in st.stats.get("workers", []):
            table.add_row(
                str(w["id"]), str(w["pid"]), str(w["status"]), str(w["requests"]), str(w["exceptions"]),
                f"{w.get('avg_rt', 0) / 1000:.1f}", f"{w.get('rss', 0) / 1048576:.1f}", str(worker_respawns(w)),
            )
        console.print(table)
    if not st.running:
        click.echo(f"hint: {ops.NOT_RUNNING_HINT}", err=True)
        sys.exit(1)


