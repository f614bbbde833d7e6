"""compose files (one container, or the split nginx + app pair) and heroku.yml: pure renders."""

from __future__ import annotations

from dataclasses import dataclass

from wsgistack import __version__, ids
from wsgistack.errors import UsageError
from wsgistack.layout import IMAGE_PORT, SHARED_DIR, TLS_DIR, TLS_PORT
from wsgistack.plan.image import ProjectFacts
from wsgistack.plan.stack import Upstream
from wsgistack.render import RenderedFile, environment

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
    else:  # one container: only uploads need to outlive it (static is collected at each start)
        data = [d for d in facts.data_dirs if d.role == "media"]
    volumes = [_Volume(d.role, str(d.container_path)) for d in data]
    names = ([("socket")] if options.split and unix else []) + [v.volume for v in volumes]
    names += ["tls"] if options.tls != "off" else []
    static_env = " ".join(f"{d.url}={d.container_path}" for d in facts.data_dirs) if options.split else ""
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
        "static_env": static_env,
        "volumes": names,
        "processes": facts.processes,
        "tls": options.tls,
        "tls_port": options.tls_port,
        "tls_dir": TLS_DIR,
    }
    return RenderedFile("compose.yaml", environment().get_template("compose.yaml.j2").render(ctx))


def render_heroku(dockerfile: str = "Dockerfile") -> RenderedFile:
    ctx = {"version": __version__, "dockerfile": dockerfile}
    return RenderedFile("heroku.yml", environment().get_template("heroku.yml.j2").render(ctx))


# --- the whole seed-004 topology: balancer, N nodes, database pair, optional Cassandra ------

FLEET_NODE_PORT = 8001  # node i listens on 127.0.0.1:FLEET_NODE_PORT + i - 1 (host networking)
FLEET_DRAIN_DELAY = 3  # > check_interval x fall (2 s): the balancer takes a stopping node out first
FLEET_DB_PORTS = (3306, 3307)  # seed 004: writes through 3306, reads through 3307


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


@dataclass(frozen=True)
class _FleetNode:
    port: int


def render_fleet(facts: ProjectFacts, options: FleetOptions) -> RenderedFile:
    """One compose file: `wsgistack balance`'s haproxy.cfg in HAProxy's official image, the
    app's image N times (each node its own port, trusting the balancer only, draining on
    stop), MariaDB primary + replica (the official image's replication variables), and
    Cassandra when asked. Pure: the haproxy.cfg is the balancer's own render."""
    from pathlib import Path

    from wsgistack.config import load_config
    from wsgistack.machine import Machine
    from wsgistack.plan.balancer import make_balancer_plan

    if not 1 <= options.nodes <= 50:
        raise UsageError(ids.DOCKER_E010, f"--fleet {options.nodes}: between 1 and 50 nodes", "e.g. --fleet 3")
    nodes = [_FleetNode(FLEET_NODE_PORT + i) for i in range(options.nodes)]
    if options.port in [n.port for n in nodes] or options.stats_port in [n.port for n in nodes]:
        raise UsageError(ids.DOCKER_E010, f"--port {options.port} / --stats-port {options.stats_port} collide with "
                             f"the nodes' ports ({nodes[0].port}-{nodes[-1].port})", "pick another, e.g. --port 8080")
    env = {
        "WSGISTACK_BALANCER__NODES": " ".join(f"127.0.0.1:{n.port}" for n in nodes),
        "WSGISTACK_BALANCER__HOST": options.host,
        "WSGISTACK_BALANCER__PORT": str(options.port),
        "WSGISTACK_BALANCER__STATS_PORT": str(options.stats_port),
        "WSGISTACK_RUNTIME_DIR": "/tmp",  # in HAProxy's container: where its runtime API socket goes
    }
    # Settings only, from the environment given here: no project file, so the render is the
    # same on every machine (the stats page's password comes at `up`, see below).
    loaded = load_config(Path("/nonexistent-project"), env=env)
    machine = Machine(cpus=1, memory_limit=None, somaxconn=4096, euid=0, nginx=None, python="python3", haproxy="haproxy")
    haproxy_cfg = environment().get_template("haproxy.cfg.j2").render(
        {"plan": make_balancer_plan(loaded, machine), "version": __version__})
    media = [_Volume(d.role, str(d.container_path)) for d in facts.data_dirs if d.role == "media"]
    volumes = [v.volume for v in media]
    volumes += ["db-primary", "db-replica"] if options.db else []
    volumes += ["cassandra"] if options.cassandra else []
    ctx = {
        "version": __version__,
        "image": options.image,
        "nodes": nodes,
        "host": options.host,
        "port": options.port,
        "stats_port": options.stats_port,
        "haproxy_cfg": haproxy_cfg,
        "drain_delay": FLEET_DRAIN_DELAY,
        "db": options.db,
        "db_port": FLEET_DB_PORTS[0],
        "db_read_port": FLEET_DB_PORTS[1],
        "db_name": "app",
        "db_user": "app",
        "cassandra": options.cassandra,
        "extra_env": options.env,
        "env_file": options.env_file,
        "media": media,
        "volumes": volumes,
    }
    return RenderedFile("compose.yaml", environment().get_template("compose-fleet.yaml.j2").render(ctx))
