"""The command line through click's runner: arguments, flags and errors, no servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from wsgistack.cli import main
from wsgistack.cli.options import config_options, overrides, project_argument


@click.command()
@project_argument
@config_options
@click.option("--migrate/--no-migrate", default=None)
def probe(path: Path, config_file: Path | None, **params: Any) -> None:
    """Echo what the shared options resolve to."""
    click.echo(f"path={path} {sorted(overrides(params).items())}")


def invoke(*args: str) -> Any:
    return CliRunner().invoke(probe, list(args), catch_exceptions=False)


def test_target_shape_as_path_is_the_app_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("myapp:app")
    assert result.exit_code == 0, result.output
    assert "path=. [('app.target', ('myapp:app', 'TARGET'))]" in result.output
    assert "('app.target', ('pkg:create_app()', 'TARGET'))" in invoke("pkg:create_app()").output


def test_an_existing_directory_stays_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    result = invoke("proj", "--app", "x:y")
    assert result.output.strip() == "path=proj [('app.target', ('x:y', '--app'))]"


def test_a_missing_directory_without_the_target_shape_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(probe, ["nosuchdir"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_target_twice_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(probe, ["a:b", "--app", "c:d"])
    assert result.exit_code == 2
    assert "given twice" in result.output


def test_flags_become_overrides_with_their_flag_as_origin() -> None:
    result = invoke(".", "--port", "9000", "--server-name", "a.example", "--server-name", "b.example", "--no-migrate")
    assert "('server.port', ('9000', '--port'))" in result.output
    assert "('server.server_names', (['a.example', 'b.example'], '--server-name'))" in result.output
    assert "('app.migrate', (False, '--no-migrate'))" in result.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for name in main.list_commands(click.Context(main)):
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_bad_config_is_an_error_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "wsgistack.toml").write_text("[server]\nport = 0\n")
    result = CliRunner().invoke(main, ["config", str(tmp_path)])
    assert result.exit_code == 2
    assert "error[" in result.output and "server.port" in result.output
    assert "Traceback" not in result.output


def test_run_help_names_the_target_form() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert "[PATH|TARGET]" in result.output
    assert "wsgistack run myapp:app" in result.output


def _raiser(exc: BaseException) -> click.Command:
    @click.command()
    def boom() -> None:
        raise exc

    return boom


@pytest.fixture
def group_with(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def add(exc: BaseException) -> None:
        monkeypatch.setitem(main.commands, "boom", _raiser(exc))

    return add


def test_an_unexpected_exception_is_one_error_line(group_with) -> None:  # type: ignore[no-untyped-def]
    group_with(RuntimeError("disk on fire"))
    result = CliRunner().invoke(main, ["boom"])
    assert result.exit_code == 1
    assert "error[internal.E001]: RuntimeError: disk on fire" in result.output
    assert "Traceback" not in result.output and "--debug" in result.output
    debug = CliRunner().invoke(main, ["--debug", "boom"])
    assert "Traceback" in debug.output


def test_ctrl_c_exits_130_without_a_traceback(group_with) -> None:  # type: ignore[no-untyped-def]
    group_with(KeyboardInterrupt())
    result = CliRunner().invoke(main, ["boom"])
    assert result.exit_code == 130
    assert "Traceback" not in result.output and "Aborted" not in result.output


def test_run_has_migrate_and_no_migrate_and_neither_leaves_auto() -> None:
    from wsgistack.cli.options import model_options, table_options

    @click.command()
    @table_options(model_options("run"))
    def run_flags(**params: Any) -> None:
        click.echo(repr(overrides(params, model_options("run")).get("app.migrate")))

    def flags(*args: str) -> str:
        return CliRunner().invoke(run_flags, list(args), catch_exceptions=False).output.strip()

    assert flags("--migrate") == "(True, '--migrate')"
    assert flags("--no-migrate") == "(False, '--no-migrate')"
    assert flags() == "None"  # the config decides: app.migrate's default is "auto"


def test_config_origin_shows_migrate_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSGISTACK_APP__MIGRATE", raising=False)
    result = CliRunner().invoke(main, ["config", "--origin"], catch_exceptions=False, terminal_width=400)
    line = next(line for line in result.output.splitlines() if "app.migrate" in line)
    assert "auto" in line and "default" in line, line


def test_gunicorn_habits_are_accepted_or_answered_with_the_equivalent(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 21 item 10: -b/--bind, -w/--workers and `mysite.wsgi` work; the gunicorn flags that
    have no spelling here say what to use instead (never "did you mean --threads")."""
    import click
    from click.testing import CliRunner

    from wsgistack.cli import main
    from wsgistack.cli.options import ProjectOrTarget, bind_overrides

    assert bind_overrides("127.0.0.1:9000") == {"server.port": (9000, "--bind"), "server.host": ("127.0.0.1", "--bind")}
    assert bind_overrides("0.0.0.0:80")["server.host"] == ("0.0.0.0", "--bind")
    assert bind_overrides(":9000") == {"server.port": (9000, "--bind")} == bind_overrides("9000")
    assert bind_overrides("[::1]:9000")["server.host"][0] == "::1"
    for bad in ("unix:/tmp/x.sock", "host:port"):
        try:
            bind_overrides(bad)
        except click.UsageError:
            pass
        else:
            raise AssertionError(bad)
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "wsgi.py").write_text("application = None\n")
    monkeypatch.chdir(tmp_path)
    ctx = click.Context(click.Command("run"))
    assert ProjectOrTarget(exists=True, file_okay=False, path_type=__import__("pathlib").Path).convert("mysite.wsgi", None, ctx).name == ""
    assert ctx.meta["wsgistack.target"] == "mysite.wsgi"
    runner = CliRunner()
    for flag, said in (("--reload", "wsgistack reload"), ("-k", "--threads"), ("--daemon", "foreground")):
        out = runner.invoke(main, ["run", flag], catch_exceptions=False)
        assert out.exit_code == 2 and said in out.output and "Did you mean" not in out.output, out.output
    out = runner.invoke(main, ["run", "-c", "gunicorn.conf.py"])
    assert out.exit_code == 2 and "wsgistack.toml" in out.output
    shown = runner.invoke(main, ["config", "-w", "3", "--origin"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert any("uwsgi.processes" in line and "3" in line for line in shown.output.splitlines()), shown.output


def test_the_image_runs_a_one_off_command_in_the_apps_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 21 item 11: `docker run IMAGE python manage.py createsuperuser` runs that command
    (the entrypoint's arguments), in app.path, with app.env; nothing else starts."""
    import os
    import subprocess
    import sys

    (tmp_path / "proj").mkdir()
    (tmp_path / "wsgistack.toml").write_text('[app]\npath = "proj"\nenv = { GREETING = "hi" }\n')
    wsgistack = str(Path(sys.executable).parent / "wsgistack")
    proc = subprocess.run([wsgistack, "entrypoint", str(tmp_path), sys.executable, "-c",
                           "import os; print(os.getcwd(), os.environ['GREETING'])"],
                          capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "proj"), "hi"]
    missing = subprocess.run([wsgistack, "entrypoint", str(tmp_path), "no-such-program"], capture_output=True, text=True,
                             timeout=60, env={"PATH": os.environ["PATH"]})
    assert missing.returncode != 0 and "entrypoint.E002" in missing.stderr
