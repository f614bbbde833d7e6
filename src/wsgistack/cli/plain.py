"""Plain-text stand-ins for the few rich classes the CLI uses.

Container images leave rich (and pygments, ~10 MB) out: nothing at container run time
needs colour. ``wsgistack config/status/doctor`` inside an image then print plain text
through these; on a developer machine rich is installed and used.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class Text:
    def __init__(self, text: str = "", style: str | None = None) -> None:
        self.plain = text

    def append(self, text: str, style: str | None = None) -> None:
        self.plain += text

    def __str__(self) -> str:
        return self.plain


class Table:
    def __init__(self, *headers: str, title: str | None = None, **_: Any) -> None:
        self.title = title
        self.headers = list(headers)
        self.rows: list[list[str]] = []

    def add_column(self, header: str, **_: Any) -> None:
        self.headers.append(header)

    def add_row(self, *cells: str, **_: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def __str__(self) -> str:
        widths = [max(len(r[i]) for r in [self.headers, *self.rows] if i < len(r)) for i in range(len(self.headers))]
        lines = [self.title] if self.title else []
        for row in [self.headers, *self.rows]:
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        return "\n".join(lines)


class Console:
    def __init__(self, file: TextIO | None = None, stderr: bool = False, **_: Any) -> None:
        self.file = file or (sys.stderr if stderr else sys.stdout)

    def print(self, *objects: object, **_: Any) -> None:
        print(*(str(o) for o in objects), file=self.file)
