""".dockerignore matching as Docker does it, to tell the user which project files a build
leaves out (a silently dropped migration is a broken deploy).

Docker's rules (moby/patternmatcher): paths are relative to the context, ``*`` and ``?``
do not cross ``/``, ``**`` matches any number of directories, a pattern that matches a
directory excludes everything in it, and the last matching pattern wins (``!`` re-includes).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    negated: bool
    section: str  # the "# --- section:" heading it stands under ("" for a foreign file)


@dataclass(frozen=True)
class LeftOut:
    path: str  # relative, posix; directories end with "/"
    section: str


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def parse(text: str) -> list[Pattern]:
    patterns: list[Pattern] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# ---"):
            section = line[5:].split(":", 1)[0].strip()
            continue
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = os.path.normpath(line[1:].strip() if negated else line).lstrip("/")
        if body.startswith("./"):
            body = body[2:]
        patterns.append(Pattern(line, _regex(body), negated, section))
    return patterns


def _match(patterns: list[Pattern], rel: str) -> Pattern | None:
    """The pattern deciding ``rel`` (itself or a parent directory matched), or None."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    decided: Pattern | None = None
    for p in patterns:
        if any(p.regex.match(prefix) for prefix in prefixes):
            decided = p
    return decided


def left_out(project: Path, dockerignore: str) -> list[LeftOut]:
    """Project paths the build context leaves out. A directory left out as a whole (and
    with no ``!`` pattern that could reach inside it) is one entry, ``dir/``."""
    patterns = parse(dockerignore)
    negations = [p for p in patterns if p.negated]
    found: list[LeftOut] = []
    for dirpath, dirnames, filenames in os.walk(project):
        base = Path(dirpath).relative_to(project).as_posix()
        base = "" if base == "." else base + "/"
        keep_walking = []
        for d in sorted(dirnames):
            rel = base + d
            decided = _match(patterns, rel)
            reachable = any(n.text.lstrip("!").startswith(("**", rel + "/")) for n in negations)
            if decided is not None and not decided.negated and not reachable:
                found.append(LeftOut(rel + "/", decided.section))
            else:
                keep_walking.append(d)
        dirnames[:] = keep_walking
        for f in sorted(filenames):
            decided = _match(patterns, base + f)
            if decided is not None and not decided.negated:
                found.append(LeftOut(base + f, decided.section))
    return found


def summary(paths: list[LeftOut], verbose: bool = False, shown: int = 5) -> list[str]:
    """Lines for the user: the count, then per section the first few names (all with verbose).
    Tooling (VCS data, virtualenvs, caches) is only counted unless verbose."""
    if not paths:
        return []
    lines = [f".dockerignore leaves {len(paths)} project path{'s' if len(paths) != 1 else ''} out of the image"
             + ("" if verbose else " (all of them: --verbose)")]
    sections: dict[str, list[str]] = {}
    for item in paths:
        sections.setdefault(item.section or "excluded", []).append(item.path)
    for section, names in sections.items():
        if verbose:
            lines.append(f"  {section}: " + ", ".join(names))
        elif section == "tooling":
            lines.append(f"  {section}: {len(names)}")
        else:
            more = f", and {len(names) - shown} more" if len(names) > shown else ""
            lines.append(f"  {section}: " + ", ".join(names[:shown]) + more)
    return lines
