"""`wsgistack rollout --compose`'s parts that need no Docker engine: the project name as
docker-compose derives it, the image kept in .env, the replace command, the usage errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsgistack.ops.fleet import ComposeFleet, ContainerUpdater, default_project_name
from wsgistack.plan.balancer import Server


def test_the_project_name_is_docker_composes_default(tmp_path: Path) -> None:
    d = tmp_path / "My Shop_v2.prod"
    d.mkdir()
    assert default_project_name(d / "compose.yaml") == "myshop_v2prod"


def test_the_new_image_is_kept_in_dotenv_beside_the_file_other_lines_untouched(tmp_path: Path) -> None:
    fleet = ComposeFleet(tmp_path / "compose.yaml", "shop", "docker", ["docker-compose"], {})
    env = tmp_path / ".env"
    env.write_text("DJANGO_SECRET_KEY=s3cret\nAPP_IMAGE=shop:v1\nDB_PASSWORD=pw\n")
    env.chmod(0o600)
    fleet.keep_image("shop:v2")
    assert env.read_text() == "DJANGO_SECRET_KEY=s3cret\nDB_PASSWORD=pw\nAPP_IMAGE=shop:v2\n"
    assert env.stat().st_mode & 0o777 == 0o600  # it holds secrets: its mode stays
    env.unlink()
    fleet.keep_image("shop:v3")
    assert env.read_text() == "APP_IMAGE=shop:v3\n" and env.stat().st_mode & 0o777 == 0o600


def test_a_node_is_replaced_by_compose_alone_with_the_new_image(tmp_path: Path) -> None:
    fleet = ComposeFleet(tmp_path / "compose.yaml", "shop", "docker", ["docker-compose"], {"PATH": os.environ["PATH"]})
    updater = ContainerUpdater(fleet, plan=None, image="shop:v2")  # type: ignore[arg-type]
    server = Server("node2", "127.0.0.1", 8002)
    assert updater.argv(server) == ["docker-compose", "-p", "shop", "-f", str(tmp_path / "compose.yaml"), "up", "-d",
                                    "--no-deps", "--no-build", "--force-recreate", "node2"]
    assert updater.describe(server).startswith("APP_IMAGE=shop:v2 docker-compose -p shop")


@pytest.mark.parametrize("args, says", [
    (["--image", "shop:v2"], "--image and --project-name go with --compose"),
    (["--compose", "compose.yaml", "--command", "true"], "--compose replaces containers itself"),
])
def test_rollout_usage_errors(tmp_path: Path, args: list[str], says: str) -> None:
    from wsgistack.cli import main

    (tmp_path / "compose.yaml").write_text("version: '3.7'\n")
    out = CliRunner().invoke(main, ["rollout", str(tmp_path), *[a if a != "compose.yaml" else str(tmp_path / a) for a in args]])
    assert out.exit_code == 2 and "error[docker.E010]" in out.output and says in out.output, out.output
