"""`wsgistack status` and `wsgistack reload` against a running stack."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, WSGISTACK, Stack, clean_env, free_port, http, load, shared_dir, start_stack, wait_in_flight

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WSGISTACK, *args], capture_output=True, text=True, env=env or clean_env(), timeout=60)


def test_status_reports_workers_and_reload_keeps_serving(tmp_path: Path, stacks: list[Stack]) -> None:
    stack = start_stack(tmp_path, EXAMPLES / "hello")
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    http(stack.url + "/hello")
    st = cli("status", str(EXAMPLES / "hello"), *rt, "--json")
    assert st.returncode == 0, st.stderr
    data = json.loads(st.stdout)
    old_workers = {w["pid"] for w in data["stats"]["workers"]}
    assert len(old_workers) >= 2

    # A request in flight during the reload still completes.
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.update(status=http(stack.url + "/slow?seconds=1").status))
    thread.start()
    wait_in_flight(stack.runtime_dir)  # proves the request is in the app when the reload comes
    # No --port here: reload reuses the options `run` was started with.
    rl = cli("reload", str(EXAMPLES / "hello"), *rt)
    assert rl.returncode == 0, rl.stderr
    assert "graceful reload requested" in rl.stdout
    thread.join(10)
    assert result.get("status") == 200
    statuses = [http(stack.url + "/hello").status for _ in range(20)]
    assert statuses == [200] * 20
    new = json.loads(cli("status", str(EXAMPLES / "hello"), *rt, "--json").stdout)
    assert {w["pid"] for w in new["stats"]["workers"]}.isdisjoint(old_workers)


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    st = cli("status", str(EXAMPLES / "hello"), "--runtime-dir", str(tmp_path / "none"))
    assert st.returncode == 1
    assert "not running" in st.stdout
    rl = cli("reload", str(EXAMPLES / "hello"), "--runtime-dir", str(tmp_path / "none"), "--no-render")
    assert rl.returncode == 1
    assert "error[ops.E001]" in rl.stderr


def _refused(url: str) -> bool:
    try:
        http(url, timeout=5)
    except OSError:
        return True
    return False


def test_reload_from_a_shell_without_port_keeps_what_runs(tmp_path: Path, stacks: list[Stack]) -> None:
    # Started as `PORT=... WEB_CONCURRENCY=2 wsgistack run` with a config file; reloaded from a
    # shell that has neither (and another PORT), under load: it used to move the site to 8000.
    project = shared_dir(tmp_path, "proj")
    (project / "hello.py").write_text((EXAMPLES / "hello" / "hello.py").read_text())
    (project / "wsgistack.toml").write_text('[app]\ntarget = "hello:application"\n[uwsgi]\nthreads = 1\n')
    stack = start_stack(tmp_path, project, env=clean_env(WEB_CONCURRENCY="2"), port_from_env=True)
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    state = stack.runtime_dir / "state"
    assert (state / "start.json").stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700 and state.stat().st_uid == os.geteuid()

    # The config file changes meanwhile: reload applies that, and only that (the stop timeout
    # is the process manager's, given at start: listed, not applied).
    (project / "wsgistack.toml").write_text('stop_timeout = 20\n[app]\ntarget = "hello:application"\n[uwsgi]\nthreads = 2\n')
    result: dict[str, list[int | str]] = {}
    loader = threading.Thread(target=lambda: result.update(statuses=load(stack.url + "/slow?seconds=0.05", 400)))
    loader.start()
    rl = cli("reload", str(project), *rt, env=clean_env(PORT="8000"))
    loader.join(180)
    assert rl.returncode == 0, rl.stderr
    assert "uwsgi.threads: 1 -> 2 (wsgistack.toml)" in rl.stdout
    assert "server.port" not in rl.stdout.split("changes", 1)[1]
    assert 'not applied: env PORT="8000"' in rl.stdout
    assert "stop_timeout: 8 -> 20 (wsgistack.toml) [not applied: needs a restart]" in rl.stdout
    (project / "wsgistack.toml").write_text('[app]\ntarget = "hello:application"\n[uwsgi]\nthreads = 2\n')
    statuses = result["statuses"]
    assert statuses.count(200) == len(statuses) == 400, [s for s in statuses if s != 200][:5]
    assert http(stack.url + "/hello").status == 200
    ini = (stack.runtime_dir / "uwsgi.ini").read_text()
    assert "processes = 2\n" in ini and "threads = 2\n" in ini
    assert f"{stack.port}" in (stack.runtime_dir / "nginx.conf").read_text()

    # A port change takes the site off its address: refused without --yes, nothing written.
    new_port = str(free_port())
    conf = (stack.runtime_dir / "nginx.conf").read_text()
    moved = cli("reload", str(project), *rt, "--port", new_port)
    assert moved.returncode == 2, moved.stdout + moved.stderr
    assert f"server.port: {stack.port} -> {new_port} (CLI --port=\"{new_port}\")" in moved.stdout
    assert "error[ops.E003]" in moved.stderr and "--yes" in moved.stderr
    assert (stack.runtime_dir / "nginx.conf").read_text() == conf
    assert http(stack.url + "/hello").status == 200

    confirmed = cli("reload", str(project), *rt, "--port", new_port, "--yes")
    assert confirmed.returncode == 0, confirmed.stderr
    new_url = f"http://127.0.0.1:{new_port}"
    deadline = time.monotonic() + 20
    while _refused(new_url + "/hello") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert http(new_url + "/hello").status == 200
    # ...and the next reload keeps the new port.
    again = cli("reload", str(project), *rt)
    assert again.returncode == 0, again.stderr
    assert "no setting changes" in again.stdout
    assert http(new_url + "/hello").status == 200


def test_the_record_keeps_no_secret(tmp_path: Path, stacks: list[Stack]) -> None:
    env = clean_env(WSGISTACK_APP__ENV="DATABASE_URL=postgres://u:hunter2@db/x")
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=env)
    stacks.append(stack)
    text = (stack.runtime_dir / "state" / "start.json").read_text()
    assert "hunter2" not in text and "app.env" not in text
    assert json.loads(text)["settings"]["server.port"]["value"] == stack.port


def test_reload_after_the_config_file_was_removed(tmp_path: Path, stacks: list[Stack]) -> None:
    # The start found wsgistack.toml in the project; once it is removed, a reload goes back to
    # the defaults for what it set (it used to fail: config.E004, cannot read the removed file).
    project = shared_dir(tmp_path, "proj")
    (project / "hello.py").write_text((EXAMPLES / "hello" / "hello.py").read_text())
    (project / "wsgistack.toml").write_text("[uwsgi]\nthreads = 2\n")
    stack = start_stack(tmp_path, project, "--app", "hello:application")
    stacks.append(stack)
    (project / "wsgistack.toml").unlink()
    rl = cli("reload", str(project), "--runtime-dir", str(stack.runtime_dir))
    assert rl.returncode == 0, rl.stdout + rl.stderr
    assert "uwsgi.threads: 2 -> 1 (default)" in rl.stdout
    assert http(stack.url + "/hello").status == 200
