"""What decode throughput a model should reach on a GPU at a given concurrency: a roofline.

One decode step makes one token for each of the `concurrency` running sequences. Each tensor-parallel
rank reads its share of the weights once per step (for a mixture of experts, only the experts the step's
tokens route to) plus the KV cache of every running sequence, and does ~2 FLOPs per active parameter per
token. The step takes the longer of the memory time and the compute time, at an achievable share of the
datasheet peaks (catalog `bandwidth_gbs` and `bf16_tflops`, placement/data/gpus.yaml):

    bytes/step/rank = weights/rank x read_share + concurrency x context x KV bytes/token/rank
    flops/step/rank = 2 x active_params / tp x concurrency
    tokens/s        = concurrency / max(bytes / (bandwidth x eff_bw), flops / (tflops x eff_flops))

Prefill, scheduling gaps and sampling are left out, so it is an upper bound a healthy engine gets within
a small factor of (decode kernels reach ~70-85% of peak bandwidth on H100/A100 in vLLM's and
FlashInfer's published benchmarks; 0.8 is used). A serving engine far below it at the same concurrency
is held back by something else: preemption, eager mode, a starved CPU, tiny batches.
"""

from __future__ import annotations

from dataclasses import dataclass

# Achievable share of the datasheet peaks in decode (see the module docstring).
BANDWIDTH_EFFICIENCY = 0.8
FLOPS_EFFICIENCY = 0.5


@dataclass(frozen=True)
class Roofline:
    tokens_per_s: float  # per serving replica (all its ranks together)
    bound: str  # "memory" or "compute"
    step_bytes: float  # per rank
    step_flops: float  # per rank


def decode_roofline(*, weights_bytes_per_rank: float, kv_bytes_per_token_per_rank: float, params: int,
                    active_params: int, tp: int, bandwidth_gbs: float, bf16_tflops: float,
                    concurrency: float, context_tokens: float) -> Roofline:
    """Decode tokens/s of one replica at `concurrency` running sequences of `context_tokens` each."""
    c = max(concurrency, 1.0)
    active_share = active_params / params if params else 1.0
    # A MoE step touches more experts as more tokens route: at least the active ones, at most all.
    read_share = min(1.0, active_share * c)
    step_bytes = weights_bytes_per_rank * read_share + c * context_tokens * kv_bytes_per_token_per_rank
    step_flops = 2.0 * active_params / max(tp, 1) * c
    t_mem = step_bytes / (bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY)
    t_flops = step_flops / (bf16_tflops * 1e12 * FLOPS_EFFICIENCY)
    step = max(t_mem, t_flops)
    return Roofline(c / step if step > 0 else 0.0, "memory" if t_mem >= t_flops else "compute",
                    step_bytes, step_flops)
