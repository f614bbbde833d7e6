import os
from pathlib import Path

from wsgistack import ids
from wsgistack.errors import WsgistackError
from wsgistack.layout import REQUIREMENTS_DIR, WHEELS_DIR
from wsgistack.render import MARKER, RenderedFile
from wsgistack.render.dockerfile import (
    OWN_DOCKERFILE,
    DockerfileOptions,
    render_dockerfile,
)


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
    """Everything the build context needs: Dockerfile, .dockerignore and the running
    wsgistack's wheel; returns (files, (wheel name, bytes) under WHEELS_DIR, notes).
    The requirement files (the top one and its includes) are copied under REQUIREMENTS_DIR.
    Raises docker.E001 when a requirements file is missing, docker.E013 for an include
    outside the project."""
    from wsgistack.image import wheel
    from wsgistack.image.requirements import app_requirements
    from wsgistack.start import project_facts

    tree = app_requirements(project, options.requirements)
    facts = project_facts(project, os.environ, detect_app_dirs=detect)
    source, vendored = wheel.resolve()
    files = render_dockerfile(facts, source, options, tree.app) + list(tree.files)
    notes = list(tree.notes) + list(facts.notes) + ([source.note] if source.note else [])
    data = (source.wheel, vendored[f"{WHEELS_DIR}/{source.wheel}"])
    notes.append(f"vendored {WHEELS_DIR}/{source.wheel}: the running wsgistack ({wheel.installed_from()})")
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
