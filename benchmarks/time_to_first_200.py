"""Time from `wsgistack run` to the first 200, N runs, median (issue 2/5 start-up target).

    .venv/bin/python benchmarks/time_to_first_200.py examples/hello /hello 5
    DEMO_DATA_DIR=/tmp/ttfb-data .venv/bin/python benchmarks/time_to_first_200.py examples/django_demo / 5

Started as root, the app runs as www-data: give it a data dir it owns (chown www-data).
Loopback only; each run is stopped with SIGTERM before the next starts.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def once(project: str, path: str) -> float:
    port = free_port()
    env = {**os.environ, "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "k" * 60)}
    wsgistack = str(Path(sys.executable).parent / "wsgistack")
    started = time.monotonic()
    proc = subprocess.Popen([wsgistack, "run", project, "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        while time.monotonic() - started < 60:
            if proc.poll() is not None:
                raise SystemExit(f"wsgistack exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.01)
        raise SystemExit("no 200 within 60 s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    project, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    times = [once(project, path) for _ in range(runs)]
    print(f"{project}{path}: median {statistics.median(times):.2f} s over {runs} runs "
          f"({', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
