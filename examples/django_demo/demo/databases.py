"""DATABASE_URL and DATABASE_REPLICA_URLS -> Django's DATABASES (dj-database-url parses them)."""

from __future__ import annotations

from typing import Any

# Seconds a worker waits for a server before giving up: a replica that is down
# must cost a page little, since the router then falls back to the primary.
CONNECT_TIMEOUT = 2


def _parse(url: str) -> dict[str, Any]:
    import dj_database_url

    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0))
    if config["ENGINE"] == "django.db.backends.mysql":
        _mysql_driver()
        options = config.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", CONNECT_TIMEOUT)
        options.setdefault("charset", "utf8mb4")
        # Each statement sees rows committed before it (not a snapshot from the
        # transaction's first read), as on PostgreSQL and SQLite.
        options.setdefault("isolation_level", "read committed")
    return config


def _mysql_driver() -> None:
    """mysqlclient when it is installed (Django's own choice); otherwise PyMySQL, which is
    pure Python (no compiler, no libmariadb headers) and stands in for it."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        import pymysql

        pymysql.install_as_MySQLdb()


def database_settings(primary_url: str, replica_urls: list[str], sqlite_default: dict[str, Any]) -> dict[str, Any]:
    databases: dict[str, Any] = {"default": _parse(primary_url) if primary_url else sqlite_default}
    for number, url in enumerate(replica_urls, start=1):
        replica = _parse(url)
        # Tests (manage.py test) read the primary's test database through it.
        replica["TEST"] = {"MIRROR": "default"}
        databases[f"replica{number}"] = replica
    return databases
