"""The probe `rollout --verify` / `reload --verify` drive (ops/verify.py), against a small local
HTTP server that fails on purpose: every failure counted, nothing retried, the line it says."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wsgistack.errors import WsgistackError
from wsgistack.ops.verify import Probe, ProbeOptions, baseline, verdict


class Server(ThreadingHTTPServer):
    daemon_threads = True
    fail_gets = False
    connections = 0
    seen: list[tuple[str, str, str]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says close

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1  # type: ignore[attr-defined]

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append(("GET", self.path, self.headers.get("Host", "")))  # type: ignore[attr-defined]
        if self.path == "/missing":
            self._answer(404, b"no")
        else:
            self._answer(500 if self.server.fail_gets else 200, b"ok")  # type: ignore[attr-defined]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.seen.append(("POST", self.path, body))  # type: ignore[attr-defined]
        self._answer(302, b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def options(srv: Server, **kw: object) -> ProbeOptions:
    return ProbeOptions(host="127.0.0.1", port=srv.server_address[1], host_header="example.com", pause=0.01, **kw)  # type: ignore[arg-type]


def test_every_request_counted_gets_and_posts_new_and_kept_alive_connections(server: Server) -> None:
    with Probe(options(server, get_path="/page", post_path="/form", clients=4, max_requests=80)) as probe:
        baseline(probe)
        probe.swap_started()
        probe.wait_for(80, timeout=20)
        probe.swap_ended()
    result = probe.result
    assert len(result.samples) == 80 and not result.failed()
    assert {s.method for s in result.samples} == {"GET", "POST"}
    assert all(host == "example.com" for method, _, host in server.seen if method == "GET")
    assert any(body.startswith("wsgistack_probe=") for method, _, body in server.seen if method == "POST")
    # Two clients open a connection per request, two keep theirs: fewer connections than requests.
    assert 40 < server.connections < 80
    line = result.line()
    assert line.startswith("80 requests, 0 failed, p99 during the swap ") and line.count(" ms") == 1
    verdict(result)  # nothing failed: no error


def test_failures_are_counted_not_retried_and_make_verify_e001(server: Server) -> None:
    with Probe(options(server, get_path="/", clients=2, max_requests=2000)) as probe:
        baseline(probe)
        probe.swap_started()
        server.fail_gets = True
        time.sleep(0.2)
        server.fail_gets = False
        time.sleep(0.1)
        probe.swap_ended()
        probe.stop()
    failed = probe.result.failed()
    assert failed and all("500" in s.problem for s in failed)
    assert len([m for m, _, _ in server.seen]) == len(probe.result.samples)  # each request sent once
    assert f", {len(failed)} failed," in probe.result.line()
    with pytest.raises(WsgistackError) as err:
        verdict(probe.result)
    assert err.value.id == "verify.E001" and "500" in err.value.message


def test_a_path_that_fails_before_anything_changed_is_verify_e002(server: Server) -> None:
    with pytest.raises(WsgistackError) as err, Probe(options(server, get_path="/missing", clients=2)) as probe:
        baseline(probe)
    assert err.value.id == "verify.E002" and "404" in err.value.message and "nothing was touched" in err.value.hint


def test_a_probe_is_bounded_in_requests_and_time(server: Server) -> None:
    with Probe(options(server, clients=3, max_requests=10)) as probe:
        probe.wait_for(10, timeout=10)
        time.sleep(0.2)
    assert len(probe.result.samples) == 10
    probe = Probe(options(server, clients=2, time_limit=0.3, max_requests=10**6))
    with probe:
        for thread in probe._threads:
            thread.join(timeout=10)
        assert not any(t.is_alive() for t in probe._threads)  # stopped by the time limit alone
