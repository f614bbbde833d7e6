"""tests/fixtures/flask_factory: a pyproject.toml-only Flask package with an app factory and
SQLite in Flask's instance folder, deployed the way its README says."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tests.userpaths.conftest import (
    Install, Owner, Run, app_venv, free_port, http, post_form, prepared, start, wait_for,
)

FIXTURE = "flask_factory"
APP_USER = "www-data"  # who wsgistack, started as root, runs the app as (README: Running as root)


@pytest.fixture(scope="session")
def project(owner: Owner) -> Path:
    """The user's checkout, with its venv as the README makes it (`pip install -e . pyuwsgi`)."""
    return prepared(owner, FIXTURE, "-e", ".", "pyuwsgi")


def give_app_user(path: Path) -> None:
    """What the README asks of a root user: the app's user (www-data) can write ``path``."""
    entry = pwd.getpwnam(APP_USER)
    path.mkdir(exist_ok=True)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def notes_persist(run: Run, body: str) -> None:
    created = post_form(run.url + "/notes", {"body": body})
    assert created.status == 201, (created.status, created.body[:300], run.log()[-3000:])
    listed = http(run.url + "/notes")
    assert listed.status == 200 and body in [n["body"] for n in listed.json()], listed.body[:300]  # type: ignore[union-attr]


def test_run_finds_the_factory_and_serves_a_post_that_persists(owner: Owner, installed: Install, project: Path,
                                                               runs: list[Run]) -> None:
    if owner.is_root:
        give_app_user(project / "instance")  # the README: the app's user writes its instance folder
    run = start(runs, installed, project)
    run.wait_ready("/")
    log = run.log()
    assert "flask app notes:create_app()" in log, log[-3000:]
    page = http(run.url + "/")
    assert page.status == 200 and b"<h1>Notes</h1>" in page.body
    assert http(run.url + "/static/style.css").status == 200
    notes_persist(run, f"first note by {owner.name}")
    run.stop()
    # A restart keeps the data: it is in instance/notes.sqlite.
    again = start(runs, installed, project)
    again.wait_ready("/")
    assert f"first note by {owner.name}" in [n["body"] for n in http(again.url + "/notes").json()]  # type: ignore[union-attr]
    assert (project / "instance" / "notes.sqlite").is_file()


def test_root_start_checks_the_instance_folder(root: Owner, root_install: Install, runs: list[Run]) -> None:
    """A fresh checkout as root, instance/ not prepared: either the start refuses with
    run.E005 naming instance/, or it makes it work; never a site that answers 500."""
    project = root.checkout(FIXTURE)
    app_venv(root, project, "-e", ".", "pyuwsgi")
    run = start(runs, root_install, project)
    exited = wait_for(lambda: run.exited() is not None or _answers(run), timeout=120)
    assert exited
    if run.exited() is not None:
        log = run.log()
        assert run.exited() != 0 and "run.E005" in log and str(project / "instance") in log, log[-3000:]
        return
    notes_persist(run, "root, no preparation")


def _answers(run: Run) -> bool:
    try:
        http(run.url + "/_wsgistack/live", timeout=2)
        return True
    except OSError:
        return False


def test_root_with_the_ops_listener_serves(root: Owner, root_install: Install, runs: list[Run]) -> None:
    project = prepared(root, FIXTURE, "-e", ".", "pyuwsgi")
    give_app_user(project / "instance")
    ops_port = free_port()
    run = start(runs, root_install, project, env={"WSGISTACK_OPS__PORT": str(ops_port)})  # [ops] port (docs/operations.md)
    run.wait_ready("/", timeout=90)
    assert run.first_status == 200, run.log()[-3000:]
    notes_persist(run, "root with ops")
