"""The term-drain library (image/termdrain.c) on its own: which processes it changes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import termdrain_library

# A process that installs a SIGTERM handler in a forked child (as uWSGI's workers do), then
# reports whether SIGTERM still kills that child.
CHILD_SURVIVES_TERM = textwrap.dedent(
    """
    import os, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(30)
        os._exit(0)
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    done, status = os.waitpid(pid, os.WNOHANG)
    print("survived" if done == 0 else "killed")
    if done == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # The leader itself keeps its handler: SIGTERM to it is delivered.
    signal.signal(signal.SIGTERM, lambda *a: print("leader got TERM"))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)
    """
)


def run(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CHILD_SURVIVES_TERM], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[:-1]


@pytest.fixture(scope="module")
def library() -> str:
    return str(termdrain_library())


def test_uwsgi_mode_workers_ignore_term_and_the_master_keeps_it(library: str) -> None:
    assert run({"LD_PRELOAD": library, "_WSGISTACK_TERMDRAIN": "uwsgi"}) == ["survived", "leader got TERM"]


def test_without_the_library_a_forked_worker_dies_on_term() -> None:
    assert run({}) == ["killed", "leader got TERM"]


def test_programs_started_by_nginx_or_uwsgi_are_left_alone(library: str) -> None:
    # An app's subprocess inherits LD_PRELOAD and the variables, but not the pid they name.
    env = {"LD_PRELOAD": library, "_WSGISTACK_TERMDRAIN": "uwsgi", "_WSGISTACK_TERMDRAIN_PID": "1"}
    assert run(env) == ["killed", "leader got TERM"]


def test_no_variable_no_change(library: str) -> None:
    assert run({"LD_PRELOAD": library}) == ["killed", "leader got TERM"]
