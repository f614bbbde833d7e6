"""One definition per benchmarked stack.

A stack builder takes a :class:`StackContext` (its private work dir, ports,
the app to serve), writes its config files into the work dir and returns a
:class:`StackPlan`: the argv of each process to start and the URL to load.
Builders start nothing; :mod:`.procs` does, so builders are unit-testable.

Every server loads :mod:`wsgistack_bench.benchapp` (the target app plus a
``/slow`` endpoint and whitenoise on ``/wn/``), so the only variable is the
server and its configuration.

The reference configurations (seed, tiangolo-equivalent) reproduce what those
setups run, including their defaults, not what they could be tuned to.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .benchapp import WHITENOISE_PREFIX


class StackUnavailable(RuntimeError):
    """The stack cannot run here (missing binary, core API not there yet)."""


@dataclass(frozen=True)
class AppTarget:
    name: str  # "hello" | "django"
    project_dir: Path
    wsgi: str  # module:callable, importable from project_dir
    page: str  # the path that is load-tested
    env: Mapping[str, str] = field(default_factory=dict)
    # More pages, as (scenario label suffix, path): Django's /hello shows the framework's
    # per-request cost without the DB page's query and template work.
    extra_pages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StackContext:
    workdir: Path
    app: AppTarget
    port: int  # the HTTP port clients connect to
    aux_port: int  # for a TCP upstream, when the stack needs one
    static_dir: Path
    bin_dir: Path  # where uwsgi, gunicorn, granian live (the venv's bin)
    src_dir: Path  # on PYTHONPATH so servers can import wsgistack_bench.benchapp
    slow_ms: int = 20
    server_cpus: int = 1  # CPUs the servers get: sizes worker counts like a user would


@dataclass(frozen=True)
class Process:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path


@dataclass(frozen=True)
class StackPlan:
    name: str
    base_url: str
    processes: tuple[Process, ...]
    # uWSGI's plain http-socket closes every connection; wrk needs to be told or
    # it counts a read error per response.
    client_headers: tuple[str, ...] = ()
    app_alone: bool = False  # no Nginx in front: counts for the app-bound limit
    no_app: bool = False  # the ceiling: Nginx answers by itself
    # The stack's configuration as the results record it (knobs after defaults are resolved).
    config: Mapping[str, object] = field(default_factory=dict)


# Variables the servers read as configuration: granian takes every option from GRANIAN_*,
# uWSGI from UWSGI_*, gunicorn from GUNICORN_CMD_ARGS. A stack runs what its argv says, so
# these are dropped from the inherited environment (a plan may still set them itself).
SERVER_CONFIG_ENV = ("GRANIAN_", "UWSGI_", "GUNICORN_CMD_ARGS")


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(SERVER_CONFIG_ENV)}


StackBuilder = Callable[[StackContext], StackPlan]

# --- knobs -----------------------------------------------------------------

AccessLog = Literal["off", "on", "buffered"]


@dataclass(frozen=True)
class NginxKnobs:
    worker_processes: str = "1"
    worker_connections: int = 4096
    access_log: AccessLog = "off"
    keepalive_timeout: int = 65  # to clients; 0 disables keep-alive
    backlog: int = 4096  # listen ... backlog=; nginx's Linux default is 511
    sendfile: bool = True
    tcp_nopush: bool = True
    gzip: bool = True
    open_file_cache: bool = True
    uwsgi_buffering: bool = True
    client_max_body_size: str = "10m"
    debian_log_format: bool = False  # "combined" vs tiangolo's "main": same cost, kept for fidelity


@dataclass(frozen=True)
class UwsgiKnobs:
    processes: int = 2
    threads: int = 1
    socket: Literal["unix", "tcp"] = "unix"
    listen: int = 1024
    buffer_size: int = 32768
    logging: bool = False  # request log; errors (4xx/5xx) are logged either way
    thunder_lock: bool = True
    single_interpreter: bool = True
    enable_threads: bool = True
    cheaper: int = 0  # 0 = fixed pool
    max_requests: int = 0  # recycle a worker after N requests (0 = never)
    harakiri: int = 0  # kill a request after N seconds (0 = off)
    memory_report: bool = False
    stats: bool = False  # stats server on a unix socket in the work dir


@dataclass(frozen=True)
class Candidate:
    """A parameterised Nginx + uWSGI config: the defaults under test."""

    nginx: NginxKnobs = NginxKnobs()
    uwsgi: UwsgiKnobs = UwsgiKnobs()

    def with_assignments(self, assignments: Mapping[str, str]) -> Candidate:
        """Return a copy with ``knob=value`` overrides; knob names are unique across both."""
        nginx_changes: dict[str, object] = {}
        uwsgi_changes: dict[str, object] = {}
        for key, raw in assignments.items():
            name = key.replace("-", "_").removeprefix("nginx.").removeprefix("uwsgi.")
            if name in _fields(NginxKnobs) and not key.startswith("uwsgi."):
                nginx_changes[name] = _coerce(NginxKnobs, name, raw)
            elif name in _fields(UwsgiKnobs):
                uwsgi_changes[name] = _coerce(UwsgiKnobs, name, raw)
            else:
                raise ValueError(f"unknown candidate knob {key!r}; known: {sorted(knob_names())}")
        return Candidate(
            nginx=dataclasses.replace(self.nginx, **nginx_changes),  # type: ignore[arg-type]
            uwsgi=dataclasses.replace(self.uwsgi, **uwsgi_changes),  # type: ignore[arg-type]
        )


GranianRuntime = Literal["mt", "st"]


@dataclass(frozen=True)
class GranianKnobs:
    """granian's configuration for a stack, every flag passed explicitly.

    The defaults are granian 2.8's own for ``--interface wsgi`` (what a user gets who
    passes no tuning flags), written out so that a granian release changing a default
    cannot change the reference silently: 0 means "granian's formula, resolved here"
    (``workers``: one per server CPU; ``backpressure``: backlog ÷ workers;
    ``blocking_threads``: backpressure ÷ 2, i.e. 512 Python threads per worker). Issue 25:
    those threads make the CPU per request depend on the request rate (5.4 context
    switches per request at 11k req/s vs 1.1 with one thread).
    """

    workers: int = 0
    blocking_threads: int = 0
    backpressure: int = 0
    backlog: int = 1024
    runtime_mode: GranianRuntime = "mt"  # granian's "auto" picks mt for WSGI
    runtime_threads: int = 1
    http: Literal["auto", "1", "2"] = "auto"
    http1_keep_alive: bool = True
    access_log: bool = False
    log_level: str = "warning"
    # nginx's side: idle connections kept per nginx worker in `upstream { keepalive N; }`;
    # 0: no upstream block, HTTP/1.0 and a new connection per request (nginx's proxy default).
    upstream_keepalive: int = 32

    def with_assignments(self, assignments: Mapping[str, str]) -> GranianKnobs:
        changes: dict[str, object] = {}
        for key, raw in assignments.items():
            name = key.replace("-", "_").removeprefix("granian.")
            if name not in _fields(GranianKnobs):
                raise ValueError(f"unknown granian knob {key!r}; known: {sorted(_fields(GranianKnobs))}")
            changes[name] = _coerce(GranianKnobs, name, raw)
        knobs = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        knobs.validate()
        return knobs

    def validate(self) -> None:
        if self.runtime_mode not in ("mt", "st"):
            raise ValueError(f"granian runtime_mode: mt or st, got {self.runtime_mode!r}")
        if self.http not in ("auto", "1", "2"):
            raise ValueError(f"granian http: auto, 1 or 2, got {self.http!r}")
        if min(self.workers, self.blocking_threads, self.backpressure, self.upstream_keepalive) < 0:
            raise ValueError("granian knobs are counts: 0 (the default formula) or more")

    def resolved(self, server_cpus: int) -> dict[str, object]:
        """Every value granian will run with, for ``server_cpus`` server CPUs."""
        workers = self.workers or max(1, server_cpus)
        backpressure = self.backpressure or max(1, self.backlog // workers)
        blocking = self.blocking_threads or max(1, backpressure // 2)
        return {**dataclasses.asdict(self), "workers": workers, "backpressure": backpressure,
                "blocking_threads": blocking}


def parse_knob_spec(spec: str, what: str = "candidate") -> tuple[str, dict[str, str]]:
    """``"p4:processes=4,threads=2"`` -> ``("p4", {...})``; a bare ``"name"`` means no overrides."""
    name, _, rest = spec.partition(":")
    assignments: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{what} {name!r}: expected knob=value, got {item!r}")
        assignments[key.strip()] = value.strip()
    if not name:
        raise ValueError(f"{what} spec {spec!r} has no name")
    return name, assignments


def _fields(cls: type) -> dict[str, dataclasses.Field[object]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def knob_names() -> set[str]:
    return set(_fields(NginxKnobs)) | set(_fields(UwsgiKnobs))


def _coerce(cls: type, name: str, raw: str) -> object:
    default = getattr(cls(), name)
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "on", "yes"):
            return True
        if raw.lower() in ("0", "false", "off", "no"):
            return False
        raise ValueError(f"{name}: expected on/off, got {raw!r}")
    if isinstance(default, int):
        return int(raw)
    return raw


def parse_candidate_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"p4:processes=4,threads=2"`` -> ``("p4", {...})``; a bare ``"name"`` means no overrides."""
    return parse_knob_spec(spec, "candidate")


# --- shared pieces ---------------------------------------------------------

# The standard uwsgi_params list (as shipped with Nginx), inlined so the
# benchmark does not depend on the distribution's /etc/nginx.
UWSGI_PARAMS = """\
uwsgi_param QUERY_STRING $query_string;
uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type;
uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri;
uwsgi_param PATH_INFO $document_uri;
uwsgi_param DOCUMENT_ROOT $document_root;
uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REQUEST_SCHEME $scheme;
uwsgi_param HTTPS $https if_not_empty;
uwsgi_param REMOTE_ADDR $remote_addr;
uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port;
uwsgi_param SERVER_NAME $server_name;
"""

MIME_TYPES = "/etc/nginx/mime.types"

Upstream = tuple[Literal["uwsgi", "proxy", "proxy-keepalive", "return"], str]


def app_env(ctx: StackContext) -> dict[str, str]:
    """Environment for every app server: what benchapp and the target app read."""
    return {
        "PYTHONPATH": f"{ctx.app.project_dir}:{ctx.src_dir}",
        "BENCH_APP": ctx.app.wsgi,
        "BENCH_STATIC": str(ctx.static_dir),
        "BENCH_SLOW_MS": str(ctx.slow_ms),
        **ctx.app.env,
    }


BENCHAPP = "wsgistack_bench.benchapp:application"


def _location_for(upstream: Upstream, knobs: NginxKnobs) -> str:
    kind, target = upstream
    if kind == "return":
        return '        default_type text/plain;\n        return 200 "ok\\n";\n'
    if kind == "uwsgi":
        buffering = "" if knobs.uwsgi_buffering else "        uwsgi_buffering off;\n"
        return f"        include uwsgi_params;\n        uwsgi_pass {target};\n{buffering}"
    headers = (
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "        proxy_set_header X-Forwarded-Proto $scheme;\n"
    )
    if kind == "proxy-keepalive":
        headers += '        proxy_http_version 1.1;\n        proxy_set_header Connection "";\n'
        return f"{headers}        proxy_pass http://app;\n"
    return f"{headers}        proxy_pass http://{target};\n"


def render_nginx_conf(ctx: StackContext, knobs: NginxKnobs, upstream: Upstream, upstream_keepalive: int = 32) -> str:
    """A complete nginx.conf for ``nginx -p workdir -c nginx.conf``."""
    wd = ctx.workdir
    if knobs.access_log == "off":
        access = "access_log off;"
    elif knobs.access_log == "buffered":
        access = f"access_log {wd}/access.log combined buffer=64k flush=1s;"
    else:
        access = f"access_log {wd}/access.log combined;"
    keepalive = f"keepalive_timeout {knobs.keepalive_timeout};"
    gzip = (
        "gzip on;\n    gzip_comp_level 5;\n    gzip_min_length 1024;\n    gzip_vary on;\n"
        "    gzip_types text/plain text/css application/json application/javascript text/xml"
        " application/xml image/svg+xml;"
        if knobs.gzip else "gzip off;"
    )
    open_files = (
        "open_file_cache max=1000 inactive=60s;\n        open_file_cache_valid 60s;\n"
        "        open_file_cache_errors on;\n" if knobs.open_file_cache else ""
    )
    upstream_block = ""
    if upstream[0] == "proxy-keepalive":
        upstream_block = (f"    upstream app {{\n        server {upstream[1]};\n        keepalive {upstream_keepalive};\n"
                          "    }\n")
    app_location = _location_for(upstream, knobs)
    whitenoise = "" if upstream[0] == "return" else (
        f"    location {WHITENOISE_PREFIX} {{\n{app_location}    }}\n"
    )
    return f"""\
# Generated by wsgistack bench for stack {ctx.workdir.name}.
worker_processes {knobs.worker_processes};
worker_rlimit_nofile {knobs.worker_connections * 2 + 64};
pid {wd}/nginx.pid;
error_log {wd}/error.log warn;
daemon off;
events {{
    worker_connections {knobs.worker_connections};
}}
http {{
    include {MIME_TYPES};
    default_type application/octet-stream;
    client_body_temp_path {wd}/tmp/body;
    proxy_temp_path {wd}/tmp/proxy;
    fastcgi_temp_path {wd}/tmp/fastcgi;
    uwsgi_temp_path {wd}/tmp/uwsgi;
    scgi_temp_path {wd}/tmp/scgi;
    {access}
    sendfile {"on" if knobs.sendfile else "off"};
    tcp_nopush {"on" if knobs.tcp_nopush else "off"};
    {keepalive}
    {gzip}
    client_max_body_size {knobs.client_max_body_size};
{upstream_block}    server {{
        listen 127.0.0.1:{ctx.port} backlog={knobs.backlog};
        server_name localhost;
        location /static/ {{
            alias {ctx.static_dir}/;
        {open_files}    }}
{whitenoise}        location / {{
{app_location}        }}
    }}
}}
"""


def _uwsgi_ini(ctx: StackContext, knobs: UwsgiKnobs, socket_line: str, extra: str = "") -> str:
    lines = [
        "[uwsgi]",
        "strict = true",  # fail on a misspelt option instead of ignoring it
        "master = true",
        "need-app = true",
        "die-on-term = true",
        "vacuum = true",
        f"chdir = {ctx.app.project_dir}",
        f"module = {BENCHAPP}",
        socket_line,
        "chmod-socket = 666",
        f"processes = {knobs.processes}",
    ]
    if knobs.threads > 1:
        lines.append(f"threads = {knobs.threads}")
    if knobs.enable_threads:
        lines.append("enable-threads = true")
    if knobs.cheaper:
        lines.append(f"cheaper = {knobs.cheaper}")
    if knobs.listen != 100:  # 100 is uWSGI's default
        lines.append(f"listen = {knobs.listen}")
    if knobs.buffer_size != 4096:  # 4096 is uWSGI's default
        lines.append(f"buffer-size = {knobs.buffer_size}")
    if not knobs.logging:
        lines += ["disable-logging = true", "log-4xx = true", "log-5xx = true"]
    if knobs.thunder_lock:
        lines.append("thunder-lock = true")
    if knobs.single_interpreter:
        lines.append("single-interpreter = true")
    if knobs.max_requests:
        lines.append(f"max-requests = {knobs.max_requests}")
    if knobs.harakiri:
        lines.append(f"harakiri = {knobs.harakiri}")
    if knobs.memory_report:
        lines.append("memory-report = true")
    if knobs.stats:
        lines.append(f"stats = {ctx.workdir / 'stats.sock'}")
    return "\n".join(lines) + "\n" + extra


def _write(ctx: StackContext, name: str, content: str) -> Path:
    path = ctx.workdir / name
    path.write_text(content)
    return path


def _prepare(ctx: StackContext) -> None:
    # Nginx workers run as an unprivileged user: they must traverse the work dir.
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    ctx.workdir.chmod(0o755)
    (ctx.workdir / "tmp").mkdir(exist_ok=True)
    (ctx.workdir / "uwsgi_params").write_text(UWSGI_PARAMS)


def nginx_process(ctx: StackContext, conf: Path) -> Process:
    argv = ("nginx", "-p", str(ctx.workdir), "-e", str(ctx.workdir / "error.log"), "-c", str(conf))
    return Process("nginx", argv, {}, ctx.workdir)


def uwsgi_process(ctx: StackContext, ini: Path) -> Process:
    return Process("uwsgi", (str(ctx.bin_dir / "uwsgi"), "--ini", str(ini)), app_env(ctx), ctx.app.project_dir)


def _url(ctx: StackContext) -> str:
    return f"http://127.0.0.1:{ctx.port}"


# --- stacks ----------------------------------------------------------------


def ceiling(ctx: StackContext) -> StackPlan:
    """Nginx answering ``return 200`` itself: the most any proxied stack can do."""
    _prepare(ctx)
    conf = _write(ctx, "nginx.conf", render_nginx_conf(ctx, NginxKnobs(), ("return", "")))
    return StackPlan("ceiling", _url(ctx), (nginx_process(ctx, conf),), no_app=True)


def candidate_stack(name: str, candidate: Candidate) -> Callable[[StackContext], StackPlan]:
    """Nginx + uWSGI with the knobs under test (what wsgistack's defaults should be)."""

    def build(ctx: StackContext) -> StackPlan:
        _prepare(ctx)
        if candidate.uwsgi.socket == "tcp":
            socket_line, target = f"socket = 127.0.0.1:{ctx.aux_port}", f"127.0.0.1:{ctx.aux_port}"
        else:
            sock = ctx.workdir / "uwsgi.sock"
            socket_line, target = f"socket = {sock}", f"unix:{sock}"
        ini = _write(ctx, "uwsgi.ini", _uwsgi_ini(ctx, candidate.uwsgi, socket_line))
        conf = _write(ctx, "nginx.conf", render_nginx_conf(ctx, candidate.nginx, ("uwsgi", target)))
        _write(ctx, "candidate.json", json.dumps(dataclasses.asdict(candidate), indent=2))
        return StackPlan(name, _url(ctx), (uwsgi_process(ctx, ini), nginx_process(ctx, conf)),
                         config=dataclasses.asdict(candidate))

    return build


# Seed 000: uWSGI processes=4 threads=8 on a unix socket, Debian's stock
# nginx.conf around a server block with uwsgi_pass.
SEED_NGINX = NginxKnobs(
    worker_processes="auto", worker_connections=768, access_log="on", keepalive_timeout=75,
    backlog=511, gzip=True, open_file_cache=False, client_max_body_size="75M",
)
SEED_UWSGI = UwsgiKnobs(
    processes=4, threads=8, listen=100, buffer_size=4096, logging=True,
    thunder_lock=False, single_interpreter=False, enable_threads=False,
)


def seed(ctx: StackContext) -> StackPlan:
    _prepare(ctx)
    sock = ctx.workdir / "uwsgi.sock"
    ini = _write(ctx, "uwsgi.ini", _uwsgi_ini(ctx, SEED_UWSGI, f"socket = {sock}", "memory-report = true\n"))
    conf = _write(ctx, "nginx.conf", render_nginx_conf(ctx, SEED_NGINX, ("uwsgi", f"unix:{sock}")))
    return StackPlan("seed", _url(ctx), (uwsgi_process(ctx, ini), nginx_process(ctx, conf)))


# tiangolo/uwsgi-nginx equivalent: uWSGI defaults (listen 100, 4 KB buffer,
# request log) with cheaper=2 / processes=16; its generated nginx.conf: one
# worker, 1024 connections, access log, keepalive 65, no body limit.
TIANGOLO_NGINX = NginxKnobs(
    worker_processes="1", worker_connections=1024, access_log="on", keepalive_timeout=65,
    backlog=511, tcp_nopush=False, gzip=False, open_file_cache=False, client_max_body_size="0",
)
TIANGOLO_UWSGI = UwsgiKnobs(
    processes=16, cheaper=2, listen=100, buffer_size=4096, logging=True,
    thunder_lock=False, single_interpreter=False, enable_threads=False,
)


def tiangolo(ctx: StackContext) -> StackPlan:
    _prepare(ctx)
    sock = ctx.workdir / "uwsgi.sock"
    ini = _write(ctx, "uwsgi.ini", _uwsgi_ini(
        ctx, TIANGOLO_UWSGI, f"socket = {sock}", "hook-master-start = unix_signal:15 gracefully_kill_them_all\n"))
    conf = _write(ctx, "nginx.conf", render_nginx_conf(ctx, TIANGOLO_NGINX, ("uwsgi", f"unix:{sock}")))
    return StackPlan("tiangolo", _url(ctx), (uwsgi_process(ctx, ini), nginx_process(ctx, conf)))


def _require(ctx: StackContext, binary: str) -> str:
    path = ctx.bin_dir / binary
    if not path.exists():
        raise StackUnavailable(f"{binary} is not installed in {ctx.bin_dir} (pip install 'wsgistack[bench]')")
    return str(path)


def gunicorn_stack(worker_class: Literal["sync", "gthread"]) -> Callable[[StackContext], StackPlan]:
    """gunicorn behind the candidate Nginx, sized as its docs advise (2 x CPUs + 1 workers)."""

    def build(ctx: StackContext) -> StackPlan:
        _prepare(ctx)
        sock = ctx.workdir / "gunicorn.sock"
        argv = [
            _require(ctx, "gunicorn"), "--bind", f"unix:{sock}", "--workers", str(2 * ctx.server_cpus + 1),
            "--worker-class", worker_class,
        ]
        if worker_class == "gthread":
            argv += ["--threads", "4"]
        argv.append(BENCHAPP)
        conf = _write(ctx, "nginx.conf", render_nginx_conf(ctx, NginxKnobs(), ("proxy", f"unix:{sock}")))
        app = Process("gunicorn", tuple(argv), app_env(ctx), ctx.app.project_dir)
        return StackPlan(f"gunicorn-{worker_class}", _url(ctx), (app, nginx_process(ctx, conf)))

    return build


def granian_argv(binary: str, bind: list[str], resolved: Mapping[str, object]) -> tuple[str, ...]:
    """granian's command line with every setting that shapes its cost spelled out."""
    r = resolved
    return (
        binary, "--interface", "wsgi", *bind,
        "--workers", str(r["workers"]), "--blocking-threads", str(r["blocking_threads"]),
        "--backpressure", str(r["backpressure"]), "--backlog", str(r["backlog"]),
        "--runtime-mode", str(r["runtime_mode"]), "--runtime-threads", str(r["runtime_threads"]),
        "--http", str(r["http"]), "--http1-keep-alive" if r["http1_keep_alive"] else "--no-http1-keep-alive",
        "--access-log" if r["access_log"] else "--no-access-log", "--log-level", str(r["log_level"]),
        BENCHAPP,
    )


def granian_stack(name: str, knobs: GranianKnobs = GranianKnobs(), behind_nginx: bool = True) -> StackBuilder:
    """granian behind the candidate Nginx (over a unix socket; with upstream keep-alive unless
    ``upstream_keepalive=0``), or alone on the client port."""
    knobs.validate()

    def build(ctx: StackContext) -> StackPlan:
        _prepare(ctx)
        resolved = knobs.resolved(ctx.server_cpus)
        config = {"server": "granian", "behind_nginx": behind_nginx, **resolved}
        _write(ctx, "granian.json", json.dumps(config, indent=2))
        binary = _require(ctx, "granian")
        if not behind_nginx:
            argv = granian_argv(binary, ["--host", "127.0.0.1", "--port", str(ctx.port)], resolved)
            app = Process("granian", argv, app_env(ctx), ctx.app.project_dir)
            return StackPlan(name, _url(ctx), (app,), app_alone=True, config=config)
        sock = ctx.workdir / "granian.sock"
        # A leading 0 makes granian parse the mode as octal ("666" would be decimal).
        argv = granian_argv(binary, ["--uds", str(sock), "--uds-permissions", "0666"], resolved)
        upstream: Upstream = ("proxy-keepalive", f"unix:{sock}") if knobs.upstream_keepalive else ("proxy", f"unix:{sock}")
        conf = _write(ctx, "nginx.conf", render_nginx_conf(ctx, NginxKnobs(), upstream, knobs.upstream_keepalive))
        app = Process("granian", argv, app_env(ctx), ctx.app.project_dir)
        return StackPlan(name, _url(ctx), (app, nginx_process(ctx, conf)), config=config)

    return build


granian_nginx = granian_stack("granian-nginx")
granian_alone = granian_stack("granian-alone", behind_nginx=False)


def uwsgi_alone(ctx: StackContext) -> StackPlan:
    """uWSGI's own HTTP parser, no Nginx: the app-bound limit for uWSGI.

    Plain ``http-socket``, not ``http11-socket`` (which lets one prefork worker
    hold one keep-alive connection and starves the rest). http-socket closes
    every connection but does not say so: wrk then expects keep-alive and
    counts a read error per response, even when the request carries
    ``Connection: close`` (measured), so uWSGI adds the response header.
    """
    _prepare(ctx)
    ini = _write(ctx, "uwsgi.ini", _uwsgi_ini(
        ctx, UwsgiKnobs(), f"http-socket = 127.0.0.1:{ctx.port}", "add-header = Connection: close\n"))
    return StackPlan(
        "uwsgi-alone", _url(ctx), (uwsgi_process(ctx, ini),),
        client_headers=("Connection: close",), app_alone=True,
    )


REFERENCE_STACKS: dict[str, StackBuilder] = {
    "ceiling": ceiling,
    "seed": seed,
    "tiangolo": tiangolo,
    "gunicorn-sync": gunicorn_stack("sync"),
    "gunicorn-gthread": gunicorn_stack("gthread"),
    "granian-nginx": granian_nginx,
    "granian-alone": granian_alone,
    "uwsgi-alone": uwsgi_alone,
}
