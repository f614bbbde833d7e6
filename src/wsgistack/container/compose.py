"""compose files (one container, or the split nginx + app pair) and heroku.yml: pure renders."""

from __future__ import annotations

from dataclasses import dataclass

from wsgistack import __version__
from wsgistack.container.dockerfile import IMAGE_PORT, SHARED_DIR, TLS_DIR, TLS_PORT
from wsgistack.container.project import ProjectFacts
from wsgistack.errors import WsgistackError
from wsgistack.plan import Upstream
from wsgistack.render import RenderedFile, _env
from wsgistack import errorids as ids

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
        raise WsgistackError(ids.DOCKER_E010, f"--tcp-uri {uri!r} must be host:port", "e.g. --tcp-uri 127.0.0.1:8001")
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
    return RenderedFile("compose.yaml", _env().get_template("compose.yaml.j2").render(ctx))


def render_heroku() -> RenderedFile:
    return RenderedFile("heroku.yml", _env().get_template("heroku.yml.j2").render({"version": __version__}))
