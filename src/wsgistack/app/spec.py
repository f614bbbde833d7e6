"""What an app is, once detected: values only (detection is :mod:`wsgistack.app.detect`, which
imports the app; the plan and the checks need only these)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class StaticDir:
    """A URL prefix nginx serves from a directory: what the app says (Django's STATIC_ROOT and
    MEDIA_ROOT, Flask's static folder) and what server.static adds (role "extra"); the plan's
    locations are these, with ``immutable`` set where file names carry a content hash."""

    url: str
    dir: Path
    role: Literal["static", "media", "extra"] = "static"
    immutable: bool = False  # hashed file names (Django's manifest storage): cache them for a year
    # The image's build step linked package files (root's links to root's files in the venv)
    # into it: nginx follows a link there when its owner owns the target (if_not_owner).
    build_links: bool = False


@dataclass(frozen=True)
class AppSpec:
    kind: Literal["django", "flask", "wsgi"]
    module: str
    attr: str
    path: Path
    factory: bool = False
    django_settings: str | None = None
    static: tuple[StaticDir, ...] = ()
    staticfiles: bool = False  # Django's staticfiles app is installed (collectstatic works)
    writes: tuple[Path, ...] = ()  # other directories the app writes: each SQLite database's directory
    # ...and the rest it writes, served by no URL: Django's STORAGES file-system locations,
    # Flask's instance folder (when its config points into it) and SQLite URIs' directories
    storage: tuple[Path, ...] = ()
    databases: tuple[tuple[str, str], ...] = ()  # Django: (alias, ENGINE) of each database in settings.DATABASES
    debug: bool | None = None  # Django's DEBUG (None: not known, not Django)
    secret_key_set: bool | None = None  # Django's SECRET_KEY is not empty (None: not known, not Django); never the key
    allowed_hosts: tuple[str, ...] | None = None  # Django's ALLOWED_HOSTS as set
    rejected_hosts: tuple[str, ...] | None = None  # the server names ALLOWED_HOSTS refuses (None: not asked)
    rss: int | None = None  # bytes resident once imported, measured by the probe (None: not measured)

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}{'()' if self.factory else ''}"
