"""Precedence, in one tested function: defaults < file < environment < CLI.

Every value remembers where it came from (:class:`Origin`), so errors can say
``uwsgi.processes (from env WSGISTACK_UWSGI__PROCESSES="x")`` and ``wsgistack config --origin``
can show the source of each resolved setting.
"""

from __future__ import annotations

import difflib
import json
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from wsgistack import ids
from wsgistack.config.envvars import (
    ALIASES,
    NOT_SETTINGS,
    PREFIX,
    aliases_for,
    dotted_from_env,
    env_name,
)
from wsgistack.config.model import NAMED_SECTIONS, Config, PathMapping
from wsgistack.errors import ConfigError, WsgistackError

CONFIG_FILE = "wsgistack.toml"


@dataclass(frozen=True)
class Origin:
    kind: Literal["default", "file", "env", "cli"]
    where: str = ""  # "wsgistack.toml", "env PORT", "CLI --port"
    raw: str | None = None  # the text the user wrote, for error messages
    # The setting is a credential (config.model.sensitive): its text is never shown, only where
    # it came from. Not part of the origin's identity.
    sensitive: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return self.shown(reveal=False)

    def shown(self, reveal: bool = False) -> str:
        """``env PORT="8080"``; a sensitive setting's only as ``env WSGISTACK_OPS__BASIC_AUTH``
        unless ``reveal`` (``config --show-secrets``)."""
        if self.kind == "default":
            return "default"
        if self.raw is not None and self.kind in ("env", "cli") and (reveal or not self.sensitive):
            return f'{self.where}="{self.raw}"'
        return self.where


DEFAULT = Origin("default")


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    origins: Mapping[str, Origin] = field(default_factory=dict)
    project_dir: Path = Path(".")
    config_file: Path | None = None

    def origin(self, dotted: str) -> Origin:
        return self.origins.get(dotted, DEFAULT)


# --- the field catalogue, derived from the model -------------------------------------------


def _fields(model: type[BaseModel] = Config, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> pydantic FieldInfo for every leaf setting."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not prefix and name in NAMED_SECTIONS:  # keyed by the user's names: see field_info
            continue
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(_fields(ann, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = info
    return out


FIELDS: dict[str, Any] = _fields()


def _marked(marker: str) -> frozenset[str]:
    return frozenset(k for k, info in FIELDS.items()
                     if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(marker))


# Credentials (config.model.sensitive): masked wherever they are shown.
SENSITIVE: frozenset[str] = _marked("sensitive")
# ...and of those, the ones never written anywhere, the start record included (app.env).
SECRET: frozenset[str] = _marked("secret")
assert SECRET <= SENSITIVE, "a secret setting is a sensitive one: mark it with config.model.sensitive(recorded=False)"
MASK = "********"


def mask(dotted: str, value: Any) -> Any:
    """What wsgistack shows of a setting's value: a sensitive one's keys (app.env) or user
    (``user:password``) stay, the rest is :data:`MASK`; an unset one stays empty, so the owner
    still sees whether it is set."""
    if dotted not in SENSITIVE or value in (None, "", {}):
        return value
    if isinstance(value, dict):
        return {k: MASK for k in value}
    if isinstance(value, str) and ":" in value:
        return f"{value.partition(':')[0]}:{MASK}"
    return MASK


def masked_dump(config: Config, reveal: bool = False) -> dict[str, Any]:
    """The config as JSON values (``config --json``), every sensitive setting masked."""
    data = config.model_dump(mode="json")
    if reveal:
        return data
    for dotted in SENSITIVE:
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = mask(dotted, node[leaf])
    return data


def _secret_texts(flat: Mapping[str, Any], origins: Mapping[str, Origin]) -> set[str]:
    """Every piece of text a sensitive setting holds (each app.env value, a password and its
    whole ``user:password``, the raw text of its variable), to be scrubbed from error messages:
    a validator or a parser that echoes what it refused must not show one."""
    texts: set[str] = set()
    for dotted in SENSITIVE:
        value = flat.get(dotted)
        for item in value.values() if isinstance(value, Mapping) else (value,):
            if isinstance(item, str):
                texts.update((item, item.partition(":")[2]))
        raw = origins[dotted].raw if dotted in origins else None
        if raw:
            texts.update((raw, raw.strip(), *raw.split(","), *(part.partition("=")[2] for part in raw.split(","))))
    # Very short fragments would garble every message they appear in; a password that short
    # protects nothing anyway (and the validators do not echo values: this is the backstop).
    return {t for t in texts if len(t) >= 4}


def _scrub(problem: WsgistackError, texts: set[str]) -> WsgistackError:
    def clean(text: str) -> str:
        for secret in sorted(texts, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    if not texts:
        return problem
    return WsgistackError(problem.id, clean(problem.message), clean(problem.hint), clean(problem.details))


def _named(dotted: str) -> tuple[str, str, str] | None:
    """``processes.sendalerts.command`` -> ("processes", "sendalerts", "command")."""
    section, _, rest = dotted.partition(".")
    name, _, leaf = rest.partition(".")
    if section in NAMED_SECTIONS and name and leaf and "." not in leaf:
        return section, name, leaf
    return None


def field_info(dotted: str) -> Any:
    """The FieldInfo of a setting, including a named section's (``processes.NAME.FIELD``, and
    ``processes`` itself); None for an unknown key."""
    if dotted in FIELDS:
        return FIELDS[dotted]
    if dotted in NAMED_SECTIONS:
        return Config.model_fields[dotted]
    parts = _named(dotted)
    if parts is None:
        return None
    section, _, leaf = parts
    return NAMED_SECTIONS[section].model_fields.get(leaf)


def is_setting(dotted: str) -> bool:
    """A leaf setting: one value, one env var (``processes`` is a table of them, not one)."""
    return dotted not in NAMED_SECTIONS and field_info(dotted) is not None


def _closest(key: str) -> str:
    parts = _named(key)
    if parts is not None:
        section, name, leaf = parts
        match = difflib.get_close_matches(leaf, NAMED_SECTIONS[section].model_fields, n=1, cutoff=0.6)
        if match:
            return f"did you mean {section}.{name}.{match[0]}?"
        return f"a [{section}.{name}] entry takes: {', '.join(NAMED_SECTIONS[section].model_fields)}"
    match = difflib.get_close_matches(key, [*FIELDS, *NAMED_SECTIONS], n=1, cutoff=0.6)
    return f"did you mean {match[0]}?" if match else "see `wsgistack config` for every setting"


# --- sources --------------------------------------------------------------------------------


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and not is_setting(dotted):
            if not value and _named(dotted + ".x") is not None:
                out[dotted] = {}  # an empty [processes.NAME]: kept, so its missing command is reported
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def find_config_file(project_dir: Path) -> tuple[Path | None, dict[str, Any]]:
    """Return the config file in use and its settings; refuse two competing files."""
    toml_path = project_dir / CONFIG_FILE
    pyproject = project_dir / "pyproject.toml"
    from_toml = _read_toml(toml_path) if toml_path.is_file() else None
    from_pyproject = None
    if pyproject.is_file():
        from_pyproject = _read_toml(pyproject).get("tool", {}).get("wsgistack")
    if from_toml is not None and from_pyproject is not None:
        raise ConfigError(
            [
                WsgistackError(
                    ids.CONFIG_E007,
                    f"both {toml_path} and [tool.wsgistack] in {pyproject} configure wsgistack",
                    "keep one of them; wsgistack will not guess which one you meant",
                )
            ]
        )
    if from_toml is not None:
        return toml_path, from_toml
    if from_pyproject is not None:
        return pyproject, from_pyproject
    return None, {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            [WsgistackError(ids.CONFIG_E004, f"{path} is not valid TOML: {exc}", "fix the syntax at the position shown")]
        ) from None
    except FileNotFoundError:
        raise ConfigError([WsgistackError(ids.CONFIG_E004, f"the config file {path} does not exist",
                                          "check the path given to --config (relative to the current directory)")]) from None
    except OSError as exc:
        raise ConfigError([WsgistackError(ids.CONFIG_E004, f"cannot read {path}: {exc.strerror}", "check the file's permissions")]) from None


def _unwrap(ann: Any) -> Any:
    """Strip ``X | None`` so type-driven parsing sees the real type."""
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, type(int | str)) and len(args) == 1:
        return args[0]
    return ann


def parse_env_value(dotted: str, raw: str) -> Any:
    """Turn an environment string into what the field expects (lists, mappings, dicts)."""
    ann = _unwrap(field_info(dotted).annotation)
    origin = typing.get_origin(ann)
    text = raw.strip()
    if origin is tuple:
        if text.startswith("["):
            return json.loads(text)
        if dotted == "app.prestart":  # commands contain spaces: separate them with ";"
            return [part.strip() for part in text.split(";") if part.strip()]
        items = [item for item in text.replace(",", " ").split() if item]
        if typing.get_args(ann)[0] is PathMapping:
            # "/static/=/srv/static /media/=/srv/media"
            mappings = []
            for item in items:
                url, sep, directory = item.partition("=")
                if not sep:
                    raise ValueError(f"{item!r} is not URL=DIR, e.g. /static/=/srv/static")
                mappings.append({"url": url, "dir": directory})
            return mappings
        return items
    if origin is dict:
        if text.startswith("{"):
            return json.loads(text)
        pairs = {}
        for number, item in enumerate((i for i in text.split(",") if i.strip()), start=1):
            key, sep, value = item.partition("=")
            if not sep:
                shown = "" if dotted in SENSITIVE else f" ({item!r})"  # an app.env fragment may be a password
                raise ValueError(f"entry {number}{shown} is not KEY=VALUE (entries are separated by commas)")
            pairs[key.strip()] = value
        return pairs
    return text


def from_env(env: Mapping[str, str]) -> tuple[dict[str, tuple[Any, Origin]], list[WsgistackError]]:
    values: dict[str, tuple[Any, Origin]] = {}
    problems: list[WsgistackError] = []

    def put(dotted: str, name: str, raw: str) -> None:
        origin = Origin("env", f"env {name}", raw, sensitive=dotted in SENSITIVE)
        try:
            values[dotted] = (parse_env_value(dotted, raw), origin)
        except (ValueError, json.JSONDecodeError) as exc:
            problems.append(_invalid(dotted, origin, str(exc)))

    for name, dotted in ALIASES:
        raw = env.get(name, "")
        if raw.strip():  # an empty alias (PORT="") means "not set", as shells treat it
            put(dotted, name, raw)
    # Heroku sets DYNO in every dyno: its router's 30 s limit then shapes our timeouts.
    if env.get("DYNO", "").strip():
        values["platform"] = ("heroku", Origin("env", "env DYNO", env["DYNO"]))
    for name in sorted(env):
        if not name.startswith(PREFIX) or name in NOT_SETTINGS:
            continue
        dotted = dotted_from_env(name)
        if not is_setting(dotted):
            problems.append(
                WsgistackError(
                    ids.CONFIG_E003,
                    f"unknown setting {name} in the environment",
                    f"{_closest(dotted)} (variables starting with {PREFIX} are reserved for settings)",
                )
            )
            continue
        put(dotted, name, env[name])
    return values, problems


def _invalid(dotted: str, origin: Origin, message: str) -> WsgistackError:
    info = field_info(dotted)
    desc = info.description if info is not None and info.description else ""
    default = info.get_default(call_default_factory=True) if info is not None and not info.is_required() else None
    hint_parts = [desc] if desc else []
    if info is not None and not info.is_required() and default not in ({}, ()):
        hint_parts.append(f"default: {default!r}")
    if origin.kind != "default":
        hint_parts.append(f"change it in {origin.where}")
    return WsgistackError(ids.CONFIG_E001, f"{dotted} (from {origin}): {message}", "; ".join(hint_parts))


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _error_path(loc: tuple[Any, ...]) -> str:
    """Map a pydantic error location to our dotted key (dropping union branch names)."""
    parts: list[str] = []
    for item in loc:
        candidate = ".".join([*parts, str(item)])
        if is_setting(candidate):
            return candidate
        if candidate in NAMED_SECTIONS or _named(candidate + ".x") is not None:
            parts.append(str(item))  # processes, then processes.NAME
            continue
        if any(key.startswith(candidate + ".") for key in FIELDS):
            parts.append(str(item))
            continue
        break
    return ".".join(parts) or "(config)"


def _origin_of(dotted: str, origins: Mapping[str, Origin]) -> Origin:
    """Where a key came from. An unknown table ([processes] in wsgistack.toml) reaches
    pydantic as one key while its origin was recorded for each value under it."""
    if dotted in origins:
        return origins[dotted]
    return next((o for key, o in origins.items() if key.startswith(dotted + ".")), DEFAULT)


def _from_validation(exc: ValidationError, origins: Mapping[str, Origin]) -> list[WsgistackError]:
    problems: list[WsgistackError] = []
    seen: set[str] = set()
    for err in exc.errors():
        if err["type"] == "extra_forbidden":
            dotted = ".".join(str(p) for p in err["loc"])
            if dotted not in seen:
                seen.add(dotted)
                problems.append(
                    WsgistackError(ids.CONFIG_E002, f"unknown setting {dotted} (in {_origin_of(dotted, origins)})", _closest(dotted))
                )
            continue
        path = _error_path(tuple(err["loc"]))
        if path in seen:  # a union ("auto" | int) reports once per branch; once is enough
            continue
        seen.add(path)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid" or err["type"].startswith("literal_error"):
            msg = err["msg"]
        origin = origins.get(path)
        if origin is None:  # a table (processes), or a field missing from one: name where it was set
            parent = path.rpartition(".")[0] + "."
            inside = (o for k, o in origins.items() if k.startswith(path + ".") or (parent != "." and (k + ".").startswith(parent)))
            origin = next(inside, DEFAULT)
        problems.append(_invalid(path, origin, msg))
    return problems


def cross_checks(config: Config, origins: Mapping[str, Origin]) -> list[WsgistackError]:
    """Rules that involve several settings; each error names the setting to change."""
    problems = []
    if config.role == "web" and not config.uwsgi.uri:
        problems.append(
            WsgistackError(
                ids.CONFIG_E005,
                f"uwsgi.uri is required with role = web (role from {origins.get('role', DEFAULT)})",
                "set UWSGI_URI (or WSGISTACK_UWSGI__URI) to the app container's uWSGI socket, "
                "e.g. 127.0.0.1:8001 or unix:/shared/uwsgi.sock",
            )
        )
    tls = config.tls
    if tls.mode == "files" and (tls.cert is None or tls.key is None):
        missing = " and ".join(k for k in ("tls.cert", "tls.key") if getattr(tls, k[4:]) is None)
        problems.append(
            WsgistackError(
                ids.CONFIG_E012,
                f"tls.mode = files (from {origins.get('tls.mode', DEFAULT)}) needs {missing}",
                "set tls.cert to the certificate chain (PEM, leaf first) and tls.key to its private key "
                "(WSGISTACK_TLS__CERT / WSGISTACK_TLS__KEY), or use tls.mode = self-signed or acme",
            )
        )
    if tls.mode != "off" and config.role == "app":
        problems.append(
            WsgistackError(
                ids.CONFIG_E013,
                f"tls.mode = {tls.mode} (from {origins.get('tls.mode', DEFAULT)}) with role = app: only nginx terminates TLS",
                "set tls.mode on the web role (or role = all); the app role speaks uwsgi to nginx only",
            )
        )
    if tls.mode == "acme":
        wildcards = [n for n in config.server.server_names if n.startswith("*")]
        if wildcards:
            problems.append(
                WsgistackError(
                    ids.CONFIG_E014,
                    f"tls.mode = acme cannot validate {', '.join(map(repr, wildcards))} over HTTP-01 "
                    f"(server.server_names from {origins.get('server.server_names', DEFAULT)})",
                    "list each host name in server.server_names, or use tls.mode = files with a wildcard "
                    "certificate obtained over DNS-01",
                )
            )
    if tls.mode != "off" and tls.port == config.server.port:
        problems.append(
            WsgistackError(
                ids.CONFIG_E015,
                f"tls.port = {tls.port} (from {origins.get('tls.port', DEFAULT)}) is also server.port "
                f"(from {origins.get('server.port', DEFAULT)}): HTTPS and the plain-HTTP redirect need a port each",
                "give HTTPS its own port: tls.port = 8443 (or 443, with server.port = 80)",
            )
        )
    if config.ops.port and config.ops.port in (config.server.port, config.tls.port if config.tls.mode != "off" else 0):
        problems.append(
            WsgistackError(
                ids.CONFIG_E046,
                f"ops.port = {config.ops.port} (from {origins.get('ops.port', DEFAULT)}) is also the site's port",
                "give the ops listener a port of its own, e.g. 9100",
            )
        )
    if config.role == "worker" and config.process not in config.processes:
        known = ", ".join(sorted(config.processes)) or "none is configured"
        problems.append(
            WsgistackError(
                ids.CONFIG_E044,
                f"role = worker runs one background process, and process = {config.process!r} "
                f"(from {origins.get('process', DEFAULT)}) names none of [processes.*] ({known})",
                "set WSGISTACK_PROCESS (or process) to the NAME of a [processes.NAME] table",
            )
        )
    return problems


def load_config(
    project_dir: Path | str = ".",
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, tuple[Any, str]] | None = None,
    config_file: Path | None = None,
    started: Mapping[str, tuple[Any, Origin]] | None = None,
) -> LoadedConfig:
    """Resolve the configuration: defaults < file < environment < CLI.

    ``cli`` maps dotted keys to ``(value, flag)``, e.g. ``{"server.port": (8080, "--port")}``.
    ``env`` is passed in (never read from ``os.environ`` here) so callers and tests control it.
    ``started`` (``wsgistack reload``): the values a running stack took from its environment
    and command line (config.record), with their origins; they rank where they ranked at
    start, above the file and below the CLI.
    Raises :class:`ConfigError` listing every problem at once.
    """
    project = Path(project_dir).resolve()
    env = env or {}
    flat: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    problems: list[WsgistackError] = []

    if config_file is not None:
        file_path: Path | None = config_file
        file_data = _read_toml(config_file)
        if config_file.name == "pyproject.toml":
            file_data = file_data.get("tool", {}).get("wsgistack", {})
    else:
        file_path, file_data = find_config_file(project)
    if file_path is not None:
        label = file_path.name + (" [tool.wsgistack]" if file_path.name == "pyproject.toml" else "")
        for dotted, value in _flatten(file_data).items():
            flat[dotted] = value
            origins[dotted] = Origin("file", label)

    env_values, env_problems = from_env(env)
    problems.extend(env_problems)
    for dotted, (value, origin) in [*(started or {}).items(), *env_values.items()]:
        flat[dotted] = value
        origins[dotted] = origin

    for dotted, (value, flag) in (cli or {}).items():
        if value is None:
            continue
        flat[dotted] = value
        origins[dotted] = Origin("cli", f"CLI {flag}", str(value), sensitive=dotted in SENSITIVE)

    config: Config | None = None
    try:
        config = Config.model_validate(_nest(flat))
    except ValidationError as exc:
        problems.extend(_from_validation(exc, origins))
    if config is not None:
        problems.extend(cross_checks(config, origins))
    if problems:
        texts = _secret_texts(flat, origins)
        raise ConfigError([_scrub(p, texts) for p in problems])
    assert config is not None
    return LoadedConfig(config=config, origins=origins, project_dir=project, config_file=file_path)


def describe(loaded: LoadedConfig, reveal: bool = False) -> list[tuple[str, Any, str, str]]:
    """Rows of (key, value, origin, env var names) for ``wsgistack config``: sensitive values
    masked unless ``reveal``."""
    data = _flatten(masked_dump(loaded.config, reveal))
    rows = []
    keys = [*FIELDS, *(k for k in data if _named(k) is not None)]
    for dotted in keys:
        names = [env_name(dotted), *aliases_for(dotted)]
        rows.append((dotted, data.get(dotted), loaded.origin(dotted).shown(reveal), ", ".join(names)))
    return rows
