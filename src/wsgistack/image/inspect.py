"""What a built image knows of its app: the build record its build step wrote
(/app/.wsgistack/build.json: what the image's own Python found, where the host's cannot
import the app), read from the image with `docker run --rm --entrypoint cat`."""

from __future__ import annotations

import json
import subprocess

from wsgistack.contracts import BuildRecord
from wsgistack.layout import APP_DIR, BUILD_RECORD
from wsgistack.machine import find_tool


def build_record(image: str) -> BuildRecord | None:
    """The record of ``image`` when the engine has it locally; None otherwise (no docker, no
    such image, an image wsgistack did not build, a record of another version)."""
    docker = find_tool("docker")
    if docker is None or not image:
        return None
    try:
        proc = subprocess.run([docker, "run", "--rm", "--pull", "never", "--network", "none", "--entrypoint", "cat", image,
                               str(APP_DIR / BUILD_RECORD)], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        return BuildRecord.from_json(json.loads(proc.stdout))
    except (ValueError, json.JSONDecodeError):
        return None
