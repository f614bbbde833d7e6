"""Restart to the first 200 of an image: a new container on the same data volume, N times
(a measurement, not a test; the target for tests/fixtures/product is <= 3 s, issue 21).

    flock /tmp/wsgistack-heavy.lock .venv/bin/python benchmarks/image_restart.py \\
        --project tests/fixtures/product --postgres --redis --runs 6 \\
        --build-flags "--build-package gcc --build-package python3-dev --build-package libpq-dev --package libpq5" \\
        --first-env WSGISTACK_APP__MIGRATE=true -e ALLOWED_HOSTS=127.0.0.1,localhost

Builds PROJECT (a temp copy) with `wsgistack build` (the wsgistack on PATH beside this
interpreter), starts a first container with a fresh named volume on /data (``--first-env``:
what only the first deploy gets, e.g. the migration), waits for its first 200, removes it,
then starts RUNS new containers on that volume one after the other, each timed from `docker
run` to its first 200 on PATH (polled every 50 ms), and prints them with the median.
``--postgres`` starts a private PostgreSQL (Debian's initdb/pg_ctl, a temp dir, a free
loopback port) and passes DATABASE_URL; ``--redis`` a redis-server child (REDIS_URL); a
SECRET_KEY is generated. Everything it made is removed at the end. Loopback, host networking.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

WSGISTACK = str(Path(sys.executable).parent / "wsgistack")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:3])} failed:\n{proc.stderr[-3000:]}")
    return proc


@contextmanager
def postgres() -> Iterator[str]:
    """A private cluster as the postgres user (or ourselves), yielding a DATABASE_URL."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(found[-1]).parent
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    entry = pwd.getpwnam(user)
    base = Path(tempfile.mkdtemp(prefix="wst-bench-pg-"))
    os.chown(base, entry.pw_uid, entry.pw_gid)
    as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []} if os.geteuid() == 0 else {}
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(base)}
    port = free_port()
    data = base / "data"
    subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"], check=True,
                   capture_output=True, env=env, **as_user)  # type: ignore[call-overload]
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True, env=env, **as_user)  # type: ignore[call-overload]
    try:
        subprocess.run([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-q", "-c",
                        "CREATE DATABASE bench"], check=True, capture_output=True, env=env)
        yield f"postgres://postgres@127.0.0.1:{port}/bench"
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True,
                       env=env, **as_user)  # type: ignore[call-overload]
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def redis() -> Iterator[str]:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="wst-bench-redis-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def first_200(url: str, name: str, timeout: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return time.monotonic() - started
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.05)
    logs = docker("logs", name, check=False)
    raise SystemExit(f"{url}: no 200 within {timeout:g}s:\n{(logs.stdout + logs.stderr)[-4000:]}")


def run(image: str, volume: str, env: dict[str, str], path: str) -> float:
    """Seconds from `docker run` to the first 200 of a new container on ``volume``."""
    name = f"wst-bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    argv = ["run", "-d", "--name", name, "--network", "host", "-v", f"{volume}:/data", "-e", f"PORT={port}",
            "-e", "WSGISTACK_SERVER__HOST=127.0.0.1"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    started = time.monotonic()
    docker(*argv, image)
    try:
        first_200(f"http://127.0.0.1:{port}{path}", name)
        return time.monotonic() - started
    finally:
        docker("rm", "-f", name, check=False)


def pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--image", help="measure this image as it is (no build)")
    parser.add_argument("--build-flags", default="")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--path", default="/")
    parser.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE for every container")
    parser.add_argument("--first-env", action="append", default=[], help="KEY=VALUE for the first container only")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    env = {"SECRET_KEY": secrets.token_urlsafe(50), **pairs(args.env)}
    volume = f"wst-bench-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="wst-bench-") as tmp:
        if args.postgres:
            env["DATABASE_URL"] = stack.enter_context(postgres())
        if args.redis:
            env["REDIS_URL"] = stack.enter_context(redis())
        image = args.image
        if image is None:
            image = f"wst-bench-{uuid.uuid4().hex[:8]}:bench"
            project = Path(tmp) / args.project.name
            shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("__pycache__", ".venv", ".wsgistack"))
            started = time.monotonic()
            proc = subprocess.run([WSGISTACK, "build", str(project), "-t", image, *shlex.split(args.build_flags)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"build failed:\n{proc.stderr[-4000:]}")
            stack.callback(docker, "image", "rm", "-f", image, check=False)
            size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout) / 1e6
            print(f"built {image} in {time.monotonic() - started:.1f} s, {size:.1f} MB")
        stack.callback(docker, "volume", "rm", "-f", volume, check=False)
        first = run(image, volume, {**env, **pairs(args.first_env)}, args.path)
        times = [run(image, volume, env, args.path) for _ in range(args.runs)]
    print(f"first start (fresh volume{', ' + ' '.join(args.first_env) if args.first_env else ''}) to first 200: {first:.2f} s")
    print(f"restart to first 200 (new container, same volume): median {statistics.median(times):.2f} s over {args.runs} "
          f"({', '.join(f'{t:.2f}' for t in times)}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
