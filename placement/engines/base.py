"""What every serving engine's parser produces, and the argv helpers they share.

An engine parser turns a container (image, command, args, env) into an `EngineConfig`: the settings that
decide GPU memory (parallelism, context length, batch limits, memory fraction, dtypes). Values the pod
takes from `valueFrom` are *unknown*, not empty (design.md): they are listed in `unknown` so a check
never judges a guess.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

FLAG_MEMO_SIZE = 4096  # distinct flag names and image references remembered (each a short string)

# Value spellings the engines accept for their dtype flags; anything else makes the engine refuse to start.
WEIGHT_DTYPES = {"auto", "half", "float16", "fp16", "bfloat16", "bf16", "float", "float32", "fp32"}
KV_CACHE_DTYPES = {"auto", "fp8", "fp8_e5m2", "fp8_e4m3", "fp8_inc", "bfloat16", "float16", "int8"}
QUANTIZATIONS = {
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "gptq_marlin_24",
    "marlin",
    "fp8",
    "fbgemm_fp8",
    "compressed-tensors",
    "compressed_tensors",
    "bitsandbytes",
    "bitsandbytes-nf4",
    "bitsandbytes-fp4",
    "gguf",
    "mxfp4",
    "modelopt",
    "modelopt_fp4",
    "nvfp4",
    "experts_int8",
    "w8a8_int8",
    "w8a8_fp8",
    "int8",
    "int4",
    "eetq",
    "exl2",
    "fp8-dynamic",
    "awq-marlin",
    "none",
}


@dataclass
class EngineConfig:
    """Engine settings that decide memory. None means: the engine's default applies."""

    engine: str  # vllm | sglang | tgi | trtllm | annotations
    model: str | None = None
    version: tuple[int, ...] | None = None  # from the image tag; None: latest
    tp: int = 1
    pp: int = 1
    dp: int = 1
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    mem_fraction: float | None = None  # vLLM gpu-memory-utilization, SGLang mem-fraction-static, ...
    dtype: str | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    enforce_eager: bool = False
    chunked_prefill: bool | None = None
    cpu_offload_gib: float = 0.0
    unknown: set[str] = field(default_factory=set)  # settings whose value comes from valueFrom
    problems: list[str] = field(default_factory=list)  # what would make the engine refuse to start
    flags: dict[str, str] = field(default_factory=dict)  # every flag seen, normalised name -> value


@dataclass(slots=True)
class Container:
    """The parts of a Kubernetes container an engine parser reads. Env values from valueFrom are None.
    Read-only by convention, not frozen: one is built per container of every review, and a frozen
    dataclass pays a guarded `object.__setattr__` per field."""

    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: Mapping[str, str | None] = field(default_factory=dict)
    # command + args as the engine sees them. Worked out once, when the container is read: every engine's
    # detect reads it, and a lazily cached attribute costs more per container than the work itself.
    argv: list[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.argv = expand_argv([*self.command, *self.args], self.env)


UNKNOWN = "\x00unknown\x00"  # stands for a value from valueFrom after $(VAR) expansion
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_SHELL_SPACE = re.compile(r"[ \t\r\n]+")  # shlex's whitespace
_SHELL_SYNTAX = frozenset("\"'\\#")  # quotes, escapes and comments: only shlex reads these
_CONTINUATION = re.compile(r"\\\r?\n")
_SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/env", "dash", "/bin/dash", "zsh"}


def expand_argv(argv: list[str], env: Mapping[str, str | None]) -> list[str]:
    """Kubernetes' own $(VAR) expansion, then unwrap `sh -c "..."` into the words of the script."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            return match.group(0)  # Kubernetes leaves unknown references as they are
        value = env[name]
        return UNKNOWN if value is None else value

    if "$(" in "\x00".join(argv):  # one scan in C; the separator keeps "$" + "(" of two words apart
        argv = [_VAR_REF.sub(sub, word) if "$(" in word else word for word in argv]
    return _unwrap_shell(argv) if argv and argv[0] in _SHELLS else argv


def _unwrap_shell(argv: list[str]) -> list[str]:
    if len(argv) >= 3 and argv[0] in _SHELLS and "-c" in argv[1:3]:
        script = argv[argv.index("-c", 1) + 1]
        return list(_script_words(script))
    return argv


def _script_words(script: str) -> Iterator[str]:
    """Words of a shell script; `a && b`, `;` and newlines become separate commands, joined in order.
    Shell variables ($VAR, ${VAR}) are left as they are: parsers treat them as unknown values."""
    if "\\" in script:
        # A backslash-newline is a line continuation: the shell drops both characters (POSIX 2.2.1), while
        # shlex would keep the newline inside the next word (`\n--model`). Published scripts are full of them.
        script = _CONTINUATION.sub("", script)
    if _SHELL_SYNTAX.isdisjoint(script):
        # What shlex.split gives when nothing is quoted, escaped or commented, at a tenth of the cost.
        words = [w for w in _SHELL_SPACE.split(script) if w]
    else:
        try:
            words = shlex.split(script, comments=True)
        except ValueError:
            words = script.split()
    for word in words:
        if word in {"&&", "||", ";", "|", "exec"}:
            continue
        yield word


@lru_cache(maxsize=FLAG_MEMO_SIZE)
def normalise_flag(word: str) -> str:
    """`--max_model_len` and `--max-model-len` are the same flag (engines accept both). Remembered: the
    flags engines take are a small vocabulary, spelled the same way in every manifest."""
    return word.lstrip("-").replace("_", "-").lower()


def split_flags(
    words: Sequence[str], booleans: set[str], aliases: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Split argv words into flags (normalised name -> value) and positionals.

    Accepts `--flag=value` and `--flag value`; a flag in `booleans` takes no value unless given with `=`.
    """
    flags: dict[str, str] = {}
    positionals: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word[:1] == "-" and len(word) > 1 and not (word[1] in _NUMBER_SECOND and _is_number(word)):
            name, eq, value = word.partition("=")
            key = normalise_flag(name)
            key = aliases.get(key, key)
            if eq:
                flags[key] = value
            elif key in booleans or i + 1 >= len(words) or _looks_like_flag(words[i + 1]):
                flags[key] = "true"
            else:
                flags[key] = words[i + 1]
                i += 1
        else:
            positionals.append(word)
        i += 1
    return flags, positionals


def _looks_like_flag(word: str) -> bool:
    return word[:1] == "-" and not (word[1:2] in _NUMBER_SECOND and _is_number(word))


# After a leading "-", what a number can go on with (`-1`, `-.5`, `-inf`, `-nan`); a flag name goes on with
# "-" or a letter. Words failing this cheap test skip the regular expression below.
_NUMBER_SECOND = frozenset("0123456789.iInN")
_NUMBER_START = re.compile(r"\s*[-+]?(?:\d|\.\d|inf|nan)", re.IGNORECASE)  # what float() can start with


def _is_number(word: str) -> bool:
    if not _NUMBER_START.match(word):
        return False  # every flag name: no float() and no exception to catch
    try:
        float(word)
    except ValueError:
        return False
    return True


def is_unknown(value: str | None) -> bool:
    return value is not None and (UNKNOWN in value or "$" in value)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")


# vLLM: lowercase k/m are powers of ten, uppercase K/M powers of two.
_SCALE = {"": 1, "k": 1000, "m": 10**6, "g": 10**9, "K": 1024, "M": 2**20, "G": 2**30}


def parse_int(value: str, field_name: str, cfg: EngineConfig, minimum: int = 1) -> int | None:
    """Integers as the engines accept them, including vLLM's human-readable `32k` / `1M`."""
    if value.isascii() and value.isdigit():
        result = int(value)  # the common spelling: plain digits
    else:
        if is_unknown(value):
            cfg.unknown.add(field_name)
            return None
        match = _SIZE.match(value)
        if not match:
            cfg.problems.append(f"{field_name}={value!r} is not an integer")
            return None
        result = int(float(match.group(1)) * _SCALE[match.group(2)])
    if result < minimum:
        cfg.problems.append(f"{field_name}={value} must be at least {minimum}")
        return None
    return result


def parse_fraction(value: str, field_name: str, cfg: EngineConfig) -> float | None:
    if is_unknown(value):
        cfg.unknown.add(field_name)
        return None
    try:
        result = float(value)
    except ValueError:
        cfg.problems.append(f"{field_name}={value!r} is not a number")
        return None
    if not 0.0 < result <= 1.0:
        cfg.problems.append(f"{field_name}={value} must be in (0, 1]")
        return None
    return result


def parse_choice(value: str, field_name: str, allowed: set[str], cfg: EngineConfig) -> str | None:
    if is_unknown(value):
        cfg.unknown.add(field_name)
        return None
    lowered = value.lower()
    if lowered not in allowed:
        cfg.problems.append(f"{field_name}={value!r} is not a value the engine accepts")
        return None
    return lowered


def parse_bool(value: str) -> bool:
    return value.lower() not in {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Setting:
    """How one engine flag sets one `EngineConfig` attribute. `kind`: int | fraction | choice | bool |
    not (a `--no-...` flag that turns the attribute off). `name` is the flag as messages spell it."""

    attr: str
    kind: str
    name: str = ""
    choices: frozenset[str] = frozenset()
    minimum: int = 1


def int_setting(attr: str, name: str = "", minimum: int = 1) -> Setting:
    return Setting(attr, "int", name, minimum=minimum)


def choice_setting(attr: str, choices: set[str], name: str = "") -> Setting:
    return Setting(attr, "choice", name, frozenset(choices))


def apply_settings(flags: Mapping[str, str], cfg: EngineConfig, table: Mapping[str, Setting]) -> None:
    """Set every attribute the table maps a given flag to; a value that fails to parse leaves the default
    in place and is recorded in `cfg.problems` (or `cfg.unknown` for valueFrom)."""
    # In command-line order: when two flags set one attribute (`--enable-chunked-prefill` and
    # `--no-enable-chunked-prefill`) the later wins, as with the engines' own argument parsers. A command
    # line names a few of the dozen or so settings, so the flags given are walked, not the table.
    for flag, value in flags.items():
        setting = table.get(flag)
        if setting is None:
            continue
        name = setting.name or flag
        parsed: object
        if setting.kind == "int":
            parsed = parse_int(value, name, cfg, minimum=setting.minimum)
        elif setting.kind == "fraction":
            parsed = parse_fraction(value, name, cfg)
        elif setting.kind == "choice":
            parsed = parse_choice(value, name, set(setting.choices), cfg)
        elif setting.kind == "bool":
            parsed = parse_bool(value)
        else:
            parsed = False
        if parsed is not None:
            setattr(cfg, setting.attr, parsed)


def set_model(cfg: EngineConfig, model: str | None) -> None:
    """The served model, unless it comes from valueFrom (then it is unknown, not empty)."""
    if model is not None and is_unknown(model):
        cfg.unknown.add("model")
        model = None
    cfg.model = model


_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@lru_cache(maxsize=FLAG_MEMO_SIZE)
def image_version(image: str) -> tuple[int, ...] | None:
    """`vllm/vllm-openai:v0.6.4` -> (0, 6, 4), `text-generation-inference:2.4.0-intel` -> (2, 4, 0),
    `lmsysorg/sglang:v0.4.3.post4-cu124` -> (0, 4, 3); `latest`, `sha-...`, digests, missing tags and NGC
    container releases (`tritonserver:24.05-trtllm-python-py3`, `vllm:25.09-py3`: year.month, not the
    engine's release) -> None (latest semantics). Remembered: a cluster runs a handful of engine images."""
    tag = image.rsplit("@", 1)[0]
    if ":" not in tag.rsplit("/", 1)[-1]:
        return None
    version = parse_version(tag.rsplit(":", 1)[1])
    if version is not None and version[0] >= NGC_RELEASE_MIN_YEAR:
        return None
    return version


# NGC images are tagged YY.MM (24.05); no serving engine has reached a major release of 20.
NGC_RELEASE_MIN_YEAR = 20


def parse_version(text: str) -> tuple[int, ...] | None:
    """`0.6.4`, `v0.4.3.post4`, `1.2.0rc4` -> their release numbers; anything else -> None (latest)."""
    match = _VERSION.match(text.strip())
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def module_after(argv: Sequence[str], suffixes: Sequence[str]) -> int | None:
    """Index just past the word that starts the engine (`-m vllm.entrypoints...`, `vllm serve`)."""
    ends = tuple(suffixes)
    for i, word in enumerate(argv):
        if word.rsplit("/", 1)[-1].endswith(ends):
            return i + 1
    return None
