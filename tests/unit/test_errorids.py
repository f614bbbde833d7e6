"""Error ids are declared once (wsgistack.ids), used by name, and generated into docs/errors.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from wsgistack.ids import markdown
from wsgistack.errors import ERRORS, WsgistackError

SRC = Path(__file__).resolve().parents[2] / "src" / "wsgistack"
DOC = SRC.parents[1] / "docs" / "errors.md"
ID = re.compile(r"^[a-z]+\.[EWI]\d{3}$")


def test_the_doc_is_the_generated_one() -> None:
    assert DOC.read_text() == markdown(), "regenerate it: python -m wsgistack.ids > docs/errors.md"


def test_no_error_id_is_a_literal_outside_the_declarations() -> None:
    """Raise sites name the declared constant (ids.RUN_E002), so every id a user can see has
    a docs entry; the checks declare theirs in checks/ (docs/doctor.md)."""
    literals = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "checks" or rel.name == "ids.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ID.match(node.value):
                literals.append(f"{rel}:{node.lineno} {node.value}")
    assert not literals, f"declare these in wsgistack/ids.py and use the constant: {literals}"


def test_an_id_means_one_thing() -> None:
    from wsgistack.checks import MESSAGES

    assert not set(ERRORS) & set(MESSAGES), "an error id is also a check id"


def test_a_raise_site_without_a_hint_gets_the_declared_one() -> None:
    from wsgistack import ids

    assert WsgistackError(ids.OPS_E002, "x").hint == ids.OPS_E002.hint
    assert WsgistackError(ids.OPS_E002, "x", "specific").hint == "specific"
    assert WsgistackError(ids.OPS_E002, "x").id == "ops.E002"
