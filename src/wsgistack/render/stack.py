"""The stack's files, rendered from a Plan: nginx.conf, uwsgi.ini, the shim, the process table
and the settings of the processes beside them (ops listener, ACME renewer). Pure."""

from __future__ import annotations

import json
import os

from wsgistack import __version__, hosts
from wsgistack.plan.stack import Plan
from wsgistack.render import RenderedFile, environment
from wsgistack.tls import FFDHE2048, MOZILLA_CURVES, MOZILLA_INTERMEDIATE_CIPHERS

# Hidden files/dirs (.git, .env, .htpasswd; but not /.well-known/), editor and VCS leftovers
# (vim .swp, emacs #x# and x~, nano .save, patch .orig/.rej): never served. Matched
# case-insensitively (~*) against the decoded, normalised URI, so %2e and ..%2f tricks land here too.
HIDDEN_RE = r'"/\.(?!well-known/)|/#|~$|\.(?:swp|swo|swn|bak|old|orig|rej|save|pyc)$"'


def process_table(plan: Plan) -> dict[str, object]:
    """What the process manager runs. Holds no environment from the caller: secrets stay
    in the manager's own environment and are inherited, never written to disk."""
    machine = plan.machine
    processes: list[dict[str, object]] = []
    if plan.runs_uwsgi:
        assert plan.app is not None
        uwsgi = plan.python.uwsgi if plan.python else None
        ready = plan.upstream.ready
        # ...and the app is loaded: nginx never starts in front of an app that cannot load.
        ready["file"] = str(plan.paths.uwsgi_ready)
        processes.append(
            {
                "name": "uwsgi",
                "argv": [uwsgi or "uwsgi", "--ini", str(plan.paths.uwsgi_ini)],
                "env": dict(plan.app_env),
                "drop_env_prefix": "UWSGI_",
                "cwd": str(plan.app.path),
                "stop_signal": "TERM",
                "ready": ready,
                # Memory-based recycling, checked by the process manager on a timer, not by
                # every worker after every request (uWSGI's reload-on-rss).
                "recycle": {"rss_mb": plan.reload_on_rss_mb, "min_age": plan.min_worker_lifetime, "interval": 2},
            }
        )
    for bg in plan.background:
        assert plan.app is not None
        python = plan.python.python if plan.python else machine.python
        processes.append(
            {
                "name": bg.name,
                "argv": list(bg.argv),
                "env": dict(plan.app_env),
                # As prestart steps and uWSGI see it: the app's Python first on PATH (so
                # "python manage.py ..." and the venv's scripts are the app's), its dir importable.
                "env_prepend": {"PATH": os.path.dirname(python), "PYTHONPATH": str(plan.app.path)},
                "drop_env_prefix": "UWSGI_",
                "cwd": str(plan.app.path),
                "user": plan.uwsgi_user or "",
                "group": plan.run_group or "",
                "restart": bg.restart,
                "stop_signal": bg.stop_signal,
                "stop_timeout": bg.stop_timeout,
                "stop_group": "background",
                "ready": {},
            }
        )
    if plan.runs_ops:
        ops = plan.config.ops
        processes.append(
            {
                "name": "ops",
                # wsgistack's own interpreter (prometheus_client is wsgistack's, not the app's).
                "argv": [machine.python, "-m", "wsgistack.ops.listener", str(plan.paths.ops_conf)],
                "env": {},
                "cwd": str(plan.paths.runtime),
                "user": plan.ops_user or "",
                "group": plan.run_group or "",
                # Restarted if it fails: it only observes, so it never takes the site down.
                "restart": "always",
                "stop_signal": "TERM",
                "stop_timeout": 2,
                "ready": {"tcp": f"{hosts.connect_host(ops.host)}:{ops.port}"},
            }
        )
    if plan.runs_nginx:
        host = plan.config.server.host
        probe_host = hosts.connect_host(host)
        processes.append(
            {
                "name": "nginx",
                "argv": [machine.nginx or "nginx", "-p", str(plan.paths.runtime), "-c", str(plan.paths.nginx_conf)],
                "env": {},
                "cwd": str(plan.paths.runtime),
                # QUIT = graceful: stop accepting, finish in-flight requests, then exit.
                "stop_signal": "QUIT",
                "death_signal": "TERM",
                "ready": {"tcp": f"{probe_host}:{plan.config.server.port}"},
            }
        )
    if plan.tls is not None and plan.tls.mode == "acme":
        # Obtains the first certificate (nginx serves HTTP and the challenge meanwhile) and
        # renews it when the CA suggests; started after nginx, whose webroot it needs.
        processes.append(
            {
                "name": "acme",
                "argv": [machine.python, "-m", "wsgistack.tls.renewer", str(plan.paths.renewer_conf)],
                "env": {},
                "cwd": str(plan.paths.runtime),
                # It retries a CA's refusal itself; a crash (a bug) is restarted with backoff.
                "restart": "on-failure",
                "stop_signal": "TERM",
                "ready": {},
            }
        )
    if plan.termdrain:
        # Heroku: nginx reads SIGTERM as QUIT, uWSGI's workers leave it to their master. The
        # library's mode is the process's name (image/termdrain.c).
        for spec in processes:
            spec["preload"] = plan.termdrain
            spec["env"] = {**spec["env"], "_WSGISTACK_TERMDRAIN": spec["name"]}  # type: ignore[dict-item]
    table: dict[str, object] = {
        "runtime_dir": str(plan.paths.runtime),
        "stop_timeout": plan.config.stop_timeout,
        "url": plan.url if plan.runs_nginx else "",
        "cleanup": [str(p) for p in plan.paths.transient],
        # For the image's HEALTHCHECK (healthcheck.py), which reads only this file.
        "health": {"live": plan.config.server.live_path, "ready": plan.config.server.ready_path},
        "state_file": str(plan.paths.manager_state),
        "log_format": plan.config.server.log_format,
        "processes": processes,
    }
    if plan.config.drain_delay:
        # Drain before stop: readiness answers 503 (the shim sees the marker) while nginx and
        # uWSGI still serve, so a balancer takes the node out before it stops accepting.
        table["drain"] = {"file": str(plan.paths.drain), "delay": plan.config.drain_delay}
    return table


def renewer_settings(plan: Plan) -> dict[str, object]:
    """What the ACME renewer (tls/renewer.py) needs, written next to processes.json."""
    tls = plan.tls
    assert tls is not None
    return {
        "names": list(tls.names),
        "cert": str(tls.cert),
        "key": str(tls.key),
        "config_dir": str(tls.acme_dir),
        "webroot": str(plan.paths.acme_webroot),
        "directory": tls.directory,
        "email": tls.email,
        "ca_bundle": str(tls.ca_bundle) if tls.ca_bundle else "",
        "challenge_port": tls.challenge_port,
        "certbot": plan.machine.certbot or "certbot",
        "nginx_pid": str(plan.paths.nginx_pid),
        "nginx_conf": str(plan.paths.nginx_conf),
        "nginx_https_conf": str(plan.paths.nginx_https_conf),
    }


def ops_settings(plan: Plan) -> dict[str, object]:
    """What the ops listener (wsgistack.ops.listener) reads: where to listen and look, and the
    configuration summary its page shows. The basic-auth password is stored as a PBKDF2 hash
    (this file is readable by the app's user)."""
    import hashlib

    ops = plan.config.ops
    auth = None
    if ops.basic_auth:
        user, _, password = ops.basic_auth.partition(":")
        # Deterministic salt (rendering is pure): unique per runtime dir and user.
        salt = hashlib.sha256(f"wsgistack-ops:{plan.paths.runtime}:{user}".encode()).hexdigest()[:32]
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 100_000).hex()
        auth = {"user": user, "salt": salt, "iterations": 100_000, "hash": digest}
    ports = [plan.config.server.port] + ([plan.tls.port] if plan.tls is not None else [])
    config = plan.config
    summary = {
        "role": config.role,
        "app": f"{plan.app.kind} {plan.app.target}" if plan.app else None,
        "url": plan.url if plan.runs_nginx else None,
        "uwsgi": f"{plan.processes} processes x {plan.threads} threads" if plan.runs_uwsgi else None,
        "listen queue": plan.listen if plan.runs_uwsgi else None,
        "request timeout": f"{plan.harakiri}s (nginx {plan.nginx_timeout}s)",
        "reload on rss": f"{plan.reload_on_rss_mb} MB" if plan.runs_uwsgi else None,
        "background": ", ".join(b.name for b in plan.background) or None,
        "log format": config.server.log_format,
        "tls": config.tls.mode,
        "runtime dir": str(plan.paths.runtime),
    }
    return {
        "host": ops.host,
        "port": ops.port,
        "auth": auth,
        "history": ops.history,
        "interval": 2,
        "nginx_udp": plan.ops_udp if plan.runs_nginx else None,
        "nginx_ports": ports if plan.runs_nginx else [],
        "uwsgi_stats": str(plan.paths.stats) if plan.runs_uwsgi and config.uwsgi.stats else None,
        "manager_state": str(plan.paths.manager_state),
        "summary": {k: v for k, v in summary.items() if v is not None},
    }


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
    }
    files: list[RenderedFile] = []
    if plan.runs_nginx:
        files.append(RenderedFile("nginx.conf", env.get_template("nginx.conf.j2").render(ctx)))
        if plan.tls is not None:
            files.append(RenderedFile("ffdhe2048.pem", FFDHE2048))
        if plan.tls is not None and plan.tls.mode == "acme":
            # The HTTPS config the renewer swaps in once the first certificate is there.
            files.append(RenderedFile("nginx-https.conf", env.get_template("nginx.conf.j2").render({**ctx, "https": True})))
            files.append(RenderedFile("tls-renewer.json", json.dumps(renewer_settings(plan), indent=2) + "\n"))
        files.append(RenderedFile("uwsgi_params", env.get_template("uwsgi_params.j2").render(ctx)))
        files.append(RenderedFile("mime.types", env.get_template("mime.types.j2").render(ctx)))
    if plan.runs_uwsgi:
        assert plan.app is not None
        files.append(RenderedFile("uwsgi.ini", env.get_template("uwsgi.ini.j2").render(ctx)))
        files.append(RenderedFile("wsgistack_app.py", env.get_template("wsgistack_app.py.j2").render(ctx)))
        if plan.uwsgi_user:
            files.append(RenderedFile("wsgistack_guard.py", env.get_template("wsgistack_guard.py.j2").render(ctx)))
    if plan.runs_ops:
        files.append(RenderedFile("ops.json", json.dumps(ops_settings(plan), indent=2) + "\n"))
    files.append(RenderedFile("processes.json", json.dumps(process_table(plan), indent=2) + "\n"))
    return files
