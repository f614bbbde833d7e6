"""Running the balancer: HAProxy's config checked by HAProxy itself, the runtime directory
and the runtime API (`wsgistack rollout`, drain/undrain at the balancer)."""

from __future__ import annotations

from pathlib import Path

from wsgistack import ids
from wsgistack.errors import WsgistackError
from wsgistack.plan.balancer import BalancerPlan

INSTALL_HAPROXY_HINT = (
    "install it: sudo apt-get install haproxy (Debian/Ubuntu), sudo dnf install haproxy (Fedora), "
    "brew install haproxy (macOS)"
)


def check_config(plan: BalancerPlan, path: Path) -> None:
    """``haproxy -c`` on the written config: HAProxy's own word before anything starts."""
    import subprocess

    assert plan.haproxy is not None
    out = subprocess.run([plan.haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise WsgistackError(
            ids.BALANCER_E003,
            f"HAProxy refuses the rendered {path}",
            "this is a wsgistack bug unless a [balancer] setting is at fault: check the lines HAProxy names",
            details=(out.stdout + out.stderr).strip()[-4000:],
        )




def socket_answers(path: Path) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(path))
    except OSError:
        return False
    return True


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
