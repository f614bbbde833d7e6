"""Reads to a healthy replica, writes to the primary, read-your-writes by pinning.

django-multidb-router's PinningReplicaRouter does the core: writes go to ``default``; a
request that may write (any method but GET/HEAD/OPTIONS/TRACE) and every request carrying
its pinning cookie (set for MULTIDB_PINNING_SECONDS after such a request) read from the
primary too. So a user who just posted sees the post on whichever node serves the next page,
while the replica catches up.

Why pinning rather than MASTER_GTID_WAIT: waiting for the replica to reach the user's last
write needs that write's GTID carried from request to request (a cookie per user) and a wait
on the replica before each read; pinning needs neither, works with any database, and its
only cost is that a user's reads go to the primary for a few seconds after they write. What
pinning does not cover (a replica more behind than the pinning window) the health check
covers: a replica that does not reach the primary's current GTID position within
DATABASE_REPLICA_MAX_LAG seconds is skipped.

What this class adds to the library's router:

* sessions, auth (users, permissions) and content types always read from the primary: a
  login or a permission change must hold at once, on every node;
* a replica that is down or behind is skipped, each worker re-checking every
  DATABASE_REPLICA_CHECK_SECONDS; with none left, reads go to the primary;
* a safe request (GET/HEAD/OPTIONS) whose replica is lost under it, mid-query (the server
  was killed: MySQL errors 2006/2013), is run once more on the primary instead of ending
  in a 500 (ReplicaFailoverMiddleware): the replica is skipped from then on.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import DatabaseError, OperationalError
from multidb import PinningReplicaRouter
from multidb.pinning import pin_this_thread, this_thread_is_pinned, unpin_this_thread

log = logging.getLogger(__name__)

PRIMARY_ONLY_APPS = frozenset({"sessions", "auth", "contenttypes", "admin"})


class ReplicaHealth:
    """Per worker process: which replicas answer and keep up, re-checked at most every
    ``interval`` seconds each (a request pays for a check at most once per interval)."""

    def __init__(self, aliases: list[str], interval: float, max_lag: float) -> None:
        self.aliases = aliases
        self.interval = interval
        self.max_lag = max_lag
        self.healthy: dict[str, bool] = {}
        self.checked_at: dict[str, float] = {}
        self._cycle = itertools.cycle(aliases)

    def pick(self) -> str:
        for _ in range(len(self.aliases)):
            alias = next(self._cycle)
            if not _is_primary(alias) and self.is_healthy(alias):
                return alias
        return DEFAULT_DB_ALIAS

    def is_healthy(self, alias: str) -> bool:
        now = time.monotonic()
        if now - self.checked_at.get(alias, float("-inf")) >= self.interval:
            self.checked_at[alias] = now
            healthy = self._check(alias)
            if healthy != self.healthy.get(alias, True):
                log.warning("replica %s is %s", alias, "back: reads return to it" if healthy else "skipped: reads go to the primary")
            self.healthy[alias] = healthy
        elif self.healthy.get(alias) and connections[alias].connection is None:
            # Healthy at the last check, but this request has no connection yet: open it
            # here, so a replica that just went down costs a fallback, not a failed page.
            try:
                connections[alias].ensure_connection()
            except DatabaseError:
                self.healthy[alias] = False
                self.checked_at[alias] = now
                log.warning("replica %s is skipped: reads go to the primary", alias)
        return self.healthy[alias]

    def _check(self, alias: str) -> bool:
        replica = connections[alias]
        try:
            replica.ensure_connection()
            if replica.vendor != "mysql" or not replica.mysql_is_mariadb:
                return True
            return self._caught_up(alias)
        except DatabaseError as exc:
            log.info("replica %s: %s", alias, exc)
            replica.close()
            return False

    def _caught_up(self, alias: str) -> bool:
        """MariaDB GTID: does the replica apply what the primary has now within max_lag
        seconds? (Returns at once when it already has: the usual case.)"""
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
            position = str(cursor.fetchone()[0] or "")
        if not position:
            return True
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s)", [position, self.max_lag])
            return bool(cursor.fetchone()[0] == 0)


def _is_primary(alias: str) -> bool:
    """Under `manage.py test` each replica is a test mirror of the primary (TEST.MIRROR):
    a TestCase's data stays in the primary's uncommitted transaction, so reads are the
    primary's."""
    return bool(getattr(settings, "TESTING", False)) and (
        settings.DATABASES[alias].get("TEST", {}).get("MIRROR") == DEFAULT_DB_ALIAS
    )


_health: ReplicaHealth | None = None


def health() -> ReplicaHealth:
    global _health
    if _health is None:
        _health = ReplicaHealth(
            list(settings.REPLICA_DATABASES),
            interval=float(getattr(settings, "DATABASE_REPLICA_CHECK_SECONDS", 1)),
            max_lag=float(getattr(settings, "DATABASE_REPLICA_MAX_LAG", 0.5)),
        )
    return _health


class ReplicaRouter(PinningReplicaRouter):
    def db_for_read(self, model: Any, **hints: Any) -> str:
        if model._meta.app_label in PRIMARY_ONLY_APPS or this_thread_is_pinned():
            return DEFAULT_DB_ALIAS
        return health().pick()


# MySQL client errors meaning "the server went away": can't connect (2002/2003), gone (2006),
# lost during the query (2013). Not a query error: the same read succeeds elsewhere.
SERVER_LOST = frozenset({2002, 2003, 2006, 2013})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReplicaFailoverMiddleware:
    """A safe request whose replica died under it runs once more, on the primary.

    Measured without it (issue 23): `docker kill` of the replica under load cost 2 of 600
    requests a 500 (pymysql 2013 "Lost connection to MySQL server during query"): reads in
    flight on the replica at that instant. The router's health check cannot help there,
    the connection was good when the query started.
    """

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        if request.method not in SAFE_METHODS or this_thread_is_pinned():
            return None
        # Django's OperationalError carries the driver's args: (2013, "Lost connection ...").
        code = exception.args[0] if isinstance(exception, OperationalError) and exception.args else None
        if code not in SERVER_LOST or not settings.REPLICA_DATABASES:
            return None
        lost = [a for a in settings.REPLICA_DATABASES if not _answers(a)]
        if not lost:
            return None  # the primary went away, or something else: the 500 stands
        now = time.monotonic()
        for alias in lost:
            health().healthy[alias] = False
            health().checked_at[alias] = now
            log.warning("replica %s lost during %s %s: skipped, the request runs again on the primary",
                        alias, request.method, request.path)
        match = request.resolver_match
        pin_this_thread()
        try:
            return match.func(request, *match.args, **match.kwargs)
        finally:
            unpin_this_thread()


def _answers(alias: str) -> bool:
    connection = connections[alias]
    try:
        connection.close()
        connection.ensure_connection()
        return True
    except DatabaseError:
        connection.close()
        return False
