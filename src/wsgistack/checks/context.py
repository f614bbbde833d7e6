"""What the checks look at: the loaded config, the plan, the machine and the rendered files.

A :class:`CheckContext` is built once per doctor run (or preflight) and handed to every
check. The rendered files are made on first use; the ones that need a disk (``nginx -t``,
gixy, crossplane) get them in a private temporary directory that :meth:`close` removes,
so a check never writes into the project or the real runtime dir.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import crossplane

from wsgistack.app.interpreter import AppPython
from wsgistack.config.model import Config
from wsgistack.config.sources import LoadedConfig
from wsgistack.errors import AppError
from wsgistack.machine import Machine
from wsgistack.plan.stack import Plan
from wsgistack.render import RenderedFile, write_files


@dataclass
class CheckContext:
    loaded: LoadedConfig
    plan: Plan | None  # None when the app could not be loaded (see app_error)
    machine: Machine
    env: Mapping[str, str] = field(default_factory=dict)
    deploy: bool = False
    app_error: AppError | None = None
    # The files rendered from this plan (the start renders once; doctor too): the checks look
    # at exactly what is written.
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
        return {f.path: f.content for f in self.files or ()}

    @cached_property
    def nginx_dir(self) -> Path | None:
        """A temp dir holding the rendered nginx files as they are: nginx.conf names every file
        of the runtime dir relative to nginx's prefix (``-p``), so ``nginx -t -p DIR`` checks
        them here without the real runtime dir existing (nginx -t creates its temp dirs and
        opens its logs). A dev certificate that does not exist yet (tls.mode self-signed: the
        start makes it) is stood in for by a throwaway one here: a check creates nothing else."""
        if self.plan is None or not self.plan.runs_nginx:
            return None
        directory = self.tempdir() / "nginx"
        directory.mkdir()
        files = list(self.files or ())
        tls = self.plan.tls
        if tls is not None and tls.mode == "self-signed" and not (tls.cert.is_file() and tls.key.is_file()):
            from wsgistack.render.stack import render
            from wsgistack.tls.certs import throwaway_certificate

            cert, key = throwaway_certificate(directory / "tls", tls.names)
            files = render(dataclasses.replace(self.plan, tls=dataclasses.replace(tls, cert=cert, key=key)))
        write_files(files, directory)
        (directory / "nginx-temp").mkdir(exist_ok=True)
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
