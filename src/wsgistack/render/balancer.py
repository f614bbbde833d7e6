"""haproxy.cfg and the balancer's process table, rendered from a BalancerPlan. Pure."""

from __future__ import annotations

import json

from wsgistack import __version__, hosts
from wsgistack.plan.balancer import BalancerPlan
from wsgistack.render import RenderedFile, environment


def balancer_process_table(plan: BalancerPlan) -> dict[str, object]:
    """HAProxy for the process manager: in the foreground (-db), logging to stdout."""
    host = plan.config.balancer.host
    probe_host = hosts.connect_host(host)
    return {
        "runtime_dir": str(plan.paths.runtime),
        "stop_timeout": plan.config.stop_timeout,
        "url": plan.url,
        "cleanup": [str(p) for p in plan.paths.transient],
        "processes": [
            {
                "name": "haproxy",
                "argv": [plan.haproxy or "haproxy", "-db", "-f", str(plan.paths.config)],
                "env": {},
                "cwd": str(plan.paths.runtime),
                # USR1 = soft stop: stop listening, let in-flight requests finish (hard-stop-after).
                "stop_signal": "USR1",
                "death_signal": "TERM",
                "ready": {"tcp": f"{probe_host}:{plan.config.balancer.port}"},
            }
        ],
    }


def render_balancer(plan: BalancerPlan) -> list[RenderedFile]:
    """haproxy.cfg (mode 600: it may hold the stats password) and the process table."""
    ctx = {"plan": plan, "version": __version__}
    return [
        RenderedFile("haproxy.cfg", environment().get_template("haproxy.cfg.j2").render(ctx), 0o600),
        RenderedFile("processes.json", json.dumps(balancer_process_table(plan), indent=2) + "\n"),
    ]
