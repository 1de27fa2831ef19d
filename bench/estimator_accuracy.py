#!/usr/bin/env python3
"""Estimator accuracy against published vLLM start-up logs (../shared/data/vllm_measurements.csv).

For every row with figures: predicted vs logged weights per GPU (target within 3%), KV cache tokens
(target within 10%), and the fits/fail verdict (target: all right). Prints a table; exits 1 if a target
is missed so CI can run it.

    python bench/estimator_accuracy.py [--csv PATH]

The logs come from different vLLM versions, and vLLM's defaults changed between them (V0 sized the
profile batch by max_model_len; V1, the default since 0.8.0, by max_num_batched_tokens). Each source's
version era is stated below, read from the date of the issue or log, and passed to the estimator the
way an image tag would pass it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from placement.catalog import default_gpu_catalog
from placement.engines import EngineConfig
from placement.engines.defaults import precision, setup_for
from placement.memory import GIB, estimate, weight_bytes_per_rank
from placement.models import default_model_catalog

# source -> vLLM version whose semantics the log reflects (None: latest)
SOURCE_VERSIONS: dict[str, tuple[int, ...] | None] = {
    "vllm-project/vllm#10517": (0, 6, 4),  # filed 2024-11: V0 era
    "vllm-project/vllm#6689": (0, 5, 3),  # filed 2024-07: V0 era
    "vllm-project/vllm#7514": (0, 5, 4),  # filed 2024-08: V0 era
    "vllm-project/vllm#21348": (0, 9, 2),  # filed 2025-07: V1 engine
}
# What is known about a source that the estimator does not model (printed under the table).
SOURCE_NOTES: dict[str, str] = {
    "vllm-project/vllm#21348": (
        "launched with an LMCache KV connector (--kv-transfer-config) on vLLM 0.9; the maintainers tie the "
        "small KV cache to that release's profiling (vllm#19312), not to the model. Not modelled: the "
        "estimate errs toward more KV here, so it would not deny this deployment wrongly."
    ),
}
WEIGHTS_TOLERANCE = 0.03
KV_TOLERANCE = 0.10


@dataclass
class Row:
    model: str
    gpu: str
    cuda_total_gib: float | None
    tp: int
    weights_dtype: str
    kv_dtype: str
    max_model_len: int | None
    util: float | None
    weights_gib: float | None
    kv_gib: float | None
    kv_tokens: int | None
    outcome: str
    source: str


def default_csv() -> Path:
    shared = os.environ.get("GPUPLACE_SHARED", str(Path(__file__).resolve().parents[2] / "shared"))
    return Path(shared) / "data" / "vllm_measurements.csv"


def read_rows(path: Path) -> list[Row]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    rows = []
    for rec in csv.DictReader(lines):
        f = _floats(rec)

        rows.append(
            Row(
                rec["model"],
                rec["gpu"],
                f("cuda_total_gib"),
                int(rec["tp"]),
                rec["weights_dtype"],
                rec["kv_dtype"],
                int(rec["max_model_len"]) if rec["max_model_len"] else None,
                f("gpu_memory_utilization"),
                f("weights_gib"),
                f("kv_gib"),
                int(rec["kv_tokens"]) if rec["kv_tokens"] else None,
                rec["outcome"],
                rec["source"],
            )
        )
    return rows


def _floats(rec: dict[str, str]):  # type: ignore[no-untyped-def]
    def f(key: str) -> float | None:
        return float(rec[key]) if rec[key] else None

    return f


def evaluate(row: Row) -> dict[str, object]:
    models, gpus = default_model_catalog(), default_gpu_catalog()
    resolved = models.resolve(row.model)
    if resolved is None:
        return {"error": f"model {row.model} not resolved"}
    gpu = gpus.resolve(row.gpu) if row.gpu else None
    usable = row.cuda_total_gib or (gpu.usable_gib if gpu else 80.0)
    cfg = EngineConfig(
        engine="vllm",
        model=row.model,
        version=SOURCE_VERSIONS.get(row.source),
        tp=row.tp,
        mem_fraction=row.util,
        kv_cache_dtype=None if row.kv_dtype == "auto" else row.kv_dtype,
    )
    prec = precision(cfg, resolved.arch.dtype, resolved.quant, row.weights_dtype)
    max_len = row.max_model_len or resolved.arch.context
    est = estimate(resolved.arch, setup_for(cfg, prec, usable, max_len))
    weights = weight_bytes_per_rank(resolved.arch, est.setup) / GIB
    out: dict[str, object] = {
        "weights": weights,
        "kv_tokens": est.kv_tokens,
        "fits": est.fits,
        "kv_gib": est.kv_bytes / GIB,
        "has_gpu": bool(row.cuda_total_gib or gpu),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", type=Path, default=default_csv())
    args = parser.parse_args(argv)
    if not args.csv.exists():
        print(f"estimator_accuracy: {args.csv} not found (set GPUPLACE_SHARED or --csv)", file=sys.stderr)
        return 2
    header = (
        f"{'model':<40} {'gpu':<22} {'tp':>2} {'len':>6}  {'weights log/pred':>17} {'err':>6}  "
        f"{'kv tokens log/pred':>19} {'err':>6}  {'verdict log/pred':>16}"
    )
    print(header)
    print("-" * len(header))
    misses = 0
    for row in read_rows(args.csv):
        res = evaluate(row)
        if "error" in res:
            print(f"{row.model:<40} {res['error']}")
            misses += 1
            continue
        w_cell, w_err, ok_w = _compare(row.weights_gib, float(res["weights"]), WEIGHTS_TOLERANCE, "{:.2f}")  # type: ignore[arg-type]
        k_cell, k_err, ok_k = _compare(row.kv_tokens, float(res["kv_tokens"]), KV_TOLERANCE, "{:.0f}")  # type: ignore[arg-type]
        if res["has_gpu"]:
            predicted = "fits" if res["fits"] else "fail"
            verdict, ok_v = f"{row.outcome}/{predicted}", predicted == row.outcome
        else:
            verdict, ok_v = f"{row.outcome}/n.a. (no GPU)", True
        misses += (not ok_w) + (not ok_k) + (not ok_v)
        flag = "" if ok_w and ok_k and ok_v else "  <-- MISS"
        print(
            f"{row.model[:40]:<40} {(row.gpu or '-')[:22]:<22} {row.tp:>2} {row.max_model_len or '-':>6}  "
            f"{w_cell:>17} {w_err:>6}  {k_cell:>19} {k_err:>6}  {verdict:>16}{flag}"
        )
    for source, note in SOURCE_NOTES.items():
        print(f"note {source}: {note}")
    print(
        f"\ntargets: weights within {WEIGHTS_TOLERANCE:.0%}, KV tokens within {KV_TOLERANCE:.0%}, verdicts "
        f"all right; misses: {misses}"
    )
    return 1 if misses else 0


def _compare(logged: float | None, predicted: float, tolerance: float, fmt: str) -> tuple[str, str, bool]:
    if logged is None:
        return f"-/{fmt.format(predicted)}", "", True
    err = (predicted - logged) / logged
    return f"{fmt.format(logged)}/{fmt.format(predicted)}", f"{err:+.1%}", abs(err) <= tolerance


if __name__ == "__main__":
    sys.exit(main())
