"""Serving-engine argument parsers, one module per engine. `parse_container` picks the engine."""

from __future__ import annotations

from placement.engines import sglang, tgi, trtllm, vllm
from placement.engines.base import Container, EngineConfig

# The first engine that recognises the container parses it; no two engines claim the same container.
ENGINES = (vllm, sglang, tgi, trtllm)


def parse_container(container: Container) -> EngineConfig | None:
    """The engine config of a container, or None when it runs no engine gpuplace knows."""
    for engine in ENGINES:
        if engine.detect(container):
            return engine.parse(container)
    return None


__all__ = ["Container", "EngineConfig", "parse_container"]
