"""``wsgistack kube [PATH] --image IMG --out deploy/``: a kustomize base for Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wsgistack.cli.options import model_options, overrides, table_options

# (flag, dotted config key, help, multiple): each flag sets one kube.* setting.
KUBE_OPTIONS = model_options("kube")  # declared on the [kube] settings (config/model.py)


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@table_options(KUBE_OPTIONS)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="config file (default: wsgistack.toml or [tool.wsgistack] in pyproject.toml)")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("deploy"), show_default=True,
              help="directory the kustomize base is written to")
@click.option("--no-detect", is_flag=True, help="do not import the app to find its static and media dirs")
def command(path: Path, out: Path, no_detect: bool, **params: Any) -> None:
    """Write Kubernetes manifests (a kustomize base) for the image, from this project's config.

    Deployment (probes, graceful rollout, restricted security), Service, ConfigMap,
    PodDisruptionBudget, the migration Job, and an HPA / Ingress when configured
    ([kube] in wsgistack.toml, WSGISTACK_KUBE__*, or the flags). Apply with
    `kubectl apply -k DIR`. docs/kubernetes.md explains each choice.
    """
    from wsgistack.cli.options import load
    from wsgistack.container.kube import render_kube
    from wsgistack.container.project import find_facts
    from wsgistack.render import write_files

    loaded = load(path, params, extra=overrides(params, KUBE_OPTIONS))
    facts = find_facts(path, detect=not no_detect)
    for note in facts.notes:
        click.echo(f"wsgistack | {note}", err=True)
    files = render_kube(loaded.config, facts)
    for written in write_files(files, out):
        click.echo(str(written))
