"""The one place a fix names an engine setting: `setting(s, "max_model_len", 4096)` is
`--max-model-len 4096` for vLLM, `--context-length 4096` for SGLang, `--max-total-tokens 4096` (or
`MAX_TOTAL_TOKENS=4096` where the container sets it by env) for TGI. The spellings are data
(data/engine_flags.yaml, with sources); checks never write an engine flag themselves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from placement.datafiles import bundled
from placement.engines import Container
from placement.serving import Serving

GENERIC = "generic"
SETTINGS = frozenset(
    {
        "max_model_len",
        "max_num_seqs",
        "mem_fraction",
        "kv_cache_fp8",
        "tp",
        "cuda_graphs_off",
        "batched_tokens",
    }
)


class AdviceDataError(ValueError):
    """engine_flags.yaml is malformed (a bug in the bundled data: the tests load it)."""


@dataclass(frozen=True)
class Spelling:
    flag: str = ""
    env: str = ""
    value: str = ""
    text: str = ""


def setting(
    engine: str, name: str, value: object = None, op: str = "", container: Container | None = None
) -> str:
    """How `engine` spells setting `name` at `value`: `--flag value`, `ENV=value` when the container sets
    that env var, or the engine's words for it. `op` goes before the value (`"<= "`)."""
    spelling = spellings().get(engine, {}).get(name) or spellings()[GENERIC][name]
    shown = spelling.value or ("" if value is None else f"{value}")
    if spelling.text:
        return spelling.text.format(value=f"{op}{shown}")
    if spelling.env and container is not None and spelling.env in container.env:
        return f"{spelling.env}{'=' if not op else ' ' + op}{shown}" if shown else spelling.env
    return f"{spelling.flag} {op}{shown}".rstrip() if shown else spelling.flag


def flag_name(engine: str, name: str) -> str:
    """The setting's name alone (`--max-num-seqs`), for a message that states the current value."""
    spelling = spellings().get(engine, {}).get(name) or spellings()[GENERIC][name]
    return spelling.flag or spelling.env or name.replace("_", "-")


@cache
def spellings() -> Mapping[str, Mapping[str, Spelling]]:
    data, origin = bundled("engine_flags.yaml", AdviceDataError)
    engines = data.get("engines") if isinstance(data, Mapping) else None
    if not isinstance(engines, Mapping) or GENERIC not in engines:
        raise AdviceDataError(
            f"{origin}: expected engines: {{<engine>: {{<setting>: ...}}}} with '{GENERIC}'"
        )
    out: dict[str, dict[str, Spelling]] = {}
    for engine, table in engines.items():
        if not isinstance(table, Mapping) or not set(table) <= SETTINGS:
            raise AdviceDataError(f"{origin}: engines.{engine}: settings must be among {sorted(SETTINGS)}")
        out[str(engine)] = {
            str(k): Spelling(**{f: str(v) for f, v in (e or {}).items()}) for k, e in table.items()
        }
    if set(out[GENERIC]) != SETTINGS:
        raise AdviceDataError(f"{origin}: engines.{GENERIC} must spell every setting")
    return out


def fix(s: Serving, name: str, value: object = None, op: str = "") -> str:
    """`setting` for the engine and container of a serving."""
    return setting(s.engine.engine, name, value, op, s.container.container)


def named(s: Serving, name: str) -> str:
    """`flag_name` for the engine of a serving."""
    return flag_name(s.engine.engine, name)
