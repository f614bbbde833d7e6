"""What an image, its compose files and manifests need to know of a project (values only:
``start.project_facts`` finds them with the start's own stages), and how the image gets
wsgistack itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wsgistack.app.interpreter import MIN_GRANIAN_TEXT, MIN_PYUWSGI_TEXT
from wsgistack.layout import APP_DIR


@dataclass(frozen=True)
class DataDir:
    role: str  # static | media (served by nginx at url) | data (written by the app, served by no URL)
    url: str
    relative: PurePosixPath  # inside the project

    @property
    def container_path(self) -> PurePosixPath:
        return APP_DIR / self.relative


@dataclass(frozen=True)
class ProjectFacts:
    path: Path
    name: str  # a Docker-friendly image name
    app_kind: str | None
    data_dirs: tuple[DataDir, ...]  # detected STATIC_ROOT / MEDIA_ROOT inside the project
    notes: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()  # [processes.NAME] names: one worker service each (split compose)
    detected: bool = False  # the app was imported here (else data_dirs is unknown, not empty)
    # What `docker stop` must wait for the image's default role (all) to stop within its
    # budgets (plan.stop; its default of 10 s is too short for most): docker stop -t / --stop-timeout.
    stop_grace: int = 0
    app_server: str = "uwsgi"  # server.app_server in the project's config: what the app's environment gets
    app_dir: PurePosixPath = PurePosixPath(".")  # app.path inside the project (the image's WORKDIR below /app)
    error: str | None = None  # why detection failed (rendered error), when it did

    @property
    def workdir(self) -> PurePosixPath:
        """Where `docker exec C python manage.py ...` runs: app.path in the image."""
        return APP_DIR / self.app_dir


def image_name(path: Path) -> str:
    import re

    name = re.sub(r"[^a-z0-9._-]+", "-", path.resolve().name.lower()).strip("-._")
    return name or "app"


def run_command(tag: str, volume: str, bridge: bool | None, port: int = 8080) -> str:
    """The `docker run` that serves a built image on this engine: ``-p`` publishes a port only
    through a bridge network; an engine without one (``bridge`` False) needs host networking,
    where the container binds ``PORT`` itself. ``bridge`` None (no engine answered): ``-p``."""
    if bridge is False:
        return f"docker run --rm --network host -e PORT={port} -v {volume}:/data {tag}"
    return f"docker run --rm -e PORT={port} -p {port}:{port} -v {volume}:/data {tag}"




@dataclass(frozen=True)
class AppRequirements:
    """What the image installs into the app's environment (image.requirements finds it)."""

    top: PurePosixPath = PurePosixPath("requirements.txt")  # under the build context's requirement copies
    install_project: bool = False  # pyproject.toml: the project itself, installed with the code
    project_deps: bool = False  # ...with its dependencies (dynamic: only known to its build backend)


@dataclass(frozen=True)
class WsgistackSource:
    """How the image gets wsgistack: ``wheel``, a file name under WHEELS_DIR (the running
    wsgistack, vendored into the build context)."""

    wheel: str
    dependencies: tuple[str, ...]  # what to install with it (runtime only, see NOT_IN_IMAGE)
    note: str = ""
    uwsgi: str = f"pyuwsgi>={MIN_PYUWSGI_TEXT}"  # what the app's environment gets (APP_SIDE)
    granian: str = f"granian>={MIN_GRANIAN_TEXT}"  # ...instead, with server.app_server = "granian"
