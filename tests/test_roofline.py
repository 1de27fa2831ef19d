"""The decode roofline: memory-bound at low concurrency, more tokens/s with more sequences, and
compute-bound when a step's FLOPs outgrow its bytes."""

from __future__ import annotations

import pytest

from placement.catalog import default_gpu_catalog
from placement.roofline import BANDWIDTH_EFFICIENCY, decode_roofline

H100 = default_gpu_catalog().get("H100-SXM-80GB")


def roof(concurrency: float, active: int = 8_000_000_000, kv: float = 131072) -> float:
    return decode_roofline(weights_bytes_per_rank=16e9, kv_bytes_per_token_per_rank=kv, params=8_000_000_000,
                           active_params=active, tp=1, bandwidth_gbs=H100.bandwidth_gbs,
                           bf16_tflops=H100.bf16_tflops, concurrency=concurrency,
                           context_tokens=1024).tokens_per_s


def test_one_sequence_reads_all_weights_per_token() -> None:
    step_bytes = 16e9 + 1024 * 131072
    assert roof(1) == pytest.approx(H100.bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY / step_bytes)


def test_more_running_sequences_share_the_weight_reads() -> None:
    assert roof(32) > 20 * roof(1)


def test_huge_batches_become_compute_bound() -> None:
    r = decode_roofline(weights_bytes_per_rank=16e9, kv_bytes_per_token_per_rank=0, params=8_000_000_000,
                        active_params=8_000_000_000, tp=1, bandwidth_gbs=H100.bandwidth_gbs,
                        bf16_tflops=H100.bf16_tflops, concurrency=4096, context_tokens=0)
    assert r.bound == "compute"


def test_a_mixture_of_experts_reads_only_its_active_experts_at_low_concurrency() -> None:
    assert roof(1, active=2_000_000_000, kv=0) > 3 * roof(1, kv=0)
