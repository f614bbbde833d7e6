"""The checks ``run``, ``render`` and the container entrypoint make before they start anything."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import Level
from wsgistack.checks.registry import Report, run_checks
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import WsgistackError
from wsgistack.plan.stack import Plan
from wsgistack.render import RenderedFile

# Not part of a preflight: the caller already checked the binaries (run.E001) or does not
# need them (render may run where nginx is not installed), and a Dockerfile is not started.
PREFLIGHT_EXCLUDES = ("machine", "dockerfile")


class PreflightError(WsgistackError):
    """Findings at ERROR or above: the stack is not started (exit code 1)."""

    def __init__(self, report: Report) -> None:
        errors = report.errors
        ids = ", ".join(dict.fromkeys(f.id for f in errors))
        super().__init__(
            "doctor.E001",
            f"refusing to start: {len(errors)} check{'s' if len(errors) != 1 else ''} failed ({ids})",
            "fix each finding above (its hint says how; `wsgistack doctor` shows them all), or silence one you "
            "accept with silence = [\"<id>\"] in wsgistack.toml or WSGISTACK_SILENCE=<id>",
            details="\n".join(f.render() for f in errors),
        )
        self.report = report


def preflight(
    plan: Plan,
    loaded: LoadedConfig,
    deploy: bool,
    env: Mapping[str, str],
    *,
    app_checks: bool | None = None,
    silenced: Collection[str] = (),
    files: Sequence[RenderedFile],
) -> Report:
    """Check a plan before anything is started; raise :class:`PreflightError` on ERROR findings.

    Contract (``run``, ``render`` and the container entrypoint rely on it):

    - Runs the checks on config, permissions and the rendered files, including ``nginx -t``
      on a temporary copy and gixy-ng in-process; writes nothing outside a temp dir that it
      removes, and starts no server. Measured: about 0.15 s (a sandbox render for nginx -t ~20 ms,
      nginx -t ~15-20 ms, gixy-ng ~10-35 ms, plus ~30 ms to import this package).
    - ``deploy=True`` applies the deploy-mode rules (e.g. uWSGI as root is an error, not a
      warning) and, unless ``app_checks=False``, also runs the app's own checks in a
      subprocess (Django ``check --deploy``: DEBUG, SECRET_KEY, ALLOWED_HOSTS), which adds
      about 0.5-1 s. ``deploy=False`` skips subprocess checks unless ``app_checks=True``.
    - ``env`` is the environment the app will run with (the caller's ``os.environ``): the
      app's own checks read its settings from it, as the app will.
    - Machine checks (binaries, versions) and the Dockerfile lint are not part of it.
    - ``files``: what the caller rendered from ``plan`` and will write; checked as they are
      (a check never renders).
    - Silenced ids: ``loaded.config.silence`` plus ``silenced``; a silenced finding never stops a start.
    - Returns the :class:`Report` (warnings included, for the caller to show) when no finding
      is at ERROR or above; otherwise raises :class:`PreflightError` (id ``doctor.E001``,
      exit code 1) whose details list every such finding with its hint.
    """
    with_app = deploy if app_checks is None else app_checks
    with CheckContext(loaded=loaded, plan=plan, machine=plan.machine, env=dict(env), deploy=deploy, files=files,
                      python=plan.python) as ctx:
        report = run_checks(
            ctx,
            deploy=deploy,
            silenced={*loaded.config.silence, *silenced},
            exclude_tags=PREFLIGHT_EXCLUDES,
            skip_slow=not with_app,
        )
    if report.at_least(Level.ERROR):
        raise PreflightError(report)
    return report


def after_migrate(
    plan: Plan,
    loaded: LoadedConfig,
    deploy: bool,
    env: Mapping[str, str],
    *,
    silenced: Collection[str] = (),
    files: Sequence[RenderedFile],
) -> Report:
    """The app's own checks (Django's ``check --deploy``), run once migrate has: a start that
    migrates checks after it, since a third-party check may query the schema
    (drf-spectacular's, in any DRF app), which a first deploy's empty database does not have
    yet. The preflight ran everything else (``app_checks=False``). Same contract: raises
    :class:`PreflightError` on an ERROR finding."""
    with CheckContext(loaded=loaded, plan=plan, machine=plan.machine, env=dict(env), deploy=deploy, files=files,
                      python=plan.python) as ctx:
        report = run_checks(ctx, deploy=deploy, silenced={*loaded.config.silence, *silenced}, tags=("schema",))
    if report.at_least(Level.ERROR):
        raise PreflightError(report)
    return report
