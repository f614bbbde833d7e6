"""`wsgistack run` with real nginx and real uWSGI on free loopback ports."""

from __future__ import annotations

from http.cookiejar import CookieJar
import os
import re
import signal
import struct
import time
import urllib.parse
import urllib.request
import uuid
import zlib
from pathlib import Path

import pytest

from tests.conftest import (EXAMPLES, SERVERS, Stack, app_server_pid, app_writable, clean_env, deployed_python, http,
                            server_env, shared_dir, start_stack, wait_in_flight)

pytestmark = pytest.mark.integration


def uwsgi_lines(stack: Stack) -> list[str]:
    return [line for line in stack.log().splitlines() if line.lstrip().startswith("uwsgi |")]


@pytest.mark.parametrize("server", SERVERS)
def test_bare_callable_page_through_nginx(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server))
    stacks.append(stack)
    resp = http(stack.url + "/hello")
    assert resp.status == 200
    assert resp.body == b"Hello, world!"
    assert resp.headers["server"] == "nginx"  # nginx in front, no version
    assert f"{server}.sock" in (stack.runtime_dir / "nginx.conf").read_text()


def test_flask_demo_and_its_static_folder(tmp_path: Path, stacks: list[Stack]) -> None:
    stack = start_stack(tmp_path, EXAMPLES / "flask_demo")
    stacks.append(stack)
    page = http(stack.url + "/")
    assert page.status == 200
    css = http(stack.url + "/static/style.css")
    assert css.status == 200
    assert css.headers["content-type"].startswith("text/css")


def test_static_files_never_reach_uwsgi(tmp_path: Path, stacks: list[Stack]) -> None:
    # uWSGI's request log is switched on for this test so it proves what uWSGI saw.
    env = clean_env(WSGISTACK_UWSGI__REQUEST_LOG="true")
    stack = start_stack(tmp_path, EXAMPLES / "flask_demo", env=env)
    stacks.append(stack)
    for _ in range(3):
        assert http(stack.url + "/static/style.css").status == 200
    assert http(stack.url + "/hello").status == 200
    deadline = time.monotonic() + 5
    while not any("GET /hello" in line for line in uwsgi_lines(stack)) and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = uwsgi_lines(stack)
    assert any("GET /hello" in line for line in lines), "uWSGI request log is not working"
    assert not any("/static/" in line for line in lines), lines
    nginx_lines = [line for line in stack.log().splitlines() if "GET /static/style.css" in line]
    assert len(nginx_lines) == 3


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"\x00\xff\x00\x00"  # one red pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, ctype) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_django_demo_register_post_and_media_round_trip(tmp_path: Path, stacks: list[Stack]) -> None:
    env = clean_env(DEMO_DATA_DIR=str(app_writable(shared_dir(tmp_path, "data"))), DJANGO_SECRET_KEY="x" * 60)
    stack = start_stack(tmp_path, EXAMPLES / "django_demo", "--migrate", env=env)
    stacks.append(stack)
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def csrf_from(url: str) -> str:
        page = opener.open(url).read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    token = csrf_from(stack.url + "/accounts/register/")
    form = {"csrfmiddlewaretoken": token, "username": "alice", "password1": "a-Very-long-pw-42", "password2": "a-Very-long-pw-42"}
    resp = opener.open(stack.url + "/accounts/register/", urllib.parse.urlencode(form).encode())
    assert resp.status == 200 and "alice" in resp.read().decode()
    assert any(c.name == "sessionid" for c in jar), "the session was not stored"

    token = csrf_from(stack.url + "/posts/new/")
    png = _png()
    body, ctype = _multipart({"csrfmiddlewaretoken": token, "body": "hello from the test"},
                             {"image": ("dot.png", png, "image/png")})
    req = urllib.request.Request(stack.url + "/posts/new/", data=body, headers={"Content-Type": ctype})
    page = opener.open(req).read().decode()
    assert "hello from the test" in page
    media_url = re.search(r'src="(/media/[^"]+)"', page).group(1)  # type: ignore[union-attr]
    media = http(stack.url + media_url)
    assert media.status == 200
    assert media.body == png
    assert media.headers["content-type"] == "image/png"
    # The stylesheet is collected at start, hashed, and served by nginx with a long cache.
    css_url = re.search(r'href="(/static/posts/style\.[0-9a-f]{12}\.css)"', page).group(1)  # type: ignore[union-attr]
    css = http(stack.url + css_url)
    assert css.status == 200
    assert "immutable" in css.headers["cache-control"]
    # Exactly one Cache-Control header (an inherited `expires 1h` used to add a second one).
    raw = urllib.request.urlopen(stack.url + css_url, timeout=10).headers
    assert raw.get_all("Cache-Control") == ["public, max-age=31536000, immutable"], raw.get_all("Cache-Control")
    assert raw.get_all("Expires") is None


def test_a_startproject_on_sqlite_migrates_at_start_with_no_migrate_setting(tmp_path: Path, stacks: list[Stack]) -> None:
    """`django-admin startproject` as it comes (SQLite in the project directory) and a page
    that reads the database: served with no migrate flag, setting or env var, because
    app.migrate = auto migrates when every database is SQLite (otherwise: "no such table")."""
    import subprocess

    project = app_writable(shared_dir(tmp_path, "mysite"))  # SQLite writes db.sqlite3 beside manage.py
    subprocess.run([deployed_python(), "-m", "django", "startproject", "mysite", str(project)], check=True)
    (project / "mysite" / "urls.py").write_text(
        "from django.contrib.auth.models import User\n"
        "from django.http import HttpResponse\n"
        "from django.urls import path\n\n"
        "def home(request):\n"
        "    return HttpResponse(f'users: {User.objects.count()}')\n\n"
        "urlpatterns = [path('', home)]\n"
    )
    assert not (project / "db.sqlite3").exists()
    stack = start_stack(tmp_path, project, env=clean_env(), ready_path="/_wsgistack/ready")
    stacks.append(stack)
    page = http(stack.url + "/")
    assert page.status == 200, stack.log()
    assert page.body == b"users: 0"
    assert "app.migrate auto = true (every database is SQLite: default;" in stack.log()
    assert (project / "db.sqlite3").is_file()


@pytest.mark.parametrize("server", SERVERS)
def test_sigterm_leaves_nothing_behind(tmp_path: Path, server: str) -> None:
    from tests.conftest import descendants

    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server))
    table = (stack.runtime_dir / "processes.json").read_text()
    assert server in table
    master_pid = app_server_pid(stack.runtime_dir)
    workers = descendants(master_pid)
    nginx_pid = int((stack.runtime_dir / "nginx.pid").read_text())
    assert stack.stop(signal.SIGTERM) == 0
    for pid in (master_pid, nginx_pid, *workers):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    leftovers = [p.name for p in stack.runtime_dir.rglob("*") if p.suffix in (".sock", ".pid", ".fifo")]
    assert leftovers == []
    assert "stopped" in stack.log()


@pytest.mark.parametrize("server", SERVERS)
def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path, server: str) -> None:
    import threading

    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server))
    result: dict[str, object] = {}

    def slow() -> None:
        resp = http(stack.url + "/slow?seconds=2", timeout=15)
        result["status"], result["body"] = resp.status, resp.body

    thread = threading.Thread(target=slow)
    thread.start()
    wait_in_flight(stack.runtime_dir)  # the request is in the app: now stop
    assert stack.stop(signal.SIGTERM) == 0
    thread.join(10)
    assert result.get("status") == 200, stack.log()


@pytest.mark.parametrize("server", SERVERS)
def test_killing_uwsgi_makes_run_exit_non_zero(tmp_path: Path, server: str) -> None:
    from tests.conftest import descendants

    stack = start_stack(tmp_path, EXAMPLES / "hello", env=server_env(server))
    master_pid = app_server_pid(stack.runtime_dir)
    workers = descendants(master_pid)
    nginx_pid = int((stack.runtime_dir / "nginx.pid").read_text())
    os.kill(master_pid, signal.SIGKILL)
    code = stack.proc.wait(timeout=15)
    assert code != 0
    assert f"{server} was killed by signal SIGKILL unexpectedly" in stack.log()
    with pytest.raises(ProcessLookupError):
        os.kill(nginx_pid, 0)
    deadline = time.monotonic() + 10  # its workers go with it (granian's: the shim ties them to it)
    while any(os.path.exists(f"/proc/{pid}") for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers), workers


def test_broken_app_fails_at_start(tmp_path: Path) -> None:
    project = shared_dir(tmp_path, "proj")  # readable by the user the app is probed as
    (project / "svc.py").write_text("application = 42\n")
    stack = start_stack(tmp_path, project, "--app", "svc:application", wait=False)
    code = stack.proc.wait(timeout=30)
    assert code == 2
    assert "error[app.E005]" in stack.log()


def test_bad_config_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    env = clean_env(WSGISTACK_UWSGI__PROCESSES="lots")
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=env, wait=False)
    assert stack.proc.wait(timeout=30) == 2
    log = stack.log()
    assert "error[config.E001]: uwsgi.processes (from env WSGISTACK_UWSGI__PROCESSES=\"lots\")" in log
    assert "Traceback" not in log


def test_unknown_table_in_the_config_file_names_the_file(tmp_path: Path) -> None:
    # It used to say "unknown setting processes (in default)" ([processes] is a known table now).
    project = shared_dir(tmp_path, "proj")
    (project / "hello.py").write_text((EXAMPLES / "hello" / "hello.py").read_text())
    (project / "wsgistack.toml").write_text('[workers]\nweb = 2\n')
    stack = start_stack(tmp_path, project, wait=False)
    assert stack.proc.wait(timeout=30) == 2
    log = stack.log()
    assert "error[config.E002]: unknown setting workers (in wsgistack.toml)" in log
    assert "Traceback" not in log


def test_tcp_socket_between_nginx_and_uwsgi(tmp_path: Path, stacks: list[Stack]) -> None:
    from tests.conftest import free_port

    env = clean_env(WSGISTACK_UWSGI__SOCKET="tcp", WSGISTACK_UWSGI__TCP_PORT=str(free_port()))
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=env)
    stacks.append(stack)
    assert http(stack.url + "/hello").status == 200
    assert "uwsgi_pass" in (stack.runtime_dir / "nginx.conf").read_text()
    assert "127.0.0.1:" in (stack.runtime_dir / "uwsgi.ini").read_text()


@pytest.mark.parametrize("server", SERVERS)
def test_split_app_and_web_roles_share_a_unix_socket(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    """Two stacks as two containers would run them: role app (the app server alone, on a socket
    in a shared directory) and role web (nginx alone, proxying to it), the same config."""
    shared = shared_dir(tmp_path, "shared")
    shared.chmod(0o1777)  # the app server runs as the app's user and binds there
    uri = f"unix:{shared}/app.sock"
    for part in ("app", "web"):
        (tmp_path / part).mkdir()
    app = start_stack(tmp_path / "app", EXAMPLES / "hello", env=server_env(server, WSGISTACK_ROLE="app", UWSGI_URI=uri),
                      wait=False)
    stacks.append(app)
    deadline = time.monotonic() + 30
    while not (shared / "app.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    web = start_stack(tmp_path / "web", EXAMPLES / "hello", env=server_env(server, WSGISTACK_ROLE="web", UWSGI_URI=uri))
    stacks.append(web)
    resp = http(web.url + "/hello")
    assert (resp.status, resp.body) == (200, b"Hello, world!"), web.log() + app.log()
    assert http(web.url + "/_wsgistack/ready").body == b"ready\n"
    assert f'"name": "{server}"' in (app.runtime_dir / "processes.json").read_text()
    assert (server == "granian") == ("proxy_pass" in (web.runtime_dir / "nginx.conf").read_text())
