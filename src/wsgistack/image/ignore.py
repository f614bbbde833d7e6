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


def git_ignored(project: Path) -> list[str] | None:
    """The project's paths git ignores (untracked, matched by .gitignore, .git/info/exclude or
    the user's excludes file; a wholly ignored directory as ``dir/``), relative to the
    project; None when it is not in a git work tree or git is not installed."""
    import subprocess

    from wsgistack.machine import find_tool

    git = find_tool("git")
    if git is None:
        return None
    try:
        proc = subprocess.run([git, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z"],
                              cwd=project, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return sorted(p for p in proc.stdout.decode(errors="replace").split("\0") if p)


# A secret-looking name given a literal string: SECRET_KEY = "...", EMAIL_HOST_PASSWORD = '...'
_LITERAL_SECRET_RE = re.compile(
    r"""^\s*[A-Za-z_]*(?:SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY|ACCESS_KEY)[A-Za-z_]*\s*[:=]\s*[rbu]?["'][^"'\s]{4,}""",
    re.IGNORECASE | re.MULTILINE)


def holds_literal_secret(path: Path) -> bool:
    """A small text file that assigns a literal to a secret-looking name."""
    try:
        if not path.is_file() or path.stat().st_size > 256 * 1024:
            return False
        return _LITERAL_SECRET_RE.search(path.read_text(encoding="utf-8", errors="replace")) is not None
    except OSError:
        return False


def git_ignored_summary(project: Path, dockerignore: str, verbose: bool = False, shown: int = 5) -> list[str]:
    """Lines for the user: the paths git ignores that go into the image all the same (a
    .dockerignore is not a .gitignore), the ones holding literal secrets first, with the way
    to leave them out. Nothing outside a git work tree."""
    ignored = git_ignored(project)
    if not ignored:
        return []
    patterns = parse(dockerignore)
    going = []
    for rel in ignored:
        decided = _match(patterns, rel.rstrip("/"))
        if decided is None or decided.negated:
            going.append(rel)
    if not going:
        return []
    secrets = [rel for rel in going if not rel.endswith("/") and holds_literal_secret(project / rel)]
    others = [rel for rel in going if rel not in secrets]
    lines = []
    if secrets:
        lines.append(f"warning: {', '.join(secrets)}: git-ignored, holding what looks like a literal secret, and going "
                     "into the image (its layers keep it for anyone who pulls the image): leave it out with "
                     f"--exclude {secrets[0]} ([image] exclude in wsgistack.toml), and give the secret at run time")
    if others:
        listed = others if verbose else others[:shown]
        more = f", and {len(others) - len(listed)} more (--verbose)" if len(others) > len(listed) else ""
        lines.append(f"git ignores {len(others)} more path{'s' if len(others) != 1 else ''} that go into the image: "
                     + ", ".join(listed) + more + " (--exclude PATH leaves one out; generated files the app needs, "
                     "such as built assets, belong in)")
    return lines
