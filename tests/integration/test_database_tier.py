"""The Django demo over a real MariaDB primary + replica (seed 004's database tier): reads on
the replica, writes and sessions on the primary, read-your-writes, and a replica that is
stopped, lags or comes back (fault test 4 of issue 11). Plus HAProxy fronting the pair."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, WSGISTACK, Stack, app_writable, clean_env, free_port, http, shared_dir, start_stack
from tests.integration import mariadb

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not mariadb.available(), reason="mariadb-server not installed (make test installs it)"),
]
CHECK_SECONDS = 0.5


@pytest.fixture(scope="module")
def pair() -> Iterator[mariadb.Pair]:
    base = Path(shared_dir_module())
    p = mariadb.start_pair(base)
    try:
        yield p
    finally:
        p.stop()
        shutil.rmtree(base, ignore_errors=True)


def shared_dir_module() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="wst-mariadb-")


class User:
    """A browser: cookies (session, CSRF, the router's pinning cookie) kept across requests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.url + path, timeout=30) as resp:
            assert resp.status == 200
            return str(resp.read().decode())

    def post(self, path: str, form: dict[str, str]) -> str:
        page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **form}).encode()
        with self.opener.open(self.url + path, data, timeout=30) as resp:
            assert resp.status == 200
            return str(resp.read().decode())


def start_demo(tmp_path: Path, pair: mariadb.Pair) -> Stack:
    env = clean_env(
        DEMO_DATA_DIR=str(app_writable(shared_dir(tmp_path, "data"))),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=pair.url(pair.primary),
        DATABASE_REPLICA_URLS=pair.url(pair.replica),
        DATABASE_REPLICA_CHECK_SECONDS=str(CHECK_SECONDS),
    )
    return start_stack(tmp_path, EXAMPLES / "django_demo", "--migrate", "--processes", "2", env=env)


def anonymous_home(url: str) -> str:
    resp = http(url + "/")
    assert resp.status == 200, resp
    return resp.body.decode()


def test_replica_down_lagging_and_back_read_your_writes(tmp_path: Path, pair: mariadb.Pair, stacks: list[Stack]) -> None:
    stack = start_demo(tmp_path, pair)
    stacks.append(stack)
    alice = User(stack.url)
    page = alice.post("/accounts/register/", {"username": "alice", "password1": "a-Very-long-pw-42",
                                              "password2": "a-Very-long-pw-42"})
    assert "alice" in page
    # The post redirects to the list: the same user sees it at once (pinned to the primary).
    assert "first post" in alice.post("/posts/new/", {"body": "first post"})
    assert any(c.name == "multidb_pin_writes" for c in alice.jar)
    pair.wait_caught_up()

    # Anonymous reads go to the replica.
    before = pair.replica.status("Com_select")
    for _ in range(4):
        assert "first post" in anonymous_home(stack.url)
    assert pair.replica.status("Com_select") > before, "reads did not reach the replica"

    # The replica is stopped: every page still works, reads fall back to the primary.
    pair.replica.stop()
    before = pair.primary.status("Com_select")
    for _ in range(8):
        assert "first post" in anonymous_home(stack.url)
    assert pair.primary.status("Com_select") > before
    assert "while the replica is down" in alice.post("/posts/new/", {"body": "second post while the replica is down"})
    assert "while the replica is down" in anonymous_home(stack.url)

    # It comes back: it catches up by replication, and reads return to it.
    pair.replica.start()
    pair.wait_caught_up()
    time.sleep(CHECK_SECONDS * 3)
    deadline = time.monotonic() + 30
    before = pair.replica.status("Com_select")
    while pair.replica.status("Com_select") <= before + 2 and time.monotonic() < deadline:
        assert "while the replica is down" in anonymous_home(stack.url)
        time.sleep(0.1)
    assert pair.replica.status("Com_select") > before + 2, "reads did not return to the replica"

    # The replica lags (its SQL thread stopped): it is skipped, and nobody reads stale posts
    # once the workers' checks have seen it; the writer sees the post at once, pinned.
    pair.replica.sql("STOP SLAVE SQL_THREAD")
    try:
        assert "third post, replica lagging" in alice.post("/posts/new/", {"body": "third post, replica lagging"})
        time.sleep(CHECK_SECONDS * 3)
        for _ in range(6):
            assert "third post, replica lagging" in anonymous_home(stack.url)
    finally:
        pair.replica.sql("START SLAVE SQL_THREAD")
    pair.wait_caught_up()
    # Sessions and auth read from the primary: the login holds on every request.
    for _ in range(3):
        assert "alice" in alice.get("/")


def test_balancer_fronts_the_database_pair(tmp_path: Path, pair: mariadb.Pair) -> None:
    """HAProxy in tcp mode with mysql-check: db_port reaches the primary, db_read_port the
    replica, and the primary when the replica is down (its backup)."""
    import pymysql

    if pair.replica.proc is None or pair.replica.proc.poll() is not None:
        pair.replica.start()
    port, stats, write_port, read_port = free_port(), free_port(), free_port(), free_port()
    runtime = shared_dir(tmp_path, "rt-balancer")
    log = open(tmp_path / "balancer.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [*WSGISTACK, "balance", str(tmp_path), "--host", "127.0.0.1", "--port", str(port), "--stats-port", str(stats),
         "--runtime-dir", str(runtime), "--node", "127.0.0.2:9"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        env=clean_env(WSGISTACK_BALANCER__DB_PRIMARY=f"127.0.0.1:{pair.primary.port}",
                      WSGISTACK_BALANCER__DB_REPLICAS=f"127.0.0.1:{pair.replica.port}",
                      WSGISTACK_BALANCER__DB_PORT=str(write_port), WSGISTACK_BALANCER__DB_READ_PORT=str(read_port)))

    def server_id(db_port: int) -> int:
        conn = pymysql.connect(host="127.0.0.1", port=db_port, user=mariadb.USER, password=mariadb.PASSWORD,
                               database=mariadb.DB, connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT @@server_id")
                return int(cursor.fetchone()[0])
        finally:
            conn.close()

    def until(expected: int, db_port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if server_id(db_port) == expected:
                    return
            except pymysql.MySQLError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"port {db_port} never reached server {expected}:\n{(tmp_path / 'balancer.log').read_text()}")

    try:
        until(1, write_port)
        until(2, read_port)
        pair.replica.stop()
        until(1, read_port)  # the primary, as the replicas' backup
        pair.replica.start()
        until(2, read_port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_the_demo_test_suite_passes_on_the_pair(tmp_path: Path, pair: mariadb.Pair) -> None:
    """The demo's own tests (SQLite by default, tests/examples) against MariaDB with the router."""
    import sys

    if pair.replica.proc is None or pair.replica.proc.poll() is not None:
        pair.replica.start()
    env = clean_env(DEMO_DATA_DIR=str(tmp_path / "data"), DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
                    DATABASE_URL=pair.url(pair.primary), DATABASE_REPLICA_URLS=pair.url(pair.replica),
                    PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, str(EXAMPLES / "django_demo" / "manage.py"), "test", "--noinput", "posts"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert "OK" in done.stderr
