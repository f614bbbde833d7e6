"""The application's interpreter: the Python the app, uWSGI and every app-side helper run on.

wsgistack runs from its own environment (pipx, ``uv tool``, its own venv) and serves an app
that lives in another one, so that the two never share (or fight over) dependencies. The
app's interpreter is, in this order:

1. ``app.python`` (env ``WSGISTACK_APP__PYTHON``, CLI ``--python``): an interpreter or a
   virtualenv directory;
2. the active virtualenv (``VIRTUAL_ENV``);
3. a ``.venv``, ``venv`` or ``env`` in the project (``env`` only with a ``pyvenv.cfg``: Wagtail's
   and other tutorials make ``env/``, a name some projects give a directory of env files);
4. the interpreter wsgistack itself runs on (wsgistack installed into the app's venv).

Nothing of wsgistack is imported there: the helpers that run inside it (:mod:`wsgistack.standalone.probe`,
:mod:`wsgistack.standalone.djangochecks`, :mod:`wsgistack.standalone.djangoprestart`, :mod:`wsgistack.standalone.pyfacts`) are
stdlib-only files handed to it as source (``python -c``), and uWSGI is the ``pyuwsgi`` installed
in the app's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from wsgistack import ids
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import ConfigError, WsgistackError
from wsgistack.machine import version_tuple

# The oldest pyuwsgi (uWSGI) wsgistack's rendered uwsgi.ini is tested with; checked at start.
MIN_PYUWSGI = (2, 0, 28)
MIN_PYUWSGI_TEXT = ".".join(map(str, MIN_PYUWSGI))
# The oldest granian (server.app_server = "granian") wsgistack is tested with: its worker
# respawn, unix socket and environ behaviour are what the granian path is built on.
MIN_GRANIAN = (2, 8, 9)
MIN_GRANIAN_TEXT = ".".join(map(str, MIN_GRANIAN))

# Stdlib-only modules of this package that run inside the app's interpreter (as source).
HELPERS = frozenset({"probe", "djangochecks", "djangoprestart", "pyfacts"})


@dataclass(frozen=True)
class AppPython:
    """The app's interpreter, why it was chosen, and the uWSGI installed beside it."""

    python: str
    why: str
    version: str = ""
    uwsgi: str | None = None  # the `uwsgi` command of pyuwsgi in that environment
    uwsgi_dist: str | None = None  # "pyuwsgi" (or "uWSGI", built from source)
    uwsgi_version: str | None = None
    # What uWSGI re-executes on a master reload: pyuwsgi's `uwsgi` is a Python script, and
    # uWSGI would otherwise re-exec the interpreter behind the venv's symlink, which cannot
    # import pyuwsgi, and the server would be gone after the first reload.
    binary_path: str | None = None
    import_dirs: tuple[str, ...] = ()  # its stdlib and site-packages (who may run it: access.py)
    granian_version: str | None = None  # granian installed there (server.app_server = "granian")

    @property
    def install_uwsgi(self) -> str:
        return f"{self.python} -m pip install pyuwsgi"

    @property
    def upgrade_uwsgi(self) -> str:
        return f"{self.python} -m pip install --upgrade 'pyuwsgi>={MIN_PYUWSGI_TEXT}'"

    @property
    def granian_argv(self) -> tuple[str, ...]:
        """How granian runs in that environment: as a module of its interpreter (no script path)."""
        return (self.python, "-m", "granian")

    @property
    def install_granian(self) -> str:
        return f"{self.python} -m pip install 'granian>={MIN_GRANIAN_TEXT}'"

    @property
    def granian_too_old(self) -> bool:
        version = version_tuple(self.granian_version)
        return version is not None and version < MIN_GRANIAN

    def server_version(self, app_server: str) -> str:
        """What the start prints for the app server that runs there (uWSGI or granian)."""
        if app_server == "granian":
            return f"granian {self.granian_version}"
        return f"{self.uwsgi_dist} {self.uwsgi_version}"

    @property
    def uwsgi_too_old(self) -> bool:
        version = version_tuple(self.uwsgi_version)
        return version is not None and version < MIN_PYUWSGI


# The virtualenvs looked for in the project (and app.path), in this order.
PROJECT_VENVS = (".venv", "venv", "env")


def _is_python(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _in_venv(directory: Path) -> Path:
    return directory / "bin" / "python"


def choose(loaded: LoadedConfig, env: Mapping[str, str], own: str | None = None) -> tuple[str, str]:
    """(interpreter, why) in the documented order; only looks at files, runs nothing.
    Raises python.E001 (exit 2) when app.python names no interpreter."""
    config = loaded.config
    project = loaded.project_dir
    if config.app.python:
        origin = loaded.origin("app.python")
        given = Path(config.app.python).expanduser()
        path = given if given.is_absolute() else project / given
        candidate = _in_venv(path) if path.is_dir() else path
        if not _is_python(candidate):
            raise ConfigError([
                WsgistackError(
                    ids.PYTHON_E001,
                    f"app.python = {config.app.python!r} (from {origin}) is not a Python interpreter or a virtualenv: "
                    + (f"{path} does not exist" if not path.exists() else f"{candidate} is not an executable file"),
                    "point it at the app's interpreter (e.g. /srv/app/.venv/bin/python) or its virtualenv directory; "
                    "leave it empty to use VIRTUAL_ENV or the project's .venv",
                )
            ])
        return str(candidate), f"app.python (from {origin})"
    venv = env.get("VIRTUAL_ENV", "").strip()
    if venv and _is_python(_in_venv(Path(venv))):
        return str(_in_venv(Path(venv))), f"the active virtualenv (VIRTUAL_ENV={venv})"
    app_dir = config.app.path if config.app.path.is_absolute() else project / config.app.path
    for directory in dict.fromkeys((project, app_dir.resolve())):
        for name in PROJECT_VENVS:
            if _is_python(_in_venv(directory / name)) and (name != "env" or (directory / name / "pyvenv.cfg").is_file()):
                return str(_in_venv(directory / name)), f"the virtualenv {name} in the project ({directory / name})"
    return own or sys.executable, "wsgistack's own interpreter (no app.python, VIRTUAL_ENV, or .venv/venv/env in the project)"


def helper_argv(python: str, helper: str, *args: str, isolated: bool = False) -> list[str]:
    """argv running one of wsgistack's stdlib-only helpers inside ``python``, as source.

    ``-c`` and not the file's path: ``python .../wsgistack/standalone/probe.py`` would put wsgistack's own
    package directory first on sys.path, where its app.py and plan.py would shadow the
    project's modules; and the source needs no permission to read wsgistack's install
    (a pipx venv under /root) for the unprivileged user the app runs as."""
    assert helper in HELPERS, helper
    source = resources.files("wsgistack").joinpath(f"standalone/{helper}.py").read_text(encoding="utf-8")
    return [python, *(["-I"] if isolated else []), "-c", source, *args]


def _binary_path(python: str, uwsgi: str | None) -> str | None:
    if uwsgi is None:
        return None
    try:
        with open(uwsgi, "rb") as fh:
            is_script = fh.read(2) == b"#!"
    except OSError:
        return None
    return python if is_script else uwsgi


def inspect(python: str, why: str) -> AppPython:
    """Ask the interpreter itself (one ``python -I`` subprocess, ~20 ms) for its version and
    its pyuwsgi. Raises python.E002 when it cannot run."""
    try:
        proc = subprocess.run(helper_argv(python, "pyfacts", isolated=True), capture_output=True, text=True, timeout=60, check=False)
        facts = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        proc, facts = None, None
        detail = str(exc)
    else:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
    if not facts:
        raise WsgistackError(
            ids.PYTHON_E002,
            f"the app's interpreter {python} ({why}) does not run",
            "recreate that virtualenv, or point app.python (--python, WSGISTACK_APP__PYTHON) at a working interpreter",
            details=detail,
        )
    uwsgi = facts.get("uwsgi") or {}
    command = uwsgi.get("command")
    return AppPython(
        python=python,
        why=why,
        version=facts.get("version", ""),
        uwsgi=command,
        uwsgi_dist=uwsgi.get("dist"),
        uwsgi_version=uwsgi.get("version"),
        binary_path=_binary_path(python, command),
        import_dirs=tuple(facts.get("import_dirs") or ()),
        granian_version=(facts.get("granian") or {}).get("version"),
    )


def resolve(loaded: LoadedConfig, env: Mapping[str, str]) -> AppPython:
    """The app's interpreter, inspected."""
    return inspect(*choose(loaded, env))


def check_uwsgi(python: AppPython) -> None:
    """Refuse to start uWSGI that is missing from the app's environment, or too old."""
    from wsgistack.errors import MissingBinaryError

    if python.uwsgi is None:
        found = f" ({python.uwsgi_dist} {python.uwsgi_version} is installed, but without its uwsgi command)" if python.uwsgi_dist else ""
        raise MissingBinaryError(
            ids.RUN_E001,
            f"uWSGI is not installed in the app's environment{found}: {python.python}, {python.why}",
            f"add it there: {python.install_uwsgi}",
        )
    if python.uwsgi_too_old:
        raise MissingBinaryError(
            ids.PYTHON_E003,
            f"{python.uwsgi_dist} {python.uwsgi_version} in the app's environment ({python.python}) is older than "
            f"{MIN_PYUWSGI_TEXT}, the oldest wsgistack supports",
            f"upgrade it: {python.upgrade_uwsgi}",
        )


def check_granian(python: AppPython) -> None:
    """Refuse to start granian (server.app_server = "granian") missing from the app's
    environment, or older than the one wsgistack is tested with."""
    from wsgistack.errors import MissingBinaryError

    if python.granian_version is None:
        raise MissingBinaryError(
            ids.RUN_E001,
            f"granian is not installed in the app's environment: {python.python}, {python.why} "
            "(server.app_server = \"granian\")",
            f"add it there: {python.install_granian}",
        )
    if python.granian_too_old:
        raise MissingBinaryError(
            ids.PYTHON_E003,
            f"granian {python.granian_version} in the app's environment ({python.python}) is older than "
            f"{MIN_GRANIAN_TEXT}, the oldest wsgistack supports",
            f"upgrade it: {python.install_granian.replace('install', 'install --upgrade', 1)}",
        )


def check_server(python: AppPython, app_server: str) -> None:
    """The app server the config names, installed (and recent enough) in the app's environment."""
    if app_server == "granian":
        check_granian(python)
    else:
        check_uwsgi(python)


def as_started(python: str, why: str) -> AppPython:
    """The interpreter a running stack was started with (its record, contracts.StartRecord),
    inspected again: uWSGI keeps it until a restart, whatever the reloading shell's
    VIRTUAL_ENV says."""
    return inspect(python, f"{why}, as the stack was started")
