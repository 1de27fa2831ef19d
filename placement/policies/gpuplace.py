"""gpuplace's own policy (placeholder: continuous FGD, to be refined)."""

from __future__ import annotations

from placement.policies.base import PolicyContext
from placement.policies.fgd import Fgd


class Gpuplace(Fgd):
    name = "gpuplace"
    nvlink_aware = True

    def __init__(self, ctx: PolicyContext) -> None:
        super().__init__(ctx, quantized=False)
