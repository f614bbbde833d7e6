"""wsgistack beside the app, not inside its environment (issue 17).

wsgistack runs from its own environment (this test session's: pydantic 2, Jinja2 3, click 8);
each app from a venv of its own that holds only its requirements and pyuwsgi. Real nginx and
uWSGI on loopback; the app venvs are built once (tests/conftest.py: app_venv).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, Stack, app_venv, clean_env, deployed_python, http, shared_dir, start_stack

pytestmark = pytest.mark.integration


def pip_check(python: Path | str) -> str:
    proc = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


def distributions(python: Path | str) -> set[str]:
    code = "import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower() for d in m.distributions())))"
    return set(subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, check=True).stdout.split())


def project_copy(tmp_path: Path, name: str) -> Path:
    """The fixture in a directory the app's user can read when the tests run as root."""
    target = shared_dir(tmp_path, "proj") / name
    shutil.copytree(FIXTURES / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_old_pins_served_from_their_own_venv_through_nginx(tmp_path: Path, stacks: list[Stack]) -> None:
    """pydantic<2, Jinja2<3, click<8: the app's pins, which wsgistack's own environment
    (pydantic>=2.6, Jinja2>=3.1, click>=8.1) cannot hold. VIRTUAL_ENV names the app's venv."""
    venv = app_venv(FIXTURES / "old_pins" / "requirements.txt")
    env = clean_env(VIRTUAL_ENV=str(venv))
    stack = start_stack(tmp_path, project_copy(tmp_path, "old_pins"), env=env, ready_path="/")
    stacks.append(stack)
    page = http(stack.url + "/")
    assert page.status == 200 and page.headers["server"] == "nginx"
    assert page.body.startswith(b"widget x 3\npydantic 1.10.")
    assert b" jinja2 2.11.3 click 7.1.2" in page.body
    assert f"app interpreter: {venv}/bin/python" in stack.log() and f"VIRTUAL_ENV={venv}" in stack.log()
    # uWSGI is the app's pyuwsgi, running the app's interpreter.
    argv = (stack.runtime_dir / "processes.json").read_text()
    assert f'"{venv}/bin/uwsgi"' in argv
    # Each environment holds what it needs and passes pip check on its own.
    app_side = distributions(venv / "bin" / "python")
    assert {"pydantic", "jinja2", "click", "pyuwsgi"} <= app_side and "wsgistack" not in app_side
    assert "No broken requirements found" in pip_check(venv / "bin" / "python")
    assert "No broken requirements found" in pip_check(sys.executable)


def test_flask_script_manage_py_beside_a_flask_wsgi_py_from_the_projects_venv(tmp_path: Path, stacks: list[Stack]) -> None:
    """A manage.py that is Flask-Script's, not Django's, does not stop detection; the app's
    venv is found as the project's .venv (a link to the one built for it)."""
    venv = app_venv(FIXTURES / "flask_script" / "requirements.txt")
    project = project_copy(tmp_path, "flask_script")
    (project / ".venv").symlink_to(venv)
    stack = start_stack(tmp_path, project, ready_path="/")
    stacks.append(stack)
    page = http(stack.url + "/")
    assert (page.status, page.body) == (200, b"shop served by wsgistack\n")
    css = http(stack.url + "/static/site.css")  # Flask's static folder, served by nginx
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert "flask app wsgi:app" in stack.log() and f"the virtualenv .venv in the project ({project / '.venv'})" in stack.log()
    assert "wsgistack" not in distributions(venv / "bin" / "python")
    assert "No broken requirements found" in pip_check(venv / "bin" / "python")


def test_python_flag_and_config_origin_name_the_interpreter_and_why(tmp_path: Path) -> None:
    venv = app_venv(FIXTURES / "old_pins" / "requirements.txt")
    out = subprocess.run([deployed_python(), "-m", "wsgistack", "config", "--origin", str(FIXTURES / "old_pins"),
                          "--python", str(venv)], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"app interpreter: {venv}/bin/python" in out.stdout
    assert f'chosen: app.python (from CLI --python="{venv}")' in out.stdout


def test_an_app_venv_without_pyuwsgi_is_one_command_away(tmp_path: Path) -> None:
    empty = app_venv(None)
    """Checked before the app is imported: the old pins are not there either."""
    out = subprocess.run([deployed_python(), "-m", "wsgistack", "run", str(FIXTURES / "old_pins"), "--python",
                          str(empty / "bin" / "python"), "--runtime-dir", str(shared_dir(tmp_path, "rt"))],
                         capture_output=True, text=True, env=clean_env(), timeout=120)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "error[run.E001]: uWSGI is not installed in the app's environment" in out.stderr
    assert f"hint: add it there: {empty}/bin/python -m pip install pyuwsgi" in out.stderr


def test_reload_keeps_the_interpreter_the_stack_was_started_on(tmp_path: Path, stacks: list[Stack]) -> None:
    """Started with VIRTUAL_ENV, reloaded from a shell without it: the app's venv stays (the
    old pins would not import on wsgistack's own interpreter)."""
    venv = app_venv(FIXTURES / "old_pins" / "requirements.txt")
    project = project_copy(tmp_path, "old_pins")
    stack = start_stack(tmp_path, project, env=clean_env(VIRTUAL_ENV=str(venv)), ready_path="/")
    stacks.append(stack)
    rl = subprocess.run([deployed_python(), "-m", "wsgistack", "reload", str(project), "--runtime-dir", str(stack.runtime_dir)],
                        capture_output=True, text=True, env=clean_env(), timeout=120)
    assert rl.returncode == 0, rl.stdout + rl.stderr
    assert f"binary-path = {venv}/bin/python" in (stack.runtime_dir / "uwsgi.ini").read_text()
    assert [http(stack.url + "/").status for _ in range(5)] == [200] * 5
