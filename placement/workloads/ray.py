"""KubeRay (ray.io/v1): RayService and RayCluster.

A RayCluster is a head pod template (`headGroupSpec.template`) and worker groups
(`workerGroupSpecs[].template`, each with replicas/minReplicas/maxReplicas). A RayService adds a Ray Serve
config (`serveConfigV2`, a YAML string). vLLM in Ray Serve comes in two documented forms:

- Ray Serve LLM: `import_path: ray.serve.llm:build_openai_app` with `args.llm_configs`, each a model
  (`model_loading_config.model_source`, else `model_id`), vLLM `engine_kwargs` (tensor_parallel_size, ...),
  `deployment_config` (num_replicas or autoscaling_config.min_replicas) and `accelerator_type`
  (https://docs.ray.io/en/latest/serve/llm/).
- KubeRay's vLLM sample: a custom app whose `runtime_env.env_vars` give MODEL_ID and TENSOR_PARALLELISM
  (ray-operator/config/samples/vllm/ray-service.vllm.yaml).

Each model is one serving component: a replica takes tp x pp GPUs from the worker pods (Ray places them),
so its GPUs are what tp x pp asks; the tier is the accelerator_type, else the GPU worker group's pin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from placement.catalog import GpuCatalog
from placement.workload import (
    TierPin,
    Workload,
    WorkloadError,
    field_int,
    field_list,
    field_map,
    pod_workload,
    span_nodes,
)
from placement.workloads.base import (
    combine,
    engine_container,
    hf_model,
    kwargs_flags,
    not_judged,
    spec_gpus,
)

# libyaml's safe loader when PyYAML has it: the pure-Python one takes over a millisecond per Serve config.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LLM_IMPORT_PATHS = ("ray.serve.llm:build_openai_app", "ray.serve.llm:build_llm_deployment")
# The env vars KubeRay's vLLM sample app reads.
MODEL_ENV = ("MODEL_ID", "MODEL_NAME", "MODEL")
TP_ENV = ("TENSOR_PARALLELISM", "TENSOR_PARALLEL_SIZE")
PP_ENV = ("PIPELINE_PARALLELISM", "PIPELINE_PARALLEL_SIZE")


def ray_cluster(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload | None:
    """A RayCluster without Serve: its GPU pod templates, each judged as it runs (a head that starts
    `vllm serve --distributed-executor-backend ray` gets the GPUs its tp x pp asks of the cluster)."""
    spec = field_map(obj.get("spec"), "spec")
    return cluster_workload(obj, spec, ("spec",), catalog, replicas=1)


def cluster_workload(
    obj: Mapping[str, Any],
    spec: Mapping[str, Any],
    where: tuple[str, ...],
    catalog: GpuCatalog,
    replicas: int,
) -> Workload | None:
    parts = [w for w in _groups(obj, spec, where, catalog, replicas) if w.gpu_containers]
    # KubeRay starts `ray start` in a container that has no command of its own: an engine image there
    # (vllm/vllm-openai) runs no engine. Where a group starts an engine on a model (the head's `vllm serve
    # --distributed-executor-backend ray`), the other groups are its Ray workers.
    serving = [p for p in parts if any(c.engine and c.engine.model for c in p.gpu_containers)]
    for part in serving:
        span_nodes(part)
    return combine(serving or parts)


def ray_service(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload | None:
    spec = field_map(obj.get("spec"), "spec")
    cluster = field_map(spec.get("rayClusterConfig") or {}, "spec.rayClusterConfig")
    groups = _groups(obj, cluster, ("spec", "rayClusterConfig"), catalog, replicas=1)
    gpu_groups = [g for g in groups if g.gpu_containers]
    raw = spec.get("serveConfigV2")
    if not raw:
        return cluster_workload(obj, cluster, ("spec", "rayClusterConfig"), catalog, 1) or None
    try:
        config = yaml.load(str(raw), Loader=_LOADER)
    except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
        return not_judged(obj, "unreadable-spec", f"spec.serveConfigV2 is not YAML ({_first_line(exc)})")
    if not isinstance(config, Mapping):
        return not_judged(obj, "unreadable-spec", "spec.serveConfigV2 has no applications")
    if not gpu_groups:
        return None  # a Serve app on CPU workers: not a GPU workload
    tier = next((g.tier for g in gpu_groups if g.tier.pinned or g.tier.unknown_values), TierPin())
    max_gpus = _max_cluster_gpus(cluster)
    parts: list[Workload] = []
    skipped: list[str] = []
    for i, app in enumerate(field_list(config.get("applications") or [], "serveConfigV2.applications")):
        app = field_map(app, f"serveConfigV2.applications[{i}]")
        found = _app_parts(obj, app, i, catalog, tier, max_gpus)
        if found:
            parts.extend(found)
        else:
            skipped.append(str(app.get("name") or f"#{i}"))
    if parts:
        return combine(parts)
    if any(str(a.get("import_path") or "") in LLM_IMPORT_PATHS for a in config.get("applications") or []):
        return not_judged(
            obj,
            "config-file",
            "its Ray Serve LLM llm_configs name files (read by Serve at start, not by gpuplace); "
            "write the configs inline in serveConfigV2 or set annotation gpuplace.io/model",
        )
    return not_judged(
        obj,
        "custom-serve-app",
        f"Ray Serve application {', '.join(skipped) or '(none)'} runs custom code "
        f"(import_path {_import_path(config)}): its model is not read; {_cluster_gpus(gpu_groups)}. "
        "Set annotation gpuplace.io/model on the GPU worker template",
    )


def _app_parts(
    obj: Mapping[str, Any],
    app: Mapping[str, Any],
    index: int,
    catalog: GpuCatalog,
    tier: TierPin,
    max_gpus: int,
) -> list[Workload]:
    name = str(app.get("name") or f"app{index}")
    if str(app.get("import_path") or "") in LLM_IMPORT_PATHS:
        args = field_map(app.get("args") or {}, f"serveConfigV2.applications[{index}].args")
        configs = args.get("llm_configs") or ([args["llm_config"]] if "llm_config" in args else [])
        return [
            _llm_config(obj, field_map(c, f"{name}.llm_configs[{j}]"), f"{name}/{j}", catalog, tier, max_gpus)
            for j, c in enumerate(field_list(configs, f"{name}.args.llm_configs"))
            if isinstance(c, Mapping)  # a path to a config file is read by Serve, not here
        ]
    runtime = field_map(app.get("runtime_env") or {}, f"{name}.runtime_env")
    env = field_map(runtime.get("env_vars") or {}, f"{name}.runtime_env.env_vars")
    model = next((str(env[k]) for k in MODEL_ENV if env.get(k)), None)
    if model is None or not _runs_vllm(app):
        return []
    flags: dict[str, Any] = {}
    for keys, flag in ((TP_ENV, "tensor_parallel_size"), (PP_ENV, "pipeline_parallel_size")):
        value = next((env[k] for k in keys if env.get(k)), None)
        if value is not None:
            flags[flag] = value
    replicas = _deployment_replicas(app.get("deployments"))
    return [_component(obj, name, model, flags, replicas, None, catalog, tier, max_gpus)]


def _llm_config(
    obj: Mapping[str, Any],
    config: Mapping[str, Any],
    name: str,
    catalog: GpuCatalog,
    tier: TierPin,
    max_gpus: int,
) -> Workload:
    loading = field_map(config.get("model_loading_config") or {}, f"{name}.model_loading_config")
    source = loading.get("model_source")
    model = hf_model(source) if isinstance(source, str) else None
    model = model or (str(loading["model_id"]) if loading.get("model_id") else None)
    kwargs = field_map(config.get("engine_kwargs") or {}, f"{name}.engine_kwargs")
    deploy = field_map(config.get("deployment_config") or {}, f"{name}.deployment_config")
    auto = field_map(deploy.get("autoscaling_config") or {}, f"{name}.autoscaling_config")
    replicas = _to_int(auto.get("min_replicas", deploy.get("num_replicas", 1)), f"{name}.min_replicas")
    accelerator = config.get("accelerator_type")
    return _component(obj, name, model, kwargs, replicas, accelerator, catalog, tier, max_gpus)


def _component(
    obj: Mapping[str, Any],
    name: str,
    model: str | None,
    kwargs: Mapping[str, Any],
    replicas: int,
    accelerator: Any,
    catalog: GpuCatalog,
    tier: TierPin,
    max_gpus: int,
) -> Workload:
    tp = _to_int(kwargs.get("tensor_parallel_size", 1), f"{name}.tensor_parallel_size")
    pp = _to_int(kwargs.get("pipeline_parallel_size", 1), f"{name}.pipeline_parallel_size")
    container = engine_container(name, "vllm", model, kwargs_flags(kwargs), gpus=max(tp * pp, 1))
    template = {"metadata": {}, "spec": {"containers": [container]}}
    workload = pod_workload(obj, template, ("spec", "serveConfigV2"), catalog, replicas=replicas)
    gpu = catalog.resolve(_ray_accelerator(str(accelerator))) if accelerator else None
    if gpu is not None and not workload.tier.source.startswith("annotation"):
        workload.tier = TierPin((gpu,), (), f"accelerator_type {accelerator}")
    elif not workload.tier.source.startswith("annotation"):
        workload.tier = tier
    engine = workload.containers[0].engine
    if engine is not None and tp * pp > max_gpus:
        engine.problems.append(
            f"tp x pp = {tp * pp} GPUs per replica but the RayCluster's groups hold at most {max_gpus} "
            "(replicas or maxReplicas x nvidia.com/gpu); Ray never places the replica"
        )
    return workload


def _ray_accelerator(name: str) -> str:
    """Ray's accelerator names spell memory as `A100-80G`; the catalog knows `A100-80GB`."""
    return re.sub(r"-(\d+)G$", r"-\1GB", name.strip())


def _groups(
    obj: Mapping[str, Any],
    cluster: Mapping[str, Any],
    where: tuple[str, ...],
    catalog: GpuCatalog,
    replicas: int,
) -> list[Workload]:
    """The head and every worker group as workloads of their pod templates."""
    out: list[Workload] = []
    head = cluster.get("headGroupSpec")
    if isinstance(head, Mapping) and head.get("template"):
        path = (*where, "headGroupSpec", "template")
        out.append(pod_workload(obj, field_map(head["template"], ".".join(path)), path, catalog, replicas))
    for i, group in enumerate(field_list(cluster.get("workerGroupSpecs") or [], "workerGroupSpecs")):
        group = field_map(group, f"workerGroupSpecs[{i}]")
        if not group.get("template"):
            continue
        path = (*where, "workerGroupSpecs", str(i), "template")
        pods = field_int(group, ("minReplicas",), None)
        pods = field_int(group, ("replicas",), 1) if pods is None else pods
        out.append(
            pod_workload(
                obj, field_map(group["template"], ".".join(path)), path, catalog, replicas * (pods or 0)
            )
        )
    return out


def _max_cluster_gpus(cluster: Mapping[str, Any]) -> int:
    """The most GPUs the cluster can have: the head's plus each worker group at its maxReplicas."""
    head = cluster.get("headGroupSpec")
    total = _pod_gpus(head.get("template")) if isinstance(head, Mapping) else 0
    groups = cluster.get("workerGroupSpecs")
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, Mapping):
            most = field_int(group, ("maxReplicas",), None) or field_int(group, ("replicas",), 1) or 0
            total += most * _pod_gpus(group.get("template"))
    return total


def _pod_gpus(template: Any) -> int:
    return spec_gpus(template.get("spec")) if isinstance(template, Mapping) else 0


def _cluster_gpus(groups: list[Workload]) -> str:
    per_pod = "/".join(str(sum(c.gpus for c in g.gpu_containers)) for g in groups)
    return f"its GPU pods ask for {per_pod} GPUs each"


def _runs_vllm(app: Mapping[str, Any]) -> bool:
    """Whether a custom Serve app names vLLM where KubeRay's sample does: its import path, pip packages,
    working_dir or deployment names. Only these strings are looked at (a YAML alias bomb in the config
    must not be expanded into one string)."""
    env = app.get("runtime_env")
    runtime: Mapping[str, Any] = env if isinstance(env, Mapping) else {}
    pip = runtime.get("pip")
    words = [app.get("import_path"), runtime.get("working_dir"), *(pip if isinstance(pip, list) else [pip])]
    deployments = app.get("deployments")
    words += (
        [d.get("name") for d in deployments or [] if isinstance(d, Mapping)]
        if isinstance(deployments, list)
        else []
    )
    return any(isinstance(w, str) and "vllm" in w.lower() for w in words)


def _deployment_replicas(deployments: Any) -> int:
    for d in deployments if isinstance(deployments, list) else []:
        if isinstance(d, Mapping) and "num_replicas" in d and str(d["num_replicas"]).isdigit():
            return int(d["num_replicas"])
        auto = d.get("autoscaling_config") if isinstance(d, Mapping) else None
        if isinstance(auto, Mapping) and "min_replicas" in auto:
            return _to_int(auto["min_replicas"], "autoscaling_config.min_replicas")
    return 1


def _to_int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise WorkloadError(f"{where} must be an integer, got {value!r}") from exc


def _import_path(config: Mapping[str, Any]) -> str:
    apps = config.get("applications") or []
    paths = [str(a.get("import_path")) for a in apps if isinstance(a, Mapping) and a.get("import_path")]
    return ", ".join(paths[:2]) or "none"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
