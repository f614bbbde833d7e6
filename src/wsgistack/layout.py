"""Where each stack's files live: one place for every path a process writes and another reads.

The stack's runtime dir (nginx.conf, uwsgi.ini, sockets, pidfiles, records), the balancer's,
their default names, the data dir's default, and the fixed paths inside wsgistack's image.
Nothing here reads or writes a file: these are names.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsgistack.config.sources import LoadedConfig


# A path wsgistack writes into uwsgi.ini and haproxy.cfg as it is: neither quotes (a space ends
# an HAProxy word; "%" and "$(" are uWSGI's own expansions), so the runtime dir, whose files
# both name, holds only these. nginx.conf quotes what needs it (render's nginx_quote)...
PLAIN_PATH = re.compile(r"[A-Za-z0-9._/+=,@~-]*")
# ...except what a quoted nginx string cannot carry: "$" starts a variable (alias, if -f),
# a quote or a backslash ends or escapes the string, a control character ends the line.
NGINX_UNQUOTABLE = re.compile(r'[$"\\\x00-\x1f\x7f]')


def unplain(path: object) -> str:
    """The characters of ``path`` outside :data:`PLAIN_PATH`, in order, once each ("" = none)."""
    return "".join(dict.fromkeys(c for c in str(path) if not PLAIN_PATH.fullmatch(c)))


@dataclass(frozen=True)
class Paths:
    """A stack's runtime dir. Its three parts have three owners (started as root):

    - the runtime dir itself (the starter's; 0711, so nginx's workers reach the socket): the
      rendered files, the process table, nginx's pidfile, the drain marker, the manager's state;
    - ``state/`` (the starter's, 0700): records only the starter reads (``start.json``);
    - ``private/`` (the app's user, 0700): what uWSGI writes after dropping privileges (its
      pidfile, master FIFO, stats socket, ready marker). Root believes nothing in it without
      checking (contracts.py): a compromised app owns this directory.
    """

    runtime: Path

    @property
    def private(self) -> Path:
        return self.runtime / "private"

    @property
    def state(self) -> Path:
        return self.runtime / "state"

    nginx_conf = property(lambda self: self.runtime / "nginx.conf")
    uwsgi_ini = property(lambda self: self.runtime / "uwsgi.ini")
    processes = property(lambda self: self.runtime / "processes.json")
    # For the image's HEALTHCHECK (standalone/healthcheck.py), which reads only this file.
    health = property(lambda self: self.runtime / "health.json")
    socket = property(lambda self: self.runtime / "uwsgi.sock")
    nginx_pid = property(lambda self: self.runtime / "nginx.pid")
    nginx_temp = property(lambda self: self.runtime / "nginx-temp")
    # What uWSGI loads by path (wsgi-file): see templates/wsgistack_app.py.j2.
    shim = property(lambda self: self.runtime / "wsgistack_app.py")
    # While this file exists, the readiness path answers 503 "draining" (balancers stop
    # sending new requests before the node stops or reloads).
    drain = property(lambda self: self.runtime / "drain")
    guard = property(lambda self: self.runtime / "wsgistack_guard.py")
    # The same, made by the status page (the ops listener runs as the app's user, who may make
    # its own readiness fail anyway): `status` shows either, `undrain` removes both.
    app_drain = property(lambda self: self.private / "drain")
    stats = property(lambda self: self.private / "stats.sock")
    uwsgi_pid = property(lambda self: self.private / "uwsgi.pid")
    fifo = property(lambda self: self.private / "uwsgi.fifo")
    # Created by uWSGI once its first worker accepts requests, i.e. once the app is loaded.
    uwsgi_ready = property(lambda self: self.private / "uwsgi.ready")
    # server.app_server = "granian": granian runs as the app's user, so what it writes is in
    # private/: its unix socket (nginx's workers run as that user too), its pidfile, the marker
    # the shim creates once a worker has loaded the app, and each worker's status for `status`.
    granian_socket = property(lambda self: self.private / "granian.sock")
    # ...unless granian runs as root (user = "root"): then beside nginx.conf, as uWSGI's is, its
    # group nginx's workers' (root's private/ is no one else's to enter).
    granian_root_socket = property(lambda self: self.runtime / "granian.sock")
    granian_pid = property(lambda self: self.private / "granian.pid")
    app_ready = property(lambda self: self.private / "app.ready")
    workers_dir = property(lambda self: self.private / "workers")
    # granian imports the app's module by name from a directory on sys.path, which the app's
    # user must be able to list: the shim gets a directory of its own (root's, 0755).
    granian_shim = property(lambda self: self.runtime / "granian" / "wsgistack_app.py")
    # What `reload` keeps: the start's resolved settings and interpreter (contracts.StartRecord).
    start_record = property(lambda self: self.state / "start.json")
    # The process manager's copy of its output, for `wsgistack logs` (contracts.LogFile),
    # and the older half once it rotated (contracts.rotated).
    log = property(lambda self: self.state / "stack.log")
    # TLS: the DH group for the DHE suites; for acme, the HTTPS config nginx switches to once
    # the first certificate is there, the renewer's settings, and the HTTP-01 webroot.
    dhparam = property(lambda self: self.runtime / "ffdhe2048.pem")
    nginx_https_conf = property(lambda self: self.runtime / "nginx-https.conf")
    renewer_conf = property(lambda self: self.runtime / "tls-renewer.json")
    acme_webroot = property(lambda self: self.runtime / "acme-webroot")
    # The process manager's live view (pids, restarts), for `status` and the ops listener.
    manager_state = property(lambda self: self.runtime / "manager.json")
    # The ops listener's settings.
    ops_conf = property(lambda self: self.runtime / "ops.json")

    @property
    def transient(self) -> tuple[Path, ...]:
        """What a run leaves behind and the next one must not find: cleared before a start,
        removed by the process manager after a stop."""
        return (self.socket, self.nginx_pid, self.uwsgi_pid, self.fifo, self.stats, self.uwsgi_ready, self.drain, self.app_drain,
                self.manager_state)

    @property
    def granian_transient(self) -> tuple[Path, ...]:
        """The same for granian's files (server.app_server = "granian")."""
        return (self.granian_socket, self.granian_root_socket, self.granian_pid, self.app_ready)


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where certificates and the ACME account live unless tls.data_dir says otherwise."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wsgistack"


def default_runtime_dir(project: Path, euid: int, kind: str = "") -> Path:
    """The runtime dir a stack (kind "") or a balancer ("balancer") of this project gets by
    default: short and outside the project (unix socket paths are limited to 107 bytes, and a
    project on a shared or read-only mount must not receive sockets), one per user."""
    digest = hashlib.sha1(str(project).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"wsgistack-{kind + '-' if kind else ''}{euid}-{digest}"


def runtime_dir(configured: Path | None, project: Path, euid: int, kind: str = "") -> Path:
    """The runtime_dir setting resolved: its default, or relative to the project."""
    if configured is None:
        return default_runtime_dir(project, euid, kind)
    return configured if configured.is_absolute() else project / configured


def runtime_paths(loaded: LoadedConfig, euid: int) -> Paths:
    """Where the stack's files live: from the config alone (status and reload need no app)."""
    return Paths(runtime_dir(loaded.config.runtime_dir, loaded.project_dir, euid))


@dataclass(frozen=True)
class BalancerPaths:
    runtime: Path

    config = property(lambda self: self.runtime / "haproxy.cfg")
    socket = property(lambda self: self.runtime / "haproxy.sock")  # the runtime API (admin level)
    processes = property(lambda self: self.runtime / "processes.json")
    # The process manager's live view and the ops listener's settings (ops.port beside HAProxy).
    manager_state = property(lambda self: self.runtime / "manager.json")
    ops_conf = property(lambda self: self.runtime / "ops.json")

    @property
    def transient(self) -> tuple[Path, ...]:
        return (self.socket, self.manager_state)


def balancer_paths(loaded: LoadedConfig, euid: int) -> BalancerPaths:
    return BalancerPaths(runtime_dir(loaded.config.runtime_dir, loaded.project_dir, euid, "balancer"))


# --- inside wsgistack's image ----------------------------------------------------------------

APP_DIR = PurePosixPath("/app")  # the project
IMAGE_UID = 10001  # the user the image runs as (group 0)
IMAGE_PORT = 8080
# Both roles of a split deployment mount a volume here for the uWSGI unix socket; the image
# creates it owned by the app user, mode 2770, and a fresh named volume copies that.
SHARED_DIR = PurePosixPath("/run/wsgistack")
# The app's data home in the image: a volume, writable by the app, named by $DATA_DIR.
DATA_DIR = PurePosixPath("/data")
# tls.data_dir in the image: the dev CA, the ACME account key and certificates (a volume).
TLS_DIR = PurePosixPath("/data/tls")
TLS_PORT = 8443
# The image's runtime dir (Dockerfile.j2 sets WSGISTACK_RUNTIME_DIR to it).
IMAGE_RUNTIME_DIR = PurePosixPath("/tmp/wsgistack")
# The balancer's image (Dockerfile.balancer.j2): no project, only settings; a wsgistack.toml
# with a [balancer] table may be mounted here.
BALANCER_PROJECT_DIR = PurePosixPath("/etc/wsgistack")


# --- in the project (the image's build context) ----------------------------------------------

WHEELS_DIR = ".wsgistack/wheels"  # wsgistack's own wheel, vendored for the image
REQUIREMENTS_DIR = ".wsgistack/requirements"  # copies of the requirement files (and their includes)
BUILD_RECORD = Path(".wsgistack") / "build.json"  # what the image's build step did (relative to the project)
COLLECTED_STAMP = ".wsgistack-collected"  # in STATIC_ROOT: the build's stamp
# `wsgistack compose --fleet`: the build contexts of the balancer's image and (--offline) MariaDB's.
BALANCER_CONTEXT = ".wsgistack/balancer"
MARIADB_CONTEXT = ".wsgistack/mariadb"
IMAGES_RECORD = ".wsgistack/images.json"  # per tag: the image and its build stages, for the next build's cleanup
