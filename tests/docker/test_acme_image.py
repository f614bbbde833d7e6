"""tls.mode = acme in the image (`wsgistack build --acme` installs certbot): a certificate
from Debian's pebble on the host's loopback (host networking), validated over HTTP-01
through the container's nginx, kept on a volume: a re-created container reuses it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import WSGISTACK, free_port
from tests.docker.conftest import Container, docker, unique
from tests.docker.test_tls_image import https_get, plain_get
from tests.integration.test_acme import Pebble, start_pebble

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def acme_image(docker_engine: None, demo_context: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ctx = tmp_path_factory.mktemp("acme") / "demo"
    shutil.copytree(demo_context, ctx, ignore=shutil.ignore_patterns("Dockerfile", ".dockerignore"))
    tag = unique("acme") + ":test"
    started = time.monotonic()
    proc = subprocess.run([*WSGISTACK, "build", str(ctx), "--acme", "-t", tag, "--plain", "--force"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"acme image build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    print(f"\nbuilt {tag} in {time.monotonic() - started:.1f}s")
    yield tag
    docker("image", "rm", "-f", tag, check=False)


def test_image_obtains_a_certificate_and_keeps_it_on_its_volume(acme_image: str, tmp_path: Path) -> None:
    http_port, tls_port = free_port(), free_port()
    pebble: Pebble = start_pebble(tmp_path, http_port)
    shared = tmp_path / "pebble-ca-shared"
    shared.mkdir(mode=0o755)
    shutil.copy(pebble.ca_bundle, shared / "ca.pem")
    (shared / "ca.pem").chmod(0o644)
    volume = unique("acme-tls")
    env = {"PORT": str(http_port), "WSGISTACK_TLS__MODE": "acme", "WSGISTACK_TLS__PORT": str(tls_port),
           "WSGISTACK_TLS__DIRECTORY": pebble.directory, "WSGISTACK_TLS__CA_BUNDLE": "/pebble/ca.pem",
           "WSGISTACK_TLS__CHALLENGE_PORT": str(http_port), "WSGISTACK_TLS__EMAIL": "ops@example.com",
           "WSGISTACK_SERVER__SERVER_NAMES": "localhost 127.0.0.1"}
    args = ("-v", f"{volume}:/data/tls", "-v", f"{shared}:/pebble:ro")
    made: list[Container] = []
    try:
        c = Container(acme_image, env=env, args=args)
        made.append(c)
        root = pebble.root(tmp_path / "root.pem")
        page = https_get(tls_port, root, timeout=120)
        assert page.status == 200, c.logs()
        # The page can answer before the manager has relayed the renewer's line (batches, 0.1 s).
        assert "certificate obtained: nginx reloaded gracefully" in c.logs_with("certificate obtained: nginx reloaded gracefully")
        deadline = time.monotonic() + 30
        while plain_get(http_port, "/posts/").status != 308 and time.monotonic() < deadline:
            time.sleep(0.2)  # the old nginx workers answer plain HTTP until they have quit
        assert plain_get(http_port, "/posts/").getheader("Location") == f"https://localhost:{tls_port}/posts/"
        c.close()

        again = Container(acme_image, env=env, args=args)
        made.append(again)
        assert https_get(tls_port, root, timeout=120).status == 200, again.logs()
        time.sleep(1)
        assert "obtaining a certificate" not in again.logs()  # the account and certificate came from the volume
    finally:
        for container in made:
            container.close()
        docker("volume", "rm", "-f", volume, check=False)
        if pebble.proc is not None:
            pebble.proc.terminate()
            pebble.proc.wait(timeout=10)
