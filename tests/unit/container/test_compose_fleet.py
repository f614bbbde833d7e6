"""`wsgistack compose --fleet N`: seed 004's whole topology in one compose file (pure render)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.container.test_container import FACTS
from wsgistack.render.compose import FleetOptions, render_fleet
from wsgistack.errors import WsgistackError

yaml = pytest.importorskip("yaml")


def fleet(**options: object) -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load(render_fleet(FACTS, FleetOptions(image="shop", **options)).content))  # type: ignore[arg-type]


def test_balancer_nodes_and_database_pair() -> None:
    doc = fleet(nodes=3)
    services = doc["services"]
    assert set(services) == {"balancer", "node1", "node2", "node3", "db-primary", "db-replica"}
    ports = [services[f"node{i}"]["environment"]["PORT"] for i in (1, 2, 3)]
    assert ports == ["8001", "8002", "8003"]
    for i in (1, 2, 3):
        env = services[f"node{i}"]["environment"]
        assert env["WSGISTACK_SERVER__TRUSTED_PROXIES"] == "127.0.0.1" and env["WSGISTACK_DRAIN_DELAY"] == "3"
        assert env["DATABASE_URL"].endswith("@127.0.0.1:3306/app") and env["DATABASE_REPLICA_URLS"].endswith(":3307/app")
        assert services[f"node{i}"]["network_mode"] == "host"
        assert "media:/app/var/media" in services[f"node{i}"]["volumes"]  # uploads shared by every node
    assert "WSGISTACK_APP__MIGRATE" not in services["node1"]["environment"]
    assert services["node2"]["environment"]["WSGISTACK_APP__MIGRATE"] == "false"
    assert services["node2"]["depends_on"]["node1"] == {"condition": "service_healthy"}
    replica = services["db-replica"]["environment"]
    assert (replica["MARIADB_MASTER_HOST"], replica["MARIADB_MASTER_PORT"]) == ("127.0.0.1", "3306")
    assert "--read-only=1" in services["db-replica"]["command"]
    cfg = services["balancer"]["environment"]["HAPROXY_CFG"]
    for i in (1, 2, 3):
        assert f"server node{i} 127.0.0.1:800{i}" in cfg
    assert "bind 0.0.0.0:8080" in cfg and "bind 0.0.0.0:9080" in cfg


def test_without_db_with_cassandra() -> None:
    services = fleet(nodes=2, db=False, cassandra=True)["services"]
    assert set(services) == {"balancer", "node1", "node2", "cassandra"}
    assert services["node1"]["environment"]["POSTS_BACKEND"] == "cassandra"
    assert "DATABASE_URL" not in services["node1"]["environment"]


def test_ports_that_collide_with_the_nodes_are_refused() -> None:
    with pytest.raises(WsgistackError):
        render_fleet(FACTS, FleetOptions(image="shop", nodes=3, port=8002))


@pytest.mark.skipif(shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(), reason="haproxy not installed")
def test_the_balancer_config_in_the_file_passes_haproxy_c(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(fleet(nodes=3)["services"]["balancer"]["environment"]["HAPROXY_CFG"])
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    out = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_reads_it(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(render_fleet(FACTS, FleetOptions(image="shop", nodes=3, cassandra=True)).content)
    out = subprocess.run(["docker-compose", "-f", str(tmp_path / "compose.yaml"), "config", "-q"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr


def test_bad_fleet_options_are_usage_errors(tmp_path: Path) -> None:
    """Bad input exits 2 with an id and a hint; --split and --tls are not silently ignored."""
    from click.testing import CliRunner

    from wsgistack.cli import main

    (tmp_path / "app.py").write_text("def app(environ, start_response):\n    return []\n")
    runner = CliRunner()
    for args, says in ((["--fleet", "0"], "between 1 and 50 nodes"),
                       (["--fleet", "3", "--split"], "--fleet does not combine with --split"),
                       (["--fleet", "3", "--tls", "self-signed"], "--fleet does not combine with --tls self-signed"),
                       (["--fleet", "3", "--port", "8002"], "collide")):
        out = runner.invoke(main, ["compose", str(tmp_path), "--no-detect", *args])
        assert out.exit_code == 2, (args, out.output)
        assert "error[docker.E010]" in out.output and "hint:" in out.output and says in out.output, (args, out.output)
