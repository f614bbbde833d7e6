"""Golden files for `wsgistack kube`: the exact manifests for representative configs.

Regenerate after an intended template change with ``UPDATE_GOLDEN=1 pytest tests/golden``
and review the diff like code. The schema and policy proofs (tests/unit/container/test_kube.py)
run over these same cases.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import pytest

from wsgistack.config import load_config
from wsgistack.render.kube import render_kube
from wsgistack.plan.image import DataDir, ProjectFacts

DATA = Path(__file__).parent / "kube"
PROJECT = Path("/srv/shop")

DJANGO_FACTS = ProjectFacts(
    path=PROJECT, name="shop", app_kind="django",
    data_dirs=(DataDir("static", "/static/", PurePosixPath("var/static")),
               DataDir("media", "/media/", PurePosixPath("var/media"))))
FLASK_FACTS = ProjectFacts(path=PROJECT, name="flask_shop", app_kind="flask", data_dirs=())

IMAGE = {"WSGISTACK_KUBE__IMAGE": "registry.example.com/shop:1.4"}
CASES: dict[str, tuple[dict[str, str], ProjectFacts]] = {
    # the defaults: one container, 2 replicas, no HPA, no Ingress
    "single-default": (IMAGE, DJANGO_FACTS),
    # nginx + app containers sharing the socket; HPA, Ingress with TLS, a namespace, uploads
    # on a claim, collectstatic in the Job, extra settings, a longer stop
    "split-hpa-ingress": (
        {**IMAGE, "WSGISTACK_KUBE__LAYOUT": "split", "WSGISTACK_KUBE__NAMESPACE": "shop-prod",
         "WSGISTACK_KUBE__AUTOSCALE_MIN": "3", "WSGISTACK_KUBE__AUTOSCALE_MAX": "12",
         "WSGISTACK_KUBE__HOSTS": "shop.example.com www.shop.example.com", "WSGISTACK_KUBE__INGRESS_CLASS": "nginx",
         "WSGISTACK_KUBE__TLS_SECRET": "shop-tls", "WSGISTACK_KUBE__MEDIA_CLAIM": "shop-media",
         "WSGISTACK_KUBE__COLLECTSTATIC": "job", "WSGISTACK_KUBE__ENV": "DJANGO_DEBUG=0,SENTRY_ENVIRONMENT=prod",
         "WSGISTACK_SERVER__SERVER_NAMES": "shop.example.com *.shop.example.com", "WSGISTACK_STOP_TIMEOUT": "20",
         "WSGISTACK_KUBE__PRESTOP_PAUSE": "10", "WSGISTACK_KUBE__MAX_SURGE": "1"},
        DJANGO_FACTS),
    # no data dirs (a Flask app with its static in the package), a named Secret, 1 replica
    "single-flask-one-replica": (
        {**IMAGE, "WSGISTACK_KUBE__REPLICAS": "1", "WSGISTACK_KUBE__SECRET": "flask-env",
         "WSGISTACK_KUBE__NAME": "storefront", "WSGISTACK_SERVER__SERVER_NAMES": "*"},
        FLASK_FACTS),
    # background processes: one Deployment each; the web container does not run them
    "single-processes": (
        {**IMAGE, "WSGISTACK_PROCESSES__SENDALERTS__COMMAND": "python manage.py sendalerts",
         "WSGISTACK_PROCESSES__CELERY_BEAT__COMMAND": "celery -A shop beat",
         "WSGISTACK_PROCESSES__CELERY_BEAT__STOP_TIMEOUT": "3",
         # a queue worker that finishes a 30 s job on SIGTERM: its pod's grace follows
         "WSGISTACK_PROCESSES__RQ__COMMAND": "rq worker", "WSGISTACK_PROCESSES__RQ__STOP_TIMEOUT": "35"},
        DJANGO_FACTS),
}


def rendered(case: str) -> dict[str, str]:
    env, facts = CASES[case]
    loaded = load_config(PROJECT, env=env)
    return {f.path: f.content for f in render_kube(loaded.config, facts)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    files = rendered(case)
    target = DATA / case
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name, content in files.items():
            (target / name).write_text(content)
    expected = {p.name: p.read_text() for p in target.iterdir()}
    assert sorted(files) == sorted(expected)
    for name, content in files.items():
        assert content == expected[name], f"{case}/{name} differs from the golden file"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_manifests_are_the_same_for_granian(case: str) -> None:
    """server.app_server = "granian" changes nothing in the manifests: the same image roles,
    probes (nginx's live path, the shim's ready path), the same socket on the same emptyDir in
    the split layout, the same stop budget. The image carries the config that names it."""
    env, facts = CASES[case]
    loaded = load_config(PROJECT, env={**env, "WSGISTACK_SERVER__APP_SERVER": "granian"})
    assert {f.path: f.content for f in render_kube(loaded.config, facts)} == rendered(case)
