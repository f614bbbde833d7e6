"""CPU the process manager spends relaying one access-log line, text vs json log format.

`wsgistack bench` starts the rendered processes itself and sends their output to files, so
it does not include this: in `run` and in the image, nginx's access log goes through the
process manager, one line per request. Usage:

    .venv/bin/python benchmarks/manager_relay.py [LINES]
"""

from __future__ import annotations

import io
import sys
import time

from wsgistack.contracts import ProcessTable, Ready
from wsgistack.runner.manager import Child, Manager

TEXT = (b'127.0.0.1 "GET /hello HTTP/1.1" 200 14 0.001 "-" "wrk" host=127.0.0.1 upstream=0.000 '
        b"id=f10f96080a0930ba93c8fe10cfbb3ab9")
JSON = (b'{"time":"2026-11-30T11:48:49+00:00","process":"nginx","request_id":"f10f96080a0930ba93c8fe10cfbb3ab9",'
        b'"method":"GET","path":"/hello","status":200,"bytes":14,"request_time":0.001,"upstream_time":"0.000",'
        b'"client":"127.0.0.1","host":"127.0.0.1","user_agent":"wrk","referer":""}')


def per_line(log_format: str, line: bytes, lines: int, batch: int = 16) -> float:
    manager = Manager(ProcessTable(runtime_dir="", processes=(), log_format=log_format), out=io.BytesIO())
    child = Child("nginx", [], {}, "/", None, Ready())  # type: ignore[arg-type]
    chunk = (line + b"\n") * batch
    started = time.process_time()
    for _ in range(lines // batch):
        manager._relay(child, chunk)
        manager.out.seek(0)
        manager.out.truncate()
    return (time.process_time() - started) / lines * 1e6


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    for fmt, line in (("text", TEXT), ("json", JSON)):
        best = min(per_line(fmt, line, n) for _ in range(5))
        print(f"{fmt}: {best:.2f} us of manager CPU per access-log line (best of 5, {n} lines, 16 per read)")
