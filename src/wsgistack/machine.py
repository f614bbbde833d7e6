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

from wsgistack.config.model import Config
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


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx") if os.access(p, os.X_OK)),
        None,
    )


def find_haproxy() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )


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


def find_certbot() -> str | None:
    beside = Path(sys.executable).parent / "certbot"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("certbot")


def detect() -> Machine:
    somaxconn = _read("/proc/sys/net/core/somaxconn")
    euid = os.geteuid()
    return Machine(
        cpus=cpu_count(),
        memory_limit=memory_limit(),
        somaxconn=int(somaxconn) if somaxconn and somaxconn.isdigit() else 4096,
        euid=euid,
        nginx=find_nginx(),
        python=sys.executable,
        nginx_user=_nginx_worker_user() if euid == 0 else None,
        termdrain=find_termdrain(),
        certbot=find_certbot(),
        haproxy=find_haproxy(),
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
    directory): read once by :func:`host_facts` and passed to :func:`make_plan`, which stays
    pure. The defaults describe an unknown host (rendering for another machine): a user's
    group is named like the user (nginx's own default), paths are taken as written."""

    groups: Mapping[str, str] = field(default_factory=dict)  # user -> primary group name
    real_paths: Mapping[Path, Path] = field(default_factory=dict)  # a configured dir -> its resolved path
    data_dir: Path = Path("/var/lib/wsgistack")  # tls.data_dir's default


def host_facts(loaded: LoadedConfig, machine: Machine, env: Mapping[str, str] | None = None) -> HostFacts:
    """The side effects of planning, in one place: look up the run user's group, resolve the
    configured static directories, find the data directory's default."""
    config = loaded.config
    users = {u for u in (config.user, machine.nginx_user) if u and u != "root"}
    dirs = [m.dir if m.dir.is_absolute() else loaded.project_dir / m.dir for m in config.server.static]
    return HostFacts(
        groups={u: _primary_group(u) for u in users},
        real_paths={d: d.resolve() for d in dirs},
        data_dir=default_data_dir(env),
    )


def _primary_group(user: str) -> str:
    """The user's primary group name; falls back to the user name (nginx's own default)
    when the user is not known here, e.g. when rendering for another machine."""
    import grp
    import pwd

    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except (KeyError, OverflowError):
        return user


def app_user(config: Config, machine: Machine) -> str | None:
    """The unprivileged user the app's code runs as when we are root (None otherwise, or
    with the explicit user = "root"); make_plan derives the same value for uWSGI."""
    if not machine.is_root or config.user == "root":
        return None
    return config.user or machine.nginx_user
