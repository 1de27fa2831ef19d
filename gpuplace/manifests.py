"""Reading Kubernetes manifests from files, directories and stdin, with errors a person can act on."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

YAML_SUFFIXES = {".yaml", ".yml", ".json"}


class ManifestError(ValueError):
    """One line naming the file and document, and what is wrong with it."""


@dataclass(frozen=True)
class Document:
    source: str  # file path or "-"
    index: int  # 1-based document number within the source
    obj: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index})"


def load_paths(paths: Sequence[str]) -> list[Document]:
    docs: list[Document] = []
    for path in paths:
        for source, text in _read(path):
            docs.extend(parse_stream(text, source))
    return docs


def _read(path: str) -> Iterator[tuple[str, str]]:
    if path == "-":
        yield "-", sys.stdin.read()
        return
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in YAML_SUFFIXES)
        if not files:
            raise ManifestError(f"{path}: no .yaml, .yml or .json files in this directory")
        for f in files:
            yield str(f), _text(f)
    elif p.is_file():
        yield str(p), _text(p)
    else:
        raise ManifestError(f"{path}: no such file or directory")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from exc


def parse_stream(text: str, source: str) -> list[Document]:
    docs: list[Document] = []
    try:
        raw_docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: invalid YAML{_mark(exc)}: {_problem(exc)}") from exc
    for index, raw in enumerate(raw_docs, start=1):
        if raw is None:
            continue  # empty document between separators
        if not isinstance(raw, dict):
            raise ManifestError(
                f"{source} (document {index}): expected a Kubernetes object (a mapping), "
                f"got {type(raw).__name__}"
            )
        for obj in _flatten(raw, source, index):
            docs.append(Document(source, index, obj))
    return docs


def _flatten(obj: dict[str, Any], source: str, index: int) -> Iterator[dict[str, Any]]:
    """`kind: List` (kubectl get -o yaml) holds objects in `items`."""
    if obj.get("kind") == "List" or (str(obj.get("kind", "")).endswith("List") and "items" in obj):
        for item in obj.get("items") or []:
            if isinstance(item, dict):
                yield item
        return
    if "kind" not in obj or "apiVersion" not in obj:
        missing = "kind" if "kind" not in obj else "apiVersion"
        raise ManifestError(f"{source} (document {index}): not a Kubernetes object: `{missing}` is missing")
    yield obj


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _problem(exc: yaml.YAMLError) -> str:
    return str(getattr(exc, "problem", None) or exc).splitlines()[0]
