"""Operating a running stack: status from uWSGI's stats socket and the pidfiles, and
graceful reloads through nginx's SIGHUP and uWSGI's master FIFO (seed 001's
``--connect-and-read`` / ``--reload`` done properly)."""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

from wsgistack.errors import WsgistackError
from wsgistack.plan import Plan
from wsgistack.runner.manager import process_alive_from_pidfile

NOT_RUNNING_HINT = "start it with `wsgistack run` (same directory and settings), or pass the same --runtime-dir"


@dataclass(frozen=True)
class Status:
    runtime_dir: str
    nginx_pid: int | None
    uwsgi_pid: int | None
    stats: dict[str, Any] | None

    @property
    def running(self) -> bool:
        return bool(self.nginx_pid or self.uwsgi_pid)


def read_uwsgi_stats(path: str, timeout: float = 2.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return dict(json.loads(b"".join(chunks)))


def status(plan: Plan) -> Status:
    stats = None
    uwsgi_pid = process_alive_from_pidfile(plan.paths.uwsgi_pid)
    if uwsgi_pid and plan.config.uwsgi.stats:
        try:
            stats = read_uwsgi_stats(str(plan.paths.stats))
        except (OSError, ValueError):
            stats = None
    return Status(
        runtime_dir=str(plan.paths.runtime),
        nginx_pid=process_alive_from_pidfile(plan.paths.nginx_pid),
        uwsgi_pid=uwsgi_pid,
        stats=stats,
    )


def reload(plan: Plan, chain: bool = False) -> list[str]:
    """Ask the running nginx to re-read its config and uWSGI to reload its workers
    gracefully (in-flight requests finish). ``chain`` reloads workers one at a time, so
    there is always a worker serving (needs app.lazy_apps to pick up new code)."""
    done: list[str] = []
    current = status(plan)
    if not current.running:
        raise WsgistackError("ops.E001", f"nothing is running in {plan.paths.runtime}", NOT_RUNNING_HINT)
    if current.uwsgi_pid:
        command = b"c" if chain else b"r"
        try:
            fd = os.open(plan.paths.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise WsgistackError(
                "ops.E002", f"cannot open uWSGI's master FIFO {plan.paths.fifo}: {exc.strerror}", "run as the user that started the stack"
            ) from None
        try:
            os.write(fd, command)
        finally:
            os.close(fd)
        done.append(f"uWSGI (pid {current.uwsgi_pid}): {'chain' if chain else 'graceful'} reload requested")
    if current.nginx_pid:
        os.kill(current.nginx_pid, signal.SIGHUP)
        done.append(f"nginx (pid {current.nginx_pid}): configuration reloaded (SIGHUP)")
    return done
