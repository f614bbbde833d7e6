"""Rebuild time of an image after a one-line code change (a measurement: tests only check that
every layer before the code came from the cache, tests/docker/test_image.py).

    flock /tmp/wsgistack-heavy.lock .venv/bin/python benchmarks/image_rebuild.py examples/django_demo demo/ops_views.py 3

Copies PROJECT to a temp dir, builds it once (warming the cache), then N times appends a
comment line to FILE and rebuilds; prints each rebuild's seconds and the median. Removes its
images and the copy. Under the heavy lock: other builds on a 2-core machine double the time.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

WSGISTACK = str(Path(sys.executable).parent / "wsgistack")


def build(project: Path, tag: str) -> float:
    started = time.monotonic()
    proc = subprocess.run([WSGISTACK, "build", str(project), "-t", tag, "--plain"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"build failed:\n{proc.stderr[-4000:]}")
    return time.monotonic() - started


def main() -> None:
    source, changed, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    tag = f"wst-rebuild-{uuid.uuid4().hex[:8]}:bench"
    with tempfile.TemporaryDirectory(prefix="wst-rebuild-") as tmp:
        project = Path(tmp) / source.name
        shutil.copytree(source, project, ignore=shutil.ignore_patterns("__pycache__", ".venv", "var", ".wsgistack"))
        try:
            first = build(project, tag)
            times = []
            for i in range(runs):
                path = project / changed
                path.write_text(path.read_text() + f"\n# rebuild {i}\n")
                times.append(build(project, tag))
        finally:
            subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
    print(f"{source}: first build {first:.1f} s; rebuild after a one-line change: median {statistics.median(times):.1f} s "
          f"over {runs} ({', '.join(f'{t:.1f}' for t in times)})")


if __name__ == "__main__":
    main()
