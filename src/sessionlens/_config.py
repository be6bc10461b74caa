"""Reading user configuration (flows, intent taxonomies, price tables) from files or dicts.

Users write configuration as TOML, JSON or YAML, or pass a Python dict; every reader of
configuration goes through :func:`read_config` so the three file formats behave the same and a
broken file is reported once, the same way: which option, which file, where, and the fix.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["config_fingerprint_text", "read_config"]

_SUFFIXES = {".toml": "TOML", ".json": "JSON", ".yaml": "YAML", ".yml": "YAML"}


def read_config(source: Mapping[str, Any] | str | Path, *, option: str) -> dict[str, Any]:
    """Return ``source`` as a dict: a mapping as is, or a TOML/JSON/YAML file parsed.

    Parameters
    ----------
    source : mapping, str or Path
        The configuration, or the path of a ``.toml``, ``.json``, ``.yaml`` or ``.yml`` file.
    option : str
        What is being configured (``"flows"``, ``"intents"``), named in errors.

    Raises
    ------
    ConfigError
        The file is missing, has another extension, does not parse, or does not hold a table.

    Examples
    --------
    >>> read_config({"booking": {"steps": ["lookup"]}}, option="flows")
    {'booking': {'steps': ['lookup']}}
    >>> read_config("missing.toml", option="flows")
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: flows: file missing.toml not found; check the path
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            option, f"{path}: unsupported extension {path.suffix!r}; use .toml, .json or .yaml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(option, f"file {path} not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(option, f"cannot read {path}: {exc}") from None
    try:
        if kind == "TOML":
            data: Any = tomllib.loads(text)
        elif kind == "JSON":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            option, f"{path} is not valid {kind}: {detail}; fix the syntax there"
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            option, f"{path} must hold a table/object at the top, got {type(data).__name__}"
        )
    return dict(data)


def config_fingerprint_text(value: Any) -> str:
    """Canonical JSON of a configuration value, for fingerprints (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
