"""The config model's validators, directly: each accepts what it should and refuses with a
message that says what is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from wsgistack.config.model import AppSection, Config, PathMapping, ServerSection, UwsgiSection, parse_size


def refused(model: type, **values: object) -> str:
    with pytest.raises(ValidationError) as exc:
        model(**values)
    return str(exc.value)


@pytest.mark.parametrize("target", ["auto", "app", "pkg.mod", "app:application", "pkg.web:create_app()"])
def test_targets_accepted(target: str) -> None:
    assert AppSection(target=f" {target} ").target == target


@pytest.mark.parametrize("target", ["app:", "app:create_app(1)", "1app:x", "app:a.b", "a b:c", "app:x()()"])
def test_targets_refused(target: str) -> None:
    assert "is not a WSGI target" in refused(AppSection, target=target)


def test_static_mapping_urls() -> None:
    assert PathMapping(url="/static/", dir=Path("s")).url.startswith("/static")
    assert "absolute URL path" in refused(PathMapping, url="static/", dir=Path("s"))
    assert "absolute URL path" in refused(PathMapping, url="/a/../b/", dir=Path("s"))
    assert "hide the application" in refused(PathMapping, url="/", dir=Path("s"))


def test_server_section() -> None:
    assert "between 1 and 1024" in refused(ServerSection, worker_processes=0)
    assert "between 1 and 1024" in refused(ServerSection, worker_processes=100000)
    assert ServerSection(worker_processes="auto").worker_processes == "auto"
    assert "not a plain URL path" in refused(ServerSection, live_path="/a/../b")
    assert "different paths" in refused(ServerSection, live_path="/h", ready_path="/h")
    assert "0 would disable" in refused(ServerSection, max_body_size="0")
    assert "not a host name" in refused(ServerSection, server_names=("bad name",))
    assert "at least one server name" in refused(ServerSection, server_names=())
    assert ServerSection(server_names=("*", "example.com", "[::1]")).server_names == ("*", "example.com", "[::1]")
    assert "not-a-cidr" in refused(ServerSection, trusted_proxies=("not-a-cidr",))
    assert ServerSection(trusted_proxies=("10.0.0.0/8", "::1")).trusted_proxies == ("10.0.0.0/8", "::1")


def test_uwsgi_section() -> None:
    assert "between 1 and 1024" in refused(UwsgiSection, processes=0)
    assert "between 1 and 1024" in refused(UwsgiSection, processes=10**26)
    assert "between 1 and 65535" in refused(UwsgiSection, listen=0)
    assert UwsgiSection(processes="auto", listen=128).listen == 128
    assert "not a uWSGI option name" in refused(UwsgiSection, options={"Bad_Key": "1"})
    assert "spans lines" in refused(UwsgiSection, options={"route": "a\nb"})
    assert UwsgiSection(options={"harakiri-verbose": True}).options == {"harakiri-verbose": True}


def test_threads_auto_follows_the_app_server() -> None:
    # A granian worker takes requests while busy: four threads, so that a slow one does not stall
    # them (docs/benchmarks.md, *Threads for granian*); uWSGI's workers gain nothing from threads.
    assert UwsgiSection().threads == "auto" and Config().worker_threads == 1
    assert Config(server={"app_server": "granian"}).worker_threads == 4
    assert Config(server={"app_server": "granian"}, uwsgi={"threads": 1}).worker_threads == 1
    assert Config(uwsgi={"threads": 8}).worker_threads == 8
    assert "between 1 and 256" in refused(UwsgiSection, threads=0)
    assert "between 1 and 256" in refused(UwsgiSection, threads=257)
    assert "between 1 and 256" in refused(UwsgiSection, threads=1e26)


def test_sizes() -> None:
    assert parse_size("10M") == 10 * 1024**2 and parse_size("512k") == 512 * 1024 and parse_size(7) == 7
    for bad in ("10X", "-1", True, -5):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_unknown_keys_are_refused_and_the_tree_is_frozen() -> None:
    assert "Extra inputs are not permitted" in refused(Config, nonsense=1)
    config = Config()
    with pytest.raises(ValidationError):
        config.role = "web"  # type: ignore[misc]
