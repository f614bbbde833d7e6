"""The Django demo's Cassandra posts backend (POSTS_BACKEND=cassandra, seed 004's PostModel).

No Cassandra or Scylla server can be installed on the machines this suite was written on, so
this test runs only when CASSANDRA_HOSTS names a reachable server (e.g. the `cassandra`
service of `wsgistack compose --fleet N --cassandra`), and says so when it is skipped."""

from __future__ import annotations

import os
import re
import secrets
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, Stack, app_writable, clean_env, shared_dir, start_stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("CASSANDRA_HOSTS"),
                       reason="CASSANDRA_HOSTS is not set: no Cassandra server to test the posts backend against "
                              "(set it to a server's address, e.g. CASSANDRA_HOSTS=127.0.0.1)"),
]


def test_posts_go_to_cassandra_from_forked_workers(tmp_path: Path, stacks: list[Stack]) -> None:
    pytest.importorskip("cassandra", reason="cassandra-driver is not installed (pip install cassandra-driver)")
    keyspace = f"wsgistack_test_{secrets.token_hex(4)}"
    env = clean_env(DEMO_DATA_DIR=str(app_writable(shared_dir(tmp_path, "data"))), DJANGO_SECRET_KEY="x" * 60,
                    POSTS_BACKEND="cassandra", CASSANDRA_HOSTS=os.environ["CASSANDRA_HOSTS"], CASSANDRA_KEYSPACE=keyspace)
    # Two workers, the app loaded in the master before the fork: each must connect on its own.
    stack = start_stack(tmp_path, EXAMPLES / "django_demo", "--migrate", "--processes", "2", env=env)
    stacks.append(stack)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def post(path: str, form: dict[str, str]) -> str:
        page = opener.open(stack.url + path, timeout=30).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **form}).encode()
        return str(opener.open(stack.url + path, data, timeout=30).read().decode())

    post("/accounts/register/", {"username": "cass", "password1": "a-Very-long-pw-42", "password2": "a-Very-long-pw-42"})
    for n in range(4):
        assert f"cassandra post {n}" in post("/posts/new/", {"body": f"cassandra post {n}"})
    for _ in range(6):  # served by both workers
        page = urllib.request.urlopen(stack.url + "/", timeout=30).read().decode()
        assert all(f"cassandra post {n}" in page for n in range(4))
    from cassandra.cluster import Cluster

    cluster = Cluster(os.environ["CASSANDRA_HOSTS"].split(","))
    try:
        s = cluster.connect(keyspace)
        assert len(list(s.execute("SELECT body FROM posts ALLOW FILTERING"))) == 4
        s.execute(f"DROP KEYSPACE {keyspace}")
    finally:
        cluster.shutdown()
