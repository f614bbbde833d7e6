"""compose files (one container, or the split nginx + app pair) and heroku.yml: pure renders."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wsgistack import __version__, ids
from wsgistack.errors import UsageError
from wsgistack.layout import (
    BALANCER_CONTEXT,
    BALANCER_PROJECT_DIR,
    DATA_DIR,
    IMAGE_PORT,
    IMAGE_RUNTIME_DIR,
    IMAGE_UID,
    MARIADB_CONTEXT,
    SHARED_DIR,
    TLS_DIR,
    TLS_PORT,
)
from wsgistack.config.model import Config
from wsgistack.plan.image import DataDir, ProjectFacts, WsgistackSource
from wsgistack.plan.stop import grace_for, graces
from wsgistack.plan.stack import Upstream
from wsgistack.render import RenderedFile, environment
from wsgistack.render.dockerfile import DEFAULT_BASE

SOCKET_URI = f"unix:{SHARED_DIR}/uwsgi.sock"
DEFAULT_TCP_URI = "127.0.0.1:8001"


@dataclass(frozen=True)
class ComposeOptions:
    image: str
    split: bool = False
    socket: str = "unix"  # unix (a shared volume) | tcp
    tcp_uri: str = DEFAULT_TCP_URI
    port: int = IMAGE_PORT
    host: str = "0.0.0.0"
    env_file: str = ""  # e.g. .env.production: read by compose at `up`, never built into the image
    env: tuple[tuple[str, str], ...] = ()  # extra environment for the app (single: the container)
    tls: str = "off"  # tls.mode for the container serving nginx (a volume keeps its certificates)
    tls_port: int = TLS_PORT
    # What each service's stop may take (plan.stop.graces of the project's config): its
    # stop_grace_period, so docker's SIGKILL never cuts a stop that is within its budgets.
    grace: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class _Volume:
    volume: str
    path: str


def render_compose(facts: ProjectFacts, options: ComposeOptions) -> RenderedFile:
    unix = options.socket == "unix"
    uri = SOCKET_URI if unix else options.tcp_uri
    if not unix and Upstream.parse(uri).kind != "tcp":
        raise UsageError(ids.DOCKER_E010, f"--tcp-uri {uri!r} must be host:port", "e.g. --tcp-uri 127.0.0.1:8001")
    if options.split:
        data = [d for d in facts.data_dirs]
    else:  # one container: only what the app writes needs to outlive it (static is the image's, or collected at start)
        data = [d for d in facts.data_dirs if d.role != "static"]
    volumes = [_Volume(_volume_name(d, data), str(d.container_path)) for d in data]
    # nginx (split: the web container) serves the directories that have a URL, read-only
    served = [v for d, v in zip(data, volumes, strict=True) if d.url]
    names = ([("socket")] if options.split and unix else []) + [v.volume for v in volumes]
    names += ["tls"] if options.tls != "off" else []
    static_env = " ".join(f"{d.url}={d.container_path}" for d in facts.data_dirs if d.url) if options.split else ""
    ctx = {
        "version": __version__,
        "image": options.image,
        "split": options.split,
        "unix": unix,
        "uri": uri,
        "port": options.port,
        "host": options.host,
        "shared_dir": SHARED_DIR,
        "env_file": options.env_file,
        "extra_env": options.env,
        # the web role runs no app code: only server settings matter to it
        "web_env": tuple((k, v) for k, v in options.env if k.startswith(("WSGISTACK_SERVER__", "NGINX_"))),
        "data_volumes": volumes,
        "served_volumes": served,
        "static_env": static_env,
        "volumes": names,
        "processes": facts.processes,
        "tls": options.tls,
        "tls_port": options.tls_port,
        "tls_dir": TLS_DIR,
        "grace": {role: grace_for(options.grace, role) for role in ("all", "app", "web")},
        "worker_grace": {name: grace_for(options.grace, f"worker:{name}") for name in facts.processes},
    }
    return RenderedFile("compose.yaml", environment().get_template("compose.yaml.j2").render(ctx))


def _volume_name(d: DataDir, all_dirs: list[DataDir]) -> str:
    """static, media, or for a directory served by no URL its own name (uploads): one volume
    each, shared by every container that runs the app's code (app, worker-NAME)."""
    if d.role != "data":
        return d.role
    name = re.sub(r"[^a-z0-9_.-]+", "-", d.relative.name.lower()).strip("-.") or "data"
    taken = {x.role for x in all_dirs if x.role != "data"} | {"socket", "tls"}
    return name if name not in taken else f"{name}-data"


def render_heroku(dockerfile: str = "Dockerfile") -> RenderedFile:
    ctx = {"version": __version__, "dockerfile": dockerfile}
    return RenderedFile("heroku.yml", environment().get_template("heroku.yml.j2").render(ctx))


# --- the whole seed-004 topology: balancer, N nodes, database pair, optional Cassandra ------

FLEET_NODE_PORT = 8001  # host networking: node i listens on 127.0.0.1:FLEET_NODE_PORT + i - 1
FLEET_DRAIN_DELAY = 3  # > check_interval x fall (2 s): the balancer takes a stopping node out first
FLEET_DB_PORTS = (3306, 3307)  # seed 004: writes through 3306, reads through 3307 (host networking)
FLEET_SUBNET = "172.30.23.0/24"  # compose network: the nodes trust X-Forwarded-* from it only (${FLEET_SUBNET})
DOCKER_DNS = "127.0.0.11:53"  # Docker's embedded DNS on a compose network
MARIADB_VERSION = "10.11"  # the official image's tag, and Debian bookworm's mariadb-server
MARIADB_BASE = "debian:bookworm-slim"  # --offline: MariaDB 10.11 from Debian
APP_IMAGE_VAR = "APP_IMAGE"  # the nodes' image: `wsgistack rollout --compose` sets it, .env keeps it
NETWORKS = ("host", "bridge")


@dataclass(frozen=True)
class FleetOptions:
    image: str
    nodes: int = 3
    port: int = IMAGE_PORT  # the balancer's
    host: str = "0.0.0.0"
    stats_port: int = 9080
    db: bool = True
    cassandra: bool = False
    env_file: str = ""
    env: tuple[tuple[str, str], ...] = ()
    offline: bool = False  # every image built here from the Debian base (MariaDB from Debian's mariadb-server)
    network: str = "host"  # host (every service binds its own port) | bridge (a compose network, names)
    secret_env: str = "DJANGO_SECRET_KEY"  # the one secret every node must share (sessions, CSRF tokens)
    base: str = DEFAULT_BASE  # the balancer image's base: the app image's, so the builder layers are shared
    node_port: int = FLEET_NODE_PORT  # host networking: node 1's port (node i: + i - 1)
    db_port: int = FLEET_DB_PORTS[0]  # host networking: the primary's port (the replica's: + 1)
    grace: tuple[tuple[str, int], ...] = ()  # as ComposeOptions.grace, with the fleet's drain_delay


@dataclass(frozen=True)
class _FleetNode:
    name: str
    port: int
    address: str  # how the balancer reaches it


def _fleet_nodes(options: FleetOptions) -> list[_FleetNode]:
    if options.network == "host":
        return [_FleetNode(f"node{i + 1}", options.node_port + i, f"127.0.0.1:{options.node_port + i}")
                for i in range(options.nodes)]
    return [_FleetNode(f"node{i + 1}", IMAGE_PORT, f"node{i + 1}:{IMAGE_PORT}") for i in range(options.nodes)]


def _check_fleet(options: FleetOptions, nodes: list[_FleetNode]) -> None:
    if not 1 <= options.nodes <= 50:
        raise UsageError(ids.DOCKER_E010, f"--fleet {options.nodes}: between 1 and 50 nodes", "e.g. --fleet 3")
    if options.network not in NETWORKS:
        raise UsageError(ids.DOCKER_E010, f"--network {options.network!r}: host or bridge", "e.g. --network bridge")
    if options.network == "host" and (options.port in [n.port for n in nodes] or options.stats_port in [n.port for n in nodes]):
        raise UsageError(ids.DOCKER_E010, f"--port {options.port} / --stats-port {options.stats_port} collide with "
                             f"the nodes' ports ({nodes[0].port}-{nodes[-1].port})", "pick another, e.g. --port 8080")
    if options.network == "host" and options.db and {options.db_port, options.db_port + 1} & (
            {n.port for n in nodes} | {options.port, options.stats_port}):
        raise UsageError(ids.DOCKER_E010, f"--db-port {options.db_port} (and {options.db_port + 1}, the replica's) collide "
                         "with the nodes' or the balancer's ports", "pick another, e.g. --db-port 3306")
    if not (1024 <= options.node_port <= 65535 - options.nodes and 1024 <= options.db_port < 65535):
        raise UsageError(ids.DOCKER_E010, f"--node-port {options.node_port} / --db-port {options.db_port}: unprivileged "
                         "ports, room for every node", "e.g. --node-port 8001 --db-port 3306")
    if options.port == options.stats_port:
        raise UsageError(ids.DOCKER_E010, f"--port and --stats-port are both {options.port}", "e.g. --stats-port 9080")
    if options.offline and options.cassandra:
        raise UsageError(ids.DOCKER_E010, "--offline cannot build Cassandra: Debian ships no Cassandra package",
                         "drop --cassandra (posts then stay in MariaDB), or leave --offline out to use the official image")
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", options.secret_env):
        raise UsageError(ids.DOCKER_E010, f"--secret-env {options.secret_env!r} is not an environment variable name",
                         "e.g. --secret-env SECRET_KEY")


def balancer_image(version: str = __version__) -> str:
    """The balancer image's default tag (${BALANCER_IMAGE} in the file names another)."""
    return f"wsgistack-balancer:{version}"


def balancer_env(options: FleetOptions) -> dict[str, str]:
    """The balancer service's settings: what its entrypoint renders haproxy.cfg from."""
    env = {
        "WSGISTACK_BALANCER__NODES": " ".join(n.address for n in _fleet_nodes(options)),
        "WSGISTACK_BALANCER__HOST": options.host if options.network == "host" else "0.0.0.0",
        "WSGISTACK_BALANCER__PORT": str(options.port),
        "WSGISTACK_BALANCER__STATS_PORT": str(options.stats_port),
        # The balancer's image has no project file: it cannot know the names the nodes serve
        # (their wsgistack.toml, env_file), so it refuses no Host itself and the nodes do (a
        # client's unknown Host still never counts against a node: observe layer4).
        "WSGISTACK_SERVER__SERVER_NAMES": "*",
    }
    if options.network == "bridge":
        env["WSGISTACK_BALANCER__RESOLVER"] = DOCKER_DNS
    return env


def render_fleet(facts: ProjectFacts, options: FleetOptions, source: WsgistackSource) -> list[RenderedFile]:
    """compose.yaml and the build contexts it names: the balancer's image (role balancer:
    `wsgistack balance`'s haproxy.cfg, rendered in the container from the settings in the
    file), the app's image N times (each node trusting the balancer only, draining on stop,
    its own data volume, one shared secret), MariaDB primary + replica (the official image, or
    with ``offline`` one built from Debian's mariadb-server with the same variables), and
    Cassandra when asked. Pure: the balancer's settings are checked by planning it here."""
    from pathlib import Path

    from wsgistack.config import load_config
    from wsgistack.machine import Machine
    from wsgistack.plan.balancer import make_balancer_plan

    nodes = _fleet_nodes(options)
    _check_fleet(options, nodes)
    env = balancer_env(options)
    # Settings only, from the environment given here: no project file, so the render is the
    # same on every machine (the stats page's password comes at `up`). A bad value fails here.
    loaded = load_config(Path("/nonexistent-project"), env={**env, "WSGISTACK_RUNTIME_DIR": str(IMAGE_RUNTIME_DIR)})
    machine = Machine(cpus=1, memory_limit=None, somaxconn=4096, euid=IMAGE_UID, nginx=None, python="python3",
                      haproxy="haproxy")
    make_balancer_plan(loaded, machine)
    host_net = options.network == "host"
    media = [_Volume(d.role, str(d.container_path)) for d in facts.data_dirs if d.role == "media"]
    volumes = [v.volume for v in media] + [f"{n.name}-data" for n in nodes]
    volumes += ["db-primary", "db-replica"] if options.db else []
    volumes += ["cassandra"] if options.cassandra else []
    db_hosts = ("127.0.0.1", "127.0.0.1") if host_net else ("db-primary", "db-replica")
    db_ports = (options.db_port, options.db_port + 1) if host_net else (3306, 3306)
    ctx = {
        "version": __version__,
        "image": options.image,
        "image_var": APP_IMAGE_VAR,
        "balancer_image": balancer_image(),
        "balancer_context": BALANCER_CONTEXT,
        "mariadb_context": MARIADB_CONTEXT,
        "db_image": f"wsgistack-mariadb:{MARIADB_VERSION}" if options.offline else f"mariadb:{MARIADB_VERSION}",
        "offline": options.offline,
        "host_net": host_net,
        "subnet": FLEET_SUBNET,
        "nodes": nodes,
        "host": options.host,
        "port": options.port,
        "stats_port": options.stats_port,
        "balancer_env": env,
        "drain_delay": FLEET_DRAIN_DELAY,
        # A node drains, then stops nginx and uWSGI (and its background processes) within their budgets.
        "node_grace": dict(options.grace).get("all") or dict(graces(Config(drain_delay=FLEET_DRAIN_DELAY)))["all"],
        "image_port": IMAGE_PORT,
        "data_dir": DATA_DIR,
        "secret_env": options.secret_env,
        "db": options.db,
        "db_hosts": db_hosts,
        "db_ports": db_ports,
        "db_name": "app",
        "db_user": "app",
        "cassandra": options.cassandra,
        "extra_env": options.env,
        "env_file": options.env_file,
        "media": media,
        "volumes": volumes,
    }
    env_ = environment()
    files = [
        RenderedFile("compose.yaml", env_.get_template("compose-fleet.yaml.j2").render(ctx)),
        RenderedFile(f"{BALANCER_CONTEXT}/Dockerfile", env_.get_template("Dockerfile.balancer.j2").render({
            "version": __version__, "base": options.base, "source": source, "heroku": False, "build_packages": (),
            "acme": False, "uid": IMAGE_UID, "port": IMAGE_PORT, "stats_port": 9080,
            "project_dir": BALANCER_PROJECT_DIR, "runtime_dir": IMAGE_RUNTIME_DIR})),
    ]
    if options.offline and options.db:
        db_ctx = {"version": __version__, "base": MARIADB_BASE, "mariadb_version": MARIADB_VERSION}
        files += [
            RenderedFile(f"{MARIADB_CONTEXT}/Dockerfile", env_.get_template("mariadb/Dockerfile.j2").render(db_ctx)),
            RenderedFile(f"{MARIADB_CONTEXT}/entrypoint.sh", env_.get_template("mariadb/entrypoint.sh.j2").render(db_ctx), 0o755),
            RenderedFile(f"{MARIADB_CONTEXT}/healthcheck.sh", env_.get_template("mariadb/healthcheck.sh.j2").render(db_ctx), 0o755),
        ]
    return files
