"""The app's requirement files as the image installs them: the top file and every file it
includes (``-r``/``-c``, recursively), copied under ``.wsgistack/requirements`` with their
relative paths, so pip finds the includes and Docker's cache keys on requirement files only
(never on the code). ``uwsgi`` is left out with a note: the stack provides uWSGI (pyuwsgi),
and a second one built from source replaces it and fails at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wsgistack import ids
from wsgistack.errors import WsgistackError
from wsgistack.layout import REQUIREMENTS_DIR
from wsgistack.render import MARKER, RenderedFile

_INCLUDE_RE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s*)(\S+)")
_UWSGI_RE = re.compile(r"^\s*uwsgi(?=\s*(?:[\[<>=!~;@]|$))", re.IGNORECASE)


@dataclass(frozen=True)
class RequirementTree:
    top: PurePosixPath  # the top file, relative to the project (and to REQUIREMENTS_DIR)
    files: tuple[RenderedFile, ...]  # copies, paths under REQUIREMENTS_DIR
    notes: tuple[str, ...]


def requirement_tree(project: Path, top: str) -> RequirementTree:
    """Follow the includes of ``top``; raises docker.E001 (missing file) or docker.E013
    (an include outside the project, which the build context cannot hold)."""
    root = project.resolve()
    first = PurePosixPath(Path(top).as_posix())
    order: list[PurePosixPath] = []
    copies: dict[PurePosixPath, str] = {}
    notes: list[str] = []
    pending: list[tuple[PurePosixPath, str]] = [(first, "")]
    while pending:
        rel, included_by = pending.pop(0)
        if rel in copies:
            continue
        path = root / rel
        if not path.is_file():
            if not included_by:
                raise WsgistackError(
                    ids.DOCKER_E001,
                    f"no {rel} in {project}: the image needs the app's Python dependencies",
                    "write one (pip freeze > requirements.txt, or list Django/Flask and friends), "
                    "or name yours with --requirements FILE",
                )
            raise WsgistackError(
                ids.DOCKER_E001, f"{rel} (included by {included_by}) does not exist",
                f"fix the include in {included_by.split(' line ')[0]}",
            )
        lines = path.read_text(encoding="utf-8").splitlines()
        out = [f"{MARKER} from {rel}: edit that file, not this copy"]
        for number, line in enumerate(lines, 1):
            include = _INCLUDE_RE.match(line)
            if include and "://" not in include.group(1):
                target = (path.parent / include.group(1)).resolve()
                try:
                    target_rel = PurePosixPath(target.relative_to(root).as_posix())
                except ValueError:
                    raise WsgistackError(
                        ids.DOCKER_E013,
                        f"{rel} line {number} includes {include.group(1)}, which is outside the project",
                        "the build context is the project directory: move the file into it (or inline its lines)",
                    ) from None
                pending.append((target_rel, f"{rel} line {number}"))
            elif _UWSGI_RE.match(line):
                notes.append(
                    f"requirements: left out {line.strip()!r} ({rel} line {number}): the image provides uWSGI "
                    "(pyuwsgi); a second one compiled from source would replace it"
                )
                line = f"# {line.strip()}  # left out by wsgistack: the image provides uWSGI"
            out.append(line)
        copies[rel] = "\n".join(out) + "\n"
        order.append(rel)
    if len(order) > 1:
        notes.append(f"requirements: {first} with its includes {', '.join(str(r) for r in order[1:])}")
    files = tuple(RenderedFile(f"{REQUIREMENTS_DIR}/{rel}", copies[rel]) for rel in order)
    return RequirementTree(top=first, files=files, notes=tuple(notes))
