"""What a check says: levels, declared messages with stable ids, and the findings they make.

Every message a check can emit is declared once, at import time, as a module-level
:class:`CheckMessage` with a stable id (``nginx.W010``), a level, what it means and how to
fix it. ``docs/doctor.md`` is generated from these declarations, so the documentation
lists exactly the ids the code can produce. A check turns a declaration into a
:class:`Finding` by calling it: ``W010(f"alias {path} ...", obj="nginx.conf:87")``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal


class Level(IntEnum):
    """Django's levels, with Django's numbers, so its messages map one to one."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"{text!r} is not a level; use one of {', '.join(cls.__members__)}") from None


# The letter in an id says its level: nginx.W010 is a warning, perms.E006 an error.
LETTERS: dict[str, Level] = {"D": Level.DEBUG, "I": Level.INFO, "W": Level.WARNING, "E": Level.ERROR, "C": Level.CRITICAL}
ID_RE = re.compile(r"^(?P<area>[a-z]+)\.(?P<letter>[DIWEC])(?P<number>\d{3})$")

Mode = Literal["always", "deploy", "dev"]


@dataclass(frozen=True)
class Finding:
    """One problem found: ``warning[nginx.W010]: nginx.conf:87: alias ...`` / ``hint: ...``."""

    id: str
    level: Level
    message: str
    hint: str
    obj: str = ""  # what it is about: a setting, a file:line, a path
    origin_id: str = ""  # the id the underlying tool uses: Django's security.W004, gixy.alias_traversal, hadolint.DL3008
    details: str = ""  # tool output, a traceback

    def matches(self, silenced: Collection[str]) -> bool:
        """Silenced by our id or by the underlying tool's id."""
        return self.id in silenced or bool(self.origin_id and self.origin_id in silenced)

    def render(self) -> str:
        head = f"{self.level.label}[{self.id}]: " + (f"{self.obj}: " if self.obj else "") + self.message
        lines = [head]
        lines.extend("  " + line for line in self.details.rstrip().splitlines())
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level.name,
            "message": self.message,
            "hint": self.hint,
            "obj": self.obj,
            "origin_id": self.origin_id,
            "details": self.details,
        }


@dataclass(frozen=True)
class CheckMessage:
    """A declared message. ``title`` says what it means (and is the default message);
    ``hint`` says how to fix it. ``mode`` says when it can appear: in every run, only with
    ``--deploy``, or only without it (a stricter twin takes over in deploy mode)."""

    id: str
    level: Level
    title: str
    hint: str
    mode: Mode = "always"

    def __post_init__(self) -> None:
        match = ID_RE.match(self.id)
        if not match:
            raise ValueError(f"check id {self.id!r} is not shaped like nginx.W010")
        if LETTERS[match["letter"]] != self.level:
            raise ValueError(f"check id {self.id!r} has the letter of another level than {self.level.name}")
        if not self.hint:
            raise ValueError(f"check id {self.id!r} needs a hint that says how to fix it")

    @property
    def area(self) -> str:
        return self.id.partition(".")[0]

    def __call__(
        self,
        message: str | None = None,
        *,
        obj: str = "",
        hint: str | None = None,
        origin_id: str = "",
        details: str = "",
        level: Level | None = None,
    ) -> Finding:
        return Finding(
            id=self.id,
            level=level if level is not None else self.level,
            message=message or self.title,
            hint=hint or self.hint,
            obj=obj,
            origin_id=origin_id,
            details=details,
        )


MESSAGES: dict[str, CheckMessage] = {}


def declare(id: str, level: Level, title: str, hint: str, *, mode: Mode = "always") -> CheckMessage:
    """Declare a message once; a second declaration of the same id is a bug."""
    if id in MESSAGES:
        raise ValueError(f"check id {id} is declared twice")
    message = CheckMessage(id, level, title, hint, mode)
    MESSAGES[id] = message
    return message


DEBUG, INFO, WARNING, ERROR, CRITICAL = Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL
