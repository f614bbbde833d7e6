"""``Dockerfile`` + ``.dockerignore`` for a project: a pure render from options and facts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wsgistack import __version__, ids
from wsgistack.errors import WsgistackError
from wsgistack.layout import (
    DATA_DIR,
    IMAGE_PORT,
    IMAGE_UID,
    REQUIREMENTS_DIR,
    SHARED_DIR,
    TLS_DIR,
    TLS_PORT,
    WHEELS_DIR,
)
from wsgistack.config.model import Config
from wsgistack.plan.image import AppRequirements, ProjectFacts, WsgistackSource
from wsgistack.plan.stop import stop_plan
from wsgistack.render import RenderedFile, environment

from wsgistack.config.model import DEFAULT_BASE  # noqa: E402 (the image settings' default, declared once)

# Beside a Dockerfile of the project's own, ours is written (and built) under this name.
OWN_DOCKERFILE = "Dockerfile.wsgistack"

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(=[\w.+~:-]+)?$")


@dataclass(frozen=True)
class DockerfileOptions:
    base: str = DEFAULT_BASE
    requirements: str | None = None  # the app's requirements file; None: requirements.txt, else pyproject.toml
    packages: tuple[str, ...] = ()  # extra Debian packages at runtime (e.g. libpq5)
    build_packages: tuple[str, ...] = ()  # extra Debian packages to build wheels (e.g. gcc libpq-dev)
    writable: tuple[str, ...] = ()  # extra project dirs the app writes to
    keep: tuple[str, ...] = field(default=())  # paths .dockerignore must let through (e.g. mysite/secret_utils.py)
    exclude: tuple[str, ...] = field(default=())  # more .dockerignore patterns (e.g. mysite/settings_local.py)
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


def render_dockerfile(facts: ProjectFacts, source: WsgistackSource, options: DockerfileOptions,
                      requirements: AppRequirements | None = None) -> list[RenderedFile]:
    """Dockerfile and .dockerignore (paths relative to the project); ``requirements``: what
    image.requirements found (default: requirements.txt, or the file options name)."""
    _check(options)
    env = environment()
    ctx = {
        "version": __version__,
        "base": options.base,
        "build_packages": options.build_packages,
        "packages": options.packages,
        "source": source,
        # The app server the project's config names: its wheel, alone, in the app's environment.
        "app_server": source.granian if facts.app_server == "granian" else source.uwsgi,
        "granian": facts.app_server == "granian",
        "wheels_dir": WHEELS_DIR,
        "requirements": requirements or AppRequirements(top=PurePosixPath(Path(options.requirements or "requirements.txt").as_posix())),
        "requirements_dir": REQUIREMENTS_DIR,
        "data_dir": DATA_DIR,
        "uid": IMAGE_UID,
        "port": IMAGE_PORT,
        "shared_dir": SHARED_DIR,
        "writable": writable_dirs(facts, options),
        "data_dirs": [d.relative.as_posix() for d in facts.data_dirs],
        "keep": options.keep,
        "exclude": options.exclude,
        "heroku": options.heroku,
        "keep_apt": options.keep_apt,
        "acme": options.acme,
        "tls_dir": TLS_DIR,
        "tls_port": TLS_PORT,
        "workdir": facts.workdir,
        "stop_grace": facts.stop_grace or stop_plan(Config()).grace,
    }
    return [
        RenderedFile("Dockerfile", env.get_template("Dockerfile.j2").render(ctx)),
        RenderedFile(".dockerignore", env.get_template("dockerignore.j2").render(ctx)),
    ]








