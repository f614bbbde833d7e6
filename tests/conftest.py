"""Shared test helpers: free loopback ports, a running `wsgistack run`, log dumps on failure."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def worker_user() -> str | None:
    """The unprivileged user wsgistack, started as root, runs uWSGI and nginx's workers as."""
    import pwd

    for name in ("www-data", "nginx", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    return None


@functools.cache
def deployed_python() -> str:
    """The interpreter `wsgistack run` runs on in these tests.

    Started as root, wsgistack runs uWSGI as an unprivileged user, which must be able to read
    the interpreter, as in any real deployment (run.E004 refuses otherwise). A Python under
    /root (pyenv installed as root, as on this project's dev and CI machines) is not readable
    by anyone else; stacks then run on the system Python of the same minor version, which
    sees this venv's packages (and the editable wsgistack) through a .pth file: the same
    code and packages, readable by the unprivileged user. Nothing is chmodded."""
    from wsgistack.app.access import unreachable_ancestor

    user = worker_user()
    paths = sysconfig.get_paths()
    if os.geteuid() != 0 or user is None or not any(
        unreachable_ancestor(Path(paths[key]) / "__init__.py", user) for key in ("stdlib", "purelib")
    ):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = Path(f"/usr/bin/python{version}")
    if not system.exists():
        return sys.executable  # the stacks will fail with run.E004, which says why
    digest = hashlib.sha1(f"{sys.prefix}:{system}".encode()).hexdigest()[:8]
    target = Path(tempfile.gettempdir()) / f"wst-python-{digest}"
    if not (target / "bin" / "uwsgi").exists():
        build = Path(tempfile.mkdtemp(prefix="wst-python-build-"))
        subprocess.run([str(system), "-m", "venv", "--without-pip", str(build)], check=True)
        site = build / "lib" / f"python{version}" / "site-packages"
        (site / "wsgistack_tests.pth").write_text(f"import site; site.addsitedir({paths['purelib']!r})\n")
        script = (Path(sys.executable).parent / "uwsgi").read_text().split("\n", 1)[1]
        (build / "bin" / "uwsgi").write_text(f"#!{target}/bin/python\n{script}")
        build.chmod(0o755)  # mkdtemp made it 0700; the rest follows the umask
        (build / "bin" / "uwsgi").chmod(0o755)
        try:
            build.rename(target)  # the venv's own symlinks are relative to its bin/, so it can move
        except OSError:  # another test session built it meanwhile
            shutil.rmtree(build, ignore_errors=True)
    return str(target / "bin" / "python")


# Every test that runs the CLI uses the interpreter a deployment could use (see above).
WSGISTACK = [deployed_python(), "-m", "wsgistack"]
FIXTURES = REPO / "tests" / "fixtures"


@functools.cache
def app_venv(requirements: Path | None) -> Path:
    """An app's own virtualenv, apart from wsgistack's: Debian's python3 (readable by the user
    uWSGI drops to), the project's requirements and pyuwsgi, nothing of wsgistack (None: an
    empty venv, without even pip). Built once and kept under /tmp, keyed by the requirements'
    text; pip's cache makes a rebuild quick. Built in place (a venv's scripts name their
    interpreter by path), under a lock, and marked complete last."""
    import fcntl

    text = requirements.read_text() if requirements else "(empty)"
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    target = Path(tempfile.gettempdir()) / f"wst-appenv-{digest}"
    done = target / ".wst-complete"
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        if requirements is None:
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(target)], check=True)
        else:
            subprocess.run(["/usr/bin/python3", "-m", "venv", str(target)], check=True)
            pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            proc = subprocess.run([*pip, "-r", str(requirements), "pyuwsgi>=2.0.28"], capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.fail(f"building the app venv for {requirements} failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
        target.chmod(0o755)
        done.touch()
    return target


def app_writable(path: Path) -> Path:
    """Give a data directory to the user the app runs as (when the tests run as root, uWSGI
    and the prestart steps run as the nginx worker user), as a deployment would."""
    user = worker_user()
    if os.geteuid() == 0 and user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without settings that would leak into the config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGISTACK_")}
    # VIRTUAL_ENV too: an activated venv in the caller's shell would choose the app's interpreter.
    for name in ("PORT", "WEB_CONCURRENCY", "UWSGI_PROCESSES", "UWSGI_URI", "NGINX_SERVER_NAME", "DJANGO_SETTINGS_MODULE",
                 "VIRTUAL_ENV"):
        env.pop(name, None)
    env.update(extra)
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def http(url: str, *, host: str | None = None, headers: dict[str, str] | None = None, data: bytes | None = None,
         method: str | None = None, timeout: float = 10) -> Response:
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


class InBackground:
    """One request on a thread of its own, started at once (a slow request a reload, a stop or
    a drain must let finish): :meth:`outcome` waits for it and gives its status, or the error's
    text for a request that got no response (None: still running after ``wait``)."""

    def __init__(self, url: str, *, method: str | None = None, data: bytes | None = None, timeout: float = 60) -> None:
        self._outcome: int | str | None = None
        self._thread = threading.Thread(target=self._run, args=(url, method, data, timeout), daemon=True)
        self._thread.start()

    def _run(self, url: str, method: str | None, data: bytes | None, timeout: float) -> None:
        try:
            self._outcome = http(url, method=method, data=data, timeout=timeout).status
        except OSError as exc:
            self._outcome = f"{type(exc).__name__}: {exc}"

    def outcome(self, wait: float = 60) -> int | str | None:
        self._thread.join(wait)
        return self._outcome


def load(url: str, count: int, *, clients: int = 16, method: str = "GET", data: bytes | None = None,
         timeout: float = 30, deadline: float = 120, url_for: Callable[[int], str] | None = None) -> list[int | str]:
    """Bounded concurrent load: ``count`` requests from ``clients`` threads, each on a fresh
    connection (to ``url``, or ``url_for(i)`` for the i-th); the status of each, or the
    error's text for a request that got no response."""
    from concurrent.futures import ThreadPoolExecutor, wait

    def one(i: int) -> int | str:
        try:
            return http(url_for(i) if url_for else url, method=method, data=data, timeout=timeout).status
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
        done, pending = wait(futures, timeout=deadline)
        for f in pending:
            f.cancel()
    assert not pending, f"{len(pending)} of {count} requests still running after {deadline}s"
    return [f.result() for f in futures]


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    url: str
    runtime_dir: Path
    log_path: Path
    port: int
    started_at: float = 0.0
    ready_after: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_with(self, text: str, timeout: float = 10) -> str:
        """The log once it contains ``text`` (or after ``timeout``): the process manager
        relays its children's output in batches, up to 0.1 s after they write it."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return log

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


# The app servers wsgistack runs behind nginx (server.app_server): the guarantees each test
# checks hold for both, so the tests that check them run against both.
SERVERS = ("uwsgi", "granian")


def server_env(server: str, **extra: str) -> dict[str, str]:
    """clean_env() for a stack whose app server is ``server``."""
    return clean_env(**({"WSGISTACK_SERVER__APP_SERVER": server} if server != "uwsgi" else {}), **extra)


def app_server_pid(runtime_dir: Path) -> int:
    """The app server's main process (uWSGI's master, granian's main process), from its pidfile."""
    for name in ("uwsgi.pid", "granian.pid"):
        path = runtime_dir / "private" / name
        if path.exists():
            return int(path.read_text().split()[0])
    raise AssertionError(f"no app server pidfile in {runtime_dir / 'private'}")


def process_age(pid: int) -> float:
    """Seconds since ``pid`` started (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return float(Path("/proc/uptime").read_text().split()[0]) - started / ticks


def settle_workers(runtime_dir: Path, age: float = 6.5, timeout: float = 30) -> None:
    """granian exits when a worker it respawned dies again within 5.5 s (its crash-loop rule,
    docs/benchmarks.md): before a test kills a worker, wait until every worker is older than
    that. uWSGI has no such rule; its workers are waited for all the same (it costs nothing)."""
    master = app_server_pid(runtime_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ages = [process_age(pid) for pid in descendants(master)]
        except OSError:
            ages = []
        if ages and min(ages) > age:
            return
        time.sleep(0.2)
    raise AssertionError(f"the workers of {master} did not settle within {timeout}s")


def wait_in_flight(runtime_dir: Path, count: int = 1, timeout: float = 15) -> None:
    """Wait until ``count`` workers are busy with a request (uWSGI's own stats, which
    wsgistack's stacks keep on a private socket; granian's workers as wsgistack's shim reports
    them), instead of sleeping and hoping the request got there before the signal a test sends
    next."""
    from wsgistack.ops import control as ops
    from wsgistack.layout import Paths

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = ops.status(Paths(runtime_dir)).stats or {}
        # A granian worker may run (uwsgi.threads > 1) or hold several: count its requests.
        if sum(w.get("in_flight", 1 if w.get("status") == "busy" else 0) for w in stats.get("workers", [])) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"no request in flight in {runtime_dir} after {timeout}s")


def wait_for_file(path: Path, timeout: float = 15) -> None:
    """Wait for a marker file an app writes when a request has started."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s: the request never started")
        time.sleep(0.02)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"wsgistack exited early with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def termdrain_library() -> Path:
    """wsgistack's term-drain library (image/termdrain.c), compiled with gcc as the Heroku
    Dockerfile does, into a directory every user can read. `make system-deps` installs gcc."""
    source = REPO / "src" / "wsgistack" / "image" / "termdrain.c"
    out = Path(tempfile.gettempdir()) / f"wsgistack-test-termdrain-{os.getpid()}" / "wsgistack-termdrain.so"
    if not out.exists():
        if not shutil.which("gcc"):
            pytest.fail("gcc is missing (make system-deps installs it): the term-drain library cannot be built")
        out.parent.mkdir(mode=0o755, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", str(out), str(source), "-ldl"],
                       check=True, capture_output=True, text=True)
    return out


def descendants(pid: int) -> list[int]:
    """pid's children, grandchildren, ... (from /proc), e.g. nginx's and uWSGI's workers."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier]
        found.extend(kids)
        frontier = kids
    return found


def shared_dir(tmp_path: Path, name: str) -> Path:
    """A directory nginx workers can reach when the tests run as root (they switch to an
    unprivileged user, and pytest's tmp_path sits under a 0700 directory)."""
    import tempfile

    link = tmp_path / name
    if link.exists():
        return link.resolve()
    path = Path(tempfile.mkdtemp(prefix=f"wst-{name}-", dir="/tmp"))
    path.chmod(0o755)
    link.symlink_to(path)
    return path


def start_stack(tmp_path: Path, project: Path | str, *args: str, env: dict[str, str] | None = None,
                ready_path: str = "/healthz", wait: bool = True, port_from_env: bool = False,
                cwd: Path | None = None) -> Stack:
    """Start `wsgistack run` on a free port: given as --port, or as PORT in its environment.
    ``project`` may be a WSGI target (`wsgistack run hello:application`), found from ``cwd``."""
    port = free_port()
    runtime = shared_dir(tmp_path, "rt")
    log_path = tmp_path / "wsgistack.log"
    env = dict(env or clean_env())
    if port_from_env:
        env["PORT"] = str(port)
    port_args = [] if port_from_env else ["--port", str(port)]
    cmd = [deployed_python(), "-m", "wsgistack", "run", str(project), *port_args, "--runtime-dir", str(runtime), *args]
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd or tmp_path)
    stack = Stack(proc=proc, url=f"http://127.0.0.1:{port}", runtime_dir=runtime, log_path=log_path, port=port,
                  started_at=started)
    if wait:
        try:
            wait_http(stack.url + ready_path, proc)
        except AssertionError:
            stack.stop(signal.SIGKILL)
            raise AssertionError(f"stack did not start:\n{stack.log()}") from None
        stack.ready_after = time.monotonic() - started
    return stack


@pytest.fixture
def stacks(request: pytest.FixtureRequest) -> Iterator[list[Stack]]:
    """Collects stacks a test starts; stops them and prints their logs if the test failed."""
    started: list[Stack] = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for stack in started:
        stack.stop()
        if failed:
            print(f"--- log of {stack.url} ---\n{stack.log()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
