"""Small Flask demo for wsgistack (in the spirit of the Flask + uWSGI notes).

Entry points: ``app:app`` (module-level instance) or ``app:create_app()``.
Configuration comes from ``FLASK_*`` environment variables
(``Flask.config.from_prefixed_env``), e.g. ``FLASK_SECRET_KEY``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, render_template, request

MAX_SLEEP_SECONDS = 60.0
_READ_CHUNK = 64 * 1024


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()  # FLASK_FOO=bar -> app.config["FOO"] = "bar"
    if config:
        app.config.update(config)

    @app.get("/")
    def index() -> str:
        return render_template("index.html", pid=os.getpid())

    @app.get("/healthz")
    def healthz() -> Response:
        return _text("ok")

    @app.get("/hello")
    def hello() -> Response:
        return _text("Hello, world!")

    @app.get("/slow")
    def slow() -> Response:
        """Sleep ``?seconds=N`` (default 1, capped at 60) to tie up a worker."""
        try:
            seconds = float(request.args.get("seconds", "1"))
        except ValueError:
            return _text("seconds must be a number", 400)
        if not math.isfinite(seconds):
            return _text("seconds must be finite", 400)
        seconds = min(max(seconds, 0.0), MAX_SLEEP_SECONDS)
        time.sleep(seconds)
        return _text(f"slept {seconds:g}")

    @app.get("/whoami")
    def whoami() -> Response:
        """Report what the app sees of the request after the proxy chain.

        No ProxyFix: wsgistack sets ``wsgi.url_scheme`` itself, and trusting
        X-Forwarded-* from arbitrary clients would be unsafe.
        """
        return jsonify(
            app="flask",
            scheme=request.scheme,
            is_secure=request.is_secure,
            host=request.host,
            remote_addr=request.remote_addr,
            x_forwarded_for=request.headers.get("X-Forwarded-For"),
            x_forwarded_proto=request.headers.get("X-Forwarded-Proto"),
            pid=os.getpid(),
        )

    @app.post("/upload-size")
    def upload_size() -> Response:
        """Count body bytes, streaming, for the proxy's upload-limit tests."""
        total = 0
        while chunk := request.stream.read(_READ_CHUNK):
            total += len(chunk)
        return _text(str(total))

    return app


app = create_app()
