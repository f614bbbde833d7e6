"""`wsgistack balance`'s start: the balancer's own plan, render, write and check (``haproxy -c``),
composed like the node's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from wsgistack import ids
from wsgistack.config import LoadedConfig
from wsgistack.config.sources import MASK
from wsgistack.errors import MissingBinaryError, WsgistackError
from wsgistack.machine import Machine
from wsgistack.machine import detect as detect_machine
from wsgistack.plan.balancer import BalancerPlan, make_balancer_plan
from wsgistack.render import write_files
from wsgistack.render.balancer import render_balancer
from wsgistack.start.runtime import own_dir

INSTALL_HAPROXY_HINT = (
    "install it: sudo apt-get install haproxy (Debian/Ubuntu), sudo dnf install haproxy (Fedora), "
    "brew install haproxy (macOS)"
)


def check_config(plan: BalancerPlan, path: Path) -> None:
    """``haproxy -c`` on the written config: HAProxy's own word before anything starts."""
    assert plan.haproxy is not None
    out = subprocess.run([plan.haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        said = (out.stdout + out.stderr).strip()[-4000:]
        if len(plan.stats_password) >= 4:  # HAProxy quotes the line it refuses: never the stats password
            said = said.replace(plan.stats_password, MASK)
        raise WsgistackError(
            ids.BALANCER_E003,
            f"HAProxy refuses the rendered {path}",
            "this is a wsgistack bug unless a [balancer] setting is at fault: check the lines HAProxy names",
            details=said,
        )


def socket_answers(path: Path) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(path))
    except OSError:
        return False
    return True


# --- the balancer: its own plan, render, write and check ----------------------------------------


def balancer(loaded: LoadedConfig, machine: Machine | None = None) -> BalancerPlan:
    """`wsgistack balance`: plan, binary, render, write, ``haproxy -c``: everything before the
    process manager."""
    planned = make_balancer_plan(loaded, machine or detect_machine())
    if not planned.haproxy:
        raise MissingBinaryError(ids.BALANCER_E004, "haproxy is not installed (or not on PATH)", INSTALL_HAPROXY_HINT)
    own_dir(planned.paths.runtime, 0o700)
    if socket_answers(planned.paths.socket):
        raise WsgistackError(
            ids.BALANCER_E005,
            f"a balancer from another `wsgistack balance` is running there ({planned.paths.socket} answers)",
            "stop it first (Ctrl-C in its terminal), or set a different runtime_dir",
        )
    for stale in planned.paths.transient:
        stale.unlink(missing_ok=True)
    write_files(render_balancer(planned), planned.paths.runtime)
    check_config(planned, planned.paths.config)
    return planned
