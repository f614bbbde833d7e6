"""`wsgistack compose --fleet N`: seed 004's whole topology in one compose file (pure render),
with the build contexts it names (the balancer's image, MariaDB's with --offline)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.container.test_container import FACTS
from wsgistack.errors import WsgistackError
from wsgistack.plan.image import WsgistackSource
from wsgistack.render.compose import FleetOptions, render_fleet

yaml = pytest.importorskip("yaml")

SOURCE = WsgistackSource(wheel="wsgistack-0.1.0-py3-none-any.whl", dependencies=("click>=8.1", "Jinja2>=3.1"))
SECRETS = {"DJANGO_SECRET_KEY": "k", "DB_PASSWORD": "p", "DB_ROOT_PASSWORD": "r", "DB_REPLICATION_PASSWORD": "q"}
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
COMPOSE = shutil.which("docker-compose")


def files(**options: object) -> dict[str, str]:
    return {f.path: f.content for f in render_fleet(FACTS, FleetOptions(image="shop", **options), SOURCE)}  # type: ignore[arg-type]


def fleet(**options: object) -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load(files(**options)["compose.yaml"]))


def test_balancer_nodes_and_database_pair() -> None:
    doc = fleet(nodes=3)
    services = doc["services"]
    assert set(services) == {"balancer", "node1", "node2", "node3", "db-primary", "db-replica"}
    ports = [services[f"node{i}"]["environment"]["PORT"] for i in (1, 2, 3)]
    assert ports == ["8001", "8002", "8003"]
    for i in (1, 2, 3):
        node = services[f"node{i}"]
        env = node["environment"]
        assert env["WSGISTACK_SERVER__TRUSTED_PROXIES"] == "127.0.0.1" and env["WSGISTACK_DRAIN_DELAY"] == "3"
        assert env["DATABASE_URL"].endswith("@127.0.0.1:3306/app") and env["DATABASE_REPLICA_URLS"].endswith(":3307/app")
        assert node["network_mode"] == "host"
        assert "media:/app/var/media" in node["volumes"]  # uploads shared by every node
        assert f"node{i}-data:/data" in node["volumes"]  # its own data, a named volume (not an anonymous one)
        assert node["image"] == "${APP_IMAGE:-shop}"  # the rollout sets it, .env keeps it
        # One secret for every node, required: sessions and CSRF tokens hold whichever node serves.
        assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
        assert node["healthcheck"]["interval"] == "2s"  # not the image's 30 s: nodes 2..N wait for node 1
    assert "WSGISTACK_APP__MIGRATE" not in services["node1"]["environment"]
    assert services["node2"]["environment"]["WSGISTACK_APP__MIGRATE"] == "false"
    assert services["node2"]["depends_on"]["node1"] == {"condition": "service_healthy"}
    assert "build" in services["node1"] and "build" not in services["node2"]
    replica = services["db-replica"]["environment"]
    assert (replica["MARIADB_MASTER_HOST"], replica["MARIADB_MASTER_PORT"]) == ("127.0.0.1", "3306")
    assert "--read-only=1" in services["db-replica"]["command"]
    assert services["db-primary"]["image"] == "mariadb:10.11"  # online: the official image
    balancer = services["balancer"]
    assert balancer["image"] == "${BALANCER_IMAGE:-wsgistack-balancer:0.1.0}"
    assert balancer["build"]["context"] == ".wsgistack/balancer"
    env = balancer["environment"]
    assert env["WSGISTACK_BALANCER__NODES"] == "127.0.0.1:8001 127.0.0.1:8002 127.0.0.1:8003"
    assert (env["WSGISTACK_BALANCER__PORT"], env["WSGISTACK_BALANCER__STATS_PORT"]) == ("8080", "9080")
    assert set(doc["volumes"]) == {"media", "node1-data", "node2-data", "node3-data", "db-primary", "db-replica"}


def test_the_balancer_image_is_role_balancer_on_the_app_images_builder_layers() -> None:
    """Its own small image (no nginx, no app environment), on the same base and with the same
    first builder instructions as the app's image: Docker builds those layers once."""
    from wsgistack.render.dockerfile import DockerfileOptions, render_dockerfile

    dockerfile = files(nodes=2)[".wsgistack/balancer/Dockerfile"]
    assert "WSGISTACK_ROLE=balancer" in dockerfile and "apt-get install -y --no-install-recommends python3 haproxy" in dockerfile
    assert "nginx" not in dockerfile.split("FROM scratch")[1] and "/opt/venv" not in dockerfile.split("FROM scratch")[1]
    assert 'ENTRYPOINT ["/opt/wsgistack/bin/wsgistack", "entrypoint"]' in dockerfile
    assert f"COPY {SOURCE.wheel} /tmp/wheels/" in dockerfile
    app = render_dockerfile(FACTS, SOURCE, DockerfileOptions())[0].content

    def instructions(text: str, upto: str) -> list[str]:
        lines = [line for line in text.split(upto)[0].splitlines() if line and not line.startswith("#")]
        return lines

    shared = instructions(app, "# 2. Your requirements")
    assert shared and instructions(dockerfile, "# 2. wsgistack itself") == shared


def test_offline_builds_mariadb_from_debian_with_the_same_wiring() -> None:
    rendered = files(nodes=3, offline=True)
    services = yaml.safe_load(rendered["compose.yaml"])["services"]
    primary, replica = services["db-primary"], services["db-replica"]
    assert primary["image"] == replica["image"] == "${DB_IMAGE:-wsgistack-mariadb:10.11}"
    assert primary["build"]["context"] == ".wsgistack/mariadb" and "build" not in replica  # built once, used twice
    assert primary["healthcheck"]["test"] == ["CMD", "wsgistack-mariadb-healthcheck"]
    assert (replica["environment"]["MARIADB_MASTER_HOST"], replica["environment"]["MARIADB_MASTER_PORT"]) == ("127.0.0.1", "3306")
    assert "FROM debian:bookworm-slim" in rendered[".wsgistack/mariadb/Dockerfile"]
    assert "mariadb-server" in rendered[".wsgistack/mariadb/Dockerfile"]
    entry = rendered[".wsgistack/mariadb/entrypoint.sh"]
    assert "MASTER_USE_GTID=slave_pos" in entry and "MARIADB_REPLICATION_USER" in entry
    modes = {f.path: f.mode for f in render_fleet(FACTS, FleetOptions(image="shop", offline=True), SOURCE)}
    assert modes[".wsgistack/mariadb/entrypoint.sh"] == modes[".wsgistack/mariadb/healthcheck.sh"] == 0o755
    # Every image of the offline file is built here: none would be pulled.
    assert all("build" in services[name] or services[name]["image"] in (services["node1"]["image"], primary["image"])
               for name in services)
    assert ".wsgistack/mariadb/Dockerfile" not in files(nodes=3)  # online: the official image


def test_compose_network_mode_reaches_services_by_name() -> None:
    doc = fleet(nodes=2, network="bridge")
    services = doc["services"]
    assert not any("network_mode" in s for s in services.values())
    balancer = services["balancer"]
    assert balancer["environment"]["WSGISTACK_BALANCER__NODES"] == "node1:8080 node2:8080"
    assert balancer["environment"]["WSGISTACK_BALANCER__RESOLVER"] == "127.0.0.11:53"  # a replaced node's new address
    assert balancer["ports"] == ["0.0.0.0:8080:8080", "0.0.0.0:9080:9080"]
    assert all("ports" not in services[n] for n in ("node1", "node2", "db-primary", "db-replica"))
    node = services["node1"]["environment"]
    assert node["PORT"] == "8080" and node["WSGISTACK_SERVER__HOST"] == "0.0.0.0"
    assert node["WSGISTACK_SERVER__TRUSTED_PROXIES"] == "${FLEET_SUBNET:-172.30.23.0/24}"
    assert node["DATABASE_URL"].endswith("@db-primary:3306/app") and node["DATABASE_REPLICA_URLS"].endswith("@db-replica:3306/app")
    assert services["db-replica"]["environment"]["MARIADB_MASTER_HOST"] == "db-primary"
    assert doc["networks"]["default"]["ipam"]["config"] == [{"subnet": "${FLEET_SUBNET:-172.30.23.0/24}"}]


def test_without_db_with_cassandra() -> None:
    services = fleet(nodes=2, db=False, cassandra=True)["services"]
    assert set(services) == {"balancer", "node1", "node2", "cassandra"}
    assert services["node1"]["environment"]["POSTS_BACKEND"] == "cassandra"
    assert "DATABASE_URL" not in services["node1"]["environment"]


def test_bad_options_are_refused() -> None:
    for options in ({"nodes": 3, "port": 8002}, {"nodes": 3, "offline": True, "cassandra": True}, {"network": "overlay"},
                    {"secret_env": "not a name"}, {"port": 9080}):
        with pytest.raises(WsgistackError):
            render_fleet(FACTS, FleetOptions(image="shop", **options), SOURCE)  # type: ignore[arg-type]


def _balancer_cfg(compose: dict, tmp_path: Path) -> Path:  # type: ignore[type-arg]
    """The haproxy.cfg the balancer's entrypoint renders from its service's environment."""
    from wsgistack.config import load_config
    from wsgistack.machine import Machine
    from wsgistack.plan.balancer import make_balancer_plan
    from wsgistack.render.balancer import render_balancer

    env = {**compose["services"]["balancer"]["environment"], "WSGISTACK_BALANCER__STATS_AUTH": "",
           "WSGISTACK_RUNTIME_DIR": str(tmp_path), "WSGISTACK_ROLE": "balancer"}
    machine = Machine(cpus=1, memory_limit=None, somaxconn=4096, euid=os.geteuid(), nginx=None, python="python3",
                      haproxy=HAPROXY or "haproxy")
    plan = make_balancer_plan(load_config(Path("/nonexistent"), env=env), machine)
    cfg = {f.path: f.content for f in render_balancer(plan)}["haproxy.cfg"]
    (tmp_path / "haproxy.cfg").write_text(cfg)
    return tmp_path / "haproxy.cfg"


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
@pytest.mark.parametrize("network", ["host", "bridge"])
def test_the_balancer_config_of_the_file_passes_haproxy_c(tmp_path: Path, network: str) -> None:
    cfg = _balancer_cfg(fleet(nodes=3, network=network), tmp_path)
    text = cfg.read_text()
    for i in (1, 2, 3):
        assert f"server node{i} " + (f"127.0.0.1:800{i}" if network == "host" else f"node{i}:8080") in text
    out = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)  # type: ignore[list-item]
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose not installed")
@pytest.mark.parametrize("options", [{"cassandra": True}, {"offline": True}, {"network": "bridge"},
                                     {"offline": True, "network": "bridge", "db": False}])
def test_docker_compose_reads_it(tmp_path: Path, options: dict[str, object]) -> None:
    for f in render_fleet(FACTS, FleetOptions(image="shop", nodes=3, **options), SOURCE):  # type: ignore[arg-type]
        (tmp_path / f.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f.path).write_text(f.content)
    env = {**os.environ, **SECRETS}
    out = subprocess.run([COMPOSE, "-f", str(tmp_path / "compose.yaml"), "config", "-q"], capture_output=True,  # type: ignore[list-item]
                         text=True, cwd=tmp_path, timeout=60, env=env)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose not installed")
def test_up_refuses_a_fleet_without_its_shared_secret(tmp_path: Path) -> None:
    """No secret, no fleet: each node would make up its own key and sessions would not carry."""
    (tmp_path / "compose.yaml").write_text(files(nodes=2)["compose.yaml"])
    env = {k: v for k, v in os.environ.items() if k not in SECRETS} | {k: v for k, v in SECRETS.items() if k != "DJANGO_SECRET_KEY"}
    out = subprocess.run([COMPOSE, "-f", str(tmp_path / "compose.yaml"), "config", "-q"], capture_output=True,  # type: ignore[list-item]
                         text=True, cwd=tmp_path, timeout=60, env=env)
    assert out.returncode != 0 and "set DJANGO_SECRET_KEY in .env" in out.stderr, out.stderr


def test_bad_fleet_options_are_usage_errors(tmp_path: Path) -> None:
    """Bad input exits 2 with an id and a hint; --split and --tls are not silently ignored."""
    from click.testing import CliRunner

    from wsgistack.cli import main

    (tmp_path / "app.py").write_text("def app(environ, start_response):\n    return []\n")
    runner = CliRunner()
    for args, says in ((["--fleet", "0"], "between 1 and 50 nodes"),
                       (["--fleet", "3", "--split"], "--fleet does not combine with --split"),
                       (["--fleet", "3", "--tls", "self-signed"], "--fleet does not combine with --tls self-signed"),
                       (["--fleet", "3", "--port", "8002", "--network", "host"], "collide"),
                       (["--fleet", "3", "--offline", "--cassandra"], "Debian ships no Cassandra")):
        out = runner.invoke(main, ["compose", str(tmp_path), "--no-detect", *args])
        assert out.exit_code == 2, (args, out.output)
        assert "error[docker.E010]" in out.output and "hint:" in out.output and says in out.output, (args, out.output)


def test_the_cli_writes_the_build_contexts_into_the_project(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wsgistack.cli import main

    (tmp_path / "app.py").write_text("def app(environ, start_response):\n    return []\n")
    out = CliRunner().invoke(main, ["compose", str(tmp_path), "--no-detect", "--fleet", "2", "--offline", "--network", "host",
                                    "-o", str(tmp_path / "compose.yaml")])
    assert out.exit_code == 0, out.output
    balancer = tmp_path / ".wsgistack" / "balancer"
    assert (balancer / "Dockerfile").is_file() and len(list(balancer.glob("wsgistack-*.whl"))) == 1
    assert os.access(tmp_path / ".wsgistack" / "mariadb" / "entrypoint.sh", os.X_OK)
    services = yaml.safe_load((tmp_path / "compose.yaml").read_text())["services"]
    assert services["node1"]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")  # not Django: SECRET_KEY
