"""The image's build step (buildstep.py), run here on a copy of the Django demo: what the
Dockerfile's RUN does inside the image, with this interpreter standing in for the image's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import EXAMPLES
from wsgistack.layout import BUILD_RECORD as RECORD, COLLECTED_STAMP as STAMP
from wsgistack.contracts import BuildRecord
from wsgistack.image.buildstep import build_step
from wsgistack.start.prestart import static_collected_at_build


def test_detects_makes_writable_collects_and_records(tmp_path: Path) -> None:
    project = tmp_path / "app"
    shutil.copytree(EXAMPLES / "django_demo", project, ignore=shutil.ignore_patterns("__pycache__", "var"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "WSGISTACK", "DEMO"))}
    env["DATA_DIR"] = str(tmp_path / "data")
    record, notes = build_step(project, env, os.getuid())
    assert record["kind"] == "django" and record["app"] == "demo.wsgi:application"
    assert record["writable"] == ["var", "var/static", "var/media"]
    assert (project / "var" / "media").stat().st_mode & 0o7777 == 0o2770
    static = project / "var" / "static"
    assert record["static_collected"]["dir"] == str(static)
    written = BuildRecord.read(project / RECORD)
    assert (written.app, written.kind, list(written.writable), written.static_collected) == (
        record["app"], record["kind"], record["writable"], record["static_collected"])
    assert written.app_path == str(project)
    assert (static / "staticfiles.json").is_file() and (static / STAMP).is_file()
    assert any("starts skip collectstatic" in n for n in notes), notes
    # Collected copies are stored once: package files are symbolic links into the venv (root's,
    # a hard link cannot cross the venv's layer), the project's own are hard links to it (both
    # copies manifest storage keeps), and the app cannot change the project's file through them
    # (root's, not group-writable). The record says the directory holds the build's links:
    # nginx follows those there (if_not_owner), nowhere else.
    js = next(static.glob("admin/js/vendor/jquery/jquery.min.*.js"))
    assert js.is_symlink() and js.resolve() == (static / "admin/js/vendor/jquery/jquery.min.js").resolve()
    assert "site-packages/django/contrib/admin/static" in str(js.resolve())
    assert js.lstat().st_uid == js.resolve().stat().st_uid
    assert record["static_collected"]["links"] == "packages"
    png = next(static.glob("posts/logo.*.png"))
    assert png.samefile(project / "posts" / "static" / "posts" / "logo.png")
    assert png.stat().st_uid == 0 and png.stat().st_mode & 0o022 == 0
    assert static_collected_at_build(written, static) and static_collected_at_build(written, static, "demo.settings")
    assert not static_collected_at_build(written, static, "demo.settings_production")  # collected with other settings
    # A volume over STATIC_ROOT from an older image (another stamp), or empty: collect again.
    (static / STAMP).write_text("older\n")
    assert not static_collected_at_build(written, static)
    (static / STAMP).unlink()
    assert not static_collected_at_build(written, static)


def test_an_app_that_needs_its_run_time_environment_is_left_to_the_start(tmp_path: Path) -> None:
    project = tmp_path / "app"
    project.mkdir()
    (project / "manage.py").write_text('os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_cfg.settings")\n')
    (project / "site_cfg").mkdir()
    (project / "site_cfg" / "__init__.py").write_text("")
    (project / "site_cfg" / "settings.py").write_text("import os\nSECRET_KEY = os.environ['SECRET_KEY']\n")
    record, notes = build_step(project, {"PATH": os.environ["PATH"]}, os.getuid())
    assert record["app"] is None and record["static_collected"] is None
    assert any("could not be imported at build time" in n and "at start instead" in n for n in notes), notes
    assert (project / RECORD).is_file()


def test_findings_said_at_the_last_start_are_one_line(tmp_path: Path) -> None:
    from wsgistack.start.runtime import said_once

    findings = ["warning[app.W110]: (security.W004) no HSTS\n  hint: set it", "warning[app.W105]: hosts"]
    cache = tmp_path / ".wsgistack" / "restart.json"
    assert said_once(findings, cache) == [line for f in findings for line in f.splitlines()]
    again = said_once(findings, cache)
    assert len(again) == 1 and again[0].startswith("2 check findings, the same as at the last start")
    assert len(said_once(findings[:1], cache)) == 2  # changed: said in full
    assert len(said_once(findings, None)) == 3  # no data volume: always in full
    # A cache someone else could write is not believed: the findings are said again.
    said_once(findings, cache)
    cache.chmod(0o666)
    assert len(said_once(findings, cache)) == 3


def test_a_static_root_inside_the_code_package_leaves_the_package_read_only(tmp_path: Path) -> None:
    """bakerydemo's shape: STATIC_ROOT = <package>/collect_static, MEDIA_ROOT = <package>/media."""
    from wsgistack.image.buildstep import _make_writable

    project = tmp_path / "app"
    (project / "site").mkdir(parents=True)
    (project / "site" / "settings.py").write_text("")
    made = _make_writable(project, [project / "site" / "collect_static", project / "site" / "media"], os.getuid())
    assert made == ["site/collect_static", "site/media"]
    assert (project / "site").stat().st_mode & 0o7777 != 0o2770
    (project / "var").mkdir()
    assert _make_writable(project, [project / "var" / "static", project / "var" / "media"], os.getuid()) == [
        "var", "var/static", "var/media"]


def test_djangos_checks_are_kept_for_a_restart_of_the_same_image_and_environment(tmp_path: Path) -> None:
    from wsgistack.checks.app import _restart_key

    request = {"path": "/app", "settings": "s", "deploy": True, "server_names": []}
    env = {"SECRET_KEY": "k", "HOSTNAME": "c1"}
    cache = tmp_path / "data" / ".wsgistack" / "restart.json"
    build = BuildRecord(static_collected={"stamp": "a"})
    assert _restart_key(None, cache, request, env, "python") is None  # not an image wsgistack built
    first = _restart_key(build, cache, request, env, "python")
    assert first is not None
    assert _restart_key(build, cache, request, {**env, "HOSTNAME": "c2"}, "python") == first  # a new container
    assert _restart_key(build, cache, request, {**env, "SECRET_KEY": "other"}, "python") != first
    assert _restart_key(BuildRecord(static_collected={"stamp": "b"}), cache, request, env, "python") != first  # another build
    assert _restart_key(build, None, request, env, "python") is None  # no data volume


def _product_like(root: Path, settings_tail: str = "") -> Path:
    """tests/fixtures/product's shape on this interpreter's Django: the project in proj/, a
    settings module that refuses to load without SECRET_KEY, uploads in a STORAGES location."""
    proj = root / "proj"
    (proj / "site_cfg").mkdir(parents=True)
    (root / "wsgistack.toml").write_text('[app]\npath = "proj"\n')
    (proj / "manage.py").write_text('os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_cfg.settings")\n')
    (proj / "site_cfg" / "__init__.py").write_text("")
    (proj / "site_cfg" / "wsgi.py").write_text(
        "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n")
    (proj / "site_cfg" / "settings.py").write_text(
        "import os\nfrom pathlib import Path\nfrom django.core.exceptions import ImproperlyConfigured\n"
        "BASE_DIR = Path(__file__).resolve().parent.parent\n"
        "try:\n    SECRET_KEY = os.environ['SECRET_KEY']\nexcept KeyError:\n"
        "    raise ImproperlyConfigured('Set the SECRET_KEY environment variable') from None\n"
        "INSTALLED_APPS = ['django.contrib.admin', 'django.contrib.auth', 'django.contrib.contenttypes',\n"
        "    'django.contrib.sessions', 'django.contrib.messages', 'django.contrib.staticfiles']\n"
        "WSGI_APPLICATION = 'site_cfg.wsgi.application'\nDATABASES = {}\n"
        "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE_DIR / 'staticfiles'\n"
        "STORAGES = {'default': {'BACKEND': 'django.core.files.storage.FileSystemStorage'},\n"
        "  'staticfiles': {'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'},\n"
        "  'uploads': {'BACKEND': 'django.core.files.storage.FileSystemStorage', 'OPTIONS': {'location': BASE_DIR / 'uploads'}}}\n"
        + settings_tail)
    return root


def test_settings_that_need_a_secret_at_import_are_detected_with_a_placeholder(tmp_path: Path) -> None:
    """Issue 21 items 4, 6, 7: the build step (and the compose/kube facts) import settings that
    refuse to load without SECRET_KEY with a placeholder for it, so the image prepares
    STATIC_ROOT (collected) and the uploads storage in the app's subdirectory."""
    from wsgistack.start import project_facts

    project = _product_like(tmp_path / "app")
    env = {"PATH": os.environ["PATH"], "DATA_DIR": str(tmp_path / "data")}
    record, notes = build_step(project, env, os.getuid())
    assert record["app"] == "site_cfg.wsgi:application" and record["placeholders"] == ["SECRET_KEY"]
    assert record["writable"] == ["proj/staticfiles", "proj/uploads"]
    assert record["data_dirs"] == [{"role": "static", "url": "/static/", "path": "proj/staticfiles"},
                                   {"role": "data", "url": "", "path": "proj/uploads"}]
    assert record["static_collected"]["dir"] == str(project / "proj" / "staticfiles")
    assert any("need SECRET_KEY at import" in n and "placeholder" in n for n in notes), notes
    assert BuildRecord.read(project / RECORD).placeholders == ("SECRET_KEY",)
    facts = project_facts(project, env)
    assert facts.detected and str(facts.workdir) == "/app/proj"
    assert [(d.role, str(d.relative)) for d in facts.data_dirs] == [("static", "proj/staticfiles"), ("data", "proj/uploads")]


def test_manifests_of_an_app_nobody_here_can_import_are_refused(tmp_path: Path) -> None:
    from wsgistack.cli.facts import manifest_facts
    from wsgistack.contracts import BuildRecord as Record
    from wsgistack.errors import WsgistackError
    from wsgistack.start import project_facts

    project = _product_like(tmp_path / "app", "import a_package_only_the_image_has\n")
    try:
        manifest_facts(project, no_detect=False, image="no-such-image-here:1")
    except WsgistackError as exc:
        assert exc.id == "docker.E015" and "wsgistack build -t no-such-image-here:1" in exc.hint
        assert "a_package_only_the_image_has" in exc.details
    else:
        raise AssertionError("manifests without the app's volumes were written")
    assert manifest_facts(project, no_detect=True, image="x").data_dirs == ()  # the user says: nothing to prepare
    # the image's own record, when it has one, stands in for the host's detection
    record = Record(app="site_cfg.wsgi:application", kind="django",
                    data_dirs=({"role": "static", "url": "/static/", "path": "proj/staticfiles"},))
    facts = project_facts(project, {"PATH": os.environ["PATH"]}, image_record=lambda: record)
    assert facts.detected and facts.data_dirs[0].container_path.as_posix() == "/app/proj/staticfiles"


def test_the_first_deploys_checks_are_kept_for_the_restarts_without_migrate(tmp_path: Path) -> None:
    """Issue 21 item 4: the first container migrates (WSGISTACK_APP__MIGRATE=true), the next
    ones do not: Django's checks say the same to both, so the restart reuses them."""
    from wsgistack.checks.app import _restart_key

    request = {"path": "/app/proj", "settings": "s", "deploy": True, "server_names": []}
    cache = tmp_path / "data" / ".wsgistack" / "restart.json"
    build = BuildRecord(static_collected={"stamp": "a"})
    first = _restart_key(build, cache, request, {"SECRET_KEY": "k", "WSGISTACK_APP__MIGRATE": "true"}, "python")
    assert first == _restart_key(build, cache, request, {"SECRET_KEY": "k"}, "python")
    assert first != _restart_key(build, cache, request, {"SECRET_KEY": "k", "DATABASE_URL": "x"}, "python")


def test_a_link_a_checkout_brought_into_static_root_is_removed_and_said(tmp_path: Path) -> None:
    """The attacker's checkout: a symbolic link inside STATIC_ROOT to a root-owned file. In the
    image that directory follows root's links (if_not_owner, for the build's own links into
    the venv), so the build removes every link it did not make, and says so."""
    project = tmp_path / "app"
    shutil.copytree(EXAMPLES / "django_demo", project, ignore=shutil.ignore_patterns("__pycache__", "var"))
    planted = project / "var" / "static" / "passwd.css"
    planted.parent.mkdir(parents=True)
    planted.symlink_to("/etc/passwd")
    (project / "var" / "static" / "sub").symlink_to("/etc")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "WSGISTACK", "DEMO"))}
    env["DATA_DIR"] = str(tmp_path / "data")
    record, notes = build_step(project, env, os.getuid())
    assert record["static_collected"]["links"] == "packages"
    assert not planted.is_symlink() and not planted.exists() and not (project / "var" / "static" / "sub").exists()
    removed = [n for n in notes if n.startswith("removed the symbolic link")]
    assert len(removed) == 2 and any("passwd.css -> /etc/passwd" in n for n in removed), notes
    links = [p for p in (project / "var" / "static").rglob("*") if p.is_symlink()]
    assert links and all("site-packages" in os.readlink(p) for p in links)
