"""Container health probe: ``python3 -I -S healthcheck.py`` (stdlib only, no site-packages).

It reads what to ask from the runtime dir's health.json (contracts.Health, written at start),
so one HEALTHCHECK serves every role: with nginx (roles all, web) it sends one HTTP request
through nginx, to the readiness path (server.ready_path: neither the Host check nor the
database matters) unless HEALTHCHECK_PATH names another, with a Host nginx serves, and is
healthy when the status is below 500 (503 while the node drains); in role app it checks
that uWSGI accepts on its socket; in role worker that each background process runs (the
process manager's state file). No urllib (twice the start time) and no curl in the image.
Exit 0 healthy, 1 unhealthy (Docker's contract).
"""

import json
import os
import socket
import stat
import sys

TIMEOUT = 4.0
VERSION = 1  # contracts.Health.VERSION


def _load(path):
    """A JSON file of the stack's own user or root, never a link (the contracts' trust rule)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
            raise ValueError("%s is not the stack's own file" % path)
        return json.load(fh)


def _connect(ready):
    if ready.get("unix"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(ready["unix"])
        return s
    return socket.create_connection((ready["tcp_host"], int(ready["tcp_port"])), timeout=TIMEOUT)


def check(runtime, path=None):
    health = _load(os.path.join(runtime, "health.json"))
    if health.get("version") != VERSION:
        return "health.json is version %r, this probe reads %d" % (health.get("version"), VERSION)
    if health.get("http_port"):
        with _connect({"tcp_host": health["http_host"], "tcp_port": health["http_port"]}) as s:
            request = "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: wsgistack-healthcheck\r\n\r\n" % (
                path or health.get("path") or "/", health.get("host_header") or "localhost")
            s.sendall(request.encode("latin-1"))
            head = s.recv(64)
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return "no HTTP response from nginx (%r)" % head[:32]
        status = int(parts[1])
        return None if status < 500 else "nginx answered %d" % status
    if health.get("uwsgi"):
        _connect(health["uwsgi"]).close()
        return None
    names = health.get("background") or []
    if names and health.get("state_file"):
        # role worker: healthy while each background process runs (not while it waits to
        # be restarted after a crash), as the process manager's state file says.
        state = {p["name"]: p for p in _load(health["state_file"])["processes"]}
        down = [name for name in names if state.get(name, {}).get("state") != "running"]
        return "not running: %s" % ", ".join(down) if down else None
    return "nothing to check in health.json"


def main():
    runtime = os.environ.get("WSGISTACK_RUNTIME_DIR") or "/tmp/wsgistack"
    path = os.environ.get("HEALTHCHECK_PATH")
    try:
        problem = check(runtime, path)
    except (OSError, ValueError, KeyError) as exc:
        problem = "%s: %s" % (type(exc).__name__, exc)
    if problem:
        print("unhealthy: " + problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
