"""Published-form manifests for the tests (see README.md)."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


@cache
def _read(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all((HERE / name).read_text()) if d)


def load(name: str) -> list[dict[str, Any]]:
    """The objects of tests/published/<name>, a fresh copy each call (tests edit them)."""
    return copy.deepcopy(list(_read(name)))


def one(name: str) -> dict[str, Any]:
    (obj,) = load(name)
    return obj
