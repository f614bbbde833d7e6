"""docs/settings.md and the command-line flags come from the model's field declarations."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from wsgistack.cli import main
from wsgistack.cli.options import ALL_OPTIONS, CONFIG_OPTIONS, model_options
from wsgistack.config.docs import markdown
from wsgistack.config.envvars import env_name
from wsgistack.config.sources import FIELDS

DOC = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


def test_the_doc_is_the_generated_one() -> None:
    assert DOC.read_text() == markdown(), "regenerate it: python -m wsgistack.config.docs > docs/settings.md"


def test_the_doc_lists_every_setting_with_its_env_var() -> None:
    text = DOC.read_text()
    for dotted in FIELDS:
        assert f"| `{dotted}` |" in text and f"`{env_name(dotted)}`" in text, dotted


def test_flags_and_their_help_come_from_the_model() -> None:
    flags = {flag: dotted for flag, dotted, _help, _multiple in ALL_OPTIONS}
    assert flags["--port"] == "server.port" and flags["--migrate"] == "app.migrate" and flags["--ingress-host"] == "kube.hosts"
    assert len(flags) == len(ALL_OPTIONS), "a flag is declared on two settings"
    run_help = CliRunner().invoke(main, ["run", "--help"], terminal_width=200).output
    for flag, dotted, help_text, _multiple in (*CONFIG_OPTIONS, *model_options("run")):
        assert flag in run_help and f"[{dotted}]" in run_help, flag
        assert help_text.split()[0] in run_help
    assert "--migrate / --no-migrate" in run_help  # booleans get both forms
    render_help = CliRunner().invoke(main, ["render", "--help"]).output
    assert "--migrate" not in render_help  # run's own flags stay run's
    kube_help = CliRunner().invoke(main, ["kube", "--help"]).output
    assert all(flag in kube_help for flag, *_ in model_options("kube"))
