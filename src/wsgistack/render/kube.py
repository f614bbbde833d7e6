"""Kubernetes manifests (a kustomize base) from the same config and image: a pure render.

``render_kube(config, facts) -> list[RenderedFile]``; ``wsgistack kube`` writes them. Every
number that must agree with another is computed here, once: the grace period from the
preStop pause and the stop's own budget (plan/stop.py: nginx, then uWSGI, each within
``stop_timeout``; a worker's process within its own), the probes' paths and Host from the server settings the
pod receives in its ConfigMap, the startup budget from which the nginx container's upstream
wait follows. The templates (render/templates/kube/) only place them, with the reason for
each choice in a comment. docs/kubernetes.md explains them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wsgistack import __version__, ids
from wsgistack.config.model import Config
from wsgistack.errors import ConfigError, WsgistackError
from wsgistack.layout import IMAGE_PORT, IMAGE_RUNTIME_DIR, IMAGE_UID, SHARED_DIR, Paths
from wsgistack.plan.image import ProjectFacts
from wsgistack.plan.stop import stop_plan
from wsgistack.render import RenderedFile, environment

DRAIN_MARKER = PurePosixPath(Paths(Path(IMAGE_RUNTIME_DIR)).drain)  # readiness answers 503 while it exists
# Seconds the kubelet gives the manager beyond pause + the longest stop (plan/stop.py, which
# counts the wait for a SIGKILLed process already): the manager's own exit and cleanup. The
# grace period is a deadline, so a margin costs nothing.
GRACE_MARGIN = 5
# split: the app container pauses this much longer than nginx, so uWSGI still accepts while
# nginx passes on what it accepted just before it stopped.
SPLIT_APP_EXTRA_PAUSE = 2
# The image's own health probe (Dockerfile.j2's HEALTHCHECK): exec probes run the same command.
HEALTHCHECK = ("python3", "-I", "-S", "/opt/wsgistack/wsgistack-healthcheck.py")
STARTUP_PERIOD = 5
MIGRATE_DEADLINE = 3600  # a migration Job that runs an hour is stuck, not slow
JOB_TTL = 7 * 24 * 3600  # keep a finished Job (and its logs) a week
# nginx's own container in the split layout: it serves files and proxies, nothing more.
NGINX_RESOURCES = {"cpu": "50m", "memory": "32Mi", "memory_limit": "128Mi"}


@dataclass(frozen=True)
class Volume:
    name: str
    path: str
    claim: str = ""  # a PersistentVolumeClaim instead of an emptyDir
    read_only: bool = False
    served: bool = True  # nginx serves it at a URL (static, media); not a directory only the app writes


@dataclass(frozen=True)
class Container:
    name: str
    role: str  # WSGISTACK_ROLE: all | app | web
    env: tuple[tuple[str, str], ...]
    volumes: tuple[Volume, ...]
    resources: dict[str, str]
    pause: int  # preStop seconds
    http: bool  # serves HTTP on the pod's port: probes go through it
    drain: bool  # its preStop writes the drain marker (it answers readiness)
    secrets: bool = True  # gets the Secret's variables (nginx alone runs no app code: none)


@dataclass(frozen=True)
class Worker:
    """A background process ([processes.NAME]) in a Deployment of its own (role worker)."""

    process: str  # NAME
    name: str  # the Deployment's name
    env: tuple[tuple[str, str], ...]
    grace: int


def k8s_name(text: str) -> str:
    """A DNS label from a directory name (django_demo -> django-demo)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-") or "app"


def probe_host(server_names: tuple[str, ...]) -> str:
    """The Host header the probes send: the first plain name the app serves (no wildcard)."""
    for name in server_names:
        if "*" not in name and not name.startswith("."):
            return name
    return "localhost"


def _problems(config: Config) -> list[WsgistackError]:
    kube = config.kube
    problems = []
    if not kube.image:
        problems.append(WsgistackError(
            ids.KUBE_E001, "no image for the manifests",
            "pass --image registry.example.com/shop:1.4 (the image `wsgistack build` made, pushed to a registry "
            "the cluster can pull from), or set kube.image / WSGISTACK_KUBE__IMAGE"))
    names = config.server.server_names
    if "*" not in names:
        for host in kube.hosts:
            wild = [n for n in names if n.startswith("*.") and host.endswith(n[1:])]
            if host not in names and not wild:
                problems.append(WsgistackError(
                    ids.KUBE_E002, f"kube.hosts names {host!r}, which server.server_names does not serve "
                    f"({' '.join(names)}): nginx would refuse every request the Ingress sends",
                    f"add {host!r} to server.server_names (or WSGISTACK_SERVER__SERVER_NAMES)"))
    if kube.autoscale_max and kube.autoscale_min > kube.autoscale_max:
        problems.append(WsgistackError(
            ids.KUBE_E003, f"kube.autoscale_min ({kube.autoscale_min}) is above kube.autoscale_max ({kube.autoscale_max})",
            "make the minimum at most the maximum"))
    if kube.autoscale_min and not kube.autoscale_max:
        problems.append(WsgistackError(
            ids.KUBE_E003, "kube.autoscale_min is set without kube.autoscale_max", "set both bounds, or neither (no HPA)"))
    for key in kube.env:
        dotted = _setting_of(key)
        if dotted in MANIFEST_SETTINGS:
            problems.append(WsgistackError(
                ids.KUBE_E006, f"kube.env sets {key} ({dotted}), which the manifests set themselves: the probes, "
                "the grace period or the pod's role would no longer match what the pod runs",
                f"drop {key} from kube.env: the manifests derive it from the config (docs/kubernetes.md says from "
                "which setting), so change that setting and regenerate"))
    if kube.layout == "split" and config.uwsgi.socket == "tcp":
        problems.append(WsgistackError(
            ids.KUBE_E004, "kube.layout = split shares uWSGI's unix socket through an emptyDir; uwsgi.socket is tcp",
            "use uwsgi.socket = unix (the default) with the split layout"))
    if config.tls.mode != "off":
        problems.append(WsgistackError(
            ids.KUBE_E005, f"tls.mode = {config.tls.mode}: on Kubernetes the Ingress terminates TLS and the pods serve plain "
            "HTTP (each replica would otherwise hold, or with acme request, its own certificate, lost with the pod)",
            "set tls.mode = off for the manifests, and give the Ingress its certificate: kube.hosts + kube.tls_secret "
            "(a Secret you create, or cert-manager's); docs/tls.md"))
    return problems


# Settings the manifests give the pods themselves (ConfigMap or container env): kube.env may
# not set them, or the probes, grace period and roles would disagree with what runs.
MANIFEST_SETTINGS = frozenset({
    "server.port", "server.host", "server.server_names", "server.live_path", "server.ready_path", "stop_timeout",
    "role", "process", "runtime_dir", "run_processes", "app.migrate", "app.collectstatic", "uwsgi.uri",
    "upstream_wait", "server.static",
})


def _setting_of(variable: str) -> str:
    """The setting an environment variable sets (WSGISTACK_X__Y or an alias such as PORT)."""
    from wsgistack.config.envvars import ALIASES, PREFIX, dotted_from_env

    for alias, dotted in ALIASES:
        if alias == variable:
            return dotted
    return dotted_from_env(variable) if variable.startswith(PREFIX) else ""


def _configmap(config: Config) -> dict[str, str]:
    """What every container reads: the settings the manifests depend on (so the probes and the
    grace period agree with the server by construction), then kube.env."""
    data = {
        "PORT": str(IMAGE_PORT),
        "WSGISTACK_SERVER__SERVER_NAMES": json.dumps(list(config.server.server_names)),
        "WSGISTACK_STOP_TIMEOUT": str(config.stop_timeout),
        "WSGISTACK_SERVER__LIVE_PATH": config.server.live_path,
        "WSGISTACK_SERVER__READY_PATH": config.server.ready_path,
    }
    data.update(config.kube.env)
    return data


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def render_kube(config: Config, facts: ProjectFacts) -> list[RenderedFile]:
    """The kustomize base: kustomization.yaml and one file per resource."""
    problems = _problems(config)
    if problems:
        raise ConfigError(problems)
    kube = config.kube
    name = kube.name or k8s_name(facts.name)
    server = config.server
    configmap = _configmap(config)
    split = kube.layout == "split"
    pause = kube.prestop_pause
    longest_pause = pause + (SPLIT_APP_EXTRA_PAUSE if split else 0)
    # What the pod's containers run when they stop: the background processes are in
    # Deployments of their own, so the web container's stop is nginx's, then uWSGI's.
    if split:
        stops = [(pause, stop_plan(config, "web")), (pause + SPLIT_APP_EXTRA_PAUSE, stop_plan(config, "app"))]
    else:
        stops = [(pause, stop_plan(config, "all", run_processes=False))]
    stop_total = max(p + s.total for p, s in stops) - longest_pause
    stop_describe = " | ".join(s.describe(server_neutral=True) for _, s in stops)
    grace = longest_pause + stop_total + GRACE_MARGIN

    # Data directories the app writes inside the image's read-only /app: collected static
    # files (emptyDir: each pod collects its own at start) and uploads.
    data_volumes = []
    for d in facts.data_dirs:
        if d.role == "static" and kube.collectstatic == "job":
            continue  # collected once per release onto shared storage, not into the pod
        claim = kube.media_claim if d.role == "media" else ""
        data_volumes.append(Volume(d.role if d.role != "data" else k8s_name(d.relative.name), str(d.container_path),
                                   claim=claim, served=bool(d.url)))
    pod_collects = kube.collectstatic == "pod"
    app_env: list[tuple[str, str]] = [("WSGISTACK_RUNTIME_DIR", str(IMAGE_RUNTIME_DIR)), ("WSGISTACK_APP__MIGRATE", "false")]
    if not pod_collects:
        app_env.append(("WSGISTACK_APP__COLLECTSTATIC", "false"))
    app_resources = {"cpu": kube.cpu, "memory": kube.memory, "memory_limit": kube.memory_limit}
    tmp = (Volume("tmp", "/tmp"),)
    containers: list[Container]
    workers = [
        Worker(proc, k8s_name(f"{name}-{proc}"),
               (("WSGISTACK_ROLE", "worker"), ("WSGISTACK_PROCESS", proc), ("WSGISTACK_RUNTIME_DIR", str(IMAGE_RUNTIME_DIR))),
               stop_plan(config, "worker", process=proc).total + GRACE_MARGIN)  # its own stop budget, and the margin
        for proc in sorted(config.processes)
    ]
    if not split:
        # Each background process has its own Deployment: the web containers do not run them.
        single_env = [("WSGISTACK_ROLE", "all"), *app_env] + ([("WSGISTACK_RUN_PROCESSES", "false")] if workers else [])
        containers = [Container("web", "all", tuple(single_env), tmp + tuple(data_volumes),
                                app_resources, pause, http=True, drain=True)]
        pod_volumes = [Volume("tmp", "/tmp"), *data_volumes]
    else:
        socket_uri = f"unix:{SHARED_DIR}/uwsgi.sock"
        static_env = " ".join(f"{d.url}={d.container_path}" for d in facts.data_dirs
                              if d.url and any(v.name == d.role for v in data_volumes))
        web_env = [("WSGISTACK_ROLE", "web"), ("WSGISTACK_RUNTIME_DIR", str(IMAGE_RUNTIME_DIR)), ("UWSGI_URI", socket_uri),
                   # nginx waits for the app container's socket as long as the pod may take to start
                   ("WSGISTACK_UPSTREAM_WAIT", str(kube.startup_timeout))]
        if static_env:
            web_env.append(("WSGISTACK_SERVER__STATIC", static_env))
        socket = Volume("socket", str(SHARED_DIR))
        containers = [
            Container("nginx", "web", tuple(web_env),
                      (Volume("tmp-nginx", "/tmp"), socket,
                       *(Volume(v.name, v.path, v.claim, True) for v in data_volumes if v.served)),
                      NGINX_RESOURCES, pause, http=True, drain=False, secrets=False),
            Container("app", "app", (("WSGISTACK_ROLE", "app"), ("UWSGI_URI", socket_uri), *app_env),
                      (Volume("tmp-app", "/tmp"), socket, *data_volumes),
                      app_resources, pause + SPLIT_APP_EXTRA_PAUSE, http=False, drain=True),
        ]
        pod_volumes = [Volume("tmp-nginx", "/tmp"), Volume("tmp-app", "/tmp"), socket, *data_volumes]

    job_env = [("WSGISTACK_ROLE", "app"), ("WSGISTACK_RUNTIME_DIR", str(IMAGE_RUNTIME_DIR)), ("WSGISTACK_APP__MIGRATE", "true"),
               ("WSGISTACK_APP__COLLECTSTATIC", "false" if pod_collects else "true")]
    hpa = kube.autoscale_max > 0
    ctx = {
        "version": __version__,
        "name": name,
        "job_name": f"{name[:45]}-migrate-{_digest(kube.image)[:8]}",
        "secret": kube.secret or f"{name}-secrets",
        "kube": kube,
        "image": kube.image,
        "uid": IMAGE_UID,
        "healthcheck": list(HEALTHCHECK),
        "port": IMAGE_PORT,
        "probe_host": probe_host(server.server_names),
        "live_path": server.live_path,
        "ready_path": server.ready_path,
        "drain_marker": str(DRAIN_MARKER),
        "stop_timeout": config.stop_timeout,
        "stop_total": stop_total,
        "stop_describe": stop_describe,
        "grace": grace,
        "longest_pause": longest_pause,
        "startup_period": STARTUP_PERIOD,
        "startup_failures": math.ceil(kube.startup_timeout / STARTUP_PERIOD),
        "split": split,
        "containers": containers,
        "pod_volumes": pod_volumes,
        "configmap": configmap,
        "config_hash": _digest(*(f"{k}={v}" for k, v in configmap.items()))[:16],
        "job_env": job_env,
        # The Job and the workers run the app's code with the app's directories (the start
        # refuses an app that cannot write its MEDIA_ROOT, run.E005): the same data volumes.
        "job_volumes": [Volume("tmp", "/tmp"), *data_volumes],
        "app_resources": app_resources,
        "migrate_deadline": MIGRATE_DEADLINE,
        "job_ttl": JOB_TTL,
        "hpa": hpa,
        "hpa_min": kube.autoscale_min or min(kube.replicas, kube.autoscale_max),
        "ingress": bool(kube.hosts),
        "pod_collects": pod_collects,
        "workers": workers,
    }
    env = environment()
    files = [
        ("configmap.yaml", "kube/configmap.yaml.j2"),
        ("deployment.yaml", "kube/deployment.yaml.j2"),
        ("service.yaml", "kube/service.yaml.j2"),
        ("pdb.yaml", "kube/pdb.yaml.j2"),
        ("migrate-job.yaml", "kube/migrate-job.yaml.j2"),
    ]
    files += [(f"worker-{w.name.removeprefix(name + '-')}.yaml", "kube/worker.yaml.j2") for w in workers]
    if hpa:
        files.append(("hpa.yaml", "kube/hpa.yaml.j2"))
    if kube.hosts:
        files.append(("ingress.yaml", "kube/ingress.yaml.j2"))
    ctx["resources"] = [path for path, _ in files]
    files.insert(0, ("kustomization.yaml", "kube/kustomization.yaml.j2"))
    by_file = {f"worker-{w.name.removeprefix(name + '-')}.yaml": w for w in workers}
    return [RenderedFile(path, _no_blank_lines(env.get_template(template).render({**ctx, "worker": by_file.get(path)})))
            for path, template in files]


def _no_blank_lines(text: str) -> str:
    # Macros that end in a loop leave an empty line behind; YAML needs none.
    return "\n".join(line for line in text.splitlines() if line.strip()) + "\n"
