"""The record of the settings a stack was started with (what `wsgistack reload` keeps)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsgistack.config import load_config, record
from wsgistack.errors import WsgistackError
from wsgistack.layout import Paths


def stack(tmp_path: Path) -> Paths:
    paths = Paths(tmp_path / "rt")
    paths.state.mkdir(parents=True, mode=0o700)
    return paths


def recorded(paths: Paths) -> record.Recorded:
    found = record.read(paths)
    assert found is not None
    return found.recorded


def started(tmp_path: Path) -> Paths:
    (tmp_path / "wsgistack.toml").write_text("[uwsgi]\nthreads = 2\n")
    loaded = load_config(
        tmp_path,
        env={"PORT": "8311", "WEB_CONCURRENCY": "3", "WSGISTACK_APP__ENV": "SECRET_KEY=hunter2"},
        cli={"server.host": ("127.0.0.2", "--host")},
    )
    paths = stack(tmp_path)
    record.save(paths, loaded)
    return paths


def test_the_record_holds_values_and_origins_but_no_secret(tmp_path: Path) -> None:
    paths = started(tmp_path)
    path = paths.start_record
    assert path.stat().st_mode & 0o777 == 0o600
    assert "hunter2" not in path.read_text() and "SECRET_KEY" not in path.read_text()
    rec = recorded(paths)
    assert rec.values["server.port"] == 8311 and rec.values["uwsgi.threads"] == 2
    # Only what came from the start's environment and flags is replayed; the file is read again.
    assert {k: str(o) for k, (_v, o) in rec.started().items()} == {
        "server.port": 'env PORT="8311"',
        "uwsgi.processes": 'env WEB_CONCURRENCY="3"',
        "server.host": 'CLI --host="127.0.0.2"',
    }


def test_a_reload_resolves_against_the_record_not_its_own_environment(tmp_path: Path) -> None:
    rec = recorded(started(tmp_path))
    (tmp_path / "wsgistack.toml").write_text("[uwsgi]\nthreads = 4\n[server]\nport = 9000\n")
    loaded = load_config(tmp_path, env={}, cli={"uwsgi.processes": (5, "--processes")}, started=rec.started())
    assert loaded.config.server.port == 8311  # the start's PORT still beats the file
    assert loaded.config.uwsgi.threads == 4  # the file as it is now
    assert loaded.config.uwsgi.processes == 5  # the reload's own flag beats what the start had
    assert [str(c) for c in record.changes(rec, loaded)] == [
        'uwsgi.processes: 3 -> 5 (CLI --processes="5")',
        "uwsgi.threads: 2 -> 4 (wsgistack.toml)",
    ]


def test_the_record_keeps_the_data_dir_the_start_found(tmp_path: Path) -> None:
    # tls.data_dir's default comes from the start's XDG_DATA_HOME/HOME: a reload from a shell
    # with another one must serve the same certificates, not make a new dev CA elsewhere.
    loaded = load_config(tmp_path, env={})
    paths = stack(tmp_path)
    record.save(paths, loaded, data_dir=Path("/srv/data/wsgistack"))
    assert recorded(paths).data_dir == Path("/srv/data/wsgistack")
    record.save(paths, loaded)
    assert recorded(paths).data_dir is None


def test_no_record_is_none(tmp_path: Path) -> None:
    assert record.read(stack(tmp_path)) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_record_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    # The record is believed only as a private file of the starter's own.
    paths = started(tmp_path)
    os.chown(paths.start_record, 65534, 65534)
    with pytest.raises(WsgistackError) as exc:
        record.read(paths)
    assert exc.value.id == "trust.E001"


def test_a_record_others_may_read_is_refused(tmp_path: Path) -> None:
    paths = started(tmp_path)
    paths.start_record.chmod(0o644)
    with pytest.raises(WsgistackError) as exc:
        record.read(paths)
    assert exc.value.id == "trust.E001"


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    paths = started(tmp_path)
    target = paths.start_record
    target.rename(tmp_path / "elsewhere.json")
    target.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(WsgistackError) as exc:
        record.read(paths)
    assert exc.value.id == "trust.E001"
