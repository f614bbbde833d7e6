"""Proofs for `wsgistack kube` without a cluster, over every golden case:

1. schema: each manifest validates strictly (unknown fields fail) against the API schemas
   of several Kubernetes minor versions, with kubernetes-validate (offline, bundled schemas);
2. policy: Pod Security "restricted" field by field, and wsgistack's own rules (grace
   period > pause + stop timeout, PDB shape, rollout, probe paths and Host, migrations).

The pod itself runs under Docker in tests/docker/test_kube_pod.py.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.golden.test_kube import CASES, rendered
from wsgistack.config import load_config
from wsgistack.layout import IMAGE_UID
from wsgistack.plan.stop import stop_plan
from wsgistack.render.kube import probe_host, render_kube
from wsgistack.errors import ConfigError

try:  # in the test extra; without it the schema proofs fail (below), the policy ones still run
    import kubernetes_validate
except ImportError:  # pragma: no cover
    kubernetes_validate = None

# Three (and more) minor versions, oldest first: the API versions used here (apps/v1,
# batch/v1, policy/v1, autoscaling/v2, networking.k8s.io/v1) and every field must exist in all.
KUBERNETES_VERSIONS = ("1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0")
# Pod Security "restricted": the only volume types it allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def manifests(case: str) -> dict[str, dict[str, Any]]:
    """file name -> parsed resource (kustomization.yaml included)."""
    out = {}
    for name, text in rendered(case).items():
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert len(docs) == 1, f"{name}: one resource per file"
        out[name] = docs[0]
    return out


def by_kind(case: str) -> dict[str, dict[str, Any]]:
    """kind -> resource, for the web side (worker Deployments are in workers())."""
    return {doc["kind"]: doc for name, doc in manifests(case).items() if not name.startswith("worker-")}


def workers(case: str) -> dict[str, dict[str, Any]]:
    return {name: doc for name, doc in manifests(case).items() if name.startswith("worker-")}


def config_of(case: str):  # type: ignore[no-untyped-def]
    env, _facts = CASES[case]
    return load_config("/srv/shop", env=env).config


# --- 1. schema -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_manifest_validates_strictly(case: str, version: str) -> None:
    assert kubernetes_validate is not None, "pip install -e '.[test]' (kubernetes-validate) to prove the schemas"
    for name, doc in manifests(case).items():
        if doc["kind"] == "Kustomization":
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{case}/{name} is invalid for Kubernetes {version}: {path}: {exc.message}")
        # A missing schema would be a silent pass: every kind we write must have one.
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{case}/{name}: {exc.message}")


def test_unknown_field_fails_validation() -> None:
    """The validator really is strict: a misspelt field anywhere is an error."""
    assert kubernetes_validate is not None, "pip install -e '.[test]' (kubernetes-validate) to prove the schemas"
    deployment = by_kind("single-default")["Deployment"]
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)
    bad = copy.deepcopy(deployment)
    bad["spec"]["strategy"]["rollingUpdate"]["maxUnavailble"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_kustomization_lists_every_file(case: str) -> None:
    files = manifests(case)
    kustomization = files.pop("kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert sorted(kustomization["resources"]) == sorted(files)
    namespace = config_of(case).kube.namespace
    assert kustomization.get("namespace", "") == namespace


# --- 2. policy -------------------------------------------------------------------------------


def pod_specs(case: str) -> list[tuple[str, dict[str, Any]]]:
    kinds = by_kind(case)
    return [(kind, kinds[kind]["spec"]["template"]["spec"]) for kind in ("Deployment", "Job")] + [
        (name, doc["spec"]["template"]["spec"]) for name, doc in workers(case).items()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_security_restricted(case: str) -> None:
    """Every check of the Pod Security Standards' "restricted" profile (which includes
    "baseline"), one assertion per control, for the Deployment's and the Job's pods."""
    for kind, pod in pod_specs(case):
        where = f"{case} {kind}"
        psc = pod.get("securityContext", {})
        # baseline: host namespaces, host ports, hostPath, privileged, capabilities, sysctls...
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(field), f"{where}: {field}"
        assert "sysctls" not in psc, where
        # restricted: volume types
        for volume in pod["volumes"]:
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']} is {kinds}"
        # restricted: running as non-root, non-root user, seccomp (pod level, also per container)
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] == IMAGE_UID != 0, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        # the app never talks to the API server: no token to steal
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["enableServiceLinks"] is False, where
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            at = f"{where} container {c['name']}"
            assert sc.get("privileged", False) is False, at
            assert sc["allowPrivilegeEscalation"] is False, at
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == IMAGE_UID, at
            assert sc["capabilities"]["drop"] == ["ALL"], at
            assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, at
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", at
            assert sc.get("procMount", "Default") == "Default", at
            assert "seLinuxOptions" not in sc and "windowsOptions" not in sc, at
            assert sc["readOnlyRootFilesystem"] is True, at
            for port in c.get("ports", []):
                assert "hostPort" not in port, at
            # read-only root: /tmp (and with it the runtime dir) is an emptyDir of its own
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, at
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], at
            assert set(mounts.values()) <= set(volumes), at
            env = {e["name"]: e["value"] for e in c["env"]}
            assert env["WSGISTACK_RUNTIME_DIR"].startswith("/tmp/"), at
            # memory limit (uWSGI sizes from it), no CPU limit (throttling)
            assert "memory" in c["resources"]["limits"] and "cpu" not in c["resources"]["limits"], at


def _pause(container: dict[str, Any]) -> int:
    command = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    match = re.search(r"sleep (\d+)", command)
    assert match, command
    return int(match.group(1))


@pytest.mark.parametrize("case", sorted(CASES))
def test_graceful_rollout(case: str) -> None:
    config = config_of(case)
    kinds = by_kind(case)
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert str(strategy["rollingUpdate"]["maxSurge"]) == config.kube.max_surge
    # the pod receives the stop timeout the grace period is computed from
    assert kinds["ConfigMap"]["data"]["WSGISTACK_STOP_TIMEOUT"] == str(config.stop_timeout)
    for c in pod["containers"]:
        pause = _pause(c)
        assert pause >= config.kube.prestop_pause
        # The whole stop of what this container runs (nginx, then uWSGI, each with its own
        # budget; no background process: those have Deployments of their own) fits.
        role = {e["name"]: e["value"] for e in c["env"]}["WSGISTACK_ROLE"]
        stop = stop_plan(config, role, run_processes=False)
        assert stop.total >= config.stop_timeout  # nginx and uWSGI share it, from the stop's start
        assert pod["terminationGracePeriodSeconds"] > pause + stop.total, c["name"]
    # whoever answers readiness marks itself draining first
    drains = [c for c in pod["containers"] if "drain" in " ".join(c["lifecycle"]["preStop"]["exec"]["command"])]
    assert len(drains) == 1
    if config.kube.layout == "split":
        nginx, app = pod["containers"]
        assert _pause(app) > _pause(nginx), "uWSGI must outlive nginx's last requests"


@pytest.mark.parametrize("case", sorted(CASES))
def test_probes_paths_and_host(case: str) -> None:
    config = config_of(case)
    live, ready = config.server.live_path, config.server.ready_path
    host = probe_host(config.server.server_names)
    assert "*" not in host
    assert host in config.server.server_names or "*" in config.server.server_names
    kinds = by_kind(case)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    http = [c for c in pod["containers"] if c.get("ports")]
    assert len(http) == 1
    c = http[0]
    assert c["livenessProbe"]["httpGet"]["path"] == live  # nginx alone
    assert c["readinessProbe"]["httpGet"]["path"] == ready  # through uWSGI
    assert c["startupProbe"]["httpGet"]["path"] == live
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= config.kube.startup_timeout
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["httpHeaders"] == [{"name": "Host", "value": host}], probe
        assert c[probe]["httpGet"]["port"] == "http"
    assert c["ports"] == [{"name": "http", "containerPort": int(kinds["ConfigMap"]["data"]["PORT"])}]
    data = kinds["ConfigMap"]["data"]
    import json

    assert json.loads(data["WSGISTACK_SERVER__SERVER_NAMES"]) == list(config.server.server_names)
    assert data["WSGISTACK_SERVER__LIVE_PATH"] == live and data["WSGISTACK_SERVER__READY_PATH"] == ready


@pytest.mark.parametrize("case", sorted(CASES))
def test_availability(case: str) -> None:
    config = config_of(case)
    kinds = by_kind(case)
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    pdb = kinds["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    assert pdb["selector"]["matchLabels"] == selector
    assert kinds["Service"]["spec"]["selector"] == selector
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} >= {"kubernetes.io/hostname"}
    assert all(s["labelSelector"]["matchLabels"] == selector for s in spread)
    if config.kube.autoscale_max:
        hpa = kinds["HorizontalPodAutoscaler"]["spec"]
        assert hpa["minReplicas"] == config.kube.autoscale_min and hpa["maxReplicas"] == config.kube.autoscale_max
        assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"]  # the HPA owns it
    else:
        assert "HorizontalPodAutoscaler" not in kinds
        assert deployment["spec"]["replicas"] == config.kube.replicas
    if config.kube.hosts:
        ingress = kinds["Ingress"]["spec"]
        assert [r["host"] for r in ingress["rules"]] == list(config.kube.hosts)
        for rule in ingress["rules"]:
            backend = rule["http"]["paths"][0]["backend"]["service"]
            assert backend == {"name": kinds["Service"]["metadata"]["name"], "port": {"name": "http"}}
    else:
        assert "Ingress" not in kinds


@pytest.mark.parametrize("case", sorted(CASES))
def test_migrations_once_per_release(case: str) -> None:
    config = config_of(case)
    kinds = by_kind(case)
    for c in kinds["Deployment"]["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e["value"] for e in c["env"]}
        if env["WSGISTACK_ROLE"] in ("all", "app"):
            assert env["WSGISTACK_APP__MIGRATE"] == "false", c["name"]
            assert env.get("WSGISTACK_APP__COLLECTSTATIC", "true") == ("true" if config.kube.collectstatic == "pod" else "false")
    job = kinds["Job"]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["WSGISTACK_APP__MIGRATE"] == "true"
    assert c["command"] == ["wsgistack", "entrypoint", "--prestart-only"]
    assert c["image"] == config.kube.image
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # a new image is a new Job; the same image, the same Job (re-applying does not re-run it)
    name = job["metadata"]["name"]
    assert len(name) <= 63
    env2 = {**CASES[case][0], "WSGISTACK_KUBE__IMAGE": config.kube.image + "-next"}
    other = render_kube(load_config("/srv/shop", env=env2).config, CASES[case][1])
    other_job = yaml.safe_load(next(f.content for f in other if f.path == "migrate-job.yaml"))
    assert other_job["metadata"]["name"] != name
    assert by_kind(case)["Job"]["metadata"]["name"] == name


@pytest.mark.parametrize("case", sorted(CASES))
def test_background_processes_run_in_their_own_deployments(case: str) -> None:
    config = config_of(case)
    found = workers(case)
    assert len(found) == len(config.processes)
    web = by_kind(case)["Deployment"]["spec"]["template"]["spec"]
    for c in web["containers"]:
        env = {e["name"]: e["value"] for e in c["env"]}
        if env["WSGISTACK_ROLE"] == "all" and config.processes:
            assert env["WSGISTACK_RUN_PROCESSES"] == "false"  # never once per web replica
    web_selector = by_kind(case)["Deployment"]["spec"]["selector"]["matchLabels"]
    for process in config.processes:
        (doc,) = [d for d in found.values()
                  if d["spec"]["template"]["spec"]["containers"][0]["env"][1] == {"name": "WSGISTACK_PROCESS", "value": process}]
        pod = doc["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["WSGISTACK_ROLE"] == "worker"
        assert doc["spec"]["strategy"] == {"type": "Recreate"}  # a singleton never runs twice
        budget = config.processes[process].stop_timeout or config.stop_timeout
        assert pod["terminationGracePeriodSeconds"] > stop_plan(config, "worker", process=process).total > budget
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert not web_selector.items() <= labels.items(), "the web Service/PDB must not select workers"
        assert c["image"] == config.kube.image and c["envFrom"] == web["containers"][-1]["envFrom"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_only_app_code_gets_the_secret(case: str) -> None:
    config = config_of(case)
    secret = config.kube.secret or "shop-secrets"
    kinds = by_kind(case)
    pods = [kinds["Deployment"], kinds["Job"], *workers(case).values()]
    for doc in pods:
        for c in doc["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e["value"] for e in c["env"]}
            refs = [r for r in c["envFrom"] if "secretRef" in r]
            if env.get("WSGISTACK_ROLE") == "web":
                assert refs == [], "nginx runs no app code: no secrets"
            else:
                assert refs == [{"secretRef": {"name": secret}}], c["name"]


def test_config_change_rolls_the_pods() -> None:
    base = by_kind("single-default")["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    env, facts = CASES["single-default"]
    changed = render_kube(load_config("/srv/shop", env={**env, "WSGISTACK_KUBE__ENV": "A=1"}).config, facts)
    deployment = yaml.safe_load(next(f.content for f in changed if f.path == "deployment.yaml"))
    assert deployment["spec"]["template"]["metadata"]["annotations"] != base


@pytest.mark.parametrize(("env", "error"), [
    ({}, "kube.E001"),
    ({"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_KUBE__HOSTS": "shop.example.com"}, "kube.E002"),
    ({"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_KUBE__AUTOSCALE_MIN": "5", "WSGISTACK_KUBE__AUTOSCALE_MAX": "3"}, "kube.E003"),
    ({"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_KUBE__LAYOUT": "split", "WSGISTACK_UWSGI__SOCKET": "tcp"}, "kube.E004"),
    ({"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_TLS__MODE": "acme"}, "kube.E005"),
    ({"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_KUBE__ENV": "PORT=9000"}, "kube.E006"),
    ({"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_KUBE__ENV": "WSGISTACK_SERVER__HOST=127.0.0.1"}, "kube.E006"),
    ({"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_KUBE__ENV": "WSGISTACK_STOP_TIMEOUT=60"}, "kube.E006"),
])
def test_inconsistent_settings_are_refused(env: dict[str, str], error: str) -> None:
    _env, facts = CASES["single-default"]
    with pytest.raises(ConfigError) as info:
        render_kube(load_config("/srv/shop", env=env).config, facts)
    assert info.value.id == error and info.value.hint


def test_wildcard_server_name_covers_an_ingress_host() -> None:
    _env, facts = CASES["single-default"]
    env = {"WSGISTACK_KUBE__IMAGE": "x:1", "WSGISTACK_KUBE__HOSTS": "a.example.com",
           "WSGISTACK_SERVER__SERVER_NAMES": "*.example.com"}
    files = render_kube(load_config("/srv/shop", env=env).config, facts)
    assert any(f.path == "ingress.yaml" for f in files)


def test_command_writes_the_base_and_refuses_a_missing_image(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wsgistack.cli import main

    project = tmp_path / "my_shop"
    project.mkdir()
    (project / "wsgistack.toml").write_text('[kube]\nreplicas = 3\n')
    runner = CliRunner()
    out = tmp_path / "deploy"
    result = runner.invoke(main, ["kube", str(project), "--no-detect", "--out", str(out)])
    assert result.exit_code == 2 and "kube.E001" in result.output, result.output
    result = runner.invoke(main, ["kube", str(project), "--no-detect", "--image", "r.example.com/shop:2", "--out", str(out),
                                  "--layout", "split", "--max-replicas", "4"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["kustomization.yaml", "configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "migrate-job.yaml", "hpa.yaml"])
    deployment = yaml.safe_load((out / "deployment.yaml").read_text())
    assert deployment["metadata"]["name"] == "my-shop"
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]] == ["nginx", "app"]
    hpa = yaml.safe_load((out / "hpa.yaml").read_text())
    assert hpa["spec"]["minReplicas"] == 3  # kube.replicas from the file, within the CLI's bound

    # Autoscaling off again: the old hpa.yaml goes (it looked current beside the base); a file
    # of the user's in the same directory stays.
    (out / "mine.yaml").write_text("kind: ConfigMap\n")
    result = runner.invoke(main, ["kube", str(project), "--no-detect", "--image", "r.example.com/shop:2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "hpa.yaml").exists() and "removed" in result.output
    assert (out / "mine.yaml").read_text() == "kind: ConfigMap\n"


def test_run_processes_off_leaves_role_all_without_background_processes() -> None:
    """What WSGISTACK_RUN_PROCESSES=false in the web container means to the process manager."""
    from wsgistack.plan.stack import background_processes

    env = {"WSGISTACK_PROCESSES__SENDALERTS__COMMAND": "python manage.py sendalerts"}
    assert [b.name for b in background_processes(load_config("/srv/shop", env=env).config)] == ["sendalerts"]
    off = load_config("/srv/shop", env={**env, "WSGISTACK_RUN_PROCESSES": "false"}).config
    assert background_processes(off) == ()
    worker = load_config("/srv/shop", env={**env, "WSGISTACK_RUN_PROCESSES": "false", "WSGISTACK_ROLE": "worker",
                                           "WSGISTACK_PROCESS": "sendalerts"}).config
    assert [b.name for b in background_processes(worker)] == ["sendalerts"]


def test_manifests_match_the_image() -> None:
    """The uid, port and health probe the manifests use are the image's (Dockerfile.j2)."""
    from tests.unit.container.test_container import files
    from wsgistack.render.kube import HEALTHCHECK

    text = files()["Dockerfile"]
    assert f"USER {IMAGE_UID}:0" in text
    assert "CMD " + json.dumps(list(HEALTHCHECK)).replace('","', '", "') in text
    files = by_kind("split-hpa-ingress")
    app = files["Deployment"]["spec"]["template"]["spec"]["containers"][1]
    assert app["livenessProbe"]["exec"]["command"] == list(HEALTHCHECK)


@pytest.mark.parametrize("case", sorted(CASES))
def test_kustomize_builds_the_base(case: str, tmp_path: Path) -> None:
    """`kubectl kustomize` (what `kubectl apply -k` runs first) builds the base offline: every
    resource comes out once, in the namespace kube.namespace names."""
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the schema and policy proofs above do not need it)")
    for name, content in rendered(case).items():
        (tmp_path / name).write_text(content)
    proc = subprocess.run([kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60)
    if "unknown command" in proc.stderr:
        pytest.skip(f"this kubectl has no kustomize: {proc.stderr.strip()[:100]}")
    assert proc.returncode == 0, proc.stderr
    built = [d for d in yaml.safe_load_all(proc.stdout) if d]
    files = manifests(case)
    files.pop("kustomization.yaml")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in files.values())
    namespace = config_of(case).kube.namespace
    assert {d["metadata"].get("namespace", "") for d in built} == {namespace}
