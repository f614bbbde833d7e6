"""Runs inside the *application's* interpreter: what wsgistack needs to know about it.

Handed to that interpreter as source (``python -I -c <this file> ``), never imported from
wsgistack's own environment, so the app's virtualenv needs nothing of wsgistack. Stdlib
only. Prints one JSON object: the interpreter, its version, and the uWSGI (pyuwsgi) that
runs on it, if any.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from importlib import metadata
from typing import Any


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def uwsgi_facts() -> dict[str, Any] | None:
    """The uWSGI distribution this interpreter can import, and its ``uwsgi`` command."""
    for name in ("pyuwsgi", "uWSGI"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        # Beside the interpreter first (a venv's bin/), then the scripts dir of its scheme,
        # then wherever the distribution's own record says the script went.
        candidates = [os.path.join(os.path.dirname(sys.executable), "uwsgi"),
                      os.path.join(sysconfig.get_path("scripts"), "uwsgi")]
        candidates += [str(dist.locate_file(f)) for f in dist.files or () if f.name == "uwsgi"]
        command = next((os.path.abspath(c) for c in candidates if _executable(c)), None)
        return {"dist": name, "version": dist.version, "command": command}
    return None


def facts() -> dict[str, Any]:
    return {
        "executable": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "prefix": sys.prefix,
        "uwsgi": uwsgi_facts(),
    }


if __name__ == "__main__":
    json.dump(facts(), sys.stdout)
