"""Host addresses in one place (wsgistack.hosts): every form a setting can take."""

from __future__ import annotations

import pytest

from wsgistack import hosts


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("*", False), ("10.0.0.5", False), ("example.com", False),
])
def test_loopback(host: str, loopback: bool) -> None:
    assert hosts.is_loopback(host) is loopback
    assert hosts.is_public(host) is not loopback


@pytest.mark.parametrize(("host", "connect", "url"), [
    ("", "127.0.0.1", "127.0.0.1"), ("*", "127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1", "127.0.0.1"),
    ("::", "::1", "[::1]"), ("[::1]", "::1", "[::1]"), ("::1", "::1", "[::1]"), ("10.0.0.5", "10.0.0.5", "10.0.0.5"),
    ("localhost", "localhost", "localhost"),
])
def test_where_a_local_client_connects(host: str, connect: str, url: str) -> None:
    assert hosts.connect_host(host) == connect
    assert hosts.url_host(host) == url


@pytest.mark.parametrize(("host", "listen"), [
    ("", "8000"), ("*", "8000"), ("0.0.0.0", "0.0.0.0:8000"), ("::", "[::]:8000"), ("[::1]", "[::1]:8000"),
    ("::1", "[::1]:8000"), ("127.0.0.1", "127.0.0.1:8000"),
])
def test_listen_address(host: str, listen: str) -> None:
    assert hosts.listen_address(host, 8000) == listen


def test_wildcards() -> None:
    assert all(hosts.is_wildcard(h) for h in ("", "*", "0.0.0.0", "::", "[::]"))
    assert not hosts.is_wildcard("127.0.0.1")
