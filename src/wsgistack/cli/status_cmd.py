"""``wsgistack status [PATH]``: is the stack up, and what are uWSGI's workers doing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.console import Console, Table, note

from wsgistack.cli.options import config_options, overrides, project_argument
from wsgistack.ops import control as ops
from wsgistack.procfs import worker_respawns


@click.command()
@project_argument
@click.option("--json", "as_json", is_flag=True, help="print the app server's stats as JSON (uWSGI's own; granian's workers)")
@click.option("--watch", is_flag=True, help="a live view (uwsgitop-like): workers, req/s, queue, processes; Ctrl-C to stop")
@click.option("--interval", type=click.FloatRange(0.2, 60), default=2.0, show_default=True, help="--watch: seconds between views")
@click.option("--count", "frames", type=click.IntRange(1), default=None, help="--watch: stop after this many views")
@config_options
def command(path: Path, as_json: bool, watch: bool, interval: float, frames: int | None, config_file: Path | None,
            **params: Any) -> None:
    """Show whether nginx, uWSGI and the background processes are running, and per-worker uWSGI stats."""
    # Only the paths, from the config: no app import, no plan.
    paths = ops.locate(path, overrides(params), config_file, os.environ)
    if watch:
        _watch(paths, interval, frames)
        return
    st = ops.status(paths)
    for why in st.refused:
        note(f"not believed: {why}")
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




def _watch(paths: Any, interval: float, frames: int | None) -> None:
    """uwsgitop's view, from `status`'s own reads: one screen every ``interval`` seconds, each
    worker's requests per second from the difference between two views."""
    import time

    clear = sys.stdout.isatty()
    previous: dict[int, int] = {}
    before = time.monotonic()
    shown = 0
    try:
        while frames is None or shown < frames:
            st = ops.status(paths)
            now = time.monotonic()
            text = watch_view(st, previous, now - before if shown else 0.0)
            previous = {w["pid"]: int(w.get("requests") or 0) for w in (st.stats or {}).get("workers", [])}
            before = now
            click.echo(("\x1b[H\x1b[2J" if clear else "") + text, nl=not clear)
            shown += 1
            if frames is not None and shown >= frames:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def watch_view(st: ops.Status, previous: dict[int, int], elapsed: float) -> str:
    """One screen of the live view (a pure function of two reads, for tests)."""
    import time

    now = time.time()
    manager_since = min((p["since"] for p in st.processes if p.get("since")), default=None)
    up = _duration(now - manager_since) if manager_since else "-"
    workers = (st.stats or {}).get("workers", [])
    rates = {w["pid"]: (int(w.get("requests") or 0) - previous[w["pid"]]) / elapsed
             for w in workers if elapsed > 0 and w["pid"] in previous}
    total_rate = sum(max(0.0, r) for r in rates.values())
    total = sum(int(w.get("requests") or 0) for w in workers)
    busy = sum(1 for w in workers if w.get("status") == "busy")
    queue = f"{st.listen_queue[0]}/{st.listen_queue[1]}" if st.listen_queue else "-"
    server = "granian" if st.app_server == "granian" else "uWSGI"
    lines = [
        f"wsgistack {time.strftime('%H:%M:%S')}  up {up}  {st.runtime_dir}" + ("  DRAINING" if st.draining else ""),
        f"nginx {st.nginx_pid or 'not running'}  {server} {st.uwsgi_pid or 'not running'}  workers {busy}/{len(workers)} busy  "
        f"req/s {total_rate:.1f}  requests {total}  listen queue {queue}",
        "",
        f"{'WID':>3} {'%':>5} {'PID':>7} {'REQ':>8} {'RPS':>7} {'EXC':>5} {'STATUS':<9} {'AVG ms':>7} {'RSS MB':>7} {'RESPWN':>6} {'HARAKIRI':>8}",
    ]
    for w in workers:
        share = 100.0 * int(w.get("requests") or 0) / total if total else 0.0
        rate = rates.get(w["pid"])
        lines.append(
            f"{w.get('id', '?'):>3} {share:>5.1f} {w['pid']:>7} {int(w.get('requests') or 0):>8} "
            f"{'-' if rate is None else f'{max(0.0, rate):.1f}':>7} {int(w.get('exceptions') or 0):>5} {str(w.get('status', '?')):<9} "
            f"{(w.get('avg_rt') or 0) / 1000:>7.1f} {(w.get('rss') or 0) / 1048576:>7.1f} {worker_respawns(w):>6} "
            f"{int(w.get('harakiri_count') or 0):>8}")
    others = [p for p in st.processes if p.get("kind") == "background" or p["name"] not in ("nginx", "uwsgi", "granian")]
    if others:
        lines += ["", f"{'PROCESS':<16} {'STATE':<9} {'PID':>7} {'RESTARTS':>8}  LAST EXIT"]
        for p in others:
            lines.append(f"{p['name']:<16} {p['state']:<9} {p.get('pid') or '-':>7} {p.get('restarts', 0):>8}  {p.get('last_exit') or '-'}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, m, s = seconds // 3600, seconds % 3600 // 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
