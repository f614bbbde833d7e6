"""The Makefile's install step on a fresh machine, where an apt started at boot may still hold
its lists lock: `make system-deps` waits for it instead of failing (found setting up a fresh
machine: "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1799")."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LISTS_LOCK = Path("/var/lib/apt/lists/lock")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("apt-get") is None or not LISTS_LOCK.exists(),
                    reason="needs root and apt-get (the install step runs apt-get only as root)")
def test_system_deps_waits_for_an_apt_that_holds_the_lists_lock() -> None:
    # nginx-light is installed already (the demo's own dependency): the install is a no-op; a
    # probe that never exists makes the step call apt-get.
    fd = os.open(LISTS_LOCK, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)  # what apt-get update takes (fcntl), held as another apt would
    released = threading.Event()

    def release() -> None:
        time.sleep(12)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)
        released.set()

    threading.Thread(target=release, daemon=True).start()
    try:
        done = subprocess.run(["make", "-C", str(ROOT), "system-deps", "DEMO_DEPS=/nonexistent/wsgistack-probe:nginx-light"],
                              capture_output=True, text=True, timeout=600)
    finally:
        released.wait(30)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "installing: nginx-light" in out
    assert "apt-get update failed (another apt may hold /var/lib/apt/lists/lock): again in 10 s (1/60)" in out, out
