"""docs/doctor.md is generated from the declared messages and lists every id."""

from __future__ import annotations

from pathlib import Path

from wsgistack.checks import MESSAGES
from wsgistack.checks.docs import markdown

DOC = Path(__file__).resolve().parents[3] / "docs" / "doctor.md"


def test_the_doc_lists_every_registered_id() -> None:
    text = DOC.read_text()
    missing = [i for i in MESSAGES if f"| `{i}` |" not in text]
    assert not missing, f"docs/doctor.md lacks {missing}: python -m wsgistack.checks.docs > docs/doctor.md"


def test_the_doc_is_the_generated_one() -> None:
    assert DOC.read_text() == markdown(), "regenerate it: python -m wsgistack.checks.docs > docs/doctor.md"
