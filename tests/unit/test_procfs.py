"""What the kernel says about a listening unix socket (sock_diag), and uWSGI's respawn count."""

from __future__ import annotations

import socket
from pathlib import Path

from wsgistack.procfs import listen_queue, started_at, unix_listen_queues, worker_respawns


def test_the_kernel_counts_the_connections_waiting_on_a_unix_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(100)
        assert listen_queue(path) == (0, 100)
        clients = [socket.socket(socket.AF_UNIX) for _ in range(7)]
        for c in clients:
            c.connect(path)
        assert listen_queue(path) == (7, 100)
        server.accept()[0].close()
        assert listen_queue(path) == (6, 100)
        assert path in unix_listen_queues()
        for c in clients:
            c.close()
    assert listen_queue(str(tmp_path / "none.sock")) is None


def test_respawns_do_not_count_the_first_spawn() -> None:
    assert worker_respawns({"respawn_count": 1}) == 0
    assert worker_respawns({"respawn_count": 3}) == 2
    assert worker_respawns({}) == 0


def test_a_process_started_later_says_so() -> None:
    """`stop` believes the manager's pid only for a process that began no later than the
    manager's state says it did: a later process has a later start (an order, not a time)."""
    import os
    import subprocess
    import time

    mine = started_at(os.getpid())
    assert mine is not None and mine <= time.time()
    before = time.time()
    child = subprocess.Popen(["sleep", "30"])
    try:
        later = started_at(child.pid)
        assert later is not None and later > mine and later >= before - 0.05
    finally:
        child.kill()
        child.wait()
    assert started_at(child.pid) is None
