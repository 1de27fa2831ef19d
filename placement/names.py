"""What a model name says about the model: its size ('70B', '0.5B', '135M'), Mixtral-style experts ('8x7B'),
active parameters ('235B-A22B'), and the quantization of the checkpoint ('-AWQ', '-GPTQ-Int4', '-FP8-Dynamic',
'-bnb-4bit', '.w4a16', '-mxfp4').

Pure functions over strings; nothing here knows any particular model. The model catalog (placement/models.py)
uses `strip_quant_suffix` to find the base model of a quantized repo, and `parse_model_name` to size a model
it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Share of a dense transformer's parameters in its feed-forward blocks (Llama/Mistral 7-8B: 5.6B of 7.2B,
# 0.78; 70B: 0.80). A Mixtral-style "NxM" model replaces that FFN by N experts and shares the rest, so
#   total  = M x (1 + (N - 1) x MOE_FFN_FRACTION)      8x7B -> 46.2B (real 46.7B), 8x22B -> 145B (real 141B)
#   active = M x (1 + (k - 1) x MOE_FFN_FRACTION)      with k = MOE_DEFAULT_ACTIVE_EXPERTS experts per token
MOE_FFN_FRACTION = 0.8
MOE_DEFAULT_ACTIVE_EXPERTS = 2

# Quantization names as the rest of gpuplace uses them (Resolved.quant, engine --quantization values).
QUANTS = ("fp8", "awq", "gptq", "int8", "int4", "mxfp4", "nvfp4")

# Weight storage of each quantization, as keys of placement.memory.WEIGHT_BYTES.
QUANT_WEIGHT_DTYPE: dict[str, str] = {
    "fp8": "fp8",
    "awq": "int4",
    "gptq": "int4",
    "int8": "int8",
    "int4": "int4",
    "mxfp4": "mxfp4",
    "nvfp4": "mxfp4",  # 4-bit values + an 8-bit scale per 16 (mxfp4: per 32); the closest stored size
}

# Name tokens (split on - _ . / and spaces, lower-cased) that say how a checkpoint is quantized.
_METHOD_TOKENS = {
    "awq": "awq",
    "gptq": "gptq",
    "fp8": "fp8",
    "float8": "fp8",
    "f8": "fp8",
    "fp8dynamic": "fp8",
    "mxfp4": "mxfp4",
    "nvfp4": "nvfp4",
    "fp4": "nvfp4",
}
_BITS_TOKENS = {
    "int4": 4, "4bit": 4, "w4a16": 4, "w4a8": 4, "nf4": 4, "q4": 4, "int4wo": 4,
    "int8": 8, "8bit": 8, "w8a8": 8, "w8a16": 8, "q8": 8, "int8wo": 8,
    "q5": 5, "q6": 6, "q3": 3, "q2": 2,
}
# Tokens that mark a quantized repo without naming a precision ('-GGUF', '-quantized', '-unsloth-bnb-4bit').
_MARKER_TOKENS = {
    "quantized", "bnb", "unsloth", "gguf", "mlx", "marlin", "exl2", "hqq", "eetq", "fbgemm", "w8a8fp8",
    "w4a16g128", "awq4", "gptq4",
}
# Tokens that only decorate a quantization suffix ('-FP8-Dynamic', '-Q4_K_M', '-Q8_0', '-g128'). Stripped
# when a quant or marker token lies to their right, never alone, never at the left edge of the suffix
# (so 'Mistral-7B-Instruct-v0.1-AWQ' keeps its '.1').
_WEAK_TOKENS = {
    "dynamic", "static", "g128", "gs128", "g64", "g32", "k", "m", "s", "l", "0", "1", "kv", "block",
    "channelwise", "tensorwise", "e4m3", "e5m2", "sym", "asym", "int",
}

_TOKEN = re.compile(r"[^\-_./\s]+")
_MOE = re.compile(r"(?<![a-z0-9.])(\d+)x(\d+(?:\.\d+)?)([bm])(?![a-z0-9])")
_ACTIVE = re.compile(r"(?<![a-z0-9.])a(\d+(?:\.\d+)?)b(?![a-z0-9])")
_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([bm])(?![a-z0-9])")
_EXPERTS = re.compile(r"(?<![a-z0-9.])(\d+)e(?![a-z0-9])")


@dataclass(frozen=True)
class NameHints:
    """What a model name says. Sizes are in billions of parameters."""

    name: str
    base_name: str  # the name without its quantization suffix ('Qwen2.5-72B-Instruct-AWQ' -> '...-Instruct')
    params_b: float | None = None  # total parameters
    active_params_b: float | None = None  # MoE: parameters active per token ('A22B', or derived from NxM)
    experts: int | None = None  # MoE: routed experts ('8x7B' -> 8, '16E' -> 16)
    expert_params_b: float | None = None  # Mixtral style: the M of NxM, one expert's dense-model size
    quant: str | None = None  # one of QUANTS
    quant_bits: int | None = None  # bit width the name gives (GPTQ-Int8 -> 8), if any

    @property
    def weight_dtype(self) -> str | None:
        return QUANT_WEIGHT_DTYPE.get(self.quant) if self.quant else None


def _basename(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _quant_of(tokens: list[str]) -> tuple[str | None, int | None]:
    method = next((_METHOD_TOKENS[t] for t in tokens if t in _METHOD_TOKENS), None)
    bits = next((_BITS_TOKENS[t] for t in tokens if t in _BITS_TOKENS), None)
    if bits is None and "int" in tokens:
        bits = next((int(t) for t in tokens if t in {"4", "8"}), None)
    if method in {"awq", "gptq"}:
        if method == "gptq" and bits == 8:
            return "int8", 8
        return method, bits or 4
    if method is not None:
        return method, bits
    if bits is None:
        return None, None
    return ("int8" if bits >= 8 else "int4"), bits


def _is_strong(tok: str) -> bool:
    return tok in _METHOD_TOKENS or tok in _BITS_TOKENS or tok in _MARKER_TOKENS


def strip_quant_suffix(name: str) -> tuple[str, str | None, int | None]:
    """(base name, quant, bits): trailing quantization tokens removed from the last path component.
    'hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4' -> ('hugging-quants/Meta-Llama-3.1-70B-Instruct',
    'awq', 4). Names without a quantization suffix come back unchanged, quant None."""
    head, sep, last = name.rstrip("/").rpartition("/")
    cut = len(last)
    stripped: list[str] = []
    pending: list[tuple[int, str]] = []  # weak tokens seen since the last strong one
    for m in reversed(list(_TOKEN.finditer(last))):
        tok = m.group(0).lower()
        if _is_strong(tok):
            stripped.extend(t for _, t in pending)
            pending.clear()
            stripped.append(tok)
            cut = m.start()
        elif tok in _WEAK_TOKENS:
            pending.append((m.start(), tok))
        else:
            break
    if not stripped:
        return name.rstrip("/"), None, None
    quant, bits = _quant_of(stripped)
    base = last[:cut].rstrip("-_. ")
    if not base:
        return name.rstrip("/"), quant, bits
    return head + sep + base, quant, bits


def _num(value: str, unit: str) -> float:
    return float(value) / (1000.0 if unit == "m" else 1.0)


def parse_model_name(name: str) -> NameHints:
    """Size, experts and quantization from a model id, path or free-text name.

    '70B' -> 70; '0.5B'/'1.5b' -> 0.5/1.5; '135M' -> 0.135; '8x7B' -> experts 8 of 7B, total 46.2 and
    active 12.6 (see MOE_FFN_FRACTION); '235B-A22B' -> total 235, active 22; '17B-16E' -> active 17,
    experts 16, total unknown. The first size in the last path component wins."""
    base, quant, bits = strip_quant_suffix(name)
    text = _basename(base).lower()
    params = active = expert = None
    experts = None
    if m := _MOE.search(text):
        experts, expert = int(m.group(1)), _num(m.group(2), m.group(3))
        params = round(expert * (1 + (experts - 1) * MOE_FFN_FRACTION), 3)
        active = round(expert * (1 + (MOE_DEFAULT_ACTIVE_EXPERTS - 1) * MOE_FFN_FRACTION), 3)
    else:
        size = _SIZE.search(text)
        e = _EXPERTS.search(text)
        if size and e:  # Llama-4 style 'NB-ME': N billion active of M experts; the total is not in the name
            active, experts = _num(size.group(1), size.group(2)), int(e.group(1))
        elif size:
            params = _num(size.group(1), size.group(2))
    if a := _ACTIVE.search(text):
        active = float(a.group(1))
    return NameHints(name=name, base_name=base, params_b=params, active_params_b=active, experts=experts,
                     expert_params_b=expert, quant=quant, quant_bits=bits)
