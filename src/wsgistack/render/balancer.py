"""haproxy.cfg and the balancer's process table, rendered from a BalancerPlan. Pure."""

from __future__ import annotations

from wsgistack import __version__, hosts
from wsgistack.contracts import Health, OpsSettings, ProcessSpec, ProcessTable, Ready
from wsgistack.plan.balancer import BalancerPlan
from wsgistack.render import RenderedFile, environment
from wsgistack.render.stack import ops_auth, ops_process


def balancer_process_table(plan: BalancerPlan) -> ProcessTable:
    """HAProxy for the process manager: in the foreground (-db), logging to stdout."""
    host, port = hosts.split(hosts.connect_address(plan.config.balancer.host, plan.config.balancer.port))
    processes = [
        ProcessSpec(
            name="haproxy",
            argv=(plan.haproxy or "haproxy", "-db", "-f", str(plan.paths.config)),
            cwd=str(plan.paths.runtime),
            # USR1 = soft stop: stop listening, let in-flight requests finish (hard-stop-after).
            stop_signal="USR1",
            death_signal="TERM",
            ready=Ready(tcp_host=host, tcp_port=port),
        ),
    ]
    ops = plan.config.ops
    if ops.port:
        # The status page's view of the nodes (HAProxy's runtime API), beside HAProxy: as the
        # starter (the runtime API is its own), the same listener as beside a stack.
        processes.append(ops_process(plan.python, plan.paths.ops_conf, plan.paths.runtime, ops.host, ops.port, 2.0))
    return ProcessTable(
        runtime_dir=str(plan.paths.runtime),
        stop_timeout=float(plan.config.stop_timeout),
        url=plan.url,
        cleanup=tuple(str(p) for p in plan.paths.transient),
        processes=tuple(processes),
        state_file=str(plan.paths.manager_state) if ops.port else "",
    )


def balancer_ops_settings(plan: BalancerPlan) -> OpsSettings:
    """The ops listener beside HAProxy: no nginx, no app server; the nodes from the runtime API."""
    ops, balancer = plan.config.ops, plan.config.balancer
    return OpsSettings(
        host=ops.host, port=ops.port, manager_state=str(plan.paths.manager_state), history=ops.history, interval=2,
        auth=ops_auth(ops.basic_auth, plan.paths.runtime), haproxy_socket=str(plan.paths.socket),
        summary={"role": "balancer", "url": plan.url, "nodes": " ".join(balancer.nodes),
                 "stats page": plan.stats_url, "runtime dir": str(plan.paths.runtime)},
    )


def balancer_health(plan: BalancerPlan) -> Health:
    """What the image's HEALTHCHECK asks in role balancer: HAProxy's own answer on the
    clients' port (``monitor-uri``, the liveness path), whatever state the nodes are in."""
    host, port = hosts.split(hosts.connect_address(plan.config.balancer.host, plan.config.balancer.port))
    return Health(http_host=host, http_port=port, path=plan.live_path, host_header=plan.check_host)


def render_balancer(plan: BalancerPlan) -> list[RenderedFile]:
    """haproxy.cfg (mode 600: it may hold the stats password), the process table and
    health.json (the container's HEALTHCHECK)."""
    ctx = {"plan": plan, "version": __version__}
    files = [
        RenderedFile("haproxy.cfg", environment().get_template("haproxy.cfg.j2").render(ctx), 0o600),
        RenderedFile(ProcessTable.FILE, balancer_process_table(plan).text()),
        RenderedFile(Health.FILE, balancer_health(plan).text()),
    ]
    if plan.config.ops.port:
        files.append(RenderedFile(OpsSettings.FILE, balancer_ops_settings(plan).text(), 0o600))
    return files
