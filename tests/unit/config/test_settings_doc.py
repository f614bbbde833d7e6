"""docs/settings.md and the command-line flags come from the model's field declarations."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from wsgistack.cli import main
from wsgistack.cli.options import CONFIG_OPTIONS, command_options, model_options
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
    for command in (None, "run", "kube", "balance", "rollout"):
        rows = command_options(command)
        assert len({flag for flag, *_ in rows}) == len(rows), f"a flag of {command} is declared on two settings"
    run = {flag: dotted for flag, dotted, _help, _multiple in command_options("run")}
    assert run["--port"] == "server.port" and run["--migrate"] == "app.migrate"
    assert {flag: dotted for flag, dotted, *_ in command_options("kube")}["--ingress-host"] == "kube.hosts"
    assert {flag: dotted for flag, dotted, *_ in command_options("balance")}["--port"] == "balancer.port"
    run_help = CliRunner().invoke(main, ["run", "--help"], terminal_width=200).output
    for flag, dotted, help_text, _multiple in (*CONFIG_OPTIONS, *model_options("run")):
        assert flag in run_help and f"[{dotted}]" in run_help, flag
        assert help_text.split()[0] in run_help
    assert "--migrate / --no-migrate" in run_help  # booleans get both forms
    render_help = CliRunner().invoke(main, ["render", "--help"]).output
    assert "--migrate" not in render_help  # run's own flags stay run's
    kube_help = CliRunner().invoke(main, ["kube", "--help"]).output
    assert all(flag in kube_help for flag, *_ in model_options("kube"))
