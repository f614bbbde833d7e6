"""The app's interpreter: the order it is chosen in, why, and the helpers handed to it."""

from __future__ import annotations

import ast
import dataclasses
import os
import sys
from pathlib import Path

import pytest

from wsgistack.config import load_config
from wsgistack.errors import ConfigError, MissingBinaryError
from wsgistack.app.interpreter import HELPERS, AppPython, check_uwsgi, choose, helper_argv, inspect

SRC = Path(__file__).resolve().parents[2] / "src" / "wsgistack"


def fake_venv(directory: Path) -> Path:
    python = directory / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return python


def test_order_app_python_then_virtual_env_then_project_venv_then_our_own(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    own = "/opt/wsgistack/bin/python"
    assert choose(load_config(project), {}, own) == (own, "wsgistack's own interpreter (no app.python, VIRTUAL_ENV, "
                                                          "or .venv/venv/env in the project)")
    venv = fake_venv(project / "venv")
    assert choose(load_config(project), {}, own) == (str(venv), f"the virtualenv venv in the project ({project / 'venv'})")
    dot_venv = fake_venv(project / ".venv")
    assert choose(load_config(project), {}, own)[0] == str(dot_venv)  # .venv before venv
    active = fake_venv(tmp_path / "active")
    env = {"VIRTUAL_ENV": str(tmp_path / "active")}
    assert choose(load_config(project), env, own) == (str(active), f"the active virtualenv (VIRTUAL_ENV={tmp_path / 'active'})")
    chosen = fake_venv(tmp_path / "chosen")
    loaded = load_config(project, env={"WSGISTACK_APP__PYTHON": str(chosen)})
    python, why = choose(loaded, env, own)
    assert python == str(chosen) and why == f'app.python (from env WSGISTACK_APP__PYTHON="{chosen}")'
    # A virtualenv directory is as good as its interpreter; the CLI flag wins over the env.
    loaded = load_config(project, env={"WSGISTACK_APP__PYTHON": str(chosen)}, cli={"app.python": (str(tmp_path / "active"), "--python")})
    assert choose(loaded, env, own) == (str(active), f'app.python (from CLI --python="{tmp_path / "active"}")')


def test_a_virtual_env_without_an_interpreter_is_skipped(tmp_path: Path) -> None:
    assert choose(load_config(tmp_path), {"VIRTUAL_ENV": str(tmp_path / "gone")}, "/own")[0] == "/own"


def test_app_python_that_is_not_an_interpreter_is_a_config_error(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, cli={"app.python": ("nope/bin/python", "--python")})
    with pytest.raises(ConfigError) as exc:
        choose(loaded, {}, "/own")
    assert exc.value.id == "python.E001" and exc.value.exit_code == 2
    assert "CLI --python" in exc.value.message and str(tmp_path / "nope/bin/python") in exc.value.message
    assert exc.value.message.endswith(f"{tmp_path / 'nope/bin/python'} does not exist")
    (tmp_path / "notpython").write_text("")  # there, but no interpreter
    loaded = load_config(tmp_path, cli={"app.python": ("notpython", "--python")})
    with pytest.raises(ConfigError) as exc:
        choose(loaded, {}, "/own")
    assert exc.value.message.endswith(f"{tmp_path / 'notpython'} is not an executable file")


def test_inspect_asks_the_interpreter_itself() -> None:
    found = inspect(sys.executable, "test")
    assert found.version == ".".join(map(str, sys.version_info[:3]))
    assert found.uwsgi_dist == "pyuwsgi" and found.uwsgi and os.access(found.uwsgi, os.X_OK)
    assert found.binary_path == sys.executable  # pyuwsgi's uwsgi is a script: reloads re-exec python


def test_an_interpreter_that_does_not_run_is_python_e002(tmp_path: Path) -> None:
    with pytest.raises(Exception) as exc:
        inspect(str(fake_venv(tmp_path / "v")), "test")
    assert getattr(exc.value, "id", None) == "python.E002"


def test_missing_or_old_pyuwsgi_names_the_one_command_that_fixes_it() -> None:
    python = AppPython("/srv/app/.venv/bin/python", "the virtualenv .venv in the project", "3.11.2")
    with pytest.raises(MissingBinaryError) as exc:
        check_uwsgi(python)
    assert exc.value.id == "run.E001" and exc.value.hint == "add it there: /srv/app/.venv/bin/python -m pip install pyuwsgi"
    old = dataclasses.replace(python, uwsgi="/srv/app/.venv/bin/uwsgi", uwsgi_dist="pyuwsgi", uwsgi_version="2.0.23")
    with pytest.raises(MissingBinaryError) as exc:
        check_uwsgi(old)
    assert exc.value.id == "python.E003"
    assert exc.value.hint == "upgrade it: /srv/app/.venv/bin/python -m pip install --upgrade 'pyuwsgi>=2.0.28'"
    check_uwsgi(dataclasses.replace(old, uwsgi_version="2.0.30.post1"))


@pytest.mark.parametrize("helper", sorted(HELPERS))
def test_app_side_helpers_import_only_the_standard_library(helper: str) -> None:
    """They run in the app's interpreter, which has no wsgistack, pydantic or Jinja2."""
    tree = ast.parse((SRC / "standalone" / f"{helper}.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - set(sys.stdlib_module_names) - {"__future__", "django"} == set()


def test_helpers_are_handed_over_as_source_not_imported(tmp_path: Path) -> None:
    argv = helper_argv("/srv/app/.venv/bin/python", "probe", "req.json", "res.json")
    assert argv[:2] == ["/srv/app/.venv/bin/python", "-c"] and argv[3:] == ["req.json", "res.json"]
    assert argv[2] == (SRC / "standalone" / "probe.py").read_text()
    assert "wsgistack" not in " ".join(a for a in argv if a != argv[2])


def test_the_oldest_pyuwsgi_is_one_fact() -> None:
    """pyproject's pin (wsgistack installed into the app's venv) says what `run` enforces."""
    import tomllib

    from wsgistack.app.interpreter import MIN_PYUWSGI_TEXT

    deps = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pyuwsgi>={MIN_PYUWSGI_TEXT}" in deps


def test_wagtails_tutorial_env_is_the_projects_virtualenv_when_it_is_one(tmp_path: Path) -> None:
    """Issue 21: Wagtail's tutorial makes the venv as env/ (`python -m venv mysite/env`); it was
    not looked for, so wsgistack's own interpreter ran the probe (app.E007: "Django is not
    installed"). env/ counts only as a real virtualenv (its pyvenv.cfg), after .venv and venv."""
    project = tmp_path / "mysite"
    project.mkdir()
    own = "/opt/wsgistack/bin/python"
    env_python = fake_venv(project / "env")
    assert choose(load_config(project), {}, own)[0] == own  # bin/python alone: a directory named env, not a venv
    (project / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert choose(load_config(project), {}, own) == (str(env_python), f"the virtualenv env in the project ({project / 'env'})")
    venv = fake_venv(project / "venv")
    assert choose(load_config(project), {}, own)[0] == str(venv)  # venv before env
