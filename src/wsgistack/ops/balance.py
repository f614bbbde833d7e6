"""A running balancer: HAProxy's runtime API (`wsgistack rollout`, drain/undrain at the
balancer). Its start (plan, render, write, ``haproxy -c``) is :mod:`wsgistack.start.balancer`."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from wsgistack import ids
from wsgistack.errors import WsgistackError



class RuntimeAPI:
    """A few commands of HAProxy's runtime API over its unix socket."""

    def how_to(self, command: str) -> str:
        """A shell line that sends ``command`` (for hints)."""
        return f"echo '{command}' | socat - {self.path}"

    def close(self) -> None:
        pass

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


# --- the runtime API of a balancer in a container -----------------------------------------------
#
# The socket is mode 600 inside the balancer's container: nothing outside reaches it but
# `docker exec`. One exec per command costs a second or more on a loaded machine, so a rollout
# keeps one open: `wsgistack entrypoint --runtime-api` in the container (the same settings as its
# entrypoint, so the same socket) reads one command per line and answers each with a header line
# ("ok N" or "error N") and N bytes.


def relay(api: RuntimeAPI, lines: IO[bytes], out: IO[bytes]) -> None:
    """Serve ``lines`` (one runtime-API command each) until EOF; answers framed as above."""
    for raw in lines:
        line = raw.decode(errors="replace").strip()
        if not line:
            continue
        try:
            status, reply = "ok", api.command(line).encode()
        except WsgistackError as exc:
            status, reply = "error", exc.message.encode()
        out.write(f"{status} {len(reply)}\n".encode() + reply)
        out.flush()


class RelayedRuntimeAPI(RuntimeAPI):
    """The runtime API through a relay process (``docker exec -i BALANCER wsgistack entrypoint
    --runtime-api``), started on first use and kept until :meth:`close`."""

    def __init__(self, argv: Sequence[str], timeout: float = 10.0, describe: str = "") -> None:
        super().__init__(Path("/relayed"), timeout)
        self.argv = list(argv)
        self.describe = describe or shlex.join(self.argv)
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            try:
                self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE)
            except OSError as exc:
                raise self._unreachable(str(exc)) from None
        return self._proc

    def _unreachable(self, why: str) -> WsgistackError:
        return WsgistackError(ids.BALANCER_E006, f"cannot reach HAProxy's runtime API through `{self.describe}`: {why}",
                              "is the balancer's container running (docker-compose ps)? the same compose file and project name?")

    def _read(self, proc: subprocess.Popen[bytes], size: int | None) -> bytes:
        import select

        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + self.timeout
        while size is None or len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise self._unreachable(f"no answer within {self.timeout:g}s")
            chunk = os.read(fd, 1 if size is None else size - len(data))
            if not chunk:
                raise self._unreachable(self._exited(proc))
            data += chunk
            if size is None and data.endswith(b"\n"):
                break
        return data

    @staticmethod
    def _exited(proc: subprocess.Popen[bytes]) -> str:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        return "the relay exited" + (f": {err.splitlines()[-1]}" if err else "")

    def command(self, line: str) -> str:
        proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write(line.encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            raise self._unreachable(self._exited(proc)) from None
        status, _, size = self._read(proc, None).decode().strip().partition(" ")
        reply = self._read(proc, int(size)).decode(errors="replace") if int(size or 0) else ""
        if status != "ok":
            raise self._unreachable(reply)
        return reply

    def how_to(self, command: str) -> str:
        return f"echo '{command}' | {self.describe}"

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
