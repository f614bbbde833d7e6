"""Facts about the user's project that the image and compose files need, found once.

The only side effect is app detection (a subprocess in the project's interpreter, as
``wsgistack run`` does). It is best effort here: a project whose dependencies are not
installed on this machine still gets a Dockerfile, without the detected data directories.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wsgistack.errors import WsgistackError

APP_DIR = PurePosixPath("/app")  # where the project lives in the image


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


def find_facts(path: Path, detect: bool = True) -> ProjectFacts:
    path = path.resolve()
    notes: list[str] = []
    kind = None
    dirs: list[DataDir] = []
    processes: tuple[str, ...] = ()
    if detect:
        from wsgistack.app import detect_app
        from wsgistack.config import load_config
        from wsgistack.interpreter import choose

        try:
            loaded = load_config(path, env={k: v for k, v in os.environ.items() if k == "DJANGO_SETTINGS_MODULE"})
            config = loaded.config
            processes = tuple(config.processes)
            app_path = config.app.path if config.app.path.is_absolute() else path / config.app.path
            python, _why = choose(loaded, os.environ)  # the app's own environment on this machine
            spec = detect_app(app_path.resolve(), target=config.app.target, django_settings=config.app.django_settings,
                              python=python)
        except WsgistackError as exc:
            notes.append(f"note: could not detect the app here ({exc.id}: {exc.message}); no data directories prepared")
        else:
            kind = spec.kind
            # Django's STATIC_ROOT and MEDIA_ROOT are data (collected, uploaded); a Flask
            # app's static folder is part of its code: never left out of the image.
            for item in spec.static if spec.kind == "django" else ():
                if item.role not in ("static", "media"):
                    continue
                try:
                    rel = item.dir.resolve().relative_to(path)
                except ValueError:
                    notes.append(
                        f"note: {item.role} root {item.dir} is outside the project: the image does not prepare it; "
                        f"point it inside the project (e.g. env DJANGO_{item.role.upper()}_ROOT) to share it between containers"
                    )
                    continue
                if rel.parts:
                    dirs.append(DataDir(item.role, item.url, PurePosixPath(rel.as_posix())))
    return ProjectFacts(path=path, name=image_name(path), app_kind=kind, data_dirs=tuple(dirs), notes=tuple(notes),
                        processes=processes)


