"""Instructions per request of nginx's worker, per protection (callgrind).

CPU time per request (``wsgistack bench``) resolves about 2-5 % on this shared machine; the
protections left after the access-log fix cost less than that each. Instruction counts are
deterministic: nginx of the wsgistack stack (and of each ``--variant``-style spec) runs
under valgrind's callgrind, serves N and then, in a second life, 2N sequential keep-alive
requests; the difference of its worker's totals over N is what one request costs (start-up
and shutdown cancel out). User-space instructions
only: system calls (the access log's write, a connect) are not counted, so this measures
what a regex, a map or a header costs, not I/O. perf stat would count both, but
``perf stat -e instructions true`` says "<not supported>" on this virtual machine.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/instructions.py [N] [/PATH] [NAME:SPEC ...]

INSTRUCTIONS_APP=django measures the Django demo (its /hello: pass /hello as the path).
NAME:SPEC is a ``wsgistack bench --variant`` spec (real settings and -ABLATIONs); the
defaults are always measured first, as "wsgistack". /PATH: the page (default /hello; the
bench's static files are /static/1k.css and /static/100k.css).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wsgistack_bench import harness, procs, stacks
from wsgistack_bench.adapter import parse_variant_spec, plan_from_rendered, wsgistack_stack

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPECS = (
    "noalog:server.access_log=false", "nosec:server.security_headers=false", "nostats:uwsgi.stats=false",
    "nohidden:-hidden_files", "nohostmap:-host_map", "noupstream2:-double_upstream", "noshim:-shim",
    "noreqid:-request_id",
    "allabl:server.access_log=false,server.security_headers=false,uwsgi.stats=false,-hidden_files,-host_map,"
    "-double_upstream,-shim,-request_id",
)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _requests(port: int, path: str, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(n):
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
    conn.close()


def _ir(path: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.M)
    if not match:
        raise RuntimeError(f"no instruction total in {path}")
    return int(match.group(1))


APPS: dict[str, stacks.AppTarget] = {}


def _app(workroot: Path, which: str) -> stacks.AppTarget:
    """The bench's app target (``hello`` or ``django``, prepared once: migrate, collectstatic)."""
    if which not in APPS:
        from wsgistack_bench.cli import _apps

        (app,) = _apps(which, REPO / "examples" / "hello", REPO / "examples" / "django_demo", workroot)
        harness.prepare_app(app, sys.executable)
        APPS[which] = app
    return APPS[which]


def _worker_ir(name: str, settings: dict[str, str], ablations: tuple[str, ...], workroot: Path, ports,
               requests: int, path: str) -> int:
    """Instructions nginx's worker executed over its life, serving ``requests`` requests."""
    app = _app(workroot, os.environ.get("INSTRUCTIONS_APP", "hello"))
    ctx = stacks.StackContext(
        workdir=workroot / f"{name}-{requests}", app=app, port=next(ports), aux_port=next(ports),
        static_dir=workroot / "static", bin_dir=Path(sys.executable).parent, src_dir=REPO / "benchmarks",
        server_cpus=1,
    )
    wsgistack_stack(name, settings, ablations)(ctx)
    plan = plan_from_rendered(ctx.workdir / "run" / "processes.json", ctx, stacks.app_env(ctx))
    out = ctx.workdir / "callgrind"
    out.mkdir()
    out.chmod(0o777)  # nginx workers write their own profile, as www-data when started as root
    wrapped = tuple(
        stacks.Process(p.name, ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/%p", *p.argv),
                       p.env, p.cwd) if p.name == "nginx" else p
        for p in plan.processes
    )
    running = procs.start(stacks.StackPlan(name, plan.base_url, wrapped), ctx.workdir, (), app.page, timeout_s=180)
    try:
        nginx = running.popens[[p.name for p in wrapped].index("nginx")].pid
        (worker,) = _children(nginx)
        _requests(ctx.port, path, requests)
    finally:
        procs.stop(running, grace_s=60)
    for _ in range(100):  # the worker writes its profile as it exits
        if (out / str(worker)).exists() and _ir_or_none(out / str(worker)):
            break
        time.sleep(0.2)
    return _ir(out / str(worker))


def _ir_or_none(path: Path) -> int | None:
    try:
        return _ir(path)
    except (OSError, RuntimeError):
        return None


def measure(name: str, spec: str | None, workroot: Path, ports, n: int, path: str = "/hello") -> float:
    """nginx worker instructions per request: the difference of two lives (N and 2N
    requests), so start-up and shutdown cancel out."""
    settings, ablations = ({}, ()) if spec is None else parse_variant_spec(f"{name}:{spec}")[1:]
    short = _worker_ir(name, settings, ablations, workroot, ports, n, path)
    long = _worker_ir(name, settings, ablations, workroot, ports, 2 * n, path)
    return (long - short) / n


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv and argv[0].isdigit() else 2000
    path = next((a for a in argv if a.startswith("/")), "/hello")
    specs = [a for a in argv if not a.isdigit() and not a.startswith("/")] or list(DEFAULT_SPECS)
    workroot = Path(tempfile.mkdtemp(prefix="wsgistack-instr-"))
    workroot.chmod(0o755)
    harness.write_static_files(workroot / "static")
    ports = iter(harness.free_ports())
    rows = [("wsgistack", measure("wsgistack", None, workroot, ports, n, path))]
    for spec in specs:
        name, _, rest = spec.partition(":")
        rows.append((name, measure(name, rest, workroot, ports, n, path)))
    base = rows[0][1]
    print(f"nginx worker, user-space instructions per request (callgrind; lives of {n} and {2 * n} "
          f"sequential keep-alive requests to {path})")
    print("| stack | instructions / request | vs defaults |")
    print("|---|---:|---:|")
    for name, ir in rows:
        print(f"| {name} | {ir:,.0f} | {(ir - base) / base:+.1%} |")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main(sys.argv[1:]))
