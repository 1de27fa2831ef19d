"""Reading the catalogs' YAML data files: the bundled ones under placement/data and the user's own.

One place for what both catalogs (GPUs, models) do with a file: read it, parse it, and turn every failure
into the catalog's own error naming the file and the reason, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def parse_yaml(text: str, origin: str, error: type[Exception]) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{origin}: not valid YAML: {err}") from None


def bundled(name: str, error: type[Exception]) -> tuple[Any, str]:
    """(parsed YAML, origin) of placement/data/<name>."""
    origin = f"placement/data/{name}"
    text = resources.files("placement").joinpath("data", name).read_text(encoding="utf-8")
    return parse_yaml(text, origin, error), origin


def user_file(path: str | Path, error: type[Exception]) -> tuple[Any, str]:
    """(parsed YAML, origin) of a file the user named in the config."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise error(f"{p}: cannot read: {err.strerror}") from None
    return parse_yaml(text, str(p), error), str(p)


def entry_list(
    data: Any,
    key: str,
    origin: str,
    error: type[Exception],
    *,
    also: Sequence[str] = (),
    bare_list: bool = False,
) -> list[Any]:
    """The list under `key` of a `{key: [...]}` document (other top-level keys: only those in `also`);
    with `bare_list`, a document that is the list itself. An empty file is an empty list."""
    if data is None:
        return []
    if bare_list and isinstance(data, list):
        return data
    if not isinstance(data, Mapping):
        raise error(f"{origin}: expected a mapping with key '{key}', got {type(data).__name__}")
    unknown = set(data) - {key, *also}
    if unknown:
        raise error(f"{origin}: unknown top-level field(s) {sorted(unknown)}; expected '{key}'")
    entries = data.get(key) or []
    if not isinstance(entries, list):
        raise error(f"{origin}: field '{key}': expected a list, got {type(entries).__name__}")
    return entries
