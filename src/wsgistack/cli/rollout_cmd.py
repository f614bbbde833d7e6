"""``wsgistack rollout``: update the balancer's nodes one at a time, with no failed request."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from wsgistack import hosts

from wsgistack.cli.console import note

from wsgistack.cli.balance_cmd import BALANCE_OPTIONS, balance_options
from wsgistack.cli.options import load, overrides, project_dir_argument


def verify_options(func: Any) -> Any:
    """--verify PATH, --verify-post PATH, --verify-clients N: the probe (ops/verify.py)."""
    func = click.option("--verify-clients", type=click.IntRange(1, 64), default=4, show_default=True,
                        help="--verify: probe clients (half keep their connection alive), each pausing 0.1 s between requests")(func)
    func = click.option("--verify-post", "verify_post", default="", metavar="PATH",
                        help="--verify: POST a small form to PATH too (it must accept one without a CSRF token)")(func)
    return click.option("--verify", "verify", default="", metavar="PATH",
                        help="drive bounded probe traffic (GETs on PATH) through the site while it changes; end with "
                             "`N requests, F failed, p99 during the swap X ms` and exit non-zero on any failure")(func)


@click.command()
@project_dir_argument
@balance_options
@click.option("--command", "update", default="",
              help="how to update a node, run by the shell: {host} {port} {node} {name} are filled in "
                   "(default, for a node on this machine: wsgistack reload PATH --host H --port P)")
@click.option("--node-runtime-dir", default="",
              help="the default update's --runtime-dir, e.g. /srv/rt/{host}-{port} (several nodes on one machine)")
@click.option("--compose", "compose_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="a running `wsgistack compose --fleet` file: drain each node in its balancer container, replace the "
                   "node's container, wait until it is healthy, undrain (the balancer's settings come from its container)")
@click.option("-p", "--project-name", default="", help="--compose: the compose project (default: as docker-compose: "
              "$COMPOSE_PROJECT_NAME, else the file's directory name)")
@click.option("--image", default="", help="--compose: the nodes' new image ($APP_IMAGE; kept in .env beside the file "
              "once every node runs it); without it each node's container is replaced with the same image")
@verify_options
@click.option("--drain-timeout", type=float, default=30.0, show_default=True,
              help="seconds a drained node's in-flight requests get before its update runs anyway")
@click.option("--ready-timeout", type=float, default=120.0, show_default=True,
              help="seconds a node gets to be ready after its update; past it the rollout stops there")
def command(path: Path, update: str, node_runtime_dir: str, compose_file: Path | None, project_name: str, image: str,
            verify: str, verify_post: str, verify_clients: int, drain_timeout: float, ready_timeout: float,
            **params: Any) -> None:
    """Drain each node at the running balancer, update it, wait until it is ready, put it back.

    Give the same settings as `wsgistack balance` (nodes, runtime dir): they name the balancer;
    or, for a compose fleet, --compose FILE (and -p). Stops at the first node that does not come
    back ready; the others keep serving.
    """
    from wsgistack.errors import UsageError
    from wsgistack import ids
    from wsgistack.machine import detect
    from wsgistack.ops.rollout import RolloutOptions, rollout
    from wsgistack.plan.balancer import make_balancer_plan

    if compose_file is None and (image or project_name):
        raise UsageError(ids.DOCKER_E010, "--image and --project-name go with --compose",
                         "e.g. wsgistack rollout --compose compose.yaml --image shop:v2")
    if compose_file is not None and (update or node_runtime_dir):
        raise UsageError(ids.DOCKER_E010, "--compose replaces containers itself: no --command or --node-runtime-dir",
                         "drop them, or drop --compose")
    options = RolloutOptions(command=update, reload_argv=[sys.executable, "-m", "wsgistack", "reload", str(path)],
                             drain_timeout=drain_timeout, ready_timeout=ready_timeout)
    if compose_file is not None:
        from wsgistack.ops.fleet import ComposeFleet

        fleet = ComposeFleet.find(compose_file, project_name)
        plan, container = fleet.balancer()
        fleet.check_image(image)
        api = fleet.runtime_api(container)
        _say(f"compose project {fleet.project}: balancer {container[:12]}, nodes {', '.join(s.name for s in plan.servers)}"
             + (f"; new image {image}" if image else ""))
        target = fleet.probe_address(plan)
        try:
            result = verified(verify, verify_post, verify_clients, target, plan.check_host,
                               lambda on_swap: rollout(plan, options, _say, api=api, updater=fleet.updater(plan, image),
                                                       on_swap=on_swap))
        finally:
            api.close()
        if image:
            _say(f"{fleet.keep_image(image)}: APP_IMAGE={image} (a later docker-compose up -d keeps it)")
        _say(f"rollout done: {len(plan.servers)} nodes replaced")
        judge(result)
        return

    loaded = load(path, params, overrides(params, BALANCE_OPTIONS))
    plan = make_balancer_plan(loaded, detect())
    target = hosts.split(hosts.connect_address(plan.config.balancer.host, plan.config.balancer.port))

    def run(on_swap: Any) -> None:
        if node_runtime_dir and not update:
            # One reload command per node: its own runtime dir.
            on_swap("start")
            for server in plan.servers:
                directory = node_runtime_dir.format(host=hosts.bare(server.host), port=server.port, name=server.name)
                rollout(plan, RolloutOptions(reload_argv=[*options.reload_argv, "--runtime-dir", directory],
                                             drain_timeout=drain_timeout, ready_timeout=ready_timeout), _say, nodes=[server])
            on_swap("end")
        else:
            rollout(plan, options, _say, on_swap=on_swap)

    result = verified(verify, verify_post, verify_clients, target, plan.check_host, run)
    _say(f"rollout done: {len(plan.servers)} nodes updated")
    judge(result)


def judge(result: Any) -> None:
    if result is not None:
        from wsgistack.ops.verify import verdict

        verdict(result)  # verify.E001 on any failed probe request


def verified(get_path: str, post_path: str, clients: int, target: tuple[str, int], host_header: str,
              change: Any) -> Any:
    """Run ``change(on_swap)``; with --verify, inside bounded probe traffic, and say its line
    (also when the change failed). Returns the probe's result (None without --verify): the
    caller judges it (verify.E001) once it has recorded what changed."""
    if not get_path:
        change(lambda _: None)
        return None
    from wsgistack.ops.verify import Probe, ProbeOptions, baseline

    host, port = target
    options = ProbeOptions(host=host, port=port, get_path=get_path, post_path=post_path, host_header=host_header,
                           clients=clients)
    probe = Probe(options)
    try:
        with probe:
            baseline(probe)  # verify.E002 before anything is touched
            _say(f"verify: probing http://{host}:{port}{get_path}" + (f" and POST {post_path}" if post_path else "")
                 + f" with {clients} clients")

            def on_swap(what: str) -> None:
                probe.swap_started() if what == "start" else probe.swap_ended()

            try:
                change(on_swap)
            finally:
                probe.stop(after=1.0)  # a short tail: the last node's first requests
    finally:
        if probe.result.samples and probe.result.swap is not None:
            _say(f"verify: {probe.result.line()}")
    return probe.result


def _say(text: str) -> None:
    note(f"{text}", err=False)
