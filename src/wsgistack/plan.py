"""Derived values, computed once in Python: the templates only loop and branch over a Plan.

A :class:`Plan` is the config resolved against the app and the machine: worker counts,
nested timeouts, socket paths, who owns what. ``make_plan`` is pure given its inputs; the
side effects (detecting the app, reading the machine) happen in :func:`build_plan`.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wsgistack.app import AppSpec, StaticDir, detect_app
from wsgistack.config.model import ROUTER_TIMEOUTS, Config, parse_size
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import ConfigError, WsgistackError
from wsgistack.machine import Machine

MB = 1024 * 1024
# Memory a worker of a typical Django app needs (measured: ~38 MB RSS, ~20 MB private),
# with headroom, and what Nginx + the uWSGI master + our manager take together.
WORKER_BUDGET = 64 * MB
FIXED_OVERHEAD = 96 * MB
DEFAULT_REQUEST_TIMEOUT = 30
# Nginx waits this much longer than uWSGI's harakiri, so a hung request is killed by uWSGI
# (which logs it and respawns the worker) and Nginx answers 504 only as a last resort.
NGINX_GRACE = 3
# And the platform router must still be waiting when Nginx gives up.
ROUTER_MARGIN = 2
MAX_UNIX_SOCKET_PATH = 107


@dataclass(frozen=True)
class Upstream:
    kind: str  # "unix" | "tcp"
    address: str  # socket path, or host:port

    @property
    def nginx(self) -> str:
        return f"unix:{self.address}" if self.kind == "unix" else self.address

    @classmethod
    def parse(cls, uri: str) -> Upstream:
        uri = uri.strip()
        for prefix in ("unix://", "unix:"):
            if uri.startswith(prefix):
                return cls("unix", uri[len(prefix) :])
        if uri.startswith("/"):
            return cls("unix", uri)
        return cls("tcp", uri.removeprefix("uwsgi://").removeprefix("tcp://"))


@dataclass(frozen=True)
class Location:
    url: str
    dir: Path
    role: str  # static | media | extra
    immutable: bool  # hashed file names (Django's manifest storage): cache them for a year


@dataclass(frozen=True)
class Paths:
    runtime: Path

    @property
    def private(self) -> Path:
        return self.runtime / "private"

    nginx_conf = property(lambda self: self.runtime / "nginx.conf")
    uwsgi_ini = property(lambda self: self.runtime / "uwsgi.ini")
    processes = property(lambda self: self.runtime / "processes.json")
    socket = property(lambda self: self.runtime / "uwsgi.sock")
    nginx_pid = property(lambda self: self.runtime / "nginx.pid")
    nginx_temp = property(lambda self: self.runtime / "nginx-temp")
    shim = property(lambda self: self.runtime / "wsgistack_app.py")
    stats = property(lambda self: self.private / "stats.sock")
    uwsgi_pid = property(lambda self: self.private / "uwsgi.pid")
    fifo = property(lambda self: self.private / "uwsgi.fifo")


@dataclass(frozen=True)
class Plan:
    config: Config
    machine: Machine
    app: AppSpec | None
    paths: Paths
    upstream: Upstream
    processes: int
    threads: int
    listen: int
    harakiri: int
    nginx_timeout: int
    router_timeout: int | None
    reload_on_rss_mb: int
    nginx_workers: int
    max_body_bytes: int
    locations: tuple[Location, ...]
    nginx_user: str | None  # `user` directive (only when the master runs as root)
    uwsgi_user: str | None  # uid/gid uWSGI drops to (only when started as root)
    socket_owner: str | None  # chown-socket value
    app_env: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # how "auto" values were resolved, and anything capped

    @property
    def role(self) -> str:
        return self.config.role

    @property
    def runs_nginx(self) -> bool:
        return self.config.role in ("all", "web")

    @property
    def runs_uwsgi(self) -> bool:
        return self.config.role in ("all", "app")

    @property
    def wsgi_module(self) -> str:
        """What uWSGI's ``module`` option loads (a shim for factories)."""
        assert self.app is not None
        if self.app.factory:
            return "wsgistack_app:application"
        return f"{self.app.module}:{self.app.attr}"

    @property
    def url(self) -> str:
        host = self.config.server.host
        if host in ("0.0.0.0", "", "*"):
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.config.server.port}"


def default_runtime_dir(project: Path, machine: Machine) -> Path:
    # Short and outside the project: unix socket paths are limited to 107 bytes, and a
    # project on a shared or read-only mount must not receive sockets.
    digest = hashlib.sha1(str(project).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"wsgistack-{machine.euid}-{digest}"


def _processes(config: Config, machine: Machine, notes: list[str]) -> int:
    if config.uwsgi.processes != "auto":
        return int(config.uwsgi.processes)
    by_cpu = max(2, machine.cpus)
    count = by_cpu
    if machine.memory_limit:
        by_memory = max(1, (machine.memory_limit - FIXED_OVERHEAD) // WORKER_BUDGET)
        count = min(by_cpu, by_memory)
        notes.append(
            f"uwsgi.processes auto = {count} (cpus {machine.cpus} -> {by_cpu}; "
            f"memory {machine.memory_limit // MB} MB fits {by_memory})"
        )
    else:
        notes.append(f"uwsgi.processes auto = {count} (cpus {machine.cpus})")
    return int(count)


def _timeouts(config: Config, origin: str) -> tuple[int, int, int | None]:
    router = ROUTER_TIMEOUTS.get(config.platform)
    if config.request_timeout == "auto":
        harakiri = DEFAULT_REQUEST_TIMEOUT
        if router is not None:
            harakiri = min(harakiri, router - NGINX_GRACE - ROUTER_MARGIN)
    else:
        harakiri = int(config.request_timeout)
    nginx = harakiri + NGINX_GRACE
    if router is not None and nginx >= router:
        raise ConfigError(
            [
                WsgistackError(
                    "config.E006",
                    f"request_timeout = {harakiri}s (from {origin}) does not fit inside the {config.platform} "
                    f"router's {router}s limit: Nginx must wait {NGINX_GRACE}s longer than uWSGI, and both must end first",
                    f"set request_timeout to at most {router - NGINX_GRACE - ROUTER_MARGIN}, or leave it at auto",
                )
            ]
        )
    return harakiri, nginx, router


def _locations(config: Config, app: AppSpec | None, project: Path) -> tuple[Location, ...]:
    found: dict[str, StaticDir] = {}
    for item in app.static if app else ():
        found[item.url] = item
    for mapping in config.server.static:  # explicit mappings win over detected ones
        directory = mapping.dir if mapping.dir.is_absolute() else (project / mapping.dir)
        found[mapping.url] = StaticDir(mapping.url, directory.resolve(), "extra")
    hashed = app is not None and app.kind == "django"
    # Longest prefix first, so /static/admin/ would win over /static/ in a reader's eye too.
    return tuple(
        Location(url=s.url, dir=s.dir, role=s.role, immutable=hashed and s.role == "static")
        for s in sorted(found.values(), key=lambda s: (-len(s.url), s.url))
    )


def make_plan(loaded: LoadedConfig, machine: Machine, app: AppSpec | None) -> Plan:
    """Pure: everything the renderer needs, derived from config, machine and app."""
    config = loaded.config
    project = loaded.project_dir
    notes: list[str] = []
    runtime = config.runtime_dir
    if runtime is None:
        runtime = default_runtime_dir(project, machine)
    elif not runtime.is_absolute():
        runtime = project / runtime
    paths = Paths(runtime)

    if config.role == "web":
        upstream = Upstream.parse(config.uwsgi.uri)
    elif config.uwsgi.socket == "tcp":
        upstream = Upstream("tcp", f"{config.uwsgi.tcp_host}:{config.uwsgi.tcp_port}")
    else:
        upstream = Upstream("unix", str(paths.socket))
    if upstream.kind == "unix" and len(upstream.address) > MAX_UNIX_SOCKET_PATH:
        raise ConfigError(
            [
                WsgistackError(
                    "config.E008",
                    f"unix socket path is {len(upstream.address)} bytes, over the kernel's limit of {MAX_UNIX_SOCKET_PATH}: {upstream.address}",
                    "set runtime_dir to a shorter directory, e.g. /tmp/myapp",
                )
            ]
        )

    processes = _processes(config, machine, notes)
    listen_wanted = 4096 if config.uwsgi.listen == "auto" else int(config.uwsgi.listen)
    listen = min(listen_wanted, machine.somaxconn)
    if listen < listen_wanted:
        notes.append(
            f"uwsgi.listen capped at net.core.somaxconn = {machine.somaxconn} (asked for {listen_wanted}); "
            "raise it with sysctl -w net.core.somaxconn=N to queue larger bursts"
        )
    harakiri, nginx_timeout, router = _timeouts(config, str(loaded.origin("request_timeout")))

    per_worker = (machine.memory_limit - FIXED_OVERHEAD) // processes if machine.memory_limit else 512 * MB
    reload_on_rss = config.uwsgi.reload_on_rss or int(min(1024, max(128, per_worker // MB)))

    nginx_workers = machine.cpus if config.server.worker_processes == "auto" else int(config.server.worker_processes)

    nginx_user = uwsgi_user = socket_owner = None
    if machine.is_root:
        if config.user:
            nginx_user = uwsgi_user = config.user
            socket_owner = f"{config.user}:{config.user}"
        else:
            nginx_user = machine.nginx_user
            if nginx_user:
                socket_owner = f"root:{nginx_user}"

    app_env: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
    if app is not None and app.django_settings:
        app_env["DJANGO_SETTINGS_MODULE"] = app.django_settings
    app_env.update(config.app.env)

    return Plan(
        config=config,
        machine=machine,
        app=app,
        paths=paths,
        upstream=upstream,
        processes=processes,
        threads=config.uwsgi.threads,
        listen=listen,
        harakiri=harakiri,
        nginx_timeout=nginx_timeout,
        router_timeout=router,
        reload_on_rss_mb=reload_on_rss,
        nginx_workers=max(1, nginx_workers),
        max_body_bytes=parse_size(config.server.max_body_size),
        locations=_locations(config, app, project),
        nginx_user=nginx_user,
        uwsgi_user=uwsgi_user,
        socket_owner=socket_owner,
        app_env=app_env,
        notes=tuple(notes),
    )


def build_plan(loaded: LoadedConfig, machine: Machine, env: Mapping[str, str]) -> Plan:
    """Detect the app (unless this is the web role) and make the plan."""
    config = loaded.config
    app = None
    if config.role != "web":
        path = config.app.path if config.app.path.is_absolute() else (loaded.project_dir / config.app.path)
        app = detect_app(
            path.resolve(),
            target=config.app.target,
            django_settings=config.app.django_settings,
            python=machine.python,
            env={**env, **config.app.env},
        )
    return make_plan(loaded, machine, app)
