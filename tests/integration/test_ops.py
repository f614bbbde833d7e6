"""`wsgistack status` and `wsgistack reload` against a running stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import (
    EXAMPLES,
    SERVERS,
    InBackground,
    WSGISTACK,
    Stack,
    app_writable,
    clean_env,
    free_port,
    http,
    load,
    server_env,
    shared_dir,
    start_stack,
    wait_in_flight,
)

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WSGISTACK, *args], capture_output=True, text=True, env=env or clean_env(), timeout=60)


@pytest.mark.parametrize("server", SERVERS)
def test_status_reports_workers_and_reload_keeps_serving(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server))
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    http(stack.url + "/hello")
    st = cli("status", str(EXAMPLES / "hello"), *rt, "--json")
    assert st.returncode == 0, st.stderr
    data = json.loads(st.stdout)
    old_workers = {w["pid"] for w in data["stats"]["workers"]}
    assert len(old_workers) >= 2

    # A request in flight during the reload still completes.
    request = InBackground(stack.url + "/slow?seconds=1", timeout=10)
    wait_in_flight(stack.runtime_dir)  # proves the request is in the app when the reload comes
    # No --port here: reload reuses the options `run` was started with.
    rl = cli("reload", str(EXAMPLES / "hello"), *rt)
    assert rl.returncode == 0, rl.stderr
    if server == "granian":  # drains, then replaces the workers one at a time, in the background
        assert "workers drain for 2.5s, then granian replaces them one at a time" in rl.stdout
    else:
        assert "graceful reload requested" in rl.stdout
    assert request.outcome(10) == 200
    statuses = [http(stack.url + "/hello").status for _ in range(20)]
    assert statuses == [200] * 20
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = json.loads(cli("status", str(EXAMPLES / "hello"), *rt, "--json").stdout)
        current = {w["pid"] for w in new["stats"]["workers"]}
        if current.isdisjoint(old_workers) and len(current) == len(old_workers):
            break
        time.sleep(0.5)
    assert current.isdisjoint(old_workers), (current, old_workers)
    assert new["app_server"] == server and all(w["status"] in ("idle", "busy") for w in new["stats"]["workers"])


def _until_drained(stack: Stack, clients: int, seconds: float) -> tuple[list[int | str], dict[str, float]]:
    """``clients`` threads, half of them POSTing, each request on a fresh connection (as a
    balancer's), until the readiness path says 503: as a balancer would, nothing new is sent
    after that. Returns every request's status (or error) and when the drain was seen."""
    statuses: list[int | str] = []
    drained = threading.Event()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + seconds

    def watch() -> None:
        while not drained.is_set() and time.monotonic() < deadline:
            try:
                if http(stack.url + "/_wsgistack/ready", timeout=5).status == 503:
                    seen["drained"] = time.monotonic()
                    drained.set()
            except OSError:
                pass
            time.sleep(0.05)

    def client(i: int) -> None:
        while not drained.is_set() and time.monotonic() < deadline:
            try:
                if i % 2:
                    status = http(stack.url + "/slow?seconds=0.05", data=b"x" * 2000, method="POST", timeout=30).status
                else:
                    status = http(stack.url + "/slow?seconds=0.05", timeout=30).status
            except OSError as exc:
                status = f"{type(exc).__name__}: {exc}"
            statuses.append(status)

    threads = [threading.Thread(target=watch)] + [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    return statuses, seen  # the caller joins by waiting for the drain (see below)


@pytest.mark.parametrize("server", SERVERS)
def test_reloads_and_a_drained_stop_under_get_and_post_load_fail_nothing(tmp_path: Path, server: str) -> None:
    """Reloads (granian: its workers drain, then are replaced one at a time) and a stop with
    drain_delay (readiness 503 while the node still serves, then nginx stops accepting, then the
    app server finishes its requests), under GETs and POSTs: not one request fails."""
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server, WSGISTACK_DRAIN_DELAY="2"))
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    try:
        statuses, seen = _until_drained(stack, clients=16, seconds=60)
        for _ in range(2):
            time.sleep(2)
            rl = cli("reload", str(EXAMPLES / "hello"), *rt, "--no-render")
            assert rl.returncode == 0, rl.stdout + rl.stderr
        time.sleep(12)  # granian: 2.5 s of drain, then 3.5 s per worker; and load all along
        reloaded = len(statuses)
        stack.proc.send_signal(signal.SIGTERM)  # drain_delay: readiness answers 503 for 2 s first
        assert stack.proc.wait(30) == 0, stack.log()
        time.sleep(1)
    finally:
        if stack.proc.poll() is None:
            stack.stop()
    failed = [s for s in statuses if s != 200]
    posts = len(statuses) // 2
    print(f"{server}: {len(statuses)} requests (~{posts} POSTs), {reloaded} before the stop, 2 reloads, "
          f"drained stop: {len(failed)} failed {failed[:5]}")
    assert "drained" in seen, stack.log()
    assert reloaded > 200 and len(statuses) > reloaded, len(statuses)
    assert failed == [], (failed[:5], stack.log()[-3000:])


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
    assert "uwsgi.threads: 2 -> auto (default)" in rl.stdout
    assert http(stack.url + "/hello").status == 200


def test_reload_verify_probes_the_stack_while_it_reloads_and_says_what_failed(tmp_path: Path, stacks: list[Stack]) -> None:
    """`reload --verify`: the tool's own bounded probe at the stack's address while uWSGI's
    workers restart; 0 failed, its line said; a path that fails before anything changed is
    verify.E002 and reloads nothing."""
    import re

    project = shared_dir(tmp_path, "proj")
    (project / "hello.py").write_text((EXAMPLES / "hello" / "hello.py").read_text())
    (project / "wsgistack.toml").write_text('[app]\ntarget = "hello:application"\n')
    stack = start_stack(tmp_path, project, "--processes", "2")
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    done = cli("reload", str(project), *rt, "--verify", "/hello", "--verify-post", "/upload-size", "--verify-seconds", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    line = re.search(r"verify: (\d+) requests, (\d+) failed, p99 during the swap [\d.]+ ms \((\d+) GET .*; (\d+) POST",
                     done.stdout + done.stderr)
    assert line and line.group(2) == "0" and int(line.group(3)) > 5 and int(line.group(4)) > 5, done.stdout + done.stderr
    assert "graceful reload requested" in done.stdout
    missing = cli("reload", str(project), *rt, "--verify", "/no-such-page-xyz")  # the app answers 404 there
    assert missing.returncode != 0 and "error[verify.E002]" in missing.stderr and "404" in missing.stderr, missing.stderr
    assert "graceful reload requested" not in missing.stdout


LONG_APP = """\
import os, time
from urllib.parse import parse_qs
VERSION = "v1"
def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if environ["PATH_INFO"] == "/slow":
        # Each run of a request is counted: a reload must neither kill nor re-run one.
        with open(os.environ["RUNS_LOG"], "a") as log:
            log.write("%s %s %d\\n" % (environ["REQUEST_METHOD"], query["id"][0], os.getpid()))
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        time.sleep(float(query["seconds"][0]))
    body = VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def replace_file(path: Path, text: str) -> None:
    """Change a file as an editor or a deploy does, in one step: with lazy_apps a worker may be
    importing the module at this very moment, and a half-written file would fail its import
    (need-app then stops uWSGI: a CI run saw it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def test_a_reload_lets_12s_requests_finish_and_chain_needs_lazy_apps(tmp_path: Path, stacks: list[Stack]) -> None:
    """Issue 24 item 2: uWSGI's reload mercy was 8 s (stop_timeout) while request_timeout is
    30 s: a 12 s POST got a 502, a 12 s GET was killed and run again by nginx's retry."""
    project = shared_dir(tmp_path, "proj")
    (project / "app.py").write_text(LONG_APP)
    runs = app_writable(shared_dir(tmp_path, "runs")) / "runs.log"
    (project / "wsgistack.toml").write_text(f'[app]\ntarget = "app:application"\nenv = {{ RUNS_LOG = "{runs}" }}\n')
    stack = start_stack(tmp_path, project, ready_path="/")
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    assert "worker-reload-mercy = 32\n" in (stack.runtime_dir / "uwsgi.ini").read_text()
    before = {w["pid"] for w in json.loads(cli("status", str(project), *rt, "--json").stdout)["stats"]["workers"]}

    requests = {"post": InBackground(f"{stack.url}/slow?seconds=12&id=post", method="POST", data=b"x" * 1000),
                "get": InBackground(f"{stack.url}/slow?seconds=12&id=get", method="GET")}
    wait_in_flight(stack.runtime_dir, count=2)
    rl = cli("reload", str(project), *rt)
    assert rl.returncode == 0, rl.stdout + rl.stderr
    assert "graceful reload requested" in rl.stdout
    # A request that arrives during the reload waits for the new workers (queued, never refused).
    started = time.monotonic()
    assert http(stack.url + "/", timeout=60).status == 200
    waited = time.monotonic() - started
    results = {key: request.outcome(60) for key, request in requests.items()}
    assert results == {"post": 200, "get": 200}, results
    lines = runs.read_text().splitlines()
    assert sorted(line.rsplit(" ", 1)[0] for line in lines) == ["GET get", "POST post"], lines  # each ran once
    after = {w["pid"] for w in json.loads(cli("status", str(project), *rt, "--json").stdout)["stats"]["workers"]}
    assert after.isdisjoint(before)
    print(f"a request arriving during the reload waited {waited:.1f}s")

    # --chain without lazy_apps used to exit 0 and keep the old code: refused, nothing done.
    replace_file(project / "app.py", LONG_APP.replace('"v1"', '"v2"'))
    chain = cli("reload", str(project), *rt, "--chain")
    assert chain.returncode == 2, chain.stdout + chain.stderr
    assert "error[ops.E005]" in chain.stderr and "app.lazy_apps" in chain.stderr
    assert {w["pid"] for w in json.loads(cli("status", str(project), *rt, "--json").stdout)["stats"]["workers"]} == after
    assert http(stack.url + "/").body == b"v1"

    # With lazy_apps: one graceful reload applies it, then --chain loads the new code.
    (project / "wsgistack.toml").write_text(
        f'[app]\ntarget = "app:application"\nlazy_apps = true\nenv = {{ RUNS_LOG = "{runs}" }}\n')
    applied = cli("reload", str(project), *rt)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "app.lazy_apps: false -> true (wsgistack.toml)" in applied.stdout
    assert http(stack.url + "/", timeout=60).body == b"v2"
    replace_file(project / "app.py", LONG_APP.replace('"v1"', '"v3"'))
    chained = cli("reload", str(project), *rt, "--chain")
    assert chained.returncode == 0, chained.stdout + chained.stderr
    assert "chain reload requested" in chained.stdout
    # A chain reload replaces one worker after the other: wait until every answer is the new code.
    deadline = time.monotonic() + 30
    while {http(stack.url + "/").body for _ in range(10)} != {b"v3"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {http(stack.url + "/").body for _ in range(10)} == {b"v3"}


def test_a_granian_reload_lets_12s_requests_finish(tmp_path: Path, stacks: list[Stack]) -> None:
    """Issue 24 item 2 on the second app server (issue 25: every guarantee on both): granian's
    reload drains each worker and kills it only past --workers-kill-timeout (request_timeout),
    so a 12 s POST and a 12 s GET in flight both finish, each runs once, and a request arriving
    during the reload is answered."""
    project = shared_dir(tmp_path, "proj")
    (project / "app.py").write_text(LONG_APP)
    runs = app_writable(shared_dir(tmp_path, "runs")) / "runs.log"
    (project / "wsgistack.toml").write_text(f'[app]\ntarget = "app:application"\nenv = {{ RUNS_LOG = "{runs}" }}\n')
    env = server_env("granian")
    stack = start_stack(tmp_path, project, env=env, ready_path="/")
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    processes = json.loads((stack.runtime_dir / "processes.json").read_text())["processes"]
    [granian] = [p for p in processes if p["name"] == "granian"]
    assert granian["argv"][granian["argv"].index("--workers-kill-timeout") + 1] == "30"
    before = {w["pid"] for w in json.loads(cli("status", str(project), *rt, "--json", env=env).stdout)["stats"]["workers"]}
    requests = {"post": InBackground(f"{stack.url}/slow?seconds=12&id=post", method="POST", data=b"x" * 1000),
                "get": InBackground(f"{stack.url}/slow?seconds=12&id=get", method="GET")}
    # At least one in a worker's thread; the other may wait inside the same worker (granian
    # takes a kept connection's next request whether or not its thread is free).
    wait_in_flight(stack.runtime_dir, count=1)
    time.sleep(0.5)
    rl = cli("reload", str(project), *rt, env=env)
    assert rl.returncode == 0, rl.stdout + rl.stderr
    assert "then granian replaces them one at a time" in rl.stdout
    arriving = http(stack.url + "/", timeout=60).status
    results = {key: request.outcome(60) for key, request in requests.items()}
    assert results == {"post": 200, "get": 200} and arriving == 200, (results, arriving)
    lines = runs.read_text().splitlines()
    assert sorted(line.rsplit(" ", 1)[0] for line in lines) == ["GET get", "POST post"], lines  # each ran once
    deadline = time.monotonic() + 60  # granian replaces its workers in the background; bounded
    while time.monotonic() < deadline:
        after = {w["pid"] for w in json.loads(cli("status", str(project), *rt, "--json", env=env).stdout)["stats"]["workers"]}
        if after and after.isdisjoint(before):
            break
        time.sleep(0.5)
    assert after and after.isdisjoint(before), (before, after)
    assert "SIGKILL" not in stack.log() and "ran past request_timeout" not in stack.log()


def test_a_reload_says_when_a_restart_would_run_the_same(tmp_path: Path, stacks: list[Stack]) -> None:
    """Found trying issue 25's new default as a user: with granian, uwsgi.threads = "auto" runs
    four threads, and a reload that spelled it 4 said "needs a restart" although a restart would
    run the same; a count that differs still says so, with the table a restart would run."""
    project = shared_dir(tmp_path, "proj")
    (project / "app.py").write_text(LONG_APP)
    config = '[app]\ntarget = "app:application"\n'
    (project / "wsgistack.toml").write_text(config)
    env = server_env("granian")
    stack = start_stack(tmp_path, project, env=env, ready_path="/")
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    table = (stack.runtime_dir / "processes.json").read_text()
    (project / "wsgistack.toml").write_text(config + "[uwsgi]\nthreads = 4\n")
    same = cli("reload", str(project), *rt, "--dry-run", env=env)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "  uwsgi.threads: auto -> 4 (wsgistack.toml) [the same as what runs: a restart would change nothing]" in same.stdout
    assert "needs a restart" not in same.stdout and "processes.json" not in same.stdout, same.stdout

    (project / "wsgistack.toml").write_text(config + "[uwsgi]\nthreads = 8\n")
    other = cli("reload", str(project), *rt, "--dry-run", env=env)
    assert other.returncode == 0, other.stdout + other.stderr
    assert "  uwsgi.threads: auto -> 8 (wsgistack.toml) [not applied: needs a restart]" in other.stdout
    # The diff shows the table a restart would run (not the running one again).
    assert "# processes.json: changes, but only a restart applies it" in other.stdout
    assert "\n-        \"4\",\n+        \"8\",\n" in other.stdout, other.stdout
    assert (stack.runtime_dir / "processes.json").read_text() == table  # a dry run writes nothing
    assert http(stack.url + "/").status == 200


def test_reload_diff_and_dry_run_show_each_file_and_what_only_a_restart_applies(tmp_path: Path, stacks: list[Stack]) -> None:
    """Issue 24 item 7: `reload` said "updated nginx.conf". --dry-run prints the setting changes
    and a unified diff of each rendered file and applies nothing; --diff prints it and applies;
    what a reload cannot apply says so (processes.json, a new STATIC_ROOT collectstatic never filled)."""
    import secrets
    import shutil

    project = shared_dir(tmp_path, "demo")
    shutil.copytree(EXAMPLES / "django_demo", project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("var", "__pycache__"))
    data = app_writable(shared_dir(tmp_path, "data"))
    env = clean_env(DEMO_DATA_DIR=str(data), DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    stack = start_stack(tmp_path, project, env=env)
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    files = {p.name: p.read_text() for p in stack.runtime_dir.iterdir() if p.suffix in (".conf", ".ini", ".json") and p.is_file()}

    same = cli("reload", str(project), *rt, "--dry-run", env=env)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no setting changes" in same.stdout and "no rendered file changes" in same.stdout
    assert "dry run: nothing written, nothing reloaded" in same.stdout

    # A code change (settings.py's STATIC_ROOT), a setting a reload applies, one it cannot,
    # and a background process (the process manager's table).
    settings = project / "demo" / "settings.py"
    settings.write_text(settings.read_text().replace('env_path("DJANGO_STATIC_ROOT", DATA_DIR / "static")',
                                                     'DATA_DIR / "static2"'))
    (project / "wsgistack.toml").write_text('stop_timeout = 20\n' + (project / "wsgistack.toml").read_text()
                                            + '[uwsgi]\nthreads = 2\n[processes.tick]\ncommand = "sleep 3600"\n')
    dry = cli("reload", str(project), *rt, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    out = dry.stdout
    assert "  uwsgi.threads: auto -> 2 (wsgistack.toml)" in out
    assert "  stop_timeout: 8 -> 20 (wsgistack.toml) [not applied: needs a restart]" in out
    assert "--- uwsgi.ini (running)\n+++ uwsgi.ini (after the reload)\n" in out
    assert "\n-threads = 1\n+threads = 2\n" in out
    assert "--- nginx.conf (running)" in out and f"+            alias {data}/static2/;" in out, out
    assert "# processes.json: changes, but only a restart applies it" in out and '+      "name": "tick",' in out
    assert f"note: STATIC_ROOT is now {data}/static2 (the start collected into {data}/static)" in out
    assert "dry run: nothing written, nothing reloaded" in out and "updated " not in out
    assert {name: (stack.runtime_dir / name).read_text() for name in files} == files  # nothing written

    applied = cli("reload", str(project), *rt, "--diff", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "\n-threads = 1\n+threads = 2\n" in applied.stdout and "updated uwsgi.ini" in applied.stdout
    assert "threads = 2\n" in (stack.runtime_dir / "uwsgi.ini").read_text()
    assert (stack.runtime_dir / "processes.json").read_text() == files["processes.json"]  # the running table
    assert http(stack.url + "/healthz").status == 200


@pytest.mark.parametrize("server", SERVERS)
def test_stop_from_another_shell_finishes_the_requests_in_flight(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    """`wsgistack stop` (found missing trying the wheel as a user: "No such command 'stop'")
    stops a stack as Ctrl-C in its own shell would: a request in the app finishes (200), the
    manager exits, and then nothing answers."""
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server))
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    request = InBackground(stack.url + "/slow?seconds=2", timeout=30)
    wait_in_flight(stack.runtime_dir)
    stopped = cli("stop", str(EXAMPLES / "hello"), *rt, "--wait", "30")
    status = request.outcome(30)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "SIGTERM to its manager" in stopped.stdout and "stopped in " in stopped.stdout
    assert status == 200, status
    assert stack.proc.wait(timeout=10) == 0
    with pytest.raises(OSError):
        http(stack.url + "/hello", timeout=5)
    again = cli("stop", str(EXAMPLES / "hello"), *rt)
    assert again.returncode == 1 and "error[ops.E001]: nothing is running in" in again.stderr, again.stderr


def test_stop_never_signals_a_process_that_took_a_stale_managers_pid(tmp_path: Path, stacks: list[Stack]) -> None:
    """The attacker's case: the manager's state names a pid the kernel has since given to
    another process (a stale file, or the pid reused after a crash). `stop` must not send that
    process SIGTERM: it started after the manager the state describes."""
    stack = start_stack(tmp_path, EXAMPLES / "hello")
    stacks.append(stack)
    rt = ["--runtime-dir", str(stack.runtime_dir)]
    state_file = stack.runtime_dir / "manager.json"
    state = json.loads(state_file.read_text())
    stack.proc.send_signal(signal.SIGKILL)  # the manager is gone; its children die with it
    stack.proc.wait(timeout=10)
    time.sleep(1.1)  # the newcomer starts visibly later than the manager did
    newcomer = subprocess.Popen(["sleep", "60"])
    try:
        state["manager_pid"] = newcomer.pid
        state_file.write_text(json.dumps(state))  # as root's own file, the way the manager writes it
        refused = cli("stop", str(EXAMPLES / "hello"), *rt)
        assert refused.returncode == 1 and "error[ops.E001]: nothing is running in" in refused.stderr, refused.stderr
        time.sleep(0.5)
        assert newcomer.poll() is None  # never signalled
    finally:
        newcomer.kill()
        newcomer.wait()
