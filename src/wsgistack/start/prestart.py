"""Prestart steps: Django's collectstatic and migrate, then the user's own commands.

They run after the files are written and before anything serves, as the user uWSGI runs as.
"""

from __future__ import annotations

import os
import re
import selectors
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from wsgistack import ids
from wsgistack.app.interpreter import helper_argv
from wsgistack.errors import PrestartError
from wsgistack.contracts import BuildRecord
from wsgistack.layout import COLLECTED_STAMP
from wsgistack.plan.stack import Plan


def prestart_commands(plan: Plan) -> list[tuple[str, list[str]]]:
    """(label, argv) for each prestart step, in order."""
    if plan.app is None:
        return []
    steps = django_steps(plan, ("collectstatic", "migrate"))
    for command in plan.config.app.prestart:
        steps.append((command, shlex.split(command)))
    return steps


def django_steps(plan: Plan, names: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """Django's steps among ``names`` that this start runs, as one command (one django.setup()).
    A worker container runs one background process: collectstatic and migrate are the app
    container's (run from several places at once they would race)."""
    app = plan.app
    if app is None or app.kind != "django" or plan.role == "worker":
        return []
    assert plan.python is not None
    wanted = [name for name, on in (("collectstatic", collects_static(plan)), ("migrate", plan.migrate))
              if on and name in names]
    return [(" + ".join(wanted), helper_argv(plan.python.python, "djangoprestart", *wanted))] if wanted else []


def collects_static(plan: Plan) -> bool:
    """Django's collectstatic runs: it is on, staticfiles is installed and STATIC_ROOT is set,
    and the image build has not collected into that very directory already (its stamp is there)."""
    app = plan.app
    static_roots = [loc.dir for loc in plan.locations if loc.role == "static"]
    if not (app and app.kind == "django" and plan.config.app.collectstatic and app.staticfiles and static_roots):
        return False
    return not all(static_collected_at_build(plan.build, d, app.django_settings) for d in static_roots)



def static_collected_at_build(build: BuildRecord | None, static_root: Path, settings: str | None = None) -> bool:
    """True when the image's build collected into ``static_root`` with these Django settings
    (its build record says so) and it still holds that build's files: not a volume filled by
    an older image, nor one mounted empty (the stamp in it is the build's)."""
    collected = build.static_collected if build is not None else None
    if not collected or Path(collected.get("dir", "")) != static_root:
        return False
    if settings is not None and collected.get("settings") not in (None, settings):
        return False
    try:
        return (static_root / COLLECTED_STAMP).read_text(encoding="utf-8").strip() == collected.get("stamp")
    except OSError:
        return False


def run_prestart(plan: Plan, env: Mapping[str, str], say: Callable[[str], None], *,
                 only: tuple[str, ...] | None = None) -> None:
    """The prestart steps (``only``: Django's steps of these names, no app.prestart: a
    reload collects static files and nothing else)."""
    assert plan.app is not None or not plan.config.app.prestart
    cwd = plan.app.path if plan.app else Path.cwd()
    child_env = {**env, **plan.app_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH", "")]))}
    if plan.python is not None:  # as background processes see it: `python ...` is the app's interpreter
        child_env["PATH"] = os.pathsep.join(filter(None, [os.path.dirname(plan.python.python), env.get("PATH", "")]))
    # Prestart steps run as the user uWSGI runs as, not as root: the files they create
    # (the SQLite database, collected static files, media dirs) must belong to whoever
    # serves them, and the app's code (migrations, settings) never runs as root. Chowning
    # instead would need to know every path an app writes, and would hide the problem.
    as_user = plan.run_as
    hint = "fix the problem shown above, or switch the step off (app.collectstatic / app.migrate = false)"
    if plan.uwsgi_user:
        hint = (
            f"prestart steps run as {plan.uwsgi_user!r}, like uWSGI: the directories they write (database, "
            f"STATIC_ROOT, MEDIA_ROOT) must be writable by it (chown -R {plan.uwsgi_user}: DIR); otherwise " + hint
        )
    steps = prestart_commands(plan) if only is None else django_steps(plan, only)
    for label, argv in steps:
        say(f"prestart: {label}" + (f" (as {plan.uwsgi_user})" if plan.uwsgi_user else ""))
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # type: ignore[call-overload]
                                    stderr=subprocess.STDOUT, **as_user)
        except FileNotFoundError:
            raise PrestartError(ids.PRESTART_E001, f"prestart command not found: {argv[0]}", "check app.prestart") from None
        except PermissionError as exc:
            raise PrestartError(
                ids.PRESTART_E001, f"prestart step {label!r} cannot start as {plan.uwsgi_user!r}: {exc}", hint
            ) from None
        output = stream_output(proc, _step_name(label, argv), _emitter(say))
        returncode = proc.wait()
        if returncode != 0:
            known = _known_failure(label, output, cwd, plan.uwsgi_user)
            if known is not None:
                raise known
            raise PrestartError(
                ids.PRESTART_E002,
                f"prestart step {label!r} failed with exit code {returncode}",
                hint,
                details=output[-4000:],
            )


# What djangoprestart.py prints before each Django step (standalone: it imports nothing of ours).
STEP_MARKER = "##wsgistack-prestart-step "
# A line still unfinished after this long is shown as it is (Django's migrate writes
# "Applying app.0002_big..." and the " OK" only once that migration is done: minutes, maybe).
PARTIAL_AFTER = 2.0
KEEP_BYTES = 64 * 1024  # of the output, for the error's details and the known-failure checks


def _step_name(label: str, argv: list[str]) -> str:
    """The name a step's lines go out under: the Django step (collectstatic, migrate; the
    helper names each as it begins), else the command's program (``manage.py`` for
    ``python manage.py seed``, ``sh`` for ``sh -c ...``)."""
    if " + " in label or label in ("collectstatic", "migrate"):
        return label.split(" + ")[0]
    words = [w for w in argv if not w.startswith("-")]
    program = os.path.basename(words[0]) if words else "prestart"
    if program.startswith("python") and len(words) > 1:
        program = os.path.basename(words[1])
    return program


def _emitter(say: Callable[[str], None]) -> Callable[[str, str], None]:
    """How a step's line is printed: as that step's own (``migrate | Applying ...``) when the
    output is wsgistack's line printer (contracts.Say), else as one of wsgistack's lines."""
    as_process = getattr(say, "as_process", None)
    if callable(as_process):
        return lambda name, text: as_process(name, text)
    return lambda name, text: say(f"{name} | {text}")


def stream_output(proc: subprocess.Popen[bytes], name: str, emit: Callable[[str, str], None]) -> str:
    """Relay a step's output as it comes, line by line, with the step's name (a first migrate
    of a large app was minutes of silence: the output was held until the step ended). A line
    still unfinished after PARTIAL_AFTER seconds is shown as it is, and its rest when it ends.
    Returns the end of the output (KEEP_BYTES), for the error's details."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    kept = bytearray()
    pending = b""
    pending_since = 0.0
    continued = False  # the pending line's start was shown already

    def show(raw: bytes, more: bool) -> None:
        nonlocal name, continued
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if not continued and text.startswith(STEP_MARKER):
            name = text[len(STEP_MARKER):].strip() or name
            return
        if text or not continued:
            emit(name, ("… " if continued else "") + text + (" …" if more else ""))
        continued = more

    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            wait = None if not pending else max(0.0, pending_since + PARTIAL_AFTER - time.monotonic())
            ready = selector.select(wait)
            chunk = b""
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                kept.extend(chunk)
                del kept[:-KEEP_BYTES]
                if not pending:
                    pending_since = time.monotonic()
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    show(line, False)
                if lines:
                    pending_since = time.monotonic()
            elif pending:  # unfinished for PARTIAL_AFTER seconds: show what there is
                show(pending, True)
                pending = b""
    if pending:
        show(pending, False)
    proc.stdout.close()
    return kept.decode("utf-8", "replace").replace(STEP_MARKER, "--- ").strip()


_DENIED_RE = re.compile(r"Permission denied: '(/[^']+)'")

# The settings line every hint about a SQLite database in the data directory gives. It needs
# `os` (and `Path`), which settings do not always import (Wagtail's template imports only Path):
# a line pasted without it fails the next build or start with a NameError.
SQLITE_IN_DATA_DIR = ("with import os and from pathlib import Path at the top of the settings, "
                      "DATABASES NAME = Path(os.environ.get('DATA_DIR', BASE_DIR)) / 'db.sqlite3'")


def _known_failure(label: str, output: str, project: Path, user: str | None) -> PrestartError | None:
    """The two failures a read-only project directory causes (the image's /app), each with
    the fix, instead of the generic prestart.E002."""
    who = repr(user) if user else "the app's user"
    if "unable to open database file" in output:
        return PrestartError(
            ids.PRESTART_E003,
            f"prestart step {label!r}: SQLite is unable to open the database file: its directory is missing or "
            f"not writable by {who} (in the image the code directory /app is read-only, as it should be)",
            "keep the database in the data directory: $DATA_DIR (/data in the image, a volume: docker run -v "
            f"myapp-data:/data IMAGE), e.g. {SQLITE_IN_DATA_DIR}; running locally, make the database's directory writable",
            details=output[-4000:],
        )
    denied = _DENIED_RE.search(output)
    if denied:
        path = Path(denied.group(1))
        directory = path if path.is_dir() else path.parent
        if directory.is_relative_to(project):
            rel = directory.relative_to(project).as_posix() or "."
            return PrestartError(
                ids.PRESTART_E004,
                f"prestart step {label!r} cannot write {path}: {directory} in the project is not writable by {who}",
                f"in the image: rebuild with `wsgistack build --writable {rel}` (or move that data to $DATA_DIR, "
                f"a volume); running locally: chown -R {user or 'USER'}: {directory}",
                details=output[-4000:],
            )
    return None
