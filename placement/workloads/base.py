"""What the CRD readers share: engine containers put together from a CRD's own fields, the workload of an
object gpuplace cannot judge, several serving components as one workload."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from placement.workload import TierPin, Workload, field_list, object_ref, str_map

# How a CRD's engine field or entry module names the engine, and the command line gpuplace's engine
# parsers read for it (the engine's own CLI: the CRD's operator runs the same engine with these flags).
ENGINE_COMMANDS: Mapping[str, tuple[str, ...]] = {
    "vllm": ("vllm", "serve"),
    "sglang": ("python3", "-m", "sglang.launch_server"),
    "trtllm": ("trtllm-serve",),
}
ENGINE_IMAGES: Mapping[str, str] = {
    "vllm": "vllm/vllm-openai",
    "sglang": "lmsysorg/sglang",
    "trtllm": "nvcr.io/nvidia/tensorrt-llm/release",
}


def engine_container(
    name: str,
    engine: str,
    model: str | None,
    args: Iterable[str],
    gpus: int,
    env: Mapping[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A container dict (the shape of a pod's) that runs `engine` on `model` with `args`: what the
    workload readers and the engine parsers read. `resources` replaces the GPU count when given."""
    command = list(ENGINE_COMMANDS[engine])
    model_flag = "--model-path" if engine == "sglang" else "--model"
    words = [*command, *((model_flag, model) if model else ()), *args]
    limits = dict(resources or {"limits": {"nvidia.com/gpu": str(gpus)}})
    return {
        "name": name,
        "image": ENGINE_IMAGES[engine],
        "command": words,
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "resources": limits,
    }


def words(value: Any, where: str) -> tuple[str, ...]:
    """A command or args field: a list of strings (YAML numbers become their text), or WorkloadError."""
    if not value:
        return ()
    return tuple(map(str, field_list(value, where)))


def kwargs_flags(kwargs: Mapping[str, Any]) -> list[str]:
    """Engine keyword arguments (Ray Serve's engine_kwargs, `tensor_parallel_size: 2`) as CLI flags
    (`--tensor-parallel-size 2`): the engines' CLIs are generated from the same argument names. True is a
    bare flag, False and nested values (dicts, lists) are left out."""
    out: list[str] = []
    for key, value in kwargs.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None or isinstance(value, (Mapping, list)):
            continue
        else:
            out.extend((flag, str(value)))
    return out


def hf_model(uri: Any) -> str | None:
    """`hf://org/model` -> `org/model`; a bare Hugging Face id stays; other schemes (s3://, pvc://,
    oci://) name no model."""
    text = str(uri or "").strip()
    if text.startswith("hf://"):
        return text[len("hf://") :].split("@", 1)[0] or None
    if "://" in text or not text:
        return None
    return text


def not_judged(obj: Mapping[str, Any], reason: str, detail: str) -> Workload:
    """The workload of an object whose model or GPUs gpuplace cannot read: no containers, and the reason
    the unknown-model finding and the coverage counts give."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return Workload(
        ref=object_ref(obj),
        labels={},
        annotations=str_map((meta or {}).get("annotations")),
        containers=[],
        tier=TierPin(),
        replicas=None,
        batch=False,
        template_path=None,
        not_judged_reason=reason,
        not_judged_detail=detail,
    )


def combine(parts: list[Workload]) -> Workload | None:
    """Several serving components of one object as one workload: the first, with the others as parts.
    The parts' containers count among `other_containers`, so the UPDATE hash covers them too."""
    if not parts:
        return None
    first, rest = parts[0], tuple(parts[1:])
    first.parts = rest
    first.other_containers = [c for p in rest for c in p.containers]
    return first


def spec_gpus(pod_spec: Any) -> int:
    """nvidia.com/gpu limits (else requests) over a pod spec's containers; 0 for anything unreadable (the
    caller judges a count only where the spec is readable)."""
    total = 0
    containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
    for c in containers if isinstance(containers, list) else []:
        resources = c.get("resources") if isinstance(c, Mapping) else None
        if not isinstance(resources, Mapping):
            continue
        for key in ("limits", "requests"):
            values = resources.get(key)
            if isinstance(values, Mapping) and "nvidia.com/gpu" in values:
                count = str(values["nvidia.com/gpu"]).strip()
                total += int(count) if count.isdigit() else 0
                break
    return total
