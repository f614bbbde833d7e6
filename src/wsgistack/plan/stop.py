"""How a stack stops: each process's own budget, what waits for what, and the longest the
whole stop can take. Pure, from the config and the role.

The process table (each process's budget and ``stop_after``), the compose file's
``stop_grace_period``, the Kubernetes grace periods, the Dockerfile's advice and doctor's
check all read it here, so they agree with what the process manager does. Every budget is
counted from the stop's start (after the drain), whenever the process is signalled:

- nginx and the app server share ``stop_timeout``: nginx gets all of it but APP_RESERVE to
  finish its in-flight requests (QUIT); the app server is stopped once nginx has exited
  (nginx hands it the requests it finishes), and is idle by then: it stops in about a
  second, within what is left of ``stop_timeout`` (APP_RESERVE at least). So the default
  stop (8 s) fits Docker's 10 s with the wait for a SIGKILLed process;
- each background process gets its own ``processes.NAME.stop_timeout`` (default
  ``stop_timeout``), signalled with nginx: a queue worker finishing a 30 s job does not eat
  uWSGI's time;
- the ops listener and the ACME renewer get a few seconds, also from the start;
- a process SIGKILLed at its deadline is waited for KILL_GRACE more.

The stop takes at most ``drain_delay`` plus the longest of those (a process whose turn comes
after its deadline is killed at once); an orchestrator must wait that long (plus a margin for
the manager's own exit) before its SIGKILL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wsgistack.config.model import Config
from wsgistack.contracts import KILL_GRACE

OPS_STOP = 2  # the ops listener only observes: it exits at once
ACME_STOP = 5  # the renewer may be in the middle of a certbot run
# What an orchestrator waits beyond the longest stop: the manager's own exit and cleanup
# (it removes the runtime dir's files: well under a second).
MARGIN = 1
# Of stop_timeout, what nginx leaves the app server behind it (which is idle by then: uWSGI
# stops two workers in about 1.2 s, granian in 0.03 s, measured with tests/integration/
# test_processes.py's slow-to-stop worker).
APP_RESERVE = 2
DOCKER_DEFAULT_STOP = 10  # `docker stop` (and compose without stop_grace_period) waits this long


@dataclass(frozen=True)
class Step:
    name: str
    budget: int  # seconds from the stop's start to SIGKILL (whenever its turn comes)
    after: tuple[str, ...] = ()  # signalled once these have exited


@dataclass(frozen=True)
class StopPlan:
    role: str
    drain: int  # drain_delay: readiness answers 503 before anything is signalled
    steps: tuple[Step, ...]

    def budget(self, name: str) -> int:
        for step in self.steps:
            if step.name == name:
                return step.budget
        raise KeyError(name)

    def _finish(self, step: Step, seen: frozenset[str] = frozenset()) -> float:
        by_name = {s.name: s for s in self.steps}
        before = [self._finish(by_name[n], seen | {step.name}) for n in step.after if n in by_name and n not in seen]
        # Signalled once those exited, killed at its own deadline (at once when that has passed).
        return max(max(before, default=0.0), step.budget + KILL_GRACE)

    @property
    def longest(self) -> float:
        """Seconds from the stop's first signal until the last process is gone, at worst."""
        return max((self._finish(s) for s in self.steps), default=0.0)

    @property
    def total(self) -> int:
        """The longest the stop can take after SIGTERM, drain included (whole seconds)."""
        return math.ceil(self.drain + self.longest)

    @property
    def grace(self) -> int:
        """What the orchestrator must wait after SIGTERM before its SIGKILL: `docker stop -t`,
        compose's stop_grace_period, Kubernetes' terminationGracePeriodSeconds (plus preStop)."""
        return self.total + MARGIN

    def describe(self, server_neutral: bool = False) -> str:
        """``nginx 6 s, then uwsgi until 8 s; beside them: jobs 30 s, ops 2 s`` (+ drain): each
        number counted from the stop's start.
        ``server_neutral``: the app server is "app server" (the Kubernetes manifests are the
        same for uWSGI and granian: the image's config names it)."""
        if server_neutral:
            return StopPlan(self.role, self.drain, tuple(
                Step("app server" if s.name in ("uwsgi", "granian") else s.name, s.budget,
                     tuple("app server" if a in ("uwsgi", "granian") else a for a in s.after))
                for s in self.steps)).describe()
        chains, beside = [], []
        followers = {n for s in self.steps for n in s.after}
        for step in self.steps:
            if step.after:
                continue
            nxt = [s for s in self.steps if step.name in s.after]
            if nxt:
                chains.append(f"{step.name} {step.budget} s, then " + ", ".join(f"{s.name} until {s.budget} s" for s in nxt))
            elif step.name not in followers:
                beside.append(f"{step.name} {step.budget} s")
        text = "; ".join(chains)
        if beside:
            text += ("; beside them: " if text else "") + ", ".join(beside)
        if self.drain:
            text = f"drain {self.drain} s, then " + text
        return text


def stop_plan(config: Config, role: str | None = None, *, run_processes: bool | None = None,
              process: str | None = None) -> StopPlan:
    """The stop of a stack with this config in ``role`` (default: config.role); for role all,
    ``run_processes`` (default: the config's) says whether the background processes run in
    it; for role worker, ``process`` names the one it runs (default: config.process)."""
    role = role or config.role
    run_processes = config.run_processes if run_processes is None else run_processes
    steps: list[Step] = []
    nginx = role in ("all", "web")
    app = role in ("all", "app")
    if nginx:
        reserve = min(APP_RESERVE, config.stop_timeout // 2) if app else 0
        steps.append(Step("nginx", config.stop_timeout - reserve))
    if app:
        server = "granian" if config.server.app_server == "granian" else "uwsgi"
        steps.append(Step(server, config.stop_timeout, ("nginx",) if nginx else ()))
    names: list[str] = []
    if role == "all" and run_processes:
        names = list(config.processes)
    elif role == "worker":
        names = [process or config.process]
    for name in names:
        spec = config.processes.get(name)
        if spec is None:
            continue
        budget = spec.stop_timeout or config.stop_timeout
        for i in range(1, spec.count + 1):
            steps.append(Step(name if spec.count == 1 else f"{name}.{i}", budget))
    if config.ops.port and role != "worker":
        steps.append(Step("ops", OPS_STOP))
    if nginx and config.tls.mode == "acme":
        steps.append(Step("acme", ACME_STOP))
    return StopPlan(role=role, drain=config.drain_delay, steps=tuple(steps))


def graces(config: Config) -> tuple[tuple[str, int], ...]:
    """Per container role (``all``, ``app``, ``web``, ``worker:NAME``), what its orchestrator
    must wait after SIGTERM before SIGKILL (compose's stop_grace_period, `docker stop -t`)."""
    out = [(role, stop_plan(config, role).grace) for role in ("all", "app", "web")]
    out += [(f"worker:{name}", stop_plan(config, "worker", process=name).grace) for name in sorted(config.processes)]
    return tuple(out)


def grace_for(found: tuple[tuple[str, int], ...], role: str) -> int:
    """The grace of ``role`` in :func:`graces`' answer (the defaults' when it was not computed)."""
    return dict(found).get(role) or dict(graces(Config())).get(role, DOCKER_DEFAULT_STOP)
