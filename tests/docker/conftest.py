"""Docker fixtures: an engine (or a clear skip / failure), the Django demo image built once.

No engine: skipped with the reason on a laptop without Docker; a failure when CI=true,
since CI must start one (../shared/tools/docker-engine) and a silent skip would hide it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, WSGISTACK, free_port

pytestmark = pytest.mark.docker

# Planted in the build context; none may appear in any layer, the history or the config.
CANARIES = {
    ".env": "DJANGO_SECRET_KEY=CANARY_DOTENV_7a1f\n",
    ".env.production": "DATABASE_URL=postgres://u:CANARY_DOTENV_PROD_8b2e@db/x\n",
    "secrets.json": '{"key": "CANARY_SECRETS_JSON_9c3d"}\n',
    "demo/.env.local": "X=CANARY_NESTED_ENV_0d4c\n",
    # Credential *data* files are left out; code named like one (local_secret.py) is not.
    "demo/credentials.json": '{"token": "CANARY_CREDENTIALS_JSON_1e5b"}\n',
    "certs/server.key": "-----BEGIN PRIVATE KEY-----\nCANARY_SERVER_KEY_5c9d\n",
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nCANARY_ID_RSA_2f6a\n",
    ".git/config": "[remote]\n url = https://CANARY_GIT_3a7b@example.invalid/x\n",
    "venv/pyvenv.cfg": "home = CANARY_VENV_4b8c\n",
}


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if proc.returncode != 0:
        return "no Docker engine is running (" + (proc.stderr.strip().splitlines() or ["?"])[-1] + ")"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = _engine_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {problem}: CI must start one (../shared/tools/docker-engine)", pytrace=False)
    print(f"\nskipping the Docker tests: {problem}")
    pytest.skip(f"{problem} (start one with ../shared/tools/docker-engine)")


def docker(*args: str, check: bool = True, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout, **kw)  # type: ignore[call-overload]


def unique(prefix: str) -> str:
    return f"wst-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def demo_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the Django demo, with secret canaries planted in it."""
    ctx = tmp_path_factory.mktemp("docker") / "demo"
    shutil.copytree(EXAMPLES / "django_demo", ctx, ignore=shutil.ignore_patterns("__pycache__", "var"))
    for rel, text in CANARIES.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(text)
    return ctx


@pytest.fixture(scope="session")
def demo_image(docker_engine: None, demo_context: Path) -> Iterator[str]:
    """The demo image, built once per session with `wsgistack build`; removed afterwards."""
    tag = unique("demo") + ":test"
    started = time.monotonic()
    proc = subprocess.run([*WSGISTACK, "build", str(demo_context), "-t", tag, "--plain"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"wsgistack build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    print(f"\nbuilt {tag} in {time.monotonic() - started:.1f}s: {proc.stdout.strip()}")
    yield tag
    docker("image", "rm", "-f", tag, check=False)


@pytest.fixture(scope="session")
def heroku_image(docker_engine: None, demo_context: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo built from the Dockerfile `wsgistack heroku` writes (with the term-drain library)."""
    ctx = tmp_path_factory.mktemp("heroku") / "demo"
    shutil.copytree(demo_context, ctx, ignore=shutil.ignore_patterns("Dockerfile", ".dockerignore", "heroku.yml"))
    out = subprocess.run([*WSGISTACK, "heroku", str(ctx)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (ctx / "heroku.yml").is_file()
    tag = unique("heroku") + ":test"
    started = time.monotonic()
    proc = subprocess.run([*WSGISTACK, "build", str(ctx), "--heroku", "-t", tag, "--plain", "--force"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"heroku image build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    print(f"\nbuilt {tag} in {time.monotonic() - started:.1f}s")
    yield tag
    docker("image", "rm", "-f", tag, check=False)


class Container:
    """One `docker run -d` container on host networking; removed on close."""

    def __init__(self, image: str, env: dict[str, str] | None = None, name: str | None = None, args: tuple[str, ...] = ()) -> None:
        self.name = name or unique("c")
        self.port = free_port()
        self.env = {"PORT": str(self.port), "WSGISTACK_SERVER__HOST": "127.0.0.1", **(env or {})}
        argv = ["run", "-d", "--name", self.name, "--network", "host", *args]
        for k, v in self.env.items():
            argv += ["-e", f"{k}={v}"]
        docker(*argv, image)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> dict[str, object]:
        import json

        out = docker("inspect", "-f", "{{json .State}}", self.name, check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state and not state.get("Running"):
                return int(state.get("ExitCode", -1))  # type: ignore[arg-type]
            time.sleep(0.1)
        return None

    def wait_in_flight(self, timeout: float = 20) -> None:
        """Until a uWSGI worker in the container is busy with a request (`wsgistack status`
        inside it reads uWSGI's stats), instead of sleeping before a signal."""
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = docker("exec", self.name, "/opt/wsgistack/bin/wsgistack", "status", "--json", check=False)
            if out.returncode == 0:
                workers = (json.loads(out.stdout).get("stats") or {}).get("workers", [])
                if any(w.get("status") == "busy" for w in workers):
                    return
            time.sleep(0.1)
        pytest.fail(f"no request in flight in {self.name} after {timeout}s; logs:\n{self.logs()}", pytrace=False)

    def logs(self) -> str:
        out = docker("logs", self.name, check=False)
        return out.stdout + out.stderr

    def logs_with(self, text: str, timeout: float = 10) -> str:
        """The logs once they contain ``text`` (or after ``timeout``): the process manager
        relays its children's output in batches, up to 0.1 s after they write it (Stack.log_with)."""
        deadline = time.monotonic() + timeout
        while text not in (out := self.logs()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return out

    def close(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


def wait_http(url: str, timeout: float = 60, container: Container | None = None) -> float:
    """Seconds until ``url`` answers 200; fails with the container's logs otherwise."""
    import urllib.error
    import urllib.request

    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        if container is not None and container.state().get("Running") is False:
            break
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer 200 ({last}); logs:\n{container.logs() if container else ''}", pytrace=False)


@pytest.fixture
def run_container(demo_image: str) -> Iterator[type[Container]]:
    made: list[Container] = []

    class Tracked(Container):
        def __init__(self, image: str = demo_image, **kw: object) -> None:
            super().__init__(image, **kw)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for c in made:
        c.close()
