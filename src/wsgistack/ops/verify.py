"""Bounded probe traffic while something changes (`rollout --verify`, `reload --verify`), and the
count of every request that failed: ``N requests, F failed, p99 during the swap X ms``.

A few clients (threads), half opening a new connection for each request, half keeping one
alive, send GETs on a path the user names and, optionally, POSTs to another, a short pause
apart, until the change is done (plus a short tail), ``max_requests`` or ``time_limit``:
whichever comes first. A request fails when no complete response comes back or the status is
not 2xx/3xx. Nothing is retried, with one exception a browser makes too: a request sent on a
kept-alive connection that the server had already closed (an idle timeout) is sent once more
on a new connection when not one byte of an answer came back; those are counted apart.

Why threads and ``http.client`` and not a load-testing library: the probe runs inside the
rollout's own process, beside its drain/replace loop and its subprocesses, at tens of requests
a second; Locust (the well-kept one) needs gevent's monkey-patching of that whole process and
some twenty packages in wsgistack's environment, and what the probe must control exactly
(a new connection or a kept-alive one per client, no retries, a timestamp per request to tell
the swap's window from the rest) is what http.client gives without any layer in between.

The tests drive their own scenarios (logged-in users, read-your-writes) through the same
:class:`Probe` with ``scenario``: its counting, its connections and its line are the same.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from wsgistack import ids
from wsgistack.errors import WsgistackError

TIMEOUT = 30.0  # seconds a request may take before it counts as failed


@dataclass(frozen=True)
class ProbeOptions:
    host: str
    port: int
    get_path: str = "/"
    post_path: str = ""  # "" = GETs only
    host_header: str = "localhost"
    clients: int = 4
    pause: float = 0.1  # seconds each client waits between two requests
    max_requests: int = 20000
    time_limit: float = 1800.0


@dataclass
class Sample:
    kind: str  # "GET /" or "POST /upload" or a scenario's own label
    method: str
    started: float
    seconds: float
    ok: bool
    problem: str = ""


class Client:
    """One client: a new connection per request, or one kept alive; cookies kept (a session)."""

    def __init__(self, options: ProbeOptions, keepalive: bool) -> None:
        self.options = options
        self.keepalive = keepalive
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None
        self.reused = False
        self.retries = 0  # requests re-sent on a new connection after a kept-alive one was found closed

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        h = {"Host": self.options.host_header, "User-Agent": "wsgistack-verify", **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if not self.keepalive:
            h["Connection"] = "close"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.options.host, self.options.port, timeout=TIMEOUT)
                self.reused = False
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                text = resp.read().decode(errors="replace")
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                was_reused = self.reused
                self.close()
                if attempt == 0 and self.keepalive and was_reused:
                    self.retries += 1
                    continue
                raise
        for value in resp.headers.get_all("Set-Cookie") or []:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(value)
            for key, morsel in cookie.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[key] = morsel.value
                else:
                    self.cookies.pop(key, None)
        if self.keepalive and not resp.will_close:
            self.reused = True
        else:
            self.close()
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, text

    def form(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """A form POST with Django's CSRF token from the cookie, when there is one."""
        token = {"csrfmiddlewaretoken": self.cookies["csrftoken"]} if "csrftoken" in self.cookies else {}
        body = urlencode({**token, **fields}).encode()
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.reused = False


Check = Callable[[int, dict[str, str], str], str]  # "" = good, else what was wrong


def status_ok(status: int, _headers: dict[str, str], text: str) -> str:
    return "" if 200 <= status < 400 else f"{status} {text[:100]!r}"


@dataclass
class ProbeResult:
    samples: list[Sample] = field(default_factory=list)
    swap: tuple[float, float] | None = None  # monotonic start, end of the change
    keepalive_retries: int = 0

    def of(self, method: str = "") -> list[Sample]:
        return [s for s in self.samples if not method or s.method == method]

    def failed(self, method: str = "") -> list[Sample]:
        return [s for s in self.of(method) if not s.ok]

    @property
    def p99_swap_ms(self) -> float | None:
        if self.swap is None:
            return None
        start, end = self.swap
        during = sorted(s.seconds for s in self.samples if start <= s.started <= end)
        if not during:
            return None
        return round(during[min(len(during) - 1, int(0.99 * len(during)))] * 1000, 1)

    def line(self) -> str:
        """``N requests, F failed, p99 during the swap X ms``, then what the counts are made of."""
        p99 = self.p99_swap_ms
        text = f"{len(self.samples)} requests, {len(self.failed())} failed, p99 during the swap " + (
            f"{p99:g} ms" if p99 is not None else "- (no request during it)")
        parts = [f"{len(self.of('GET'))} GET ({len(self.failed('GET'))} failed)"]
        if self.of("POST"):
            parts.append(f"{len(self.of('POST'))} POST ({len(self.failed('POST'))} failed)")
        if self.keepalive_retries:
            parts.append(f"{self.keepalive_retries} re-sent on a new connection after a kept-alive one was closed")
        return f"{text} ({'; '.join(parts)})"

    def first_failures(self, n: int = 5) -> list[str]:
        return [f"{s.kind}: {s.problem}" for s in self.failed()[:n]]


class Probe:
    """``with Probe(options) as probe: ...change...; probe.swap_started(); ...; probe.swap_ended()``.
    ``scenario(probe, client, index)`` replaces the default loop (GET, then POST) of each client:
    it calls :meth:`step` for each request and returns when :meth:`more` says stop."""

    def __init__(self, options: ProbeOptions, scenario: Callable[[Probe, Client, int], None] | None = None) -> None:
        self.options = options
        self.scenario = scenario or default_scenario
        self.result = ProbeResult()
        self._lock = threading.Lock()
        self._sent = 0
        self._stop_at = float("inf")
        self._threads: list[threading.Thread] = []
        self._clients: list[Client] = []
        self._errors: list[str] = []

    # --- running -------------------------------------------------------------------------------

    def __enter__(self) -> Probe:
        self._deadline = time.monotonic() + self.options.time_limit
        for i in range(self.options.clients):
            client = Client(self.options, keepalive=i % 2 == 1)
            self._clients.append(client)
            thread = threading.Thread(target=self._run, args=(client, i), daemon=True, name=f"probe-{i}")
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, client: Client, index: int) -> None:
        try:
            self.scenario(self, client, index)
        except Exception as exc:  # noqa: BLE001 - a scenario's own bug must not hang the caller
            with self._lock:
                self._errors.append(f"client {index}: {exc!r}")
        finally:
            client.close()

    def more(self) -> bool:
        """Whether a client may send another request (and count it)."""
        if self.options.pause:
            time.sleep(self.options.pause)
        with self._lock:
            now = time.monotonic()
            if self._sent >= self.options.max_requests or now > self._stop_at or now > self._deadline:
                return False
            self._sent += 1
            return True

    def step(self, client: Client, kind: str, method: str, path: str, check: Check = status_ok, *,
             body: bytes | None = None, headers: dict[str, str] | None = None,
             fields: dict[str, str] | None = None) -> tuple[bool, str]:
        """One request, timed and counted; returns (ok, body)."""
        started = time.monotonic()
        try:
            if fields is not None:
                status, got, text = client.form(path, fields)
            else:
                status, got, text = client.request(method, path, body, headers)
            problem = check(status, got, text)
        except (OSError, http.client.HTTPException) as exc:
            client.close()
            text, problem = "", repr(exc)
        sample = Sample(kind, method, started, time.monotonic() - started, not problem, problem)
        with self._lock:
            self.result.samples.append(sample)
        return sample.ok, text

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` requests have answered (the baseline before a change)."""
        deadline = time.monotonic() + timeout
        while len(self.result.samples) < count and time.monotonic() < deadline and any(t.is_alive() for t in self._threads):
            time.sleep(0.05)

    def swap_started(self) -> None:
        self._swap_start = time.monotonic()

    def swap_ended(self) -> None:
        self.result.swap = (getattr(self, "_swap_start", self._deadline), time.monotonic())

    def stop(self, after: float = 0.0) -> None:
        with self._lock:
            self._stop_at = time.monotonic() + after

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT + 5)
        self.result.keepalive_retries = sum(c.retries for c in self._clients)
        if self.result.swap is None and hasattr(self, "_swap_start"):
            self.swap_ended()

    @property
    def errors(self) -> list[str]:
        return list(self._errors)


def default_scenario(probe: Probe, client: Client, index: int) -> None:
    """GET the path; then, when one is named, POST a small form to the other; repeat."""
    options = probe.options
    n = 0
    while probe.more():
        probe.step(client, f"GET {options.get_path}", "GET", options.get_path)
        if options.post_path:
            if not probe.more():
                break
            n += 1
            probe.step(client, f"POST {options.post_path}", "POST", options.post_path,
                       fields={"wsgistack_probe": f"{index}-{n}"})


def baseline(probe: Probe) -> None:
    """Every client's first round answered, and nothing failed: else verify.E002 (the caller
    has changed nothing yet)."""
    per_client = 2 if probe.options.post_path else 1
    probe.wait_for(probe.options.clients * per_client)
    failed = probe.result.failed()
    if failed or not probe.result.samples:
        probe.stop()
        raise WsgistackError(
            ids.VERIFY_E002,
            f"the probe fails before anything was changed: {'; '.join(probe.result.first_failures(3)) or 'no answer'}"
            f" (http://{probe.options.host}:{probe.options.port}, Host {probe.options.host_header})",
            "name a path that answers 2xx or 3xx there (--verify PATH; --verify-post a path that takes a form POST "
            "without a CSRF token); nothing was touched",
        )


def verdict(result: ProbeResult) -> None:
    """verify.E001 when any probe request failed."""
    if result.failed():
        raise WsgistackError(
            ids.VERIFY_E001,
            f"{len(result.failed())} of {len(result.samples)} probe requests failed: {'; '.join(result.first_failures())}",
            "look at the balancer's and the nodes' logs for those seconds (each failure names its request)",
        )
