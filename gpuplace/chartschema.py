"""Render charts/gpuplace/values.schema.json: the chart's own values, and under `config` the JSON schema of
the gpuplace config model itself, so `helm install` refuses a config the webhook would refuse at start (an
unknown field, a mode that does not exist) before anything reaches the cluster.
`python -m gpuplace.chartschema > charts/gpuplace/values.schema.json` (a test fails when it is stale)."""

from __future__ import annotations

import json
import sys
from typing import Any

from common.config import Config

CERT_MODES = ["bootstrap", "certManager", "none"]


def _obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


STR: dict[str, Any] = {"type": "string"}
BOOL: dict[str, Any] = {"type": "boolean"}
MAP: dict[str, Any] = {"type": "object"}
STR_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
LIST: dict[str, Any] = {"type": "array"}
REPLICAS: dict[str, Any] = {"type": "integer", "minimum": 0}
RESOURCES = _obj({"requests": MAP, "limits": MAP, "claims": LIST})
PDB = _obj({"enabled": BOOL, "minAvailable": {"type": ["integer", "string"]}})
IMAGE = _obj({"repository": STR, "tag": STR})


def _placement() -> dict[str, Any]:
    return {"priorityClassName": STR, "nodeSelector": STR_MAP, "tolerations": LIST}


def schema() -> dict[str, Any]:
    config = Config.model_json_schema()
    defs = config.pop("$defs", {})
    config["description"] = "the gpuplace config file (docs/configuration.md)"
    return _obj(
        {
            "fullnameOverride": {**STR, "description": "prefix of every object name (default: gpuplace)"},
            "image": _obj({"repository": STR, "tag": STR, "pullPolicy": STR}),
            "imagePullSecrets": LIST,
            "extraLabels": STR_MAP,
            "config": config,
            "webhook": _obj(
                {
                    "replicas": REPLICAS,
                    "resources": RESOURCES,
                    "pdb": PDB,
                    **_placement(),
                    "podAnnotations": STR_MAP,
                    "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30},
                    "failurePolicy": {"enum": ["Ignore", "Fail"]},
                    "url": {**STR, "description": "certs.mode none: https://host:port the apiserver calls"},
                }
            ),
            "certs": _obj(
                {
                    "mode": {"enum": CERT_MODES},
                    "secretName": STR,
                    "caBundle": {**STR, "description": "base64 PEM of the CA that signed the webhook's cert"},
                    "certManager": _obj({"issuerRef": MAP, "duration": STR, "renewBefore": STR}),
                    "bootstrap": _obj({"renewSchedule": STR, "resources": RESOURCES}),
                }
            ),
            "scheduler": _obj(
                {
                    "enabled": BOOL,
                    "replicas": REPLICAS,
                    "image": IMAGE,
                    "resources": RESOURCES,
                    "extenderResources": RESOURCES,
                    "pdb": PDB,
                    **_placement(),
                }
            ),
            "scan": _obj(
                {
                    "enabled": BOOL,
                    "schedule": STR,
                    "args": {"type": "array", "items": STR},
                    "resources": RESOURCES,
                    "nodeSelector": STR_MAP,
                    "tolerations": LIST,
                }
            ),
            "dashboards": _obj({"enabled": BOOL, "labels": STR_MAP, "annotations": STR_MAP}),
        },
        **{"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs},
    )


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
