"""The command line: one thin module per command over the library.

Exit codes are decided here and only here: 0 ok, 1 runtime failure, 2 bad config or app,
3 a missing system dependency; a supervised process's own failure code passes through.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from wsgistack import __version__, ids
from wsgistack.errors import WsgistackError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


class _Group(click.Group):
    """Turns WsgistackError into ``error[id]: message / hint`` and an exit code; any other
    exception into the same one line (the traceback only with --debug); Ctrl-C into 130."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors and --help: click presents them
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except WsgistackError as exc:
            if ctx.meta.get("wsgistack.debug"):
                traceback.print_exc()
            click.echo(exc.render(), err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - a bug of ours or an OS error: one line, not a traceback
            if ctx.meta.get("wsgistack.debug"):
                traceback.print_exc()
            error = WsgistackError(
                ids.INTERNAL_E001,
                f"{type(exc).__name__}: {exc}",
                "run it again with --debug (wsgistack --debug ...) for the traceback, and report it if it is ours",
            )
            click.echo(error.render(), err=True)
            sys.exit(1)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "bench" and name not in self.commands:  # imported only when asked for
            self.add_command(_bench_command(), "bench")
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        extra = ["bench"] if (BENCH_DIR / "wsgistack_bench").is_dir() else []
        return sorted({*super().list_commands(ctx), *extra})


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wsgistack")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Run a Python WSGI app (Django, Flask, module:callable) behind Nginx + uWSGI."""
    ctx.meta["wsgistack.debug"] = debug


def _register() -> None:
    from wsgistack.cli import (
        config_cmd,
        doctor_cmd,
        reload_cmd,
        render_cmd,
        run_cmd,
        status_cmd,
    )

    main.add_command(run_cmd.command, "run")
    main.add_command(render_cmd.command, "render")
    main.add_command(config_cmd.command, "config")
    main.add_command(status_cmd.command, "status")
    main.add_command(reload_cmd.command, "reload")
    from wsgistack.cli import entrypoint_cmd

    main.add_command(entrypoint_cmd.command, "entrypoint")
    main.add_command(doctor_cmd.command, "doctor")
    from wsgistack.cli import build_cmd, compose_cmd, dockerfile_cmd, heroku_cmd

    main.add_command(dockerfile_cmd.command, "dockerfile")
    main.add_command(build_cmd.command, "build")
    main.add_command(compose_cmd.command, "compose")
    main.add_command(heroku_cmd.command, "heroku")
    from wsgistack.cli import kube_cmd

    main.add_command(kube_cmd.command, "kube")
    from wsgistack.cli import balance_cmd

    main.add_command(balance_cmd.command, "balance")
    from wsgistack.cli import rollout_cmd

    main.add_command(rollout_cmd.command, "rollout")
    from wsgistack.cli import drain_cmd

    main.add_command(drain_cmd.drain, "drain")
    main.add_command(drain_cmd.undrain, "undrain")
    from wsgistack.cli import stop_cmd

    main.add_command(stop_cmd.command, "stop")
    from wsgistack.cli import logs_cmd

    main.add_command(logs_cmd.command, "logs")


# The benchmark harness is not part of the package: it lives in the repository's benchmarks/
# (it needs the examples, wrk, gunicorn and granian). From an editable install of a checkout,
# `wsgistack bench` loads it from there; anywhere else the command says where it is.
BENCH_DIR = Path(__file__).resolve().parents[3] / "benchmarks"


def _bench_command() -> click.Command:
    if (BENCH_DIR / "wsgistack_bench" / "cli.py").is_file():
        if str(BENCH_DIR) not in sys.path:
            sys.path.insert(0, str(BENCH_DIR))
        from wsgistack_bench.cli import command  # type: ignore[import-not-found]

        return command

    @click.command("bench", hidden=True, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def unavailable(args: tuple[str, ...]) -> None:
        """Benchmark wsgistack against reference stacks (from a checkout of the repository)."""
        raise click.UsageError(
            "`wsgistack bench` runs from a checkout of the wsgistack repository (benchmarks/), "
            "installed with pip install -e '.[bench]'"
        )

    return unavailable


_register()
