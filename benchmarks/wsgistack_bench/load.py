"""Load generation: wrk when installed, the pure-Python generator otherwise.

Both return a :class:`LoadResult`. wrk is driven with a tiny Lua ``done()``
hook that prints one JSON line (exact percentiles and error counters); the
human-readable text is parsed as a fallback so an unusual wrk build still
works.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as a script (stdlib only): the benchmarks directory need not be on the path.
PYLOAD = str(Path(__file__).with_name("pyload.py"))

JSON_MARKER = "WSGISTACK_JSON "

# Printed by wrk's done() callback. wrk counts 3xx as success, the same as the
# text summary; "status" is its non-2xx/3xx counter.
WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\\n',
    "WSGISTACK_JSON ", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status))
end
"""


class LoadError(RuntimeError):
    """The load generator failed or printed something unparseable."""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors: connect + read + write + timeout
    non2xx: int
    tool: str

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "rps": self.rps}


# --- wrk -------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(text: str) -> LoadResult:
    """Parse wrk's output: the JSON line from :data:`WRK_LUA`, else the text summary."""
    for line in text.splitlines():
        if line.startswith(JSON_MARKER):
            return _parse_wrk_json(line[len(JSON_MARKER):])
    return _parse_wrk_text(text)


def _parse_wrk_json(payload: str) -> LoadResult:
    data = json.loads(payload)
    return LoadResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
        non2xx=int(data["status"]),
        tool="wrk",
    )


_RE_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.M)
_RE_PCT = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RE_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_RE_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def _parse_wrk_text(text: str) -> LoadResult:
    total = _RE_TOTAL.search(text)
    if total is None:
        raise LoadError(f"could not parse wrk output:\n{text[-2000:]}")
    percentiles = {m.group(1): _to_ms(m.group(2), m.group(3)) for m in _RE_PCT.finditer(text)}
    if not {"50", "99"} <= percentiles.keys():
        raise LoadError("wrk output has no latency distribution (run it with --latency)")
    socket = _RE_SOCKET.search(text)
    non2xx = _RE_NON2XX.search(text)
    return LoadResult(
        requests=int(total.group(1)),
        duration_s=float(total.group(2)) * _DURATION_UNITS_S[total.group(3)],
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=sum(int(g) for g in socket.groups()) if socket else 0,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        tool="wrk",
    )


# --- running ---------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    url: str
    connections: int
    duration_s: float
    headers: tuple[str, ...] = ()
    timeout_s: float = 5.0
    think_ms: int = 0  # per connection, between a response and the next request (0: back to back)


def wrk_script(think_ms: int = 0) -> str:
    """The Lua for wrk: the JSON report, and with a think time wrk's ``delay()`` hook (the
    milliseconds each connection waits before its next request)."""
    if think_ms <= 0:
        return WRK_LUA
    return WRK_LUA + f"\ndelay = function()\n  return {int(think_ms)}\nend\n"


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_argv(spec: LoadSpec, threads: int, script: Path) -> list[str]:
    seconds = max(1, round(spec.duration_s))  # wrk takes whole seconds only
    argv = [
        "wrk", f"-t{threads}", f"-c{spec.connections}", f"-d{seconds}s",
        f"--timeout={spec.timeout_s:g}s", "--latency", "-s", str(script),
    ]
    for header in spec.headers:
        argv += ["-H", header]
    return [*argv, spec.url]


def pyload_argv(spec: LoadSpec) -> list[str]:
    argv = [
        sys.executable, PYLOAD, "load", spec.url,
        "--connections", str(spec.connections), "--duration", f"{spec.duration_s:g}",
        "--timeout", f"{spec.timeout_s:g}",
    ]
    if spec.think_ms:
        argv += ["--think-ms", str(spec.think_ms)]
    for header in spec.headers:
        argv += ["--header", header]
    return argv


def pin(argv: list[str], cpus: tuple[int, ...]) -> list[str]:
    """Prefix argv with taskset so it runs only on ``cpus`` (no-op when empty)."""
    if not cpus:
        return argv
    return ["taskset", "-c", ",".join(str(c) for c in cpus), *argv]


def run_load(spec: LoadSpec, cpus: tuple[int, ...], workdir: Path, use_wrk: bool) -> LoadResult:
    """Run one bounded load test against 127.0.0.1 and return its result."""
    if use_wrk:
        script = workdir / (f"wsgistack-report-think{spec.think_ms}.lua" if spec.think_ms else "wsgistack-report.lua")
        if not script.exists():
            script.write_text(wrk_script(spec.think_ms))
        threads = max(1, min(len(cpus) or 1, spec.connections))
        argv = pin(wrk_argv(spec, threads, script), cpus)
        return parse_wrk(_run(argv, spec.duration_s))
    return parse_pyload(_run(pin(pyload_argv(spec), cpus), spec.duration_s))


def _last_json(text: str, what: str) -> dict[str, Any]:
    """The JSON object a pyload run prints as its last line."""
    try:
        return dict(json.loads(text.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError) as exc:
        raise LoadError(f"could not parse {what} output:\n{text[-2000:]}") from exc


def parse_pyload(text: str) -> LoadResult:
    data = _last_json(text, "pyload")
    return LoadResult(
        requests=data["requests"], duration_s=data["duration_s"], p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"], errors=data["errors"], non2xx=data["non2xx"], tool="python",
    )


@dataclass(frozen=True)
class BurstResult:
    """One burst: N simultaneous connections, one request each."""

    connections: int
    ok: int
    non2xx: int
    errors: int
    elapsed_s: float
    statuses: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_burst(url: str, connections: int, timeout_s: float, cpus: tuple[int, ...]) -> BurstResult:
    argv = [
        sys.executable, PYLOAD, "burst", url,
        "--connections", str(connections), "--timeout", f"{timeout_s:g}",
    ]
    return BurstResult(**_last_json(_run(pin(argv, cpus), timeout_s), "burst"))


def _run(argv: list[str], expected_s: float) -> str:
    # The hard timeout bounds a wedged generator; the generators bound themselves.
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=expected_s * 3 + 30, check=False)
    if proc.returncode != 0:
        raise LoadError(f"{' '.join(argv)} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")
    return proc.stdout
