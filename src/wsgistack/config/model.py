"""The one configuration tree. Every template, check and command reads only from it.

Each field is declared once, with its type, bounds, default and description; the TOML keys,
the ``WSGISTACK_<SECTION>__<FIELD>`` environment variables and ``wsgistack config`` all come
from these declarations. Values that depend on the machine ("auto") stay "auto" here and are
resolved in :mod:`wsgistack.plan`, so ``wsgistack config --origin`` can show both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# A WSGI target as users type it (gunicorn's shape): module, module:callable, module:factory().
WSGI_TARGET = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*(\(\))?)?")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Sane bounds, refused at load with the setting's name: a typo (1e26, 100000) must not reach
# the machine as a fork bomb or a config nginx refuses. Far above what any one machine runs.
MAX_UWSGI_PROCESSES = 1024
MAX_THREADS = 256
_UWSGI_TOPS = {"processes": MAX_UWSGI_PROCESSES, "threads": MAX_THREADS, "listen": 65535}
# uwsgi.threads = "auto": uWSGI's workers take a request only when free (the rest wait in the
# kernel's queue for any free worker), and threads gain nothing there; a granian worker takes
# connections while busy, so with one thread a slow request stalls those queued behind it, and
# four threads were 15-25 % cheaper per Django request (docs/benchmarks.md, *Threads for granian*).
AUTO_THREADS = {"uwsgi": 1, "granian": 4}
MAX_NGINX_WORKERS = 1024


def parse_size(value: object) -> int:
    """Parse ``"10M"``, ``"512k"``, ``"1g"`` or a plain integer into bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10M, 512k or 1048576")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size; use a number of bytes or a suffix k/M/G, e.g. 10M")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def _bounded_float(value: object, low: int, high: int) -> object:
    """A count written as a float (TOML's 1e26): pydantic would say "exceeded maximum size" or
    take 1e18 as a number of processes; say the bounds instead."""
    if isinstance(value, float) and not (value.is_integer() and low <= value <= high):
        raise ValueError(f'must be a whole number between {low} and {high}, or "auto" (got {value:g})')
    return value


def flag(name: str, *commands: str, aliases: tuple[str, ...] = ()) -> dict[str, object]:
    """``json_schema_extra`` of a setting that has a command-line flag, e.g.
    ``Field(8000, ..., json_schema_extra=flag("--port"))``: on every command that resolves a
    config (run, render, reload, status, config, doctor), or only on ``commands``; ``aliases``
    are other spellings of the same flag (gunicorn's ``-w``/``--workers``). The option,
    its help (the description) and docs/settings.md are generated from it (cli/options.py)."""
    return {"flag": name, "commands": list(commands), "aliases": list(aliases)}


def sensitive(*, recorded: bool = True) -> dict[str, object]:
    """``json_schema_extra`` of a setting whose value is a credential (a password, an app's
    ``SECRET_KEY``): masked wherever wsgistack shows it (``wsgistack config`` in every format,
    error messages, the reload's change lines, logs; ``config --show-secrets`` shows it to the
    owner who asks). ``recorded=False``: also never written to any file, the start record
    included (so ``reload`` cannot keep it: app.env reaches the manager in memory)."""
    return {"sensitive": True, "secret": not recorded}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class PathMapping(_Section):
    """A URL prefix served by Nginx straight from a directory."""

    url: str = Field(description="URL prefix, e.g. /static/")
    dir: Path = Field(description="directory on disk (relative paths are relative to app.path)")

    @field_validator("url")
    @classmethod
    def _url_shape(cls, v: str) -> str:
        if not v.startswith("/") or " " in v or ".." in v:
            raise ValueError(f"{v!r} must be an absolute URL path such as /static/")
        if v == "/":
            raise ValueError("'/' cannot be a static location: it would hide the application")
        # A trailing slash on both the location and the alias is what keeps alias from
        # serving /static../secret (the classic alias traversal), so normalise it here.
        return v if v.endswith("/") else v + "/"


class AppSection(_Section):
    target: str = Field(
        "auto",
        description='"auto" (detect Django/Flask), "module:callable" or "module:factory()"', json_schema_extra=flag("--app")
    )
    path: Path = Field(Path("."), description="project directory (uWSGI chdir, added to sys.path)")
    python: str = Field(
        "",
        description="the app's Python interpreter or virtualenv (relative to the project), where uWSGI (pyuwsgi) runs it "
        "(default: VIRTUAL_ENV, then a .venv/venv/env in the project, then wsgistack's own interpreter)", json_schema_extra=flag("--python")
    )
    django_settings: str = Field("", description="Django settings module (default: from manage.py)")
    collectstatic: bool = Field(True, description="Django: run collectstatic --noinput before start", json_schema_extra=flag("--collectstatic", "run"))
    migrate: bool | Literal["auto"] = Field(
        "auto",
        description="Django: run migrate --noinput before start; auto = when every database is SQLite (a file that serves "
        "this node only), not for a shared database (migrate it once per release: one node with true, the Kubernetes "
        "migration Job, or --migrate)", json_schema_extra=flag("--migrate", "run")
    )
    prestart: tuple[str, ...] = Field((), description="extra commands run in app.path before start")
    # Often credentials (SECRET_KEY, DATABASE_URL): never shown, never written to disk by wsgistack.
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment for the app", json_schema_extra=sensitive(recorded=False)
    )
    lazy_apps: bool = Field(False, description="load the app in each worker after fork (per-worker DB connections)")
    import_timeout: int = Field(
        120, ge=5, le=3600,
        description="seconds the app's import may take when it is detected (a start, a build); beyond it the start "
        "stops with app.E011 and the stack where the import waits")

    @field_validator("target")
    @classmethod
    def _target_shape(cls, v: str) -> str:
        v = v.strip()
        if v == "auto":
            return v
        if not WSGI_TARGET.fullmatch(v):
            raise ValueError(f"{v!r} is not a WSGI target; expected auto, module, module:callable or module:factory()")
        return v


class ServerSection(_Section):
    """Nginx, the only part of the stack that faces clients."""

    host: str = Field("127.0.0.1", description="address Nginx listens on", json_schema_extra=flag("--host"))
    port: int = Field(8000, ge=1, le=65535, description="port Nginx listens on (env PORT)", json_schema_extra=flag("--port"))
    server_names: tuple[str, ...] = Field(
        ("localhost", "127.0.0.1"),
        description='Host names served; requests for any other Host are refused ("*" accepts any)', json_schema_extra=flag("--server-name")
    )
    max_body_size: str = Field("20M", description="largest request body (uploads); 413 beyond it")
    static: tuple[PathMapping, ...] = Field((), description="extra URL prefix → directory mappings")
    trusted_proxies: tuple[str, ...] = Field(
        (), description="addresses/CIDRs whose X-Forwarded-* headers are believed (load balancer, router)"
    )
    worker_processes: int | Literal["auto"] = Field("auto", description="Nginx worker processes (1-1024, or auto = one per CPU)")
    worker_connections: int = Field(4096, ge=64, le=65536, description="connections per Nginx worker")
    access_log: bool = Field(True, description="Nginx access log on stdout (health checks are never logged)")
    log_format: Literal["text", "json"] = Field(
        "text",
        description='"text", or "json": one JSON object per line from nginx (access log), uWSGI, the background '
        "processes and wsgistack itself, each with its process name",
    )
    gzip: bool = Field(True, description="gzip text responses")
    client_header_timeout: int = Field(10, ge=1, le=300, description="seconds to receive request headers")
    client_body_timeout: int = Field(30, ge=1, le=3600, description="seconds between two body reads")
    keepalive_timeout: int = Field(15, ge=0, le=300, description="seconds an idle client connection is kept")
    unknown_host: Literal["close", "421"] = Field(
        "close", description="how to refuse an unknown Host: close the connection or answer 421"
    )
    security_headers: bool = Field(
        True,
        description="add X-Content-Type-Options, Referrer-Policy and X-Frame-Options to responses that do not set their own",
    )
    live_path: str = Field(
        "/_wsgistack/live",
        description="liveness: answered 200 by nginx itself (no app, no Host check, not logged), for balancers and probes",
    )
    ready_path: str = Field(
        "/_wsgistack/ready",
        description="readiness: answered by a uWSGI worker before the app (200 ready, 503 while draining; no Host check, "
        "no database, not logged)",
    )
    app_server: Literal["uwsgi", "granian"] = Field(
        "uwsgi",
        description='the app server behind nginx: "uwsgi" (the uwsgi protocol, a new unix connection per request) or '
        '"granian" (HTTP/1.1 over a unix socket with upstream keep-alive; the granian wheel in the app\'s environment); '
        "the [uwsgi] section's processes, threads, listen and reload_on_rss size either (docs/benchmarks.md)",
        json_schema_extra=flag("--app-server"),
    )

    static_symlinks: Literal["never", "if-owner"] = Field(
        "never",
        description='static directories: follow no symbolic link (never), or "if-owner": a link whose owner owns its '
        "target too (collectstatic --link; a root-owned link then serves any root-owned file, /etc/passwd included). "
        "Media (uploads) never follows one",
    )

    @field_validator("worker_processes", mode="before")
    @classmethod
    def _huge(cls, v: object) -> object:
        return _bounded_float(v, 1, MAX_NGINX_WORKERS)

    @field_validator("worker_processes")
    @classmethod
    def _workers(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= MAX_NGINX_WORKERS:
            raise ValueError(f'must be between 1 and {MAX_NGINX_WORKERS}, or "auto" (one per CPU)')
        return v

    @field_validator("live_path", "ready_path")
    @classmethod
    def _health_path(cls, v: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9._~/-]+", v) or "//" in v or "/." in v:
            raise ValueError(f"{v!r} is not a plain URL path such as /_wsgistack/ready (letters, digits, . _ ~ - and /)")
        return v

    @model_validator(mode="after")
    def _distinct_health_paths(self) -> ServerSection:
        if self.live_path == self.ready_path:
            raise ValueError(f"live_path and ready_path are both {self.live_path!r}: give them different paths")
        return self

    @field_validator("max_body_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if parse_size(v) == 0:
            raise ValueError("0 would disable the upload limit; give a finite size such as 20M")
        return v

    @field_validator("server_names")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not re.fullmatch(r"\*|[\w.*\-]+|\[[0-9a-fA-F:]+\]", name):
                raise ValueError(f"{name!r} is not a host name")
        if not v:
            raise ValueError("at least one server name is needed (use \"*\" to accept any Host)")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR such as 10.0.0.0/8") from None
        return v


class UwsgiSection(_Section):
    processes: int | Literal["auto"] = Field("auto", description="worker processes (env WEB_CONCURRENCY; 1-1024, or auto)",
                                            json_schema_extra=flag("--processes", aliases=("-w", "--workers")))
    threads: int | Literal["auto"] = Field(
        "auto",
        description="threads per worker (1-256, or auto: 1 with uWSGI, 4 with granian, whose workers take requests "
        "while busy; docs/benchmarks.md)",
        json_schema_extra=flag("--threads"),
    )
    socket: Literal["unix", "tcp"] = Field("unix", description="how Nginx reaches uWSGI", json_schema_extra=flag("--socket"))
    tcp_host: str = Field("127.0.0.1", description="uWSGI TCP address when socket = tcp")
    tcp_port: int = Field(8001, ge=1, le=65535, description="uWSGI TCP port when socket = tcp")
    uri: str = Field("", description="upstream for role=web: host:port or unix:/path (env UWSGI_URI)")
    listen: int | Literal["auto"] = Field("auto", description="listen queue (up to 65535); capped by net.core.somaxconn")
    buffer_size: int = Field(
        65535,
        ge=8192,
        le=65535,
        description="uWSGI's request buffer in bytes (max 65535); nginx refuses (400) header blocks that could not fit "
        "it, so 65535 accepts header lines up to 17 KB, never a 502",
    )
    # Off by default: with max-requests = 5000 and 2 workers, both recycled together and hello
    # world's p99 went from 5.7 ms to 501 ms (docs/benchmarks.md); memory-based recycling
    # (reload_on_rss, on by default) catches the leaks that matter.
    max_requests: int = Field(
        0,
        ge=0,
        le=100_000_000,
        description="recycle a worker after this many requests (0 = never; workers are staggered so they never "
        "restart together); like reload_on_rss, only once it is older than uWSGI's min-worker-lifetime (10 s)",
    )
    reload_on_rss: int = Field(0, ge=0, le=1048576, description="recycle a worker above this RSS in MB (0 = auto from memory)")
    stats: bool = Field(True, description="uWSGI stats on a unix socket in the runtime dir")
    request_log: bool = Field(False, description="uWSGI request log (Nginx already logs every request)")
    options: dict[str, str | int | bool | tuple[str, ...]] = Field(
        default_factory=dict,
        description='extra uWSGI options, e.g. {"max-worker-lifetime" = 3600}; strict mode makes a misspelt one fail the start',
    )

    @field_validator("processes", "threads", "listen", mode="before")
    @classmethod
    def _huge(cls, v: object, info: ValidationInfo) -> object:
        return _bounded_float(v, 1, _UWSGI_TOPS[info.field_name])

    @field_validator("processes", "threads", "listen")
    @classmethod
    def _positive_or_auto(cls, v: int | str, info: ValidationInfo) -> int | str:
        top = _UWSGI_TOPS[info.field_name]
        if isinstance(v, int) and not 1 <= v <= top:
            raise ValueError(f'must be between 1 and {top}, or "auto"')
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, object]) -> dict[str, object]:
        for key, value in v.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", key):
                raise ValueError(f"{key!r} is not a uWSGI option name (lowercase words joined by -, e.g. harakiri-verbose)")
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, str) and ("\n" in item or "\r" in item):
                    raise ValueError(f"the value of {key!r} spans lines")
        return v


class KubeSection(_Section):
    """`wsgistack kube`: the Kubernetes manifests rendered from this same config (docs/kubernetes.md)."""

    image: str = Field("", description="image the manifests run, as `wsgistack build` made it and a registry serves it", json_schema_extra=flag("--image", "kube"))
    name: str = Field("", description="name of the Deployment, Service and friends (default: the project directory's name)", json_schema_extra=flag("--name", "kube"))
    namespace: str = Field("", description="namespace for every resource (kustomize sets it); empty = the one kubectl uses", json_schema_extra=flag("--namespace", "kube"))
    replicas: int = Field(2, ge=1, le=1000, description="pods of the web Deployment (when autoscaling is off)", json_schema_extra=flag("--replicas", "kube"))
    layout: Literal["single", "split"] = Field(
        "single",
        description='"single": one container runs nginx + uWSGI; "split": an nginx container and an app container '
        "in one pod, sharing the uWSGI socket through an emptyDir", json_schema_extra=flag("--layout", "kube")
    )
    cpu: str = Field("250m", description="CPU request of the app container (no CPU limit: throttling stalls workers)")
    memory: str = Field("256Mi", description="memory request of the app container")
    memory_limit: str = Field("512Mi", description='memory limit of the app container; uwsgi.processes = "auto" sizes from it')
    hosts: tuple[str, ...] = Field((), description="host names for an Ingress (none = no Ingress); each must be served (server.server_names)", json_schema_extra=flag("--ingress-host", "kube"))
    ingress_class: str = Field("", description="ingressClassName of the Ingress (empty = the cluster's default class)")
    tls_secret: str = Field("", description="Secret holding the Ingress's TLS certificate for hosts (empty = no TLS section)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for every container, in the ConfigMap (never secrets)")
    secret: str = Field("", description="Secret whose keys become environment variables (default: NAME-secrets); create it yourself")
    autoscale_min: int = Field(0, ge=0, le=1000, description="HorizontalPodAutoscaler minimum replicas (0 with autoscale_max 0 = no HPA)", json_schema_extra=flag("--min-replicas", "kube"))
    autoscale_max: int = Field(0, ge=0, le=1000, description="HorizontalPodAutoscaler maximum replicas (0 = no HPA)", json_schema_extra=flag("--max-replicas", "kube"))
    autoscale_cpu: int = Field(70, ge=10, le=100, description="HPA target: average CPU use in % of the request")
    max_surge: str = Field("25%", description="rolling update: extra pods started before old ones stop (maxUnavailable is always 0)")
    prestop_pause: int = Field(
        5, ge=0, le=120, description="seconds a stopping pod keeps serving so endpoints and load balancers forget it first"
    )
    startup_timeout: int = Field(
        300, ge=10, le=600,
        description="seconds a pod may take to start (prestart included) before it is restarted; split: nginx waits "
        "this long for the app (upstream_wait, at most 600)",
    )
    collectstatic: Literal["pod", "job"] = Field(
        "pod",
        description='where Django collectstatic runs: "pod" = each pod into its own emptyDir at start; "job" = once per '
        "release in the migration Job (STATIC_ROOT on shared storage)",
    )
    media_claim: str = Field("", description="PersistentVolumeClaim for uploads (MEDIA_ROOT); empty = an emptyDir, lost with the pod")

    @field_validator("max_surge")
    @classmethod
    def _surge(cls, v: str) -> str:
        if not re.fullmatch(r"[1-9]\d*%?|[1-9]\d?%|100%", v.strip()):
            raise ValueError(f"{v!r} is not a number of pods or a percentage such as 1 or 25%")
        return v.strip()

    @field_validator("name", "namespace")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if v and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v):
            raise ValueError(f"{v!r} is not a Kubernetes name (lowercase letters, digits and -, at most 63)")
        return v

    @field_validator("secret", "tls_secret", "media_claim", "ingress_class")
    @classmethod
    def _dns_subdomain(cls, v: str) -> str:
        if v and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", v):
            raise ValueError(f"{v!r} is not a Kubernetes object name (lowercase letters, digits, - and .)")
        return v

    @field_validator("cpu", "memory", "memory_limit")
    @classmethod
    def _quantity(cls, v: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?", v.strip()):
            raise ValueError(f"{v!r} is not a Kubernetes quantity such as 250m, 0.5, 256Mi or 1Gi")
        return v.strip()

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not re.fullmatch(r"(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
                raise ValueError(f"{name!r} is not a host name an Ingress accepts (lowercase, optionally *.domain)")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not an environment variable name")
        return v


DEFAULT_BASE = "debian:trixie-slim"  # Python 3.13, nginx 1.26; bookworm-slim works too (3.11)
_DEBIAN_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(=[\w.+~:-]+)?$")
IMAGE_COMMANDS = ("build", "dockerfile", "heroku")


class ImageSection(_Section):
    """`wsgistack build`, `dockerfile` and `heroku`: what goes into the image (docs/containers.md).
    Kept here, a plain `wsgistack build` rebuilds the same image; a flag replaces the setting
    for that one build (a repeatable flag replaces the whole list)."""

    base: str = Field(DEFAULT_BASE, description="base image of every stage (Debian-based: apt-get, python3, nginx)",
                      json_schema_extra=flag("--base", *IMAGE_COMMANDS))
    requirements: str = Field(
        "",
        description="the app's requirements file, relative to the project (empty: requirements.txt; without one, "
        "pyproject.toml's [project] dependencies, pinned by uv.lock/poetry.lock when there is one)",
        json_schema_extra=flag("--requirements", *IMAGE_COMMANDS))
    packages: tuple[str, ...] = Field(
        (), description="extra Debian packages in the runtime image, e.g. libpq5 (repeatable flag)",
        json_schema_extra=flag("--package", *IMAGE_COMMANDS))
    build_packages: tuple[str, ...] = Field(
        (), description="extra Debian packages in the builder stage only, to compile wheels: e.g. gcc, python3-dev, libpq-dev",
        json_schema_extra=flag("--build-package", *IMAGE_COMMANDS))
    writable: tuple[str, ...] = Field(
        (), description="project directories the app writes, made its own in the image (STATIC_ROOT, MEDIA_ROOT, STORAGES "
        "locations and Flask's instance folder are found by the build step itself)",
        json_schema_extra=flag("--writable", *IMAGE_COMMANDS))
    keep: tuple[str, ...] = Field(
        (), description="paths .dockerignore must let through although they look secret, e.g. app/secret_utils.py",
        json_schema_extra=flag("--keep", *IMAGE_COMMANDS))
    exclude: tuple[str, ...] = Field(
        (), description="more paths (.dockerignore patterns) to leave out of the image, e.g. mysite/settings_local.py; "
        "every build names the git-ignored files that would otherwise go in",
        json_schema_extra=flag("--exclude", *IMAGE_COMMANDS))
    keep_apt: bool = Field(
        False, description="keep apt, debconf and perl in the image (about 17 MB; removed by default: nothing installs "
        "packages at run time)", json_schema_extra=flag("--keep-apt", *IMAGE_COMMANDS))

    @field_validator("packages", "build_packages")
    @classmethod
    def _packages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not _DEBIAN_PACKAGE_RE.match(name):
                raise ValueError(f"{name!r} is not a Debian package name (e.g. libpq5, gcc)")
        return v

    @field_validator("writable")
    @classmethod
    def _dirs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from pathlib import PurePosixPath

        for d in v:
            p = PurePosixPath(d)
            if p.is_absolute() or ".." in p.parts or not p.parts:
                raise ValueError(f"{d!r} must be a directory inside the project, relative to it (e.g. var/uploads)")
        return v


LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory"


class TlsSection(_Section):
    """HTTPS, terminated by nginx (docs/tls.md). Off behind a balancer that terminates TLS."""

    mode: Literal["off", "self-signed", "files", "acme"] = Field(
        "off",
        description="off; self-signed (a local dev CA, made and reused); files (tls.cert + tls.key); "
        "acme (obtained and renewed from tls.directory over HTTP-01)", json_schema_extra=flag("--tls")
    )
    port: int = Field(8443, ge=1, le=65535, description="port nginx serves HTTPS on (server.port then redirects to it)", json_schema_extra=flag("--tls-port"))
    redirect_port: int = Field(
        0, ge=0, le=65535,
        description="port the HTTP -> HTTPS redirect names, when clients reach HTTPS on another port than tls.port "
        "(a container published as 443:8443); 0 = tls.port",
    )
    cert: Path | None = Field(None, description="files: certificate chain (PEM, leaf first)")
    key: Path | None = Field(None, description="files: private key (PEM) of the certificate")
    email: str = Field("", description="acme: contact address for the CA's expiry and policy mail")
    directory: str = Field(LETSENCRYPT_DIRECTORY, description="acme: the CA's ACME directory URL")
    staging: bool = Field(
        False, description="acme: use Let's Encrypt's staging directory (untrusted certificates, generous rate limits)"
    )
    ca_bundle: Path | None = Field(
        None, description="acme: CA file to verify the ACME directory's own HTTPS with (a private CA such as pebble)"
    )
    challenge_port: int = Field(
        80, ge=1, le=65535,
        description="acme: port the CA connects to for HTTP-01 (80 for public CAs): it must reach server.port",
    )
    data_dir: Path | None = Field(
        None,
        description="where the dev CA, ACME account key and certificates are kept (default: $XDG_DATA_HOME/wsgistack, "
        "i.e. ~/.local/share/wsgistack); a volume in containers",
    )
    hsts: bool | Literal["auto"] = Field(
        "auto", description="send Strict-Transport-Security; auto = on for files and acme, off for self-signed"
    )
    hsts_max_age: int = Field(63072000, ge=0, description="HSTS max-age in seconds (Mozilla: two years)")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if v and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v):
            raise ValueError(f"{v!r} is not an e-mail address")
        return v

    @field_validator("directory")
    @classmethod
    def _directory(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError(f"{v!r} is not an https:// ACME directory URL")
        return v


class OpsSection(_Section):
    """The ops listener (docs/operations.md): /metrics (Prometheus), /status (a live page) and
    /status.json, served by one more process under the process manager. Off by default."""

    port: int = Field(0, ge=0, le=65535, description="port of the ops listener; 0 = off")
    host: str = Field("127.0.0.1", description="address it binds (loopback unless you open it on purpose)")
    basic_auth: str = Field(
        "", description='"user:password" to require HTTP basic auth on every ops path (empty = none)',
        json_schema_extra=sensitive(),
    )
    history: int = Field(600, ge=60, le=3600, description="seconds of samples the status page charts")

    @field_validator("basic_auth")
    @classmethod
    def _auth(cls, v: str) -> str:
        if v and (":" not in v or not v.split(":", 1)[0] or not v.split(":", 1)[1]):
            raise ValueError('expected "user:password", both non-empty')
        return v


# Names the process table already uses, and the containers' own (split compose's app and web
# services, role all): a background process may not take them. "worker" it may: it is
# Procfile's usual name, and its container is worker-worker, its log prefix "worker |".
RESERVED_PROCESS_NAMES = frozenset({"nginx", "uwsgi", "wsgistack", "haproxy", "ops", "acme", "all", "app", "web", "balancer", "granian"})
STOP_SIGNALS = ("TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "KILL")


class ProcessSection(_Section):
    """A background process run beside nginx and uWSGI (``[processes.NAME]``): a scheduler,
    a queue worker, ``manage.py sendalerts``."""

    command: str = Field(
        description='command line, split like a shell does but without one (for pipes or $VARS: "sh -c \'...\'"); '
        "runs as the app's user, in app.path, with the app's environment"
    )
    restart: Literal["always", "on-failure", "never"] = Field(
        "always",
        description="always: restart whenever it exits; on-failure: only after a non-zero exit or a signal; "
        "never: not restarted (a non-zero exit then stops the stack)",
    )
    stop_signal: Literal[STOP_SIGNALS] = Field("TERM", description="signal that asks it to stop (TERM, INT, QUIT, HUP, USR1, USR2, KILL)")  # type: ignore[valid-type]
    stop_timeout: int | None = Field(
        None, ge=1, le=300, description="seconds it gets to stop before SIGKILL, counted from the stop's start (it stops "
        "beside nginx's drain; default: the top-level stop_timeout); the image's and manifests' grace periods follow"
    )
    count: int = Field(1, ge=1, le=64, description="how many copies run (NAME.1, NAME.2, ...)")

    @field_validator("command")
    @classmethod
    def _command(cls, v: str) -> str:
        import shlex

        try:
            argv = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"cannot split {v!r} into words: {exc}") from None
        if not argv:
            raise ValueError("the command is empty")
        return v


_ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})$")


def split_address(value: str) -> tuple[str, int]:
    """``"10.0.0.11:8000"`` or ``"[fd00::1]:8000"`` -> (host, port); ValueError otherwise."""
    match = _ADDRESS_RE.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise ValueError(f"{value!r} is not host:port, e.g. 10.0.0.11:8000")
    return match.group(1), int(match.group(2))


class BalancerSection(_Section):
    """HAProxy in front of several nodes (`wsgistack balance`), and optionally the database."""

    nodes: tuple[str, ...] = Field((), description="app nodes as host:port (each a `wsgistack run`), repeatable",
                                   json_schema_extra=flag("--node", "balance", "rollout"))
    host: str = Field("0.0.0.0", description="address HAProxy listens on for clients (and the stats page)",
                      json_schema_extra=flag("--host", "balance", "rollout"))
    port: int = Field(80, ge=1, le=65535, description="port HAProxy listens on for clients",
                      json_schema_extra=flag("--port", "balance", "rollout"))
    stats_port: int = Field(9080, ge=1, le=65535, description="port of the stats page and /metrics (Prometheus)",
                            json_schema_extra=flag("--stats-port", "balance", "rollout"))
    stats_auth: str = Field(
        "",
        description='"user:password" the stats page asks for from anywhere but loopback (empty: loopback only)',
        json_schema_extra=sensitive(),
    )
    check_host: str = Field(
        "", description="Host header of the readiness check (default: the first of server.server_names)"
    )
    check_interval: int = Field(1000, ge=100, le=60000, description="milliseconds between two checks of a node (inter)")
    fall: int = Field(2, ge=1, le=100, description="failed checks in a row before a node is taken out")
    rise: int = Field(2, ge=1, le=100, description="good checks in a row before a node is put back")
    slowstart: int = Field(10, ge=0, le=3600, description="seconds over which a node coming back ramps up to its full share")
    retries: int = Field(3, ge=0, le=20, description="attempts after a failed one (on another node: redispatch)")
    maxconn: int | Literal["auto"] = Field(
        0,
        description="requests a node gets at once; more wait in HAProxy's queue for a free node (up to the request "
        "timeout) instead of queueing behind a busy one; auto = the nodes' uWSGI workers, uwsgi.processes x "
        "uwsgi.threads (give the balancer the nodes' wsgistack.toml); 0 (default) = no limit: the nodes queue in their "
        "listen queues and stay ready while busy (with a limit, HAProxy 2.6 left requests in its queue until timeout "
        "queue after a rollout's drain: docs/several-nodes.md)",
    )
    resolver: str = Field(
        "",
        description="DNS server (host:port) HAProxy asks for the nodes' names while it runs, e.g. 127.0.0.11:53 (Docker's, "
        "on a compose network: a replaced container gets a new address); empty = names resolved once, at start",
    )
    db_primary: str = Field("", description="database primary as host:port: HAProxy then fronts it on db_port (tcp)")
    db_replicas: tuple[str, ...] = Field((), description="database replicas as host:port, on db_read_port (primary as backup)")
    db_port: int = Field(3306, ge=1, le=65535, description="port for writes (the primary)")
    db_read_port: int = Field(3307, ge=1, le=65535, description="port for reads (replicas, then the primary)")
    db_check_user: str = Field("haproxy", description="MySQL/MariaDB user (no password) of HAProxy's mysql-check")

    @field_validator("nodes", "db_replicas")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            split_address(item)
        if len(set(v)) != len(v):
            raise ValueError("a node is listed twice")
        return v

    @field_validator("maxconn")
    @classmethod
    def _maxconn(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= 100_000:
            raise ValueError('must be between 0 (no limit) and 100000, or "auto"')
        return v

    @field_validator("db_primary", "resolver")
    @classmethod
    def _primary(cls, v: str) -> str:
        if v:
            split_address(v)
        return v

    @field_validator("stats_auth")
    @classmethod
    def _auth(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9_.\-]+:[^\s\"'#\\]+", v):
            raise ValueError("expected user:password (no spaces, quotes, # or backslashes)")
        return v

    @field_validator("check_host")
    @classmethod
    def _check_host(cls, v: str) -> str:
        if v and not re.fullmatch(r"[\w.\-]+(:\d+)?|\[[0-9a-fA-F:]+\](:\d+)?", v):
            raise ValueError(f"{v!r} is not a host name")
        return v

    @field_validator("db_check_user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_]+", v):
            raise ValueError("a MySQL user name of letters, digits and _")
        return v


class Config(_Section):
    """The whole, validated configuration. Frozen: derive, never mutate."""

    role: Literal["all", "app", "web", "worker", "balancer"] = Field(
        "all",
        description="all = Nginx + uWSGI (+ background processes); app = uWSGI only; web = Nginx only (proxying to "
        "uwsgi.uri); worker = the one background process named by `process`; balancer = HAProxy in front of "
        "balancer.nodes (the image's entrypoint runs what `wsgistack balance` runs)",
        json_schema_extra=flag("--role"),
    )
    process: str = Field("", description="role worker: the background process ([processes.NAME]) this container runs")
    run_processes: bool = Field(
        True,
        description="role all: run the background processes ([processes.NAME]) beside nginx and uWSGI; false where each "
        "runs in its own container (role worker: the Kubernetes manifests set it)",
    )
    platform: Literal["none", "heroku"] = Field("none", description="platform router whose timeout we must nest inside")
    runtime_dir: Path | None = Field(None, description="where sockets, pidfiles and rendered configs live", json_schema_extra=flag("--runtime-dir"))
    user: str = Field(
        "",
        description="when started as root: the unprivileged user uWSGI, its prestart steps and Nginx workers run as "
        '(default: Nginx\'s worker user, www-data on Debian); "root" keeps uWSGI as root, for rootless containers only',
    )
    request_timeout: int | Literal["auto"] = Field(
        "auto",
        description='seconds a request may run (uWSGI harakiri); Nginx waits a little longer; "auto" = 30, or inside the platform router\'s limit', json_schema_extra=flag("--timeout")
    )
    stop_timeout: int = Field(
        8, ge=1, le=300,
        description="seconds nginx and the app server get to stop, from the stop's start: nginx's in-flight requests "
        "get all but 2 of them, the app server (stopped once nginx has exited) the rest; the default 8 fits Docker's "
        "10 s (each background process has its own, processes.NAME.stop_timeout)",
    )
    drain_delay: int = Field(
        0,
        ge=0,
        le=300,
        description="on stop, seconds the node keeps serving while its readiness path answers 503 \"draining\", so a "
        "balancer takes it out before nginx stops accepting (0 = stop at once; behind `wsgistack balance`: "
        "more than balancer.check_interval x balancer.fall)",
    )
    upstream_wait: int = Field(
        30, ge=0, le=600, description="role web: seconds to wait for the uWSGI upstream before failing the start"
    )
    silence: tuple[str, ...] = Field(
        (), description="doctor check ids to silence (ours, or Django's/gixy's/hadolint's), e.g. nginx.W013, security.W004"
    )
    app: AppSection = Field(default_factory=AppSection)
    server: ServerSection = Field(default_factory=ServerSection)
    uwsgi: UwsgiSection = Field(default_factory=UwsgiSection)
    kube: KubeSection = Field(default_factory=KubeSection)
    tls: TlsSection = Field(default_factory=TlsSection)
    balancer: BalancerSection = Field(default_factory=BalancerSection)
    ops: OpsSection = Field(default_factory=OpsSection)
    image: ImageSection = Field(default_factory=ImageSection)
    processes: dict[str, ProcessSection] = Field(
        default_factory=dict, description="background processes run beside nginx and uWSGI, [processes.NAME] (the number of uWSGI workers is [uwsgi] processes)"
    )

    @field_validator("processes")
    @classmethod
    def _process_names(cls, v: dict[str, ProcessSection]) -> dict[str, ProcessSection]:
        for name in v:
            # One spelling for the TOML table, the env var (WSGISTACK_PROCESSES__NAME__COMMAND)
            # and the output prefix: lowercase, and no "__" (the env var's separator).
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name) or "__" in name:
                raise ValueError(f"{name!r} is not a process name: lowercase letters, digits, - and _, starting with a letter")
            if name in RESERVED_PROCESS_NAMES:
                raise ValueError(f"{name!r} is a name wsgistack uses itself; pick another")
        return v

    @field_validator("request_timeout")
    @classmethod
    def _timeout(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 2 <= v <= 3600:
            raise ValueError('must be between 2 and 3600 seconds, or "auto"')
        return v

    @property
    def worker_threads(self) -> int:
        """uwsgi.threads resolved: the number given, or "auto" for the app server (AUTO_THREADS)."""
        threads = self.uwsgi.threads
        return AUTO_THREADS[self.server.app_server] if threads == "auto" else int(threads)


# Platforms whose router closes a request after a fixed time; our timeouts must end first.
ROUTER_TIMEOUTS: dict[str, int] = {"heroku": 30}

SECTIONS: dict[str, type[_Section]] = {
    "app": AppSection, "server": ServerSection, "uwsgi": UwsgiSection, "kube": KubeSection, "tls": TlsSection,
    "balancer": BalancerSection, "ops": OpsSection, "image": ImageSection,
}
# Sections that are tables of named entries ([processes.NAME]): the key of each entry is
# free, its fields are the section's. sources.py resolves their dotted keys (NAME included).
NAMED_SECTIONS: dict[str, type[_Section]] = {"processes": ProcessSection}
