"""`wsgistack status` and `wsgistack reload` against a running stack."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, WSGISTACK, Stack, clean_env, http, start_stack

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WSGISTACK, *args], capture_output=True, text=True, env=clean_env(), timeout=60)


def test_status_reports_workers_and_reload_keeps_serving(tmp_path: Path, stacks: list[Stack]) -> None:
    stack = start_stack(tmp_path, EXAMPLES / "hello")
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    http(stack.url + "/hello")
    st = cli("status", str(EXAMPLES / "hello"), *rt, "--json")
    assert st.returncode == 0, st.stderr
    data = json.loads(st.stdout)
    old_workers = {w["pid"] for w in data["stats"]["workers"]}
    assert len(old_workers) >= 2

    # A request in flight during the reload still completes.
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.update(status=http(stack.url + "/slow?seconds=1").status))
    thread.start()
    # No --port here: reload reuses the options `run` was started with.
    rl = cli("reload", str(EXAMPLES / "hello"), *rt)
    assert rl.returncode == 0, rl.stderr
    assert "graceful reload requested" in rl.stdout
    thread.join(10)
    assert result.get("status") == 200
    statuses = [http(stack.url + "/hello").status for _ in range(20)]
    assert statuses == [200] * 20
    new = json.loads(cli("status", str(EXAMPLES / "hello"), *rt, "--json").stdout)
    assert {w["pid"] for w in new["stats"]["workers"]}.isdisjoint(old_workers)


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    st = cli("status", str(EXAMPLES / "hello"), "--runtime-dir", str(tmp_path / "none"))
    assert st.returncode == 1
    assert "not running" in st.stdout
    rl = cli("reload", str(EXAMPLES / "hello"), "--runtime-dir", str(tmp_path / "none"), "--no-render")
    assert rl.returncode == 1
    assert "error[ops.E001]" in rl.stderr
