"""Facts about the user's project that the image and compose files need, found once.

The only side effect is app detection (a subprocess in the project's interpreter, as
``wsgistack run`` does). It is best effort here: a project whose dependencies are not
installed on this machine still gets a Dockerfile, without the detected data directories.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wsgistack.app.interpreter import MIN_PYUWSGI_TEXT
from wsgistack.layout import APP_DIR


@dataclass(frozen=True)
class DataDir:
    role: str  # static | media
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


def image_name(path: Path) -> str:
    import re

    name = re.sub(r"[^a-z0-9._-]+", "-", path.resolve().name.lower()).strip("-._")
    return name or "app"




@dataclass(frozen=True)
class WsgistackSource:
    """How the image gets wsgistack: ``wheel`` (a file name under WHEELS_DIR) or ``requirement``."""

    wheel: str | None
    requirement: str | None
    dependencies: tuple[str, ...]  # what to install with it (runtime only, see NOT_IN_IMAGE)
    note: str = ""
    uwsgi: str = f"pyuwsgi>={MIN_PYUWSGI_TEXT}"  # what the app's environment gets (APP_SIDE)
