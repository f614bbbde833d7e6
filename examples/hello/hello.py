"""A framework-free WSGI application (stdlib only): ``hello:application``.

Handy as the smallest possible app for smoke tests and benchmarks:

    /, /hello           200 "Hello, world!"
    /healthz            200 "ok"
    /slow?seconds=N     sleeps N seconds (default 1, capped at 60)
    /whoami             JSON describing the request as the app sees it
    /upload-size        POST: number of request-body bytes received
    /boom               raises, to exercise the server's error handling
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

StartResponse = Callable[..., Callable[[bytes], object]]
Environ = dict[str, object]

MAX_SLEEP_SECONDS = 60.0
_READ_CHUNK = 64 * 1024


def _respond(
    start_response: StartResponse,
    status: str,
    body: str,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def _slow(environ: Environ, start_response: StartResponse) -> list[bytes]:
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    try:
        seconds = float(query.get("seconds", ["1"])[0])
    except ValueError:
        return _respond(start_response, "400 Bad Request", "seconds must be a number")
    if not math.isfinite(seconds):
        return _respond(start_response, "400 Bad Request", "seconds must be finite")
    seconds = min(max(seconds, 0.0), MAX_SLEEP_SECONDS)
    time.sleep(seconds)
    return _respond(start_response, "200 OK", f"slept {seconds:g}")


def _whoami(environ: Environ, start_response: StartResponse) -> list[bytes]:
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
    payload = {
        "app": "hello",
        "scheme": scheme,
        "is_secure": scheme == "https",
        "host": host,
        "remote_addr": environ.get("REMOTE_ADDR"),
        "x_forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
        "x_forwarded_proto": environ.get("HTTP_X_FORWARDED_PROTO"),
        "pid": os.getpid(),
    }
    return _respond(start_response, "200 OK", json.dumps(payload), "application/json")


def _upload_size(environ: Environ, start_response: StartResponse) -> list[bytes]:
    if environ.get("REQUEST_METHOD") != "POST":
        start_response(
            "405 Method Not Allowed",
            [("Allow", "POST"), ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0")],
        )
        return [b""]
    # PEP 3333: never read past CONTENT_LENGTH; a missing length means no body.
    try:
        remaining = int(str(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return _respond(start_response, "400 Bad Request", "invalid Content-Length")
    stream = environ["wsgi.input"]
    total = 0
    while remaining > 0:
        chunk = stream.read(min(_READ_CHUNK, remaining))  # type: ignore[attr-defined]
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    return _respond(start_response, "200 OK", str(total))


def application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = str(environ.get("PATH_INFO") or "/")
    if path in ("/", "/hello"):
        return _respond(start_response, "200 OK", "Hello, world!")
    if path == "/healthz":
        return _respond(start_response, "200 OK", "ok")
    if path == "/slow":
        return _slow(environ, start_response)
    if path == "/whoami":
        return _whoami(environ, start_response)
    if path == "/upload-size":
        return _upload_size(environ, start_response)
    if path == "/boom":
        raise RuntimeError("boom: deliberate failure for error-handling tests")
    return _respond(start_response, "404 Not Found", "not found")


if __name__ == "__main__":
    # Quick local run without uWSGI: python hello.py [port]
    import sys
    from wsgiref.simple_server import make_server

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server("127.0.0.1", port, application) as server:
        print(f"Serving on http://127.0.0.1:{port}/", file=sys.stderr)
        server.serve_forever()
