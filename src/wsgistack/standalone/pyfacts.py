"""Runs inside the *application's* interpreter: what wsgistack needs to know about it.

Handed to that interpreter as source (``python -I -c <this file>``), never imported from
wsgistack's own environment, so the app's virtualenv needs nothing of wsgistack. Stdlib
only, and cheap: it runs at every start, so the installed distributions are found by their
``.dist-info`` directories on sys.path (importlib.metadata alone costs ~40 ms to import).
Prints one JSON object: the interpreter, its version, and the uWSGI (pyuwsgi) and granian that
run on it, if any.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from typing import Any


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _dist_info(name: str) -> tuple[str, str] | None:
    """(dist-info directory, version) of an installed distribution, first on sys.path."""
    prefix = name.lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for found in names:
            if found.lower().startswith(prefix) and found.endswith(".dist-info"):
                return os.path.join(entry, found), found[len(prefix):-len(".dist-info")]
    return None


def _recorded_scripts(dist_info: str) -> list[str]:
    """Where the distribution's RECORD says its `uwsgi` script went."""
    try:
        with open(os.path.join(dist_info, "RECORD"), encoding="utf-8") as fh:
            paths = [line.split(",", 1)[0] for line in fh]
    except OSError:
        return []
    site = os.path.dirname(dist_info)
    return [os.path.normpath(os.path.join(site, p)) for p in paths if os.path.basename(p) == "uwsgi"]


def uwsgi_facts() -> dict[str, Any] | None:
    """The uWSGI distribution this interpreter can import, and its ``uwsgi`` command."""
    for name in ("pyuwsgi", "uWSGI"):
        found = _dist_info(name)
        if found is None:
            continue
        dist_info, version = found
        # Beside the interpreter first (a venv's bin/), then the scripts dir of its scheme,
        # then wherever the distribution's own record says the script went.
        candidates = [os.path.join(os.path.dirname(sys.executable), "uwsgi"),
                      os.path.join(sysconfig.get_path("scripts"), "uwsgi"), *_recorded_scripts(dist_info)]
        command = next((os.path.abspath(c) for c in candidates if _executable(c)), None)
        return {"dist": name, "version": version, "command": command}
    return None


def granian_facts() -> dict[str, Any] | None:
    """The granian distribution this interpreter can import (run as ``python -m granian``)."""
    found = _dist_info("granian")
    return {"version": found[1]} if found else None


def facts() -> dict[str, Any]:
    return {
        "executable": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "prefix": sys.prefix,
        # What it imports from: uWSGI's unprivileged user must be able to read these.
        "import_dirs": [sysconfig.get_path("stdlib"), sysconfig.get_path("purelib")],
        "uwsgi": uwsgi_facts(),
        "granian": granian_facts(),
    }


if __name__ == "__main__":
    json.dump(facts(), sys.stdout)
