"""``Dockerfile`` + ``.dockerignore`` for a project: a pure render from options and facts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wsgistack import __version__
from wsgistack.container import MARKER
from wsgistack.container.project import ProjectFacts
from wsgistack.container.requirements import REQUIREMENTS_DIR
from wsgistack.container.wheel import WHEELS_DIR, WsgistackSource
from wsgistack.errors import WsgistackError
from wsgistack.render import RenderedFile, _env
from wsgistack import errorids as ids

DEFAULT_BASE = "debian:trixie-slim"  # Python 3.13, nginx 1.26; bookworm-slim works too (3.11)
IMAGE_UID = 10001
IMAGE_PORT = 8080
# Both roles of a split deployment mount a volume here for the uWSGI unix socket; the image
# creates it owned by the app user, mode 2770, and a fresh named volume copies that.
SHARED_DIR = PurePosixPath("/run/wsgistack")
# tls.data_dir in the image: the dev CA, the ACME account key and certificates (a volume).
TLS_DIR = PurePosixPath("/data/tls")
TLS_PORT = 8443
# Beside a Dockerfile of the project's own, ours is written (and built) under this name.
OWN_DOCKERFILE = "Dockerfile.wsgistack"
# The app's data home in the image: a volume, writable by the app, named by $DATA_DIR.
DATA_DIR = PurePosixPath("/data")

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(=[\w.+~:-]+)?$")


@dataclass(frozen=True)
class DockerfileOptions:
    base: str = DEFAULT_BASE
    requirements: str = "requirements.txt"
    packages: tuple[str, ...] = ()  # extra Debian packages at runtime (e.g. libpq5)
    build_packages: tuple[str, ...] = ()  # extra Debian packages to build wheels (e.g. gcc libpq-dev)
    writable: tuple[str, ...] = ()  # extra project dirs the app writes to
    keep: tuple[str, ...] = field(default=())  # paths .dockerignore must let through (e.g. mysite/secret_utils.py)
    heroku: bool = False  # build the term-drain library (Heroku sends SIGTERM to every process)
    keep_apt: bool = False  # keep apt/debconf/perl in the image (default: removed, one flattened system layer)
    acme: bool = False  # install certbot, the ACME client tls.mode = acme runs


def _check(options: DockerfileOptions) -> None:
    problems = [p for p in (*options.packages, *options.build_packages) if not _PACKAGE_RE.match(p)]
    if problems:
        raise WsgistackError(
            ids.DOCKER_E002,
            f"not a Debian package name: {', '.join(problems)}",
            "give package names such as libpq5 or gcc (one per --package / --build-package)",
        )
    for d in options.writable:
        p = PurePosixPath(d)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise WsgistackError(
                ids.DOCKER_E002, f"--writable {d!r} must be a directory inside the project, e.g. var",
                "give it relative to the project directory",
            )


def writable_dirs(facts: ProjectFacts, options: DockerfileOptions) -> tuple[str, ...]:
    """Project dirs the Dockerfile makes writable: --writable ones. STATIC_ROOT/MEDIA_ROOT
    are found by the image's build step (buildstep.py) with the image's Python, not here:
    the host's may not import the app. Never the project root: the code stays read-only."""
    return tuple(dict.fromkeys(PurePosixPath(w).as_posix() for w in options.writable))


def render_dockerfile(facts: ProjectFacts, source: WsgistackSource, options: DockerfileOptions) -> list[RenderedFile]:
    """Dockerfile and .dockerignore (paths relative to the project)."""
    _check(options)
    env = _env()
    ctx = {
        "version": __version__,
        "base": options.base,
        "build_packages": options.build_packages,
        "packages": options.packages,
        "source": source,
        "wheels_dir": WHEELS_DIR,
        "requirements": PurePosixPath(Path(options.requirements).as_posix()),
        "requirements_dir": REQUIREMENTS_DIR,
        "data_dir": DATA_DIR,
        "uid": IMAGE_UID,
        "port": IMAGE_PORT,
        "shared_dir": SHARED_DIR,
        "writable": writable_dirs(facts, options),
        "data_dirs": [d.relative.as_posix() for d in facts.data_dirs],
        "keep": options.keep,
        "heroku": options.heroku,
        "keep_apt": options.keep_apt,
        "acme": options.acme,
        "tls_dir": TLS_DIR,
        "tls_port": TLS_PORT,
    }
    return [
        RenderedFile("Dockerfile", env.get_template("Dockerfile.j2").render(ctx)),
        RenderedFile(".dockerignore", env.get_template("dockerignore.j2").render(ctx)),
    ]


def is_ours(path: Path) -> bool:
    """Missing, or written by wsgistack (so regenerating it loses nothing)."""
    try:
        with path.open(encoding="utf-8") as fh:
            return fh.readline().startswith(MARKER)
    except FileNotFoundError:
        return True
    except (OSError, UnicodeDecodeError):
        return False


def recipe(
    project: Path, options: DockerfileOptions, detect: bool = True
) -> tuple[list[RenderedFile], tuple[str, bytes] | None, list[str]]:
    """Everything the build context needs: Dockerfile, .dockerignore and (from a source
    install) wsgistack's wheel; returns (files, wheel bytes under WHEELS_DIR or None, notes).
    The requirement files (the top one and its includes) are copied under REQUIREMENTS_DIR.
    Raises docker.E001 when a requirements file is missing, docker.E013 for an include
    outside the project."""
    from wsgistack.container import wheel
    from wsgistack.container.project import find_facts
    from wsgistack.container.requirements import requirement_tree

    tree = requirement_tree(project, options.requirements)
    facts = find_facts(project, detect=detect)
    source, vendored = wheel.resolve()
    files = render_dockerfile(facts, source, options) + list(tree.files)
    notes = list(tree.notes) + list(facts.notes) + ([source.note] if source.note else [])
    data = (source.wheel, vendored[f"{WHEELS_DIR}/{source.wheel}"]) if source.wheel else None
    if source.wheel:
        notes.append(f"vendored {WHEELS_DIR}/{source.wheel} (wsgistack from {wheel.source_tree()})")
    return files, data, notes


def dockerfile_name(project: Path, force: bool = False) -> str:
    """``Dockerfile``, or OWN_DOCKERFILE when the project has a Dockerfile of its own (kept)."""
    return "Dockerfile" if force or is_ours(project / "Dockerfile") else OWN_DOCKERFILE


def write_recipe(
    project: Path, files: list[RenderedFile], wheel: tuple[str, bytes] | None, force: bool = False
) -> tuple[list[Path], list[str]]:
    """Write the recipe into the project; returns (written paths, notes). A Dockerfile of the
    project's own is kept: ours goes beside it as OWN_DOCKERFILE (``force`` replaces it). A
    .dockerignore of its own is kept too, with a note (Docker reads only that one). Any
    other file wsgistack did not write is never overwritten without ``force`` (docker.E011)."""
    from wsgistack.render import write_files

    notes: list[str] = []
    own_dockerfile = dockerfile_name(project, force)
    renamed = []
    for f in files:
        if f.path == "Dockerfile" and own_dockerfile != "Dockerfile":
            f = RenderedFile(own_dockerfile, f.content)
            notes.append(f"{project / 'Dockerfile'} is your own: kept; wsgistack's is {own_dockerfile} "
                         f"(docker build -f {own_dockerfile} .)")
        if f.path == ".dockerignore" and not force and not is_ours(project / f.path):
            notes.append(f"{project / '.dockerignore'} is your own: kept (Docker reads only that file); "
                         "check that it keeps secrets and local data out (compare: wsgistack dockerfile --stdout "
                         "writes nothing but shows the Dockerfile; --force replaces your .dockerignore)")
            continue
        renamed.append(f)
    files = renamed
    foreign = [f.path for f in files if not force and not is_ours(project / f.path)]
    if foreign:
        raise WsgistackError(
            ids.DOCKER_E011,
            f"{', '.join(foreign)} in {project} was not written by wsgistack; not overwriting it",
            "pass --force to replace it (keep a copy), or build your own with `docker build`; "
            "compare with `wsgistack dockerfile --stdout`",
        )
    requirements = project / REQUIREMENTS_DIR
    if requirements.is_dir():  # ours alone: copies from the last run may name files gone since
        import shutil

        shutil.rmtree(requirements)
    written = write_files(files, project)
    wheels = project / WHEELS_DIR
    if wheel is not None:
        wheel_name, wheel_bytes = wheel
        wheels.mkdir(parents=True, exist_ok=True)
        for old in wheels.glob("wsgistack-*.whl"):
            if old.name != wheel_name:
                old.unlink()
        target = wheels / wheel_name
        # Same bytes: leave the file alone (mtime does not matter to Docker's cache, but quiet is nice).
        if not target.is_file() or target.read_bytes() != wheel_bytes:
            target.write_bytes(wheel_bytes)
        written.append(target)
    return written, notes
