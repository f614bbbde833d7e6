"""Derived values that are not visible in one golden file."""

from __future__ import annotations

from pathlib import Path

from wsgistack.config import load_config
from wsgistack.machine import Machine
from wsgistack.plan.stack import make_plan

MACHINE = Machine(cpus=2, memory_limit=512 * 1024 * 1024, somaxconn=4096, euid=1000,
                  nginx="/usr/sbin/nginx", python="/opt/wsgistack/bin/python")


def plan_for(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return make_plan(load_config(Path("/srv/app"), env={"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001", **env}), MACHINE, None)


def test_heroku_router_is_trusted_when_nothing_else_is_configured() -> None:
    plan = plan_for({"DYNO": "web.1"})
    assert plan.trusted_proxies == ("0.0.0.0/0", "::/0")
    assert (plan.harakiri, plan.nginx_timeout, plan.router_timeout) == (25, 28, 30)


def test_explicit_trusted_proxies_win_on_heroku_and_nothing_is_trusted_elsewhere() -> None:
    assert plan_for({"DYNO": "web.1", "WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_proxies == ("10.0.0.0/8",)
    assert plan_for({}).trusted_proxies == ()


def test_trust_everyone_is_written_as_halves_in_nginx_geo() -> None:
    # In a geo block 0.0.0.0/0 and ::/0 are the default; repeating them makes nginx -t warn.
    assert plan_for({"DYNO": "web.1"}).trusted_geo == ("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1")
    assert plan_for({"WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_geo == ("10.0.0.0/8",)


def test_term_drain_library_is_used_on_heroku_only_and_missing_it_is_a_warning() -> None:
    from dataclasses import replace

    from wsgistack.render.stack import process_table

    machine = replace(MACHINE, termdrain="/opt/venv/lib/wsgistack-termdrain.so")
    heroku = make_plan(load_config(Path("/srv/app"), env={"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001",
                                                          "DYNO": "web.1"}), machine, None)
    assert heroku.termdrain == machine.termdrain
    nginx = process_table(heroku).processes[0]
    assert nginx.preload == machine.termdrain and nginx.env == {"_WSGISTACK_TERMDRAIN": "nginx"}
    elsewhere = make_plan(load_config(Path("/srv/app"), env={"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001"}),
                          machine, None)
    assert elsewhere.termdrain is None and not process_table(elsewhere).processes[0].preload
    assert any("term-drain" in n for n in plan_for({"DYNO": "web.1"}).notes)
    assert not any("term-drain" in n for n in plan_for({}).notes)


def test_threads_auto_is_said_for_granian_and_a_given_count_is_kept() -> None:
    granian = {"WSGISTACK_SERVER__APP_SERVER": "granian", "UWSGI_URI": "unix:/srv/run/app.sock"}
    plan = plan_for(granian)
    assert plan.threads == 4 and any(n.startswith("uwsgi.threads auto = 4 (granian") for n in plan.notes), plan.notes
    assert plan_for({}).threads == 1
    assert plan_for({**granian, "UWSGI_THREADS": "2"}).threads == 2


def test_max_requests_are_staggered_across_workers() -> None:
    plan = plan_for({"WSGISTACK_UWSGI__MAX_REQUESTS": "1000", "WEB_CONCURRENCY": "4"})
    assert plan.max_requests_delta == 125


def test_tls_plan_per_mode() -> None:
    assert plan_for({}).tls is None
    dev = plan_for({"WSGISTACK_TLS__MODE": "self-signed", "WSGISTACK_TLS__DATA_DIR": "/d"})
    assert dev.tls is not None and dev.tls.hsts_max_age is None  # auto: no HSTS for a dev certificate
    assert dev.tls.names == ("localhost", "127.0.0.1") and dev.tls.cert.parent.parent == Path("/d/self-signed")
    assert dev.url == "https://localhost:8443" and dev.tls.redirect_suffix == ":8443"
    files = plan_for({"WSGISTACK_TLS__MODE": "files", "WSGISTACK_TLS__CERT": "c.pem", "WSGISTACK_TLS__KEY": "/k.pem",
                      "WSGISTACK_TLS__REDIRECT_PORT": "443"})
    assert files.tls is not None and files.tls.cert == Path("/srv/app/c.pem") and files.tls.key == Path("/k.pem")
    assert files.tls.hsts_max_age == 63072000 and files.tls.redirect_suffix == ""
    acme = plan_for({"WSGISTACK_TLS__MODE": "acme", "WSGISTACK_TLS__STAGING": "1", "WSGISTACK_TLS__DATA_DIR": "/d",
                     "WSGISTACK_SERVER__SERVER_NAMES": "example.com 10.0.0.1 www.example.com"})
    assert acme.tls is not None and not acme.tls.ready and acme.url.startswith("http://")  # HTTP until the first certificate
    assert acme.tls.names == ("example.com", "www.example.com")  # no IPs for ACME
    assert acme.tls.directory == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert acme.tls.cert == Path("/d/acme/live/example.com/fullchain.pem")
    own = plan_for({"WSGISTACK_TLS__MODE": "acme", "WSGISTACK_TLS__DIRECTORY": "https://127.0.0.1:14000/dir",
                    "WSGISTACK_TLS__STAGING": "1"})
    assert own.tls is not None and own.tls.directory == "https://127.0.0.1:14000/dir"  # staging switches Let's Encrypt only


def test_nginx_stops_retrying_before_uwsgi_can_kill_a_request_for_its_timeout() -> None:
    # uWSGI kills a request after more than harakiri - 1 s (whole seconds of a coarse clock).
    assert plan_for({}).retry_window_ms == 28500  # request_timeout auto = 30
    assert plan_for({"WSGISTACK_REQUEST_TIMEOUT": "2"}).retry_window_ms == 500
    for timeout in range(2, 3601):
        plan = plan_for({"WSGISTACK_REQUEST_TIMEOUT": str(timeout)})
        assert 0 < plan.retry_window_ms < (plan.harakiri - 1) * 1000


def test_managed_uwsgi_options_are_what_the_template_renders() -> None:
    """The passthrough cannot override an option wsgistack renders: the list is read from
    uwsgi.ini.j2 (shared-import and max-requests-delta were missing from the hand copy)."""
    import re
    from importlib import resources

    from wsgistack.plan.stack import MANAGED_UWSGI_OPTIONS

    template = resources.files("wsgistack").joinpath("render/templates/uwsgi.ini.j2").read_text()
    rendered = set(re.findall(r"^([a-z][a-z0-9-]*)\s*=", template, re.M))
    assert {"shared-import", "max-requests-delta", "socket", "uid", "harakiri"} <= rendered
    assert rendered <= MANAGED_UWSGI_OPTIONS
    assert {"http-socket", "workers", "wsgi-file", "module"} <= MANAGED_UWSGI_OPTIONS


# app.migrate = "auto": migrate at start exactly when every database is SQLite (tests/integration/
# test_run.py serves a startproject-shaped project with no migrate setting).
SQLITE = ("default", "django.db.backends.sqlite3")
MYSQL = ("default", "django.db.backends.mysql")
POSTGRES = ("default", "django.db.backends.postgresql")


def migrate_plan(databases: tuple[tuple[str, str], ...], env: dict[str, str] | None = None,
                 cli: dict[str, tuple[object, str]] | None = None):  # type: ignore[no-untyped-def]
    from wsgistack.app.spec import AppSpec
    from wsgistack.app.interpreter import AppPython

    app = AppSpec(kind="django", module="mysite.wsgi", attr="application", path=Path("/srv/app"),
                  django_settings="mysite.settings", databases=databases)
    loaded = load_config(Path("/srv/app"), env=env or {}, cli=cli or {})
    return make_plan(loaded, MACHINE, app, AppPython(python="/opt/wsgistack/bin/python", why="test"))


def test_migrate_defaults_to_auto() -> None:
    loaded = load_config(Path("/srv/app"), env={})
    assert loaded.config.app.migrate == "auto"
    assert str(loaded.origin("app.migrate")) == "default"


def test_auto_migrates_when_every_database_is_sqlite_and_says_why() -> None:
    from wsgistack.start.prestart import prestart_commands

    plan = migrate_plan((SQLITE, ("cache", "django.contrib.gis.db.backends.spatialite")))
    assert plan.migrate is True
    assert [n for n in plan.notes if n.startswith("app.migrate")] == [
        "app.migrate auto = true (every database is SQLite: default, cache; a file database serves this node only)"]
    assert any("migrate" in label for label, _argv in prestart_commands(plan))


def test_auto_does_not_migrate_a_shared_database() -> None:
    from wsgistack.start.prestart import prestart_commands

    for databases in ((MYSQL,), (POSTGRES,), (SQLITE, ("replica", "django.db.backends.postgresql"))):
        plan = migrate_plan(databases)
        assert plan.migrate is False, databases
        note = next(n for n in plan.notes if n.startswith("app.migrate"))
        assert note.startswith("app.migrate auto = false") and "not SQLite" in note, note
        assert not any("migrate" in label for label, _argv in prestart_commands(plan))
    assert migrate_plan(()).migrate is False  # DATABASES = {}: nothing to migrate


def test_explicit_migrate_true_or_false_wins_over_the_databases() -> None:
    assert migrate_plan((MYSQL,), env={"WSGISTACK_APP__MIGRATE": "true"}).migrate is True
    assert migrate_plan((SQLITE,), env={"WSGISTACK_APP__MIGRATE": "false"}).migrate is False
    assert migrate_plan((POSTGRES,), cli={"app.migrate": (True, "--migrate")}).migrate is True
    assert migrate_plan((SQLITE,), cli={"app.migrate": (False, "--no-migrate")}).migrate is False
    explicit = migrate_plan((SQLITE,), env={"WSGISTACK_APP__MIGRATE": "true"})
    assert not any(n.startswith("app.migrate") for n in explicit.notes)  # only "auto" is explained


def test_a_worker_container_never_migrates() -> None:
    assert migrate_plan((SQLITE,), env={"WSGISTACK_ROLE": "worker", "WSGISTACK_PROCESS": "jobs",
                                        "WSGISTACK_PROCESSES__JOBS__COMMAND": "python jobs.py"}).migrate is False


def test_a_runtime_dir_uwsgi_or_haproxy_cannot_name_is_refused_with_an_id() -> None:
    import pytest

    from wsgistack.errors import ConfigError
    from wsgistack.plan.balancer import make_balancer_plan

    for odd in ("/tmp/my app", "/tmp/50%off", "/tmp/$(HOME)", "/tmp/a;b"):
        with pytest.raises(ConfigError) as caught:
            plan_for({"WSGISTACK_RUNTIME_DIR": odd})
        [problem] = caught.value.problems
        assert problem.id == "config.E050" and repr(odd) in problem.message, problem.render()
        assert "/run/myapp" in problem.hint
        with pytest.raises(ConfigError) as caught:
            make_balancer_plan(load_config(Path("/srv/app"), env={"WSGISTACK_RUNTIME_DIR": odd,
                                                                  "WSGISTACK_BALANCER__NODES": "10.0.0.1:80"}), MACHINE)
        assert caught.value.problems[0].id == "config.E050"
    # The project's own path may hold a space: a relative runtime_dir then would, too.
    with pytest.raises(ConfigError):
        make_plan(load_config(Path("/srv/my app"), env={"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001",
                                                        "WSGISTACK_RUNTIME_DIR": "rt"}), MACHINE, None)
    assert plan_for({"WSGISTACK_RUNTIME_DIR": "/run/my-app_2.0+x@y"}).paths.runtime == Path("/run/my-app_2.0+x@y")


def test_a_static_dir_with_a_space_is_quoted_and_one_with_a_dollar_is_refused() -> None:
    import pytest

    from wsgistack.errors import ConfigError
    from wsgistack.render.stack import render

    plan = plan_for({"WSGISTACK_SERVER__STATIC": '[{"url": "/files/", "dir": "/srv/my files"}]'})
    conf = next(f.content for f in render(plan) if f.path == "nginx.conf")
    assert 'alias "/srv/my files/";' in conf
    with pytest.raises(ConfigError) as caught:
        plan_for({"WSGISTACK_SERVER__STATIC": "/files/=/srv/$document_root"})
    assert caught.value.problems[0].id == "config.E050"


def test_nginx_follows_links_only_in_the_static_dir_the_images_build_linked() -> None:
    """server.static_symlinks = "never": no link is followed below a static directory (a
    root-owned link a checkout brought would serve /etc/passwd), except in the directory the
    image's build record (root's) names as holding the build's own links into the venv: there
    a link is followed when its owner owns the target (one the app's user makes serves only
    the app's own files). Media never follows one."""
    from wsgistack.app.spec import AppSpec, StaticDir
    from wsgistack.contracts import BuildRecord
    from wsgistack.machine import HostFacts
    from wsgistack.render.stack import render

    app = AppSpec(kind="django", module="demo.wsgi", attr="application", path=Path("/app"),
                  static=(StaticDir("/static/", Path("/app/var/static")), StaticDir("/media/", Path("/app/var/media"), "media")))
    loaded = load_config(Path("/app"), env={})

    def conf(build: BuildRecord | None) -> str:
        plan = make_plan(loaded, MACHINE, app, host=HostFacts(build=build))
        text = next(f.content for f in render(plan) if f.path == "nginx.conf")
        return text[text.index("location ^~ /static/"):text.index("location ^~ /media/")]

    assert "disable_symlinks on from=$document_root;" in conf(None)
    collected = {"dir": "/app/var/static", "stamp": "x", "settings": "demo.settings"}
    assert "disable_symlinks on from=$document_root;" in conf(BuildRecord(static_collected=collected))
    linked = conf(BuildRecord(static_collected={**collected, "links": "packages"}))
    assert "disable_symlinks if_not_owner from=$document_root;" in linked
    other = conf(BuildRecord(static_collected={**collected, "dir": "/elsewhere", "links": "packages"}))
    assert "disable_symlinks on from=$document_root;" in other
    # A split image's web role serves the shared volume named by server.static (compose's
    # WSGISTACK_SERVER__STATIC): the same directory, the same rule.
    web = load_config(Path("/app"), env={"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:3031",
                                         "WSGISTACK_SERVER__STATIC": "/static/=/app/var/static /media/=/app/var/media"})
    plan = make_plan(web, MACHINE, None, host=HostFacts(build=BuildRecord(static_collected={**collected, "links": "packages"})))
    text = next(f.content for f in render(plan) if f.path == "nginx.conf")
    assert "disable_symlinks if_not_owner from=$document_root;" in text[text.index("location ^~ /static/"):text.index("location ^~ /media/")]
    assert text.count("disable_symlinks if_not_owner") == 1
