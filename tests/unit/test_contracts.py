"""Every file one process writes and another reads (contracts.py): each type written and read
back as a pair, and its trust rule applied on read (no link, a trusted owner, writable by no
one else, private when it holds secrets, this version, the declared types)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from wsgistack import contracts
from wsgistack.contracts import (
    BuildRecord,
    Contract,
    Health,
    ImagesRecord,
    ManagerState,
    OpsSettings,
    ProcessSpec,
    ProcessState,
    ProcessTable,
    Ready,
    RecordedOrigin,
    RecordedSetting,
    RenewerSettings,
    RestartCache,
    StartRecord,
    Trust,
)
from wsgistack.errors import WsgistackError

SAMPLES: list[Contract] = [
    ProcessTable(runtime_dir="/run/x", processes=(
        ProcessSpec(name="uwsgi", argv=("uwsgi", "--ini", "u.ini"), cwd="/srv", env={"A": "1"}, secret_env=True,
                    ready=Ready(file="/run/x/private/uwsgi.ready", unix="/run/x/uwsgi.sock"), recycle={"rss_mb": 512.0}),
        ProcessSpec(name="nginx", argv=("nginx",), cwd="/run/x", ready=Ready(tcp_host="127.0.0.1", tcp_port=8000)),
    ), drain_file="/run/x/drain", drain_delay=3),
    Health(http_host="127.0.0.1", http_port=8000, path="/_wsgistack/ready", host_header="example.com",
           uwsgi=Ready(unix="/s"), background=("worker",)),
    ManagerState(manager_pid=1234, started=1.5, stopping=False,
                 processes=(ProcessState(name="nginx", kind="server", state="running", pid=77, since=2.0),)),
    OpsSettings(host="127.0.0.1", port=9100, manager_state="/run/x/manager.json", nginx_ports=(8000,),
                auth=contracts.OpsAuth(user="ops", salt="s", iterations=1, hash="h"), summary={"role": "all"}),
    RenewerSettings(names=("example.com",), cert="c", key="k", config_dir="d", webroot="w", directory="https://x/d",
                    email="", ca_bundle="", challenge_port=80, certbot="certbot", nginx_pid="p", nginx_conf="n",
                    nginx_https_conf="h"),
    StartRecord(settings={"server.port": RecordedSetting(8000, RecordedOrigin("env", "env PORT", "8000")),
                          "uwsgi.options": RecordedSetting({"a": 1})},
                python="/venv/bin/python", python_why="VIRTUAL_ENV", app_uid=33),
    BuildRecord(app="demo.wsgi:application", kind="django", writable=("var",),
                static_collected={"dir": "/app/var/static", "stamp": "s", "settings": "demo.settings"}),
    RestartCache(findings="abc", django_key="k", django={"messages": []}),
    ImagesRecord(tags={"demo": {"image": "abc", "stages": ["def"]}}),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_written_and_read_back_as_the_same_value(sample: Contract, tmp_path: Path) -> None:
    path = tmp_path / type(sample).FILE
    sample.write(path, 0o600)
    assert type(sample).read(path, Trust.me(private=True)) == sample
    assert json.loads(path.read_text())["version"] == type(sample).VERSION


@pytest.mark.parametrize("sample", SAMPLES[:3], ids=lambda s: type(s).__name__)
def test_the_trust_rule_refuses_a_link_a_writable_file_and_another_version(sample: Contract, tmp_path: Path) -> None:
    kind = type(sample)
    real = tmp_path / "real.json"
    sample.write(real)
    link = tmp_path / kind.FILE
    link.symlink_to(real)
    with pytest.raises(WsgistackError) as exc:
        kind.read(link)
    assert exc.value.id == "trust.E001"
    link.unlink()
    sample.write(link, 0o664)
    with pytest.raises(WsgistackError) as exc:
        kind.read(link)
    assert exc.value.id == "trust.E001"  # others may write it
    sample.write(link, 0o644)
    with pytest.raises(WsgistackError) as exc:
        kind.read(link, Trust.me(private=True))
    assert exc.value.id == "trust.E001"  # others may read what holds secrets
    data = {**json.loads(link.read_text()), "version": 99}
    contracts.write_bytes(link, json.dumps(data).encode())
    with pytest.raises(WsgistackError) as exc:
        kind.read(link)
    assert exc.value.id == "trust.E002"
    with pytest.raises(FileNotFoundError):
        kind.read(tmp_path / "missing.json")


def test_a_directory_others_may_write_makes_its_files_untrusted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    SAMPLES[1].write(shared / "health.json")
    shared.chmod(0o777)
    with pytest.raises(WsgistackError) as exc:
        Health.read(shared / "health.json")
    assert exc.value.id == "trust.E001"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_file_of_another_user_is_untrusted(tmp_path: Path) -> None:
    path = tmp_path / "manager.json"
    SAMPLES[2].write(path)
    os.chown(path, 65534, 65534)
    with pytest.raises(WsgistackError) as exc:
        ManagerState.read(path)
    assert exc.value.id == "trust.E001"
    assert ManagerState.read(path, Trust.only(65534)) == SAMPLES[2]


def test_wrong_types_are_refused_not_believed(tmp_path: Path) -> None:
    path = tmp_path / "processes.json"
    data = SAMPLES[0].to_json()
    data["processes"][0]["argv"] = "rm -rf /"  # a string where a list is declared
    contracts.write_bytes(path, json.dumps(data).encode())
    with pytest.raises(WsgistackError) as exc:
        ProcessTable.read(path)
    assert exc.value.id == "trust.E002" and "argv" in exc.value.message


def test_a_write_never_follows_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = tmp_path / "restart.json"
    # a planted temporary name is removed, not written through
    (tmp_path / f".restart.json.{os.getpid()}.tmp").symlink_to(victim)
    RestartCache(findings="x").write(target)
    assert victim.read_text() == "keep" and RestartCache.read(target).findings == "x"


def test_a_marker_is_believed_by_lstat_only_a_planted_one_is_refused(tmp_path: Path) -> None:
    """private/drain (the status page's): its existence is what it says; a link (even to a
    file that exists), a directory or a file others may write there is refused, not believed."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    marker = private / "drain"
    assert contracts.marker_exists(marker, Trust.me()) is False
    marker.touch(mode=0o644)
    assert contracts.marker_exists(marker, Trust.me()) is True
    marker.chmod(0o666)
    with pytest.raises(WsgistackError) as exc:
        contracts.marker_exists(marker, Trust.me())
    assert exc.value.id == "trust.E001" and "others may write" in exc.value.message
    marker.unlink()
    (tmp_path / "root-file").write_text("x")
    marker.symlink_to(tmp_path / "root-file")
    with pytest.raises(WsgistackError) as exc:
        contracts.marker_exists(marker, Trust.me())
    assert exc.value.id == "trust.E001" and "symbolic link" in exc.value.message
    marker.unlink()
    marker.mkdir()
    with pytest.raises(WsgistackError) as exc:
        contracts.marker_exists(marker, Trust.me())
    assert exc.value.id == "trust.E001" and "not a regular file" in exc.value.message
    marker.rmdir()
    private.chmod(0o777)
    with pytest.raises(WsgistackError) as exc:
        contracts.marker_exists(marker, Trust.me())
    assert exc.value.id == "trust.E001"


def test_a_pidfile_is_believed_only_for_a_child_of_the_given_parent(tmp_path: Path) -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile = tmp_path / "x.pid"
        pidfile.write_text(f"{child.pid}\n")
        assert contracts.read_pidfile(pidfile, Trust.me(), parent=os.getpid()) == child.pid
        assert contracts.read_pidfile(pidfile, Trust.me(), parent=1) is None
        pidfile.write_text("1\n")
        assert contracts.read_pidfile(pidfile, Trust.me()) is None  # never init
    finally:
        child.kill()
        child.wait()


def test_an_exited_process_its_parent_has_not_reaped_is_not_alive(tmp_path: Path) -> None:
    """A zombie still answers kill(pid, 0): a pidfile or a manager state naming one is a stack
    that stopped (status said "running" and stop waited for a manager that had exited)."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        os.kill(child.pid, 0)  # the kernel still has it
        pidfile = tmp_path / "x.pid"
        pidfile.write_text(f"{child.pid}\n")
        assert contracts.read_pidfile(pidfile, Trust.me(), parent=os.getpid()) is None
        state = next(s for s in SAMPLES if isinstance(s, ManagerState))
        assert not dataclasses.replace(state, manager_pid=child.pid).alive
        assert dataclasses.replace(state, manager_pid=os.getpid()).alive
    finally:
        child.wait()


def test_every_contract_is_in_the_samples() -> None:
    declared = {c for c in vars(contracts).values() if isinstance(c, type) and issubclass(c, Contract) and c is not Contract}
    assert declared == {type(s) for s in SAMPLES}
    for kind in declared:
        assert dataclasses.is_dataclass(kind) and kind.FILE
