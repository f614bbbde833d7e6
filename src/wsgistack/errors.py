"""User-facing errors: every one carries a stable id, a message and a hint.

Library code raises these; only the CLI prints them and turns them into exit codes
(see ``wsgistack.cli``), so the library stays usable from tests and the entrypoint.
"""

from __future__ import annotations

import re


class ErrorId(str):
    """An error id declared once (wsgistack.ids): the id itself, what it means, and the
    usual fix. A str, so it compares and prints as the id."""

    summary: str
    hint: str

    def __new__(cls, id: str, summary: str, hint: str) -> ErrorId:
        self = super().__new__(cls, id)
        self.summary = summary
        self.hint = hint
        return self


ERRORS: dict[str, ErrorId] = {}
_ID = re.compile(r"[a-z]+\.E\d{3}")


def declare(id: str, summary: str, hint: str) -> ErrorId:
    """Declare an error id; ids are unique and shaped ``area.E123``."""
    if not _ID.fullmatch(id):
        raise ValueError(f"{id!r} is not an error id (area.E123)")
    if id in ERRORS:
        raise ValueError(f"error id {id} is declared twice")
    ERRORS[id] = ErrorId(id, summary, hint)
    return ERRORS[id]


class WsgistackError(Exception):
    """An error the user can act on: ``error[<id>]: <message>`` / ``hint: <hint>``."""

    exit_code: int = 1

    def __init__(self, id: str, message: str, hint: str = "", details: str = "") -> None:
        super().__init__(f"{id}: {message}")
        self.id = id
        self.message = message
        # A raise site's own hint is the specific one; else the id's declared advice.
        self.hint = hint or (id.hint if isinstance(id, ErrorId) else "")
        self.details = details

    def render(self) -> str:
        lines = [f"error[{self.id}]: {self.message}"]
        if self.details:
            lines.extend("  " + line for line in self.details.rstrip().splitlines())
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class ConfigError(WsgistackError):
    """Bad configuration: exit code 2, like a usage error."""

    exit_code = 2

    def __init__(self, problems: list[WsgistackError]) -> None:
        first = problems[0]
        super().__init__(first.id, first.message, first.hint)
        self.problems = problems

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class UsageError(WsgistackError):
    """A command refused as invoked (e.g. a change that needs --yes): exit code 2, like a usage error."""

    exit_code = 2


class AppError(WsgistackError):
    """The WSGI application could not be found, imported or resolved."""

    exit_code = 2


class MissingBinaryError(WsgistackError):
    """nginx or uwsgi is not installed where we can run it."""

    exit_code = 3


class PrestartError(WsgistackError):
    """A prestart step (collectstatic, migrate, user hook) failed."""


class ProcessFailed(WsgistackError):
    """A supervised process (nginx, uWSGI) exited while it should have been serving."""
