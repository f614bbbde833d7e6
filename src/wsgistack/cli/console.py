"""The CLI's one way to print: rich where it is installed (a developer machine), plain text
where it is not (the image leaves rich out, see :mod:`wsgistack.cli.plain`), and wsgistack's
own notes as the log line every process prints (contracts.log_line)."""

from __future__ import annotations

import sys

from wsgistack.contracts import log_line

try:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    HAVE_RICH = True
except ImportError:  # container images leave rich out
    from wsgistack.cli.plain import Console, Table, Text  # type: ignore[assignment]

    HAVE_RICH = False


def note(text: str, *, err: bool = True) -> None:
    """One of wsgistack's own lines (``wsgistack | text``), on stderr unless ``err`` is False:
    what a command says about what it did, beside its real output on stdout."""
    stream = sys.stderr if err else sys.stdout
    for part in text.splitlines() or [""]:
        stream.write(log_line("wsgistack", part, False, width=0).decode())
    stream.flush()


__all__ = ["Console", "HAVE_RICH", "Table", "Text", "note"]
