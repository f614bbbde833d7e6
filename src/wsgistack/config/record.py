"""The settings a running stack was started with, kept for ``wsgistack reload``.

A reload runs in another shell, whose environment is not the stack's: resolving ``PORT`` or
``WEB_CONCURRENCY`` there again would silently move or resize the running stack. So a start
records the resolved values (never the raw environment, never a secret setting such as
``app.env``) with their origins, in the runtime dir's private part, and a reload resolves
against those + the config file + its own flags (``sources.load_config(started=...)``).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsgistack import ids
from wsgistack.config.sources import (
    DEFAULT,
    FIELDS,
    SECRET,
    LoadedConfig,
    Origin,
    _flatten,
)
from wsgistack.errors import WsgistackError

RECORD = "settings.json"
VERSION = 1


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
        return f"{self.setting}: {show(self.old)} -> {show(self.new)} ({self.source})"


def show(value: Any) -> str:
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


def save(private_dir: Path, loaded: LoadedConfig, data_dir: Path | None = None) -> Path:
    """Write the record, readable by its owner only; atomically, so a reload never reads half.
    ``data_dir``: tls.data_dir's default as the start resolved it from its environment."""
    rec = record(loaded)
    data = {
        "version": VERSION,
        "config_file": str(rec.config_file) if rec.config_file else None,
        "data_dir": str(data_dir) if data_dir else None,
        "settings": {
            k: {"value": v, **({"origin": _origin_json(rec.origins[k])} if k in rec.origins else {})}
            for k, v in rec.values.items()
        },
    }
    target = private_dir / RECORD
    tmp = private_dir / f".{RECORD}.tmp"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1)
    os.replace(tmp, target)
    return target


def _origin_json(origin: Origin) -> dict[str, Any]:
    return {"kind": origin.kind, "where": origin.where, "raw": origin.raw}


def read(private_dir: Path) -> Recorded | None:
    """The record, or None when there is none. Started as root, the private dir belongs to the
    app's user, who could put a file there: only a file of our own user is believed."""
    path = private_dir / RECORD
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _bad(path, exc.strerror or str(exc)) from None
    with os.fdopen(fd, encoding="utf-8") as src:
        info = os.fstat(src.fileno())
        if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise _bad(path, f"it is not a private file of this user (owner uid {info.st_uid}, mode {info.st_mode & 0o777:o})")
        try:
            data = json.load(src)
            settings = data["settings"]
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            return Recorded(
                values={k: item["value"] for k, item in settings.items() if k in FIELDS and k not in SECRET},
                origins={
                    k: Origin(item["origin"]["kind"], item["origin"]["where"], item["origin"]["raw"])
                    for k, item in settings.items()
                    if k in FIELDS and k not in SECRET and "origin" in item
                },
                config_file=Path(data["config_file"]) if data.get("config_file") else None,
                data_dir=Path(data["data_dir"]) if data.get("data_dir") else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise _bad(path, f"it cannot be read ({exc})") from None


def _bad(path: Path, why: str) -> WsgistackError:
    return WsgistackError(
        ids.OPS_E004,
        f"the record of the settings the stack was started with, {path}, is not usable: {why}",
        "restart the stack (it writes a new record), or reload without re-rendering: wsgistack reload --no-render",
    )


def changes(old: Recorded, new: LoadedConfig) -> list[Change]:
    """What a reload would change, setting by setting, in the model's order."""
    now = values(new)
    return [Change(k, old.values.get(k), v, new.origin(k)) for k, v in now.items() if old.values.get(k) != v]
