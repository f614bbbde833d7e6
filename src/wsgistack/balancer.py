"""The balancer: HAProxy in front of several nodes, each a `wsgistack run` (seed 004).

:func:`make_balancer_plan` derives everything haproxy.cfg needs from the config tree (pure,
like :func:`wsgistack.plan.make_plan`); the template only loops and branches over it.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wsgistack import hosts
from wsgistack.config.model import Config, split_address
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import ConfigError, WsgistackError
from wsgistack.machine import Machine
from wsgistack.plan import DEFAULT_REQUEST_TIMEOUT, NGINX_GRACE
from wsgistack import errorids as ids

# HAProxy waits for a node a little longer than the node's nginx does, so a slow request
# ends with the node's own 504 (logged there), not with a cut connection.
BALANCER_GRACE = 2
CONNECT_TIMEOUT_S = 3
# Methods HAProxy may send twice: safe ones only. PUT and DELETE are idempotent by the RFC,
# but an app's handler often is not (a counter, a notification), so they are treated as POST.
RETRYABLE_METHODS = ("GET", "HEAD", "OPTIONS")
INSTALL_HAPROXY_HINT = (
    "install it: sudo apt-get install haproxy (Debian/Ubuntu), sudo dnf install haproxy (Fedora), "
    "brew install haproxy (macOS)"
)


@dataclass(frozen=True)
class Server:
    name: str  # HAProxy's server name, what the runtime API and the stats page call it
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BalancerPaths:
    runtime: Path

    config = property(lambda self: self.runtime / "haproxy.cfg")
    socket = property(lambda self: self.runtime / "haproxy.sock")  # the runtime API (admin level)
    processes = property(lambda self: self.runtime / "processes.json")

    @property
    def transient(self) -> tuple[Path, ...]:
        return (self.socket,)


@dataclass(frozen=True)
class BalancerPlan:
    config: Config
    paths: BalancerPaths
    haproxy: str | None
    servers: tuple[Server, ...]
    check_path: str
    live_path: str
    check_host: str
    timeout_server: int  # seconds
    stats_user: str
    stats_password: str
    db_primary: Server | None
    db_replicas: tuple[Server, ...]

    @property
    def bind(self) -> str:
        return _bind(self.config.balancer.host, self.config.balancer.port)

    @property
    def stats_bind(self) -> str:
        return _bind(self.config.balancer.host, self.config.balancer.stats_port)

    @property
    def db_bind(self) -> str:
        return _bind(self.config.balancer.host, self.config.balancer.db_port)

    @property
    def db_read_bind(self) -> str:
        return _bind(self.config.balancer.host, self.config.balancer.db_read_port)

    @property
    def connect_timeout(self) -> int:
        return CONNECT_TIMEOUT_S

    @property
    def url(self) -> str:
        return f"http://{hosts.url_host(self.config.balancer.host)}:{self.config.balancer.port}"

    @property
    def stats_url(self) -> str:
        return self.url.rpartition(":")[0] + f":{self.config.balancer.stats_port}/"

    @property
    def retryable_methods(self) -> str:
        return " ".join(RETRYABLE_METHODS)

    def server(self, address: str) -> Server:
        """The server a node address (host:port) names, or a balancer.E002 error."""
        for server in self.servers:
            if address in (server.address, server.name):
                return server
        known = ", ".join(s.address for s in self.servers) or "none"
        raise WsgistackError(
            ids.BALANCER_E002, f"{address} is not one of the balancer's nodes ({known})",
            "name a node from balancer.nodes (or --node), as host:port",
        )


def _bind(host: str, port: int) -> str:
    if host in ("", "*"):
        return f":{port}"
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def default_runtime_dir(project: Path, machine: Machine) -> Path:
    digest = hashlib.sha1(str(project).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"wsgistack-balancer-{machine.euid}-{digest}"


def _check_host(config: Config) -> str:
    """A Host the nodes serve: the readiness path answers any Host, but a check that names
    a real one also passes through any Host filter a user puts in front of the node."""
    if config.balancer.check_host:
        return config.balancer.check_host
    named = [n for n in config.server.server_names if "*" not in n]
    return named[0] if named else "localhost"


def _servers(addresses: tuple[str, ...], prefix: str) -> tuple[Server, ...]:
    return tuple(Server(f"{prefix}{i}", *split_address(a)) for i, a in enumerate(addresses, start=1))


def make_balancer_plan(loaded: LoadedConfig, machine: Machine) -> BalancerPlan:
    """Pure: everything haproxy.cfg and the process table need."""
    config = loaded.config
    balancer = config.balancer
    if not balancer.nodes:
        raise ConfigError(
            [
                WsgistackError(
                    ids.BALANCER_E001,
                    "the balancer has no nodes",
                    "give them: wsgistack balance --node 10.0.0.11:8000 --node 10.0.0.12:8000, "
                    "or balancer.nodes in wsgistack.toml (env WSGISTACK_BALANCER__NODES)",
                )
            ]
        )
    runtime = config.runtime_dir
    if runtime is None:
        runtime = default_runtime_dir(loaded.project_dir, machine)
    elif not runtime.is_absolute():
        runtime = loaded.project_dir / runtime
    harakiri = DEFAULT_REQUEST_TIMEOUT if config.request_timeout == "auto" else int(config.request_timeout)
    user, _, password = balancer.stats_auth.partition(":")
    server = config.server
    return BalancerPlan(
        config=config,
        paths=BalancerPaths(runtime),
        haproxy=machine.haproxy,
        servers=_servers(balancer.nodes, "node"),
        check_path=server.ready_path,
        live_path=server.live_path,
        check_host=_check_host(config),
        timeout_server=harakiri + NGINX_GRACE + BALANCER_GRACE,
        stats_user=user,
        stats_password=password,
        db_primary=Server("primary", *split_address(balancer.db_primary)) if balancer.db_primary else None,
        db_replicas=_servers(balancer.db_replicas, "replica"),
    )


# --- running it -------------------------------------------------------------------------------


def check_config(plan: BalancerPlan, path: Path) -> None:
    """``haproxy -c`` on the written config: HAProxy's own word before anything starts."""
    import subprocess

    assert plan.haproxy is not None
    out = subprocess.run([plan.haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise WsgistackError(
            ids.BALANCER_E003,
            f"HAProxy refuses the rendered {path}",
            "this is a wsgistack bug unless a [balancer] setting is at fault: check the lines HAProxy names",
            details=(out.stdout + out.stderr).strip()[-4000:],
        )


def prepare(loaded: LoadedConfig, machine: Machine) -> BalancerPlan:
    """Plan, binary, render, write, ``haproxy -c``: everything before the process manager."""
    import os

    from wsgistack.errors import MissingBinaryError
    from wsgistack.render import render_balancer, write_files

    plan = make_balancer_plan(loaded, machine)
    if not plan.haproxy:
        raise MissingBinaryError(ids.BALANCER_E004, "haproxy is not installed (or not on PATH)", INSTALL_HAPROXY_HINT)
    plan.paths.runtime.mkdir(parents=True, exist_ok=True)
    os.chmod(plan.paths.runtime, 0o700)
    live = _socket_answers(plan.paths.socket)
    if live:
        raise WsgistackError(
            ids.BALANCER_E005,
            f"a balancer from another `wsgistack balance` is running there ({plan.paths.socket} answers)",
            "stop it first (Ctrl-C in its terminal), or set a different runtime_dir",
        )
    for stale in plan.paths.transient:
        stale.unlink(missing_ok=True)
    write_files(render_balancer(plan), plan.paths.runtime)
    check_config(plan, plan.paths.config)
    return plan


def _socket_answers(path: Path) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(path))
    except OSError:
        return False
    return True


# --- the runtime API (HAProxy's stats socket, admin level) ------------------------------------


class RuntimeAPI:
    """A few commands of HAProxy's runtime API over its unix socket."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, line: str) -> str:
        import socket

        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                s.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise WsgistackError(
                ids.BALANCER_E006,
                f"cannot reach HAProxy's runtime API at {self.path}: {exc.strerror or exc}",
                "is `wsgistack balance` running with the same settings (runtime_dir)? run this as the same user",
            ) from None
        return b"".join(chunks).decode()

    def set_state(self, backend: str, server: str, state: str) -> None:
        """``state``: ready, drain or maint."""
        reply = self.command(f"set server {backend}/{server} state {state}").strip()
        if reply:
            raise WsgistackError(ids.BALANCER_E007, f"HAProxy refused to set {server} {state}: {reply}", "")

    def stats(self) -> list[dict[str, str]]:
        """``show stat`` as one dict per line (frontends, servers, backends)."""
        import csv

        text = self.command("show stat").lstrip("# ")
        return [dict(row) for row in csv.DictReader(text.splitlines()) if row.get("pxname")]

    def server_stat(self, backend: str, server: str) -> dict[str, str]:
        for row in self.stats():
            if row["pxname"] == backend and row["svname"] == server:
                return row
        raise WsgistackError(ids.BALANCER_E002, f"HAProxy has no server {backend}/{server}", "")
