"""tls.mode = acme against a real ACME server: Debian's pebble (Let's Encrypt's test CA) on
loopback, validating the HTTP-01 challenge for real over nginx's own webroot.

The name is localhost (it resolves to 127.0.0.1); pebble fetches the challenge from the
port it is told (httpPort), which is the stack's server.port (tls.challenge_port).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, Stack, clean_env, descendants, free_port, shared_dir, start_stack
from tests.integration.test_tls import alpn, get, sslyze

pytestmark = pytest.mark.integration

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"


@dataclass
class Pebble:
    directory: str
    ca_bundle: Path  # verifies pebble's own HTTPS listener
    management: int
    proc: subprocess.Popen[bytes] | None = None

    def root(self, dest: Path) -> Path:
        """The root pebble issues from (it makes a new one each start)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management}/roots/0", context=ctx, timeout=10) as resp:  # noqa: S310
            dest.write_bytes(resp.read())
        return dest


def start_pebble(tmp_path: Path, http_port: int) -> Pebble:
    if not os.path.exists(PEBBLE):
        pytest.fail("pebble is missing (make system-deps installs it)")
    from wsgistack.tls.certs import ensure_self_signed

    own = ensure_self_signed(tmp_path / "pebble-ca", ("localhost", "127.0.0.1"), tmp_path / "pebble-leaf")
    port, management = free_port(), free_port()
    config = {"pebble": {
        "listenAddress": f"127.0.0.1:{port}", "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(own.cert), "privateKey": str(own.key),
        "httpPort": http_port, "tlsPort": free_port(), "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}
    conf = tmp_path / "pebble.json"
    conf.write_text(json.dumps(config))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    env.pop("PEBBLE_VA_ALWAYS_VALID", None)  # the HTTP-01 challenge is validated for real
    log = open(tmp_path / "pebble.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([PEBBLE, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            socket.create_connection(("127.0.0.1", management), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "pebble.log").read_text()
            time.sleep(0.1)
    return Pebble(f"https://127.0.0.1:{port}/dir", own.cert.parent.parent / "pebble-ca" / "dev-ca" / "ca.pem",
                  management, proc)


@pytest.fixture
def pebbles() -> Iterator[list[Pebble]]:
    started: list[Pebble] = []
    yield started
    for p in started:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.terminate()
            p.proc.wait(timeout=10)


def renewer_pid(stack: Stack) -> int:
    for pid in descendants(stack.proc.pid):
        try:
            if b"wsgistack.tls.renewer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError(f"no renewer process:\n{stack.log()}")


def wait_for(predicate, what: str, stack: Stack, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.proc.poll() is not None:
            raise AssertionError(f"wsgistack exited while waiting for {what}:\n{stack.log()}")
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{stack.log()}")


def acme_stack(tmp_path: Path, http_port: int, tls_port: int, directory: str, ca_bundle: Path,
               challenge_port: int | None = None) -> Stack:
    data = shared_dir(tmp_path, "tlsdata")
    env = clean_env(WSGISTACK_TLS__MODE="acme", WSGISTACK_TLS__DIRECTORY=directory, WSGISTACK_TLS__CA_BUNDLE=str(ca_bundle),
                    WSGISTACK_TLS__EMAIL="ops@example.com", WSGISTACK_TLS__DATA_DIR=str(data),
                    WSGISTACK_TLS__PORT=str(tls_port), WSGISTACK_TLS__CHALLENGE_PORT=str(challenge_port or http_port),
                    WSGISTACK_SERVER__SERVER_NAMES="localhost 127.0.0.1")
    # pebble must know the HTTP port before the stack starts: ours wins over start_stack's (last --port).
    stack = start_stack(tmp_path, EXAMPLES / "hello", "--port", str(http_port), env=env, wait=False)
    stack.port, stack.url = http_port, f"http://127.0.0.1:{http_port}"
    return stack


def serial(port: int, ca: Path) -> int:
    from cryptography import x509

    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def load(port: int, ca: Path, stop: threading.Event, results: dict[str, int], limit: int = 20000) -> None:
    """Bounded load over HTTPS: one request after another on fresh connections (each new TLS
    handshake lands on whichever nginx workers are current), until stopped or at the limit."""
    ctx = ssl.create_default_context(cafile=str(ca))
    while not stop.is_set() and results["ok"] + results["failed"] < limit:
        import http.client

        try:
            conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
            conn.request("GET", "/hello", headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            ok = resp.status == 200 and body == b"Hello, world!"
        except OSError:
            ok = False
        results["ok" if ok else "failed"] += 1



def test_certificate_from_pebble_then_renewal_under_load_drops_nothing(tmp_path: Path, stacks: list[Stack],
                                                                      pebbles: list[Pebble]) -> None:
    http_port, tls_port = free_port(), free_port()
    # The CA is down at first: the renewer reports the failure with the CA's (here: the
    # connection's) message and an id, and plain HTTP serves the app meanwhile.
    ca_dir = tmp_path / "ca-early"
    from wsgistack.tls.certs import ensure_self_signed

    early = ensure_self_signed(ca_dir, ("localhost",), ca_dir / "leaf")
    pebble_port = free_port()
    stack = acme_stack(tmp_path, http_port, tls_port, f"https://127.0.0.1:{pebble_port}/dir", early.ca)
    stacks.append(stack)
    wait_for(lambda: "error[tls.E001]" in stack.log(), "the first attempt to fail", stack)
    assert "Traceback" not in stack.log()
    assert "hint: read the CA's message above" in stack.log_with("hint: read the CA's message above")
    page = get("127.0.0.1", http_port, "/hello")
    assert page.status == 200  # HTTP answers while there is no certificate (no redirect yet)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", tls_port), timeout=2).close()  # HTTPS is not served yet

    # Now the CA: the same stack, pebble on the port it was told; USR1 retries at once.
    stack.stop()
    stacks.remove(stack)
    pebble = start_pebble(tmp_path, http_port)
    pebbles.append(pebble)
    stack = acme_stack(tmp_path, http_port, tls_port, pebble.directory, pebble.ca_bundle)
    stacks.append(stack)
    wait_for(lambda: "certificate obtained: nginx reloaded gracefully" in stack.log(), "the first certificate", stack)
    root = pebble.root(tmp_path / "pebble-root.pem")
    # pebble's chain: leaf + intermediate; the client trusts pebble's root.
    wait_for(lambda: _answers(tls_port, root), "HTTPS with the new certificate", stack)
    assert get("localhost", tls_port, "/hello", tls_ca=root).status == 200
    # nginx's reload is asynchronous: the old workers answer plain HTTP until they have quit.
    wait_for(lambda: get("localhost", http_port, "/x").status == 308, "HTTP to redirect", stack, timeout=30)
    moved = get("localhost", http_port, "/x")
    assert (moved.status, moved.getheader("Location")) == (308, f"https://localhost:{tls_port}/x")
    assert get("localhost", tls_port, "/", tls_ca=root).getheader("Strict-Transport-Security") == "max-age=63072000"
    assert alpn(tls_port, root) == "h2"
    wait_for(lambda: "next renewal" in stack.log(), "the renewal schedule", stack, timeout=30)
    assert "two thirds of its lifetime" in stack.log_with("two thirds of its lifetime")  # pebble 2.4 has no ARI
    first = serial(tls_port, root)

    # Force a renewal under bounded load: 0 failed requests across nginx's reload.
    stop, results = threading.Event(), {"ok": 0, "failed": 0}
    workers = [threading.Thread(target=load, args=(tls_port, root, stop, results)) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        time.sleep(1.0)
        before = results["ok"]
        os.kill(renewer_pid(stack), signal.SIGUSR1)
        wait_for(lambda: "certificate renewed: nginx reloaded gracefully" in stack.log(), "the renewal", stack)
        wait_for(lambda: serial(tls_port, root) != first, "the renewed certificate to be served", stack, timeout=30)
        time.sleep(1.5)  # and keep the load on while the old workers finish
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    print(f"requests across the renewal: {results['ok']} ok, {results['failed']} failed (ok before the renewal: {before})")
    assert results["failed"] == 0, results
    assert results["ok"] > before > 0
    (tmp_path.parent / "acme-renewal-load.json").write_text(json.dumps(results))

    # The account key and the certificates are in the data dir: a restart reuses them.
    acme_dir = Path(os.path.realpath(tmp_path / "tlsdata")) / "acme"
    assert list((acme_dir / "accounts").rglob("private_key.json"))
    assert (acme_dir / "live" / "localhost" / "fullchain.pem").is_file()

    # Mozilla's intermediate profile. Debian's pebble (2.4) issues every certificate for 5
    # years, which sslyze's lifespan rule (< 366 days; Let's Encrypt issues 90) flags: that
    # one finding is the test CA's, every rule about nginx's TLS must pass (and all pass for
    # the dev and provided certificates in test_tls.py).
    result = sslyze(tls_port, root)
    report = result.stdout[result.stdout.find("COMPLIANCE AGAINST"):]
    problems = [ln.strip() for ln in report.splitlines() if ln.strip().startswith("* ")]
    assert "Checking results against Mozilla's \"intermediate\" configuration" in report, result.stdout[-3000:]
    assert result.returncode == 0 or problems == [
        "* maximum_certificate_lifespan: Certificate life span is 1825 days, should be less than 366."
    ], report


def _answers(port: int, ca: Path) -> bool:
    try:
        return get("localhost", port, "/hello", tls_ca=ca, timeout=2).status == 200
    except OSError:
        return False


def test_unreachable_challenge_port_is_named(tmp_path: Path, stacks: list[Stack], pebbles: list[Pebble]) -> None:
    """pebble is told to validate on a port where nothing listens (as when port 80 does not
    reach nginx): the failure says so, with the CA's own message, and HTTP keeps serving."""
    http_port, tls_port, closed = free_port(), free_port(), free_port()
    pebble = start_pebble(tmp_path, closed)
    pebbles.append(pebble)
    stack = acme_stack(tmp_path, http_port, tls_port, pebble.directory, pebble.ca_bundle, challenge_port=closed)
    stacks.append(stack)
    # The error's lines are relayed one by one: wait for its last one (the hint), not its first.
    wait_for(lambda: "hint: point the names' DNS at this machine" in stack.log(), "the challenge-port error", stack)
    log = stack.log()
    assert "error[tls.E002]" in log
    assert f"port {closed} of localhost does not reach this nginx" in log
    assert "the CA said:" in log and "hint: point the names' DNS at this machine" in log
    assert "Traceback" not in log
    assert get("127.0.0.1", http_port, "/hello").status == 200
