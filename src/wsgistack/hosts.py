"""Host addresses, one place: what a listen address means, how to reach it, how to write it.

Settings give hosts as users type them: ``127.0.0.1``, ``0.0.0.0``, ``::``, ``[::1]``, ``*``,
``""``, ``localhost`` or a name. nginx's ``listen``, HAProxy's ``bind``, a URL, a readiness
probe and the loopback checks each need a different form; they all come from here.
"""

from __future__ import annotations

import ipaddress

ANY_V4 = ("", "*", "0.0.0.0")  # every IPv4 address ("" and "*": nginx/HAProxy's "any")
ANY = (*ANY_V4, "::")


def bare(host: str) -> str:
    """Without the brackets an IPv6 literal carries in URLs and listen lines."""
    return host.strip().strip("[]")


def is_wildcard(host: str) -> bool:
    return bare(host) in ANY


def is_loopback(host: str) -> bool:
    """localhost or a loopback address (127.0.0.0/8, ::1); a wildcard or a name is not."""
    host = bare(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_public(host: str) -> bool:
    """Reachable from other machines: a wildcard, a non-loopback address or a name."""
    return not is_loopback(host)


def connect_host(host: str) -> str:
    """Where a local client (readiness probe, status) connects to reach a listener on host."""
    host = bare(host)
    if host in ANY_V4:
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_host(host: str) -> str:
    """The host part of a URL that reaches a listener on host (IPv6 in brackets)."""
    host = connect_host(host)
    return f"[{host}]" if ":" in host else host


def listen_address(host: str, port: int) -> str:
    """nginx's ``listen`` / HAProxy's ``bind`` address: a bare port for "any" ("" or "*"),
    IPv6 in brackets."""
    host = host.strip()
    if host in ("", "*"):
        return str(port)
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def connect_address(host: str, port: int) -> str:
    """``host:port`` a local client dials to reach a listener on ``host`` (IPv6 in brackets)."""
    return f"{url_host(host)}:{port}"


def split(address: str) -> tuple[str, int]:
    """``"127.0.0.1:8000"`` / ``"[::1]:8000"`` -> (bare host, port)."""
    host, _, port = address.rpartition(":")
    return bare(host), int(port)


def probe_name(server_names: tuple[str, ...]) -> str:
    """A Host header a probe sends (balancer checks, Kubernetes probes, the HEALTHCHECK): the
    first plain name served; the health paths answer any Host, so localhost otherwise."""
    for name in server_names:
        if "*" not in name and not name.startswith("."):
            return name
    return "localhost"


def is_ip(name: str) -> bool:
    """An IP address literal (IPv6 with or without brackets), not a name."""
    try:
        ipaddress.ip_address(bare(name))
    except ValueError:
        return False
    return True


def is_local(host: str) -> bool:
    """An address of this machine: loopback, localhost, or one a socket can bind here."""
    import socket

    host = bare(host)
    if is_loopback(host):
        return True
    if not is_ip(host):
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, 0))
        except OSError:
            return False
    return True
