"""The start sequence (wsgistack.start) with the render flags: config -> app -> plan ->
render -> preflight on those very files -> write. No server starts."""

from __future__ import annotations

import json
from pathlib import Path

from wsgistack import start
from wsgistack.start.runtime import app_writes
from wsgistack.contracts import Say
from tests.conftest import shared_dir

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


def test_render_flags_write_the_checked_files(tmp_path: Path) -> None:
    tmp_path = shared_dir(tmp_path, "out")  # nginx's workers must reach it when we are root
    lines: list[str] = []
    started = start.run(HELLO, env={}, cli={"runtime_dir": (str(tmp_path), "--out")}, flags=start.RENDER,
                             out=tmp_path, say=lines.append)
    assert started.plan.app is not None and started.plan.app.target == "hello:application"
    names = {p.name for p in started.written}
    assert {"nginx.conf", "uwsgi.ini", "processes.json"} <= names
    # What was checked is what was written: one render.
    for f in started.files:
        assert (tmp_path / f.path).read_text() == f.content
    assert (tmp_path / "nginx-temp").is_dir()
    assert not (tmp_path / "private").exists()  # render prepares no runtime dir


def test_the_output_follows_the_log_format(tmp_path: Path, capsysbinary) -> None:  # type: ignore[no-untyped-def]
    tmp_path = shared_dir(tmp_path, "out")
    say = Say()
    start.run(HELLO, env={"WSGISTACK_SERVER__LOG_FORMAT": "json"}, cli={"runtime_dir": (str(tmp_path), "--out")},
                   flags=start.RENDER, out=tmp_path, say=say)
    assert say.json_mode
    say("hello")
    assert json.loads(capsysbinary.readouterr().out.splitlines()[-1])


def test_status_needs_only_the_config(tmp_path: Path) -> None:
    loaded = start.load(tmp_path, env={"WSGISTACK_RUNTIME_DIR": str(tmp_path / "rt")})
    assert start.runtime_paths(loaded).runtime == tmp_path / "rt"


def test_app_writes_lists_static_media_and_sqlite_dirs(tmp_path: Path) -> None:
    import dataclasses

    from wsgistack.app.spec import AppSpec, StaticDir
    from wsgistack.plan.stack import make_plan
    from tests.unit.test_plan import MACHINE
    from wsgistack.config import load_config

    spec = AppSpec(kind="django", module="p.wsgi", attr="application", path=tmp_path, django_settings="p.settings",
                   static=(StaticDir("/static/", tmp_path / "static", "static"), StaticDir("/media/", tmp_path / "media", "media")),
                   staticfiles=True, writes=(tmp_path / "data",))
    plan = make_plan(load_config(tmp_path, env={}), dataclasses.replace(MACHINE, euid=1000), spec)
    assert app_writes(plan) == [tmp_path / "static", tmp_path / "media", tmp_path / "data"]
    off = make_plan(load_config(tmp_path, env={"WSGISTACK_APP__COLLECTSTATIC": "0"}), dataclasses.replace(MACHINE, euid=1000), spec)
    assert tmp_path / "static" not in app_writes(off)  # nothing writes STATIC_ROOT then
