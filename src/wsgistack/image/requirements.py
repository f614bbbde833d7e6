"""The app's requirement files as the image installs them: the top file and every file it
includes (``-r``/``-c``, recursively), copied under ``.wsgistack/requirements`` with their
relative paths, so pip finds the includes and Docker's cache keys on requirement files only
(never on the code). ``uwsgi`` is left out with a note: the stack provides uWSGI (pyuwsgi),
and a second one built from source replaces it and fails at run time.

A project without a requirements file but with a ``pyproject.toml`` (PEP 621 ``[project]``
dependencies: most new projects) is built from that: its dependencies go in first (a file
written here, ``pyproject-dependencies.txt``, pinned by the project's lock file where there is
one: ``uv.lock`` or ``poetry.lock`` as pip constraints, or a ``requirements*.txt`` with hashes
instead of the ranges), and the project itself is installed into the app's environment with
the code (``install_project``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wsgistack import ids
from wsgistack.errors import WsgistackError
from wsgistack.layout import REQUIREMENTS_DIR
from wsgistack.plan.image import AppRequirements
from wsgistack.render import MARKER, RenderedFile

DEFAULT = "requirements.txt"
PYPROJECT_TOP = "pyproject-dependencies.txt"
LOCK_CONSTRAINTS = "lock-constraints.txt"
_INCLUDE_RE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s*)(\S+)")
_UWSGI_RE = re.compile(r"^\s*uwsgi(?=\s*(?:[\[<>=!~;@]|$))", re.IGNORECASE)
# A requirement that is a local directory: `-e .`, `.`, `-e /abs/path` (what `pip freeze` writes
# for an editable install), `file:///abs/path`, `name @ file:///abs/path`.
_LOCAL_RE = re.compile(r"^\s*(?:(?:-e|--editable)\s+)?(?:[\w.\-\[\],]+\s*@\s*)?(?P<path>file:\S+|\.{1,2}(?:/\S*)?|/\S*)\s*$")


@dataclass(frozen=True)
class RequirementTree:
    top: PurePosixPath  # the top file, relative to the project (and to REQUIREMENTS_DIR)
    files: tuple[RenderedFile, ...]  # copies, paths under REQUIREMENTS_DIR
    notes: tuple[str, ...]
    install_project: bool = False  # the project itself (pyproject.toml) goes into the app's environment
    project_deps: bool = False  # ...with its dependencies (they are dynamic: not known before the code)

    @property
    def app(self) -> AppRequirements:
        return AppRequirements(top=self.top, install_project=self.install_project, project_deps=self.project_deps)


def app_requirements(project: Path, requirements: str | None) -> RequirementTree:
    """What the image installs into the app's environment: ``requirements`` when named
    (--requirements, image.requirements), else requirements.txt, else the project's
    pyproject.toml (with its lock file). docker.E001 when there is none of them."""
    if requirements:
        return requirement_tree(project, requirements)
    if (project / DEFAULT).is_file() or not (project / "pyproject.toml").is_file():
        return requirement_tree(project, DEFAULT)
    return pyproject_tree(project)


def requirement_tree(project: Path, top: str) -> RequirementTree:
    """Follow the includes of ``top``; raises docker.E001 (missing file) or docker.E013
    (an include outside the project, which the build context cannot hold)."""
    root = project.resolve()
    first = PurePosixPath(Path(top).as_posix())
    order: list[PurePosixPath] = []
    copies: dict[PurePosixPath, str] = {}
    notes: list[str] = []
    install_project = False
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
                    "list them in pyproject.toml ([project] dependencies: the image then installs the project itself) "
                    "or in requirements.txt (from the app's venv: pip freeze --exclude-editable > requirements.txt), "
                    "or name your file with --requirements FILE (image.requirements in wsgistack.toml)",
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
            elif (local := _LOCAL_RE.match(line)) is not None and not line.lstrip().startswith("#"):
                target = _local_path(local.group("path"), path.parent)
                if target is not None and target == root:
                    install_project = True
                    notes.append(f"requirements: {line.strip()!r} ({rel} line {number}) is the project itself: the image "
                                 "installs it from the build context, with the code")
                    line = f"# {line.strip()}  # the project itself: installed by wsgistack with the code"
                elif target is None or not target.is_relative_to(root):
                    raise WsgistackError(
                        ids.DOCKER_E013,
                        f"{rel} line {number} installs {line.strip()!r}, a directory "
                        + ("outside the project" if target is not None else "given as a URL the build cannot reach"),
                        "the image builds from the project directory alone: list the package by name and version "
                        "(pip freeze --exclude-editable leaves editable installs out), or move it into the project",
                    )
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
    return RequirementTree(top=first, files=files, notes=tuple(notes), install_project=install_project)


def _local_path(text: str, base: Path) -> Path | None:
    """The directory a local requirement names (None for a file: URL to another host)."""
    if text.startswith("file:"):
        from urllib.parse import unquote, urlparse

        url = urlparse(text)
        if url.netloc not in ("", "localhost"):
            return None
        text = unquote(url.path)
    path = Path(text)
    return (path if path.is_absolute() else base / path).resolve()


def pyproject_tree(project: Path) -> RequirementTree:
    """Requirements from pyproject.toml's [project] table: its dependencies as a file of our
    own (cached apart from the code), pinned by the lock file when there is one; the project
    itself is installed with the code. docker.E001 when pyproject.toml declares no [project]
    (Poetry's own [tool.poetry] format: export a requirements file)."""
    try:
        data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WsgistackError(ids.DOCKER_E001, f"{project / 'pyproject.toml'} cannot be read: {exc}",
                             "fix it, or give the image a requirements file with --requirements FILE") from None
    table = data.get("project")
    if not isinstance(table, dict) or "name" not in table:
        poetry = "poetry" in data.get("tool", {})
        raise WsgistackError(
            ids.DOCKER_E001,
            f"no requirements.txt in {project}, and its pyproject.toml has no [project] table"
            + (" (it is Poetry's [tool.poetry] format)" if poetry else ""),
            ("export the locked requirements: poetry export -f requirements.txt --output requirements.txt "
             "(or move to [project] dependencies, Poetry 2)" if poetry else
             "declare the dependencies in [project] dependencies (PEP 621), or write requirements.txt"),
        )
    notes: list[str] = []
    dynamic = "dependencies" in table.get("dynamic", [])
    deps = [str(d) for d in table.get("dependencies", [])]
    kept = []
    for dep in deps:
        if _UWSGI_RE.match(dep):
            notes.append(f"requirements: left out {dep!r} (pyproject.toml [project] dependencies): the image provides "
                         "uWSGI (pyuwsgi); a second one compiled from source would replace it")
            continue
        kept.append(dep)
    hashed = _hashed_requirements(project)
    if hashed is not None:
        tree = requirement_tree(project, hashed)
        return RequirementTree(
            top=tree.top, files=tree.files, install_project=True,
            notes=(*tree.notes, f"requirements: {hashed} (with hashes: a lock) for pyproject.toml's dependencies; "
                   f"the project {table['name']} itself is installed with the code"))
    lines = [f"{MARKER} from pyproject.toml's [project] dependencies (project {table['name']}): edit that file"]
    files: list[RenderedFile] = []
    lock = _lock_constraints(project)
    if lock is not None:
        source, pins = lock
        lines.append(f"-c {LOCK_CONSTRAINTS}")
        files.append(RenderedFile(f"{REQUIREMENTS_DIR}/{LOCK_CONSTRAINTS}",
                                  f"{MARKER} from {source}: the versions it locked, as pip constraints\n"
                                  + "".join(f"{pin}\n" for pin in pins)))
        notes.append(f"requirements: pyproject.toml's dependencies, pinned by {source} ({len(pins)} versions)")
    else:
        notes.append("requirements: pyproject.toml's dependencies (no lock file: uv.lock, poetry.lock or a "
                     "requirements*.txt with hashes would pin them)")
    lines += kept
    if dynamic:
        notes.append("requirements: pyproject.toml's dependencies are dynamic (computed by its build backend): they "
                     "are installed with the project, after the code is copied, so a code change reinstalls them")
    notes.append(f"the project {table['name']} itself is installed into the app's environment with the code")
    files.insert(0, RenderedFile(f"{REQUIREMENTS_DIR}/{PYPROJECT_TOP}", "\n".join(lines) + "\n"))
    return RequirementTree(top=PurePosixPath(PYPROJECT_TOP), files=tuple(files), notes=tuple(notes),
                           install_project=True, project_deps=dynamic)


def _hashed_requirements(project: Path) -> str | None:
    """A requirements*.txt at the top of the project that is a lock (pip-compile
    --generate-hashes, uv export): every requirement with --hash."""
    for path in sorted(project.glob("requirements*.txt")) + sorted(project.glob("requirements*.lock")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "--hash=" in text:
            return path.name
    return None


def _lock_constraints(project: Path) -> tuple[str, list[str]] | None:
    """(lock file, ``name==version`` pins) from uv.lock or poetry.lock: every package it locked
    from an index (the project itself, and packages from git or a URL, which pip constraints
    cannot name, aside). As constraints they pin what the dependencies need and install
    nothing else (a lock's dev groups stay out)."""
    for name in ("uv.lock", "poetry.lock"):
        path = project / name
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        pins = set()
        for package in data.get("package", []):
            source = package.get("source", {})
            if not isinstance(source, dict):
                continue
            if name == "uv.lock" and not ("registry" in source or not source):
                continue  # the project itself (editable/virtual), git, url, path
            if name == "poetry.lock" and source.get("type") not in (None, "legacy"):
                continue
            if package.get("name") and package.get("version"):
                pins.add(f"{package['name']}=={package['version']}")
        return name, sorted(pins, key=str.lower)
    return None
