"""The settings a running stack was started with, kept for ``wsgistack reload``.

A reload runs in another shell, whose environment is not the stack's: resolving ``PORT`` or
``WEB_CONCURRENCY`` there again would silently move or resize the running stack. So a start
records the resolved values (never the raw environment, never a secret setting such as
``app.env``) with their origins, in the runtime dir's state part (contracts.StartRecord), and a reload resolves
against those + the config file + its own flags (``sources.load_config(started=...)``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsgistack import ids
from wsgistack.contracts import RecordedOrigin, RecordedSetting, StartRecord, Trust
from wsgistack.config.sources import (
    DEFAULT,
    FIELDS,
    SECRET,
    SENSITIVE,
    LoadedConfig,
    Origin,
    _flatten,
    mask,
)
from wsgistack.errors import WsgistackError
from wsgistack.layout import Paths

if TYPE_CHECKING:
    from wsgistack.app.interpreter import AppPython



@dataclass(frozen=True)
class Recorded:
    """What a stack runs with: every non-secret setting's value and origin."""

    values: Mapping[str, Any]  # dotted key -> JSON value
    origins: Mapping[str, Origin]
    config_file: Path | None
    # tls.data_dir's default as the start resolved it ($XDG_DATA_HOME or ~/.local/share): a
    # reload from a shell with another HOME or XDG_DATA_HOME must not swap the certificates.
    data_dir: Path | None = None

    def started(self) -> dict[str, tuple[Any, Origin]]:
        """The values that came from the start's environment or command line: ``load_config``'s
        ``started`` layer. File and default values are not replayed: the file is read again."""
        return {k: (self.values[k], o) for k, o in self.origins.items() if o.kind in ("env", "cli") and k in self.values}


@dataclass(frozen=True)
class Change:
    setting: str
    old: Any
    new: Any
    source: Origin  # where the new value comes from

    def __str__(self) -> str:
        # A credential's change is shown masked, as everywhere (config.model.sensitive).
        old, new = mask(self.setting, self.old), mask(self.setting, self.new)
        hidden = " [the secret part changed, not shown]" if self.setting in SENSITIVE and old == new else ""
        return f"{self.setting}: {show(old)} -> {show(new)} ({self.source}){hidden}"


def show(value: Any, setting: str = "") -> str:
    """A setting's value as a change line shows it (masked when ``setting`` is sensitive)."""
    value = mask(setting, value) if setting else value
    return json.dumps(value) if not isinstance(value, str) else value


def values(loaded: LoadedConfig) -> dict[str, Any]:
    """Every non-secret setting's resolved value, as JSON values."""
    flat = _flatten(loaded.config.model_dump(mode="json"))
    return {k: flat.get(k) for k in FIELDS if k not in SECRET}


def record(loaded: LoadedConfig) -> Recorded:
    return Recorded(
        values=values(loaded),
        origins={k: loaded.origin(k) for k in FIELDS if k not in SECRET and loaded.origin(k) != DEFAULT},
        config_file=loaded.config_file,
    )


def save(paths: Paths, loaded: LoadedConfig, data_dir: Path | None = None, python: AppPython | None = None,
         app_uid: int | None = None, static_roots: tuple[str, ...] = ()) -> Path:
    """Write the record into the runtime dir's state part, readable by its owner only.
    ``data_dir``: tls.data_dir's default as the start resolved it from its environment;
    ``python``: the interpreter uWSGI runs; ``app_uid``: the app's user (started as root)."""
    rec = record(loaded)
    data = StartRecord(
        settings={k: RecordedSetting(v, RecordedOrigin(rec.origins[k].kind, rec.origins[k].where, rec.origins[k].raw)
                                     if k in rec.origins else None) for k, v in rec.values.items()},
        config_file=str(rec.config_file) if rec.config_file else None,
        data_dir=str(data_dir) if data_dir else None,
        python=python.python if python else None,
        python_why=python.why if python else "",
        app_uid=app_uid,
        static_roots=tuple(static_roots),
    )
    data.write(paths.start_record, 0o600)
    return paths.start_record


@dataclass(frozen=True)
class Started:
    """A stack's record, read back: its settings and what else the start resolved."""

    recorded: Recorded
    python: str | None
    python_why: str
    app_uid: int | None
    static_roots: tuple[str, ...] = ()


def read(paths: Paths) -> Started | None:
    """The record, or None when there is none. Only a private file of our own user, in our own
    state dir, never a link, is believed (contracts.Trust): the app's user (who owns the
    runtime dir's private part) can neither plant nor read it."""
    try:
        rec = StartRecord.read(paths.start_record, Trust.only(os.geteuid(), private=True))
    except FileNotFoundError:
        return None
    except WsgistackError as exc:
        raise _bad(paths.start_record, exc.message, exc.id) from None
    recorded = Recorded(
        values={k: s.value for k, s in rec.settings.items() if k in FIELDS and k not in SECRET},
        origins={k: Origin(s.origin.kind, s.origin.where, s.origin.raw, sensitive=k in SENSITIVE)  # type: ignore[arg-type]
                 for k, s in rec.settings.items() if k in FIELDS and k not in SECRET and s.origin is not None},
        config_file=Path(rec.config_file) if rec.config_file else None,
        data_dir=Path(rec.data_dir) if rec.data_dir else None,
    )
    return Started(recorded, rec.python, rec.python_why, rec.app_uid, rec.static_roots)


def _bad(path: Path, why: str, id: str = ids.OPS_E004) -> WsgistackError:
    return WsgistackError(
        id,
        f"the record of the settings the stack was started with, {path}, is not usable: {why}",
        "restart the stack (it writes a new record), or reload without re-rendering: wsgistack reload --no-render",
    )


def changes(old: Recorded, new: LoadedConfig) -> list[Change]:
    """What a reload would change, setting by setting, in the model's order."""
    now = values(new)
    return [Change(k, old.values.get(k), v, new.origin(k)) for k, v in now.items() if old.values.get(k) != v]
