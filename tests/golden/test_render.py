"""Golden files: the exact output of each template for representative plans.

Regenerate after an intended template change with ``UPDATE_GOLDEN=1 pytest tests/golden``
and review the diff like code.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wsgistack.app.spec import AppSpec, StaticDir
from wsgistack.config import load_config
from wsgistack.app.interpreter import AppPython
from wsgistack.machine import Machine
from wsgistack.plan.stack import make_plan
from wsgistack.render.stack import render

DATA = Path(__file__).parent / "data"
APP_DIR = Path("/srv/app")

MACHINE = Machine(cpus=2, memory_limit=512 * 1024 * 1024, somaxconn=4096, euid=1000,
                  nginx="/usr/sbin/nginx", python="/opt/wsgistack/bin/python")
ROOT_MACHINE = Machine(cpus=4, memory_limit=None, somaxconn=1024, euid=0, nginx="/usr/sbin/nginx",
                       python="/opt/wsgistack/bin/python", nginx_user="www-data")
# The app's interpreter: pyuwsgi's script re-executed by its venv's python (binary-path),
# or a compiled uwsgi (no binary-path needed).
APP_PYTHON = AppPython("/opt/venv/bin/python", "VIRTUAL_ENV", "3.13.5", uwsgi="/opt/venv/bin/uwsgi",
                       uwsgi_dist="pyuwsgi", uwsgi_version="2.0.30", binary_path="/opt/venv/bin/python",
                       granian_version="2.8.9")
COMPILED_UWSGI = dataclasses.replace(APP_PYTHON, uwsgi_dist="uWSGI", binary_path=None)


def app_python(machine: Machine) -> AppPython:
    return COMPILED_UWSGI if machine.is_root else APP_PYTHON

DJANGO = AppSpec(kind="django", module="mysite.wsgi", attr="application", path=APP_DIR,
                 django_settings="mysite.settings", staticfiles=True,
                 static=(StaticDir("/static/", APP_DIR / "var/static", "static"),
                         StaticDir("/media/", APP_DIR / "var/media", "media")))
FLASK_FACTORY = AppSpec(kind="flask", module="shop", attr="create_app", path=APP_DIR, factory=True,
                        static=(StaticDir("/static/", APP_DIR / "shop/static", "static"),))

CASES = {
    "django-default": ({}, MACHINE, DJANGO),
    "django-root-heroku-proxy": (
        {"WSGISTACK_PLATFORM": "heroku", "PORT": "5000", "WSGISTACK_SERVER__HOST": "0.0.0.0",
         "WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8", "NGINX_SERVER_NAME": "*"},
        ROOT_MACHINE, DJANGO),
    "flask-factory-tcp": ({"WSGISTACK_UWSGI__SOCKET": "tcp", "WEB_CONCURRENCY": "3", "UWSGI_THREADS": "4",
                           "WSGISTACK_APP__LAZY_APPS": "true", "WSGISTACK_SERVER__UNKNOWN_HOST": "421",
                           "WSGISTACK_UWSGI__MAX_REQUESTS": "1200"},
                          MACHINE, FLASK_FACTORY),
    # Trusted proxies with named hosts (X-Forwarded-Host checked against them), a uWSGI
    # passthrough option, a smaller uWSGI buffer (nginx's header limits follow it).
    "django-root-proxy-named-hosts": (
        {"WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8 127.0.0.2", "WSGISTACK_SERVER__SERVER_NAMES": "example.com *.example.com",
         "WSGISTACK_UWSGI__OPTIONS": '{"harakiri-verbose": true, "max-worker-lifetime": 3600}',
         "WSGISTACK_UWSGI__BUFFER_SIZE": "32768",
         "WSGISTACK_SERVER__LOG_FORMAT": "json", "WSGISTACK_OPS__PORT": "9100", "WSGISTACK_OPS__BASIC_AUTH": "ops:secret",
         # Background processes beside nginx and uWSGI, as the app's user.
         "WSGISTACK_PROCESSES__SENDALERTS__COMMAND": "python manage.py sendalerts",
         "WSGISTACK_PROCESSES__SENDREPORTS__COMMAND": "python manage.py sendreports --loop",
         "WSGISTACK_PROCESSES__SENDREPORTS__COUNT": "2", "WSGISTACK_PROCESSES__SENDREPORTS__RESTART": "on-failure",
         "WSGISTACK_PROCESSES__SENDREPORTS__STOP_SIGNAL": "INT", "WSGISTACK_PROCESSES__SENDREPORTS__STOP_TIMEOUT": "5"},
        ROOT_MACHINE, DJANGO),
    # One background process alone (its own container: compose, Kubernetes).
    "worker-role": ({"WSGISTACK_ROLE": "worker", "WSGISTACK_PROCESS": "sendalerts",
                     "WSGISTACK_PROCESSES__SENDALERTS__COMMAND": "python manage.py sendalerts",
                     "WSGISTACK_PROCESSES__OTHER__COMMAND": "celery -A proj worker"}, ROOT_MACHINE, DJANGO),
    "web-role": ({"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.2:8001"}, MACHINE, None),
    # HTTPS: the dev CA's certificate (no HSTS), ACME before its first certificate (HTTP
    # with the challenge path; nginx-https.conf is what the renewer switches to), and
    # provided files on the web role accepting any Host.
    "tls-self-signed": ({"WSGISTACK_TLS__MODE": "self-signed", "WSGISTACK_TLS__DATA_DIR": "/var/lib/ws"}, MACHINE, DJANGO),
    "tls-acme-root-named-hosts": (
        {"WSGISTACK_TLS__MODE": "acme", "WSGISTACK_TLS__EMAIL": "ops@example.com", "WSGISTACK_TLS__STAGING": "true",
         "WSGISTACK_SERVER__SERVER_NAMES": "example.com www.example.com", "WSGISTACK_TLS__DATA_DIR": "/data/tls",
         "WSGISTACK_SERVER__HOST": "0.0.0.0", "PORT": "80", "WSGISTACK_TLS__PORT": "443"},
        ROOT_MACHINE, DJANGO),
    "tls-files-web-any-host": (
        {"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.2:8001", "WSGISTACK_TLS__MODE": "files",
         "WSGISTACK_TLS__CERT": "/etc/ssl/site.pem", "WSGISTACK_TLS__KEY": "/etc/ssl/site.key", "NGINX_SERVER_NAME": "*",
         "WSGISTACK_TLS__HSTS_MAX_AGE": "31536000", "WSGISTACK_TLS__REDIRECT_PORT": "443"},
        MACHINE, None),
    "app-role": ({"WSGISTACK_ROLE": "app", "WSGISTACK_UWSGI__SOCKET": "tcp"}, MACHINE, DJANGO),
    # server.app_server = "granian": the same nginx in front, proxying over a kept unix-socket
    # connection; started as root (granian as the app's user), with trusted proxies, JSON logs,
    # the ops listener, a background process and TLS files.
    "granian-django-default": ({"WSGISTACK_SERVER__APP_SERVER": "granian"}, MACHINE, DJANGO),
    "granian-root-proxy-ops": (
        {"WSGISTACK_SERVER__APP_SERVER": "granian", "WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8",
         "WSGISTACK_SERVER__SERVER_NAMES": "example.com", "WSGISTACK_UWSGI__THREADS": "2",
         "WSGISTACK_SERVER__LOG_FORMAT": "json", "WSGISTACK_OPS__PORT": "9100",
         "WSGISTACK_PROCESSES__SENDALERTS__COMMAND": "python manage.py sendalerts",
         "WSGISTACK_TLS__MODE": "files", "WSGISTACK_TLS__CERT": "/etc/ssl/site.pem", "WSGISTACK_TLS__KEY": "/etc/ssl/site.key"},
        ROOT_MACHINE, DJANGO),
}


def rendered(case: str) -> dict[str, str]:
    env, machine, app = CASES[case]
    loaded = load_config(APP_DIR, env={"WSGISTACK_RUNTIME_DIR": "/run/ws", **env})
    return {f.path: f.content for f in render(make_plan(loaded, machine, app, app_python(machine)))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    files = rendered(case)
    target = DATA / case
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name, content in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(content)
    expected = {p.relative_to(target).as_posix(): p.read_text() for p in target.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected)
    for name, content in files.items():
        assert content == expected[name], f"{case}/{name} differs from the golden file"


def test_render_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning and rendering read nothing from the host and write nothing: the same inputs
    give the same files even when every host lookup would fail (users, groups, symlinks,
    the home directory), and the runtime dir they name is never created."""
    import grp
    import pwd

    cases = ("django-root-proxy-named-hosts", "tls-self-signed", "flask-factory-tcp")
    loaded = {case: load_config(APP_DIR, env={"WSGISTACK_RUNTIME_DIR": "/run/ws", **CASES[case][0]}) for case in cases}

    def plan_and_render(case: str) -> dict[str, str]:
        _env, machine, app = CASES[case]
        return {f.path: f.content for f in render(make_plan(loaded[case], machine, app, app_python(machine)))}

    before = {case: plan_and_render(case) for case in cases}
    assert before == {case: rendered(case) for case in cases}

    def asks_the_host(*args: object, **kwargs: object) -> None:
        raise AssertionError("make_plan/render read the host")

    for target, name in ((pwd, "getpwnam"), (grp, "getgrgid"), (grp, "getgrall"), (Path, "resolve"), (Path, "home"),
                         (os, "geteuid"), (subprocess, "run")):
        monkeypatch.setattr(target, name, asks_the_host)
    assert {case: plan_and_render(case) for case in cases} == before
    assert not Path("/run/ws").exists()


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="nginx not installed")
@pytest.mark.parametrize("case", ["django-default", "django-root-heroku-proxy", "django-root-proxy-named-hosts",
                                  "flask-factory-tcp", "web-role", "granian-django-default"])
def test_rendered_nginx_config_passes_nginx_t(case: str, tmp_path: Path) -> None:
    env, machine, app = CASES[case]
    if machine.is_root and os.geteuid() != 0:
        pytest.skip("the root case needs root to test its `user` directive")
    loaded = load_config(APP_DIR, env={"WSGISTACK_RUNTIME_DIR": str(tmp_path), **env})
    for f in render(make_plan(loaded, machine, app, app_python(machine))):
        (tmp_path / f.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f.path).write_text(f.content)
    (tmp_path / "nginx-temp").mkdir()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    out = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "syntax is ok" in out.stderr


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="nginx not installed")
@pytest.mark.parametrize("case", ["tls-self-signed", "tls-acme-root-named-hosts", "tls-files-web-any-host"])
def test_rendered_tls_config_passes_nginx_t(case: str, tmp_path: Path) -> None:
    """Every TLS config nginx may run (for acme: before and after the first certificate)
    with real certificate files in place."""
    from wsgistack.start import make_certificates as prepare_tls
    from wsgistack.tls.certs import ensure_self_signed

    env, machine, app = CASES[case]
    if machine.is_root and os.geteuid() != 0:
        pytest.skip("the root case needs root to test its `user` directive")
    leaf = ensure_self_signed(tmp_path / "ca", ("example.com", "www.example.com"), tmp_path / "leaf")
    env = {**env, "WSGISTACK_RUNTIME_DIR": str(tmp_path), "WSGISTACK_TLS__DATA_DIR": str(tmp_path / "data")}
    if "WSGISTACK_TLS__CERT" in env:
        env.update(WSGISTACK_TLS__CERT=str(leaf.cert), WSGISTACK_TLS__KEY=str(leaf.key))
    plan = prepare_tls(make_plan(load_config(APP_DIR, env=env), machine, app))
    assert plan.tls is not None
    if plan.tls.mode == "acme":
        plan.tls.cert.parent.mkdir(parents=True)
        shutil.copy(leaf.cert, plan.tls.cert)
        shutil.copy(leaf.key, plan.tls.key)
    for f in render(plan):
        (tmp_path / f.path).write_text(f.content)
    (tmp_path / "nginx-temp").mkdir()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    for conf in ("nginx.conf", "nginx-https.conf"):
        if (tmp_path / conf).exists():
            out = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / conf)], capture_output=True, text=True)
            assert out.returncode == 0, (conf, out.stderr)


# --- the balancer (`wsgistack balance`): haproxy.cfg -------------------------------------------

BALANCER_MACHINE = Machine(cpus=2, memory_limit=None, somaxconn=4096, euid=1000, nginx=None,
                           python="/opt/venv/bin/python", haproxy="/usr/sbin/haproxy")
BALANCER_CASES = {
    "balancer-three-nodes": {"WSGISTACK_BALANCER__NODES": "10.0.0.11:8000 10.0.0.12:8000 10.0.0.13:8000"},
    # Stats behind a password off loopback, named hosts (the check's Host), the database pair.
    "balancer-stats-auth-db": {
        "WSGISTACK_BALANCER__NODES": "10.0.0.11:8000,[fd00::12]:8000", "WSGISTACK_BALANCER__HOST": "10.0.0.10",
        "WSGISTACK_BALANCER__PORT": "8080", "WSGISTACK_BALANCER__STATS_AUTH": "ops:s3cret-pw",
        "WSGISTACK_SERVER__SERVER_NAMES": "*.example.com example.com", "WSGISTACK_BALANCER__SLOWSTART": "0",
        "WSGISTACK_BALANCER__MAXCONN": "64", "WSGISTACK_BALANCER__DB_PRIMARY": "10.0.0.21:3306",
        "WSGISTACK_BALANCER__DB_REPLICAS": "10.0.0.22:3306 10.0.0.23:3306", "WSGISTACK_REQUEST_TIMEOUT": "60",
    },
    # On a compose network (`wsgistack compose --fleet N --network bridge`): nodes by service
    # name, asked again from Docker's DNS while HAProxy runs (a replaced node's new address).
    "balancer-compose-network": {
        "WSGISTACK_BALANCER__NODES": "node1:8080 node2:8080 node3:8080", "WSGISTACK_BALANCER__PORT": "8080",
        "WSGISTACK_BALANCER__RESOLVER": "127.0.0.11:53",
    },
    # The nodes' workers known (maxconn auto = 4 x 2), unknown Hosts answered 421, nginx's name forms.
    "balancer-workers-421": {
        "WSGISTACK_BALANCER__NODES": "10.0.0.11:8000 10.0.0.12:8000", "WSGISTACK_UWSGI__PROCESSES": "4",
        "WSGISTACK_UWSGI__THREADS": "2", "WSGISTACK_BALANCER__MAXCONN": "auto", "WSGISTACK_SERVER__UNKNOWN_HOST": "421",
        "WSGISTACK_SERVER__SERVER_NAMES": ".example.org mail.* shop.example.com",
    },
    # The ops listener beside HAProxy (ops.port): its process, its ops.json (the runtime API,
    # the password only as a hash), and the manager's state file it reads.
    "balancer-ops": {
        "WSGISTACK_BALANCER__NODES": "10.0.0.11:8000 10.0.0.12:8000", "WSGISTACK_OPS__PORT": "9100",
        "WSGISTACK_OPS__BASIC_AUTH": "ops:s3cret",
    },
}


def rendered_balancer(case: str, runtime: str = "/run/ws-balancer") -> dict[str, str]:
    from wsgistack.plan.balancer import make_balancer_plan
    from wsgistack.render.balancer import render_balancer

    loaded = load_config(APP_DIR, env={"WSGISTACK_RUNTIME_DIR": runtime, **BALANCER_CASES[case]})
    return {f.path: f.content for f in render_balancer(make_balancer_plan(loaded, BALANCER_MACHINE))}


@pytest.mark.parametrize("case", sorted(BALANCER_CASES))
def test_golden_balancer(case: str) -> None:
    files = rendered_balancer(case)
    target = DATA / case
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name, content in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(content)
    expected = {p.relative_to(target).as_posix(): p.read_text() for p in target.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected)
    for name, content in files.items():
        assert content == expected[name], f"{case}/{name} differs from the golden file"


@pytest.mark.skipif(shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(),
                    reason="haproxy not installed (make test installs it)")
@pytest.mark.parametrize("case", sorted(BALANCER_CASES))
def test_rendered_haproxy_config_passes_haproxy_c(case: str, tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(rendered_balancer(case, str(tmp_path))["haproxy.cfg"])
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    out = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Configuration file is valid" in out.stdout + out.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_nginx_files_run_anywhere_they_are_copied(case: str) -> None:
    """The checks run nginx -t on the start's own rendered files, copied to a temp dir as they
    are: nginx.conf names the runtime dir's files relative to nginx's prefix (-p), never by the
    runtime dir's path, except what lives there for others to reach (uWSGI's socket, which the
    upstream names, and the drain marker, which the app reads)."""
    env, machine, app = CASES[case]
    loaded = load_config(APP_DIR, env={"WSGISTACK_RUNTIME_DIR": "/run/ws", **env})
    plan = make_plan(loaded, machine, app, app_python(machine))
    allowed = {plan.upstream.address, str(plan.paths.drain)}
    for f in render(plan):
        if f.path not in ("nginx.conf", "nginx-https.conf", "uwsgi_params", "mime.types"):
            continue
        for line in f.content.splitlines():
            if "/run/ws" in line and not line.lstrip().startswith("#"):
                assert any(a in line for a in allowed), f"{case}/{f.path}: {line.strip()}"
