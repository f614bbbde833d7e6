"""``wsgistack doctor [PATH]``: every check on the config, app, nginx config, permissions,
machine and Dockerfile, grouped by level, with a summary line; exit 1 at --fail-level."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from wsgistack.cli.console import Console, Text

from wsgistack import start
from wsgistack.checks import Level, Report
from wsgistack.cli.options import config_options, load, project_dir_argument

STYLES = {Level.CRITICAL: "bold red", Level.ERROR: "bold red", Level.WARNING: "yellow", Level.INFO: "cyan", Level.DEBUG: "dim"}
HEADINGS = {Level.CRITICAL: "CRITICALS", Level.ERROR: "ERRORS", Level.WARNING: "WARNINGS", Level.INFO: "INFOS", Level.DEBUG: "DEBUGS"}


@click.command()
@project_dir_argument
@click.option("--deploy", is_flag=True, help="also run the production checks (DEBUG, root, public listen, ...)")
@click.option(
    "--fail-level",
    type=click.Choice(list(Level.__members__), case_sensitive=False),
    default="ERROR",
    show_default=True,
    help="exit 1 when a finding is at this level or above",
)
@click.option("--silence", "silence", multiple=True, metavar="ID", help="hide findings with this id (repeatable) [silence]")
@click.option("--dockerfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Dockerfile to lint (default: PATH/Dockerfile)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@config_options
def command(
    path: Path, deploy: bool, fail_level: str, silence: tuple[str, ...], dockerfile: Path | None, as_json: bool, **params: Any
) -> None:
    """Check the app in PATH for problems before (or while) it runs, like Django's `check`."""
    loaded = load(path, params)
    report = start.doctor(loaded, env=os.environ, deploy=deploy, dockerfile=dockerfile, silenced=silence)
    threshold = Level.parse(fail_level)
    if as_json:
        click.echo(json.dumps(_as_dict(report, deploy, threshold), indent=2))
    else:
        _print(report, Console(soft_wrap=True, highlight=False), path, deploy)
    sys.exit(1 if report.at_least(threshold) else 0)


def _as_dict(report: Report, deploy: bool, threshold: Level) -> dict[str, Any]:
    return {
        "deploy": deploy,
        "fail_level": threshold.name,
        "failed": bool(report.at_least(threshold)),
        "summary": report.summary(),
        "counts": {level.name: report.count(level) for level in Level},
        "facts": report.facts,
        "findings": [f.to_dict() for f in report.findings],
        "silenced": [f.to_dict() for f in report.silenced],
        "seconds": round(report.seconds, 3),
    }


def _print(report: Report, console: Console, path: Path, deploy: bool) -> None:
    head = Text(f"wsgistack doctor: {path.resolve()}" + (" (deploy)" if deploy else ""), style="bold")
    console.print(head)
    if report.facts:
        console.print(Text(" · ".join(f"{k} {v}" for k, v in report.facts.items()), style="dim"))
    for level in sorted(Level, reverse=True):
        findings = [f for f in report.findings if f.level == level]
        if not findings:
            continue
        console.print()
        console.print(Text(f"{HEADINGS[level]}:", style=STYLES[level]))
        for finding in findings:
            first, *rest = finding.render().splitlines()
            label = f"{level.label}[{finding.id}]"
            line = Text()
            line.append(label, style=STYLES[level])
            line.append(first[len(label) :])
            console.print(line)
            for extra in rest:
                console.print(Text(extra, style="dim" if not extra.startswith("  hint:") else ""))
    console.print()
    console.print(Text(report.summary(), style="bold"))
