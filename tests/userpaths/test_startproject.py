"""tests/fixtures/startproject: what `django-admin startproject` makes, with DEBUG = False and
ALLOWED_HOSTS from the environment, deployed the way its README says."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from tests.userpaths.conftest import Install, Owner, Run, app_venv, http, post_form, prepared, start, wait_for

FIXTURE = "startproject"
HOSTS = {"DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1"}  # the README's local run
APP_USER = "www-data"


@pytest.fixture(scope="session")
def project(owner: Owner) -> Path:
    return prepared(owner, FIXTURE, "-r", "requirements.txt", "pyuwsgi")


@pytest.fixture(scope="session")
def user_project(normal_user: Owner) -> Path:
    return prepared(normal_user, FIXTURE, "-r", "requirements.txt", "pyuwsgi")


def app_user_dir(path: Path) -> Path:
    """A directory the app's user (www-data, when root starts it) can write: the README's
    $DATA_DIR, and STATIC_ROOT, which wsgistack's README says that user must write."""
    entry = pwd.getpwnam(APP_USER)
    path.mkdir(exist_ok=True)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def env_for(owner: Owner, project: Path, **extra: str) -> dict[str, str]:
    env = dict(extra)
    if owner.is_root:
        env["DATA_DIR"] = str(app_user_dir(project.parent / "data"))
        app_user_dir(project / "staticfiles")
    return env


def notes_persist(run: Run, body: str) -> None:
    created = post_form(run.url + "/notes/", {"body": body})
    assert created.status == 201, (created.status, created.body[:300], run.log()[-3000:])
    listed = http(run.url + "/notes/")
    assert listed.status == 200 and body in [n["body"] for n in listed.json()], listed.body[:300]  # type: ignore[union-attr]


def test_run_serves_a_post_that_persists(owner: Owner, installed: Install, project: Path, runs: list[Run]) -> None:
    env = env_for(owner, project, **HOSTS)
    run = start(runs, installed, project, env=env)
    run.wait_ready("/notes/")
    log = run.log()
    assert "django app mysite.wsgi:application" in log and "Applying notes.0001_initial... OK" in log, log[-4000:]
    notes_persist(run, f"a note by {owner.name}")
    assert http(run.url + "/admin/login/").status == 200
    css = http(run.url + "/static/admin/css/base.css")
    assert css.status == 200 and b"body" in css.body  # collectstatic ran, nginx serves STATIC_ROOT
    run.stop()
    again = start(runs, installed, project, env=env)
    again.wait_ready("/notes/")
    assert f"a note by {owner.name}" in [n["body"] for n in http(again.url + "/notes/").json()]  # type: ignore[union-attr]


def test_empty_allowed_hosts_is_refused_or_said_loudly(user_install: Install, user_project: Path, runs: list[Run]) -> None:
    run = start(runs, user_install, user_project)  # DJANGO_ALLOWED_HOSTS unset: ALLOWED_HOSTS = []
    wait_for(lambda: run.exited() is not None or "serving http" in run.log(), timeout=120)
    log = run.log()
    said = [line for line in log.splitlines() if "ALLOWED_HOSTS" in line and re.search(r"(error|warning)\[", line)]
    if run.exited() is None:
        assert http(run.url + "/notes/").status == 400  # what every request gets
    assert said, log[-3000:]


def test_reload_after_adding_static_root(normal_user: Owner, user_install: Install, runs: list[Run]) -> None:
    project = normal_user.checkout(FIXTURE)
    settings = project / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace("STATIC_ROOT = BASE_DIR / 'staticfiles'\n", ""))
    app_venv(normal_user, project, "-r", "requirements.txt", "pyuwsgi")
    run = start(runs, user_install, project, env=HOSTS)
    run.wait_ready("/notes/")
    assert http(run.url + "/static/admin/css/base.css").status == 404  # the admin unstyled...
    before = run.log()
    settings.write_text(settings.read_text() + "STATIC_ROOT = BASE_DIR / 'staticfiles'\n")
    reload = user_install.run("reload", cwd=project, env=HOSTS)
    said = reload.stdout + reload.stderr
    css = wait_for(lambda: http(run.url + "/static/admin/css/base.css").status == 200, timeout=20)
    assert css or "restart" in said, said  # ...then styled, or the reload says a restart is needed
    assert "STATIC_ROOT" in before or "STATIC_ROOT" in said, before[-3000:]  # and the first start said why


def test_gunicorn_module_target(user_install: Install, user_project: Path, runs: list[Run]) -> None:
    run = start(runs, user_install, user_project, "mysite.wsgi", env=HOSTS)
    run.wait_ready("/notes/")
    notes_persist(run, "via mysite.wsgi")


def test_gunicorn_callable_target_keeps_django_support(normal_user: Owner, user_install: Install, runs: list[Run]) -> None:
    project = normal_user.checkout(FIXTURE)  # a fresh database: migrate must run
    app_venv(normal_user, project, "-r", "requirements.txt", "pyuwsgi")
    run = start(runs, user_install, project, "mysite.wsgi:application", env=HOSTS)
    run.wait_ready("/notes/")
    assert http(run.url + "/static/admin/css/base.css").status == 200, run.log()[-3000:]
    notes_persist(run, "via mysite.wsgi:application")


def test_gunicorn_flags(user_install: Install, user_project: Path, runs: list[Run]) -> None:
    run = start(runs, user_install, user_project, "-w", "2", env=HOSTS, port_flag="--bind")
    run.wait_ready("/notes/")
    assert http(run.url + "/notes/").status == 200


def test_no_host_warning_for_the_usual_allowed_hosts(user_install: Install, user_project: Path, runs: list[Run]) -> None:
    run = start(runs, user_install, user_project, env=HOSTS)
    run.wait_ready("/notes/")
    assert "W105" not in run.log(), run.log()[-3000:]
    out = user_install.run("doctor", cwd=user_project, env=HOSTS)
    assert "W105" not in out.stdout + out.stderr, out.stdout[-3000:]


def test_root_write_error_names_only_what_the_app_writes(root: Owner, root_install: Install, runs: list[Run]) -> None:
    project = root.checkout(FIXTURE)
    app_venv(root, project, "-r", "requirements.txt", "pyuwsgi")
    run = start(runs, root_install, project, env=HOSTS)  # SQLite next to manage.py, as startproject has it
    code = run.proc.wait(timeout=120)
    log = run.log()
    assert code != 0 and "run.E005" in log, log[-3000:]
    hint = next(line for line in log.splitlines() if "hint:" in line)
    assert not re.search(rf"chown -R \S+ (\S+ )*{re.escape(str(project))}( |$)", hint), hint
