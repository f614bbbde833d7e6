"""``wsgistack doctor``: system checks in the spirit of Django's.

Each check is a plain function ``(ctx) -> list[Finding]`` registered with
:func:`register`; each message it can emit is declared once with a stable id, a level, a
meaning and a fix (:func:`declare`), and ``docs/doctor.md`` is generated from those
declarations. :func:`run_checks` runs them into a :class:`Report`; :func:`preflight` is the
subset ``run``, ``render`` and the container entrypoint run before starting anything.
"""

# Importing the areas registers their checks (order = the order they run and are documented in).
from wsgistack.checks import app, config, dockerfile, machine, nginx, security, tls  # noqa: F401, I001
from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import MESSAGES, CheckMessage, Finding, Level, declare
from wsgistack.checks.preflight import PreflightError, after_migrate, preflight
from wsgistack.checks.registry import Report, register, registry, run_checks

AREAS = ("config", "app", "perms", "tls", "nginx", "machine", "docker", "doctor")

__all__ = [
    "AREAS",
    "MESSAGES",
    "CheckContext",
    "CheckMessage",
    "Finding",
    "Level",
    "PreflightError",
    "after_migrate",
    "Report",
    "declare",
    "preflight",
    "register",
    "registry",
    "run_checks",
]
