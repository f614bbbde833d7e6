"""The pod `wsgistack kube` describes, run for real under Docker, as a kubelet would run it.

No cluster runs here, so this test reads the generated Deployment, ConfigMap and Job and
starts their containers with `docker run` exactly as specified: the image, command/args, env
from the ConfigMap and a Secret (env entries win over envFrom, as in Kubernetes), the uid and
fsGroup, a read-only root filesystem, dropped capabilities, no-new-privileges, the memory
limit, and each emptyDir as a fresh world-writable directory of its own (shared between the
containers that mount it, read-only where the mount says so). It then runs the probes as the
kubelet does (HTTP GET with the Host header; exec), and the termination sequence: preStop in
every container at once, SIGTERM when it returns, SIGKILL at the end of the grace period.

Two deviations, both forced by this machine's Docker (host networking only, shared with other
test runs): the pod's port is a free port rather than 8080, and nginx binds 127.0.0.1. The
Job's database (a server in production) is a directory here, named in the test's Secret.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import WSGISTACK, free_port
from tests.docker.conftest import docker, unique

pytestmark = pytest.mark.docker

SECRET = {"DJANGO_SECRET_KEY": "kube-pod-test-" + "x" * 40}
LOAD_THREADS = 4
MAX_REQUESTS = 4000  # bounded load: at most this many, whatever the timing
TICKER = "sh -c 'while sleep 1; do :; done'"  # a background process that runs until stopped
PROPAGATION = 1.0  # seconds the "Service" keeps sending after readiness fails (endpoint removal)


def _mebibytes(quantity: str) -> str:
    units = {"Mi": "m", "Gi": "g", "Ki": "k"}
    for suffix, docker_unit in units.items():
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + docker_unit
    return quantity


@pytest.fixture(scope="module", params=["single", "split"])
def base(request: pytest.FixtureRequest, demo_image: str, demo_context: Path,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, dict[str, Any]]]:
    """`wsgistack kube` for the demo, parsed: file name -> resource."""
    out = tmp_path_factory.mktemp("kube") / "deploy"
    # A background process, declared here and handed to the pods through the ConfigMap (kube.env)
    env = {**os.environ, "WSGISTACK_PROCESSES__TICKER__COMMAND": TICKER,
           "WSGISTACK_KUBE__ENV": json.dumps({"WSGISTACK_PROCESSES__TICKER__COMMAND": TICKER})}
    proc = subprocess.run([*WSGISTACK, "kube", str(demo_context), "--image", demo_image, "--out", str(out),
                           "--layout", request.param], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return request.param, {p.name: yaml.safe_load(p.read_text()) for p in out.glob("*.yaml")}


@dataclass
class Pod:
    """The containers of one pod spec, run with `docker run` as the spec says."""

    spec: dict[str, Any]
    configmap: dict[str, str]
    secret: dict[str, str]
    root: Path
    port: int
    extra_mounts: tuple[tuple[str, str], ...] = ()  # (host dir, path): stand-ins outside the pod
    names: dict[str, str] = field(default_factory=dict)  # container name -> docker name

    def env(self, c: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self.configmap)
            if "secretRef" in source:
                env.update(self.secret)
        env.update({e["name"]: e["value"] for e in c.get("env", [])})
        # host networking: a free port instead of the pod's own 8080, loopback only
        env["PORT"] = str(self.port)
        env["WSGISTACK_SERVER__HOST"] = "127.0.0.1"
        return env

    def volume_dir(self, name: str) -> Path:
        """An emptyDir: a fresh directory, world-writable, group fsGroup with setgid, as the
        kubelet makes it; one per pod, shared by the containers that mount it."""
        path = self.root / "volumes" / name
        if not path.exists():
            path.mkdir(parents=True)
            fs_group = self.spec.get("securityContext", {}).get("fsGroup")
            if fs_group is not None:
                os.chown(path, 0, fs_group)
            os.chmod(path, 0o2777)
        return path

    def docker_args(self, c: dict[str, Any]) -> list[str]:
        pod_sc = self.spec.get("securityContext", {})
        sc = {**pod_sc, **c.get("securityContext", {})}
        volumes = {v["name"]: v for v in self.spec["volumes"]}
        args = ["--network", "host", "--user", str(sc["runAsUser"])]
        if "fsGroup" in pod_sc:
            args += ["--group-add", str(pod_sc["fsGroup"])]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for cap in sc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"  # Docker's default profile
        limit = c.get("resources", {}).get("limits", {}).get("memory")
        if limit:
            args += ["--memory", _mebibytes(limit)]
        for m in c.get("volumeMounts", []):
            assert "emptyDir" in volumes[m["name"]], f"only emptyDirs are emulated here: {m['name']}"
            args += ["-v", f"{self.volume_dir(m['name'])}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
        for host_dir, path in self.extra_mounts:
            args += ["-v", f"{host_dir}:{path}"]
        for k, v in self.env(c).items():
            args += ["-e", f"{k}={v}"]
        if c.get("command"):
            args += ["--entrypoint", c["command"][0]]
        args.append(c["image"])
        args += c.get("command", [])[1:] + c.get("args", [])
        return args

    def start(self) -> None:
        for c in self.spec["containers"]:
            name = unique(f"pod-{c['name']}")
            docker("run", "-d", "--name", name, *self.docker_args(c))
            self.names[c["name"]] = name

    def container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.spec["containers"] if c["name"] == name)

    def probe(self, c: dict[str, Any], kind: str) -> bool:
        """One probe, as the kubelet runs it."""
        probe = c[kind]
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            get = probe["httpGet"]
            assert get["port"] == "http" and c["ports"][0]["name"] == "http"
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
            request = urllib.request.Request(f"http://127.0.0.1:{self.port}{get['path']}", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    return 200 <= resp.status < 400
            except (OSError, urllib.error.URLError):
                return False
        command = probe["exec"]["command"]
        proc = docker("exec", self.names[c["name"]], *command, check=False, timeout=timeout + 10)
        return proc.returncode == 0

    def wait_probe(self, c: dict[str, Any], kind: str) -> float:
        """Seconds until the probe succeeds, within its period x failureThreshold."""
        probe = c[kind]
        budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
        started = time.monotonic()
        while time.monotonic() - started < budget:
            if self.probe(c, kind):
                return time.monotonic() - started
            if not self.running(c["name"]):
                break
            time.sleep(0.25)  # faster than the period: we only want to know when it passes
        pytest.fail(f"{kind} of {c['name']} never passed; logs:\n{self.logs()}", pytrace=False)

    def running(self, name: str) -> bool:
        out = docker("inspect", "-f", "{{.State.Running}}", self.names[name], check=False)
        return out.stdout.strip() == "true"

    def exit_code(self, name: str) -> int:
        return int(docker("inspect", "-f", "{{.State.ExitCode}}", self.names[name]).stdout.strip())

    def logs(self) -> str:
        text = []
        for name, docker_name in self.names.items():
            out = docker("logs", docker_name, check=False)
            text.append(f"--- {name}\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return "\n".join(text)

    def close(self) -> None:
        for docker_name in self.names.values():
            docker("rm", "-f", "-v", docker_name, check=False)


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pod_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Pod] = []

    database = tmp_path / "database"
    database.mkdir()
    os.chmod(database, 0o777)

    def make(spec: dict[str, Any], configmap: dict[str, str], secret: dict[str, str], **kw: Any) -> Pod:
        # The database is a server in production, named in the Secret (DATABASE_URL); the demo
        # uses SQLite, so here it is a directory outside the pod, named the same way.
        secret = {**secret, "DJANGO_DB_PATH": "/database/db.sqlite3"}
        kw.setdefault("extra_mounts", ((str(database), "/database"),))
        pod = Pod(spec, configmap, secret, tmp_path / f"pod{len(made)}", free_port(), **kw)
        made.append(pod)
        return pod

    yield make
    for pod in made:
        pod.close()


def test_pod_probes_and_termination_under_load(base: tuple[str, dict[str, dict[str, Any]]], pod_factory: Any) -> None:
    """The Deployment's pod starts from its own spec, passes its probes as the kubelet runs
    them, and stops under load with 0 failed requests: readiness fails (the drain marker)
    before anything stops accepting, and everything exits within the grace period."""
    layout, files = base
    deployment = files["deployment.yaml"]
    spec = deployment["spec"]["template"]["spec"]
    pod = pod_factory(spec, files["configmap.yaml"]["data"], SECRET)
    pod.start()
    http = next(c for c in spec["containers"] if c.get("ports"))
    started = time.monotonic()
    for c in spec["containers"]:
        pod.wait_probe(c, "startupProbe")
    pod.wait_probe(http, "readinessProbe")
    print(f"\n[{layout}] pod ready {time.monotonic() - started:.1f}s after docker run")
    for c in spec["containers"]:
        assert pod.probe(c, "livenessProbe"), c["name"]
    # the background process has its own Deployment: no web-side container runs it
    for c in spec["containers"]:
        table = json.loads(docker("exec", pod.names[c["name"]], "cat", "/tmp/wsgistack/processes.json").stdout)
        assert "ticker" not in {p["name"] for p in table["processes"]}, c["name"]
    # the app is served, under a Host the probes send too
    host = http["readinessProbe"]["httpGet"]["httpHeaders"][0]["value"]
    request = urllib.request.Request(f"http://127.0.0.1:{pod.port}/hello", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200

    # --- load, as a Service sends it: while the pod is an endpoint, plus the propagation delay
    results: list[tuple[float, int | str]] = []
    lock = threading.Lock()
    endpoint_removed_at: list[float] = []
    stop_load = threading.Event()

    def client() -> None:
        while not stop_load.is_set():
            if endpoint_removed_at and time.monotonic() > endpoint_removed_at[0] + PROPAGATION:
                return
            with lock:
                if len(results) >= MAX_REQUESTS:
                    return
            sent = time.monotonic()
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{pod.port}/hello", headers={"Host": host})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    outcome: int | str = resp.status
                    resp.read()
            except urllib.error.HTTPError as exc:
                outcome = exc.code
            except OSError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                results.append((sent, outcome))
            time.sleep(0.01)

    slow: dict[str, object] = {}

    def slow_request() -> None:
        # in flight when SIGTERM arrives: must still complete
        req = urllib.request.Request(f"http://127.0.0.1:{pod.port}/slow?seconds={pause + 2}", headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                slow["status"] = resp.status
        except Exception as exc:  # noqa: BLE001
            slow["status"] = repr(exc)

    readiness_failed_at: list[float] = []

    def readiness_watch() -> None:
        # the kubelet's readiness probe (polled faster than its period, to time the failure)
        while not stop_load.is_set():
            if not pod.probe(http, "readinessProbe"):
                readiness_failed_at.append(time.monotonic())
                endpoint_removed_at.append(time.monotonic())
                return
            time.sleep(0.1)

    pause = max(int(" ".join(c["lifecycle"]["preStop"]["exec"]["command"]).rsplit(" ", 1)[-1].strip('"'))
                for c in spec["containers"])
    grace = spec["terminationGracePeriodSeconds"]
    threads = [threading.Thread(target=client) for _ in range(LOAD_THREADS)]
    for t in threads:
        t.start()
    time.sleep(2)  # steady load first

    # --- termination, as the kubelet does it: preStop in every container at once ...
    watcher = threading.Thread(target=readiness_watch)
    watcher.start()
    slow_thread = threading.Thread(target=slow_request)
    slow_thread.start()
    deleted_at = time.monotonic()
    hooks: dict[str, int] = {}
    sigterm_at: dict[str, float] = {}

    def pre_stop_then_term(c: dict[str, Any]) -> None:
        proc = docker("exec", pod.names[c["name"]], *c["lifecycle"]["preStop"]["exec"]["command"],
                      check=False, timeout=grace)
        hooks[c["name"]] = proc.returncode
        # ... then SIGTERM to the container as soon as its own hook has returned ...
        docker("kill", "--signal", "TERM", pod.names[c["name"]])
        sigterm_at[c["name"]] = time.monotonic()

    stopped_accepting: list[float] = []

    def accept_watch() -> None:
        # ... while we watch for the moment nginx stops accepting connections ...
        while time.monotonic() < deleted_at + grace:
            if not _accepting(pod.port):
                stopped_accepting.append(time.monotonic())
                return
            time.sleep(0.05)

    hook_threads = [threading.Thread(target=pre_stop_then_term, args=(c,)) for c in spec["containers"]]
    accept_thread = threading.Thread(target=accept_watch)
    for t in [accept_thread, *hook_threads]:
        t.start()
    for t in [accept_thread, *hook_threads]:
        t.join(timeout=grace + 30)
    stopped_accepting_at = stopped_accepting[0] if stopped_accepting else None
    # ... and SIGKILL at the end of the grace period, for whatever is still running.
    killed = []
    for name in pod.names:
        while pod.running(name) and time.monotonic() < deleted_at + grace:
            time.sleep(0.1)
        if pod.running(name):
            killed.append(name)
            docker("kill", pod.names[name], check=False)
    stop_load.set()
    for t in [*threads, watcher, slow_thread]:
        t.join(timeout=60)
    exited_at = time.monotonic()

    failed = [(round(t - deleted_at, 2), o) for t, o in results if o != 200]
    print(f"[{layout}] {len(results)} requests during the run, {len(failed)} failed; readiness failed "
          f"{readiness_failed_at[0] - deleted_at:.2f}s after the delete, SIGTERM at "
          f"{min(sigterm_at.values()) - deleted_at:.2f}s, stopped accepting at "
          f"{(stopped_accepting_at or float('nan')) - deleted_at:.2f}s, all exited by {exited_at - deleted_at:.2f}s "
          f"(grace {grace}s); slow request: {slow.get('status')}; SIGTERM per container: "
          f"{ {k: round(v - deleted_at, 2) for k, v in sigterm_at.items()} }")
    assert not killed, f"SIGKILLed at the end of the grace period: {killed}\n{pod.logs()}"
    assert hooks == {c["name"]: 0 for c in spec["containers"]}, hooks
    assert failed == [], f"{len(failed)} failed requests: {failed[:10]}\n{pod.logs()}"
    assert len(results) > 50, "the load did not run"
    assert slow.get("status") == 200, slow
    assert readiness_failed_at, "readiness never failed during the termination"
    assert stopped_accepting_at is not None, "nginx never stopped accepting"
    assert readiness_failed_at[0] < min(sigterm_at.values()) <= stopped_accepting_at
    for name in pod.names:
        assert pod.exit_code(name) == 0, f"{name} exited {pod.exit_code(name)}\n{pod.logs()}"


@pytest.mark.parametrize("base", ["single"], indirect=True)  # the Job does not depend on the layout
def test_migration_job_migrates_a_fresh_database(base: tuple[str, dict[str, dict[str, Any]]], pod_factory: Any,
                                                 tmp_path: Path) -> None:
    """The Job's container, run as specified, migrates an empty database and exits 0; run
    again (the same release re-applied), it changes nothing and exits 0."""
    _layout, files = base
    job = files["migrate-job.yaml"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    db_dir = tmp_path / "database"  # the pod factory's database stand-in, fresh for this test
    assert not (db_dir / "db.sqlite3").exists()
    for attempt in (1, 2):
        pod = pod_factory(spec, files["configmap.yaml"]["data"], SECRET)
        pod.start()
        deadline = time.monotonic() + job["spec"]["activeDeadlineSeconds"]
        name = spec["containers"][0]["name"]
        while pod.running(name) and time.monotonic() < min(deadline, time.monotonic() + 180):
            time.sleep(0.25)
        logs = pod.logs()
        assert not pod.running(name), logs
        assert pod.exit_code(name) == 0, logs
        assert "migrate" in logs, logs
        print(f"\njob run {attempt}:\n{logs[-1500:]}")
    with sqlite3.connect(db_dir / "db.sqlite3") as db:
        applied = {row[0] for row in db.execute("select app from django_migrations")}
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
    assert {"posts", "auth", "sessions"} <= applied
    assert "posts_post" in tables or any(t.startswith("posts_") for t in tables)


@pytest.mark.parametrize("base", ["single"], indirect=True)
def test_worker_deployment_runs_its_process_and_stops_within_grace(base: tuple[str, dict[str, dict[str, Any]]],
                                                                   pod_factory: Any) -> None:
    """A background process's Deployment: its container runs the process (role worker), its
    liveness probe passes, and SIGTERM stops it cleanly within the grace period."""
    _layout, files = base
    worker = files["worker-ticker.yaml"]
    spec = worker["spec"]["template"]["spec"]
    pod = pod_factory(spec, files["configmap.yaml"]["data"], SECRET)
    pod.start()
    (c,) = spec["containers"]
    # liveness passes once the manager reports the process running
    probe = c["livenessProbe"]
    deadline = time.monotonic() + 60
    while not pod.probe(c, "livenessProbe"):
        assert time.monotonic() < deadline and pod.running(c["name"]), pod.logs()
        time.sleep(0.5)
    assert probe["exec"]["command"][0] == "python3"
    table = json.loads(docker("exec", pod.names[c["name"]], "cat", "/tmp/wsgistack/processes.json").stdout)
    assert [p["name"] for p in table["processes"]] == ["ticker"]
    grace = spec["terminationGracePeriodSeconds"]
    sent = time.monotonic()
    docker("kill", "--signal", "TERM", pod.names[c["name"]])
    while pod.running(c["name"]) and time.monotonic() < sent + grace:
        time.sleep(0.1)
    took = time.monotonic() - sent
    print(f"\nworker stopped {took:.2f}s after SIGTERM (grace {grace}s)")
    assert not pod.running(c["name"]), f"still running at the end of the grace period\n{pod.logs()}"
    assert pod.exit_code(c["name"]) == 0, pod.logs()
