"""Pure-Python load generator and burst client.

Used when wrk is not installed (``load``) and always for the burst test
(``burst``: open N connections at once, send one request on each, count the
answers), which wrk cannot express. It runs as a subprocess so the harness can
pin it to the load CPUs with taskset; its only output is one JSON line.

The load generator is much slower than wrk (one Python process, asyncio), so
with it the ceiling measures the generator, not Nginx: ratios to the ceiling
are then pessimistic for the fast stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from urllib.parse import urlsplit


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def build_request(url: str, headers: list[str], close: bool) -> bytes:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += headers
    if close and not any(h.lower().startswith("connection:") for h in headers):
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return (status, server_wants_close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    close = fields.get("connection") == "close" or lines[0].startswith("HTTP/1.0")
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # body ends at close
        close = True
    return status, close


async def _load_worker(url: str, request: bytes, deadline: float, timeout: float,
                       latencies: list[float], counts: Counter[str], think_s: float = 0.0) -> None:
    parts = urlsplit(url)
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 80), timeout)
            reader, writer = conn
            start = time.monotonic()
            writer.write(request)
            status, close = await asyncio.wait_for(read_response(reader), timeout)
            latencies.append((time.monotonic() - start) * 1000)
            counts["ok" if 200 <= status < 400 else "non2xx"] += 1
            if close:
                writer.close()
                conn = writer = None
            if think_s:
                await asyncio.sleep(think_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            counts["errors"] += 1
            if writer is not None:
                writer.close()
            conn = writer = None
    if writer is not None:
        writer.close()


async def run_load(url: str, connections: int, duration: float, timeout: float,
                   headers: list[str], think_ms: int = 0) -> dict[str, object]:
    request = build_request(url, headers, close=False)
    latencies: list[float] = []
    counts: Counter[str] = Counter()
    start = time.monotonic()
    deadline = start + duration
    await asyncio.gather(*(_load_worker(url, request, deadline, timeout, latencies, counts, think_ms / 1000)
                           for _ in range(connections)))
    elapsed = time.monotonic() - start
    latencies.sort()
    return {
        "requests": counts["ok"] + counts["non2xx"], "duration_s": elapsed,
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "errors": counts["errors"], "non2xx": counts["non2xx"],
    }


async def _burst_one(url: str, request: bytes, timeout: float, gate: asyncio.Event) -> str:
    parts = urlsplit(url)
    await gate.wait()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 80), timeout)
        writer.write(request)
        status, _ = await asyncio.wait_for(read_response(reader), timeout)
        writer.close()
        return str(status)
    except TimeoutError:
        return "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return type(exc).__name__


async def run_burst(url: str, connections: int, timeout: float) -> dict[str, object]:
    request = build_request(url, [], close=True)
    gate = asyncio.Event()
    tasks = [asyncio.create_task(_burst_one(url, request, timeout, gate)) for _ in range(connections)]
    await asyncio.sleep(0.05)  # let every task reach the gate, then release them together
    start = time.monotonic()
    gate.set()
    outcomes = Counter(await asyncio.gather(*tasks))
    ok = sum(n for k, n in outcomes.items() if k.isdigit() and 200 <= int(k) < 300)
    non2xx = sum(n for k, n in outcomes.items() if k.isdigit()) - ok
    return {
        "connections": connections, "ok": ok, "non2xx": non2xx,
        "errors": connections - ok - non2xx, "elapsed_s": time.monotonic() - start,
        "statuses": dict(outcomes),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pyload.py")
    parser.add_argument("mode", choices=["load", "burst"])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--think-ms", type=int, default=0, help="pause per connection between requests")
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("load stays on loopback: the URL host must be 127.0.0.1")
    result: dict[str, object]
    if args.mode == "load":
        result = asyncio.run(run_load(args.url, args.connections, args.duration, args.timeout, args.header,
                                      args.think_ms))
    else:
        result = asyncio.run(run_burst(args.url, args.connections, args.timeout))
    # This module is a subprocess entry point: stdout is its API.
    print(json.dumps(result))


if __name__ == "__main__":
    main()
