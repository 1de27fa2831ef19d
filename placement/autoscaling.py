"""Autoscalers as gpuplace reads them: HPA autoscaling/v2, KEDA ScaledObject, Knative Service, KServe
InferenceService, KubeAI Model. Each system's own defaults are applied here, so a field left out means what
it means in that system (KEDA's minReplicaCount defaults to 0: scale to zero unless said otherwise)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from placement.findings import ObjectRef
from placement.workload import WorkloadError, object_ref

HPA_DEFAULT_SCALE_DOWN_WINDOW_S = 300  # HPA behavior.scaleDown.stabilizationWindowSeconds default
KEDA_DEFAULT_MIN_REPLICAS = 0
KEDA_DEFAULT_COOLDOWN_S = 300
KNATIVE_DEFAULT_WINDOW_S = 60  # autoscaling.knative.dev/window (stable window)
KNATIVE_PREFIX = "autoscaling.knative.dev/"
# KubeAI Model defaults (https://www.kubeai.org/reference/kubernetes-api/): minReplicas may be 0 and is
# when left out; scaleDownDelaySeconds 30.
KUBEAI_DEFAULT_MIN_REPLICAS = 0
KUBEAI_DEFAULT_SCALE_DOWN_DELAY_S = 30
KSERVE_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Modes in which KServe runs a plain Deployment and HPA: `Standard` is KServe 0.15's new name for
# `RawDeployment` (https://kserve.github.io/website/docs/admin-guide/kubernetes-deployment).
KSERVE_HPA_MODES = ("Standard", "RawDeployment")


@dataclass(frozen=True)
class Autoscaler:
    ref: ObjectRef
    system: str  # hpa | keda | knative | kserve
    target_kind: str
    target_name: str
    min_replicas: int
    min_source: str  # where the minimum comes from, for messages ("KEDA default")
    scale_down_window_s: float | None  # None: never scales down (policy Disabled)
    window_source: str


def is_autoscaler(obj: Mapping[str, Any]) -> bool:
    kind, api = obj.get("kind"), str(obj.get("apiVersion", ""))
    return (
        kind in {"HorizontalPodAutoscaler", "ScaledObject", "InferenceService"}
        or (kind == "Service" and api.startswith("serving.knative.dev"))
        or (kind == "Model" and api.startswith("kubeai.org/"))
    )


def extract_autoscaler(obj: Mapping[str, Any]) -> Autoscaler | None:
    kind = obj.get("kind")
    if kind == "HorizontalPodAutoscaler":
        return _hpa(obj)
    if kind == "ScaledObject":
        return _keda(obj)
    if kind == "Service" and str(obj.get("apiVersion", "")).startswith("serving.knative.dev"):
        return _knative(obj)
    if kind == "InferenceService":
        return _kserve(obj)
    if kind == "Model" and str(obj.get("apiVersion", "")).startswith("kubeai.org/"):
        return _kubeai(obj)
    return None


def _hpa(obj: Mapping[str, Any]) -> Autoscaler:
    spec = _spec(obj)
    target = _target(spec, "spec.scaleTargetRef", default_kind=None)
    window, source = _behavior_window(spec.get("behavior"), "spec.behavior")
    return Autoscaler(
        object_ref(obj),
        "hpa",
        target[0],
        target[1],
        _int(spec.get("minReplicas", 1), "spec.minReplicas"),
        "minReplicas",
        window,
        source,
    )


def _keda(obj: Mapping[str, Any]) -> Autoscaler:
    spec = _spec(obj)
    target = _target(spec, "spec.scaleTargetRef", default_kind="Deployment")
    if "minReplicaCount" in spec:
        min_replicas, min_source = _int(spec["minReplicaCount"], "spec.minReplicaCount"), "minReplicaCount"
    else:
        min_replicas, min_source = KEDA_DEFAULT_MIN_REPLICAS, "KEDA default minReplicaCount 0"
    advanced = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
    window, source = _behavior_window(
        advanced.get("behavior"), "spec.advanced.horizontalPodAutoscalerConfig.behavior"
    )
    if min_replicas == 0:
        cooldown = _int(spec.get("cooldownPeriod", KEDA_DEFAULT_COOLDOWN_S), "spec.cooldownPeriod")
        label = "cooldownPeriod" if "cooldownPeriod" in spec else "cooldownPeriod (KEDA default 300s)"
        if window is None or cooldown < window:
            window, source = cooldown, label
    return Autoscaler(object_ref(obj), "keda", target[0], target[1], min_replicas, min_source, window, source)


def _knative(obj: Mapping[str, Any]) -> Autoscaler:
    template = _spec(obj).get("template") or {}
    annotations = {
        **((obj.get("metadata") or {}).get("annotations") or {}),
        **((template.get("metadata") or {}).get("annotations") or {}),
    }
    return _knative_like(
        obj, annotations, "knative", "Service", default_min=0, default_source="Knative default min-scale 0"
    )


def _kserve(obj: Mapping[str, Any]) -> Autoscaler:
    predictor = _spec(obj).get("predictor") or {}
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    min_replicas = _int(predictor.get("minReplicas", 1), "spec.predictor.minReplicas")
    source = "spec.predictor.minReplicas" if "minReplicas" in predictor else "KServe default minReplicas 1"
    mode = annotations.get(KSERVE_MODE_ANNOTATION)
    if mode in KSERVE_HPA_MODES:
        # Standard (RawDeployment before KServe 0.15) scales a Deployment with an HPA, whose minReplicas
        # is at least 1: no scale to zero, no Knative windows, whatever the annotations say.
        if min_replicas < 1:
            min_replicas, source = 1, f"HPA minimum 1 ({mode} mode cannot scale to zero)"
        return Autoscaler(
            object_ref(obj),
            "kserve",
            "InferenceService",
            object_ref(obj).name,
            min_replicas,
            source,
            HPA_DEFAULT_SCALE_DOWN_WINDOW_S,
            f"HPA default scale-down window (300s, {mode} mode)",
        )
    return _knative_like(
        obj, annotations, "kserve", "InferenceService", default_min=min_replicas, default_source=source
    )


def _kubeai(obj: Mapping[str, Any]) -> Autoscaler:
    """A KubeAI Model scales its own pods: minReplicas (0 when left out: scale from zero is KubeAI's
    default), scaleDownDelaySeconds (default 30s); autoscalingDisabled leaves spec.replicas as set."""
    spec = _spec(obj)
    ref = object_ref(obj)
    if spec.get("autoscalingDisabled") is True:
        replicas = _int(spec.get("replicas", 1), "spec.replicas")
        return Autoscaler(
            ref, "kubeai", "Model", ref.name, replicas, "spec.replicas", None, "autoscalingDisabled"
        )
    if "minReplicas" in spec:
        min_replicas, min_source = _int(spec["minReplicas"], "spec.minReplicas"), "minReplicas"
    else:
        min_replicas, min_source = KUBEAI_DEFAULT_MIN_REPLICAS, "KubeAI default minReplicas 0"
    if "scaleDownDelaySeconds" in spec:
        window = _int(spec["scaleDownDelaySeconds"], "spec.scaleDownDelaySeconds")
        window_source = "scaleDownDelaySeconds"
    else:
        window = KUBEAI_DEFAULT_SCALE_DOWN_DELAY_S
        window_source = "scaleDownDelaySeconds (KubeAI default 30s)"
    return Autoscaler(ref, "kubeai", "Model", ref.name, min_replicas, min_source, window, window_source)


def _knative_like(
    obj: Mapping[str, Any],
    annotations: Mapping[str, Any],
    system: str,
    target_kind: str,
    default_min: int,
    default_source: str,
) -> Autoscaler:
    raw_min = annotations.get(KNATIVE_PREFIX + "min-scale", annotations.get(KNATIVE_PREFIX + "minScale"))
    min_replicas = default_min if raw_min is None else _int(raw_min, KNATIVE_PREFIX + "min-scale")
    min_source = default_source if raw_min is None else KNATIVE_PREFIX + "min-scale"
    window = duration_s(
        str(annotations.get(KNATIVE_PREFIX + "window", f"{KNATIVE_DEFAULT_WINDOW_S}s")),
        KNATIVE_PREFIX + "window",
    )
    delay = duration_s(
        str(annotations.get(KNATIVE_PREFIX + "scale-down-delay", "0s")), KNATIVE_PREFIX + "scale-down-delay"
    )
    source = (
        "scale-down-delay"
        if delay > window
        else ("window" if KNATIVE_PREFIX + "window" in annotations else "window (Knative default 60s)")
    )
    ref = object_ref(obj)
    return Autoscaler(
        ref, system, target_kind, ref.name, min_replicas, min_source, max(window, delay), source
    )


def _behavior_window(behavior: Any, where: str) -> tuple[float | None, str]:
    scale_down = (behavior or {}).get("scaleDown") or {}
    if scale_down.get("selectPolicy") == "Disabled":
        return None, f"{where}.scaleDown.selectPolicy Disabled"
    if "stabilizationWindowSeconds" in scale_down:
        value = _int(
            scale_down["stabilizationWindowSeconds"], f"{where}.scaleDown.stabilizationWindowSeconds"
        )
        return value, "scaleDown.stabilizationWindowSeconds"
    return HPA_DEFAULT_SCALE_DOWN_WINDOW_S, "scale-down stabilization (HPA default 300s)"


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise WorkloadError("spec must be a mapping")
    return spec


def _target(spec: Mapping[str, Any], where: str, default_kind: str | None) -> tuple[str, str]:
    ref = spec.get("scaleTargetRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        raise WorkloadError(f"{where}.name is missing (the workload this autoscaler scales)")
    kind = ref.get("kind") or default_kind
    if not kind:
        raise WorkloadError(f"{where}.kind is missing")
    return str(kind), str(ref["name"])


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise WorkloadError(f"{where} must be an integer, got {value!r}") from exc


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def duration_s(text: str, where: str) -> float:
    """Go-style durations as Knative takes them ("60s", "1m30s", "2h"); a bare number is seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise WorkloadError(f"{where} must be a duration like 60s or 2m, got {text!r}")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)
