"""The balancer: HAProxy in front of several nodes, each a `wsgistack run` (seed 004).

:func:`make_balancer_plan` derives everything haproxy.cfg needs from the config tree (pure,
like :func:`wsgistack.plan.make_plan`); the template only loops and branches over it.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsgistack import hosts, ids
from wsgistack.config.model import Config, split_address
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import ConfigError, WsgistackError
from wsgistack.layout import BalancerPaths, balancer_paths
from wsgistack.machine import Machine
from wsgistack.plan.stack import DEFAULT_REQUEST_TIMEOUT, NGINX_GRACE, RETRYABLE_METHODS, check_runtime_dir, host_pattern

# HAProxy waits for a node a little longer than the node's nginx does, so a slow request
# ends with the node's own 504 (logged there), not with a cut connection.
BALANCER_GRACE = 2
CONNECT_TIMEOUT_S = 3


@dataclass(frozen=True)
class Server:
    name: str  # HAProxy's server name, what the runtime API and the stats page call it
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"




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
    resolver: Server | None = None  # DNS for the nodes' names while HAProxy runs (balancer.resolver)
    # Requests one node gets at once (HAProxy's server maxconn; 0 = no limit): the rest wait in
    # HAProxy's queue for whichever node frees a worker first (balancer.maxconn, auto = the nodes' workers).
    server_maxconn: int = 0
    # The Hosts the nodes serve (server.server_names) as one regex HAProxy matches against the
    # Host header, or "" for any ("*"): the balancer refuses the rest itself.
    host_regex: str = ""
    notes: tuple[str, ...] = ()
    python: str = "python3"  # wsgistack's own interpreter: the ops listener beside HAProxy (ops.port)

    @property
    def bind(self) -> str:
        return hosts.listen_address(self.config.balancer.host, self.config.balancer.port)

    @property
    def stats_bind(self) -> str:
        return hosts.listen_address(self.config.balancer.host, self.config.balancer.stats_port)

    @property
    def db_bind(self) -> str:
        return hosts.listen_address(self.config.balancer.host, self.config.balancer.db_port)

    @property
    def db_read_bind(self) -> str:
        return hosts.listen_address(self.config.balancer.host, self.config.balancer.db_read_port)

    @property
    def connect_timeout(self) -> int:
        return CONNECT_TIMEOUT_S

    @property
    def url(self) -> str:
        return f"http://{hosts.url_host(self.config.balancer.host)}:{self.config.balancer.port}"

    @property
    def stats_url(self) -> str:
        return f"http://{hosts.url_host(self.config.balancer.host)}:{self.config.balancer.stats_port}/"

    @property
    def retryable_methods(self) -> str:
        return " ".join(RETRYABLE_METHODS)

    @property
    def refuse_unknown_host(self) -> str:
        """How HAProxy refuses a Host the nodes do not serve: as the nodes would (server.unknown_host)."""
        return "deny deny_status 421" if self.config.server.unknown_host == "421" else "reject"

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






def _check_host(config: Config) -> str:
    """A Host the nodes serve: the readiness path answers any Host, but a check that names
    a real one also passes through any Host filter a user puts in front of the node."""
    if config.balancer.check_host:
        return config.balancer.check_host
    named = [n for n in config.server.server_names if "*" not in n]
    return named[0] if named else "localhost"


def _server_maxconn(config: Config, notes: list[str]) -> int:
    """balancer.maxconn resolved: "auto" = the nodes' workers, from the same config they run
    (uwsgi.processes x uwsgi.threads). A node sized "auto" from its own CPUs cannot be known
    here: no limit then (the node queues in its listen queue, and readiness stays up while it
    does), with a note saying how to queue at the balancer instead."""
    setting = config.balancer.maxconn
    if setting != "auto":
        return int(setting)
    if config.uwsgi.processes == "auto":
        notes.append("balancer.maxconn auto = no limit: uwsgi.processes is auto, sized on each node from its own CPUs; "
                     "set uwsgi.processes (in the nodes' wsgistack.toml, which the balancer reads too) or balancer.maxconn "
                     "to queue requests at the balancer for the first free node")
        return 0
    workers = int(config.uwsgi.processes) * config.worker_threads
    notes.append(f"balancer.maxconn auto = {workers} per node (uwsgi.processes {config.uwsgi.processes} x threads "
                 f"{config.worker_threads}); more requests wait in HAProxy's queue for the first free node")
    return workers


def _servers(addresses: tuple[str, ...], prefix: str) -> tuple[Server, ...]:
    return tuple(Server(f"{prefix}{i}", *split_address(a)) for i, a in enumerate(addresses, start=1))


def node_servers(addresses: tuple[str, ...]) -> tuple[Server, ...]:
    """balancer.nodes as HAProxy names them (node1, node2, ... in the order given)."""
    return _servers(addresses, "node")


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
    harakiri = DEFAULT_REQUEST_TIMEOUT if config.request_timeout == "auto" else int(config.request_timeout)
    user, _, password = balancer.stats_auth.partition(":")
    server = config.server
    notes: list[str] = []
    maxconn = _server_maxconn(config, notes)
    paths = balancer_paths(loaded, machine.euid)
    check_runtime_dir(paths.runtime, loaded)
    return BalancerPlan(
        config=config,
        paths=paths,
        haproxy=machine.haproxy,
        servers=node_servers(balancer.nodes),
        check_path=server.ready_path,
        live_path=server.live_path,
        check_host=_check_host(config),
        timeout_server=harakiri + NGINX_GRACE + BALANCER_GRACE,
        stats_user=user,
        stats_password=password,
        db_primary=Server("primary", *split_address(balancer.db_primary)) if balancer.db_primary else None,
        db_replicas=_servers(balancer.db_replicas, "replica"),
        resolver=Server("dns", *split_address(balancer.resolver)) if balancer.resolver else None,
        server_maxconn=maxconn,
        host_regex=host_pattern(server.server_names),
        notes=tuple(notes),
        python=machine.python,
    )


# --- running it -------------------------------------------------------------------------------








# --- the runtime API (HAProxy's stats socket, admin level) ------------------------------------


