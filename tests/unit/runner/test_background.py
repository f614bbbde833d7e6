"""Background processes under the process manager: restarts with backoff, a crash loop that
fails the stack, stop order and limits, no orphans, the state file (small real processes)."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tests.unit.runner.tables import as_table
from wsgistack.runner.manager import Manager

PY = sys.executable


def server(log: Path, name: str = "server") -> dict[str, object]:
    """Stands in for nginx/uWSGI: runs until its stop signal, and records when it got it."""
    code = (
        "import signal, sys, time\n"
        f"def stop(*_):\n    open({str(log)!r}, 'a').write({name!r} + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\nsignal.signal(signal.SIGQUIT, stop)\n"
        "while True: time.sleep(0.05)\n"
    )
    return {"name": name, "argv": [PY, "-u", "-c", code], "cwd": "/", "stop_signal": "QUIT"}


def background(name: str, code: str, restart: str = "always", **extra: object) -> dict[str, object]:
    return {"name": name, "argv": [PY, "-u", "-c", code], "cwd": "/", "restart": restart,
            "stop_signal": "TERM", **extra}


def run(table: dict[str, object], after: float | None = None) -> tuple[int, str, Manager]:
    out = io.BytesIO()
    table = {"stop_timeout": 5, "restart_backoff": 0.1, "restart_reset": 2, "restart_limit": 4, **table}

    def stop_later(m: Manager) -> None:
        if after is not None:
            threading.Timer(after, lambda: m._signals.append(signal.SIGTERM)).start()

    manager = Manager(as_table(table), out=out, on_ready=stop_later)
    code = manager.run()
    return code, out.getvalue().decode(), manager


def test_a_crashing_process_is_restarted_with_backoff_then_fails_the_stack(tmp_path: Path) -> None:
    log = tmp_path / "log"
    crash = "import sys; print('working', flush=True); sys.exit(3)"
    started = time.monotonic()
    code, text, manager = run({"processes": [server(log), background("alerts", crash)]})
    assert code == 3
    assert text.count("alerts | working") == 4
    # Backoff doubles: 0.1 + 0.2 + 0.4 s at least between the four runs.
    assert time.monotonic() - started >= 0.7
    assert "alerts exited with code 3; restarting in 0.1s (restart 1)" in text
    assert "restarting in 0.4s (restart 3)" in text
    assert "alerts exited with code 3: 4 exits in a row, each within 2s of its start; giving up; stopping server" in text
    assert "exiting with code 3" in text
    assert log.read_text() == "server\n"  # the server was stopped gracefully


def test_a_long_run_resets_the_crash_count(tmp_path: Path) -> None:
    # Each run lasts longer than restart_reset (0.3 s): never a crash loop, however many exits.
    code, text, manager = run(
        {"restart_reset": 0.3, "restart_limit": 2,
         "processes": [background("loop", "import time, sys; time.sleep(0.4); sys.exit(1)")]},
        after=2.5,
    )
    assert code == 0, text
    assert manager.children[0].restarts >= 3
    assert "giving up" not in text


def test_restart_policies(tmp_path: Path) -> None:
    done = "print('done', flush=True)"
    code, text, _ = run({"processes": [server(tmp_path / "log"), background("once", done, restart="on-failure"),
                                       background("never", done, restart="never")]}, after=1.0)
    assert code == 0, text
    assert text.count("once | done") == 1 and text.count("never | done") == 1
    assert "once exited with code 0 (restart = on-failure): not restarted" in text
    # restart = never and a failure: nothing to restart, so the stack stops, non-zero.
    code, text, _ = run({"processes": [server(tmp_path / "log2"), background("never", "raise SystemExit(4)", restart="never")]})
    assert code == 4
    assert "never exited with code 4 (restart = never); stopping server" in text


def test_a_command_that_cannot_start_counts_as_a_crash(tmp_path: Path) -> None:
    spec = {**background("ghost", ""), "argv": [str(tmp_path / "no-such-program")]}
    code, text, _ = run({"restart_limit": 2, "processes": [server(tmp_path / "log"), spec]})
    assert code == 127
    assert "ghost cannot start: No such file or directory" in text


def test_background_stops_beside_the_front_server_and_takes_its_children(tmp_path: Path) -> None:
    log = tmp_path / "log"
    pidfile = tmp_path / "grandchild.pid"
    # A process that starts a child of its own and ignores TERM in it: on stop, the whole
    # group must go, or the grandchild would live on as an orphan.
    code = (
        "import subprocess, sys, signal, time\n"
        f"g = subprocess.Popen([{PY!r}, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(g.pid))\n"
        f"def stop(*_):\n    open({str(log)!r}, 'a').write('worker\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\nprint('up', flush=True)\n"
        "while True: time.sleep(0.05)\n"
    )
    # The front server (nginx) takes a second to drain; the background process is signalled
    # beside it, not after it, and the app server (uWSGI) only once the front one has exited.
    front = server(log, "front")
    front["argv"] = [PY, "-u", "-c", str(front["argv"][-1]).replace("def stop(*_):\n", "def stop(*_):\n    time.sleep(1)\n")]
    table = {"processes": [{**server(log, "app"), "stop_after": ["front"]}, background("worker", code), front]}
    rc, text, _ = run(table, after=1.0)
    assert rc == 0, text
    assert log.read_text() == "worker\nfront\napp\n"
    assert "stopping worker (up to 5s), front (up to 5s); app once front exited (until 5s from now)" in text
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.05)
    assert not _alive(grandchild), "the background process's child outlived it"


def test_a_slow_background_process_leaves_the_app_server_its_whole_budget(tmp_path: Path) -> None:
    # Issue 24: a queue worker's warm shutdown took the shared budget and uWSGI was SIGKILLed.
    # Here the background process takes its whole (longer) budget and is killed; the app
    # server, which takes a while to stop after the front one, still stops by itself.
    log = tmp_path / "log"
    slow_app = server(log, "app")
    slow_app["argv"] = [PY, "-u", "-c", str(slow_app["argv"][-1]).replace("def stop(*_):\n", "def stop(*_):\n    time.sleep(1.5)\n")]
    table = {"stop_timeout": 2, "processes": [
        {**slow_app, "stop_after": ["front"]},
        background("jobs", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)",
                   stop_timeout=3),
        server(log, "front"),
    ]}
    rc, text, _ = run(table, after=1.0)
    assert rc == 0, text
    assert log.read_text() == "front\napp\n"
    assert "jobs did not stop within its 3s: killing it (SIGKILL)" in text
    assert "app stopped in " in text and "app killed" not in text
    assert "front stopped in " in text


def test_each_background_process_has_its_own_stop_timeout(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    rc, text, _ = run({"stop_timeout": 20, "processes": [background("stubborn", stubborn, stop_timeout=1)]}, after=0.5)
    # Its own 1 s, not the stack's 20 s: the manager's own line (no duration asserted).
    assert "stubborn did not stop within its 1s: killing it (SIGKILL)" in text


def test_state_file_lists_processes_with_restarts(tmp_path: Path) -> None:
    state = tmp_path / "manager.json"
    seen: dict[str, object] = {}

    def look(m: Manager) -> None:
        def read() -> None:
            seen.update(json.loads(state.read_text()))
            m._signals.append(signal.SIGTERM)
        threading.Timer(1.2, read).start()

    table = {"stop_timeout": 5, "restart_backoff": 0.1, "restart_reset": 0.2, "state_file": str(state),
             "processes": [server(tmp_path / "log"), background("flaky", "import time; time.sleep(0.3)")]}
    Manager(as_table(table), out=io.BytesIO(), on_ready=look).run()
    procs = {p["name"]: p for p in seen["processes"]}  # type: ignore[index]
    assert procs["server"]["kind"] == "server" and procs["server"]["state"] == "running"
    assert procs["flaky"]["kind"] == "background" and procs["flaky"]["restarts"] >= 1
    assert procs["flaky"]["last_exit"] == "exited with code 0"
    assert seen["manager_pid"] == os.getpid()


def test_background_gets_the_prepended_paths(tmp_path: Path) -> None:
    code = "import os; print('path=' + os.environ['PATH'].split(os.pathsep)[0] + ' pp=' + os.environ['PYTHONPATH'].split(os.pathsep)[0])"
    spec = background("env", code, restart="never", env_prepend={"PATH": "/first", "PYTHONPATH": str(tmp_path)})
    rc, text, _ = run({"processes": [spec]})
    assert rc == 0
    assert f"env | path=/first pp={tmp_path}" in text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): it is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_json_log_format_makes_every_line_one_object(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "w = sys.stdout.buffer.write\n"
        "w(b'plain text\\n'); w(b'{\"already\": \"json\"}\\n'); w(b'{not json}\\n'); w(b'bad \\xff bytes\\r\\n'); w(b'\\n')\n"
        "sys.stdout.flush()\n"
    )
    out = io.BytesIO()
    Manager(as_table({"stop_timeout": 1, "log_format": "json", "processes": [background("app", code, restart="never")]}), out=out).run()
    objs = [json.loads(line.decode("utf-8")) for line in out.getvalue().splitlines()]
    assert all(isinstance(o, dict) for o in objs)
    app = [o for o in objs if o.get("process") == "app"]
    assert [o["message"] for o in app] == ["plain text", "{not json}", "bad \ufffd bytes"]
    assert {"already": "json"} in objs  # an app's own JSON lines pass through
    assert any(o.get("process") == "wsgistack" and o["message"] == "stopped" for o in objs)


def test_an_optional_process_never_holds_up_or_takes_down_the_site(tmp_path: Path) -> None:
    """Issue 21 item 12: the ops listener is optional: the start does not wait for it (it never
    opens its port here), and its failing, however often, leaves the site serving."""
    log = tmp_path / "log"
    ops = background("ops", "import sys; print('cannot start', flush=True); sys.exit(1)", optional=True,
                     ready={"tcp": "127.0.0.1:1"}, stop_group="")
    # The stop comes 2 s after the stack is ready: had the start waited for the ops listener's
    # readiness (which never comes), it would have failed after its readiness wait instead.
    code, text, manager = run({"processes": [ops, server(log)]}, after=2.0)
    assert code == 0, text
    assert "ops exited with code 1, 4 times in a row: it is optional, so it stays down and the site serves on" in text
    assert "server" in log.read_text()  # the site ran and was stopped gracefully at the end
    unrunnable = {**ops, "argv": [str(tmp_path / "no-such-python")]}
    code, text, _ = run({"processes": [unrunnable, server(log)]}, after=1.5)
    assert code == 0 and "ops cannot start" in text, text
