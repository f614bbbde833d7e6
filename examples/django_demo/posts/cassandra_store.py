"""Posts in Cassandra (seed 004's PostModel), selected with POSTS_BACKEND=cassandra.

CASSANDRA_HOSTS (comma-separated contact points; the driver discovers the rest of the
cluster), CASSANDRA_KEYSPACE (default posts_db), CASSANDRA_REPLICATION (the keyspace's
replication factor when it is created, default 1).

Fork-safe under uWSGI: the driver's connections and its event-loop thread must not cross a
fork, so nothing connects at import; each process connects on its first use (the session
remembers the pid it was made in), i.e. after uWSGI forked the worker, even without lazy-apps.
Users, sessions and uploads stay in Django's database and storage; only posts live here.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

_lock = threading.Lock()
_session: Any = None
_pid = 0

# One partition per day, newest first within it: the home page reads today's and
# yesterday's partitions, never the whole table.
SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    day text,
    created_at timeuuid,
    author text,
    body text,
    image text,
    PRIMARY KEY ((day), created_at)
) WITH CLUSTERING ORDER BY (created_at DESC)
"""


def session() -> Any:
    global _session, _pid
    with _lock:
        if _session is None or _pid != os.getpid():
            from cassandra.cluster import Cluster

            cluster = Cluster(settings.CASSANDRA_HOSTS, connect_timeout=5)
            s = cluster.connect()
            keyspace = settings.CASSANDRA_KEYSPACE
            s.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                f"{{'class': 'SimpleStrategy', 'replication_factor': {int(settings.CASSANDRA_REPLICATION)}}}"
            )
            s.set_keyspace(keyspace)
            s.execute(SCHEMA)
            _session, _pid = s, os.getpid()
        return _session


@dataclass(frozen=True)
class Author:
    username: str


@dataclass(frozen=True)
class Image:
    name: str

    @property
    def url(self) -> str:
        return str(default_storage.url(self.name))


@dataclass(frozen=True)
class CassandraPost:
    """What the post list template reads from a Post: author.username, body, image, created_at."""

    author: Author
    body: str
    image: Image | None
    created_at: datetime


class PostModel:
    """Seed 004's class methods: create a post, read the latest."""

    @classmethod
    def create(cls, author: str, body: str, image: Any = None) -> None:
        name = default_storage.save(f"posts/{uuid.uuid4().hex}-{image.name}", image) if image else ""
        now = datetime.now(timezone.utc)
        session().execute(
            "INSERT INTO posts (day, created_at, author, body, image) VALUES (%s, now(), %s, %s, %s)",
            (now.strftime("%Y-%m-%d"), author, body, name),
        )

    @classmethod
    def latest(cls, limit: int) -> list[CassandraPost]:
        from datetime import timedelta

        from cassandra.util import datetime_from_uuid1

        today = datetime.now(timezone.utc)
        rows: list[CassandraPost] = []
        for day in (today, today - timedelta(days=1)):
            for row in session().execute(
                "SELECT created_at, author, body, image FROM posts WHERE day = %s LIMIT %s",
                (day.strftime("%Y-%m-%d"), limit - len(rows)),
            ):
                rows.append(CassandraPost(Author(row.author), row.body, Image(row.image) if row.image else None,
                                          datetime_from_uuid1(row.created_at).replace(tzinfo=timezone.utc)))
            if len(rows) >= limit:
                break
        return rows
