"""The ops listener: ``/metrics`` (Prometheus), ``/status`` (a live page) and ``/status.json``.

One more process under the process manager (``python -m wsgistack.ops.listener <runtime>/ops.json``,
as the app's user), off unless ``ops.port`` is set. It only observes:

* nginx sends it one datagram per request (``access_log syslog:server=127.0.0.1:PORT``, the
  listener's own port number in UDP): status and upstream time, counted here, so the numbers
  are right across all nginx workers;
* uWSGI's stats socket (workers by state, RSS, respawns, harakiri, the listen queue) and the
  process manager's state file (background process restarts) are read when asked, and every
  ``interval`` seconds for the page's history;
* active connections are the kernel's count of established TCP connections on nginx's ports.

Light on purpose: three threads (datagrams, the sampler, the HTTP server), a ring buffer of
samples, and a page that draws its charts itself (no CDN, no library: it works offline).
"""

from __future__ import annotations

import base64
import bisect
import collections
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, generate_latest

from wsgistack.errors import WsgistackError
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from wsgistack import hosts
from wsgistack.contracts import ManagerState, OpsSettings, Trust
from wsgistack.procfs import listen_queue, read_granian_stats, read_uwsgi_stats, with_rss, worker_respawns

UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
MAX_WINDOW = 20000  # request times kept per sample interval for the latency percentiles
STATUS_CLASS = {b"1": "1xx", b"2": "2xx", b"3": "3xx", b"4": "4xx", b"5": "5xx"}
RECEIVE_PAUSE = 0.01  # seconds between two drains of nginx's socket (the kernel queues meanwhile)


def parse_line(payload: bytes) -> tuple[str, float | None, float] | None:
    """``<190>Nov 30 11:51:23 wsgistack: 200 0.004 0.005`` -> ("2xx", 0.004, 0.005).

    The upstream time is nginx's $upstream_response_time: "-" when nginx answered itself,
    "0.002, 0.010" when it tried two servers (their sum is what the client waited)."""
    _, sep, body = payload.partition(b": ")
    parts = (body if sep else payload).split()
    if len(parts) < 2 or len(parts[0]) != 3 or not parts[0].isdigit():
        return None
    try:
        request_time = float(parts[-1])
    except ValueError:
        return None
    upstream = None
    if len(parts) == 3:  # the usual case: one upstream, or "-"
        if parts[1] != b"-":
            try:
                upstream = float(parts[1])
            except ValueError:
                pass
    else:
        for item in b" ".join(parts[1:-1]).replace(b",", b" ").replace(b":", b" ").split():
            try:
                upstream = (upstream or 0.0) + float(item)
            except ValueError:
                continue
    return STATUS_CLASS.get(parts[0][:1], "other"), upstream, request_time


def established(ports: list[int], proc: str = "/proc/net") -> int:
    """Established TCP connections whose local port is one of nginx's (the kernel's count)."""
    wanted = {f"{p:04X}" for p in ports}
    count = 0
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/{name}") as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] == "01" and fields[1].rsplit(":", 1)[-1] in wanted:
                        count += 1
        except OSError:
            continue
    return count




class State:
    """Counters from nginx's datagrams and the sampled history, behind one lock."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.requests = dict.fromkeys(STATUS_CLASSES, 0)
        self.upstream_buckets = [0] * len(UPSTREAM_BUCKETS)
        self.upstream_count = 0
        self.upstream_sum = 0.0
        self.window: list[float] = []  # request times since the last sample
        interval = float(settings.get("interval", 2))
        self.history: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max(2, int(settings.get("history", 600) / interval))
        )
        self.started = time.time()
        # Sent with the page's POSTs (drain, undrain) in a header a page of another origin
        # cannot set without a CORS preflight, which this listener never answers: CSRF.
        self.csrf = secrets.token_urlsafe(24)

    def count_many(self, parsed: list[tuple[str, float | None, float]]) -> None:
        with self.lock:
            for status_class, upstream, request_time in parsed:
                self.requests[status_class] = self.requests.get(status_class, 0) + 1
                if upstream is not None:
                    self.upstream_count += 1
                    self.upstream_sum += upstream
                    index = bisect.bisect_left(UPSTREAM_BUCKETS, upstream)  # the first bound >= it
                    if index < len(UPSTREAM_BUCKETS):  # beyond the last: only in +Inf (the count)
                        self.upstream_buckets[index] += 1
                if len(self.window) < MAX_WINDOW:
                    self.window.append(request_time)

    # --- what the page and /metrics read -----------------------------------------------

    def uwsgi(self) -> dict[str, Any] | None:
        """The app server's workers: uWSGI's stats socket, or granian's workers (/proc and the
        shim's counters, read_granian_stats)."""
        if self.settings.get("granian_workers"):
            manager = self.manager_state()
            pid = manager.pid("granian") if manager is not None else None
            return read_granian_stats(pid, self.settings["granian_workers"]) if pid else None
        path = self.settings.get("uwsgi_stats")
        try:
            stats = read_uwsgi_stats(path, timeout=1.0) if path else None
        except (OSError, ValueError):
            stats = None
        return with_rss(stats) if stats is not None else None

    def manager_state(self) -> ManagerState | None:
        """The process manager's state, believed as root's or our own file (contracts.Trust)."""
        try:
            return ManagerState.read(self.settings["manager_state"], Trust.me())
        except (OSError, WsgistackError):
            return None

    def manager(self) -> dict[str, Any] | None:
        state = self.manager_state()
        return state.to_json() if state is not None else None

    def queue(self, stats: dict[str, Any] | None) -> tuple[int, int] | None:
        """(waiting, capacity) of uWSGI's listen queue: the kernel's for the unix socket (uWSGI
        reports 0 there, and 0 as its size), uWSGI's own for TCP."""
        path = self.settings.get("uwsgi_socket")
        if path:
            found = listen_queue(path)
            if found is not None:
                return found
        if stats is None:
            return None
        sockets = stats.get("sockets") or [{}]
        return int(stats.get("listen_queue") or 0), int(sockets[0].get("max_queue") or 0)

    def draining(self) -> dict[str, bool] | None:
        """Which drain markers exist: the page's (app_drain) and `wsgistack drain`'s."""
        page, cli = self.settings.get("app_drain"), self.settings.get("drain")
        if not page and not cli:
            return None
        return {"page": bool(page and os.path.lexists(page)), "cli": bool(cli and os.path.lexists(cli))}

    def set_drain(self, on: bool) -> dict[str, bool] | None:
        """The page's drain marker, in the app's private dir (never through a link)."""
        path = self.settings.get("app_drain")
        if not path:
            raise ValueError("this listener has no drain marker (no app server beside it)")
        if on:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return self.draining()

    def balancer(self) -> dict[str, Any] | None:
        """Beside `wsgistack balance`: each node as HAProxy's `show stat` has it (state, check,
        sessions, retries, redispatches, errors), and the frontend's totals."""
        if not self.settings.get("haproxy_socket"):
            return None
        try:
            rows = self._haproxy().stats()
        except WsgistackError as exc:
            return {"error": exc.message, "nodes": []}
        backend = self.settings.get("haproxy_backend", "nodes")
        number = lambda row, key: int(row.get(key) or 0)  # noqa: E731
        nodes = [{
            "name": r["svname"], "address": r.get("addr", ""), "state": r.get("status", ""),
            "check": (r.get("check_status") or "").strip("* "), "weight": number(r, "weight"),
            "sessions": number(r, "scur"), "max_sessions": number(r, "smax"), "total": number(r, "stot"),
            "queue": number(r, "qcur"), "retries": number(r, "wretr"), "redispatches": number(r, "wredis"),
            "errors": number(r, "eresp") + number(r, "econ"), "since": number(r, "lastchg"),
        } for r in rows if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND")]
        front = next((r for r in rows if r.get("svname") == "FRONTEND" and r.get("pxname") == "web"), {})
        back = next((r for r in rows if r.get("svname") == "BACKEND" and r.get("pxname") == backend), {})
        return {"nodes": nodes, "backend": backend,
                "frontend": {"sessions": number(front, "scur"), "total": number(front, "stot"), "rate": number(front, "rate"),
                             "retries": number(back, "wretr"), "redispatches": number(back, "wredis")}}

    def _haproxy(self) -> Any:
        """HAProxy's runtime API (ops.balance.RuntimeAPI) on the balancer's socket."""
        from pathlib import Path

        from wsgistack.ops.balance import RuntimeAPI

        return RuntimeAPI(Path(self.settings["haproxy_socket"]), timeout=2.0)

    def set_node(self, node: str, state: str) -> None:
        names = {n["name"] for n in (self.balancer() or {}).get("nodes", [])}
        if node not in names:
            raise ValueError(f"no node {node!r} in the balancer")
        self._haproxy().set_state(self.settings.get("haproxy_backend", "nodes"), node, state)

    def connections(self) -> int | None:
        ports = self.settings.get("nginx_ports") or []
        return established(ports) if ports else None

    def sample(self, previous: dict[str, Any] | None, now: float) -> dict[str, Any]:
        with self.lock:
            total = sum(self.requests.values())
            errors = self.requests.get("5xx", 0)
            by_class = dict(self.requests)
            window, self.window = self.window, []
        window.sort()
        stats = self.uwsgi()
        workers = (stats or {}).get("workers", [])
        queue = self.queue(stats)
        sample: dict[str, Any] = {
            "t": round(now, 3),
            "requests": total,
            "errors": errors,
            "rps": 0.0,
            "error_rate": 0.0,
            "latency_ms": round(1000 * sum(window) / len(window), 2) if window else None,
            "p95_ms": round(1000 * window[min(len(window) - 1, int(0.95 * len(window)))], 2) if window else None,
            "busy": sum(1 for w in workers if w.get("status") == "busy") if stats else None,
            "workers": len(workers) if stats else None,
            # The kernel's queue on the socket (uWSGI's or granian's); granian's workers also take
            # connections while busy: the requests they hold beyond the one each runs count too.
            "queue": ((queue[0] if queue else 0) + sum(max(0, w.get("in_flight", 0) - 1) for w in workers)
                      if stats and stats.get("server") == "granian" else (queue[0] if queue else None)),
            "rss_mb": round(sum(w.get("rss", 0) for w in workers) / 1048576, 1) if stats else None,
            "connections": self.connections(),
        }
        # Beside the balancer: its clients' requests per second and open sessions.
        balancer = self.balancer() if self.settings.get("haproxy_socket") else None
        if balancer is not None and "frontend" in balancer:
            sample["bal_total"] = balancer["frontend"]["total"]
            sample["bal_sessions"] = balancer["frontend"]["sessions"]
            sample["bal_rps"] = 0.0
            if previous is not None and previous.get("bal_total") is not None:
                dt = max(1e-3, now - previous["t"])
                sample["bal_rps"] = round(max(0, sample["bal_total"] - previous["bal_total"]) / dt, 2)
        # Each status class's count so far, and its rate since the last sample (r2xx: 2xx/s).
        sample["by_class"] = by_class
        for cls in (*STATUS_CLASSES, "other"):
            sample["r" + cls] = 0.0
        if previous is not None:
            dt = max(1e-3, now - previous["t"])
            sample["rps"] = round(max(0, total - previous["requests"]) / dt, 2)
            sample["error_rate"] = round(max(0, errors - previous["errors"]) / dt, 2)
            before = previous.get("by_class", {})
            for cls, count in by_class.items():
                sample["r" + cls] = round(max(0, count - before.get(cls, 0)) / dt, 2)
        with self.lock:
            self.history.append(sample)
        return sample

    def status(self) -> dict[str, Any]:
        stats = self.uwsgi()
        manager = self.manager()
        with self.lock:
            history = list(self.history)
            requests = dict(self.requests)
        workers = [
            {
                "id": w.get("id"), "pid": w.get("pid"), "status": w.get("status"), "requests": w.get("requests"),
                "rss_mb": round(w.get("rss", 0) / 1048576, 1), "avg_ms": round(w.get("avg_rt", 0) / 1000, 1),
                "respawns": worker_respawns(w), "harakiri": w.get("harakiri_count"),
            }
            for w in (stats or {}).get("workers", [])
        ]
        queue = self.queue(stats)
        now = time.time()
        settings = self.settings
        return {
            "time": now,
            "app_server": "granian" if settings.get("granian_workers") else "uwsgi",
            "summary": settings.get("summary", {}),
            "requests": requests,
            "total": sum(requests.values()),
            "uptime": {"stack": round(now - manager["started"], 1) if manager else None,
                       "listener": round(now - self.started, 1)},
            "draining": self.draining(),
            # Drain and undrain from the page: only behind ops.basic_auth (and with the token).
            "controls": bool(settings.get("auth")) and bool(settings.get("app_drain") or settings.get("haproxy_socket")),
            "csrf": self.csrf if settings.get("auth") else None,
            "balancer": self.balancer(),
            "listen_queue": queue[0] if queue else None,
            "listen_queue_limit": queue[1] if queue else None,
            "listen_queue_overflows": stats.get("listen_queue_errors") if stats else None,
            "workers": workers,
            "processes": (manager or {}).get("processes", []),
            "interval": self.settings.get("interval", 2),
            "history": history,
        }


class Collector:
    """Prometheus metrics, computed when scraped (prometheus_client writes the format)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        st = self.state
        with st.lock:
            requests = dict(st.requests)
            buckets, count, total = list(st.upstream_buckets), st.upstream_count, st.upstream_sum
        if st.settings.get("nginx_udp"):
            family = CounterMetricFamily(
                "wsgistack_http_requests", "Requests nginx answered, by status class (health checks excluded)",
                labels=["status_class"],
            )
            for cls in STATUS_CLASSES:
                family.add_metric([cls], requests.get(cls, 0))
            yield family
            cumulative, running = [], 0
            for bound, n in zip(UPSTREAM_BUCKETS, buckets):
                running += n
                cumulative.append((repr(bound), running))
            cumulative.append(("+Inf", count))
            yield HistogramMetricFamily(
                "wsgistack_http_upstream_seconds", "Time uWSGI took to answer, as nginx measured it",
                buckets=cumulative, sum_value=total,
            )
            conns = st.connections()
            if conns is not None:
                yield GaugeMetricFamily("wsgistack_nginx_active_connections", "Established client connections to nginx", value=conns)
        stats = st.uwsgi()
        if stats is not None and stats.get("server") == "granian":
            workers = stats.get("workers", [])
            by_state = GaugeMetricFamily("wsgistack_granian_workers", "granian workers by state", labels=["state"])
            states = collections.Counter(str(w.get("status", "unknown")) for w in workers)
            for name in sorted({"idle", "busy", *states}):
                by_state.add_metric([name], states.get(name, 0))
            rss = GaugeMetricFamily("wsgistack_granian_worker_rss_bytes", "Resident memory of each granian worker",
                                    labels=["worker"])
            reqs = CounterMetricFamily("wsgistack_granian_worker_requests", "Requests each granian worker served",
                                       labels=["worker"])
            in_flight = GaugeMetricFamily("wsgistack_granian_worker_in_flight", "Requests each granian worker holds",
                                          labels=["worker"])
            for w in workers:
                wid = [str(w.get("id"))]
                rss.add_metric(wid, w.get("rss", 0))
                reqs.add_metric(wid, w.get("requests", 0))
                in_flight.add_metric(wid, w.get("in_flight", 0))
            yield from (by_state, rss, reqs, in_flight)
            stats = None
        if stats is not None:
            workers = stats.get("workers", [])
            by_state = GaugeMetricFamily("wsgistack_uwsgi_workers", "uWSGI workers by state", labels=["state"])
            states = collections.Counter(str(w.get("status", "unknown")) for w in workers)
            for name in sorted({"idle", "busy", *states}):
                by_state.add_metric([name], states.get(name, 0))
            yield by_state
            waiting, limit = st.queue(stats) or (0, 0)
            yield GaugeMetricFamily("wsgistack_uwsgi_listen_queue",
                                    "Connections waiting in uWSGI's listen queue (the kernel's count for a unix socket)",
                                    value=waiting)
            yield GaugeMetricFamily("wsgistack_uwsgi_listen_queue_limit", "Capacity of uWSGI's listen queue (its backlog)",
                                    value=limit)
            yield CounterMetricFamily("wsgistack_uwsgi_listen_queue_overflows", "Connections refused: listen queue full",
                                      value=stats.get("listen_queue_errors", 0))
            rss = GaugeMetricFamily("wsgistack_uwsgi_worker_rss_bytes", "Resident memory of each uWSGI worker", labels=["worker"])
            reqs = CounterMetricFamily("wsgistack_uwsgi_worker_requests", "Requests each uWSGI worker served", labels=["worker"])
            respawns = CounterMetricFamily("wsgistack_uwsgi_worker_respawns", "Times each uWSGI worker was respawned "
                                           "(0 for one that never was)", labels=["worker"])
            harakiri = CounterMetricFamily("wsgistack_uwsgi_harakiri", "Requests killed by harakiri (request_timeout), per worker", labels=["worker"])
            for w in workers:
                wid = [str(w.get("id"))]
                rss.add_metric(wid, w.get("rss", 0))
                reqs.add_metric(wid, w.get("requests", 0))
                respawns.add_metric(wid, worker_respawns(w))
                harakiri.add_metric(wid, w.get("harakiri_count", 0))
            yield from (rss, reqs, respawns, harakiri)
        manager = st.manager()
        if manager is not None:
            restarts = CounterMetricFamily("wsgistack_process_restarts", "Restarts of each supervised process", labels=["process"])
            up = GaugeMetricFamily("wsgistack_process_up", "1 while the process runs", labels=["process"])
            for p in manager.get("processes", []):
                restarts.add_metric([p["name"]], p.get("restarts", 0))
                up.add_metric([p["name"]], 1 if p.get("state") == "running" else 0)
            yield restarts
            yield up


def status_page() -> bytes:
    return resources.files("wsgistack").joinpath("ops/status.html").read_bytes()


def make_handler(state: State, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    auth = state.settings.get("auth")
    accepted: set[str] = set()  # Authorization values already checked (PBKDF2 is slow on purpose)
    page = status_page()

    def authorized(header: str | None) -> bool:
        if not auth:
            return True
        if not header or not header.startswith("Basic "):
            return False
        if header in accepted:
            return True
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), auth["salt"].encode(), int(auth["iterations"])).hex()
        ok = hmac.compare_digest(user, auth["user"]) & hmac.compare_digest(digest, auth["hash"])
        if ok and len(accepted) < 64:
            accepted.add(header)
        return bool(ok)

    class Handler(BaseHTTPRequestHandler):
        server_version = "wsgistack-ops"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if not authorized(self.headers.get("Authorization")):
                self._send(401, b"authentication required\n", "text/plain", {"WWW-Authenticate": 'Basic realm="wsgistack ops"'})
                return
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")
            elif path in ("/status", "/status/", "/"):
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/status.json":
                self._send(200, json.dumps(state.status()).encode(), "application/json")
            else:
                self._send(404, b"not found: /metrics, /status, /status.json\n", "text/plain")

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            """Drain/undrain from the page. Only behind ops.basic_auth; each POST carries the
            page's token in X-Wsgistack-Token (another origin's page can neither read the token
            nor send that header without a CORS preflight, never answered here), and an Origin,
            when the browser sends one, must be this listener's own."""
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 4096))
            if not auth:
                self._json(403, {"error": "drain from the page needs ops.basic_auth (set it to turn the buttons on)"})
                return
            if not authorized(self.headers.get("Authorization")):
                self._send(401, b"authentication required\n", "text/plain", {"WWW-Authenticate": 'Basic realm="wsgistack ops"'})
                return
            token = self.headers.get("X-Wsgistack-Token", "")
            origin = self.headers.get("Origin")
            if not hmac.compare_digest(token.encode(), state.csrf.encode()) or (
                    origin is not None and origin != f"http://{self.headers.get('Host', '')}"):
                self._json(403, {"error": "refused: not from this listener's page (its token, its origin)"})
                return
            path, _, query = self.path.partition("?")
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            try:
                if path in ("/drain", "/undrain"):
                    self._json(200, {"draining": state.set_drain(path == "/drain")})
                elif path in ("/balancer/drain", "/balancer/ready"):
                    state.set_node(params.get("node", ""), "drain" if path.endswith("drain") else "ready")
                    self._json(200, {"balancer": state.balancer()})
                else:
                    self._json(404, {"error": "POST /drain, /undrain, /balancer/drain?node=, /balancer/ready?node="})
            except (ValueError, OSError, WsgistackError) as exc:
                self._json(409, {"error": getattr(exc, "message", None) or str(exc)})

        def _json(self, code: int, data: dict[str, Any]) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: not logged
            pass

    return Handler


def bind_udp(address: str) -> socket.socket | None:
    """nginx's datagrams, one per request, on loopback UDP (see Plan.ops_udp)."""
    host, port = hosts.split(address)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # capped by net.core.rmem_max
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        # Observing must never take the site down: serve the rest, say what is missing.
        print(f"cannot receive nginx's request lines on udp {address}: {exc.strerror}; "
              "wsgistack_http_* metrics stay at 0", flush=True)
        sock.close()
        return None
    return sock


def receive(state: State, sock: socket.socket) -> None:
    while True:
        # Wait for one line, take every one that is queued, then pause: under load each
        # wake-up handles hundreds of lines (a wake-up per line cost more than the line).
        lines = [sock.recv(4096)]
        sock.setblocking(False)
        try:
            while len(lines) < 10000:
                lines.append(sock.recv(4096))
        except BlockingIOError:
            pass
        finally:
            sock.setblocking(True)
        state.count_many([p for p in map(parse_line, lines) if p is not None])
        time.sleep(RECEIVE_PAUSE)


def sample_forever(state: State, interval: float) -> None:
    previous = None
    while True:
        previous = state.sample(previous, time.time())
        time.sleep(interval)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


def drop_privileges(user: str, group: str) -> None:
    """Started as root (so that wsgistack's own install, a pipx venv under /root, is readable
    to it), the listener becomes the app's user once it has imported everything and bound its
    sockets, before it reads a request or any file the app's user could write."""
    import grp
    import os
    import pwd

    entry = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    os.setgroups([])
    os.setgid(gid)
    os.setuid(entry.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:  # pragma: no cover - the kernel refused
        raise SystemExit("ops listener: could not drop root privileges")


def serve(settings: dict[str, Any], run_as: tuple[str, str] | None = None) -> None:
    state = State(settings)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(state))  # type: ignore[arg-type]
    sock = bind_udp(settings["nginx_udp"]) if settings.get("nginx_udp") else None
    server = _Server((hosts.bare(settings["host"]), int(settings["port"])), make_handler(state, registry))
    if run_as is not None:
        generate_latest(registry)  # every lazy import of the exporter, while its files are readable
        drop_privileges(*run_as)
    if sock is not None:
        threading.Thread(target=receive, args=(state, sock), daemon=True).start()
    threading.Thread(target=sample_forever, args=(state, float(settings.get("interval", 2))), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"ops listener on http://{settings['host']}:{settings['port']}/status (/metrics, /status.json)", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


def main(argv: list[str]) -> int:
    run_as = None
    if len(argv) == 3 and argv[1] == "--as":  # started as root: USER:GROUP to become once bound
        user, _, group = argv[2].partition(":")
        run_as = (user, group)
        argv = argv[:1]
    if len(argv) != 1:
        print("usage: python -m wsgistack.ops.listener OPS.json [--as USER:GROUP]", file=sys.stderr)
        return 2
    try:
        settings = OpsSettings.read(argv[0], Trust.me())
    except (OSError, WsgistackError) as exc:
        print(exc.render() if isinstance(exc, WsgistackError) else f"cannot read {argv[0]}: {exc}", file=sys.stderr)
        return 2
    serve(settings.to_json(), run_as)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
