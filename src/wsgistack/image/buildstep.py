"""The image's build step: ``wsgistack entrypoint --build-step``, a RUN in the Dockerfile's
code stage. What needs the app imported is done here, by the image's own Python with the
app's requirements installed, so the Python of the machine that runs ``wsgistack build``
never matters (a Django 6 project builds from a Python 3.11 host):

- detect the app and its STATIC_ROOT / MEDIA_ROOT; those inside the project (and the
  top-level directory holding each) become the app's: group 0, mode 2770;
- collect static files once, at build time, when the settings allow it without the
  run-time environment; a stamp in STATIC_ROOT lets every start skip collectstatic while
  that directory is the image's (a volume from an older image gets collected again);
- record what was done in ``/app/.wsgistack/build.json`` for the entrypoint.

Nothing here fails the build for the app's sake: what cannot be done now (settings that
need run-time environment variables) is said, and left to the start, as before.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wsgistack import ids
from wsgistack.contracts import BuildRecord
from wsgistack.app.detect import PLACEHOLDER
from wsgistack.layout import BUILD_RECORD, COLLECTED_STAMP


def _own(path: Path, uid: int) -> None:
    os.chown(path, uid, 0)
    os.chmod(path, 0o2770)


def _make_writable(project: Path, targets: list[Path], uid: int) -> list[str]:
    """Make each target directory the app's, and each directory between it and the project
    that holds nothing but the way to targets (the demo's var/, holding static/ and media/).
    A directory with anything else in it (bakerydemo/, holding the code and its
    collect_static/) stays root's: the code is never writable by the app."""
    on_the_way = {a for t in targets for a in (t, *t.parents) if a.is_relative_to(project)}
    made = []
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        chain = [a for a in reversed(target.parents) if a.is_relative_to(project) and a != project]
        for d in [*chain, target]:
            if d != target and any(entry not in on_the_way for entry in d.iterdir()):
                continue
            _own(d, uid)
            made.append(d.relative_to(project).as_posix())
    return list(dict.fromkeys(made))


def _chown_tree(root: Path, uid: int) -> None:
    """The directories become the app's (a collectstatic at start, into a volume an older
    image filled, replaces files in them); the files stay root's: some are hard links to the
    project's own files, which the app must not be able to change."""
    for dirpath, _dirs, _files in os.walk(root):
        os.chown(dirpath, uid, 0)
        os.chmod(dirpath, 0o2770)


def build_step(project: Path, env: Mapping[str, str], uid: int) -> tuple[dict[str, Any], list[str]]:
    """Run the step in ``project``; returns (the record written, notes for the build log)."""
    from wsgistack import start
    from wsgistack.app.interpreter import helper_argv
    from wsgistack.errors import WsgistackError

    project = project.resolve()
    notes: list[str] = []
    record: dict[str, Any] = {"app": None, "kind": None, "writable": [], "static_collected": None, "app_path": None,
                              "data_dirs": [], "placeholders": []}
    try:
        # The start's own stages: resolve, then the interpreter; detection as the image's root
        # (the build's own user: docker build runs every RUN as it; the start imports the app as
        # the app's user), with placeholders for variables the settings need at import (the
        # run-time environment is not here: SECRET_KEY is the containers').
        loaded = start.resolve(project, env=env)
        config = loaded.config
        found = start.find_python(loaded, env)
        if found is None:
            raise WsgistackError(ids.APP_E001, "role web: no app in this image", "")
        python = found.python
        app_path = start.app_path(loaded)
        record["app_path"] = str(app_path)
        spec, placeholders = start.detect_image(loaded, env, python)
    except WsgistackError as exc:
        notes.append(
            f"the app could not be imported at build time ({exc.id}: {exc.message}); the container finds it at "
            "start instead, and static files are collected there (give its settings what they need at run time); "
            "directories it writes inside /app are not prepared: name them with --writable DIR ([image] writable)"
        )
        _write(project, record)
        return record, notes
    record.update(app=spec.target, kind=spec.kind, placeholders=list(placeholders))
    build_env = {**env, **config.app.env, **{name: PLACEHOLDER for name in placeholders}}
    if placeholders:
        notes.append(f"the settings need {', '.join(placeholders)} at import: the build step imported them with a "
                     "placeholder value (in its own processes only, never in the image); the containers need the real ones")
    data = Path(env.get("DATA_DIR") or "/data")
    static_root: Path | None = None
    inside: list[Path] = []
    data_dirs: list[dict[str, str]] = []
    written = [(item.role, item.url, item.dir) for item in spec.static if item.role in ("static", "media")]
    written += [("data", "", d) for d in spec.storage]
    shown = {"static": "static root", "media": "media root", "data": "a directory the app writes"}
    for role, url, d in written:
        if d.is_relative_to(project) and d != project:
            inside.append(d)
            data_dirs.append({"role": role, "url": url, "path": d.relative_to(project).as_posix()})
            if role == "static":
                static_root = d
        elif d.is_relative_to(data):
            notes.append(f"{shown[role]} {d} is in the data volume ($DATA_DIR)")
        else:
            notes.append(
                f"{shown[role]} {d} is outside the project and $DATA_DIR ({data}): the image cannot prepare it (the "
                f"app's user may write only /app's prepared directories and {data}); point it inside either, or mount "
                "a volume there"
            )
    record["writable"] = _make_writable(project, inside, uid)
    record["data_dirs"] = data_dirs
    if record["writable"]:
        notes.append("writable by the app: " + ", ".join(f"/app/{w}" if project == Path("/app") else w for w in record["writable"])
                     + " (in the container's own layer: a volume there keeps the files across containers)")
    if spec.kind == "django" and spec.staticfiles and config.app.collectstatic and static_root is not None:
        child_env = {**build_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(app_path), env.get("PYTHONPATH", "")]))}
        if spec.django_settings:
            child_env["DJANGO_SETTINGS_MODULE"] = spec.django_settings
        proc = subprocess.run(helper_argv(python, "djangoprestart", "collectstatic"), cwd=app_path,
                              env=child_env, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            stamp = uuid.uuid4().hex
            (static_root / COLLECTED_STAMP).write_text(stamp + "\n", encoding="utf-8")
            saved, linked = _link_duplicates(static_root, project, python, notes)
            _chown_tree(static_root, uid)
            record["static_collected"] = {"dir": str(static_root), "stamp": stamp, "settings": spec.django_settings}
            if linked:  # root's links to root's package files: nginx follows those (if_not_owner) here only
                record["static_collected"]["links"] = "packages"
            count = sum(len(files) for _d, _s, files in os.walk(static_root))
            notes.append(f"static files collected into {static_root} ({count} files; {saved / 1e6:.1f} MB of copies "
                         "linked to their sources): starts skip collectstatic")
        else:
            last = ((proc.stderr or proc.stdout).strip().splitlines() or ["?"])[-1]
            notes.append(f"collectstatic failed at build time ({last}); the container collects at start instead")
    _write(project, record, notes)
    return record, notes


def _link_duplicates(root: Path, project: Path, python: str, notes: list[str]) -> tuple[int, bool]:
    """Store each collected file once. Collected static files are copies: of the project's
    own files (hard-linked to them: /app is one layer), of files shipped in the app's
    packages (Django's admin: symbolic links into the venv, root's like their targets; the
    venv is another layer, which a hard link would copy), and of each other (manifest storage
    keeps ``app.js`` beside ``app.<hash>.js``: hard-linked). Any other symbolic link in the
    directory (one a checkout brought) is removed and said: nginx follows a link here only
    when its owner owns the target too (the build record names the directory), so a
    root-owned link to /etc/passwd must not be left in it. Returns (bytes saved, whether it
    made links into the packages)."""
    import hashlib

    def key(path: Path) -> tuple[int, str]:
        return path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()

    sources: dict[tuple[int, str], Path] = {}
    proc = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=False)
    packages = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
    for top in filter(None, (packages, project)):
        for dirpath, dirs, files in os.walk(top):
            here = Path(dirpath)
            dirs[:] = [d for d in dirs if (here / d) != root and d != "__pycache__"]
            if "static" not in here.relative_to(top).parts:
                continue
            for name in files:
                path = here / name
                if path.is_file() and not path.is_symlink():
                    sources.setdefault(key(path), path)
    first: dict[tuple[int, str], Path] = {}
    made: set[Path] = set()
    saved = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(dirpath, name)
            if path.is_symlink():
                continue  # swept below
            if not path.is_file() or name == COLLECTED_STAMP:
                continue
            k = key(path)
            source = sources.get(k)
            tmp = path.with_name(f".{name}.wsgistack-link")
            if source is not None and source.is_relative_to(project):
                os.link(source, tmp)
            elif source is not None:
                os.symlink(source, tmp)
                made.add(path)
            elif first.setdefault(k, path) != path:
                os.link(first[k], tmp)
            else:
                continue
            os.replace(tmp, path)
            saved += k[0]
    for dirpath, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            path = Path(dirpath, name)
            if path.is_symlink() and path not in made:
                target = os.readlink(path)
                path.unlink()
                notes.append(f"removed the symbolic link {path} -> {target} from the collected static files: the "
                             "build links only package files there (nginx would follow it)")
    return saved, bool(made)


def _write(project: Path, record: dict[str, Any], notes: list[str] | None = None) -> None:
    """The build record (contracts.BuildRecord) at the project's root, where every start reads
    it (app.path may be a subdirectory): root's, mode 0644, read-only to the app."""
    path = project / BUILD_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    BuildRecord(app=record["app"], kind=record["kind"], app_path=record.get("app_path"),
                writable=tuple(record["writable"]), static_collected=record["static_collected"],
                notes=tuple(notes or ()), data_dirs=tuple(record.get("data_dirs") or ()),
                placeholders=tuple(record.get("placeholders") or ())).write(path, 0o644)
