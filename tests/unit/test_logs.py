"""`wsgistack logs`: the manager's copy of its output (contracts.LogFile), rotated at its
limit, and the reader (ops/logs.py): the request-id filter, the last N lines, following
through a rotation, and the trust rule before a byte is believed."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.runner.tables import as_table
from wsgistack.cli import main
from wsgistack.contracts import STAMP, STAMP_WIDTH, LogFile, rotated
from wsgistack.errors import WsgistackError
from wsgistack.layout import Paths
from wsgistack.ops import logs
from wsgistack.runner.manager import Manager

RID = "4f0c1b2a3d4e5f60718293a4b5c6d7e8"
OTHER = "aaaa1b2a3d4e5f60718293a4b5c6d7e8"


def stack(tmp_path: Path) -> Paths:
    paths = Paths(tmp_path / "rt")
    paths.state.mkdir(parents=True, mode=0o700)
    return paths


def append(paths: Paths, *lines: str, limit: int = 1 << 20) -> None:
    log = LogFile(paths.log, limit)
    for line in lines:
        log.write((line + "\n").encode())
    log.close()


def test_the_filter_keeps_the_lines_naming_the_id_as_a_whole_word(tmp_path: Path) -> None:
    paths = stack(tmp_path)
    append(
        paths,
        f'  uwsgi | app-log id={RID} handling /first',
        f'  nginx | 127.0.0.1 "GET /first HTTP/1.1" 200 43 0.001 "" "ua" host=127.0.0.1 upstream=0.001 id={RID}',
        f'{{"time":"t","process":"nginx","request_id":"{RID}","path":"/first"}}',
        f'  nginx | 127.0.0.1 "GET /other HTTP/1.1" 200 43 0.001 "" "ua" host=127.0.0.1 upstream=0.001 id={OTHER}',
        f'  nginx | id={RID}ff (a longer id)',
        f'  nginx | id=x-{RID} (a longer id)',
        "wsgistack | serving",
    )
    found = logs.lines(paths, RID)
    assert found == [
        f'  uwsgi | app-log id={RID} handling /first',
        f'  nginx | 127.0.0.1 "GET /first HTTP/1.1" 200 43 0.001 "" "ua" host=127.0.0.1 upstream=0.001 id={RID}',
        f'{{"time":"t","process":"nginx","request_id":"{RID}","path":"/first"}}',
    ]
    assert len(logs.lines(paths)) == 7
    assert logs.lines(paths, last=2) == [f'  nginx | id=x-{RID} (a longer id)', "wsgistack | serving"]
    assert logs.lines(paths, RID, last=1) == [found[-1]]
    with pytest.raises(WsgistackError) as err:
        logs.lines(paths, "a b")
    assert err.value.id == "ops.E007"


def test_the_file_rotates_at_its_limit_and_both_halves_are_read_in_order(tmp_path: Path) -> None:
    paths = stack(tmp_path)
    log = LogFile(paths.log, 260)
    for i in range(30):
        log.write(f"nginx | line {i:02d}\n".encode())  # 15 bytes each and a 28-byte stamp: 6 fit in a file
    log.close()
    assert paths.log.stat().st_size <= 260 and rotated(paths.log).stat().st_size <= 260
    for path in (paths.log, rotated(paths.log)):
        assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == os.geteuid()
    found = logs.lines(paths)
    numbers = [int(line.rsplit(" ", 1)[1]) for line in found]
    assert numbers == list(range(30 - len(numbers), 30)) and len(numbers) >= 7  # the newest, in order
    assert not paths.state.joinpath("stack.log.2").exists()


def test_the_log_file_is_not_believed_when_someone_else_could_have_written_it(tmp_path: Path) -> None:
    paths = stack(tmp_path)
    append(paths, "nginx | fine")
    paths.log.chmod(0o620)
    with pytest.raises(WsgistackError) as err:
        logs.lines(paths)
    assert err.value.id == "trust.E001"
    paths.log.unlink()
    (tmp_path / "elsewhere").write_text("nginx | planted\n")
    (tmp_path / "elsewhere").chmod(0o600)
    paths.log.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(WsgistackError) as err:
        logs.lines(paths)
    assert err.value.id == "trust.E001"
    # The writer never follows the link either.
    with pytest.raises(OSError):
        LogFile(paths.log, 1000).write(b"x\n")
    assert (tmp_path / "elsewhere").read_text() == "nginx | planted\n"


def test_no_log_file_is_an_error_with_an_id(tmp_path: Path) -> None:
    with pytest.raises(WsgistackError) as err:
        logs.lines(stack(tmp_path))
    assert err.value.id == "ops.E006"


def test_follow_prints_new_lines_through_a_rotation(tmp_path: Path) -> None:
    paths = stack(tmp_path)
    append(paths, f"nginx | old id={RID}", "nginx | old other")
    writer = LogFile(paths.log, 126)
    deadline = time.monotonic() + 30  # a broken follow fails the test instead of hanging it
    follow = logs.follow(paths, RID, poll=0.01, stop=lambda: time.monotonic() > deadline)
    assert next(follow) == f"nginx | old id={RID}"
    for i in range(6):  # about 100 bytes a round (stamps included) into a 126-byte file: a rotation every round or two
        writer.write(b"nginx | unrelated\n")
        writer.write(f"nginx | new {i} id={RID}\n".encode())
        assert next(follow) == f"nginx | new {i} id={RID}"
    assert rotated(paths.log).exists() and "new 5" not in rotated(paths.log).read_text()
    writer.close()
    # A line half written (a large batch the reader meets mid-write) waits for its end.
    with open(paths.log, "ab", buffering=0) as raw:
        raw.write(f"2026-12-07T10:00:00.000000Z nginx | split id={RID}".encode())
        raw.write(b" end\n")
    assert next(follow) == f"nginx | split id={RID} end"
    follow.close()


def test_follow_starts_with_the_last_lines(tmp_path: Path) -> None:
    paths = stack(tmp_path)
    append(paths, "a", "b", "c")
    follow = logs.follow(paths, last=2, poll=0.01, stop=lambda: True)
    assert list(follow) == ["b", "c"]


def test_the_manager_copies_what_it_prints_to_its_log_file(tmp_path: Path) -> None:
    paths = stack(tmp_path)
    out = io.BytesIO()
    code = f"print('app-log id={RID} handling /x', flush=True); print('other', flush=True)"
    table = {"stop_timeout": 3, "log_file": str(paths.log),
             "processes": [{"name": "app", "argv": [sys.executable, "-u", "-c", code], "env": {}, "cwd": "/"}]}
    Manager(as_table(table), out=out).run()
    # stdout's lines, each after the time the manager wrote it.
    stamped = paths.log.read_text().splitlines()
    assert all(STAMP.match(line) for line in stamped)
    assert "".join(line[STAMP_WIDTH:] + "\n" for line in stamped).encode() == out.getvalue()
    assert paths.log.stat().st_mode & 0o777 == 0o600
    assert logs.lines(paths, RID) == [f"app | app-log id={RID} handling /x"]


def test_the_cli_is_thin_over_the_library(tmp_path: Path) -> None:
    paths = stack(tmp_path)
    append(paths, f"nginx | a id={RID}", "nginx | b", f"uwsgi | c id={RID}")
    result = CliRunner().invoke(main, ["logs", str(tmp_path), "--runtime-dir", str(paths.runtime), "--request-id", RID])
    assert result.exit_code == 0, result.output
    assert result.output == f"nginx | a id={RID}\nuwsgi | c id={RID}\n"
    result = CliRunner().invoke(main, ["logs", str(tmp_path), "--runtime-dir", str(paths.runtime), "-n", "1"])
    assert result.output == f"uwsgi | c id={RID}\n"


# --- several nodes (--node) ------------------------------------------------------------------

T0 = 1_796_000_000.0  # a fixed instant: the stamps, not the clock, order the merge


def node_stacks(tmp_path: Path, *hosts: str) -> Path:
    """One runtime dir per node under BASE/<host> (`--node-runtime-dir BASE/{host}`)."""
    base = tmp_path / "nodes"
    for host in hosts:
        stack(base / host)
    return base


def write_at(paths: Paths, *lines: tuple[float, str]) -> None:
    log = LogFile(paths.log, 1 << 20)
    for when, line in lines:
        log.write((line + "\n").encode(), now=T0 + when)
    log.close()


def test_every_nodes_lines_merge_in_time_order_each_after_its_name(tmp_path: Path) -> None:
    base = node_stacks(tmp_path, "127.0.0.2", "127.0.0.3")
    write_at(stack_at(base, "127.0.0.2"), (0.1, "  nginx | a1"), (0.3, f"  uwsgi | app-log id={RID} b1"),
             (0.3, f"  nginx | GET / 200 id={RID}"), (0.9, "wsgistack | d1"))
    write_at(stack_at(base, "127.0.0.3"), (0.2, "  nginx | a2"), (0.3, "  nginx | tie2"),
             (0.5, f'{{"time":"t","process":"nginx","request_id":"{OTHER}"}}'))
    failures: list[WsgistackError] = []
    sources = logs.sources(logs.nodes(["127.0.0.2:8000", "127.0.0.3:8000"]), runtime_dir=str(base / "{host}" / "rt"))
    assert logs.fleet_lines(sources, failed=failures.append) == [
        "node1 |   nginx | a1",
        "node2 |   nginx | a2",
        f"node1 |   uwsgi | app-log id={RID} b1",  # a tie keeps each node's own order, node1 first
        f"node1 |   nginx | GET / 200 id={RID}",
        "node2 |   nginx | tie2",
        f'{{"node":"node2","time":"t","process":"nginx","request_id":"{OTHER}"}}',  # JSON stays JSON
        "node1 | wsgistack | d1",
    ]
    assert not failures
    assert logs.fleet_lines(sources, RID) == [f"node1 |   uwsgi | app-log id={RID} b1", f"node1 |   nginx | GET / 200 id={RID}"]
    assert logs.fleet_lines(sources, last=2) == ['{"node":"node2","time":"t","process":"nginx","request_id":"%s"}' % OTHER,
                                                 "node1 | wsgistack | d1"]
    stamped = logs.fleet_lines(sources, last=1, timestamps=True)
    assert stamped == ["2026-11-30T00:53:20.900000Z node1 | wsgistack | d1"]


def stack_at(base: Path, host: str) -> Paths:
    return Paths(base / host / "rt")


def test_a_node_that_cannot_be_read_is_said_and_the_others_are_shown(tmp_path: Path) -> None:
    base = node_stacks(tmp_path, "127.0.0.2", "127.0.0.3")
    write_at(stack_at(base, "127.0.0.2"), (0, "nginx | here"))
    # node2 never started; a third node's file is a link someone planted.
    (base / "127.0.0.4" / "rt" / "state").mkdir(parents=True, mode=0o700)
    (tmp_path / "planted").write_text("2026-11-30T00:53:20.000000Z nginx | planted\n")
    (tmp_path / "planted").chmod(0o600)
    stack_at(base, "127.0.0.4").log.symlink_to(tmp_path / "planted")
    failures: list[WsgistackError] = []
    sources = logs.sources(logs.nodes(["127.0.0.2:8000", "127.0.0.3:8000", "127.0.0.4:8000"]),
                           runtime_dir=str(base / "{host}" / "rt"))
    assert logs.fleet_lines(sources, failed=failures.append) == ["node1 | nginx | here"]
    assert [(f.id, f.message.split(":")[0]) for f in failures] == [("ops.E006", "node2 (127.0.0.3"),
                                                                    ("trust.E001", "node3 (127.0.0.4")]


def test_a_command_reaches_nodes_elsewhere_and_its_failure_is_said(tmp_path: Path) -> None:
    """--command: a shell command per node that runs `wsgistack logs --timestamps` there (here
    the same machine, as ssh would); {args} carries the filters; a failing one is ops.E009."""
    base = node_stacks(tmp_path, "127.0.0.2", "127.0.0.3")
    write_at(stack_at(base, "127.0.0.2"), (0.2, f"nginx | n1 id={RID}"), (0.4, "nginx | n1 other"))
    write_at(stack_at(base, "127.0.0.3"), (0.1, f"nginx | n2 id={RID}"))
    command = f"{sys.executable} -m wsgistack logs {tmp_path} --runtime-dir {base}/{{host}}/rt {{args}}"
    sources = logs.sources(logs.nodes(["127.0.0.2:8000", "127.0.0.3:8000"]), command=command)
    assert logs.fleet_lines(sources, RID) == [f"node2 | nginx | n2 id={RID}", f"node1 | nginx | n1 id={RID}"]
    assert "--request-id" in sources[0].command(RID, 5, False) and "-n 5" in sources[0].command(RID, 5, False)
    failures: list[WsgistackError] = []
    broken = logs.sources(logs.nodes(["127.0.0.2:8000"]), command="echo 'ssh: no route to {host}' >&2; exit 255")
    assert logs.fleet_lines(broken, failed=failures.append) == []
    [failure] = failures
    assert failure.id == "ops.E009" and "exited with 255" in failure.message and "no route to 127.0.0.2" in failure.details
    with pytest.raises(WsgistackError) as err:
        logs.sources(logs.nodes(["127.0.0.2:8000"]), command="echo {nope}")[0].command(None, 0, False)
    assert err.value.id == "ops.E008"


def test_following_every_node_prints_each_look_in_time_order(tmp_path: Path) -> None:
    base = node_stacks(tmp_path, "127.0.0.2", "127.0.0.3")
    write_at(stack_at(base, "127.0.0.2"), (0.0, "nginx | old1"))
    write_at(stack_at(base, "127.0.0.3"), (0.1, "nginx | old2"))
    sources = logs.sources(logs.nodes(["127.0.0.2:8000", "127.0.0.3:8000"]), runtime_dir=str(base / "{host}" / "rt"))
    deadline = time.monotonic() + 30
    follow = logs.fleet_follow(sources, poll=0.01, stop=lambda: time.monotonic() > deadline)
    assert [next(follow), next(follow)] == ["node1 | nginx | old1", "node2 | nginx | old2"]
    write_at(stack_at(base, "127.0.0.3"), (2.0, "nginx | new2"))
    write_at(stack_at(base, "127.0.0.2"), (1.0, "nginx | new1"))
    assert sorted([next(follow), next(follow)]) == ["node1 | nginx | new1", "node2 | nginx | new2"]
    follow.close()


def test_the_cli_reads_every_node_of_the_config_or_those_given(tmp_path: Path) -> None:
    base = node_stacks(tmp_path, "127.0.0.2", "127.0.0.3")
    write_at(stack_at(base, "127.0.0.2"), (0.2, "nginx | from node1"))
    write_at(stack_at(base, "127.0.0.3"), (0.1, "nginx | from node2"))
    (tmp_path / "wsgistack.toml").write_text('[balancer]\nnodes = ["127.0.0.2:8000", "127.0.0.3:8000"]\n')
    runner = CliRunner()
    every = runner.invoke(main, ["logs", str(tmp_path), "--node", "--node-runtime-dir", f"{base}/{{host}}/rt"])
    assert every.exit_code == 0, every.output
    assert every.output == "node2 | nginx | from node2\nnode1 | nginx | from node1\n"
    one = runner.invoke(main, ["logs", str(tmp_path), "--node", "127.0.0.3:8000", "--node-runtime-dir", f"{base}/{{host}}/rt"])
    assert one.output == "node1 | nginx | from node2\n"
    stamped = runner.invoke(main, ["logs", str(tmp_path), "-t", "-n", "1", "--node", "--node-runtime-dir", f"{base}/{{host}}/rt"])
    assert stamped.output == "2026-11-30T00:53:20.200000Z node1 | nginx | from node1\n"
    missing = runner.invoke(main, ["logs", str(tmp_path), "--node", "--node", "127.0.0.9:8000", "--node-runtime-dir", "x"])
    assert missing.exit_code != 0 and "ops.E010" in missing.output
    for args, wanted in ((["--node"], "ops.E008"), (["--node", "."], "ops.E010"), (["--node-runtime-dir", "x"], "ops.E008"),
                         (["--node", "--node-runtime-dir", "x", "--command", "y"], "ops.E008")):
        result = runner.invoke(main, ["logs", str(tmp_path), *args])
        assert result.exit_code != 0 and wanted in result.output, (args, result.output)
    # A command that cannot be filled in is the caller's mistake, said once (not a failure per node).
    bad = runner.invoke(main, ["logs", str(tmp_path), "--node", "--command", "echo {nope}"])
    assert bad.exit_code == 2 and bad.output.count("ops.E008") == 1 and "KeyError('nope')" in bad.output, bad.output
    down = runner.invoke(main, ["logs", str(tmp_path), "--node", "--node-runtime-dir", f"{base}/{{host}}/nope"])
    assert down.exit_code == 1 and "ops.E006" in down.output and "2 of 2 nodes' lines could not be read" in down.output


def test_a_killed_follower_leaves_no_node_command_behind(tmp_path: Path) -> None:
    """`logs --node -f` SIGKILLed (no finally runs): each node's command still goes with it
    (PR_SET_PDEATHSIG), instead of following forever in a session of its own."""
    import signal
    import subprocess

    pidfile = tmp_path / "node.pid"
    code = (
        "import sys; from wsgistack.ops import logs\n"
        "sources = logs.sources(logs.nodes(['127.0.0.2:8000']), command=sys.argv[1])\n"
        "for line in logs.fleet_follow(sources): print(line, flush=True)\n"
    )
    command = f"echo $$ > {pidfile}; exec sleep 300 # {{args}}"
    follower = subprocess.Popen([sys.executable, "-c", code, command])
    try:
        deadline = time.monotonic() + 30  # bounded waits, not timing assertions
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        node = int(pidfile.read_text())
        assert running(node)
        follower.send_signal(signal.SIGKILL)
        follower.wait(10)
        while running(node) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(node)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan may be reparented to this test
    process, which a Manager run in-process made a child subreaper, and wait unreaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")
