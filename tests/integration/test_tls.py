"""HTTPS with real nginx: a dev certificate (self-signed), provided files, and their errors.

sslyze checks the served endpoint against Mozilla's "intermediate" profile; it validates the
chain, so it is given the CA that issued the leaf (the dev CA here, a local CA for files).
The ACME mode, with a real ACME server (pebble), is in test_acme.py.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, Stack, clean_env, free_port, shared_dir, start_stack

pytestmark = pytest.mark.integration


def https_context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def get(url_host: str, port: int, path: str, *, tls_ca: Path | None = None, timeout: float = 10,
        host: str | None = None) -> http.client.HTTPResponse:
    """One request; ``host``: another Host header over plain HTTP (connecting to url_host)."""
    if tls_ca is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(url_host, port, timeout=timeout)
    else:
        ctx = ssl.create_default_context(cafile=str(tls_ca))
        conn = http.client.HTTPSConnection(url_host, port, timeout=timeout, context=ctx)
    conn.request("GET", path, headers={"Connection": "close", **({"Host": host} if host else {})})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def wait_https(stack: Stack, port: int, ca: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.proc.poll() is not None:
            raise AssertionError(f"wsgistack exited early:\n{stack.log()}")
        try:
            get("localhost", port, "/", tls_ca=ca, timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"HTTPS on {port} did not answer:\n{stack.log()}")


def alpn(port: int, ca: Path) -> str | None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with https_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.selected_alpn_protocol()


def sslyze(port: int, ca: Path) -> subprocess.CompletedProcess[str]:
    """Mozilla's intermediate profile, as sslyze checks it (exit code 0 = compliant)."""
    sslyze_main = [sys.executable, "-m", "sslyze"]
    if subprocess.run([*sslyze_main, "--help"], capture_output=True).returncode != 0:
        pytest.fail("sslyze is missing: pip install -e '.[test]'")
    return subprocess.run([*sslyze_main, "--mozilla_config", "intermediate", "--certinfo_ca_file", str(ca),
                           f"localhost:{port}"], capture_output=True, text=True, timeout=240)


def start_tls(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[Stack, int]:
    tls_port = free_port()
    stack = start_stack(tmp_path, EXAMPLES / "hello", "--tls-port", str(tls_port), *args, env=env, wait=False)
    return stack, tls_port


def test_self_signed_dev_certificate(tmp_path: Path, stacks: list[Stack]) -> None:
    data = shared_dir(tmp_path, "tlsdata")
    stack, port = start_tls(tmp_path, "--tls", "self-signed", env=clean_env(WSGISTACK_TLS__DATA_DIR=str(data)))
    stacks.append(stack)
    ca = data / "dev-ca" / "ca.pem"
    wait_https(stack, port, ca)
    # nginx answers HTTPS a moment before the manager's readiness loop sees it and says so.
    deadline = time.monotonic() + 10
    while f"serving https://localhost:{port}" not in stack.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"serving https://localhost:{port}" in stack.log()
    assert stack.log().count("update-ca-certificates") == 1  # how to trust the dev CA, once

    page = get("localhost", port, "/hello", tls_ca=ca)
    assert page.status == 200 and page.getheader("Strict-Transport-Security") is None  # no HSTS for a dev cert
    assert alpn(port, ca) == "h2"

    plain = get("127.0.0.1", stack.port, "/hello?x=1")  # Host 127.0.0.1 is a served name
    assert plain.status == 308
    assert plain.getheader("Location") == f"https://127.0.0.1:{port}/hello?x=1"
    # ...except the health paths, which a balancer or kubelet checks over HTTP.
    assert get("localhost", stack.port, "/_wsgistack/live").status == 200
    assert get("127.0.0.1", stack.port, "/_wsgistack/ready", host="unknown.example").status == 200

    result = sslyze(port, ca)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "OK - Compliant" in result.stdout


def test_provided_files_with_hsts(tmp_path: Path, stacks: list[Stack]) -> None:
    from wsgistack.tls.certs import ensure_self_signed

    certs = shared_dir(tmp_path, "certs")
    leaf = ensure_self_signed(certs / "ca", ("localhost", "127.0.0.1"), certs / "site")
    env = clean_env(WSGISTACK_TLS__MODE="files", WSGISTACK_TLS__CERT=str(leaf.cert), WSGISTACK_TLS__KEY=str(leaf.key),
                    WSGISTACK_SERVER__SERVER_NAMES="localhost 127.0.0.1")
    stack, port = start_tls(tmp_path, env=env)
    stacks.append(stack)
    wait_https(stack, port, leaf.ca)
    page = get("localhost", port, "/hello", tls_ca=leaf.ca)
    assert page.status == 200
    assert page.getheader("Strict-Transport-Security") == "max-age=63072000"
    assert alpn(port, leaf.ca) == "h2"
    moved = get("localhost", stack.port, "/a/b")
    assert (moved.status, moved.getheader("Location")) == (308, f"https://localhost:{port}/a/b")
    result = sslyze(port, leaf.ca)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def run_fails(tmp_path: Path, env: dict[str, str]) -> str:
    stack, _ = start_tls(tmp_path, env=env)
    code = stack.proc.wait(timeout=60)
    log = stack.log()
    assert code == 1, log
    assert "Traceback" not in log
    assert "error[doctor.E001]: refusing to start" in log
    return log


def test_missing_certificate_file_refuses_to_start(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "site.pem"
    log = run_fails(tmp_path, clean_env(WSGISTACK_TLS__MODE="files", WSGISTACK_TLS__CERT=str(missing),
                                        WSGISTACK_TLS__KEY=str(missing.with_suffix(".key"))))
    assert "error[tls.E101]: tls.cert (from env WSGISTACK_TLS__CERT" in log
    assert f"{missing} does not exist" in log and "hint: set tls.cert" in log


def test_key_of_another_certificate_refuses_to_start(tmp_path: Path) -> None:
    from wsgistack.tls.certs import ensure_self_signed

    certs = shared_dir(tmp_path, "certs")
    one = ensure_self_signed(certs / "ca", ("localhost",), certs / "one")
    two = ensure_self_signed(certs / "ca", ("other.test",), certs / "two")
    log = run_fails(tmp_path, clean_env(WSGISTACK_TLS__MODE="files", WSGISTACK_TLS__CERT=str(one.cert),
                                        WSGISTACK_TLS__KEY=str(two.key), WSGISTACK_SERVER__SERVER_NAMES="localhost"))
    assert "error[tls.E103]" in log and "is not the key of" in log and "hint: pair tls.cert and tls.key" in log
