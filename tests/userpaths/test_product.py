"""tests/fixtures/product: a Django product in a subdirectory, on PostgreSQL (a private
Debian cluster) with Redis and an RQ worker, settings that require SECRET_KEY, a deploy check
that needs the schema and uploads in a STORAGES location inside the code tree; deployed the
way its README says."""

from __future__ import annotations

import os
import pwd
import secrets
from pathlib import Path

import pytest

from tests.userpaths.conftest import (
    Install, Owner, Postgres, Redis, Run, app_venv, http, post_multipart, prepared, start, wait_for,
)

FIXTURE = "product"
APP_USER = "www-data"
UPLOAD = b"quarterly numbers\n" * 64


@pytest.fixture(scope="session")
def project(owner: Owner) -> Path:
    return prepared(owner, FIXTURE, "-r", "requirements/dev.txt", "pyuwsgi")


@pytest.fixture(scope="session")
def user_project(normal_user: Owner) -> Path:
    return prepared(normal_user, FIXTURE, "-r", "requirements/dev.txt", "pyuwsgi")


def product_env(postgres: Postgres, redis: Redis) -> dict[str, str]:
    """What the README says every environment needs (a fresh database each time)."""
    return {"SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": postgres.create_database(), "REDIS_URL": redis.url}


def give_app_user(*paths: Path) -> None:
    entry = pwd.getpwnam(APP_USER)
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(path):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.chown(name, entry.pw_uid, entry.pw_gid)


def upload_is_processed(run: Run, uploads: Path | None, title: str) -> int:
    """POST a document: the row and the upload persist, and the worker processes it."""
    created = post_multipart(run.url + "/documents/", {"title": title}, {"file": ("numbers.txt", UPLOAD)})
    assert created.status == 201, (created.status, created.body[:500], run.log()[-4000:])
    doc = created.json()
    assert isinstance(doc, dict)
    if uploads is not None:
        assert (uploads / doc["file"]).read_bytes() == UPLOAD
    done = wait_for(lambda: (d := http(f"{run.url}/documents/{doc['id']}/").json()) and d["processed"] and d, timeout=60)
    assert done and done["size"] == len(UPLOAD), (done, run.log()[-4000:])  # the worker ran the job
    return int(doc["id"])


def test_run_on_postgres_with_a_worker_serves_a_post_that_persists(owner: Owner, installed: Install, project: Path,
                                                                    postgres: Postgres, redis: Redis,
                                                                    runs: list[Run]) -> None:
    env = product_env(postgres, redis)
    if owner.is_root:  # the README: the app's user writes proj/staticfiles and proj/uploads
        give_app_user(project / "proj" / "staticfiles", project / "proj" / "uploads")
    run = start(runs, installed, project, "--migrate", env=env)  # the README's first start
    first = run.wait_ready("/")
    assert run.first_status == 200, run.log()[-4000:]
    log = run.log()
    assert "django app product.wsgi:application" in log and "Applying documents.0001_initial... OK" in log, log[-4000:]
    doc = upload_is_processed(run, project / "proj" / "uploads", f"by {owner.name}")
    assert http(run.url + "/static/admin/css/base.css").status == 200
    run.stop()
    again = start(runs, installed, project, env=env)  # a restart: no --migrate
    restart = again.wait_ready("/")
    assert again.first_status == 200
    assert http(f"{again.url}/documents/{doc}/").json()["processed"] is True  # type: ignore[index]
    print(f"\nproduct ({owner.name}): `wsgistack run --migrate` to first answer {first:.1f}s, restart {restart:.1f}s")


def test_root_start_checks_the_uploads_storage(root: Owner, root_install: Install, postgres: Postgres, redis: Redis,
                                               runs: list[Run]) -> None:
    """As root, with only STATIC_ROOT given to the app's user (what run.E005 asks for): either
    the start names proj/uploads (run.E005), or the upload works."""
    project = root.checkout(FIXTURE)
    app_venv(root, project, "-r", "requirements/dev.txt", "pyuwsgi")
    give_app_user(project / "proj" / "staticfiles")
    run = start(runs, root_install, project, "--migrate", env=product_env(postgres, redis))
    wait_for(lambda: run.exited() is not None or "serving http" in run.log(), timeout=180)
    if run.exited() is not None:
        log = run.log()
        assert "run.E005" in log and str(project / "proj" / "uploads") in log, log[-4000:]
        return
    upload_is_processed(run, None, "root, uploads not prepared")


def test_split_compose_without_the_runtime_env(user_install: Install, user_project: Path) -> None:
    """Manifests are written where the production secrets are not (a laptop, CI)."""
    out = user_install.run("compose", "--split", cwd=user_project)
    said = out.stdout + out.stderr
    if out.returncode != 0:
        assert "error[" in said and "SECRET_KEY" in said, said  # refused, with the fix
        return
    assert "static:/app/proj/staticfiles" in out.stdout, said


def test_kube_without_the_runtime_env(user_install: Install, user_project: Path) -> None:
    out_dir = user_install.owner.workdir("kube")
    out = user_install.run("kube", "--image", "registry.example.com/product:1", "--out", str(out_dir), cwd=user_project)
    said = out.stdout + out.stderr
    if out.returncode != 0:
        assert "error[" in said and "SECRET_KEY" in said, said
        return
    assert 'mountPath: "/app/proj/staticfiles"' in (out_dir / "deployment.yaml").read_text(), said


def test_git_ignored_local_settings_are_named(normal_user: Owner, user_install: Install) -> None:
    project = normal_user.checkout(FIXTURE)
    (project / "proj" / "product" / "settings_local.py").write_text(
        'SECRET_KEY = "CANARY-literal-secret-key"\nEMAIL_HOST_PASSWORD = "CANARY-mail"\n')
    normal_user.own(project)
    git = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-q", "-m", "product"]):
        normal_user.run(argv, cwd=project)
    out = user_install.run("dockerfile", "--verbose", cwd=project)
    said = out.stdout + out.stderr
    assert out.returncode == 0, said
    ignored = (project / ".dockerignore").read_text()
    assert "settings_local.py" in said or "settings_local" in ignored, said
