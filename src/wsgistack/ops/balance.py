"""A running balancer: HAProxy's runtime API (`wsgistack rollout`, drain/undrain at the
balancer). Its start (plan, render, write, ``haproxy -c``) is :mod:`wsgistack.start.balancer`."""

from __future__ import annotations

from pathlib import Path

from wsgistack import ids
from wsgistack.errors import WsgistackError



class RuntimeAPI:
    """A few commands of HAProxy's runtime API over its unix socket."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, line: str) -> str:
        import socket

        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                s.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise WsgistackError(
                ids.BALANCER_E006,
                f"cannot reach HAProxy's runtime API at {self.path}: {exc.strerror or exc}",
                "is `wsgistack balance` running with the same settings (runtime_dir)? run this as the same user",
            ) from None
        return b"".join(chunks).decode()

    def set_state(self, backend: str, server: str, state: str) -> None:
        """``state``: ready, drain or maint."""
        reply = self.command(f"set server {backend}/{server} state {state}").strip()
        if reply:
            raise WsgistackError(ids.BALANCER_E007, f"HAProxy refused to set {server} {state}: {reply}", "")

    def stats(self) -> list[dict[str, str]]:
        """``show stat`` as one dict per line (frontends, servers, backends)."""
        import csv

        text = self.command("show stat").lstrip("# ")
        return [dict(row) for row in csv.DictReader(text.splitlines()) if row.get("pxname")]

    def server_stat(self, backend: str, server: str) -> dict[str, str]:
        for row in self.stats():
            if row["pxname"] == backend and row["svname"] == server:
                return row
        raise WsgistackError(ids.BALANCER_E002, f"HAProxy has no server {backend}/{server}", "")
