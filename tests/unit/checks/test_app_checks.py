"""app.*: the app loads; Django's own checks, mapped; its settings against the wsgistack config."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.checks.conftest import MakeCtx, ids
from wsgistack.checks import Level, app
from wsgistack.errors import AppError


def answer(*messages: tuple[str, int], **settings: Any) -> dict[str, Any]:
    """What wsgistack.standalone.djangochecks reports, with Django messages as (id, level)."""
    return {
        "django": "5.2",
        "messages": [{"id": i, "level": lv, "msg": f"message of {i}", "hint": "", "obj": "?"} for i, lv in messages],
        "silenced": 0,
        "debug": False,
        "secure_proxy_ssl_header": None,
        "allowed_hosts": ["localhost"],
        "rejected_hosts": [],
        **settings,
    }


def test_an_app_that_does_not_load_is_a_finding_with_its_own_id(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    assert app.app_loads(ctx) == []
    ctx.app_error = AppError("app.E003", 'importing "shop" raised an exception', "fix it", details="Traceback ...")
    found = app.app_loads(ctx)
    assert ids(found) == ["app.E100"]
    assert found[0].origin_id == "app.E003"
    assert found[0].message.startswith("app.E003: importing")
    assert found[0].details == "Traceback ..."


def test_django_messages_keep_their_id_and_level(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(app="django")
    found = app.django_findings(ctx, answer(("security.W004", 30), ("models.E001", 40), ("x.C001", 50), ("x.I001", 20)))
    by_origin = {f.origin_id: f for f in found}
    assert by_origin["security.W004"].id == "app.W110"
    assert by_origin["security.W004"].message == "(security.W004) message of security.W004"
    assert "SECURE_HSTS_SECONDS" in by_origin["security.W004"].hint  # our hint where Django gives none
    assert (by_origin["models.E001"].id, by_origin["models.E001"].level) == ("app.E110", Level.ERROR)
    assert (by_origin["x.C001"].id, by_origin["x.C001"].level) == ("app.E110", Level.CRITICAL)
    assert by_origin["x.I001"].id == "app.I110"
    assert ctx.facts["Django"] == "5.2"


@pytest.mark.parametrize(("django_id", "ours"), [("security.W018", "app.E101"), ("security.W009", "app.E102"),
                                                  ("security.W020", "app.E103")])
def test_debug_secret_key_and_allowed_hosts_are_errors_in_deploy_mode(make_ctx: MakeCtx, django_id: str, ours: str) -> None:
    deploy = app.django_findings(make_ctx(app="django", deploy=True), answer((django_id, 30)))
    assert ids(deploy) == [ours]
    assert deploy[0].level == Level.ERROR and deploy[0].origin_id == django_id
    assert django_id in deploy[0].message
    dev = app.django_findings(make_ctx(app="django"), answer((django_id, 30)))
    assert ids(dev) == ["app.W110"]


def test_secure_proxy_ssl_header_without_trusted_proxies(make_ctx: MakeCtx) -> None:
    header = {"secure_proxy_ssl_header": ["HTTP_X_FORWARDED_PROTO", "https"]}
    found = app.django_findings(make_ctx(app="django"), answer(**header))
    assert ids(found) == ["app.W104"]
    assert "wsgi.url_scheme" in found[0].message and "trusted_proxies" in found[0].hint
    trusted = make_ctx({"WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8"}, app="django")
    assert app.django_findings(trusted, answer(**header)) == []
    assert app.django_findings(make_ctx(app="django"), answer()) == []


def test_server_names_that_allowed_hosts_rejects(make_ctx: MakeCtx) -> None:
    found = app.django_findings(make_ctx(app="django"), answer(rejected_hosts=["[::1]"]))
    assert ids(found) == ["app.W105"]
    assert "[::1]" in found[0].message


def test_nobody_checks_the_host(make_ctx: MakeCtx) -> None:
    any_host = make_ctx({"NGINX_SERVER_NAME": "*"}, app="django", deploy=True)
    assert ids(app.django_findings(any_host, answer(allowed_hosts=["*"]))) == ["app.W106"]
    assert app.django_findings(any_host, answer(allowed_hosts=["example.com"])) == []
    named = make_ctx(app="django", deploy=True)
    assert app.django_findings(named, answer(allowed_hosts=["*"])) == []


def test_checks_that_cannot_run(make_ctx: MakeCtx) -> None:
    found = app.django_findings(make_ctx(app="django"), {"error": "checks-failed", "detail": "Traceback: boom"})
    assert ids(found) == ["app.E107"]
    assert found[0].details == "Traceback: boom"


def test_no_django_no_django_checks(make_ctx: MakeCtx) -> None:
    assert app.django_checks(make_ctx()) == []


SETTINGS = """
DEBUG = True
SECRET_KEY = "short"
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES = {}
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SILENCED_SYSTEM_CHECKS = ["security.W004"]
"""


def test_a_real_django_project_in_a_subprocess(make_ctx: MakeCtx, project: Path) -> None:
    pytest.importorskip("django")
    (project / "mysite").mkdir()
    (project / "mysite" / "__init__.py").write_text("")
    (project / "mysite" / "settings.py").write_text(SETTINGS)
    (project / "mysite" / "urls.py").write_text("urlpatterns = []\n")
    ctx = make_ctx(app="django", deploy=True)
    ctx.env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    found = app.django_checks(ctx)
    origins = {f.origin_id: f.id for f in found}
    assert origins["security.W018"] == "app.E101"  # DEBUG
    assert origins["security.W009"] == "app.E102"  # SECRET_KEY
    assert "security.W004" not in origins  # SILENCED_SYSTEM_CHECKS is Django's own silencing
    assert "app.W104" in ids(found)  # SECURE_PROXY_SSL_HEADER, no trusted proxies
    assert "app.W105" in ids(found)  # 127.0.0.1 and [::1] are served by nginx but not allowed
    assert "short" not in repr(found)  # the secret never leaves the subprocess


def test_every_start_says_when_django_would_answer_every_request_with_an_error(make_ctx: MakeCtx, project: Path) -> None:
    """Issue 21 item 9: from what detection learnt (no subprocess of its own), not only in
    `doctor --deploy`: an empty ALLOWED_HOSTS with DEBUG off is an error (every request 400),
    server names Django refuses a warning, a missing STATIC_ROOT a warning."""
    import dataclasses as dc

    from tests.unit.checks.conftest import django_app

    def found(**facts: Any) -> list[str]:
        spec = dc.replace(django_app(project), **facts)
        return ids(app.django_serves(make_ctx(app=spec)))

    assert found(debug=False, allowed_hosts=(), rejected_hosts=("localhost", "127.0.0.1")) == ["app.E103"]
    assert found(debug=True, allowed_hosts=(), rejected_hosts=()) == []  # Django allows localhost itself
    assert found(debug=False, allowed_hosts=("localhost",), rejected_hosts=("127.0.0.1",)) == ["app.W105"]
    every = app.django_serves(make_ctx(app=dc.replace(django_app(project), debug=False, allowed_hosts=("example.com",),
                                                       rejected_hosts=("localhost", "127.0.0.1"))))
    assert "every request through nginx would be answered 400" in every[0].message
    assert found(debug=False, allowed_hosts=("localhost", "127.0.0.1"), rejected_hosts=()) == []
    assert found(static=(), debug=False, allowed_hosts=("localhost",), rejected_hosts=()) == ["app.W111"]
    # the slow path (Django's own checks) does not say W105 again when detection did
    ctx = make_ctx(app=dc.replace(django_app(project), debug=False, allowed_hosts=("localhost",), rejected_hosts=("x",)))
    assert "app.W105" not in ids(app.django_findings(ctx, answer(rejected_hosts=["x"])))


def test_an_empty_secret_key_is_said_with_the_other_facts_and_names_the_variable_not_read(
        make_ctx: MakeCtx, project: Path) -> None:
    """Issue 21 (Wagtail's production settings set no SECRET_KEY): a start stopped at app.E103
    did not say the empty key, and the next one said only "less than 50 characters" although the
    container had -e SECRET_KEY=<a long key>: the settings did not read it. Detection knows it."""
    import dataclasses as dc

    from tests.unit.checks.conftest import django_app

    spec = dc.replace(django_app(project), django_settings="mysite.settings.production", debug=False,
                      allowed_hosts=(), rejected_hosts=("localhost",), secret_key_set=False)
    ctx = make_ctx(app=spec, deploy=True)
    assert ids(app.django_serves(ctx)) == ["app.E103", "app.E102"]  # both, in the same start
    said = app.django_serves(ctx)[1]
    assert "empty" in said.message and "mysite.settings.production" in said.message
    assert "os.environ['SECRET_KEY']" in said.hint and "does not read" not in said.hint
    ctx.env["SECRET_KEY"] = "k" * 60  # the start has the variable: the settings do not read it
    hint = app.django_serves(ctx)[1].hint
    assert "the environment has SECRET_KEY, which mysite.settings.production does not read" in hint
    assert "k" * 60 not in hint
    # Django's own W009 for it is not said twice; a set key, or outside deploy mode, says nothing here
    assert "app.E102" not in ids(app.django_findings(ctx, answer(("security.W009", 30))))
    assert "app.E102" not in ids(app.django_serves(make_ctx(app=dc.replace(spec, secret_key_set=True), deploy=True)))
    assert "app.E102" not in ids(app.django_serves(make_ctx(app=spec)))


def test_debug_in_a_settings_package_points_at_its_production_module(make_ctx: MakeCtx, project: Path) -> None:
    """Issue 21 (Wagtail's template): manage.py picks mysite.settings.dev, so the image's start
    got app.E101 (DEBUG) and app.E102 (the dev key); the hints said how to write settings, not
    that mysite.settings.production is right there."""
    import dataclasses as dc

    from tests.unit.checks.conftest import django_app

    package = project / "mysite" / "settings"
    package.mkdir(parents=True)
    for name in ("__init__", "base", "dev"):
        (package / f"{name}.py").write_text("")
    spec = dc.replace(django_app(project), django_settings="mysite.settings.dev")
    ctx = make_ctx(app=spec, deploy=True)
    answered = answer(("security.W018", 30), ("security.W009", 30), ("security.W004", 30))
    assert all("mysite.settings.production" not in f.hint for f in app.django_findings(ctx, answered))
    (package / "production.py").write_text("from .base import *\n")
    by_id = {f.id: f for f in app.django_findings(ctx, answered)}
    for ours in ("app.E101", "app.E102"):
        assert "DJANGO_SETTINGS_MODULE=mysite.settings.production" in by_id[ours].hint
    assert by_id["app.E101"].hint.startswith(app.E101.hint) and by_id["app.E102"].hint.startswith(app.E102.hint)
    assert "production" not in by_id["app.W110"].hint
    # already the production settings: nothing to point at
    assert app.production_settings(dc.replace(spec, django_settings="mysite.settings.production")) is None
    assert app.production_settings(dc.replace(spec, django_settings="settings")) is None
