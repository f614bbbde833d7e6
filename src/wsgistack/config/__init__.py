"""Configuration: the frozen model and the sources that feed it."""

from wsgistack.config.model import Config, PathMapping, parse_size
from wsgistack.config.sources import (
    DEFAULT,
    FIELDS,
    LoadedConfig,
    Origin,
    describe,
    load_config,
)

__all__ = ["Config", "PathMapping", "parse_size", "LoadedConfig", "Origin", "DEFAULT", "FIELDS", "describe", "load_config"]
