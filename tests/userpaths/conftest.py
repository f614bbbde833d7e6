"""The paths users arrive by (issue 21): wsgistack built as a wheel and installed with pipx
into its own environment (never editable, never into the app's venv), once by root and once
by a normal user; fixture projects shaped like real ones (tests/fixtures), copied to a
directory of that user's, with their own virtualenv made the way their README says; then
`wsgistack run` on a free loopback port and `wsgistack build` + `docker run`, with no option
beyond what the fixture's README requires (a free port aside).

Nothing here imports wsgistack: the tests drive the installed command, as a user does.
PostgreSQL (Debian's, a private cluster under a temp dir, started by an unprivileged user)
and Redis (a child redis-server) are started by the session fixtures below; `make test`
installs them (Makefile TEST_DEPS).
"""

from __future__ import annotations

import glob
import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
# The PATH a login shell gives (Debian's /etc/profile and login.defs): root's has the sbin
# directories, a normal user's does not.
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/local/bin:/usr/bin:/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shared_tmp(prefix: str) -> Path:
    """A fresh directory under /tmp that every user can traverse and read (like /srv)."""
    path = Path(tempfile.mkdtemp(prefix=f"wst-up-{prefix}-", dir="/tmp"))
    path.chmod(0o755)
    return path


@dataclass
class Owner:
    """Who installs wsgistack and owns the project: root, or a normal user."""

    name: str
    uid: int
    gid: int
    home: Path
    groups: tuple[int, ...] = ()
    made: list[Path] = field(default_factory=list)
    install: Install | None = None  # wsgistack, once pipx installed it for this user

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def env(self, extra: Mapping[str, str] | None = None, path_first: str = "") -> dict[str, str]:
        """A login shell's environment: HOME, USER, PATH, a UTF-8 locale; the machine's pip
        settings (its certificate bundle, mirrors); nothing of the tests' own (no
        VIRTUAL_ENV, PYTHONPATH or WSGISTACK_*)."""
        base = ROOT_PATH if self.is_root else USER_PATH
        env = {
            "HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "LANG": "C.UTF-8",
            "PATH": f"{path_first}:{base}" if path_first else base,
            **{k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in ("TMPDIR", "SSL_CERT_FILE")},
        }
        env.update(extra or {})
        return env

    def _as(self) -> dict[str, object]:
        if os.geteuid() == self.uid:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def run(self, argv: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, cwd=cwd, env=dict(env if env is not None else self.env()), capture_output=True,
                              text=True, timeout=timeout, **self._as())  # type: ignore[call-overload]
        if check and proc.returncode != 0:
            pytest.fail(f"{self.name}: {' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                        f"{proc.stderr[-4000:]}", pytrace=False)
        return proc

    def popen(self, argv: list[str], cwd: Path, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
        out = open(log, "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, **self._as())  # type: ignore[call-overload]

    def own(self, path: Path) -> Path:
        """Give ``path`` (recursively) to this user, as if they had made it."""
        if os.geteuid() == 0 and not self.is_root:
            for dirpath, dirnames, filenames in os.walk(path):
                for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                    os.lchown(name, self.uid, self.gid)
        return path

    def workdir(self, prefix: str) -> Path:
        """A directory of this user's that others can read (a checkout in /srv or ~)."""
        path = self.own(_shared_tmp(f"{prefix}-{self.name}"))
        self.made.append(path)
        return path

    def checkout(self, fixture: str) -> Path:
        """A copy of tests/fixtures/<fixture>, as this user's clone of it."""
        dest = self.workdir(fixture) / fixture
        shutil.copytree(FIXTURES / fixture, dest, ignore=shutil.ignore_patterns(
            "__pycache__", ".venv", ".wsgistack", "Dockerfile.wsgistack", ".dockerignore", "staticfiles"))
        return self.own(dest)


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def root() -> Iterator[Owner]:
    if os.geteuid() != 0:
        pytest.skip("the root path needs the tests to run as root")
    owner = Owner("root", 0, 0, _private_home("root"))
    try:
        yield owner
    finally:
        for path in [*owner.made, owner.home]:
            shutil.rmtree(path, ignore_errors=True)


def _private_home(name: str) -> Path:
    """Root's home stand-in: 0700 like /root, so what pipx installs there is unreadable to
    the user the app runs as (www-data), as on a real machine."""
    return Path(tempfile.mkdtemp(prefix=f"wst-up-home-{name}-", dir="/tmp"))


@pytest.fixture(scope="session")
def normal_user() -> Iterator[Owner]:
    """A throwaway unprivileged account (in the docker group, as Docker's docs tell users to
    be), removed with its home at the end; or, when the tests do not run as root, the user
    running them."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        yield Owner(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), tuple(os.getgroups()))
        return
    name = f"wstu{secrets.token_hex(3)}"
    home = Path("/tmp") / f"wst-up-home-{name}"
    groups = ["-G", "docker"] if subprocess.run(["getent", "group", "docker"], capture_output=True).returncode == 0 else []
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", *groups, name],
                   check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    gids = tuple(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)
    owner = Owner(name, entry.pw_uid, entry.pw_gid, home, gids)
    try:
        yield owner
    finally:
        for path in owner.made:
            shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session", params=["root", "user"])
def owner(request: pytest.FixtureRequest) -> Owner:
    return request.getfixturevalue("root" if request.param == "root" else "normal_user")


@pytest.fixture(scope="session")
def wheel() -> Iterator[Path]:
    """wsgistack built as a wheel from this checkout (what `pip wheel .` or a release gives)."""
    out = _shared_tmp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"pip wheel of the checkout failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    (found,) = out.glob("wsgistack-*.whl")
    found.chmod(0o644)
    yield found
    shutil.rmtree(out, ignore_errors=True)


@dataclass
class Install:
    """wsgistack installed by ``owner`` with pipx: its command and its own environment."""

    owner: Owner
    bin_dir: Path
    venv: Path

    @property
    def wsgistack(self) -> str:
        return str(self.bin_dir / "wsgistack")

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return self.owner.env(extra, path_first=str(self.bin_dir))

    def run(self, *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 900,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.owner.run([self.wsgistack, *args], cwd=cwd, env=self.env(env), timeout=timeout, check=check)


def pipx_install(owner: Owner, wheel: Path) -> Install:
    """`pipx install WHEEL` as ``owner``, with pipx's home in theirs (PIPX_HOME, PIPX_BIN_DIR):
    wsgistack gets a virtualenv of its own, on Debian's python3. Once per user and session."""
    if owner.install is not None:
        return owner.install
    home = owner.home / ".local"
    env = owner.env({"PIPX_HOME": str(home / "pipx"), "PIPX_BIN_DIR": str(home / "bin"), "PIPX_MAN_DIR": str(home / "man")})
    owner.run([sys.executable, "-m", "pipx", "install", "--python", "/usr/bin/python3", str(wheel)], env=env, cwd=owner.home)
    install = Install(owner, home / "bin", home / "pipx" / "venvs" / "wsgistack")
    assert Path(install.wsgistack).exists(), f"pipx made no {install.wsgistack}"
    owner.install = install
    return install


@pytest.fixture(scope="session")
def installed(owner: Owner, wheel: Path) -> Install:
    return pipx_install(owner, wheel)


@pytest.fixture(scope="session")
def root_install(root: Owner, wheel: Path) -> Install:
    return pipx_install(root, wheel)


@pytest.fixture(scope="session")
def user_install(normal_user: Owner, wheel: Path) -> Install:
    return pipx_install(normal_user, wheel)


_PREPARED: dict[tuple[str, str], Path] = {}


def prepared(owner: Owner, fixture: str, *pip_args: str) -> Path:
    """The user's checkout of ``fixture`` with its venv (``pip install PIP_ARGS``): made once
    per user and session, shared by the tests that only run or read it."""
    key = (owner.name, fixture)
    if key not in _PREPARED:
        path = owner.checkout(fixture)
        app_venv(owner, path, *pip_args)
        _PREPARED[key] = path
    return _PREPARED[key]


def app_venv(owner: Owner, project: Path, *pip_args: str) -> Path:
    """The app's own virtualenv, made in the project as its README says:
    `python3 -m venv .venv && .venv/bin/pip install ARGS`."""
    owner.run(["/usr/bin/python3", "-m", "venv", ".venv"], cwd=project)
    owner.run([str(project / ".venv" / "bin" / "python"), "-m", "pip", "install", "-q", *pip_args], cwd=project, timeout=900)
    return project / ".venv"


# --- a running `wsgistack run` -----------------------------------------------------------------


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float
    first_status: int | None = None  # the status of the first answer wait_ready saw

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def exited(self) -> int | None:
        return self.proc.poll()

    def wait_ready(self, path: str = "/", timeout: float = 120) -> float:
        """Seconds from the start to the first answer of ``path`` (any status; kept in
        ``first_status``), or the failure with the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartFailed(self.proc.returncode, self.log())
            try:
                resp = http(self.url + path, timeout=5)
                self.first_status = resp.status
                return time.monotonic() - self.started
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.url}{path} did not answer within {timeout}s:\n{self.log()[-6000:]}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=timeout)


class StartFailed(AssertionError):
    def __init__(self, code: int, log: str) -> None:
        super().__init__(f"wsgistack run exited with code {code}:\n{log[-6000:]}")
        self.code = code
        self.output = log


@pytest.fixture
def runs(request: pytest.FixtureRequest) -> Iterator[list[Run]]:
    """Stops every `wsgistack run` a test started (by its pid); prints the logs on failure."""
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()
    rep = getattr(request.node, "rep_call", None)
    for run in started:
        if rep is not None and rep.failed:
            print(f"--- wsgistack run on {run.url} ---\n{run.log()[-8000:]}")
        run.log_path.unlink(missing_ok=True)


def start(runs: list[Run], install: Install, project: Path, *args: str, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, port_flag: str = "--port") -> Run:
    """`wsgistack run ARGS --port FREE` as the install's owner, from ``cwd`` (the project).
    ``port_flag="--bind"`` passes ``--bind 127.0.0.1:FREE`` instead (gunicorn's spelling)."""
    port = free_port()
    fd, name = tempfile.mkstemp(prefix="wst-up-run-", suffix=".log")
    os.close(fd)
    log = Path(name)
    argv = [install.wsgistack, "run", *args, port_flag, str(port) if port_flag == "--port" else f"127.0.0.1:{port}"]
    proc = install.owner.popen(argv, cwd=cwd or project, env=install.env(env), log=log)
    run = Run(proc, port, log, time.monotonic())
    runs.append(run)
    return run


# --- HTTP --------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def http(url: str, data: bytes | None = None, method: str | None = None, headers: Mapping[str, str] | None = None,
         timeout: float = 15) -> Response:
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def post_form(url: str, fields: Mapping[str, str]) -> Response:
    import urllib.parse

    return http(url, data=urllib.parse.urlencode(fields).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})


def post_multipart(url: str, fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes]]) -> Response:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return http(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def wait_for(predicate, timeout: float = 30, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """The first truthy value of ``predicate()`` within ``timeout`` seconds (else the last)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


# --- PostgreSQL and Redis, private to the session ------------------------------------------------


@dataclass
class Postgres:
    port: int
    owner: str
    psql: Path

    def create_database(self) -> str:
        """A new, empty database and a login role owning it; its DATABASE_URL."""
        name = f"product_{secrets.token_hex(4)}"
        password = secrets.token_hex(8)
        for sql in (f"CREATE ROLE {name} LOGIN PASSWORD '{password}'", f"CREATE DATABASE {name} OWNER {name}"):
            subprocess.run([str(self.psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                            "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True, capture_output=True, text=True)
        return f"postgres://{name}:{password}@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """Debian's PostgreSQL, a private cluster in a temp dir on a free loopback port, run by
    an unprivileged user (never the system cluster). `make test` installs postgresql."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed (make test installs Debian's postgresql)", pytrace=False)
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        pytest.fail(f"no {user!r} account to run PostgreSQL as", pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="wst-up-pg-", dir="/tmp"))
    os.chown(base, entry.pw_uid, entry.pw_gid)
    as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []} if os.geteuid() == 0 else {}
    env = {"PATH": f"{bindir}:{USER_PATH}", "LANG": "C.UTF-8", "HOME": str(base)}
    port = free_port()
    data = base / "data"
    subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, env=env, **as_user)  # type: ignore[call-overload]
    log = base / "postgres.log"
    proc = subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                           f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                          capture_output=True, text=True, env=env, **as_user)  # type: ignore[call-overload]
    if proc.returncode != 0:
        pytest.fail(f"PostgreSQL did not start:\n{proc.stdout}\n{proc.stderr}\n{log.read_text(errors='replace')}", pytrace=False)
    try:
        yield Postgres(port, user, bindir / "psql")
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, env=env,
                       **as_user)  # type: ignore[call-overload]
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Redis:
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def redis() -> Iterator[Redis]:
    """redis-server on a free loopback port, in the foreground as our child, stopped by pid."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        pytest.fail("redis-server is not installed (make test installs Debian's redis-server)", pytrace=False)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="wst-up-redis-", dir="/tmp"))
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("redis-server did not start", pytrace=False)
        time.sleep(0.1)
    try:
        yield Redis(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
