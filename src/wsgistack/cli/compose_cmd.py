"""``wsgistack compose [PATH] [--split]``: a compose file for one container or nginx + app."""

from __future__ import annotations

from pathlib import Path

import typing

import click

from wsgistack.config import FIELDS

from wsgistack.cli.options import project_dir_argument

from wsgistack.cli.console import note

from wsgistack import ids
from wsgistack.layout import IMAGE_PORT, TLS_PORT
from wsgistack.plan.image import ProjectFacts
from wsgistack.render import RenderedFile


@click.command()
@project_dir_argument
@click.option("--split", is_flag=True, help="two containers: nginx (role web) and uWSGI (role app)")
@click.option("--socket", type=click.Choice(["unix", "tcp"]), default="unix", show_default=True,
              help="split: uWSGI on a unix socket in a shared volume, or on TCP")
@click.option("--tcp-uri", default="127.0.0.1:8001", show_default=True, help="split with --socket tcp: uWSGI's host:port")
@click.option("-t", "--image", default=None, help="image name (default: the project directory's name)")
@click.option("--port", type=int, default=IMAGE_PORT, show_default=True, help="port nginx listens on")
@click.option("--host", default="0.0.0.0", show_default=True, help="address nginx listens on (host networking)")
@click.option("--env-file", default="", help="env file compose reads at `up` (settings, secrets per environment)")
@click.option("-e", "--env", "env", multiple=True, help="KEY=VALUE for the app's environment (repeatable)")
@click.option("--tls", type=click.Choice(list(typing.get_args(FIELDS["tls.mode"].annotation))), default=None,
              help="HTTPS in the nginx container (default: tls.mode from the project's config file); adds a volume for its certificates")
@click.option("--fleet", type=int, default=None, metavar="N",
              help="seed 004's whole topology: HAProxy (wsgistack balance's haproxy.cfg) in front of N app nodes, "
                   "a MariaDB primary + replica, Cassandra with --cassandra")
@click.option("--stats-port", type=int, default=FIELDS["balancer.stats_port"].default, show_default=True,
              help="--fleet: the balancer's stats page (balancer.stats_port)")
@click.option("--db/--no-db", default=True, show_default=True, help="--fleet: the MariaDB primary + replica")
@click.option("--cassandra", is_flag=True, help="--fleet: a Cassandra service, and POSTS_BACKEND=cassandra on the nodes")
@click.option("--offline", is_flag=True,
              help="--fleet: every image built here from the Debian base (MariaDB from Debian's mariadb-server), "
                   "for machines that reach no image registry; `docker-compose up -d --build`")
@click.option("--network", "network", type=click.Choice(["auto", "host", "bridge"]), default="auto", show_default=True,
              help="--fleet: host networking (every service its own port on 127.0.0.1), or a compose network "
                   "(bridge); auto = bridge when the local Docker engine has one (or none answers), else host")
@click.option("--node-port", type=int, default=8001, show_default=True,
              help="--fleet, host networking: node 1's port on 127.0.0.1 (node i: + i - 1)")
@click.option("--db-port", type=int, default=3306, show_default=True,
              help="--fleet, host networking: the MariaDB primary's port on 127.0.0.1 (the replica's: + 1)")
@click.option("--secret-env", default="",
              help="--fleet: the secret every node must share, required in .env (default: DJANGO_SECRET_KEY for a "
                   "Django project, else SECRET_KEY)")
@click.option("--tls-port", type=int, default=TLS_PORT, show_default=True, help="with --tls: the port nginx serves HTTPS on")
@click.option("--no-detect", is_flag=True, help="do not import the app to find its static and media dirs")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write to this file instead of stdout")
def command(path: Path, split: bool, socket: str, tcp_uri: str, image: str | None, port: int, host: str,
            env_file: str, env: tuple[str, ...], tls: str | None, tls_port: int, fleet: int | None, stats_port: int, db: bool,
            cassandra: bool, offline: bool, network: str, node_port: int, db_port: int, secret_env: str, no_detect: bool,
            output: Path | None) -> None:
    """Print a compose file (docker-compose 1.29 and `docker compose` read it).

    Static and media directories found in the app are shared through named volumes; in
    split mode the uWSGI socket too (or TCP with --socket tcp).
    """
    from wsgistack.errors import UsageError, WsgistackError
    from wsgistack.plan.image import image_name
    from wsgistack.render.compose import ComposeOptions, render_compose
    from wsgistack.cli.facts import manifest_facts

    if fleet is not None and split:
        raise UsageError(ids.DOCKER_E010, "--fleet does not combine with --split: each node of the fleet is one container "
                         "(nginx + uWSGI)", "drop --split: wsgistack compose --fleet 3")
    if fleet is not None and tls not in (None, "off"):
        raise UsageError(ids.DOCKER_E010, f"--fleet does not combine with --tls {tls}: the fleet's balancer serves plain HTTP",
                         "drop --tls and terminate TLS in front of the balancer (docs/several-nodes.md)")
    pairs = []
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(ids.DOCKER_E010, f"--env {item!r} is not KEY=VALUE", "e.g. -e DJANGO_DEBUG=0")
        pairs.append((key, value))
    from wsgistack.config import load_config
    from wsgistack.plan.stop import graces

    if tls is None:
        try:
            tls = load_config(path, env={}).config.tls.mode
        except WsgistackError:
            tls = "off"
    # Each service's stop_grace_period follows from the project's config and the settings
    # given here (plan/stop.py): the same budgets the process manager in it keeps.
    given = {k: v for k, v in pairs if k.startswith("WSGISTACK_")}
    if fleet is not None:
        from wsgistack.render.compose import FLEET_DRAIN_DELAY

        given["WSGISTACK_DRAIN_DELAY"] = str(FLEET_DRAIN_DELAY)
    try:
        stop_graces = graces(load_config(path, env=given).config)
    except WsgistackError:
        stop_graces = ()
    facts = manifest_facts(path, no_detect=no_detect, image=image or image_name(path))
    if not (path / "Dockerfile").is_file():
        note("note: no Dockerfile yet: run `wsgistack dockerfile` (or `wsgistack build`) first")
    if fleet is not None:
        rendered = _fleet(path, facts, image or image_name(path), fleet, port, host, stats_port, db, cassandra, env_file,
                          tuple(pairs), offline, network, secret_env, node_port, db_port, grace=stop_graces)
    else:
        rendered = render_compose(facts, ComposeOptions(
            image=image or image_name(path), split=split, socket=socket, tcp_uri=tcp_uri, port=port, host=host,
            env_file=env_file, env=tuple(pairs), tls=tls, tls_port=tls_port, grace=stop_graces))
    if output is None:
        click.echo(rendered.content, nl=False)
    else:
        output.write_text(rendered.content, encoding="utf-8")
        click.echo(str(output), err=True)


def _fleet(path: Path, facts: ProjectFacts, image: str, nodes: int, port: int, host: str, stats_port: int, db: bool,
           cassandra: bool, env_file: str, env: tuple[tuple[str, str], ...], offline: bool, network: str,
           secret_env: str, node_port: int, db_port: int, grace: tuple[tuple[str, int], ...] = ()) -> RenderedFile:
    """Render the fleet; write its build contexts into the project (the compose file's
    directory: node 1 builds `.`) and return compose.yaml for the caller to print or write."""
    from wsgistack.image import wheel
    from wsgistack.image.build import engine_has_bridge
    from wsgistack.layout import BALANCER_CONTEXT
    from wsgistack.render import write_files
    from wsgistack.render.compose import FleetOptions, render_fleet

    if network == "auto":
        bridge = engine_has_bridge()
        network = "host" if bridge is False else "bridge"
        why = {None: "no Docker engine answered here: the portable default",
               True: "this Docker engine has a bridge network", False: "this Docker engine has no bridge network"}[bridge]
        note(f"note: --network {network} ({why}; --network host|bridge chooses)")
    if not secret_env:
        secret_env = "DJANGO_SECRET_KEY" if facts.app_kind == "django" or (path / "manage.py").is_file() else "SECRET_KEY"
    source, vendored = wheel.resolve()
    files = render_fleet(facts, FleetOptions(
        image=image, nodes=nodes, port=port, host=host, stats_port=stats_port, db=db, cassandra=cassandra,
        env_file=env_file, env=env, offline=offline, network=network, secret_env=secret_env, node_port=node_port,
        db_port=db_port, grace=grace), source)
    compose, contexts = files[0], files[1:]
    written = write_files(contexts, path)
    if source.wheel:  # the running wsgistack's wheel, as `wsgistack build` vendors it
        target = path / BALANCER_CONTEXT / source.wheel
        data = next(iter(vendored.values()))
        for old in target.parent.glob("wsgistack-*.whl"):
            if old.name != source.wheel:
                old.unlink()
        if not target.is_file() or target.read_bytes() != data:  # same bytes: Docker's cache keeps the layer
            target.write_bytes(data)
        written.append(target)
    dirs = sorted({str(p.parent.relative_to(path)) for p in written})
    note(f"wrote the build context{'s' if len(dirs) > 1 else ''} {', '.join(dirs)} in {path} (this compose file names them: "
         "keep it in the project directory)")
    note(f"set {secret_env}{', DB_PASSWORD, DB_ROOT_PASSWORD, DB_REPLICATION_PASSWORD' if db else ''} in .env beside it, then: "
         "docker-compose up -d --build")
    return compose
