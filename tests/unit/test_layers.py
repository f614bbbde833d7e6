"""Imports run down the layers: the checks never import the runner, the runner (a supervisor)
never imports the start sequence, the checks or the renderer; and the benchmark harness is
not part of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

SRC = Path(__file__).resolve().parents[2] / "src" / "wsgistack"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_checks_do_not_import_the_runner() -> None:
    for path in (SRC / "checks").glob("*.py"):
        assert not any(m.startswith("wsgistack.runner") for m in imports(path)), path.name


def test_the_runner_only_supervises() -> None:
    forbidden = ("wsgistack.start", "wsgistack.checks", "wsgistack.render", "wsgistack.prestart", "wsgistack.app")
    for path in (SRC / "runner").glob("*.py"):
        bad = [m for m in imports(path) if m.startswith(forbidden)]
        assert not bad, (path.name, bad)


def test_the_bench_is_not_in_the_package() -> None:
    assert not (SRC / "bench").exists()
    assert not (SRC / "cli" / "bench.py").exists()


def test_bench_outside_a_checkout_says_where_it_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import wsgistack.cli as cli

    monkeypatch.setattr(cli, "BENCH_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(cli.main, "commands", {k: v for k, v in cli.main.commands.items() if k != "bench"})
    result = CliRunner().invoke(cli.main, ["bench", "--quick"])
    assert result.exit_code == 2 and "checkout of the wsgistack repository" in result.output
    assert " bench " not in CliRunner().invoke(cli.main, ["--help"]).output  # hidden there
