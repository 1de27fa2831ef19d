"""ResourceClaimTemplates and ResourceClaims on their own (admission and `gpuplace check`).

A claim object says nothing about the model, so nothing here can be an error: Kubernetes is the judge of
what a claim may say, and gpuplace rejects nothing it accepts. What gpuplace can add is one note when a GPU
request's selectors name a GPU the catalog does not know (every workload using the claim will then be
unjudged) or cannot be read at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from placement.checks.settings import CheckContext
from placement.dra import claim_spec, gpu_alternatives
from placement.findings import Code, Finding
from placement.workload import object_ref


def claim_object_findings(obj: Mapping[str, Any], ctx: CheckContext) -> list[Finding]:
    spec = claim_spec(obj)
    ref = object_ref(obj)
    for alt in gpu_alternatives(spec, ctx.gpus):
        if alt.unknown_values:
            values = ", ".join(alt.unknown_values)
            return [
                Finding(
                    Code.UNKNOWN_MODEL,
                    ref,
                    detail=f"{alt.source} selector names {values}, which is not in the GPU catalog; "
                    f"workloads using it cannot be sized. Add it under catalog.gpus in the gpuplace config.",
                    figures={"unknown_tiers": list(alt.unknown_values)},
                )
            ]
        if alt.reason:
            detail = f"{alt.reason}; workloads using it are not sized."
            return [Finding(Code.UNKNOWN_MODEL, ref, detail=detail)]
    if spec.problems:
        return [Finding(Code.UNKNOWN_MODEL, ref, detail=f"{spec.source}: {spec.problems[0]}.")]
    return []
