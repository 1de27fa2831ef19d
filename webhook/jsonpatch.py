"""JSON Pointer paths for the JSONPatch ops /mutate returns."""

from __future__ import annotations

from collections.abc import Sequence


def pointer(path: Sequence[str]) -> str:
    """RFC 6901: `~` -> `~0`, `/` -> `~1` (annotation keys contain `/`)."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)
