"""The runner supervises: it starts the processes the start sequence wrote
(``processes.json``, see :mod:`wsgistack.pipeline`) and stops them all when one stops."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wsgistack.plan import Plan

if TYPE_CHECKING:
    from wsgistack.runner.manager import Manager


def serve(plan: Plan, on_ready: Callable[[Manager], None] | None = None) -> int:
    """Supervise nginx and uWSGI in this process until they stop; returns the exit code."""
    # Imported here: `python -m wsgistack.runner.manager` (the entrypoint's exec) must not
    # find the module already imported by its package.
    from wsgistack.runner.manager import Manager

    table = json.loads(plan.paths.processes.read_text())
    return Manager(table, on_ready=on_ready).run()


# Where the start steps that used to live here went (for code written against the old names).
_MOVED = {
    "check_binaries": "wsgistack.pipeline", "check_reachable": "wsgistack.pipeline",
    "prepare_runtime_dir": "wsgistack.pipeline", "describe": "wsgistack.pipeline",
    "prestart_commands": "wsgistack.prestart", "run_prestart": "wsgistack.prestart",
    "INSTALL_NGINX_HINT": "wsgistack.machine", "unreachable_ancestor": "wsgistack.access",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
