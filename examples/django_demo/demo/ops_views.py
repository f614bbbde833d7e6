"""Operational endpoints used by wsgistack's own tests and benchmarks.

They deliberately avoid the database and the session so that they measure the
serving stack (Nginx -> uWSGI -> Django) rather than SQLite.
"""

from __future__ import annotations

import math
import os
import time

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

MAX_SLEEP_SECONDS = 60.0
_READ_CHUNK = 64 * 1024
_TEXT = "text/plain; charset=utf-8"


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type=_TEXT)


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello, world!", content_type=_TEXT)


def slow(request: HttpRequest) -> HttpResponse:
    """Sleep ``?seconds=N`` (default 1, capped at 60) to tie up a worker."""
    raw = request.GET.get("seconds", "1")
    try:
        seconds = float(raw)
    except ValueError:
        return HttpResponseBadRequest("seconds must be a number", content_type=_TEXT)
    if not math.isfinite(seconds):
        return HttpResponseBadRequest("seconds must be finite", content_type=_TEXT)
    seconds = min(max(seconds, 0.0), MAX_SLEEP_SECONDS)
    time.sleep(seconds)
    return HttpResponse(f"slept {seconds:g}", content_type=_TEXT)


def whoami(request: HttpRequest) -> JsonResponse:
    """Report what the app sees of the request after the proxy chain."""
    meta = request.META
    return JsonResponse(
        {
            "app": "django",
            "scheme": request.scheme,
            "is_secure": request.is_secure(),
            "host": request.get_host(),
            "remote_addr": meta.get("REMOTE_ADDR"),
            "x_forwarded_for": meta.get("HTTP_X_FORWARDED_FOR"),
            "x_forwarded_proto": meta.get("HTTP_X_FORWARDED_PROTO"),
            "pid": os.getpid(),
        }
    )


@csrf_exempt  # a machine endpoint for upload-limit tests; it changes no state
@require_POST
def upload_size(request: HttpRequest) -> HttpResponse:
    """Return the number of body bytes received.

    The body is streamed in chunks instead of using ``request.body`` so that
    large uploads neither sit in memory nor trip Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE; the limit under test is the proxy's.
    """
    total = 0
    while chunk := request.read(_READ_CHUNK):
        total += len(chunk)
    return HttpResponse(str(total), content_type=_TEXT)
