"""A rolling redeploy across the balancer's nodes, one at a time (`wsgistack rollout`).

For each node: drain it at the balancer (HAProxy's runtime API: no new requests, in-flight
ones finish), wait until it has none left, run its update (`wsgistack reload` for a node on
this machine, or the user's command, e.g. over ssh), wait until it is ready again, undrain.
The first node that does not come back stops the rollout: it stays drained, every other
node keeps serving, and the error says which node and how to put it back.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from wsgistack import hosts, ids
from wsgistack.errors import WsgistackError
from wsgistack.ops.balance import RuntimeAPI
from wsgistack.plan.balancer import BalancerPlan, Server

BACKEND = "nodes"  # the backend name in haproxy.cfg.j2


@dataclass(frozen=True)
class RolloutOptions:
    command: str = ""  # shell command template: {host} {port} {node} {name}; "" = wsgistack reload
    reload_argv: Sequence[str] = ()  # the local default: wsgistack reload PATH ... (host/port appended)
    drain_timeout: float = 30.0  # seconds to wait for a drained node's in-flight requests
    ready_timeout: float = 120.0  # seconds to wait for a node to be ready again after its update




def update_command(server: Server, options: RolloutOptions) -> list[str] | str:
    if options.command:
        filled = options.command
        for key, value in (("host", hosts.bare(server.host)), ("port", str(server.port)), ("node", server.address),
                           ("name", server.name)):
            filled = filled.replace("{" + key + "}", value)  # not str.format: shell ${VAR} stays as it is
        return filled
    if not hosts.is_local(server.host):
        raise WsgistackError(
            ids.ROLLOUT_E003,
            f"{server.address} is not on this machine, and no --command says how to update it",
            "give one, e.g. --command 'ssh {host} sudo systemctl reload myapp' ({host} {port} {node} are filled in)",
        )
    return [*options.reload_argv, "--host", hosts.bare(server.host), "--port", str(server.port)]


def node_ready(plan: BalancerPlan, server: Server, timeout: float = 2.0) -> str:
    """The node's readiness path, asked directly with the Host the balancer's check uses:
    "" when it answers 200, else what it answered."""
    request = urllib.request.Request(f"http://{hosts.url_host(server.host)}:{server.port}{plan.check_path}", headers={"Host": plan.check_host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - a node's own address
            return "" if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


class Updater(Protocol):
    """How a node is updated, and how its readiness is asked, once the balancer drained it."""

    def describe(self, server: Server) -> str: ...

    def update(self, server: Server) -> tuple[int, str]:  # (exit code, output)
        ...

    def ready(self, server: Server) -> str:  # "" when ready, else what it answered
        ...


@dataclass
class ShellUpdater:
    """`--command` (run by the shell) or, for a node on this machine, `wsgistack reload`."""

    plan: BalancerPlan
    options: RolloutOptions

    def describe(self, server: Server) -> str:
        argv = update_command(server, self.options)
        return argv if isinstance(argv, str) else shlex.join(argv)

    def update(self, server: Server) -> tuple[int, str]:
        argv = update_command(server, self.options)
        done = subprocess.run(argv, shell=isinstance(argv, str), capture_output=True, text=True, check=False)
        return done.returncode, done.stdout + done.stderr

    def ready(self, server: Server) -> str:
        return node_ready(self.plan, server)


def rollout(plan: BalancerPlan, options: RolloutOptions, say: Callable[[str], None],
            nodes: Sequence[Server] | None = None, *, api: RuntimeAPI | None = None,
            updater: Updater | None = None, on_swap: Callable[[str], None] | None = None) -> None:
    """Each node in turn: drain, update, ready, undrain. ``on_swap("start")`` before the first
    drain and ``on_swap("end")`` once the last node is back (the probe's window)."""
    api = api or RuntimeAPI(plan.paths.socket)
    updater = updater or ShellUpdater(plan, options)
    interval = plan.config.balancer.check_interval / 1000
    rise = plan.config.balancer.rise
    targets = list(nodes or plan.servers)
    for server in targets:
        updater.describe(server)  # before draining: a missing --command drains nothing (rollout.E003)
    if on_swap:
        on_swap("start")
    for server in targets:
        up = [s for s in plan.servers if s != server and api.server_stat(BACKEND, s.name)["status"] == "UP"]
        if not up:
            raise WsgistackError(
                ids.ROLLOUT_E004,
                f"no other node is up: draining {server.address} would leave nothing serving",
                "bring the other nodes back first (see the stats page)",
            )
        say(f"{server.name} {server.address}: draining at the balancer")
        node_started = time.monotonic()
        api.set_state(BACKEND, server.name, "drain")
        deadline = time.monotonic() + options.drain_timeout
        while int(api.server_stat(BACKEND, server.name).get("scur") or 0) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        put_back = api.how_to(f"set server {BACKEND}/{server.name} state ready")
        say(f"{server.name} {server.address}: updating: {updater.describe(server)}")
        returncode, output = updater.update(server)
        for line in output.strip().splitlines():
            say(f"  {line}")
        if returncode != 0:
            raise WsgistackError(
                ids.ROLLOUT_E001,
                f"the update of {server.address} failed with exit code {returncode}; the rollout stops there",
                f"{server.name} stays drained, the other nodes serve; fix it, then put it back with `{put_back}` "
                "or run the rollout again",
            )
        # Ready `rise` times in a row, `check_interval` apart (what the balancer itself
        # requires), and the balancer's own check agrees before any request is sent back.
        say(f"{server.name} {server.address}: waiting until it is ready")
        deadline = time.monotonic() + options.ready_timeout
        streak = 0
        while True:
            answer = updater.ready(server)
            streak = 0 if answer else streak + 1
            row = api.server_stat(BACKEND, server.name)
            status = row["status"]
            if streak >= rise and status in ("DRAIN", "UP") and row.get("check_status", "").lstrip("* ") in ("L7OK", "L7OKC", ""):
                break
            if time.monotonic() > deadline:
                raise WsgistackError(
                    ids.ROLLOUT_E002,
                    f"{server.address} is not ready {options.ready_timeout:g}s after its update (readiness: "
                    f"{answer or 'ready'}; the balancer's check: {status}); the rollout stops there",
                    f"{server.name} stays drained, the other nodes serve; see the node's log, then put it back with "
                    f"`{put_back}`",
                )
            time.sleep(interval)
        api.set_state(BACKEND, server.name, "ready")
        say(f"{server.name} {server.address}: ready, back in the balancer ({time.monotonic() - node_started:.1f} s drained)")
    if on_swap:
        on_swap("end")
