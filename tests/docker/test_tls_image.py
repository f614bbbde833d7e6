"""HTTPS in the image: the dev certificate (self-signed) on a volume that outlives the
container, and provided files mounted read-only. The demo image is the session's (conftest)."""

from __future__ import annotations

import http.client
import ssl
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.docker.conftest import Container, docker, unique, wait_http

pytestmark = pytest.mark.docker


def https_get(port: int, ca: Path, path: str = "/", timeout: float = 60) -> http.client.HTTPResponse:
    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=ctx)
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            return resp
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def plain_get(port: int, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("localhost", port, timeout=5)
    conn.request("GET", path, headers={"Connection": "close"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_image_serves_https_with_a_dev_certificate_kept_on_a_volume(run_container: type[Container], tmp_path: Path) -> None:
    volume = unique("tls")
    tls_port = free_port()
    env = {"WSGISTACK_TLS__MODE": "self-signed", "WSGISTACK_TLS__PORT": str(tls_port)}
    try:
        c = run_container(env=env, args=("-v", f"{volume}:/data/tls"))
        wait_http(c.url + "/_wsgistack/ready", container=c)  # health over plain HTTP: not redirected
        ca = tmp_path / "ca.pem"
        ca.write_text(docker("exec", c.name, "cat", "/data/tls/dev-ca/ca.pem").stdout)
        page = https_get(tls_port, ca)
        assert page.status == 200, c.logs()
        assert page.getheader("Strict-Transport-Security") is None
        moved = plain_get(c.port, "/posts/")
        assert (moved.status, moved.getheader("Location")) == (308, f"https://localhost:{tls_port}/posts/")
        assert "update-ca-certificates" in c.logs()  # how to trust the CA: said on first use
        health = docker("exec", c.name, "python3", "-I", "-S", "/opt/wsgistack/wsgistack-healthcheck.py", check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        c.close()

        # A new container on the same volume: the same CA (trusted once), not announced again.
        again = run_container(env=env, args=("-v", f"{volume}:/data/tls"))
        assert https_get(tls_port, ca).status == 200, again.logs()
        assert "update-ca-certificates" not in again.logs()
    finally:
        docker("volume", "rm", "-f", volume, check=False)


def test_image_serves_https_with_provided_files(run_container: type[Container], tmp_path: Path) -> None:
    from wsgistack.tls.certs import ensure_self_signed

    leaf = ensure_self_signed(tmp_path / "ca", ("localhost", "127.0.0.1"), tmp_path / "site")
    mounted = tmp_path / "mounted"
    mounted.mkdir(mode=0o755)
    for src in (leaf.cert, leaf.key):
        (mounted / src.name).write_bytes(src.read_bytes())
        (mounted / src.name).chmod(0o644)  # the image's user (uid 10001) must read the key
    mounted.chmod(0o755)
    tmp_path.chmod(0o755)
    tls_port = free_port()
    c = run_container(env={"WSGISTACK_TLS__MODE": "files", "WSGISTACK_TLS__PORT": str(tls_port),
                           "WSGISTACK_TLS__CERT": "/certs/cert.pem", "WSGISTACK_TLS__KEY": "/certs/key.pem",
                           "WSGISTACK_SERVER__SERVER_NAMES": "localhost 127.0.0.1"},
                      args=("-v", f"{mounted}:/certs:ro"))
    page = https_get(tls_port, leaf.ca)
    assert page.status == 200, c.logs()
    assert page.getheader("Strict-Transport-Security") == "max-age=63072000"


def test_compose_with_tls_serves_https_and_keeps_the_dev_ca_across_a_recreate(demo_image: str, demo_context: Path,
                                                                              tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import WSGISTACK

    port, tls_port = free_port(), free_port()
    out = subprocess.run([*WSGISTACK, "compose", str(demo_context), "-t", demo_image, "--host", "127.0.0.1",
                          "--port", str(port), "--tls", "self-signed", "--tls-port", str(tls_port)],
                         capture_output=True, text=True, check=True)
    compose = tmp_path / "compose.yaml"
    compose.write_text(out.stdout)
    project = unique("tls").replace("-", "")
    base = ["docker-compose", "-p", project, "-f", str(compose), "--project-directory", str(demo_context)]
    try:
        up = subprocess.run([*base, "up", "-d", "--no-build"], capture_output=True, text=True, timeout=180)
        assert up.returncode == 0, up.stderr
        web = subprocess.run([*base, "ps", "-q"], capture_output=True, text=True).stdout.split()
        deadline = time.monotonic() + 60
        ca = tmp_path / "ca.pem"
        while time.monotonic() < deadline:
            got = docker("exec", web[0], "cat", "/data/tls/dev-ca/ca.pem", check=False)
            if got.returncode == 0 and "BEGIN CERTIFICATE" in got.stdout:
                ca.write_text(got.stdout)
                break
            time.sleep(0.5)
        assert https_get(tls_port, ca, timeout=90).status == 200
        assert plain_get(port, "/").status == 308
        recreate = subprocess.run([*base, "up", "-d", "--no-build", "--force-recreate"], capture_output=True, text=True, timeout=180)
        assert recreate.returncode == 0, recreate.stderr
        time.sleep(2)
        assert https_get(tls_port, ca, timeout=90).status == 200  # the same dev CA, from the tls volume
    finally:
        subprocess.run([*base, "down", "-v", "--remove-orphans", "-t", "10"], capture_output=True, text=True, timeout=120)
