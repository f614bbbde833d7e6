"""``docker build`` of the generated Dockerfile with a progress display, and failures
mapped to errors with ids and hints (``docker.E0xx``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from wsgistack import ids
from wsgistack.errors import MissingBinaryError, WsgistackError
from wsgistack.contracts import ImagesRecord
from wsgistack.layout import IMAGES_RECORD
from wsgistack.machine import find_tool

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
FROM_RE = re.compile(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
LAYER_RE = re.compile(r"^ ---> ([0-9a-f]{12})$")
TAIL_LINES = 40


@dataclass(frozen=True)
class BuildResult:
    tag: str
    seconds: float
    size: int | None  # bytes, from `docker image inspect`
    cached_steps: int
    steps: int
    stages: tuple[str, ...] = ()  # image ids of the named build stages (builder, code, system): the layer cache
    removed: tuple[str, ...] = ()  # the previous build's image and stages, removed after this one succeeded


def docker_binary() -> str:
    docker = find_tool("docker")
    if docker is None:
        raise MissingBinaryError(
            ids.DOCKER_E012,
            "docker is not installed (or not on PATH)",
            "install Docker (https://docs.docker.com/engine/install/) or Debian's docker.io; "
            "`wsgistack dockerfile` writes the Dockerfile without it",
        )
    return docker


# What a failed compile of a package from source prints, and the Debian packages that fix it:
# (signature in pip's output, --build-package..., --package... for the runtime library).
MISSING_BUILD_TOOLS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("pg_config executable not found", ("gcc", "python3-dev", "libpq-dev"), ("libpq5",)),
    ("Python.h: No such file", ("python3-dev",), ()),
    ("command 'gcc' failed: No such file", ("gcc", "python3-dev"), ()),
    ("unable to execute 'gcc'", ("gcc", "python3-dev"), ()),
    ("gcc: not found", ("gcc", "python3-dev"), ()),
    ("No CMAKE_C_COMPILER could be found", ("gcc", "python3-dev"), ()),
    ("mysql_config not found", ("gcc", "python3-dev", "pkg-config", "default-libmysqlclient-dev"), ("libmariadb3",)),
    ("ffi.h: No such file", ("gcc", "python3-dev", "libffi-dev"), ()),
    ("libxml/xmlversion.h: No such file", ("gcc", "python3-dev", "libxml2-dev", "libxslt1-dev"), ("libxml2", "libxslt1.1")),
    ("can't find Rust compiler", ("cargo",), ()),
)
# Always needed to compile a C extension: a compiler and Python's own headers.
COMPILE_BASICS = ("gcc", "python3-dev")


def _build_hint(seen: set[str]) -> str:
    """E006's hint: the Debian packages that the signatures pip printed call for (a C
    extension always needs gcc and python3-dev), as flags and as wsgistack.toml settings."""
    build: list[str] = []
    runtime: list[str] = []
    for signature, needs, libs in MISSING_BUILD_TOOLS:
        if signature in seen:
            build += needs
            runtime += libs
    if not build:  # nothing recognised: the general form, with psycopg's (the usual one) as the example
        build, runtime = [*COMPILE_BASICS, "libpq-dev"], ["libpq5"]
        lead = ("read pip's message above; a package that compiles C code needs a compiler, Python's headers and the "
                "library's own headers at build time, and the library at run time, e.g. for psycopg[c]: ")
    else:
        build = [*dict.fromkeys([*COMPILE_BASICS, *build])] if "cargo" not in build else [*dict.fromkeys(build)]
        lead = "pip could not compile a package from source (see above); give the build what it needs: "
    flags = " ".join([*(f"--build-package {p}" for p in dict.fromkeys(build)), *(f"--package {p}" for p in dict.fromkeys(runtime))])
    toml = f"build_packages = {json.dumps(list(dict.fromkeys(build)))}" + (
        f", packages = {json.dumps(list(dict.fromkeys(runtime)))}" if runtime else "")
    return (f"{lead}{flags}; keep them for every rebuild in wsgistack.toml: [image] {toml} "
            "(or use a package's binary wheel, e.g. psycopg[binary])")


def _failure(tail: list[str], returncode: int, step: str = "", seen: set[str] | None = None) -> WsgistackError:
    """The error for a failed build: ``step`` is the instruction that failed (the last step
    line of the whole output: pip may print hundreds of lines after it), ``seen`` the
    signatures of missing build tools found anywhere in the output."""
    text = "\n".join(tail)
    step = step or next((m.group(3) for line in reversed(tail) if (m := STEP_RE.match(line))), "")
    details = text[-6000:]
    if "Cannot connect to the Docker daemon" in text or "permission denied while trying to connect" in text:
        return WsgistackError(
            ids.DOCKER_E004, "the Docker engine is not reachable", "start it (systemctl start docker) and check that you "
            "may use it (member of the docker group), then retry", details=details)
    if "pull access denied" in text or "manifest unknown" in text or "not found: manifest" in text or (
        "error pulling image" in text.lower()
    ):
        return WsgistackError(
            ids.DOCKER_E005, "the base image could not be pulled", "check --base (a Debian-based image with apt-get, "
            "e.g. debian:trixie-slim) and that the registry is reachable, or `docker pull` it first", details=details)
    if "requirements.txt" in step or "-r /tmp/requirements" in step or "/tmp/project" in step:
        return WsgistackError(
            ids.DOCKER_E006, "installing the app's requirements failed in the image", _build_hint(seen or set()),
            details=details)
    if "apt-get" in step:
        return WsgistackError(
            ids.DOCKER_E007, "installing Debian packages failed in the image", "check the package names (--package, "
            "--build-package) and that the build can reach the Debian mirror (--network host)", details=details)
    if step.startswith(("COPY", "ADD")):
        return WsgistackError(
            ids.DOCKER_E008, f"copying files into the image failed ({step})", "a file missing from the build context "
            "(excluded by .dockerignore?) or unreadable (a 0600 file owned by another user): check the message above",
            details=details)
    return WsgistackError(
        ids.DOCKER_E009, f"docker build failed (exit code {returncode})" + (f" at: {step}" if step else ""),
        "read the build output above; rerun with --plain to see all of it", details=details)




def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stdout is not None
    for line in proc.stdout:
        yield line.rstrip("\n")


def docker_build(
    project: Path,
    tag: str,
    dockerfile: str = "Dockerfile",
    network: str = "host",
    no_cache: bool = False,
    on_line: Callable[[str], None] | None = None,
    on_step: Callable[[int, int, str], None] | None = None,
) -> BuildResult:
    """Run the build; ``on_step(n, total, instruction)`` for progress, ``on_line`` for every
    output line. Raises WsgistackError with the last lines of output on failure."""
    docker = docker_binary()
    # --force-rm: the container of a failing step goes too (the default keeps it, stopped).
    argv = [docker, "build", "--force-rm", "-f", str(project / dockerfile), "-t", tag]
    if network:
        argv += ["--network", network]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(project))
    # The legacy builder prints "Step n/m" lines we can follow; BuildKit would need buildx.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    steps = cached = 0
    step = ""  # the instruction running now: a failure is that one's, however much it printed
    seen: set[str] = set()  # signatures of missing build tools (MISSING_BUILD_TOOLS) printed so far
    stage_ids: dict[str, str] = {}
    stage: str | None = None
    previous = _image_id(docker, tag)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    try:
        for line in _lines(proc):
            tail.append(line)
            if on_line:
                on_line(line)
            match = STEP_RE.match(line)
            if match:
                step = match.group(3)
                if (from_ := FROM_RE.match(match.group(3))) is not None:
                    stage = from_.group(1)
                steps = int(match.group(2))
                if on_step:
                    on_step(int(match.group(1)), steps, match.group(3))
            elif step and any(sig in line for sig, _b, _r in MISSING_BUILD_TOOLS):
                seen.update(sig for sig, _b, _r in MISSING_BUILD_TOOLS if sig in line)
            elif line.strip() == "---> Using cache":
                cached += 1
            elif (layer := LAYER_RE.match(line)) is not None and stage is not None:
                stage_ids[stage] = layer.group(1)
        returncode = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    if returncode != 0:
        raise _failure(list(tail), returncode, step, seen)
    size = None
    inspect = subprocess.run([docker, "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True)
    if inspect.returncode == 0 and inspect.stdout.strip().isdigit():
        size = int(inspect.stdout.strip())
    stages = tuple(dict.fromkeys(stage_ids.values()))
    removed = _remove_previous(docker, project, tag, previous, stages)
    return BuildResult(tag=tag, seconds=time.monotonic() - started, size=size, cached_steps=cached, steps=steps,
                       stages=stages, removed=removed)


def _image_id(docker: str, ref: str) -> str | None:
    out = subprocess.run([docker, "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True)
    return out.stdout.strip().removeprefix("sha256:")[:12] if out.returncode == 0 else None


def _remove_previous(docker: str, project: Path, tag: str, previous: str | None, stages: tuple[str, ...]) -> tuple[str, ...]:
    """A rebuild leaves the previous image and its build stages untagged (hundreds of MB each
    time): remove them, now that the new ones exist. This build's stages stay (untagged):
    they are the layer cache of the next build. An image still used by a container, or
    tagged elsewhere, is left alone (``docker image rm`` without force refuses)."""
    record_path = project / IMAGES_RECORD
    try:
        record = dict(ImagesRecord.read(record_path).tags)  # the builder's own file
    except (OSError, WsgistackError):
        record = {}
    current = _image_id(docker, tag)
    old = record.get(tag, {})
    candidates = [previous, old.get("image"), *old.get("stages", [])]
    keep = {current, *stages}
    removed = []
    for image in dict.fromkeys(c for c in candidates if c and c not in keep):
        out = subprocess.run([docker, "image", "rm", image], capture_output=True, text=True)
        if out.returncode == 0:
            removed.append(image)
    record[tag] = {"image": current, "stages": list(stages)}
    try:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        ImagesRecord(tags=record).write(record_path)
    except OSError:
        pass  # a read-only checkout: the next build cleans up less, nothing breaks
    return tuple(removed)


def engine_has_bridge() -> bool | None:
    """Whether the local Docker engine has a bridge network (compose networks work), None
    when there is no engine to ask (no docker, or it does not answer)."""
    docker = find_tool("docker")
    if docker is None:
        return None
    try:
        out = subprocess.run([docker, "network", "ls", "--filter", "driver=bridge", "--format", "{{.Name}}"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return bool(out.stdout.split())
