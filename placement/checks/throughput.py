"""Settings that make a fitting deployment slow: batch-size-suboptimal, low-throughput-config."""

from __future__ import annotations

from placement.advice import fix, named
from placement.catalog import GpuSpec
from placement.checks.fit import finding, gpu_label
from placement.checks.settings import CheckContext
from placement.findings import Code, Finding
from placement.memory import MemoryEstimate
from placement.serving import Serving


def batch_size(s: Serving, ctx: CheckContext, gpu: GpuSpec, est: MemoryEstimate) -> list[Finding]:
    seqs = s.explicit_max_num_seqs
    minimum = ctx.settings.min_batch_batch if s.workload.batch else ctx.settings.min_online_batch
    if seqs is None or seqs >= minimum:
        return []
    typical = min(ctx.settings.typical_request_tokens, est.setup.max_model_len)
    room = est.kv_tokens // max(typical, 1)
    if room < 2 * seqs:
        return []  # the KV cache could not hold a bigger batch anyway
    suggest = min(room, 256)
    detail = (
        f"{named(s, 'max_num_seqs')} {seqs} keeps {gpu_label(gpu)} mostly idle: its KV cache holds {room} "
        f"requests of {typical} tokens. Use {fix(s, 'max_num_seqs', suggest)}."
    )
    return [
        finding(
            s,
            Code.BATCH_SIZE_SUBOPTIMAL,
            detail,
            max_num_seqs=seqs,
            recommended=suggest,
            kv_tokens=est.kv_tokens,
        )
    ]


def low_throughput(s: Serving, ctx: CheckContext, gpu: GpuSpec) -> list[Finding]:
    out: list[Finding] = []
    eng = s.engine
    if eng.enforce_eager and not s.workload.batch:
        flag = named(s, "cuda_graphs_off")
        out.append(
            finding(
                s,
                Code.LOW_THROUGHPUT_CONFIG,
                f"{flag} turns off CUDA graphs; decode runs several times slower at small batch. "
                f"Drop it unless debugging.",
                flag=flag,
            )
        )
    if (
        eng.mem_fraction is not None
        and eng.mem_fraction < ctx.settings.min_mem_fraction
        and eng.engine in {"vllm", "sglang"}
    ):
        out.append(
            finding(
                s,
                Code.LOW_THROUGHPUT_CONFIG,
                f"memory fraction {eng.mem_fraction:.2f} leaves {1 - eng.mem_fraction:.0%} of "
                f"{gpu_label(gpu)} unused for KV cache. Use {fix(s, 'mem_fraction', '0.85-0.92')} unless "
                "sharing the GPU.",
                mem_fraction=eng.mem_fraction,
            )
        )
    cpu = s.container.cpu_limit_millis
    if cpu is not None and cpu < ctx.settings.min_cpu_cores * 1000:
        out.append(
            finding(
                s,
                Code.LOW_THROUGHPUT_CONFIG,
                f"CPU limit {cpu}m starves tokenisation and scheduling of a {s.gpus_per_pod}-GPU "
                f"engine; throttling stalls the GPU. Give >= {ctx.settings.min_cpu_cores:g} cores.",
                cpu_limit_millis=cpu,
            )
        )
    return out
