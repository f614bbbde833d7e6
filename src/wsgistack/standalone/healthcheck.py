"""Container health probe: ``python3 -I -S healthcheck.py`` (stdlib only, no site-packages).

It asks what is running from the runtime dir's processes.json, so one HEALTHCHECK serves
every role: with nginx (roles all, web) it sends one HTTP request through nginx, to the
readiness path (server.ready_path: a uWSGI worker answers it before the app, so neither
the Host check nor the database matters) unless HEALTHCHECK_PATH names another, and is
healthy when the status is below 500 (503 while the node drains); in role app it checks
that uWSGI accepts on its socket. No urllib (twice
the start time) and no curl in the image. Exit 0 healthy, 1 unhealthy (Docker's contract).
"""

import json
import os
import re
import socket
import sys

TIMEOUT = 4.0


def _host_header(runtime):
    """A name nginx serves: the first of server_name in the rendered nginx.conf (an unknown
    Host is refused by design, so the probe must look like a real client)."""
    try:
        with open(os.path.join(runtime, "nginx.conf")) as fh:
            text = fh.read()
    except OSError:
        return "localhost"
    for match in re.finditer(r"^\s*server_name\s+([^;]+);", text, re.M):
        for name in match.group(1).split():
            if name not in ("_", "*", '""'):
                return name.replace("*.", "health.", 1).lstrip(".")
    return "localhost"


def _connect(ready):
    if "unix" in ready:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(ready["unix"])
        return s
    host, _, port = ready["tcp"].rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT)


def check(runtime, path=None):
    with open(os.path.join(runtime, "processes.json")) as fh:
        table = json.load(fh)
    path = path or table.get("health", {}).get("ready") or "/"
    procs = {p["name"]: p for p in table["processes"]}
    if "nginx" in procs:
        with _connect(procs["nginx"]["ready"]) as s:
            request = "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: wsgistack-healthcheck\r\n\r\n" % (path, _host_header(runtime))
            s.sendall(request.encode("latin-1"))
            head = s.recv(64)
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return "no HTTP response from nginx (%r)" % head[:32]
        status = int(parts[1])
        return None if status < 500 else "nginx answered %d" % status
    if "uwsgi" in procs:
        ready = {k: v for k, v in procs["uwsgi"]["ready"].items() if k in ("unix", "tcp")}
        _connect(ready).close()
        return None
    if procs and table.get("state_file"):
        # role worker: healthy while each background process runs (not while it waits to
        # be restarted after a crash), as the process manager's state file says.
        with open(table["state_file"]) as fh:
            state = {p["name"]: p for p in json.load(fh)["processes"]}
        down = [name for name in procs if state.get(name, {}).get("state") != "running"]
        return "not running: %s" % ", ".join(down) if down else None
    return "nothing to check in processes.json"


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
