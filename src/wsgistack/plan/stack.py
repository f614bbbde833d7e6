"""Derived values, computed once in Python: the templates only loop and branch over a Plan.

A :class:`Plan` is the config resolved against the app and the machine: worker counts,
nested timeouts, socket paths, who owns what. ``make_plan`` is pure given its inputs; the
side effects (detecting the app, reading the machine) happen in :func:`build_plan`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsgistack import hosts, ids
from wsgistack.app.spec import AppSpec, StaticDir
from wsgistack.app.spec import StaticDir as Location  # the plan's name for one: where nginx serves files from
from wsgistack.app.interpreter import AppPython
from wsgistack.config.model import (
    LETSENCRYPT_DIRECTORY,
    LETSENCRYPT_STAGING_DIRECTORY,
    ROUTER_TIMEOUTS,
    Config,
    parse_size,
)
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import ConfigError, WsgistackError
from wsgistack.layout import NGINX_UNQUOTABLE, Paths, runtime_paths, unplain
from wsgistack.contracts import BuildRecord, Ready, RestartCache
from wsgistack.machine import HostFacts, Machine, run_as
from wsgistack.plan.stop import StopPlan, stop_plan

MB = 1024 * 1024
# Memory a worker of a typical Django app needs (measured: ~38 MB RSS, ~20 MB private),
# with headroom, and what Nginx + the uWSGI master + our manager take together: the
# budget when the app's own size is not known (the probe measures it: MemoryBudget).
WORKER_BUDGET = 64 * MB
FIXED_OVERHEAD = 96 * MB
# A worker starts at the app's size after import (the probe's RSS: 42.5 MB for the Django demo,
# whose workers were 40.6 MB after 30 requests each) and grows as it serves (caches, pages of
# the master's it writes to): counted at 1.5 times that, the ratio of WORKER_BUDGET to it.
WORKER_HEADROOM = 1.5
MIN_WORKER = 16 * MB
DEFAULT_REQUEST_TIMEOUT = 30
# Nginx waits this much longer than uWSGI's harakiri, so a hung request is killed by uWSGI
# (which logs it and respawns the worker) and Nginx answers 504 only as a last resort.
NGINX_GRACE = 3
# And the platform router must still be waiting when Nginx gives up.
ROUTER_MARGIN = 2
# Nginx retries a request whose uWSGI worker died without answering only until this long
# before the harakiri: uWSGI counts harakiri in whole seconds of a coarse clock (deadline =
# time(NULL) at the request's start + harakiri), so it kills a request more than harakiri - 1
# seconds after it began (3.82 s with harakiri = 4, measured), never sooner. Half a second
# more keeps a request the timeout killed from ever being run twice (see Plan.retry_window_ms).
RETRY_MARGIN_MS = 1500
# uWSGI's reload mercy beyond harakiri (whole seconds, a coarse clock: see RETRY_MARGIN_MS).
RELOAD_MERCY_MARGIN = 2
MAX_UNIX_SOCKET_PATH = 107
DEFAULT_LISTEN = 4096
# Methods replayed after they reached the app (a worker or a node died without answering):
# safe ones only, by nginx on the node (its second upstream entry) and by the balancer alike.
# PUT and DELETE are idempotent by the RFC, but an app's handler often is not (a counter, a
# notification, a charge), so they are treated as POST: sent once.
RETRYABLE_METHODS = ("GET", "HEAD", "OPTIONS")
# Seconds nginx waits for a worker to answer the readiness check; past it the node is busy,
# not down (nginx answers "busy"). Well inside the balancer's check timeout and the
# Kubernetes probe's (3 s).
READY_TIMEOUT_S = 1

# server.app_server = "granian": nginx keeps HTTP/1.1 connections to granian's unix socket,
# this many idle ones per nginx worker, and closes one idle for UPSTREAM_IDLE_TIMEOUT seconds
# itself: long before granian would (it closes an idle connection after 30 s, its header read
# timeout), so an idle kept connection is never closed under nginx by granian's timer.
UPSTREAM_KEEPALIVE = 32
UPSTREAM_IDLE_TIMEOUT = 2
# A granian worker that must go (a reload, memory recycling) first answers every response
# with "Connection: close" for this long: nginx keeps no connection to it, the idle ones time
# out on nginx's side, and the worker then stops with none that nginx could reuse as it
# closes (a POST sent on a connection the server is closing fails: nginx retries no POST).
GRANIAN_DRAIN = UPSTREAM_IDLE_TIMEOUT + 0.5
# granian exits when a worker it respawned dies again within 5.5 s (its crash-loop rule): the
# shim's request-timeout watchdog never kills a worker younger than this.
GRANIAN_CRASH_WINDOW = 6.0
# granian's reload starts a new worker, waits this long, then stops the old one (one worker at
# a time); granian 2.8's own default.
GRANIAN_RESPAWN_INTERVAL = 3.5

# Request headers. nginx hands uWSGI every header as a CGI variable inside one uwsgi packet,
# which must fit uWSGI's buffer-size (at most 65535: the packet's length is 16 bits). If
# nginx accepts a header block that does not fit, the client gets a 502 (uWSGI drops the
# packet) or a 500 (nginx cannot build it). So nginx's limits are derived from uWSGI's
# buffer: a header line "a:\n" (3 bytes) becomes "HTTP_A" plus two 2-byte lengths (10
# bytes), the worst expansion there is, and nginx reads at most its first 1 KB buffer plus
# ONE large buffer. Anything bigger is refused by nginx itself with a 400.
CLIENT_HEADER_BUFFER = 1024
WORST_HEADER_EXPANSION = 10 / 3
PARAMS_OVERHEAD = 1024  # our uwsgi_params: names, lengths and values not taken from the request
# uWSGI also caps the NUMBER of variables (max-vars, 64 by default: about 108 headers, and
# the 109th is a 502). nginx has no limit on the count, only on the bytes, and "a:\n" is a
# header: room for as many as fit nginx's buffers, plus our own params.
MIN_HEADER_LINE = 3
PARAMS_COUNT = 64
# Response headers from the app (Set-Cookie): as big as the largest cookies we accept twice over;
# nginx allocates this per proxied request, so it is not simply "as big as possible".
RESPONSE_HEADER_BUFFER = 32 * 1024

# uWSGI options wsgistack sets itself, from its own settings: a passthrough (uwsgi.options) may
# not change them (the socket's mode, the user, the timeouts that must nest, strict mode...).
# Read from the template, so an option it starts to render is protected at once...
def _rendered_uwsgi_options() -> frozenset[str]:
    from importlib import resources

    text = resources.files("wsgistack").joinpath("render/templates/uwsgi.ini.j2").read_text(encoding="utf-8")
    return frozenset(re.findall(r"^([a-z][a-z0-9-]*)\s*=", text, re.M))


# ...plus the other spellings of the same things and the ways around them (uWSGI aliases,
# a second socket or app, a looser umask).
UWSGI_OPTION_ALIASES = frozenset(
    {
        "module", "wsgi-file", "wsgi", "file", "callable", "mount", "lazy", "uwsgi-socket", "http-socket", "http",
        "https", "shared-socket", "workers", "stats-server", "stats-http", "umask",
    }
)
MANAGED_UWSGI_OPTIONS = _rendered_uwsgi_options() | UWSGI_OPTION_ALIASES


@dataclass(frozen=True)
class Upstream:
    kind: str  # "unix" | "tcp"
    address: str  # socket path, or host:port

    @property
    def nginx(self) -> str:
        return f"unix:{self.address}" if self.kind == "unix" else self.address

    @property
    def ready(self) -> Ready:
        """How a readiness probe reaches it (runner/manager.py:is_ready)."""
        if self.kind == "unix":
            return Ready(unix=self.address)
        host, port = hosts.split(self.address)
        return Ready(tcp_host=host, tcp_port=port)

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
class Background:
    """One copy of a background process ([processes.NAME]), as the process manager runs it."""

    name: str  # NAME, or NAME.1, NAME.2... when count > 1
    section: str  # NAME: the [processes.NAME] table it comes from
    argv: tuple[str, ...]
    restart: str  # always | on-failure | never
    stop_signal: str
    stop_timeout: int












@dataclass(frozen=True)
class TlsPlan:
    """HTTPS as nginx and the renewer see it (tls.mode != off)."""

    mode: str  # self-signed | files | acme
    port: int
    redirect_port: int  # the port the HTTP redirect names (tls.redirect_port or tls.port)
    cert: Path  # chain nginx sends, leaf first
    key: Path
    names: tuple[str, ...]  # names the certificate must cover (acme: DNS names only)
    hsts_max_age: int | None  # None = no Strict-Transport-Security header
    data_dir: Path
    # acme: whether the certificate exists yet (build_plan looks); until it does nginx
    # serves HTTP only, with the challenge path, and the renewer obtains it.
    ready: bool = True
    directory: str = ""
    email: str = ""
    ca_bundle: Path | None = None
    challenge_port: int = 80

    @property
    def acme_dir(self) -> Path:
        """certbot's --config-dir: account key, certificates and renewal settings."""
        return self.data_dir / "acme"

    @property
    def redirect_suffix(self) -> str:
        return "" if self.redirect_port == 443 else f":{self.redirect_port}"




def tls_names(config: Config) -> tuple[str, ...]:
    """The names a certificate must cover: every server name but "*" (acme: DNS names only,
    no wildcards, which HTTP-01 cannot validate)."""
    names = tuple(n for n in config.server.server_names if n != "*")
    if config.tls.mode == "acme":
        names = tuple(n for n in names if not hosts.is_ip(n) and not n.startswith("*"))
    return names or ("localhost",)


def _tls_plan(config: Config, project: Path, host: HostFacts) -> TlsPlan | None:
    tls = config.tls
    if tls.mode == "off" or config.role == "app":
        return None
    data_dir = tls.data_dir or host.data_dir
    if not data_dir.is_absolute():
        data_dir = project / data_dir
    names = tls_names(config)
    hsts = tls.hsts if tls.hsts != "auto" else tls.mode != "self-signed"
    common = dict(mode=tls.mode, port=tls.port, redirect_port=tls.redirect_port or tls.port, names=names,
                  hsts_max_age=tls.hsts_max_age if hsts else None, data_dir=data_dir)
    if tls.mode == "files":
        assert tls.cert is not None and tls.key is not None  # config.E012
        cert, key = (p if p.is_absolute() else project / p for p in (tls.cert, tls.key))
        return TlsPlan(cert=cert, key=key, **common)  # type: ignore[arg-type]
    if tls.mode == "self-signed":
        # One leaf per set of names, so two projects with different names never fight over it.
        leaf = data_dir / "self-signed" / hashlib.sha1(" ".join(sorted(names)).encode()).hexdigest()[:10]
        return TlsPlan(cert=leaf / "cert.pem", key=leaf / "key.pem", **common)  # type: ignore[arg-type]
    directory = tls.directory
    if tls.staging and directory == LETSENCRYPT_DIRECTORY:
        directory = LETSENCRYPT_STAGING_DIRECTORY
    live = data_dir / "acme" / "live" / names[0]
    ca_bundle = tls.ca_bundle if tls.ca_bundle is None or tls.ca_bundle.is_absolute() else project / tls.ca_bundle
    return TlsPlan(cert=live / "fullchain.pem", key=live / "privkey.pem", ready=False, directory=directory,
                   email=tls.email, ca_bundle=ca_bundle, challenge_port=tls.challenge_port, **common)  # type: ignore[arg-type]


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
    uwsgi_user: str | None  # uid uWSGI drops to (only when started as root)
    socket_owner: str | None  # chown-socket value
    run_group: str | None = None  # primary group of that user: uWSGI's gid, nginx's `user` group
    uwsgi_buffer_size: int = 65535  # uWSGI buffer-size: the largest request header packet
    header_buffer_kb: int = 17  # nginx large_client_header_buffers: the longest header line
    uwsgi_max_vars: int = 6208  # uWSGI max-vars: as many headers as fit nginx's buffers
    response_header_buffer_kb: int = RESPONSE_HEADER_BUFFER // 1024  # nginx uwsgi_buffer_size
    uwsgi_options: tuple[tuple[str, str], ...] = ()  # uwsgi.options, one (key, value) per ini line
    app_env: Mapping[str, str] = field(default_factory=dict)
    background: tuple[Background, ...] = ()  # the background processes this role runs
    notes: tuple[str, ...] = ()  # how "auto" values were resolved, and anything capped
    python: AppPython | None = None  # the app's interpreter and its uWSGI (None for role web)
    tls: TlsPlan | None = None  # HTTPS (tls.mode != off, nginx roles only)
    migrate: bool = False  # Django's migrate runs at start (app.migrate, "auto" resolved by migrates_at_start)
    project: Path = Path(".")  # the project dir (where wsgistack.toml and the build record are)
    build: BuildRecord | None = None  # the image's build record (a start inside wsgistack's image)
    restart_cache: Path | None = None  # in the data volume: what the last start of this image learnt
    data_dir: Path = Path("/var/lib/wsgistack")  # tls.data_dir's default, as found on this host

    @property
    def trusted_proxies(self) -> tuple[str, ...]:
        """Peers whose X-Forwarded-* nginx believes. On Heroku the router is the only peer a
        dyno ever sees (from addresses nobody publishes), and it sets X-Forwarded-Proto/-For
        itself, so with no explicit setting every peer is the router; elsewhere, no one."""
        if self.config.server.trusted_proxies or self.config.platform != "heroku":
            return self.config.server.trusted_proxies
        return ("0.0.0.0/0", "::/0")

    @property
    def trusted_geo(self) -> tuple[str, ...]:
        """trusted_proxies as nginx's geo block takes them: there 0.0.0.0/0 and ::/0 are the
        default entry, and naming them again is a "duplicate network" warning, so each of
        those is given as its two halves."""
        halves = {"0.0.0.0/0": ("0.0.0.0/1", "128.0.0.0/1"), "::/0": ("::/1", "8000::/1")}
        return tuple(n for cidr in self.trusted_proxies for n in halves.get(cidr, (cidr,)))

    @property
    def termdrain(self) -> str | None:
        """The term-drain library to preload into nginx and uWSGI: on Heroku, which sends
        SIGTERM to every process of a dyno at once, when the image has it (image/termdrain.c)."""
        return self.machine.termdrain if self.config.platform == "heroku" else None

    @property
    def retryable_methods(self) -> tuple[str, ...]:
        return RETRYABLE_METHODS

    @property
    def ready_timeout(self) -> int:
        return READY_TIMEOUT_S

    @property
    def retry_window_ms(self) -> int:
        """nginx's uwsgi_next_upstream_timeout: a worker killed mid-request (SIGKILL, the OOM
        killer, a crash) within this many milliseconds of the request's start costs no
        idempotent request; one killed later, such as by harakiri, is not retried."""
        return max(250, self.harakiri * 1000 - RETRY_MARGIN_MS)

    @property
    def reload_mercy(self) -> int:
        """Seconds uWSGI lets a worker it reloads (a graceful reload, a recycled worker) finish
        its request before it kills it: past harakiri, so a request within request_timeout is
        never cut by a reload, and one past it is ended by harakiri as it would be anyway."""
        return self.harakiri + RELOAD_MERCY_MARGIN

    @property
    def min_worker_lifetime(self) -> int:
        """Seconds a uWSGI worker lives before it may be recycled (uWSGI's min-worker-lifetime,
        10 s unless uwsgi.options sets it): request-count recycling in uWSGI and memory
        recycling in the process manager both wait for it, so a leak cannot cause a reload storm."""
        value = dict(self.uwsgi_options).get("min-worker-lifetime")
        return int(value) if value and value.isdigit() else 10

    @property
    def max_requests_delta(self) -> int:
        """Spread request-count recycling over the workers (see uwsgi.max_requests)."""
        return max(1, self.config.uwsgi.max_requests // (2 * self.processes))

    @property
    def role(self) -> str:
        return self.config.role

    @property
    def app_server(self) -> str:
        """The app server behind nginx: "uwsgi" or "granian" (server.app_server)."""
        return self.config.server.app_server

    @property
    def granian(self) -> bool:
        return self.config.server.app_server == "granian"

    @property
    def runs_nginx(self) -> bool:
        return self.config.role in ("all", "web")

    @property
    def runs_uwsgi(self) -> bool:
        """This role runs the app server (uWSGI, or granian with server.app_server)."""
        return self.config.role in ("all", "app")

    @property
    def https(self) -> bool:
        """nginx serves HTTPS now (acme: once the first certificate is there)."""
        return self.tls is not None and self.tls.ready

    @property
    def ops_udp(self) -> str:
        """Where nginx sends the ops listener one line per request: UDP on loopback, on the
        listener's own port number (a unix datagram socket queues only 10 lines: lost under
        load; a UDP socket queues as many as its buffer holds)."""
        return f"127.0.0.1:{self.config.ops.port}"

    @property
    def runs_ops(self) -> bool:
        """The ops listener (/metrics, /status): on with ops.port, beside nginx and/or uWSGI."""
        return self.config.ops.port > 0 and self.config.role != "worker"

    @property
    def ops_user(self) -> str | None:
        """Who the ops listener runs as: the user nginx's workers (which send it a line per
        request) and uWSGI (whose stats socket it reads) run as; None when not root."""
        return self.uwsgi_user or self.nginx_user

    @property
    def run_as(self) -> dict[str, Any]:
        """subprocess keywords that run a command as the app's user (machine.RunAs): what
        prestart, the write check and Django's checks use. Empty when that is ourselves."""
        if not self.uwsgi_user:
            return {}
        return {"user": self.uwsgi_user, "group": self.run_group, "extra_groups": []}

    @property
    def public_env(self) -> dict[str, str]:
        """The app's environment without app.env, whose values (often credentials) no file
        holds: what the process table may carry."""
        return {k: v for k, v in self.app_env.items() if k not in self.config.app.env}

    @property
    def probe_host(self) -> str:
        """The Host header probes send (HEALTHCHECK, balancer checks, Kubernetes probes)."""
        return hosts.probe_name(self.config.server.server_names)

    @property
    def static_roots(self) -> tuple[str, ...]:
        """The directories nginx serves collected static files from (Django's STATIC_ROOT)."""
        return tuple(str(loc.dir) for loc in self.locations if loc.role == "static")

    @property
    def memory(self) -> MemoryBudget:
        """What the stack's processes take, by the app's measured size (see MemoryBudget)."""
        return memory_budget(self.config, self.app, len(self.background))

    @property
    def stop(self) -> StopPlan:
        """Each process's stop budget and the longest the stop can take (plan/stop.py)."""
        return stop_plan(self.config)

    @property
    def runs_background(self) -> bool:
        return bool(self.background)

    @property
    def url(self) -> str:
        host = hosts.url_host(self.config.server.host)
        if self.tls is not None and self.tls.ready:
            # A name the certificate covers, so the printed URL opens without a warning.
            name = next((n for n in self.tls.names if not n.startswith("*")), host)
            return f"https://{name}:{self.tls.port}" if self.tls.port != 443 else f"https://{name}"
        return f"http://{host}:{self.config.server.port}"






def host_pattern(names: tuple[str, ...]) -> str:
    """server.server_names as one regex for a Host header (port and a trailing dot allowed,
    matched case-insensitively), with nginx's meaning of each form: "*.example.com" (any
    subdomain), "www.example.*", ".example.com" (it and any subdomain); "" when "*" accepts any."""
    if "*" in names:
        return ""
    alternatives = []
    for name in names:
        if name.startswith("."):
            alternatives.append(r"(?:[^:/\[]+\.)?" + re.escape(name[1:]))
        elif name.startswith("*."):
            alternatives.append(r"[^:/\[]+\." + re.escape(name[2:]))
        elif name.endswith(".*"):
            alternatives.append(re.escape(name[:-2]) + r"\.[^:/\[]+")
        else:
            alternatives.append(re.escape(name))
    return r"^(?:" + "|".join(alternatives) + r")\.?(?::[0-9]{1,5})?$"


@dataclass(frozen=True)
class MemoryBudget:
    """What a stack's processes take, as the plan counts it: each uWSGI worker at the app's
    measured size after import (AppSpec.rss) with headroom, nginx + the manager + uWSGI's
    master (which holds the app when it is loaded before the fork), and each background
    process at the app's size (most import it: manage.py commands, Celery, RQ). Without a
    measurement, the typical Django app's numbers (WORKER_BUDGET, FIXED_OVERHEAD)."""

    app_rss: int | None  # bytes, as the probe measured it
    per_worker: int
    fixed: int
    per_background: int
    background_count: int

    @property
    def background(self) -> int:
        return self.per_background * self.background_count

    def need(self, workers: int) -> int:
        return self.fixed + self.background + workers * self.per_worker

    def fits(self, limit: int) -> int:
        """How many workers the limit holds beside everything else (may be 0 or less)."""
        return (limit - self.fixed - self.background) // self.per_worker

    def describe(self) -> str:
        measured = (f"the app is {self.app_rss // MB} MB after import, a worker counted at {self.per_worker // MB} MB"
                    if self.app_rss else f"a worker counted at {self.per_worker // MB} MB (the app's size not measured)")
        parts = [measured, f"{self.fixed // MB} MB for nginx, uWSGI's master and the manager"]
        if self.background_count:
            plural = "es" if self.background_count > 1 else ""
            parts.append(f"{self.background // MB} MB for {self.background_count} background process{plural}")
        return ", ".join(parts)


def memory_budget(config: Config, app: AppSpec | None, background: int) -> MemoryBudget:
    rss = app.rss if app is not None else None
    if not rss:
        return MemoryBudget(None, WORKER_BUDGET, FIXED_OVERHEAD, WORKER_BUDGET, background)
    master = 0 if config.app.lazy_apps else rss  # lazy-apps: the master never imports the app
    return MemoryBudget(rss, max(MIN_WORKER, int(rss * WORKER_HEADROOM)), FIXED_OVERHEAD + master, rss, background)


def memory_may_bind(config: Config, machine: Machine) -> bool:
    """Whether the app's measured size could change the worker count: processes = auto and a
    memory limit that holds fewer than 4x the CPU count of typical workers (a 512 MiB
    container; not a host with gigabytes to spare). Measuring a Django app whole costs a
    second import of it at start (0.45 s for the demo), so the start measures only then."""
    if config.uwsgi.processes != "auto" or not machine.memory_limit:
        return False
    return (machine.memory_limit - FIXED_OVERHEAD) // WORKER_BUDGET < 4 * max(2, machine.cpus)


def _processes(config: Config, machine: Machine, budget: MemoryBudget, notes: list[str]) -> int:
    if config.uwsgi.processes != "auto":
        return int(config.uwsgi.processes)
    by_cpu = max(2, machine.cpus)
    count = by_cpu
    if machine.memory_limit:
        by_memory = budget.fits(machine.memory_limit)
        count = max(1, min(by_cpu, by_memory))
        notes.append(
            f"uwsgi.processes auto = {count} (cpus {machine.cpus} -> {by_cpu}; "
            f"memory {machine.memory_limit // MB} MB holds {max(0, by_memory)}: {budget.describe()})"
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
                    ids.CONFIG_E006,
                    f"request_timeout = {harakiri}s (from {origin}) does not fit inside the {config.platform} "
                    f"router's {router}s limit: Nginx must wait {NGINX_GRACE}s longer than uWSGI, and both must end first",
                    f"set request_timeout to at most {router - NGINX_GRACE - ROUTER_MARGIN}, or leave it at auto",
                )
            ]
        )
    return harakiri, nginx, router


def _check_granian(loaded: LoadedConfig) -> None:
    """What granian cannot do as uWSGI does it is refused, never silently dropped."""
    config = loaded.config
    if config.server.app_server != "granian":
        return
    origin = loaded.origin("server.app_server")
    problems = []
    uri = config.uwsgi.uri.strip()
    tcp_uri = bool(uri) and Upstream.parse(uri).kind == "tcp" and config.role in ("app", "web")
    if config.uwsgi.socket == "tcp" or tcp_uri:
        setting = "uwsgi.uri" if tcp_uri else "uwsgi.socket"
        problems.append(WsgistackError(
            ids.CONFIG_E047,
            f"server.app_server = \"granian\" (from {origin}) with {setting} = "
            f"{(uri if tcp_uri else 'tcp')!r} (from {loaded.origin(setting)}): on TCP each granian worker owns its "
            "socket, so the connections queued on a worker that is respawned (a reload, memory recycling, a crash) "
            "are reset; on a unix socket granian's main process holds them",
            "leave uwsgi.socket = unix (the default); split containers share the unix socket on a volume "
            "(uwsgi.uri = unix:/run/wsgistack/uwsgi.sock)",
        ))
    unsupported = [(name, value) for name, value in (
        ("uwsgi.options", config.uwsgi.options),
        ("uwsgi.max_requests", config.uwsgi.max_requests),
        ("uwsgi.request_log", config.uwsgi.request_log),
    ) if value]
    for name, _value in unsupported:
        why = {
            "uwsgi.options": "they are uWSGI options, and granian has no such passthrough",
            "uwsgi.max_requests": "granian cannot recycle a worker after a number of requests",
            "uwsgi.request_log": "granian's access log does not escape what it writes; nginx logs every request",
        }[name]
        problems.append(WsgistackError(
            ids.CONFIG_E048,
            f"server.app_server = \"granian\" (from {origin}) with {name} (from {loaded.origin(name)}): {why}",
            "remove it (uwsgi.reload_on_rss recycles workers by memory with either server), or use app_server = \"uwsgi\"",
        ))
    if config.platform == "heroku":
        problems.append(WsgistackError(
            ids.CONFIG_E049,
            f"server.app_server = \"granian\" (from {origin}) with platform = heroku (from {loaded.origin('platform')}): "
            "Heroku sends SIGTERM to every process of a dyno at once, and wsgistack's term-drain library makes only "
            "nginx and uWSGI finish their requests then",
            "use app_server = \"uwsgi\" on Heroku",
        ))
    if problems:
        raise ConfigError(problems)


def _check_tcp_host(loaded: LoadedConfig, notes: list[str]) -> None:
    """uWSGI's socket speaks a protocol with no authentication, in which the peer sets
    REMOTE_ADDR, the scheme and the Host: only nginx may reach it. On loopback that holds;
    on another address only a separate app container (role = app) has a reason to listen."""
    config = loaded.config
    if hosts.is_loopback(config.uwsgi.tcp_host):
        return
    if config.role == "app":
        notes.append(
            f"warning: uWSGI listens on {config.uwsgi.tcp_host}:{config.uwsgi.tcp_port}; anything that can reach it "
            "bypasses nginx: allow only the web container there (network policy, firewall)"
        )
        return
    raise ConfigError(
        [
            WsgistackError(
                ids.CONFIG_E011,
                f"uwsgi.tcp_host = {config.uwsgi.tcp_host!r} (from {loaded.origin('uwsgi.tcp_host')}) is not a loopback "
                f"address: anyone who can reach it would bypass nginx (its Host check, forwarded headers, limits)",
                "leave it at 127.0.0.1 (nginx runs beside uWSGI with role = all); only role = app, "
                "for uWSGI in its own container, may listen on another address",
            )
        ]
    )


def _locations(config: Config, app: AppSpec | None, project: Path, host: HostFacts) -> tuple[Location, ...]:
    found: dict[str, StaticDir] = {}
    for item in app.static if app else ():
        found[item.url] = item
    for mapping in config.server.static:  # explicit mappings win over detected ones
        directory = mapping.dir if mapping.dir.is_absolute() else (project / mapping.dir)
        real = host.real_paths.get(directory) or Path(os.path.normpath(directory))
        found[mapping.url] = StaticDir(mapping.url, real, "extra")
    hashed = app is not None and app.kind == "django"
    # The image's build record (root's) names the static dir whose package copies it linked:
    # detected (role all) or named by server.static (the web role of a split image serves the
    # shared volume mounted there).
    collected = host.build.static_collected if host.build is not None else None
    linked = Path(collected["dir"]) if collected and collected.get("links") == "packages" else None
    # Longest prefix first, so /static/admin/ would win over /static/ in a reader's eye too.
    return tuple(
        dataclasses.replace(s, immutable=hashed and s.role == "static",
                            build_links=linked is not None and s.dir == linked)
        for s in sorted(found.values(), key=lambda s: (-len(s.url), s.url))
    )


def is_sqlite(engine: str) -> bool:
    """A Django database ENGINE that is SQLite: django.db.backends.sqlite3, SpatiaLite
    (django.contrib.gis.db.backends.spatialite) and wrappers of them (e.g. django_prometheus's)."""
    return "sqlite" in engine.lower() or "spatialite" in engine.lower()


def migrates_at_start(config: Config, app: AppSpec | None, notes: list[str]) -> bool:
    """Whether Django's migrate runs before start: app.migrate true or false as set; "auto"
    when every database the app uses is SQLite. A SQLite file serves this node only, so
    migrating it at start is safe and is what a fresh data volume needs (without it the first
    page is a 500, "no such table"); a shared database (MySQL, PostgreSQL, ...) is migrated
    once per release instead (one node with app.migrate = true, the Kubernetes migration Job,
    or --migrate), since N nodes migrating at once race each other. A worker container never
    migrates: that is the app container's step."""
    if app is None or app.kind != "django" or config.role == "worker":
        return False
    setting = config.app.migrate
    if setting != "auto":
        return bool(setting)
    if not app.databases:
        notes.append("app.migrate auto = false (settings.DATABASES is empty: nothing to migrate)")
        return False
    shared = [f"{alias} ({engine})" for alias, engine in app.databases if not is_sqlite(engine)]
    if shared:
        notes.append(f"app.migrate auto = false (database {', '.join(shared)} is not SQLite: migrate it once per release, "
                     "e.g. --migrate on one node or the Kubernetes migration Job)")
        return False
    notes.append(f"app.migrate auto = true (every database is SQLite: {', '.join(a for a, _ in app.databases)}; "
                 "a file database serves this node only)")
    return True


def background_processes(config: Config) -> tuple[Background, ...]:
    """The copies of each [processes.NAME] this role runs: all of them with role all (unless
    run_processes is off), the one named by `process` with role worker (one container per
    process), none for app and web."""
    import shlex

    if config.role == "all":
        names = list(config.processes) if config.run_processes else []
    elif config.role == "worker":
        names = [config.process]
    else:
        return ()
    out = []
    for name in names:
        spec = config.processes[name]
        argv = tuple(shlex.split(spec.command))
        stop_timeout = spec.stop_timeout or config.stop_timeout
        for i in range(1, spec.count + 1):
            label = name if spec.count == 1 else f"{name}.{i}"
            out.append(Background(label, name, argv, spec.restart, spec.stop_signal, stop_timeout))
    return tuple(out)


def header_buffer_kb(uwsgi_buffer_size: int) -> int:
    """The longest request header line nginx may accept so that no header block it accepts
    can overflow uWSGI's buffer (see CLIENT_HEADER_BUFFER above)."""
    raw_budget = (uwsgi_buffer_size - PARAMS_OVERHEAD) / WORST_HEADER_EXPANSION - CLIENT_HEADER_BUFFER
    return int(raw_budget // 1024)


def max_vars(header_kb: int) -> int:
    """uWSGI's max-vars for the most header lines nginx can accept with that buffer."""
    return (CLIENT_HEADER_BUFFER + header_kb * 1024) // MIN_HEADER_LINE + PARAMS_COUNT




def _uwsgi_options(loaded: LoadedConfig) -> tuple[tuple[str, str], ...]:
    lines: list[tuple[str, str]] = []
    problems = []
    origin = loaded.origin("uwsgi.options")
    for key, value in loaded.config.uwsgi.options.items():
        if key in MANAGED_UWSGI_OPTIONS:
            problems.append(
                WsgistackError(
                    ids.CONFIG_E010,
                    f"uwsgi.options (from {origin}): {key!r} is set by wsgistack itself",
                    "use wsgistack's own setting for it (see `wsgistack config`); the passthrough is for options wsgistack does not manage",
                )
            )
            continue
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            lines.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    if problems:
        raise ConfigError(problems)
    return tuple(lines)


def check_runtime_dir(runtime: Path, loaded: LoadedConfig) -> None:
    """config.E050: the runtime dir is named unquoted in uwsgi.ini (where "%" and "$(" are
    uWSGI's own expansions) and haproxy.cfg (where a space ends a word): only plain
    characters. (nginx.conf quotes what it needs.)"""
    odd = unplain(runtime)
    if odd:
        raise ConfigError([WsgistackError(
            ids.CONFIG_E050,
            f"the runtime dir {str(runtime)!r} (runtime_dir from {loaded.origin('runtime_dir')}) holds "
            f"{', '.join(repr(c) for c in odd)}: uwsgi.ini and haproxy.cfg name it unquoted",
            "give runtime_dir a path of letters, digits and . _ - + = , @ ~ / only, e.g. /run/myapp "
            "(or leave it unset: the default, under /tmp, always is)",
        )])


def _check_served_dirs(locations: tuple[Location, ...], tls: TlsPlan | None) -> None:
    """config.E050: nginx.conf quotes a static dir or a certificate path with a space or ";",
    but no quoting carries "$" (a variable to nginx), a quote, a backslash or a control character."""
    named = [(f"{loc.role} files for {loc.url}", loc.dir) for loc in locations]
    if tls is not None:
        named += [("tls certificate", tls.cert), ("tls key", tls.key)]
    bad = [(what, path) for what, path in named if NGINX_UNQUOTABLE.search(str(path))]
    if bad:
        raise ConfigError([WsgistackError(
            ids.CONFIG_E050, f"{what} {str(path)!r}: nginx.conf cannot name a path with $, a quote, a backslash or a "
            "control character", "rename the directory (or point the setting at one without them)") for what, path in bad])


def make_plan(loaded: LoadedConfig, machine: Machine, app: AppSpec | None, python: AppPython | None = None,
              host: HostFacts | None = None) -> Plan:
    """Pure: everything the renderer needs, derived from config, machine, app, the app's
    interpreter and the host's facts (:func:`host_facts`; default: an unknown host)."""
    host = host or HostFacts()
    config = loaded.config
    project = loaded.project_dir
    notes: list[str] = []
    paths = runtime_paths(loaded, machine.euid)
    _check_granian(loaded)
    check_runtime_dir(paths.runtime, loaded)

    if config.role == "web" or (config.role == "app" and config.uwsgi.uri):
        # Split containers: the app binds where the web role connects (UWSGI_URI), e.g. a
        # unix socket on a volume both mount, so one setting describes the link for both.
        upstream = Upstream.parse(config.uwsgi.uri)
    elif config.uwsgi.socket == "tcp":
        _check_tcp_host(loaded, notes)
        upstream = Upstream("tcp", f"{config.uwsgi.tcp_host}:{config.uwsgi.tcp_port}")
    elif config.server.app_server == "granian":
        as_root = machine.is_root and config.user == "root"
        upstream = Upstream("unix", str(paths.granian_root_socket if as_root else paths.granian_socket))
    else:
        upstream = Upstream("unix", str(paths.socket))
    if upstream.kind == "unix" and len(upstream.address) > MAX_UNIX_SOCKET_PATH:
        raise ConfigError(
            [
                WsgistackError(
                    ids.CONFIG_E008,
                    f"unix socket path is {len(upstream.address)} bytes, over the kernel's limit of {MAX_UNIX_SOCKET_PATH}: {upstream.address}",
                    "set runtime_dir to a shorter directory, e.g. /tmp/myapp",
                )
            ]
        )

    background = background_processes(config)
    budget = memory_budget(config, app, len(background))
    processes = _processes(config, machine, budget, notes)
    if config.uwsgi.threads == "auto" and config.server.app_server == "granian":
        notes.append(f"uwsgi.threads auto = {config.worker_threads} (granian: a worker takes requests while it is busy, "
                     "and these answer beside a slow one; docs/granian.md)")
    # uWSGI refuses to start with a listen queue above net.core.somaxconn, and the kernel
    # would silently cap nginx's backlog there too: cap it, and say so.
    listen_wanted = DEFAULT_LISTEN if config.uwsgi.listen == "auto" else int(config.uwsgi.listen)
    listen = min(listen_wanted, machine.somaxconn)
    if listen < listen_wanted:
        notes.append(
            f"warning: uwsgi.listen capped at net.core.somaxconn = {machine.somaxconn} (asked for {listen_wanted}); "
            "bursts beyond it get 502s: raise it with sysctl -w net.core.somaxconn=N"
        )
    harakiri, nginx_timeout, router = _timeouts(config, str(loaded.origin("request_timeout")))

    # Recycle a worker before the workers together outgrow what the limit leaves them.
    per_worker = (machine.memory_limit - budget.fixed - budget.background) // processes if machine.memory_limit else 512 * MB
    reload_on_rss = config.uwsgi.reload_on_rss or int(min(1024, max(128, per_worker // MB)))

    nginx_workers = machine.cpus if config.server.worker_processes == "auto" else int(config.server.worker_processes)

    # Started as root, nothing runs as root but the two masters' first moments: uWSGI drops
    # to `user` or, by default, to the user nginx's workers run as (www-data on Debian),
    # which is also the user prestart steps run as, so the files they create (SQLite, media,
    # collected static) belong to whoever serves them. The socket is that user's, mode 660.
    # user = "root" is the one, explicit, way to keep uWSGI as root (rootless containers,
    # where root is an unprivileged user of the host); nginx's workers never are.
    who = run_as(config, machine, host)
    if who.root:
        server = "granian" if config.server.app_server == "granian" else "uWSGI"
        notes.append(f'warning: {server} runs as root because user = "root" (from '
                     f'{loaded.origin("user")}): the app can do anything root can')

    if config.platform == "heroku" and not machine.termdrain:
        notes.append(
            "warning: platform heroku without wsgistack's term-drain library: Heroku sends SIGTERM to every "
            "process at once, and nginx and uWSGI's workers would cut in-flight requests on a dyno restart; "
            "build the image from the Dockerfile `wsgistack heroku` writes (it builds the library)"
        )

    app_env: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
    if app is not None and app.django_settings:
        app_env["DJANGO_SETTINGS_MODULE"] = app.django_settings
    app_env.update(config.app.env)
    migrate = migrates_at_start(config, app, notes)  # before Plan(): its note goes in notes
    locations = _locations(config, app, project, host)
    tls = _tls_plan(config, project, host)
    _check_served_dirs(locations, tls)

    return Plan(
        config=config,
        machine=machine,
        app=app,
        paths=paths,
        upstream=upstream,
        processes=processes,
        threads=config.worker_threads,
        listen=listen,
        harakiri=harakiri,
        nginx_timeout=nginx_timeout,
        router_timeout=router,
        reload_on_rss_mb=reload_on_rss,
        nginx_workers=max(1, nginx_workers),
        max_body_bytes=parse_size(config.server.max_body_size),
        locations=locations,
        nginx_user=who.nginx_user,
        uwsgi_user=who.user,
        socket_owner=who.socket_owner,
        run_group=who.group,
        project=project,
        build=host.build,
        data_dir=host.data_dir,
        restart_cache=host.data_volume / ".wsgistack" / RestartCache.FILE if host.data_volume else None,
        uwsgi_buffer_size=config.uwsgi.buffer_size,
        header_buffer_kb=header_buffer_kb(config.uwsgi.buffer_size),
        uwsgi_max_vars=max_vars(header_buffer_kb(config.uwsgi.buffer_size)),
        uwsgi_options=_uwsgi_options(loaded),
        app_env=app_env,
        background=background,
        notes=tuple(notes),
        python=python,
        tls=tls,
        migrate=migrate,
    )






