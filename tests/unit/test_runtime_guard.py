"""The start's guard against a second run in one runtime dir (run.E002), and what it must not
take for one: a container started again after `docker kill` finds its old /tmp, whose manager
state names pid 1, which is now the new entrypoint itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from wsgistack.contracts import ManagerState
from wsgistack.start.runtime import _live_instance


def plan_in(runtime: Path) -> SimpleNamespace:
    paths = SimpleNamespace(manager_state=runtime / "manager.json", nginx_pid=runtime / "nginx.pid")
    return SimpleNamespace(paths=paths, runs_uwsgi=False)


def state(pid: int) -> ManagerState:
    return ManagerState(manager_pid=pid, started=0.0, stopping=False, processes=())


def test_a_live_manager_of_another_run_is_found(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state(other.pid).write(tmp_path / "manager.json")
        assert _live_instance(plan_in(tmp_path)) == f"its process manager (pid {other.pid})"  # type: ignore[arg-type]
    finally:
        other.kill()
        other.wait()
    assert _live_instance(plan_in(tmp_path)) is None  # type: ignore[arg-type]


def test_a_state_file_naming_this_very_process_is_stale(tmp_path: Path) -> None:
    state(os.getpid()).write(tmp_path / "manager.json")
    assert _live_instance(plan_in(tmp_path)) is None  # type: ignore[arg-type]


def test_an_nginx_pidfile_naming_a_process_that_is_not_nginx_is_stale(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "nginx.pid").write_text(f"{other.pid}\n")
        assert _live_instance(plan_in(tmp_path)) is None  # type: ignore[arg-type]
    finally:
        other.kill()
        other.wait()
