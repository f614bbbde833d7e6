"""haproxy.cfg and the balancer's process table, rendered from a BalancerPlan. Pure."""

from __future__ import annotations

from wsgistack import __version__, hosts
from wsgistack.contracts import Health, ProcessSpec, ProcessTable, Ready
from wsgistack.plan.balancer import BalancerPlan
from wsgistack.render import RenderedFile, environment


def balancer_process_table(plan: BalancerPlan) -> ProcessTable:
    """HAProxy for the process manager: in the foreground (-db), logging to stdout."""
    host, port = hosts.split(hosts.connect_address(plan.config.balancer.host, plan.config.balancer.port))
    return ProcessTable(
        runtime_dir=str(plan.paths.runtime),
        stop_timeout=float(plan.config.stop_timeout),
        url=plan.url,
        cleanup=tuple(str(p) for p in plan.paths.transient),
        processes=(
            ProcessSpec(
                name="haproxy",
                argv=(plan.haproxy or "haproxy", "-db", "-f", str(plan.paths.config)),
                cwd=str(plan.paths.runtime),
                # USR1 = soft stop: stop listening, let in-flight requests finish (hard-stop-after).
                stop_signal="USR1",
                death_signal="TERM",
                ready=Ready(tcp_host=host, tcp_port=port),
            ),
        ),
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
    return [
        RenderedFile("haproxy.cfg", environment().get_template("haproxy.cfg.j2").render(ctx), 0o600),
        RenderedFile(ProcessTable.FILE, balancer_process_table(plan).text()),
        RenderedFile(Health.FILE, balancer_health(plan).text()),
    ]
