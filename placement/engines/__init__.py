"""Serving-engine argument parsers, one module per engine. `parse_container` picks the engine."""

from __future__ import annotations

from placement.engines import sglang, tgi, trtllm, vllm
from placement.engines.base import Container, EngineConfig

# Order matters only for images that could match several (none today); explicit entrypoints win.
ENGINES = (vllm, sglang, tgi, trtllm)


def parse_container(container: Container) -> EngineConfig | None:
    """The engine config of a container, or None when it runs no engine gpuplace knows."""
    argv = container.argv
    for engine in ENGINES:
        if engine.detect(container) and (container.command or container.args or argv):
            return engine.parse(container)
    for engine in ENGINES:  # image-only detection (entrypoint from the image, no args given)
        if engine.detect(container):
            return engine.parse(container)
    return None


__all__ = ["Container", "EngineConfig", "parse_container"]
