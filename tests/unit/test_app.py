"""App detection: each kind, and a distinct error for each way it can go wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wsgistack.app.detect import detect_app
from wsgistack.errors import AppError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = {"PATH": "/usr/bin:/bin"}


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_django_demo_is_detected_with_static_and_media(tmp_path: Path) -> None:
    spec = detect_app(EXAMPLES / "django_demo", env={**ENV, "DEMO_DATA_DIR": str(tmp_path)})
    assert spec.kind == "django"
    assert spec.target == "demo.wsgi:application"
    assert spec.django_settings == "demo.settings"
    roles = {s.role: (s.url, s.dir) for s in spec.static}
    assert roles["static"] == ("/static/", tmp_path / "static")
    assert roles["media"] == ("/media/", tmp_path / "media")


def test_the_probe_measures_the_apps_memory_once_imported(tmp_path: Path) -> None:
    """Issue 24 item 4: the plan sizes workers by the app's resident memory after import."""
    whole = detect_app(EXAMPLES / "django_demo", env={**ENV, "DEMO_DATA_DIR": str(tmp_path)}, measure=True)
    assert whole.rss is not None and whole.rss > 25 * 1024 * 1024  # Django, the demo's apps, its URLconf and views
    # Settings only (a start where memory cannot bind): not the app's size, so not reported as it.
    assert detect_app(EXAMPLES / "django_demo", env={**ENV, "DEMO_DATA_DIR": str(tmp_path)}, measure=False).rss is None
    hello = detect_app(EXAMPLES / "hello", env=ENV, measure=False)  # imported whole anyway: measured
    assert hello.rss is not None and 1024 * 1024 < hello.rss < whole.rss


def test_flask_demo_is_detected_with_its_static_folder() -> None:
    spec = detect_app(EXAMPLES / "flask_demo", env=ENV)
    assert spec.kind == "flask"
    assert spec.target == "app:app"
    assert [(s.url, s.dir.name) for s in spec.static] == [("/static/", "static")]


def test_bare_module_callable_is_found_by_scan() -> None:
    spec = detect_app(EXAMPLES / "hello", env=ENV)
    assert (spec.kind, spec.target) == ("wsgi", "hello:application")


def test_flask_factory_in_app_py(tmp_path: Path) -> None:
    project(tmp_path, {"app.py": "def create_app():\n    def wsgi(e, s):\n        return []\n    return wsgi\n"})
    spec = detect_app(tmp_path, env=ENV)
    assert spec.target == "app:create_app()"
    assert spec.factory


def test_package_with_create_app(tmp_path: Path) -> None:
    project(tmp_path, {"shop/__init__.py": "def create_app():\n    return lambda e, s: []\n"})
    assert detect_app(tmp_path, env=ENV).target == "shop:create_app()"


def test_explicit_target(tmp_path: Path) -> None:
    project(tmp_path, {"svc/api.py": "def handler(environ, start_response):\n    return []\n", "svc/__init__.py": ""})
    assert detect_app(tmp_path, target="svc.api:handler", env=ENV).target == "svc.api:handler"


def test_nothing_found(tmp_path: Path) -> None:
    project(tmp_path, {"README.md": "hi"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, env=ENV)
    assert exc.value.id == "app.E001"
    assert "--app module:callable" in exc.value.hint


def test_module_not_found(tmp_path: Path) -> None:
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, target="nosuch.module:app", env=ENV)
    assert exc.value.id == "app.E002"
    assert "nosuch.module" in exc.value.message


def test_import_error_inside_the_module_is_shown_untouched(tmp_path: Path) -> None:
    project(tmp_path, {"app.py": "import not_installed_dependency\napp = None\n"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, env=ENV)
    assert exc.value.id == "app.E003"
    assert "No module named 'not_installed_dependency'" in exc.value.details
    assert "Traceback" in exc.value.details


def test_exception_at_import_is_shown(tmp_path: Path) -> None:
    project(tmp_path, {"wsgi.py": "raise RuntimeError('config missing: DATABASE_URL')\n"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, env=ENV)
    assert exc.value.id == "app.E003"
    assert "DATABASE_URL" in exc.value.details


def test_attribute_missing(tmp_path: Path) -> None:
    project(tmp_path, {"svc.py": "def make():\n    pass\n"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, target="svc:application", env=ENV)
    assert exc.value.id == "app.E004"
    assert "make" in exc.value.hint


def test_not_callable(tmp_path: Path) -> None:
    project(tmp_path, {"svc.py": "application = 42\n"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, target="svc:application", env=ENV)
    assert exc.value.id == "app.E005"
    assert "int" in exc.value.message


def test_factory_that_raises(tmp_path: Path) -> None:
    project(tmp_path, {"svc.py": "def create_app():\n    raise ValueError('boom')\n"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, target="svc:create_app()", env=ENV)
    assert exc.value.id == "app.E006"


def test_django_settings_that_fail_to_import(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "django_demo", tmp_path / "p", ignore=shutil.ignore_patterns("var"))
    (tmp_path / "p" / "demo" / "settings.py").write_text("raise ImportError('broken settings')\n")
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path / "p", env=ENV)
    assert exc.value.id == "app.E003"
    assert "broken settings" in exc.value.details


def test_manage_py_without_settings(tmp_path: Path) -> None:
    project(tmp_path, {"manage.py": "from django.core.management import execute_from_command_line\n"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, env=ENV)
    assert exc.value.id == "app.E010"


FLASK_SCRIPT_MANAGE = """from flask_script import Manager

from wsgi import app

manager = Manager(app)

if __name__ == "__main__":
    manager.run()
"""


def test_a_manage_py_that_is_not_djangos_does_not_stop_detection(tmp_path: Path) -> None:
    """Flask-Script's manage.py beside a wsgi.py with `app` (issue 17): a Flask app."""
    project(tmp_path, {"manage.py": FLASK_SCRIPT_MANAGE,
                       "wsgi.py": "from flask import Flask\napp = Flask(__name__)\n"})
    spec = detect_app(tmp_path, env=ENV)
    assert (spec.kind, spec.target) == ("flask", "wsgi:app")


def test_a_manage_py_that_is_not_djangos_and_no_app_says_what_was_seen(tmp_path: Path) -> None:
    project(tmp_path, {"manage.py": "print('hi')\n"})
    with pytest.raises(AppError) as exc:
        detect_app(tmp_path, env=ENV)
    assert exc.value.id == "app.E001"
    assert "manage.py (there is one, but it does not set up Django)" in exc.value.details


STARTPROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "startproject"


@pytest.mark.parametrize("target", ["mysite.wsgi:application", "mysite.wsgi"])
def test_a_gunicorn_target_in_a_django_project_keeps_django_support(target: str) -> None:
    """Issue 21 item 10: `mysite.wsgi:application` (or gunicorn's bare module) is still Django:
    its static files, collectstatic and migrate."""
    spec = detect_app(STARTPROJECT, target=target, env=ENV)
    assert spec.kind == "django" and spec.target == "mysite.wsgi:application" and spec.django_settings == "mysite.settings"
    assert [s.role for s in spec.static] == ["static"] and spec.databases


def test_an_explicit_target_in_a_django_project_must_exist(tmp_path: Path) -> None:
    with pytest.raises(AppError) as info:
        detect_app(STARTPROJECT, target="mysite.wsgi:nope", env=ENV)
    assert info.value.id == "app.E004"


FLASK_FACTORY = Path(__file__).resolve().parents[1] / "fixtures" / "flask_factory"


def test_what_the_app_writes_beyond_static_and_media(tmp_path: Path) -> None:
    """Issue 21 item 6: Django's STORAGES file-system locations and Flask's instance folder
    (its config points there) are directories the app writes: the start checks them."""
    flask = shutil.copytree(FLASK_FACTORY, tmp_path / "notes", ignore=shutil.ignore_patterns(".venv", "instance"))
    spec = detect_app(flask, env=ENV)
    assert spec.kind == "flask" and spec.storage == (flask / "instance",)
    django = project(tmp_path / "dj", {
        "manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_.settings')\n",
        "site_/__init__.py": "",
        "site_/wsgi.py": "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
        "site_/settings.py": (
            "from pathlib import Path\nBASE = Path(__file__).resolve().parent.parent\nSECRET_KEY = 'x'\n"
            "INSTALLED_APPS = ['django.contrib.staticfiles']\nWSGI_APPLICATION = 'site_.wsgi.application'\n"
            "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE / 'staticfiles'\nDATABASES = {}\n"
            "STORAGES = {'default': {'BACKEND': 'django.core.files.storage.FileSystemStorage'},\n"
            "  'staticfiles': {'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'},\n"
            "  'uploads': {'BACKEND': 'django.core.files.storage.FileSystemStorage', 'OPTIONS': {'location': BASE / 'uploads'}}}\n"),
    })
    spec = detect_app(django, env=ENV)
    # the default storage (no MEDIA_ROOT: the working directory) is not one: only named locations
    assert spec.storage == (django / "uploads",)


def test_an_app_that_hangs_at_import_times_out_with_its_stack(tmp_path: Path) -> None:
    """Issue 21 item 13: what is waited for is said while it waits, and the timeout is app.E011
    with the app's own stack (where it waits), not internal.E001 with the probe's source."""
    app = project(tmp_path, {"slow.py": "import time\n\ndef connect():\n    time.sleep(600)\n\nconnect()\napp = None\n"})
    heard: list[str] = []
    with pytest.raises(AppError) as info:
        detect_app(app, target="slow:app", env=ENV, timeout=6, say=heard.append)
    err = info.value
    assert err.id == "app.E011" and "did not finish within 6s" in err.message and "app.import_timeout" in err.message
    assert 'slow.py", line 4 in connect' in err.details and 'slow.py", line 6' in err.details, err.details
    assert "def probe_target" not in err.details and len(err.details) < 6100  # the app's stack, not the probe's source
    assert heard and heard[0].startswith("waiting for the app's import (slow:app, pid ")


def test_detection_says_whether_djangos_secret_key_is_set_never_the_key(tmp_path: Path) -> None:
    """Issue 21: Wagtail's production settings set no SECRET_KEY; detection tells the start
    (app.E102 beside app.E103), reporting only whether there is one."""
    settings = "SECRET_KEY = {key!r}\nINSTALLED_APPS = []\nWSGI_APPLICATION = 'site_.wsgi.application'\nALLOWED_HOSTS = []\n"
    files = {
        "manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_.settings')\n"
                     "from django.core.management import execute_from_command_line\n",
        "site_/__init__.py": "",
        "site_/wsgi.py": "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
    }
    empty = project(tmp_path / "empty", {**files, "site_/settings.py": settings.format(key="")})
    assert detect_app(empty, env=ENV, measure=False).secret_key_set is False
    given = project(tmp_path / "given", {**files, "site_/settings.py": settings.format(key="s3cr3t-" * 8)})
    spec = detect_app(given, env=ENV, measure=False)
    assert spec.secret_key_set is True and "s3cr3t" not in repr(spec)
