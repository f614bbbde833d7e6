"""A running compose fleet (`wsgistack compose --fleet`), as `wsgistack rollout --compose` sees it.

The containers are found by their compose labels (project, service); the balancer's settings
are read from its container's environment, the same values its entrypoint rendered haproxy.cfg
from, so the plan here names the same servers (node1..N, each the compose service of that
name). The runtime API is reached through one `docker exec -i` relay kept open for the whole
rollout. A node is replaced with ``docker-compose up -d --no-deps --no-build --force-recreate
nodeN`` with ``$APP_IMAGE`` set to the new image; it is ready when its new container's health
check passes (and, on host networking, its readiness path answers here). The new image is
written to the ``.env`` beside the compose file once every node runs it, so a later
``docker-compose up -d`` keeps it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wsgistack import hosts, ids
from wsgistack.config import load_config
from wsgistack.errors import MissingBinaryError, WsgistackError
from wsgistack.layout import BALANCER_PROJECT_DIR
from wsgistack.machine import Machine, find_tool
from wsgistack.ops.balance import RelayedRuntimeAPI
from wsgistack.ops.rollout import node_ready
from wsgistack.plan.balancer import BalancerPlan, Server, make_balancer_plan

IMAGE_VAR = "APP_IMAGE"  # render.compose.APP_IMAGE_VAR: the nodes' image in the fleet's compose file
BALANCER_SERVICE = "balancer"
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"


def default_project_name(compose_file: Path) -> str:
    """docker-compose's own default: the compose file's directory name, lowercased, [-_a-z0-9] only."""
    return re.sub(r"[^-_a-z0-9]", "", compose_file.resolve().parent.name.lower())


def _fail(message: str, hint: str = "") -> WsgistackError:
    return WsgistackError(ids.ROLLOUT_E005, message, hint or "bring the fleet up first (docker-compose up -d) and give "
                          "rollout the same compose file and project name (-p)")


@dataclass
class ComposeFleet:
    compose_file: Path
    project: str
    docker: str
    compose: list[str]  # docker-compose, or docker compose
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def find(cls, compose_file: Path, project: str = "", env: Mapping[str, str] | None = None) -> ComposeFleet:
        env = dict(os.environ if env is None else env)
        docker = find_tool("docker")
        if docker is None:
            raise MissingBinaryError(ids.DOCKER_E012, "docker is not installed (or not on PATH)",
                                     "rollout --compose replaces containers: run it where the fleet's Docker engine is")
        compose_bin = find_tool("docker-compose")
        compose = [compose_bin] if compose_bin else [docker, "compose"]
        if not compose_file.is_file():
            raise _fail(f"no compose file {compose_file}", "give the file `wsgistack compose --fleet` wrote: --compose compose.yaml")
        project = project or env.get("COMPOSE_PROJECT_NAME", "") or default_project_name(compose_file)
        return cls(compose_file.resolve(), project, docker, compose, env)

    # --- docker ------------------------------------------------------------------------------

    def _docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.docker, *args], capture_output=True, text=True, timeout=timeout, check=False)

    def containers(self, service: str) -> list[dict[str, str]]:
        """The service's containers, running first: {"id", "state"}."""
        out = self._docker("ps", "-a", "--filter", f"label={LABEL_PROJECT}={self.project}", "--filter",
                           f"label={LABEL_SERVICE}={service}", "--format", "{{.ID}}\t{{.State}}")
        if out.returncode != 0:
            raise _fail(f"docker ps failed: {out.stderr.strip()}")
        rows = [dict(zip(("id", "state"), line.split("\t"), strict=False)) for line in out.stdout.splitlines() if line]
        return sorted(rows, key=lambda r: r.get("state") != "running")

    def running(self, service: str) -> str:
        rows = [r for r in self.containers(service) if r.get("state") == "running"]
        if not rows:
            raise _fail(f"no running container of service {service!r} in compose project {self.project!r}")
        return rows[0]["id"]

    def inspect(self, container: str) -> dict[str, object]:
        out = self._docker("inspect", container)
        if out.returncode != 0:
            raise _fail(f"docker inspect {container} failed: {out.stderr.strip()}")
        return dict(json.loads(out.stdout)[0])

    # --- the balancer --------------------------------------------------------------------------

    def balancer(self) -> tuple[BalancerPlan, str]:
        """The balancer's plan, from its container's settings, and its container."""
        container = self.running(BALANCER_SERVICE)
        config = self.inspect(container).get("Config") or {}
        pairs = [item.partition("=") for item in (config.get("Env") or [])]  # type: ignore[union-attr]
        env = {k: v for k, _, v in pairs if k.startswith("WSGISTACK_") and k != "WSGISTACK_PROJECT_DIR"}
        if env.get("WSGISTACK_ROLE") != "balancer":
            raise _fail(f"service {BALANCER_SERVICE!r} of {self.project!r} does not run role balancer "
                        f"(WSGISTACK_ROLE={env.get('WSGISTACK_ROLE', '')!r})",
                        "render the file with `wsgistack compose --fleet N` and bring it up again")
        loaded = load_config(Path(str(BALANCER_PROJECT_DIR)), env=env)
        machine = Machine(cpus=1, memory_limit=None, somaxconn=4096, euid=0, nginx=None, python="python3", haproxy="haproxy")
        plan = make_balancer_plan(loaded, machine)
        for server in plan.servers:
            self.running(server.name)  # node1..N: the services the balancer's servers are named after
        return plan, container

    def runtime_api(self, container: str) -> RelayedRuntimeAPI:
        argv = [self.docker, "exec", "-i", container, "/opt/wsgistack/bin/wsgistack", "entrypoint", "--runtime-api"]
        return RelayedRuntimeAPI(argv, describe=f"docker exec -i {container} wsgistack entrypoint --runtime-api")

    def probe_address(self, plan: BalancerPlan) -> tuple[str, int]:
        """Where clients reach the balancer from here (host networking, or its published port)."""
        return hosts.split(hosts.connect_address(plan.config.balancer.host, plan.config.balancer.port))

    # --- the nodes ---------------------------------------------------------------------------

    def check_image(self, image: str) -> None:
        if image and self._docker("image", "inspect", image).returncode != 0:
            raise WsgistackError(
                ids.ROLLOUT_E006, f"image {image} is not on this Docker engine; nothing was touched",
                "build it first (wsgistack build -t IMAGE) or docker pull it: rollout --compose never pulls or builds",
            )

    def updater(self, plan: BalancerPlan, image: str) -> ContainerUpdater:
        return ContainerUpdater(self, plan, image)

    def keep_image(self, image: str) -> Path:
        """``APP_IMAGE=image`` in the .env beside the compose file (other lines kept, mode 600 when new)."""
        path = self.compose_file.parent / ".env"
        lines = path.read_text().splitlines() if path.is_file() else []
        kept = [line for line in lines if not line.strip().startswith(f"{IMAGE_VAR}=")] + [f"{IMAGE_VAR}={image}"]
        mode = path.stat().st_mode & 0o777 if path.is_file() else 0o600
        tmp = path.with_name(".env.wsgistack-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(kept) + "\n")
        os.chmod(tmp, mode)
        tmp.replace(path)
        return path


@dataclass
class ContainerUpdater:
    """rollout's Updater for a compose fleet: replace the node's container, ask its health."""

    fleet: ComposeFleet
    plan: BalancerPlan
    image: str
    _old: dict[str, str] = field(default_factory=dict)

    def argv(self, server: Server) -> list[str]:
        return [*self.fleet.compose, "-p", self.fleet.project, "-f", str(self.fleet.compose_file), "up", "-d",
                "--no-deps", "--no-build", "--force-recreate", server.name]

    def describe(self, server: Server) -> str:
        import shlex

        prefix = f"{IMAGE_VAR}={self.image} " if self.image else ""
        return prefix + shlex.join(self.argv(server))

    def update(self, server: Server) -> tuple[int, str]:
        self._old[server.name] = self.fleet.running(server.name)
        env = {**self.fleet.env, **({IMAGE_VAR: self.image} if self.image else {})}
        done = subprocess.run(self.argv(server), capture_output=True, text=True, env=env, cwd=self.fleet.compose_file.parent,
                              timeout=600, check=False)
        return done.returncode, done.stdout + done.stderr

    def ready(self, server: Server) -> str:
        try:
            container = self.fleet.running(server.name)
        except WsgistackError:
            return "no running container yet"
        if container == self._old.get(server.name):
            return "still the old container"
        info = self.fleet.inspect(container)
        state = info.get("State") or {}
        health = (state.get("Health") or {}).get("Status") if isinstance(state, dict) else None  # type: ignore[union-attr]
        if health is not None and health != "healthy":
            return f"container {health}"
        host_config = info.get("HostConfig") or {}
        if isinstance(host_config, dict) and host_config.get("NetworkMode") == "host":
            return node_ready(self.plan, server)  # its readiness path, asked here too
        return ""
