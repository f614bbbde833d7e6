"""Stack config rendering: files written, argv returned, knobs applied (nothing is started)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from wsgistack_bench import stacks
from wsgistack_bench.adapter import listen_port, plan_from_rendered


@pytest.fixture
def ctx(tmp_path: Path) -> stacks.StackContext:
    app = stacks.AppTarget("hello", tmp_path / "proj", "hello:application", "/hello")
    # Free ports: the wsgistack stack's start refuses a port another process listens on (a
    # benchmark running meanwhile), though these tests only render.
    return stacks.StackContext(
        workdir=tmp_path / "stack", app=app, port=free_port(), aux_port=free_port(), static_dir=tmp_path / "static",
        bin_dir=tmp_path / "bin", src_dir=tmp_path / "src", server_cpus=1,
    )


def test_candidate_defaults_render(ctx: stacks.StackContext) -> None:
    plan = stacks.candidate_stack("cand", stacks.Candidate())(ctx)
    ini = (ctx.workdir / "uwsgi.ini").read_text()
    conf = (ctx.workdir / "nginx.conf").read_text()
    assert "processes = 2" in ini and "listen = 1024" in ini and "disable-logging = true" in ini
    assert f"socket = {ctx.workdir}/uwsgi.sock" in ini
    assert f"uwsgi_pass unix:{ctx.workdir}/uwsgi.sock;" in conf
    assert f"listen 127.0.0.1:{ctx.port} backlog=4096;" in conf
    assert "access_log off;" in conf
    assert listen_port(conf) == ctx.port
    assert [p.name for p in plan.processes] == ["uwsgi", "nginx"]
    assert plan.base_url == f"http://127.0.0.1:{ctx.port}"
    assert plan.processes[0].env["BENCH_APP"] == "hello:application"
    assert plan.config["uwsgi"]["processes"] == 2 and plan.config["nginx"]["access_log"] == "off"


def test_candidate_knobs(ctx: stacks.StackContext) -> None:
    cand = stacks.Candidate().with_assignments({
        "processes": "4", "threads": "2", "socket": "tcp", "access_log": "buffered", "logging": "on",
        "keepalive_timeout": "0", "uwsgi_buffering": "off", "buffer-size": "4096",
        "max_requests": "5000", "harakiri": "30",
    })
    stacks.candidate_stack("c", cand)(ctx)
    ini = (ctx.workdir / "uwsgi.ini").read_text()
    conf = (ctx.workdir / "nginx.conf").read_text()
    assert "threads = 2" in ini and f"socket = 127.0.0.1:{ctx.aux_port}" in ini
    assert "disable-logging" not in ini and "buffer-size" not in ini
    assert "max-requests = 5000" in ini and "harakiri = 30" in ini
    assert f"uwsgi_pass 127.0.0.1:{ctx.aux_port};" in conf
    assert "buffer=64k flush=1s" in conf and "keepalive_timeout 0;" in conf
    assert "uwsgi_buffering off;" in conf


def test_unknown_knob_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown candidate knob"):
        stacks.Candidate().with_assignments({"procs": "2"})
    with pytest.raises(ValueError, match="on/off"):
        stacks.Candidate().with_assignments({"gzip": "maybe"})


def test_parse_candidate_spec() -> None:
    assert stacks.parse_candidate_spec("p4:processes=4, threads=2") == ("p4", {"processes": "4", "threads": "2"})
    assert stacks.parse_candidate_spec("plain") == ("plain", {})
    with pytest.raises(ValueError):
        stacks.parse_candidate_spec("x:processes")


def test_seed_and_tiangolo_keep_their_defaults(ctx: stacks.StackContext, tmp_path: Path) -> None:
    stacks.seed(ctx)
    ini = (ctx.workdir / "uwsgi.ini").read_text()
    assert "processes = 4" in ini and "threads = 8" in ini
    assert "listen" not in ini.replace("listen queue", "")  # uWSGI's default 100
    assert "worker_connections 768;" in (ctx.workdir / "nginx.conf").read_text()
    ctx2 = stacks.StackContext(**{**ctx.__dict__, "workdir": tmp_path / "t"})
    stacks.tiangolo(ctx2)
    ini = (ctx2.workdir / "uwsgi.ini").read_text()
    assert "cheaper = 2" in ini and "processes = 16" in ini
    conf = (ctx2.workdir / "nginx.conf").read_text()
    assert "worker_connections 1024;" in conf and "client_max_body_size 0;" in conf


def test_ceiling_and_alone_stacks(ctx: stacks.StackContext, tmp_path: Path) -> None:
    plan = stacks.ceiling(ctx)
    assert plan.no_app and 'return 200 "ok\\n";' in (ctx.workdir / "nginx.conf").read_text()
    ctx2 = stacks.StackContext(**{**ctx.__dict__, "workdir": tmp_path / "u"})
    plan = stacks.uwsgi_alone(ctx2)
    assert plan.app_alone and plan.client_headers == ("Connection: close",)
    ini = (ctx2.workdir / "uwsgi.ini").read_text()
    assert f"http-socket = 127.0.0.1:{ctx.port}" in ini and "add-header = Connection: close" in ini


def test_gunicorn_and_granian_need_their_binaries(ctx: stacks.StackContext) -> None:
    with pytest.raises(stacks.StackUnavailable):
        stacks.gunicorn_stack("sync")(ctx)
    ctx.bin_dir.mkdir()
    for name in ("gunicorn", "granian"):
        (ctx.bin_dir / name).touch()
    plan = stacks.gunicorn_stack("gthread")(ctx)
    argv = plan.processes[0].argv
    assert argv[argv.index("--workers") + 1] == "3" and "--threads" in argv
    plan = stacks.granian_nginx(ctx)
    assert "0666" in plan.processes[0].argv
    assert "keepalive 32;" in (ctx.workdir / "nginx.conf").read_text()


def _flag(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_granian_runs_with_every_default_spelled_out_and_recorded(ctx: stacks.StackContext) -> None:
    ctx.bin_dir.mkdir()
    (ctx.bin_dir / "granian").touch()
    plan = stacks.granian_nginx(ctx)
    argv = plan.processes[0].argv
    # granian 2.8's own defaults for WSGI and one worker, not left to the installed version.
    assert _flag(argv, "--workers") == "1" and _flag(argv, "--blocking-threads") == "512"
    assert _flag(argv, "--backpressure") == "1024" and _flag(argv, "--backlog") == "1024"
    assert _flag(argv, "--runtime-mode") == "mt" and _flag(argv, "--runtime-threads") == "1"
    assert _flag(argv, "--http") == "auto" and "--http1-keep-alive" in argv and "--no-access-log" in argv
    assert _flag(argv, "--uds") == str(ctx.workdir / "granian.sock")
    assert plan.config["blocking_threads"] == 512 and plan.config["upstream_keepalive"] == 32
    recorded = json.loads((ctx.workdir / "granian.json").read_text())
    assert recorded == json.loads(json.dumps(dict(plan.config)))
    conf = (ctx.workdir / "nginx.conf").read_text()
    assert "proxy_http_version 1.1;" in conf and 'proxy_set_header Connection "";' in conf


def test_granian_knobs_change_granian_and_its_upstream(ctx: stacks.StackContext, tmp_path: Path) -> None:
    ctx.bin_dir.mkdir()
    (ctx.bin_dir / "granian").touch()
    knobs = stacks.GranianKnobs().with_assignments(
        {"blocking_threads": "1", "backpressure": "64", "workers": "2", "runtime-mode": "st", "upstream_keepalive": "0"})
    plan = stacks.granian_stack("g", knobs)(ctx)
    argv = plan.processes[0].argv
    assert _flag(argv, "--blocking-threads") == "1" and _flag(argv, "--backpressure") == "64"
    assert _flag(argv, "--workers") == "2" and _flag(argv, "--runtime-mode") == "st"
    conf = (ctx.workdir / "nginx.conf").read_text()
    # No kept upstream connection: nginx's proxy default, HTTP/1.0 and a connection per request.
    assert "upstream app" not in conf and f"proxy_pass http://unix:{ctx.workdir}/granian.sock;" in conf
    # With 2 workers granian's formulas give 512 backpressure and 256 threads each.
    resolved = stacks.GranianKnobs(workers=2).resolved(server_cpus=1)
    assert (resolved["backpressure"], resolved["blocking_threads"]) == (512, 256)
    alone = stacks.granian_alone(stacks.StackContext(**{**ctx.__dict__, "workdir": tmp_path / "alone"}))
    assert alone.app_alone and _flag(alone.processes[0].argv, "--port") == str(ctx.port)
    assert _flag(alone.processes[0].argv, "--blocking-threads") == "512"


@pytest.mark.parametrize("assignments", [{"blocking": "1"}, {"runtime_mode": "auto"}, {"http": "3"},
                                         {"blocking_threads": "-1"}, {"access_log": "maybe"}])
def test_bad_granian_knobs_are_refused(assignments: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        stacks.GranianKnobs().with_assignments(assignments)


def test_servers_config_variables_are_not_inherited() -> None:
    env = stacks.inherited_env({"PATH": "/bin", "GRANIAN_BLOCKING_THREADS": "1", "UWSGI_PROCESSES": "8",
                                "GUNICORN_CMD_ARGS": "--workers 9", "GRANIANX": "kept"})
    assert env == {"PATH": "/bin", "GRANIANX": "kept"}


def test_plan_from_rendered(ctx: stacks.StackContext, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    (out / "processes.json").write_text(
        '{"processes": [{"name": "uwsgi", "argv": ["uwsgi", "--ini", "u.ini"], "env": {"A": "1"}, "cwd": "/x"},'
        ' {"name": "nginx", "argv": ["nginx", "-c", "n.conf"]}]}')
    plan = plan_from_rendered(out / "processes.json", ctx, {"B": "2"})
    assert [p.name for p in plan.processes] == ["uwsgi", "nginx"]
    assert plan.processes[0].env == {"B": "2", "A": "1"} and plan.processes[0].cwd == Path("/x")
    assert plan.processes[1].cwd == ctx.app.project_dir


# --- the wsgistack stack and its variants (rendered by wsgistack's own start sequence) ------

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hello_ctx() -> Iterator[stacks.StackContext]:
    # As root, nginx's workers run as www-data: every directory up to the socket must be
    # searchable by them, which pytest's tmp_path (under a 0700 dir) is not.
    import shutil
    import sys
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="wsgistack-bench-test-"))
    tmp_path.chmod(0o755)
    app = stacks.AppTarget("hello", REPO / "examples" / "hello", "hello:application", "/hello")
    yield stacks.StackContext(
        workdir=tmp_path / "stack", app=app, port=free_port(), aux_port=free_port(), static_dir=tmp_path / "static",
        bin_dir=Path(sys.executable).parent, src_dir=REPO / "benchmarks", server_cpus=1,
    )
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_parse_variant_spec() -> None:
    from wsgistack_bench.adapter import parse_variant_spec

    assert parse_variant_spec("quiet:server.access_log=false, -hidden_files") == (
        "quiet", {"server.access_log": "false"}, ("hidden_files",))
    for bad in ("same", "same:", ":server.gzip=false", "x:server.gzip", "x:-no_such_protection"):
        with pytest.raises(ValueError):
            parse_variant_spec(bad)


def test_wsgistack_stack_is_planned_for_the_server_cpus_and_run_by_the_manager(hello_ctx: stacks.StackContext) -> None:
    from wsgistack_bench.adapter import wsgistack_stack

    plan = wsgistack_stack()(hello_ctx)
    run = hello_ctx.workdir / "run"
    assert "worker_processes 1;" in (run / "nginx.conf").read_text()  # one server CPU, one nginx worker
    [manager] = plan.processes
    assert manager.argv[1:] == ("-m", "wsgistack.runner.manager", str(run / "processes.json"))


def test_variant_overrides_real_settings_and_applies_every_ablation(hello_ctx: stacks.StackContext) -> None:
    from wsgistack_bench.adapter import ABLATIONS, wsgistack_stack

    plain_ctx = stacks.StackContext(**{**hello_ctx.__dict__, "workdir": hello_ctx.workdir.with_name("plain")})
    wsgistack_stack()(plain_ctx)
    # log_writes edits the access log, off here; three edit what only granian's stack renders.
    logless = tuple(a for a in ABLATIONS if a not in ("log_writes", *GRANIAN_ONLY))
    wsgistack_stack("v", {"server.access_log": "false", "server.worker_processes": "2"}, logless)(hello_ctx)
    plain, run = plain_ctx.workdir / "run", hello_ctx.workdir / "run"
    conf, before = (run / "nginx.conf").read_text(), (plain / "nginx.conf").read_text()
    assert "access_log off;" in conf and "worker_processes 2;" in conf
    assert "location ~*" in before and "location ~*" not in conf
    assert "$host|$http_host" in before and "$host|$http_host" not in conf
    def uwsgi_upstream(text: str) -> str:  # the retried upstream (wsgistack_uwsgi_once has one entry)
        import re
        return re.search(r"upstream wsgistack_uwsgi \{(.*?)\}", text, re.S).group(1)

    assert uwsgi_upstream(before).count("max_fails=0;") == 2 and uwsgi_upstream(conf).count("max_fails=0;") == 1
    assert "add_header X-Request-ID" in before and "add_header X-Request-ID" not in conf
    assert "disable_symlinks" in before and "disable_symlinks" not in conf
    assert (run / "wsgistack_app.py").read_text().rstrip().endswith("application = _app  # bench ablation: no readiness wrapper")


GRANIAN_ONLY = ("granian_entries", "proxy_scrub", "proxy_forwarded")


def test_granian_ablations_edit_its_upstream_and_proxy_headers(hello_ctx: stacks.StackContext) -> None:
    import re

    from wsgistack_bench.adapter import wsgistack_stack

    wsgistack_stack("g", {"server.app_server": "granian"}, (*GRANIAN_ONLY, "sent_once", "shim"))(hello_ctx)
    run = hello_ctx.workdir / "run"
    conf, params = (run / "nginx.conf").read_text(), (run / "proxy_params").read_text()
    assert re.search(r"upstream wsgistack_granian \{(.*?)\}", conf, re.S).group(1).count("server ") == 1
    assert "wsgistack_sent_once) {" not in conf
    sets = [line for line in params.splitlines() if line.startswith("proxy_set_header")]
    assert 'proxy_set_header Connection "";' in sets  # the kept upstream connection stays
    assert not [line for line in sets if line.endswith('"";') and "Connection" not in line]
    assert not [line for line in sets if "X-Forwarded" in line or "X-Real-IP" in line]
    assert any("X-Wsgistack-Cgi" in line for line in sets) and any("X-Request-ID" in line for line in sets)


def test_the_log_writes_ablation_buffers_the_access_log(hello_ctx: stacks.StackContext) -> None:
    from wsgistack_bench.adapter import wsgistack_stack

    wsgistack_stack("v", ablations=("log_writes",))(hello_ctx)
    conf = (hello_ctx.workdir / "run" / "nginx.conf").read_text()
    assert "access_log /dev/stdout wsgistack buffer=64k flush=100ms;" in conf


def test_a_granian_variant_runs_under_the_process_manager(hello_ctx: stacks.StackContext) -> None:
    from wsgistack_bench.adapter import wsgistack_stack

    [manager] = wsgistack_stack("g", {"server.app_server": "granian"})(hello_ctx).processes
    table = json.loads((hello_ctx.workdir / "run" / "processes.json").read_text())
    assert [p["name"] for p in table["processes"]] == ["granian", "nginx"]
    assert "--blocking-threads" in table["processes"][0]["argv"]
    assert "proxy_pass http://wsgistack_granian;" in (hello_ctx.workdir / "run" / "nginx.conf").read_text()


def test_variant_with_an_unknown_setting_is_refused(hello_ctx: stacks.StackContext) -> None:
    from wsgistack_bench.adapter import wsgistack_stack

    with pytest.raises(stacks.StackUnavailable, match="server.acess_log"):
        wsgistack_stack("v", {"server.acess_log": "false"})(hello_ctx)


@pytest.mark.skipif(not Path("/usr/sbin/haproxy").exists(), reason="haproxy not installed")
def test_balanced_stack_is_the_wsgistack_node_behind_haproxy(hello_ctx: stacks.StackContext) -> None:
    from wsgistack_bench.adapter import wsgistack_balanced

    plan = wsgistack_balanced(hello_ctx)
    assert [p.name for p in plan.processes] == ["wsgistack", "haproxy"]
    assert plan.base_url == f"http://127.0.0.1:{hello_ctx.port}"
    cfg = (hello_ctx.workdir / "balancer" / "haproxy.cfg").read_text()
    assert f"bind 127.0.0.1:{hello_ctx.port}" in cfg and f"server node1 127.0.0.1:{hello_ctx.aux_port}" in cfg
    assert listen_port((hello_ctx.workdir / "run" / "nginx.conf").read_text()) == hello_ctx.aux_port
