"""The WSGI callable every benchmarked stack serves.

Every server (uWSGI, gunicorn, granian) loads this same module so that the
only difference between stacks is the server and its configuration. It wraps
the target application (``BENCH_APP=module:callable``) with:

* ``/slow`` -- sleeps ``BENCH_SLOW_MS`` milliseconds, for the burst
  test (a slow endpoint is what fills listen queues in production);
* whitenoise on ``/wn/`` serving ``BENCH_STATIC`` -- the "static files
  through the app" side of the static comparison (Nginx serves the same
  directory on ``/static/``).

The extra path check costs the same on every stack, so ratios stay fair.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

SLOW_PATH = "/slow"
WHITENOISE_PREFIX = "/wn/"


def load_target(spec: str) -> WSGIApp:
    """Import ``module:callable`` (callable defaults to ``application``)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr or "application")


def with_slow_endpoint(app: WSGIApp, delay_s: float) -> WSGIApp:
    body = b"slow\n"

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == SLOW_PATH:
            time.sleep(delay_s)
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return wrapped


def with_whitenoise(app: WSGIApp, root: str) -> WSGIApp:
    # Imported lazily: whitenoise is a bench-only dependency.
    from whitenoise import WhiteNoise

    return WhiteNoise(app, root=root, prefix=WHITENOISE_PREFIX)  # type: ignore[return-value]


def build(environ: os._Environ[str] | dict[str, str] = os.environ) -> WSGIApp:
    app = load_target(environ["BENCH_APP"])
    app = with_slow_endpoint(app, float(environ.get("BENCH_SLOW_MS", "20")) / 1000)
    static_root = environ.get("BENCH_STATIC", "")
    if static_root:
        app = with_whitenoise(app, static_root)
    return app


# Built at import when a server loads this module (uWSGI looks the callable up
# in the module dict, so a lazy module __getattr__ would not work). The
# harness imports this module only for its constants, without the variable.
if "BENCH_APP" in os.environ:
    application = build()
