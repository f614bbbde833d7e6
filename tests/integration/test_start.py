"""The start sequence as a new user meets it: the target as the first argument, real memory
numbers in `status` from the start, and one clear error when the app's user cannot write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    EXAMPLES, SERVERS, WSGISTACK, Stack, app_writable, clean_env, http, server_env, shared_dir, start_stack, worker_user,
)

pytestmark = pytest.mark.integration


def test_target_as_the_first_argument(tmp_path: Path, stacks: list[Stack]) -> None:
    """`wsgistack run hello:application`, as gunicorn takes it (issue 10, defect 2)."""
    project = shared_dir(tmp_path, "proj")
    shutil.copy(EXAMPLES / "hello" / "hello.py", project)
    stack = start_stack(tmp_path, "hello:application", cwd=project)
    stacks.append(stack)
    assert "wsgi app hello:application in " + str(project) in stack.log()


def test_factory_target_as_the_first_argument(tmp_path: Path, stacks: list[Stack]) -> None:
    """`wsgistack run 'factory:create_app()'`: the factory form positional too (defect 2)."""
    project = shared_dir(tmp_path, "proj")
    (project / "factory.py").write_text(
        "def create_app():\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "        return [b'made by a factory']\n"
        "    return app\n"
    )
    stack = start_stack(tmp_path, "factory:create_app()", cwd=project, ready_path="/")
    stacks.append(stack)
    assert http(stack.url + "/").body == b"made by a factory"


@pytest.mark.parametrize("server", SERVERS)
def test_status_shows_worker_memory_before_any_request(tmp_path: Path, stacks: list[Stack], server: str) -> None:
    """Every worker's RSS is a real number at once, not 0.0 until it served (defect 3)."""
    stack = start_stack(tmp_path, EXAMPLES / "hello", "--processes", "2", env=server_env(server))
    stacks.append(stack)
    proc = subprocess.run([*WSGISTACK, "status", str(EXAMPLES / "hello"), "--runtime-dir", str(stack.runtime_dir),
                           "--json"], capture_output=True, text=True, env=clean_env(), timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    workers = json.loads(proc.stdout)["stats"]["workers"]
    assert len(workers) == 2
    assert any(w["requests"] == 0 for w in workers), "both workers served: the test proves nothing"
    assert all(w["rss"] > 1024 * 1024 for w in workers), workers


@pytest.mark.skipif(os.geteuid() != 0 or worker_user() is None, reason="the app runs as another user only when started as root")
def test_unwritable_data_dir_is_one_error_before_prestart(tmp_path: Path) -> None:
    """Started as root with a root-owned data dir: one error naming the directories and the
    exact chown, before collectstatic or migrate run (defect 4)."""
    data = shared_dir(tmp_path, "data")  # root's, mode 755: the app's user cannot write it
    env = clean_env(DEMO_DATA_DIR=str(data), DJANGO_SECRET_KEY="x" * 60)
    proc = subprocess.run([*WSGISTACK, "run", str(EXAMPLES / "django_demo"), "--migrate", "--runtime-dir",
                           str(shared_dir(tmp_path, "rt"))], capture_output=True, text=True, env=env, timeout=120,
                          check=False, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "error[run.E005]" in out
    user = worker_user()
    assert f"chown -R {user}:" in out and str(data / "static") in out and str(data / "media") in out
    assert "prestart:" not in out  # refused before prestart
    assert "Traceback" not in out


def test_a_port_in_use_is_one_error_before_anything_starts(tmp_path: Path) -> None:
    """Another process on nginx's port: run.E006 with the command that names it, instead of
    nginx's "Address already in use" five times and "nginx exited with code 1"."""
    import socket

    from tests.conftest import free_port

    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for args in (["--port", str(port)], ["--port", str(free_port()), "--tls", "self-signed", "--tls-port", str(port)]):
            out = subprocess.run(
                [*WSGISTACK, "run", str(EXAMPLES / "hello"), *args, "--runtime-dir", str(shared_dir(tmp_path, "rt"))],
                capture_output=True, text=True, env=clean_env(XDG_DATA_HOME=str(tmp_path / "data")), timeout=120)
            text = out.stdout + out.stderr
            assert out.returncode != 0, text
            assert "error[run.E006]" in text and f"127.0.0.1:{port}" in text and f"sport = :{port}" in text, text
            assert "nginx |" not in text and "uwsgi |" not in text, text  # nothing was started


SCHEMA_CHECK_SETTINGS = """
import os
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "x7!qP2vR9sT4uW6yZ8aB1cD3eF5gH7jK9mN2pQ4rS6tU8vW0xY2zA4bC6dE8fG0hJ2"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
WSGI_APPLICATION = "site_cfg.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DB_PATH"]}}
SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008", "security.W012", "security.W016"]
"""
# shaped like drf-spectacular's deploy check: it walks the content types, so an empty
# database fails it (relation/table does not exist)
SCHEMA_CHECK = """
from django.core.checks import register

@register(deploy=True)
def schema_check(app_configs, **kwargs):
    from django.contrib.contenttypes.models import ContentType
    list(ContentType.objects.values_list("app_label", "model"))
    return []
"""


def test_a_start_that_migrates_checks_after_migrate(tmp_path: Path) -> None:
    """Issue 21 item 5: with app.migrate = true (a first deploy, the Kubernetes migration Job),
    Django's deploy checks run after migrate, so a check that queries the schema passes on an
    empty database; without migrate it fails and says the database is not migrated (app.E108)."""
    project = shared_dir(tmp_path, "proj")
    for rel, text in {
        "manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_cfg.settings')\n",
        "site_cfg/__init__.py": "", "site_cfg/settings.py": SCHEMA_CHECK_SETTINGS,
        "site_cfg/wsgi.py": "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
        "shop/__init__.py": "", "shop/checks.py": SCHEMA_CHECK,
        "shop/apps.py": "from django.apps import AppConfig\n\nclass ShopConfig(AppConfig):\n    name = 'shop'\n\n"
                        "    def ready(self):\n        from . import checks  # noqa: F401\n",
    }.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)

    def entrypoint(db: Path, migrate: str) -> subprocess.CompletedProcess[str]:
        env = clean_env(DB_PATH=str(db), WSGISTACK_APP__MIGRATE=migrate, WSGISTACK_RUNTIME_DIR=str(shared_dir(tmp_path, f"rt-{migrate}")))
        return subprocess.run([*WSGISTACK, "entrypoint", "--prestart-only", str(project)], capture_output=True,
                              text=True, env=env, timeout=180, check=False)

    data = shared_dir(tmp_path, "data")
    if os.geteuid() == 0 and worker_user():
        shutil.chown(data, worker_user())
    fresh = entrypoint(data / "fresh.sqlite3", "false")
    out = fresh.stdout + fresh.stderr
    assert fresh.returncode != 0 and "app.E108" in out and "django_content_type" in out and "--migrate" in out, out[-3000:]
    first = entrypoint(data / "first.sqlite3", "true")
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-3000:]
    assert out.index("prestart: migrate") < out.index("prestart done"), out[-3000:]


SLOW_STEP = """\
import os, sys, time
gate = sys.argv[1]
def wait(name):
    while not os.path.exists(os.path.join(gate, name)):
        time.sleep(0.05)
print("copying the first half", flush=True)
wait("half")
# Like Django's migrate: "Applying x..." now, " OK" only once that migration is done.
print("  Applying shop.0002_big_table...", end="", flush=True)
wait("applied")
print(" OK", flush=True)
print("done", flush=True)
"""


def test_prestart_output_is_streamed_line_by_line_with_the_steps_name(tmp_path: Path, stacks: list[Stack]) -> None:
    """Issue 24 item 3: a step's output was held until it ended (4 min 17 s of silence during
    a first migrate). Each line appears while the step still runs, named after the step; a
    line left unfinished (migrate's "Applying ...") appears too, and its end when it comes."""
    project = shared_dir(tmp_path, "proj")
    shutil.copy(EXAMPLES / "hello" / "hello.py", project)
    (project / "seed.py").write_text(SLOW_STEP)
    gate = app_writable(shared_dir(tmp_path, "gate"))
    (project / "wsgistack.toml").write_text(
        f'[app]\ntarget = "hello:application"\nprestart = ["python seed.py {gate}"]\n')
    stack = start_stack(tmp_path, project, wait=False)
    stacks.append(stack)
    log = stack.log_with("seed.py | copying the first half", timeout=60)
    assert "seed.py | copying the first half" in log, log
    assert "Applying" not in log and "serving" not in log  # the step is still running
    (gate / "half").touch()
    log = stack.log_with("Applying shop.0002_big_table... …", timeout=30)
    assert "seed.py |   Applying shop.0002_big_table... …" in log, log
    assert " OK" not in log and "serving" not in log
    (gate / "applied").touch()
    log = stack.log_with("serving ", timeout=60)
    assert "seed.py | …  OK" in log and "seed.py | done" in log, log
    lines = log.splitlines()
    assert lines.index("wsgistack | prestart: python seed.py " + str(gate) + (
        f" (as {worker_user()})" if os.geteuid() == 0 else "")) < lines.index("  seed.py | copying the first half")
    assert http(stack.url + "/hello").status == 200


BIG_APP = """\
# 120 MB held from import on, as a big app's modules, caches and models would be.
BALLAST = bytearray(120 * 1024 * 1024)
for i in range(0, len(BALLAST), 4096):
    BALLAST[i] = 1

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"big"]
"""


def test_processes_auto_is_sized_by_the_apps_measured_memory(tmp_path: Path, stacks: list[Stack]) -> None:
    """Issue 24 item 4: the probe measures the app's resident memory once imported, and the
    plan counts each worker (and each background process) by it, not by a typical app's 64 MB."""
    import re

    project = shared_dir(tmp_path, "proj")
    (project / "big.py").write_text(BIG_APP)
    (project / "wsgistack.toml").write_text('[app]\ntarget = "big:application"\n[processes.tick]\ncommand = "sleep 3600"\n')
    stack = start_stack(tmp_path, project, ready_path="/")
    stacks.append(stack)
    log = stack.log()
    found = re.search(r"uwsgi\.processes auto = (\d+) \(cpus \d+ -> \d+; memory (\d+) MB holds (-?\d+): the app is (\d+) MB "
                      r"after import, a worker counted at (\d+) MB, (\d+) MB for nginx, uWSGI's master and the manager, "
                      r"(\d+) MB for 1 background process\)", log)
    assert found, log
    count, limit, holds, app_mb, worker_mb, fixed_mb, background_mb = map(int, found.groups())
    assert 120 <= app_mb < 200  # the ballast, measured in the app's own interpreter
    # (whole MB each, rounded down: hence the 1 MB of slack)
    assert abs(worker_mb - 1.5 * app_mb) <= 1 and abs(fixed_mb - (96 + app_mb)) <= 1 and background_mb == app_mb
    assert abs(holds - (limit - fixed_mb - background_mb) // worker_mb) <= 1
    assert count >= 1
    assert http(stack.url + "/").body == b"big"
