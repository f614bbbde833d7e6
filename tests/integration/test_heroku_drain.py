"""Heroku stops a dyno by sending SIGTERM to every process in it at once, not only to the
first: with the term-drain library, nginx and uWSGI still let in-flight requests finish."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, WSGISTACK, Stack, clean_env, descendants, http, start_stack, termdrain_library

pytestmark = pytest.mark.integration


def term_everything_during_a_slow_request(stack: Stack) -> tuple[int | str, int]:
    """(status of a 3 s request in flight, manager's exit code) after SIGTERM to every process."""
    result: dict[str, int | str] = {}

    def slow() -> None:
        try:
            result["status"] = http(stack.url + "/slow?seconds=3", timeout=15).status
        except OSError as err:
            result["status"] = f"failed: {err}"

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(1)
    pids = [stack.proc.pid, *descendants(stack.proc.pid)]
    assert len(pids) >= 5, pids  # manager, nginx master + worker, uWSGI master + workers
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a short-lived helper may be gone already
            os.kill(pid, signal.SIGTERM)
    thread.join(20)
    return result.get("status", "no answer"), stack.proc.wait(timeout=20)


@pytest.mark.parametrize("reload_first", [False, True], ids=["started", "after-reload"])
def test_term_to_every_process_drains_with_the_library(tmp_path: Path, stacks: list[Stack], reload_first: bool) -> None:
    env = clean_env(WSGISTACK_PLATFORM="heroku", _WSGISTACK_TERMDRAIN_LIB=str(termdrain_library()))
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=env)
    stacks.append(stack)
    assert "term-drain" not in stack.log()
    assert "nginx.W002" not in stack.log()  # trusting every peer renders without nginx -t warnings
    if reload_first:  # uWSGI's master re-executes itself: the library must still be in effect
        rl = subprocess.run([*WSGISTACK, "reload", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir)],
                            capture_output=True, text=True, env=env, timeout=60)
        assert rl.returncode == 0, rl.stderr
        time.sleep(2)
        assert http(stack.url + "/hello").status == 200
    status, code = term_everything_during_a_slow_request(stack)
    assert (status, code) == (200, 0), stack.log()


def test_without_the_library_the_request_is_cut_and_start_warns(tmp_path: Path, stacks: list[Stack]) -> None:
    # The control: what happens on Heroku without it (and the warning that says so).
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=clean_env(WSGISTACK_PLATFORM="heroku"))
    stacks.append(stack)
    assert "without wsgistack's term-drain library" in stack.log()
    status, _code = term_everything_during_a_slow_request(stack)
    assert status != 200
