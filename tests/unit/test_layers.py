"""The package's layers, enforced: the import graph of src/wsgistack (every import, those inside
functions too; type-checking-only imports aside) has no cycle, and each rule below holds for
everything a module reaches, not only what it imports itself.

From the bottom: errors, ids, hosts, contracts, procfs (stdlib only) and standalone/ (the
helpers that run in the app's interpreter: nothing of wsgistack); config/, tls/; layout,
machine; app/; plan/ (pure derivation); render/ (pure renderers); checks/ (they only look);
the runner (the process manager: contracts only); start/ (the one start, in stages); ops/
and image/; cli/ on top."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner

SRC = Path(__file__).resolve().parents[2] / "src" / "wsgistack"


def module_name(path: Path) -> str:
    parts = ("wsgistack", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def _runtime_imports(tree: ast.AST) -> Iterator[ast.AST]:
    """Every import statement, except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


@cache
def imports(module: str) -> frozenset[str]:
    """The wsgistack modules ``module`` imports (a package's __init__ comes with its submodules)."""
    found: set[str] = set()
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in _runtime_imports(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
        else:
            found.update(a.name for a in node.names)
    out = set()
    for name in found:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
            # importing wsgistack.a.b runs wsgistack.a's __init__ first
            parent = name.rpartition(".")[0]
            while parent and parent != "wsgistack":
                if parent in MODULES and parent != module and not module.startswith(parent + "."):
                    out.add(parent)
                parent = parent.rpartition(".")[0]
    return frozenset(out - {"wsgistack"})


@cache
def reaches(module: str) -> frozenset[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        for dep in imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return frozenset(seen - {module})


def under(prefix: str) -> list[str]:
    return sorted(m for m in MODULES if m == prefix or m.startswith(prefix + "."))


def test_no_import_cycle() -> None:
    cyclic = sorted(m for m in MODULES if m in reaches(m))
    assert not cyclic, f"modules that reach themselves: {cyclic}"


BOTTOM = ("wsgistack.errors", "wsgistack.ids", "wsgistack.hosts", "wsgistack.contracts", "wsgistack.procfs")


@pytest.mark.parametrize("module", BOTTOM)
def test_the_bottom_is_stdlib_and_itself(module: str) -> None:
    assert reaches(module) <= set(BOTTOM), (module, sorted(reaches(module) - set(BOTTOM)))


def test_standalone_helpers_import_nothing_of_wsgistack() -> None:
    for module in under("wsgistack.standalone"):
        assert not reaches(module), (module, sorted(reaches(module)))


def test_the_runner_reaches_only_the_contracts() -> None:
    for module in under("wsgistack.runner"):
        assert reaches(module) <= set(BOTTOM), (module, sorted(reaches(module) - set(BOTTOM)))


def _forbidden(layer: str, *names: str) -> None:
    for module in under(layer):
        bad = sorted(m for m in reaches(module) if any(m == n or m.startswith(n + ".") for n in names))
        assert not bad, f"{module} reaches {bad}"


def test_plan_never_reaches_the_start_or_the_renderers() -> None:
    _forbidden("wsgistack.plan", "wsgistack.start", "wsgistack.render", "wsgistack.checks", "wsgistack.ops",
               "wsgistack.image", "wsgistack.cli", "wsgistack.runner")


def test_checks_never_reach_the_start_or_app_detection() -> None:
    _forbidden("wsgistack.checks", "wsgistack.start", "wsgistack.app.detect", "wsgistack.runner", "wsgistack.ops",
               "wsgistack.image", "wsgistack.cli")


def test_renderers_never_reach_ops_the_runner_or_the_start() -> None:
    _forbidden("wsgistack.render", "wsgistack.ops", "wsgistack.runner", "wsgistack.start", "wsgistack.checks",
               "wsgistack.image", "wsgistack.cli", "wsgistack.app.detect")


def test_config_layout_and_machine_stay_low() -> None:
    for layer in ("wsgistack.config", "wsgistack.layout", "wsgistack.machine", "wsgistack.tls", "wsgistack.app"):
        _forbidden(layer, "wsgistack.plan", "wsgistack.render", "wsgistack.checks", "wsgistack.start", "wsgistack.ops",
                   "wsgistack.image", "wsgistack.cli", "wsgistack.runner")


def test_start_never_reaches_ops_image_or_the_cli() -> None:
    _forbidden("wsgistack.start", "wsgistack.ops", "wsgistack.image", "wsgistack.cli")


def test_only_the_cli_reaches_the_cli() -> None:
    for module in MODULES:
        if not module.startswith("wsgistack.cli") and module != "wsgistack.__main__":
            assert not [m for m in reaches(module) if m.startswith("wsgistack.cli")], module


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
