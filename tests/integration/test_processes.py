"""Background processes ([processes.NAME]) in `wsgistack run`: beside nginx and uWSGI, as the
app's user, in the app's directory and environment, listed by `status`, stopped with the stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import (
    EXAMPLES, SERVERS, WSGISTACK, InBackground, Stack, clean_env, http, server_env, shared_dir, start_stack, wait_in_flight, worker_user,
)

pytestmark = pytest.mark.integration

TICKER = """\
import os, pwd, signal, sys, time
def stop(*_):
    print("ticker stopping", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ticker up as %s in %s, GREETING=%s" % (pwd.getpwuid(os.getuid()).pw_name, os.getcwd(), os.environ.get("GREETING")), flush=True)
while True:
    time.sleep(0.1)
"""


def project(tmp_path: Path) -> Path:
    app = shared_dir(tmp_path, "proj")
    shutil.copy(EXAMPLES / "hello" / "hello.py", app / "hello.py")
    (app / "ticker.py").write_text(TICKER)
    (app / "wsgistack.toml").write_text(
        'app.target = "hello:application"\n[app.env]\nGREETING = "hi"\n'
        '[processes.ticker]\ncommand = "python ticker.py"\n'
        '[processes.flaky]\ncommand = "python -c \'import time; time.sleep(1.5); raise SystemExit(2)\'"\n'
    )
    for path in (app, app / "hello.py", app / "ticker.py"):
        path.chmod(0o755)
    return app


def wait_for(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("server", SERVERS)
def test_background_processes_run_restart_are_listed_and_stop(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    app = project(tmp_path)
    stack = start_stack(tmp_path, app, ready_path="/", env=server_env(server))
    stacks.append(stack)
    assert http(stack.url + "/").status == 200
    user = worker_user() if os.geteuid() == 0 else __import__("pwd").getpwuid(os.getuid()).pw_name
    wait_for(lambda: "ticker up" in stack.log())
    assert f"ticker | ticker up as {user} in {app}, GREETING=hi" in stack.log()
    # flaky exits with 2 after 1.5 s: restarted, and counted.
    wait_for(lambda: "flaky exited with code 2; restarting in 1s (restart 1)" in stack.log())

    st = subprocess.run([*WSGISTACK, "status", str(app), "--runtime-dir", str(stack.runtime_dir), "--json"],
                        capture_output=True, text=True, env=clean_env(), timeout=60)
    assert st.returncode == 0, st.stderr
    procs = {p["name"]: p for p in json.loads(st.stdout)["processes"]}
    assert set(procs) == {server, "ticker", "flaky", "nginx"}
    assert procs["ticker"]["state"] == "running" and procs["ticker"]["pid"]
    assert procs["flaky"]["restarts"] >= 1
    text = subprocess.run([*WSGISTACK, "status", str(app), "--runtime-dir", str(stack.runtime_dir)],
                          capture_output=True, text=True, env=clean_env(), timeout=60).stdout
    assert "ticker" in text and "flaky" in text

    ticker_pid = procs["ticker"]["pid"]
    assert stack.stop() == 0
    log = stack.log()
    assert "ticker | ticker stopping" in log
    # nginx stops first (its QUIT drains requests), the background processes after it.
    assert log.index("ticker | ticker stopping") > log.index("serving ")
    with pytest.raises(ProcessLookupError):
        os.kill(ticker_pid, 0)


def test_role_worker_runs_one_process_alone(tmp_path: Path) -> None:
    app = project(tmp_path)
    env = clean_env(WSGISTACK_ROLE="worker", WSGISTACK_PROCESS="ticker")
    runtime = shared_dir(tmp_path, "rt")
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*WSGISTACK, "run", str(app), "--runtime-dir", str(runtime)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            wait_for(lambda: "ticker up" in log_path.read_text())
            # Only the ticker: no nginx, no uWSGI, not the other process.
            state = json.loads((runtime / "manager.json").read_text())
            assert [p["name"] for p in state["processes"]] == ["ticker"]
            hc = subprocess.run(["python3", "-I", "-S", str(Path(__file__).parents[2] / "src/wsgistack/standalone/healthcheck.py")],
                                env={"WSGISTACK_RUNTIME_DIR": str(runtime)}, capture_output=True, text=True)
            assert hc.returncode == 0, hc.stderr
        finally:
            proc.terminate()
            assert proc.wait(20) == 0
    text = log_path.read_text()
    assert "role worker: ticker (python ticker.py)" in text
    assert "ticker | ticker stopping" in text


def test_worker_role_names_a_configured_process(tmp_path: Path) -> None:
    app = project(tmp_path)
    out = subprocess.run([*WSGISTACK, "run", str(app), "--runtime-dir", str(shared_dir(tmp_path, "rt"))],
                         capture_output=True, text=True, timeout=60,
                         env=clean_env(WSGISTACK_ROLE="worker", WSGISTACK_PROCESS="nope"))
    assert out.returncode == 2
    assert "error[config.E044]" in out.stderr and "flaky, ticker" in out.stderr


# An RQ-like queue worker: on SIGTERM (warm shutdown) it finishes the job it has, then exits.
JOBS = """\
import os, signal, sys, time
stopping = False
def warm(*_):
    global stopping
    stopping = True
    print("warm shutdown requested", flush=True)
signal.signal(signal.SIGTERM, warm)
seconds = float(sys.argv[1])
print("job started (%gs)" % seconds, flush=True)
began = time.monotonic()
while time.monotonic() - began < seconds:
    time.sleep(0.05)
print("job done", flush=True)
while not stopping:
    time.sleep(0.05)
print("worker exiting", flush=True)
"""


@pytest.mark.parametrize("server", SERVERS)
def test_a_slow_worker_and_a_long_job_stop_beside_nginx_within_their_own_budgets(tmp_path: Path, stacks: list[Stack],
                                                                                server: str) -> None:
    """Issue 24 item 1: a worker whose warm shutdown finishes a job longer than stop_timeout
    (8 s) stops beside nginx's drain on its own budget; uWSGI, stopped once nginx exited,
    gets what nginx left of stop_timeout: nobody is SIGKILLed, the job and the request in
    flight both finish."""
    app = shared_dir(tmp_path, "proj")
    shutil.copy(EXAMPLES / "hello" / "hello.py", app / "hello.py")
    (app / "jobs.py").write_text(JOBS)
    (app / "wsgistack.toml").write_text(
        'app.target = "hello:application"\n[processes.jobs]\ncommand = "python jobs.py 11"\nstop_timeout = 20\n')
    for path in (app, app / "hello.py", app / "jobs.py"):
        path.chmod(0o755)
    stack = start_stack(tmp_path, app, ready_path="/", env=server_env(server))
    stacks.append(stack)
    stack.log_with("jobs | job started")
    request = InBackground(stack.url + "/slow?seconds=2", timeout=30)
    wait_in_flight(stack.runtime_dir)
    assert stack.stop(timeout=60) == 0
    assert request.outcome(30) == 200
    log = stack.log()
    # nginx and the app server share stop_timeout (8 s, from the stop's start); the job its own.
    assert f"stopping jobs (up to 20s), nginx (up to 6s); {server} once nginx exited (until 8s from now); at most 21s in all" in log
    assert "jobs | job done" in log and "jobs | worker exiting" in log
    assert "kill" not in "".join(line for line in log.splitlines() if line.startswith("wsgistack |"))
    for name in ("nginx", server, "jobs"):
        assert re.search(rf"wsgistack \| {name} stopped in [0-9.]+s \(its budget: ", log), name
    # The app server went as soon as nginx had: it did not wait for the job (the old, sequential
    # stop signalled it only after the background processes, with what was left of 8 s).
    assert log.index(f"stopping {server} now that nginx exited") < log.index(f"{server} stopped in") < log.index("jobs | job done")
