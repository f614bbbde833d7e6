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
from wsgistack.contracts import LogFile, rotated
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
    log = LogFile(paths.log, 100)
    for i in range(30):
        log.write(f"nginx | line {i:02d}\n".encode())  # 15 bytes each: 6 fit in a file
    log.close()
    assert paths.log.stat().st_size <= 100 and rotated(paths.log).stat().st_size <= 100
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
    writer = LogFile(paths.log, 70)
    deadline = time.monotonic() + 30  # a broken follow fails the test instead of hanging it
    follow = logs.follow(paths, RID, poll=0.01, stop=lambda: time.monotonic() > deadline)
    assert next(follow) == f"nginx | old id={RID}"
    for i in range(6):  # about 45 bytes a round into a 70-byte file: a rotation every round or two
        writer.write(b"nginx | unrelated\n")
        writer.write(f"nginx | new {i} id={RID}\n".encode())
        assert next(follow) == f"nginx | new {i} id={RID}"
    assert rotated(paths.log).exists() and "new 5" not in rotated(paths.log).read_text()
    # A line half written (no newline yet) waits for its end.
    writer.write(f"nginx | split id={RID}".encode())
    writer.write(b" end\n")
    assert next(follow) == f"nginx | split id={RID} end"
    writer.close()
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
    assert paths.log.read_bytes() == out.getvalue()
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
