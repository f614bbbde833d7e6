"""The process manager with small real processes (no nginx/uWSGI needed)."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

from tests.unit.runner.tables import as_table
from wsgistack.contracts import Trust, read_pidfile
from wsgistack.runner.manager import Manager, describe_status

PY = sys.executable


def proc(name: str, code: str, stop: str = "TERM", ready: dict[str, str] | None = None) -> dict[str, object]:
    return {"name": name, "argv": [PY, "-u", "-c", code], "env": {}, "cwd": "/", "stop_signal": stop, "ready": ready or {}}


def sleeper(log: Path, name: str) -> str:
    # Records the order in which processes receive their stop signal.
    return (
        "import signal, sys, time\n"
        f"def stop(*_):\n    open({str(log)!r}, 'a').write({name!r} + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\nsignal.signal(signal.SIGQUIT, stop)\n"
        f"print({name!r} + ' up', flush=True)\n"
        "while True: time.sleep(0.05)\n"
    )


def test_child_exit_stops_the_others_and_exits_non_zero(tmp_path: Path) -> None:
    out = io.BytesIO()
    table = {"stop_timeout": 3, "processes": [
        proc("app", sleeper(tmp_path / "order", "app")),
        proc("web", "import time, sys; time.sleep(0.3); print('bye'); sys.exit(7)"),
    ]}
    manager = Manager(as_table(table), out=out)
    assert manager.run() == 7
    text = out.getvalue().decode()
    assert "web exited with code 7 unexpectedly; stopping app" in text
    assert "web | bye" in text
    assert (tmp_path / "order").read_text() == "app\n"


def test_killed_child_is_reported_with_the_signal(tmp_path: Path) -> None:
    out = io.BytesIO()
    table = {"stop_timeout": 3, "processes": [proc("app", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")]}
    assert Manager(as_table(table), out=out).run() == 1
    assert "app was killed by signal SIGKILL unexpectedly" in out.getvalue().decode()


def test_stop_is_graceful_and_waits_for_what_a_process_follows(tmp_path: Path) -> None:
    log = tmp_path / "order"
    out = io.BytesIO()
    # first (uWSGI) is stopped after second (nginx) has exited.
    table = {"stop_timeout": 5, "processes": [
        {**proc("first", sleeper(log, "first")), "stop_after": ["second"]},
        proc("second", sleeper(log, "second"), stop="QUIT"),
    ]}
    # Give the children time to install their handlers before the stop begins.
    manager = Manager(as_table(table), out=out, on_ready=lambda m: threading.Timer(0.5, lambda: m._signals.append(signal.SIGTERM)).start())
    assert manager.run() == 0
    assert log.read_text() == "second\nfirst\n"
    text = out.getvalue().decode()
    # Each deadline counts from the stop's start: first gets what second left of its 5 s.
    assert "stopping second (up to 5s); first once second exited (until 5s from now); at most 6s in all" in text
    assert re.search(r"stopping first now that second exited \(up to [0-9.]+s: until 5s\)", text), text
    assert "second stopped in " in text and "first stopped in " in text
    assert text.rstrip().endswith("stopped")


def test_a_process_that_ignores_stop_is_killed_after_the_timeout(tmp_path: Path) -> None:
    out = io.BytesIO()
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)\n"
    table = {"stop_timeout": 1, "processes": [proc("stubborn", code)]}
    manager = Manager(as_table(table), out=out, on_ready=lambda m: m._signals.append(signal.SIGTERM))
    manager.run()  # returns: the 60 s sleep was cut short by the kill (no duration asserted: a loaded CI)
    text = out.getvalue().decode()
    assert "stubborn did not stop within its 1s: killing it (SIGKILL)" in text
    assert "stubborn killed after " in text


def test_a_follower_of_a_killed_process_is_killed_at_its_own_deadline_from_the_stop(tmp_path: Path) -> None:
    """nginx (front) hangs past its budget with a request; uWSGI (app), stopped after it, has
    until its own deadline counted from the stop's start, not a fresh budget of its own: the
    whole chain fits stop_timeout plus the wait for a SIGKILLed process (Docker's 10 s)."""
    out = io.BytesIO()
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)\n"
    table = {"stop_timeout": 3, "processes": [
        {**proc("app", stubborn), "stop_after": ["front"]},
        {**proc("front", stubborn), "stop_timeout": 2},
    ]}
    manager = Manager(as_table(table), out=out, on_ready=lambda m: threading.Timer(0.3, lambda: m._signals.append(signal.SIGTERM)).start())
    manager.run()
    text = out.getvalue().decode()
    assert "stopping front (up to 2s); app once front exited (until 3s from now); at most 4s in all" in text
    assert "front did not stop within its 2s: killing it (SIGKILL)" in text
    assert "app did not stop within its 3s: killing it (SIGKILL)" in text
    # Its turn came after front's 2 s: what it was given is what is left of its 3 s, at most 1 s
    # (a loaded machine only makes it less), not 3 s of its own.
    left = float(re.search(r"stopping app now that front exited \(up to ([0-9.]+)s: until 3s\)", text).group(1))  # type: ignore[union-attr]
    assert left <= 1.0, text


def test_waits_for_readiness_before_starting_the_next(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    server = (
        "import socket, time\ntime.sleep(0.5)\n"
        f"s = socket.socket(socket.AF_UNIX); s.bind({str(sock)!r}); s.listen()\n"
        "print('listening', flush=True)\ntime.sleep(30)\n"
    )
    client = f"import os; print('socket there' if os.path.exists({str(sock)!r}) else 'too early', flush=True)\nimport time; time.sleep(30)\n"
    out = io.BytesIO()
    table = {"stop_timeout": 2, "cleanup": [str(sock)], "processes": [
        proc("server", server, ready={"unix": str(sock)}), proc("client", client)]}
    manager = Manager(as_table(table), out=out, on_ready=lambda m: threading.Timer(0.5, lambda: m._signals.append(signal.SIGTERM)).start())
    manager.run()
    text = out.getvalue().decode()
    assert "client | socket there" in text
    assert not sock.exists(), "cleanup did not remove the socket"


def test_output_lines_are_prefixed_even_when_split_across_reads(tmp_path: Path) -> None:
    code = "import sys, time\nsys.stdout.write('par'); sys.stdout.flush(); time.sleep(0.2); print('tial line')\n"
    out = io.BytesIO()
    Manager(as_table({"stop_timeout": 1, "processes": [proc("p", code)]}), out=out).run()
    assert "p | partial line\n" in out.getvalue().decode()


def test_pidfile_helpers(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    assert read_pidfile(pidfile, Trust.me()) is None
    pidfile.write_text(str(os.getpid()))
    assert read_pidfile(pidfile, Trust.me()) == os.getpid()
    assert read_pidfile(pidfile, Trust.me(), parent=os.getpid()) is None  # not our child
    pidfile.write_text("999999999")
    assert read_pidfile(pidfile, Trust.me()) is None
    assert describe_status(3) == "exited with code 3"
    assert describe_status(-9) == "was killed by signal SIGKILL"


def test_uwsgi_option_variables_are_not_passed_on(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("UWSGI_URI", "app:8001")
    monkeypatch.setenv("KEEP_ME", "yes")
    code = "import os; print('uri=%s keep=%s' % (os.environ.get('UWSGI_URI'), os.environ.get('KEEP_ME')))"
    spec = {**proc("uwsgi", code), "drop_env_prefix": "UWSGI_"}
    out = io.BytesIO()
    Manager(as_table({"stop_timeout": 1, "processes": [spec]}), out=out).run()
    assert "uri=None keep=yes" in out.getvalue().decode()


def test_a_worker_over_its_memory_limit_is_recycled_gracefully(tmp_path: Path) -> None:
    """The manager, not each worker after each request, checks memory: a child of a managed
    process (a uWSGI worker) above recycle.rss_mb gets SIGHUP, uWSGI's graceful recycle; a
    small one is left alone. The "master" here respawns its worker as uWSGI's does."""
    hups = tmp_path / "hups"
    code = (
        "import os, signal, sys, time\n"
        "def worker(mb):\n"
        "    ballast = bytearray(mb * 1024 * 1024)\n"
        f"    signal.signal(signal.SIGHUP, lambda *_: (open({str(hups)!r}, 'a').write(f'{{mb}}\\n'), os._exit(0)))\n"
        "    print('worker', os.getpid(), mb, 'MB', flush=True)\n"
        "    while True: time.sleep(0.05)\n"
        "kids = {}\n"
        "for mb in (1, 60):\n"
        "    pid = os.fork()\n"
        "    if pid == 0: worker(mb)\n"
        "    kids[pid] = mb\n"
        "signal.signal(signal.SIGTERM, lambda *_: ([os.kill(p, 9) for p in kids], sys.exit(0)))\n"
        "while True:\n"
        "    pid, _ = os.wait()\n"
        "    mb = kids.pop(pid)\n"
        "    new = os.fork()\n"
        "    if new == 0: worker(mb)\n"
        "    kids[new] = mb\n"
    )
    spec = {**proc("uwsgi", code), "recycle": {"rss_mb": 40, "min_age": 0.2, "interval": 0.1}}
    out = io.BytesIO()
    manager = Manager(as_table({"stop_timeout": 3, "processes": [spec]}), out=out)
    threading.Timer(2.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert manager.run() == 0
    text = out.getvalue().decode()
    recycled = hups.read_text().split()
    assert len(recycled) >= 2 and set(recycled) == {"60"}, text  # only the big one, again once respawned
    assert "over its limit of 40 MB: recycling it gracefully" in text


def test_a_granian_worker_over_its_limit_drains_first_then_stops(tmp_path: Path) -> None:
    """granian's recycle spec ("drain", "drain_signal", "signal"): the big worker first gets
    the drain signal (SIGWINCH), and only "drain" seconds later its stop signal (SIGTERM); the
    small one neither. The "main process" respawns its worker as granian's does."""
    seen = tmp_path / "seen"
    code = (
        "import os, signal, sys, time\n"
        "def worker(mb):\n"
        "    ballast = bytearray(mb * 1024 * 1024)\n"
        f"    note = lambda what: open({str(seen)!r}, 'a').write(f'{{mb}} {{what}} {{time.monotonic():.3f}}\\n')\n"
        "    signal.signal(signal.SIGWINCH, lambda *_: note('WINCH'))\n"
        "    signal.signal(signal.SIGTERM, lambda *_: (note('TERM'), os._exit(0)))\n"
        "    while True: time.sleep(0.05)\n"
        "kids = {}\n"
        "for mb in (1, 60):\n"
        "    pid = os.fork()\n"
        "    if pid == 0: worker(mb)\n"
        "    kids[pid] = mb\n"
        "signal.signal(signal.SIGTERM, lambda *_: ([os.kill(p, 9) for p in kids], sys.exit(0)))\n"
        "while True:\n"
        "    pid, _ = os.wait()\n"
        "    mb = kids.pop(pid)\n"
        "    new = os.fork()\n"
        "    if new == 0: worker(mb)\n"
        "    kids[new] = mb\n"
    )
    recycle = {"rss_mb": 40, "min_age": 0.2, "interval": 0.1, "drain": 0.6,
               "drain_signal": float(signal.SIGWINCH), "signal": float(signal.SIGTERM)}
    spec = {**proc("granian", code), "recycle": recycle}
    out = io.BytesIO()
    manager = Manager(as_table({"stop_timeout": 3, "processes": [spec]}), out=out)
    threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert manager.run() == 0
    events = [line.split() for line in seen.read_text().splitlines()]
    assert {mb for mb, _what, _t in events} == {"60"}, events  # only the big one
    winch = [float(t) for _mb, what, t in events if what == "WINCH"]
    term = [float(t) for _mb, what, t in events if what == "TERM"]
    assert winch and term and term[0] - winch[0] >= 0.5, events  # drained first, stopped after
    assert "over its limit of 40 MB: recycling it gracefully" in out.getvalue().decode()


def test_drain_before_stop_marks_the_node_then_stops_after_the_delay(tmp_path: Path) -> None:
    # The child records whether the drain marker existed when its stop signal came, and when.
    marker, log = tmp_path / "drain", tmp_path / "seen"
    code = (
        "import os, signal, sys, time\n"
        f"def stop(*_):\n    open({str(log)!r}, 'w').write(str(os.path.exists({str(marker)!r})) + ' ' + str(time.monotonic())); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\nprint('up', flush=True)\nwhile True: time.sleep(0.05)\n"
    )
    out = io.BytesIO()
    table = {"stop_timeout": 5, "drain": {"file": str(marker), "delay": 1}, "cleanup": [str(marker)],
             "processes": [proc("app", code)]}
    sent: list[float] = []

    def term(m: Manager) -> None:
        sent.append(time.monotonic())
        m._signals.append(signal.SIGTERM)

    manager = Manager(as_table(table), out=out, on_ready=lambda m: threading.Timer(0.3, term, (m,)).start())
    assert manager.run() == 0
    existed, at = log.read_text().split()
    assert existed == "True"  # readiness answered 503 while the app still served
    assert float(at) - sent[0] >= 0.9  # and the stop came only after the delay
    assert not marker.exists()  # removed with the other transient files
    assert "draining for 1s" in out.getvalue().decode()


def test_output_is_read_in_batches_from_an_enlarged_pipe() -> None:
    import fcntl

    from wsgistack.runner.manager import PIPE_SIZE, _enlarge_pipe, _read_available

    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        enlarged = _enlarge_pipe(r)
        assert enlarged == (fcntl.fcntl(r, getattr(fcntl, "F_GETPIPE_SZ", 1032)) >= PIPE_SIZE)
        if enlarged:
            # A batch of access-log lines larger than a default pipe (64 KB) fits without blocking.
            os.set_blocking(w, False)
            os.write(w, b"x" * 200_000)
            data, closed = _read_available(r)
            assert (len(data), closed) == (200_000, False)
        os.write(w, b"last line\n")
        os.close(w)
        w = -1
        assert _read_available(r) == (b"last line\n", True)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
