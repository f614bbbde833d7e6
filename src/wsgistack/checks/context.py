"""What the checks look at: the loaded config, the plan, the machine and the rendered files.

A :class:`CheckContext` is built once per doctor run (or preflight) and handed to every
check. The rendered files are made on first use; the ones that need a disk (``nginx -t``,
gixy, crossplane) get them in a private temporary directory that :meth:`close` removes,
so a check never writes into the project or the real runtime dir.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import crossplane

from wsgistack.app.interpreter import AppPython, resolve
from wsgistack.config.model import Config
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import AppError
from wsgistack.layout import Paths
from wsgistack.machine import Machine
from wsgistack.plan.stack import Plan
from wsgistack.render import RenderedFile, write_files
from wsgistack.render.stack import render
from wsgistack.start import build_plan


@dataclass
class CheckContext:
    loaded: LoadedConfig
    plan: Plan | None  # None when the app could not be loaded (see app_error)
    machine: Machine
    env: Mapping[str, str] = field(default_factory=dict)
    deploy: bool = False
    app_error: AppError | None = None
    # The files the caller rendered from this plan and will write (the start sequence renders
    # once); None: render them here, on first use.
    files: Sequence[RenderedFile] | None = None
    dockerfile: Path | None = None
    python: AppPython | None = None  # the app's interpreter (None for role web)
    # Versions and other facts the checks learn on the way (shown above the report).
    facts: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        return self.loaded.config

    @cached_property
    def rendered(self) -> dict[str, str]:
        """The files ``render`` would write, by name; empty without a plan."""
        if self.plan is None:
            return {}
        return {f.path: f.content for f in (self.files if self.files is not None else render(self.plan))}

    @cached_property
    def nginx_dir(self) -> Path | None:
        """A temp dir holding the rendered nginx files, with the runtime paths (pid, temp
        dirs) moved into it so ``nginx -t`` can run without the real runtime dir existing
        (nginx -t creates its temp dirs and opens its logs). Everything else (upstream,
        static dirs, user) is exactly as planned. With the caller's files (the start
        sequence's one render), they are moved there as text; else rendered for it."""
        if self.plan is None or not self.plan.runs_nginx:
            return None
        directory = self.tempdir() / "nginx"
        directory.mkdir()
        if self.files is not None:
            files = relocated(self.files, self.plan, directory)
        else:
            files = render(dataclasses.replace(self.plan, paths=Paths(directory)))
        write_files(list(files), directory)
        (directory / "nginx-temp").mkdir()
        return directory

    @cached_property
    def nginx_tree(self) -> list[dict[str, Any]]:
        """The rendered nginx.conf as crossplane's tree (includes not followed); [] without one."""
        if self.nginx_dir is None:
            return []
        parsed = crossplane.parse(str(self.nginx_dir / "nginx.conf"), single=True, check_ctx=False, check_args=False)
        return list(parsed["config"][0]["parsed"]) if parsed["config"] else []

    @cached_property
    def uwsgi_options(self) -> list[tuple[str, str]]:
        """(key, value) pairs of the rendered uwsgi.ini, in order (keys may repeat)."""
        return ini_options(self.rendered.get("uwsgi.ini", ""))

    def tempdir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="wsgistack-doctor-")
        return Path(self._tmp.name)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_context(
    loaded: LoadedConfig,
    machine: Machine,
    env: Mapping[str, str],
    *,
    deploy: bool = False,
    dockerfile: Path | None = None,
) -> CheckContext:
    """Detect the app and plan; an app that cannot be loaded becomes a finding (app.E100)
    instead of an exception, so the other checks still run. Bad config still raises."""
    plan: Plan | None = None
    app_error: AppError | None = None
    python = resolve(loaded, env) if loaded.config.role != "web" else None
    try:
        plan = build_plan(loaded, machine, env, python)
    except AppError as exc:
        app_error = exc
    return CheckContext(
        loaded=loaded, plan=plan, machine=machine, env=env, deploy=deploy, app_error=app_error, dockerfile=dockerfile,
        python=python,
    )


def relocated(files: Sequence[RenderedFile], plan: Plan, directory: Path) -> list[RenderedFile]:
    """The files as if rendered with the runtime dir at ``directory``: every path under the
    runtime dir moved there, except the upstream socket (as ``render`` of a plan with other
    Paths would do: the upstream is planned once). tests/golden/test_render.py proves the two
    equal for nginx's files in every golden case."""
    runtime = re.escape(str(plan.paths.runtime))
    keep = plan.upstream.address if plan.upstream.kind == "unix" else None
    marker = "\0wsgistack-upstream\0"
    out = []
    for f in files:
        text = f.content.replace(keep, marker) if keep else f.content
        text = re.sub(runtime + r"(?=[/;\s\"':]|$)", lambda _m: str(directory), text, flags=re.M)
        out.append(RenderedFile(f.path, text.replace(marker, keep) if keep else text))
    return out


def ini_options(text: str) -> list[tuple[str, str]]:
    """uWSGI's ini dialect: ``key = value`` lines, ``;``/``#`` comments, repeatable keys."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in ";#[":
            continue
        key, sep, value = line.partition("=")
        if sep:
            out.append((key.strip(), value.strip()))
    return out


def ini_value(options: list[tuple[str, str]], key: str) -> str | None:
    """The last value of ``key`` (what uWSGI uses for a single-valued option)."""
    values = [v for k, v in options if k == key]
    return values[-1] if values else None


def walk(tree: list[dict[str, Any]], parents: tuple[dict[str, Any], ...] = ()) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    """Every directive of a crossplane tree with the blocks that enclose it, outermost first."""
    for directive in tree:
        yield directive, parents
        if "block" in directive:
            yield from walk(directive["block"], (*parents, directive))
