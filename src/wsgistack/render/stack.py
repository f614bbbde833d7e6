"""The stack's files, rendered from a Plan: nginx.conf, uwsgi.ini, the shim, the process table
and the settings of the processes beside them (ops listener, ACME renewer). Pure."""

from __future__ import annotations

import dataclasses
import os

from wsgistack import __version__, hosts
from wsgistack.contracts import Health, OpsAuth, OpsSettings, ProcessSpec, ProcessTable, Ready, RenewerSettings
from wsgistack.plan.stack import GRANIAN_CRASH_WINDOW, GRANIAN_DRAIN, GRANIAN_RESPAWN_INTERVAL, UPSTREAM_IDLE_TIMEOUT, UPSTREAM_KEEPALIVE, Plan
from wsgistack.render import RenderedFile, environment
from wsgistack.tls import FFDHE2048, MOZILLA_CURVES, MOZILLA_INTERMEDIATE_CIPHERS

# Hidden files/dirs (.git, .env, .htpasswd; but not /.well-known/), editor and VCS leftovers
# (vim .swp, emacs #x# and x~, nano .save, patch .orig/.rej): never served. Matched
# case-insensitively (~*) against the decoded, normalised URI, so %2e and ..%2f tricks land here too.
HIDDEN_RE = r'"/\.(?!well-known/)|/#|~$|\.(?:swp|swo|swn|bak|old|orig|rej|save|pyc)$"'


def granian_argv(plan: Plan) -> tuple[str, ...]:
    """granian's command line (server.app_server = "granian"), every setting that shapes it
    spelled out. Run as a module of the app's interpreter, as the app's user (the manager
    switches users: granian has no option of its own for it), on a unix socket only nginx's
    workers (the same user) can use. Four blocking threads per worker by default (uwsgi.threads
    = "auto"): a granian worker takes requests while busy, and one thread makes them wait behind a
    slow one; two cost more than one or four (the GIL's hand-off, docs/benchmarks.md)."""
    assert plan.python is not None and plan.app is not None
    paths = plan.paths
    argv = [
        *plan.python.granian_argv, "--interface", "wsgi",
        "--uds", plan.upstream.address, "--uds-permissions", "0660",  # a leading 0: octal
        "--workers", str(plan.processes), "--blocking-threads", str(plan.threads),
        # Connections per worker: at least what nginx may open (each of its connections to a
        # busy worker waits in the worker, not in the kernel's queue).
        "--backpressure", str(plan.config.server.worker_connections), "--backlog", str(plan.listen),
        "--runtime-mode", "mt", "--runtime-threads", "1", "--http", "1", "--http1-keep-alive", "--no-ws",
        # A crashed or killed worker is replaced (nginx retries the idempotent requests it had).
        "--respawn-failed-workers", "--respawn-interval", f"{GRANIAN_RESPAWN_INTERVAL:g}",
        # A reload or a stop lets a request finish within request_timeout, then kills it.
        "--workers-kill-timeout", str(plan.harakiri),
        # nginx writes the access log; granian's own lines go to the manager (JSON with log_format json).
        "--no-access-log", "--log-level", "warning",
        "--pid-file", str(paths.granian_pid), "--working-dir", str(plan.app.path),
        f"{paths.granian_shim}:application",
    ]
    return tuple(argv)


def _app_server(plan: Plan) -> ProcessSpec:
    """The app server under the process manager: uWSGI (its master drops privileges itself), or
    granian (started as the app's user by the manager)."""
    assert plan.app is not None
    public_env = plan.public_env
    # Memory-based recycling, checked by the process manager on a timer, not by every worker
    # after every request (uWSGI's reload-on-rss).
    recycle = {"rss_mb": float(plan.reload_on_rss_mb), "min_age": float(plan.min_worker_lifetime), "interval": 2.0}
    if not plan.granian:
        uwsgi = plan.python.uwsgi if plan.python else None
        # ...and the app is loaded (the file): nginx never starts in front of an app that cannot load.
        return ProcessSpec(
            name="uwsgi",
            argv=(uwsgi or "uwsgi", "--ini", str(plan.paths.uwsgi_ini)),
            env=public_env,
            secret_env=True,
            drop_env_prefix="UWSGI_",
            cwd=str(plan.app.path),
            stop_signal="TERM",
            # Its own budget, once nginx (which hands it the requests it finishes) has exited.
            stop_timeout=float(plan.stop.budget("uwsgi")),
            stop_after=("nginx",) if plan.runs_nginx else (),
            ready=_ready(plan.upstream.kind, plan.upstream.address, file=str(plan.paths.uwsgi_ready)),
            recycle=recycle,
        )
    # granian: a worker that must go (memory, a reload) first drains its kept connections
    # (SIGWINCH: the shim answers "Connection: close"), then gets SIGTERM (it finishes its
    # requests; granian starts another).
    import signal

    recycle.update(drain=GRANIAN_DRAIN, drain_signal=float(signal.SIGWINCH), signal=float(signal.SIGTERM))
    return ProcessSpec(
        name="granian",
        argv=granian_argv(plan),
        env=public_env,
        secret_env=True,
        # granian reads every GRANIAN_* variable as one of its options.
        drop_env_prefix="GRANIAN_",
        cwd=str(plan.app.path),
        # As the app's user; user = "root" keeps root, with nginx's workers' group (the socket's).
        user=plan.uwsgi_user or ("root" if plan.machine.is_root and plan.run_group else ""),
        group=plan.run_group or "",
        stop_signal="TERM",
        stop_timeout=float(plan.stop.budget("granian")),
        stop_after=("nginx",) if plan.runs_nginx else (),
        # Killed outright, the manager takes granian along: TERM, so its main process stops
        # its workers (the shim also ties each worker to it).
        death_signal="TERM",
        ready=_ready("unix", plan.upstream.address, file=str(plan.paths.app_ready)),
        recycle=recycle,
    )


def process_table(plan: Plan) -> ProcessTable:
    """What the process manager runs. Holds no secret: the app's own environment (app.env,
    often credentials) reaches the manager in memory or in its environment (contracts.SECRET_ENV)
    and the processes marked ``secret_env`` get it from there, so no file holds it."""
    machine = plan.machine
    public_env = plan.public_env
    processes: list[ProcessSpec] = []
    if plan.runs_uwsgi:
        processes.append(_app_server(plan))
    for bg in plan.background:
        assert plan.app is not None
        python = plan.python.python if plan.python else machine.python
        processes.append(ProcessSpec(
            name=bg.name,
            argv=tuple(bg.argv),
            env=public_env,
            secret_env=True,
            # As prestart steps and uWSGI see it: the app's Python first on PATH (so
            # "python manage.py ..." and the venv's scripts are the app's), its dir importable.
            env_prepend={"PATH": os.path.dirname(python), "PYTHONPATH": str(plan.app.path)},
            drop_env_prefix="UWSGI_",
            cwd=str(plan.app.path),
            user=plan.uwsgi_user or "",
            group=plan.run_group or "",
            restart=bg.restart,
            stop_signal=bg.stop_signal,
            # Stopped beside nginx's drain, each within its own budget.
            stop_timeout=float(bg.stop_timeout),
        ))
    if plan.runs_ops:
        ops = plan.config.ops
        # wsgistack's own interpreter (prometheus_client is wsgistack's, not the app's). Started
        # as root, it starts as root, so that wsgistack installed where root installs it (a pipx
        # venv under /root, 0700) is readable to it, and becomes the app's user itself once its
        # imports are done and its sockets bound (ops.listener.drop_privileges).
        run_as = ("--as", f"{plan.ops_user}:{plan.run_group or ''}") if plan.ops_user else ()
        processes.append(ops_process(machine.python, plan.paths.ops_conf, plan.paths.runtime, ops.host, ops.port,
                                     float(plan.stop.budget("ops")), run_as))
    if plan.runs_nginx:
        processes.append(ProcessSpec(
            name="nginx",
            argv=(machine.nginx or "nginx", "-p", f"{plan.paths.runtime}/", "-c", str(plan.paths.nginx_conf)),
            cwd=str(plan.paths.runtime),
            # QUIT = graceful: stop accepting, finish in-flight requests, then exit.
            stop_signal="QUIT",
            stop_timeout=float(plan.stop.budget("nginx")),
            death_signal="TERM",
            ready=_ready("tcp", hosts.connect_address(plan.config.server.host, plan.config.server.port)),
        ))
    if plan.tls is not None and plan.tls.mode == "acme":
        # Obtains the first certificate (nginx serves HTTP and the challenge meanwhile) and
        # renews it when the CA suggests; started after nginx, whose webroot it needs.
        processes.append(ProcessSpec(
            name="acme",
            argv=(machine.python, "-m", "wsgistack.tls.renewer", str(plan.paths.renewer_conf)),
            cwd=str(plan.paths.runtime),
            # It retries a CA's refusal itself; a crash (a bug) is restarted with backoff.
            restart="on-failure",
            stop_signal="TERM",
            stop_timeout=float(plan.stop.budget("acme")),
        ))
    if plan.termdrain:
        # Heroku: nginx reads SIGTERM as QUIT, uWSGI's workers leave it to their master. The
        # library's mode is the process's name (image/termdrain.c).
        processes = [dataclasses.replace(s, preload=plan.termdrain, env={**s.env, "_WSGISTACK_TERMDRAIN": s.name})
                     for s in processes]
    return ProcessTable(
        runtime_dir=str(plan.paths.runtime),
        processes=tuple(processes),
        stop_timeout=float(plan.config.stop_timeout),
        url=plan.url if plan.runs_nginx else "",
        cleanup=tuple(str(p) for p in plan.paths.transient + (plan.paths.granian_transient if plan.granian else ())),
        state_file=str(plan.paths.manager_state),
        log_format=plan.config.server.log_format,
        log_file=str(plan.paths.log),
        # Drain before stop: readiness answers 503 (the shim sees the marker) while nginx and
        # uWSGI still serve, so a balancer takes the node out before it stops accepting.
        drain_file=str(plan.paths.drain) if plan.config.drain_delay else "",
        drain_delay=float(plan.config.drain_delay),
    )


def ops_process(python: str, conf: object, runtime: object, host: str, port: int, stop_timeout: float,
                run_as: tuple[str, ...] = ()) -> ProcessSpec:
    """The ops listener (wsgistack.ops.listener) under the process manager, beside a stack or
    beside HAProxy: wsgistack's own interpreter (prometheus_client is wsgistack's, not the
    app's), restarted if it fails and never waited for: it only observes, so it never takes
    the site (or the balancer) down."""
    return ProcessSpec(
        name="ops",
        argv=(python, "-m", "wsgistack.ops.listener", str(conf), *run_as),
        cwd=str(runtime),
        optional=True,
        restart="always",
        stop_signal="TERM",
        stop_timeout=stop_timeout,
        ready=_ready("tcp", hosts.connect_address(host, port)),
    )


def _ready(kind: str, address: str, file: str = "") -> Ready:
    if kind == "unix":
        return Ready(file=file, unix=address)
    host, port = hosts.split(address)
    return Ready(file=file, tcp_host=host, tcp_port=port)


def health(plan: Plan) -> Health:
    """What the image's HEALTHCHECK asks (standalone/healthcheck.py): through nginx when this
    role runs it, with a Host nginx serves (an unknown Host is refused by design); else uWSGI's
    socket; else the background processes."""
    server = plan.config.server
    http_host, http_port = "", 0
    if plan.runs_nginx:
        http_host, http_port = hosts.split(hosts.connect_address(server.host, server.port))
    uwsgi = _ready(plan.upstream.kind, plan.upstream.address) if plan.runs_uwsgi else None
    return Health(
        http_host=http_host, http_port=http_port, path=server.ready_path, host_header=plan.probe_host, uwsgi=uwsgi,
        state_file=str(plan.paths.manager_state), background=tuple(b.name for b in plan.background),
    )


def renewer_settings(plan: Plan) -> RenewerSettings:
    """What the ACME renewer (tls/renewer.py) needs, written next to processes.json."""
    tls = plan.tls
    assert tls is not None
    return RenewerSettings(
        names=tuple(tls.names),
        cert=str(tls.cert),
        key=str(tls.key),
        config_dir=str(tls.acme_dir),
        webroot=str(plan.paths.acme_webroot),
        directory=tls.directory,
        email=tls.email,
        ca_bundle=str(tls.ca_bundle) if tls.ca_bundle else "",
        challenge_port=tls.challenge_port,
        certbot=plan.machine.certbot or "certbot",
        nginx_pid=str(plan.paths.nginx_pid),
        nginx_conf=str(plan.paths.nginx_conf),
        nginx_https_conf=str(plan.paths.nginx_https_conf),
    )


def ops_auth(basic_auth: str, runtime: object) -> OpsAuth | None:
    """ops.basic_auth as the listener keeps it: a PBKDF2 hash, never the password."""
    import hashlib

    if not basic_auth:
        return None
    user, _, password = basic_auth.partition(":")
    # Deterministic salt (rendering is pure): unique per runtime dir and user.
    salt = hashlib.sha256(f"wsgistack-ops:{runtime}:{user}".encode()).hexdigest()[:32]
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 100_000).hex()
    return OpsAuth(user=user, salt=salt, iterations=100_000, hash=digest)


def ops_settings(plan: Plan) -> OpsSettings:
    """What the ops listener (wsgistack.ops.listener) reads: where to listen and look, and the
    configuration summary its page shows. The basic-auth password is stored as a PBKDF2 hash,
    in a file only the app's user and the starter may read (mode 0640, the app's group)."""
    ops = plan.config.ops
    auth = ops_auth(ops.basic_auth, plan.paths.runtime)
    ports = [plan.config.server.port] + ([plan.tls.port] if plan.tls is not None else [])
    config = plan.config
    summary = {
        "role": config.role,
        "app": f"{plan.app.kind} {plan.app.target}" if plan.app else None,
        "url": plan.url if plan.runs_nginx else None,
        plan.app_server: f"{plan.processes} processes x {plan.threads} threads" if plan.runs_uwsgi else None,
        "listen queue": str(plan.listen) if plan.runs_uwsgi else None,
        "request timeout": f"{plan.harakiri}s (nginx {plan.nginx_timeout}s)",
        "reload on rss": f"{plan.reload_on_rss_mb} MB" if plan.runs_uwsgi else None,
        "background": ", ".join(b.name for b in plan.background) or None,
        "log format": config.server.log_format,
        "tls": config.tls.mode,
        "runtime dir": str(plan.paths.runtime),
    }
    return OpsSettings(
        host=ops.host,
        port=ops.port,
        auth=auth,
        history=ops.history,
        interval=2,
        nginx_udp=plan.ops_udp if plan.runs_nginx else None,
        nginx_ports=tuple(ports) if plan.runs_nginx else (),
        uwsgi_stats=str(plan.paths.stats) if plan.runs_uwsgi and config.uwsgi.stats and not plan.granian else None,
        uwsgi_socket=plan.upstream.address if plan.runs_uwsgi and plan.upstream.kind == "unix" else None,
        manager_state=str(plan.paths.manager_state),
        app_drain=str(plan.paths.app_drain) if plan.runs_uwsgi else None,
        drain=str(plan.paths.drain) if plan.runs_uwsgi else None,
        summary={k: v for k, v in summary.items() if v is not None},
        granian_workers=str(plan.paths.workers_dir) if plan.runs_uwsgi and plan.granian else None,
    )


def render(plan: Plan) -> list[RenderedFile]:
    env = environment()
    server = plan.config.server
    ctx = {
        "plan": plan,
        "version": __version__,
        "hidden_re": HIDDEN_RE,
        "listen_address": hosts.listen_address(server.host, server.port),
        "server_names": " ".join(server.server_names),
        "accept_any_host": "*" in server.server_names,
        "app": plan.app,
        "https": plan.https,
        "tls": plan.tls,
        "tls_listen": hosts.listen_address(server.host, plan.tls.port) if plan.tls else "",
        "tls_ciphers": MOZILLA_INTERMEDIATE_CIPHERS,
        "tls_curves": MOZILLA_CURVES,
        "upstream_keepalive": UPSTREAM_KEEPALIVE,
        "upstream_idle_timeout": UPSTREAM_IDLE_TIMEOUT,
        "crash_window": GRANIAN_CRASH_WINDOW,
    }
    files: list[RenderedFile] = []
    if plan.runs_nginx:
        files.append(RenderedFile("nginx.conf", env.get_template("nginx.conf.j2").render(ctx)))
        if plan.tls is not None:
            files.append(RenderedFile("ffdhe2048.pem", FFDHE2048))
        if plan.tls is not None and plan.tls.mode == "acme":
            # The HTTPS config the renewer swaps in once the first certificate is there.
            files.append(RenderedFile("nginx-https.conf", env.get_template("nginx.conf.j2").render({**ctx, "https": True})))
            files.append(RenderedFile(RenewerSettings.FILE, renewer_settings(plan).text(), 0o600))
        if plan.granian:
            files.append(RenderedFile("proxy_params", env.get_template("proxy_params.j2").render(ctx)))
        else:
            files.append(RenderedFile("uwsgi_params", env.get_template("uwsgi_params.j2").render(ctx)))
        files.append(RenderedFile("mime.types", env.get_template("mime.types.j2").render(ctx)))
    if plan.runs_uwsgi and plan.granian:
        # granian imports the shim by name: from a directory of its own the app's user can list.
        shim = plan.paths.granian_shim.relative_to(plan.paths.runtime)
        files.append(RenderedFile(str(shim), env.get_template("wsgistack_app.py.j2").render(ctx)))
    elif plan.runs_uwsgi:
        assert plan.app is not None
        files.append(RenderedFile("uwsgi.ini", env.get_template("uwsgi.ini.j2").render(ctx)))
        files.append(RenderedFile("wsgistack_app.py", env.get_template("wsgistack_app.py.j2").render(ctx)))
        if plan.uwsgi_user:
            files.append(RenderedFile("wsgistack_guard.py", env.get_template("wsgistack_guard.py.j2").render(ctx)))
    if plan.runs_ops:
        files.append(RenderedFile(OpsSettings.FILE, ops_settings(plan).text(), 0o640, shared=True))
    files.append(RenderedFile(Health.FILE, health(plan).text()))
    files.append(RenderedFile(ProcessTable.FILE, process_table(plan).text()))
    return files
