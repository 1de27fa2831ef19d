#!/usr/bin/env python3
"""Estimator accuracy against published engine start-up logs.

Reads both files in ../shared/data (GPUPLACE_SHARED overrides the folder):

- vllm_measurements.csv: vLLM start-up logs from issues and READMEs (rows M01..);
- engine_startup_logs.csv: vLLM, SGLang, TGI and TensorRT-LLM logs with engine version and settings (R..).

Each row is estimated the way a pod would be: an `EngineConfig` (engine, version from the log, parallelism,
settings), the engine's defaults (`placement.engines.defaults`), then `placement.memory.estimate`. Printed per
row: weights, KV GiB and KV tokens, logged vs predicted with the error, and the start-up verdict (the log's
started/failed vs the estimate's fits). Then the totals the issue sets as targets:

- verdicts: every row right (no denial of a configuration that started, no pass of one that failed);
- median KV-token error on vLLM >= 0.10 rows at most 5%;
- worst KV error (tokens, else GiB) per engine on its current releases at most 25%;

and the rows still off, with why. Exits 1 when a target is missed.

    python bench/estimator_accuracy.py [--shared DIR] [--write]

--write also stores the output in bench/results/estimator_accuracy.txt.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import sys
from collections.abc import Iterable
from contextlib import redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from placement.catalog import default_gpu_catalog
from placement.engines import EngineConfig
from placement.engines.base import parse_version
from placement.engines.defaults import precision, setup_for, setup_on
from placement.memory import GIB, MemoryEstimate, estimate
from placement.models import default_model_catalog

RESULTS = Path(__file__).resolve().parent / "results" / "estimator_accuracy.txt"

# vllm_measurements.csv names no version: the source's date places it (V0 before 0.8.0, V1 after).
MEASUREMENT_VERSIONS: dict[str, tuple[int, ...] | None] = {
    "vllm-project/vllm#10517": (0, 6, 4),  # filed 2024-11
    "vllm-project/vllm#6689": (0, 5, 3),  # filed 2024-07
    "vllm-project/vllm#7514": (0, 5, 4),  # filed 2024-08
    "vllm-project/vllm#21348": (0, 9, 2),  # filed 2025-07
}
# The oldest release counted as "current" per engine (the worst-row target applies from there on).
CURRENT_SINCE: dict[str, tuple[int, ...]] = {
    "vllm": (0, 10),
    "sglang": (0, 4),
    "tgi": (2, 0),
    "trtllm": (1, 0),
}
NOMINAL_GIB = 80.0  # rows that name no GPU: only their weights are compared
MEDIAN_TARGET = 0.05
WORST_TARGET = 0.25
# What is known about a row that the estimator does not model, printed in the still-off list when it misses.
ROW_NOTES: dict[str, str] = {
    "M04": (
        "vllm#21348 ran with an LMCache KV connector on vLLM 0.9; the maintainers tie the small KV cache to "
        "that release's profiling (vllm#19312), not to the model"
    ),
    "R36": (
        "verdict right (refused). The traceback runs from /opt/conda/envs/vllm_env/.../python3.13: a pip "
        "install, without the optional triton_kernels package, so vLLM 0.11 falls back to the Marlin mxfp4 "
        "layout on H100 (mxfp4.py get_mxfp4_backend), which pads the experts; an image tag cannot say "
        "that, so the table uses the image's triton layout (see the Marlin figure below)"
    ),
    "R34": (
        "TGI's warm-up accounting (prefill logprobs over 4145 tokens, warm-up blocks, wiggle 0.95) took it "
        "from +172% to this. The rest is memory held for good, not warm-up transients: the log's nvidia-smi "
        "after start-up (TGI empties the cache before the final KV allocation) shows the process at 19880 "
        "MiB against 17702 MiB of weights and KV, ~1.4 GiB beyond the CUDA context and graphs gpuplace "
        "counts. TGI 2.2.0's warm-up, batch, loading and router code name nothing more; the log's driver "
        "525.85.12 predates lazy CUDA module loading by default (a candidate, not measured). Verdict right"
    ),
    "R39": (
        "vLLM 0.2.7 (January 2024), not a current release: it counted every byte in use on the device as "
        "used (worker.py profile_num_available_blocks: total x util - (total - free)) and profiled a "
        "32768-token batch through Mixtral's AWQ layers; that release's peak is not modelled. Verdict right"
    ),
}
# Rows whose log shows a deployment an image tag cannot express: (field of ServingSetup, value, label).
ALTERNATIVES: dict[str, tuple[str, str, str]] = {
    "R36": ("mxfp4_layout", "marlin", "with the Marlin layout of a pip install without triton_kernels"),
}

# Settings a row's own logged figures contradict: (field, value used, why). Printed with the table.
CORRECTIONS: dict[str, tuple[str, float, str]] = {
    "R18": (
        "fraction",
        0.95,
        "the file says util 0.9, but the run's own logged terms (weights 64.38 + peak activation 7.38 + "
        "non-torch 0.13 + KV 3.33 GiB, llm-d's table) add up to 75.22 GiB = 0.95 x 79.18 GiB; at 0.9 the "
        "budget is 71.26 GiB, 3.96 GiB short of what the engine logged using",
    ),
}

# engine_startup_logs.csv dtype -> the gpuplace.io/dtype override it amounts to (None: the checkpoint's own)
_DTYPE_OVERRIDE = {"bf16": None, "fp16": None, "fp8": "fp8", "awq-int4": "awq", "mxfp4 experts + bf16": None}


@dataclass(frozen=True)
class Case:
    id: str
    engine: str
    version: tuple[int, ...] | None
    model: str
    gpu: str
    total_gib: float | None  # what the engine reported as total GPU memory
    tp: int
    pp: int
    dtype: str | None  # override, as the gpuplace.io/dtype annotation would give it
    kv_dtype: str | None
    max_model_len: int | None
    fraction: float | None
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    enforce_eager: bool
    weights_gib: float | None
    kv_gib: float | None
    kv_tokens: int | None
    failed: bool
    source: str


@dataclass(frozen=True)
class Result:
    case: Case
    est: MemoryEstimate | None
    error: str = ""
    gpu_known: bool = True  # without a GPU size only the weights are judged

    @property
    def verdict_right(self) -> bool:
        if self.est is None:
            return False
        return not self.gpu_known or self.est.fits != self.case.failed

    def kv_error(self) -> float | None:
        """Relative KV error: tokens where logged, else GiB (rows that failed log neither, or only GiB)."""
        if self.est is None or not self.gpu_known:
            return None
        if self.case.kv_tokens:
            return _rel(self.est.kv_tokens, self.case.kv_tokens)
        if self.case.kv_gib:
            return _rel(self.est.kv_bytes / GIB, self.case.kv_gib)
        return None


def _rel(predicted: float, logged: float) -> float:
    return (predicted - logged) / logged


def shared_dir() -> Path:
    return Path(os.environ.get("GPUPLACE_SHARED", str(Path(__file__).resolve().parents[2] / "shared")))


def _data_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _num(rec: dict[str, str], key: str, kind: type = float):  # type: ignore[no-untyped-def]
    value = (rec.get(key) or "").strip()
    return kind(value) if value else None


def read_measurements(path: Path) -> list[Case]:
    cases = []
    for i, rec in enumerate(csv.DictReader(_data_lines(path)), start=1):
        kv = rec["kv_dtype"]
        cases.append(
            Case(
                id=f"M{i:02d}",
                engine="vllm",
                version=MEASUREMENT_VERSIONS.get(rec["source"]),
                model=rec["model"],
                gpu=rec["gpu"],
                total_gib=_num(rec, "cuda_total_gib"),
                tp=int(rec["tp"]),
                pp=1,
                dtype=None if rec["weights_dtype"] in ("bf16", "fp16") else rec["weights_dtype"],
                kv_dtype=None if kv == "auto" else kv,
                max_model_len=_num(rec, "max_model_len", int),
                fraction=_num(rec, "gpu_memory_utilization"),
                max_num_seqs=None,
                max_num_batched_tokens=None,
                enforce_eager="enforce-eager" in rec["source"],
                weights_gib=_num(rec, "weights_gib"),
                kv_gib=_num(rec, "kv_gib"),
                kv_tokens=_num(rec, "kv_tokens", int),
                failed=rec["outcome"] == "fail",
                source=rec["source"],
            )
        )
    return cases


def read_startup_logs(path: Path) -> list[Case]:
    cases = []
    for rec in csv.DictReader(_data_lines(path)):
        kv = rec["kv_dtype"]
        cases.append(
            Case(
                id=rec["id"],
                engine=rec["engine"],
                version=parse_version(rec["engine_version"]),
                model=rec["model"],
                gpu=rec["gpu"],
                total_gib=_num(rec, "gpu_total_gib_reported"),
                tp=int(rec["tp"] or 1),
                pp=int(rec["pp"] or 1),
                dtype=_DTYPE_OVERRIDE.get(rec["dtype"], rec["dtype"]),
                kv_dtype=None if kv == "auto" else kv,
                max_model_len=_num(rec, "max_model_len", int),
                fraction=_num(rec, "util"),
                max_num_seqs=_num(rec, "max_num_seqs", int),
                max_num_batched_tokens=_num(rec, "max_num_batched_tokens", int),
                enforce_eager=rec["enforce_eager"] == "yes",
                weights_gib=_num(rec, "logged_weights_gib"),
                kv_gib=_num(rec, "logged_kv_gib"),
                kv_tokens=_num(rec, "logged_kv_tokens", int),
                failed=rec["logged_fail"].startswith("yes"),
                source=rec["source"],
            )
        )
    return cases


def corrected(case: Case) -> Case:
    fix = CORRECTIONS.get(case.id)
    return replace(case, **{fix[0]: fix[1]}) if fix else case


def evaluate(case: Case) -> Result:
    models, gpus = default_model_catalog(), default_gpu_catalog()
    resolved = models.resolve(case.model)
    if resolved is None or resolved.arch.estimated or resolved.how == "name":
        return Result(case, None, f"model {case.model} not in the catalog")
    gpu = gpus.resolve(case.gpu) if case.gpu else None
    gpu_known = gpu is not None or case.total_gib is not None
    usable = case.total_gib or (gpu.usable_gib if gpu else NOMINAL_GIB)
    cfg = EngineConfig(
        engine=case.engine,
        model=case.model,
        version=case.version,
        tp=case.tp,
        pp=case.pp,
        max_model_len=case.max_model_len,
        max_num_seqs=case.max_num_seqs,
        max_num_batched_tokens=case.max_num_batched_tokens,
        mem_fraction=case.fraction,
        kv_cache_dtype=case.kv_dtype,
        enforce_eager=case.enforce_eager,
    )
    prec = precision(cfg, resolved.arch.dtype, resolved.quant, case.dtype)
    max_len = case.max_model_len or resolved.arch.context
    if gpu is None:  # no GPU named: only the weights are compared
        setup = setup_for(cfg, prec, usable, max_len, case.max_num_seqs)
    else:
        setup = setup_on(cfg, prec, gpu, max_len, case.max_num_seqs, usable_gib=case.total_gib)
    return Result(case, estimate(resolved.arch, setup), gpu_known=gpu_known)


def is_current(case: Case) -> bool:
    since = CURRENT_SINCE.get(case.engine)
    return since is not None and (case.version is None or case.version >= since)


def _cell(logged: float | None, predicted: float, fmt: str) -> tuple[str, str]:
    if logged is None:
        return f"-/{fmt.format(predicted)}", ""
    return f"{fmt.format(logged)}/{fmt.format(predicted)}", f"{_rel(predicted, logged):+.1%}"


def print_table(results: Iterable[Result]) -> None:
    header = (
        f"{'id':<4} {'engine':<15} {'model':<34} {'gpu':<14} {'tp':>2} {'pp':>2} {'len':>6}  "
        f"{'weights GiB':>11} {'err':>6}  {'KV GiB':>13} {'err':>7}  {'KV tokens':>17} {'err':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        c = r.case
        version = ".".join(map(str, c.version)) if c.version else "latest"
        head = (
            f"{c.id:<4} {(c.engine + ' ' + version)[:15]:<15} {c.model[:34]:<34} {(c.gpu or '-')[:14]:<14} "
            f"{c.tp:>2} {c.pp:>2} {c.max_model_len or '-':>6}  "
        )
        if r.est is None:
            print(head + r.error)
            continue
        w, w_err = _cell(c.weights_gib, r.est.weights_bytes / GIB, "{:.2f}")
        g, g_err = _cell(c.kv_gib, r.est.kv_bytes / GIB, "{:.2f}")
        t, t_err = _cell(c.kv_tokens, r.est.kv_tokens, "{:.0f}")
        logged = "failed" if c.failed else "started"
        predicted = "fits" if r.est.fits else "refused"
        mark = "ok" if r.verdict_right else "WRONG"
        if not r.gpu_known:
            g = g_err = t = t_err = ""
            logged, predicted, mark = "n.a.", "(no GPU)", ""
        print(
            head + f"{w:>11} {w_err:>6}  {g:>13} {g_err:>7}  {t:>17} {t_err:>7}  {logged}/{predicted} {mark}"
        )


def summarise(results: list[Result]) -> int:
    """Print the totals and the rows still off; the number of targets missed."""
    judged = [r for r in results if r.est is not None and r.gpu_known]
    weighed = [r for r in results if r.est is not None]
    wrong = [r for r in results if not r.verdict_right]
    missed = 0

    def errors(rows: Iterable[Result], key: str) -> list[float]:
        out = []
        for r in rows:
            assert r.est is not None
            logged = getattr(r.case, key)
            value = {
                "weights_gib": r.est.weights_bytes / GIB,
                "kv_gib": r.est.kv_bytes / GIB,
                "kv_tokens": r.est.kv_tokens,
            }[key]
            if logged and not r.case.failed:
                out.append(abs(_rel(value, logged)))
        return out

    print()
    for key in ("weights_gib", "kv_gib", "kv_tokens"):
        errs = errors(weighed if key == "weights_gib" else judged, key)
        if errs:
            print(
                f"{key:<12} rows {len(errs):>2}  median |err| {statistics.median(errs):6.1%}  "
                f"worst {max(errs):6.1%}"
            )
    recent = [r for r in judged if r.case.engine == "vllm" and r.case.version and r.case.version >= (0, 10)]
    # Tokens where the log gives them, else KV GiB: for one model and setting, tokens = GiB / bytes per token.
    recent_errs = [abs(e) for r in recent if not r.case.failed and (e := r.kv_error()) is not None]
    tokens_only = errors(recent, "kv_tokens")
    median = statistics.median(recent_errs) if recent_errs else 0.0
    ok = median <= MEDIAN_TARGET
    missed += not ok
    print(
        f"\nvLLM >= 0.10: median |KV error| {median:.1%} over {len(recent_errs)} rows, tokens where "
        f"logged, else GiB (target <= {MEDIAN_TARGET:.0%}) {'ok' if ok else 'MISSED'}; KV tokens alone: "
        f"median {statistics.median(tokens_only) if tokens_only else 0.0:.1%} over {len(tokens_only)} rows"
    )
    for engine in CURRENT_SINCE:
        rows = [r for r in judged if r.case.engine == engine and is_current(r.case) and not r.case.failed]
        errs = [(abs(e), r.case.id) for r in rows if (e := r.kv_error()) is not None]
        if not errs:
            print(f"{engine:<7} current releases: no row with a logged KV figure")
            continue
        worst, worst_id = max(errs)
        ok = worst <= WORST_TARGET
        missed += not ok
        print(
            f"{engine:<7} current releases: worst |KV error| {worst:.1%} ({worst_id}, {len(errs)} rows; "
            f"target <= {WORST_TARGET:.0%}) {'ok' if ok else 'MISSED'}"
        )
    missed += bool(wrong)
    print(
        f"verdicts: {len(results) - len(wrong)} of {len(results)} right (target: all) "
        f"{'ok' if not wrong else 'MISSED'}"
    )
    print_still_off(results)
    print(f"\ntargets missed: {missed}")
    return missed


def print_still_off(results: list[Result]) -> None:
    """Rows whose verdict is wrong or whose KV error is past the worst-row target, with why."""
    print("\nstill off (verdict wrong, or KV error past 25%):")
    any_off = False
    for r in results:
        err = r.kv_error()
        off = not r.verdict_right or (err is not None and abs(err) > WORST_TARGET)
        if not off:
            continue
        any_off = True
        why = r.error or ROW_NOTES.get(r.case.id, "no mechanism found yet")
        parts = ([] if r.verdict_right else ["verdict wrong"]) + (
            [f"KV {err:+.1%}"] if err is not None else []
        )
        print(f"  {r.case.id} {r.case.engine} {r.case.model} ({', '.join(parts)}): {why}")
    if not any_off:
        print("  none")
    for r in results:
        alt = ALTERNATIVES.get(r.case.id)
        if alt is None or r.est is None:
            continue
        model = default_model_catalog().resolve(r.case.model)
        assert model is not None
        est = estimate(model.arch, r.est.setup._replace(**{alt[0]: alt[1]}))
        kv = est.kv_bytes / GIB
        logged = f" (logged {r.case.kv_gib:.2f}, {_rel(kv, r.case.kv_gib):+.1%})" if r.case.kv_gib else ""
        print(
            f"  {r.case.id} {alt[2]}: weights {est.weights_bytes / GIB:.2f} GiB, KV {kv:.2f} GiB"
            f"{logged}, {'fits' if est.fits else 'refused'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=shared_dir(), help="folder holding data/*.csv")
    parser.add_argument("--write", action="store_true", help=f"also write the output to {RESULTS}")
    args = parser.parse_args(argv)
    data = args.shared / "data"
    files = (data / "vllm_measurements.csv", data / "engine_startup_logs.csv")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        print(
            f"estimator_accuracy: {', '.join(missing)} not found (set GPUPLACE_SHARED or --shared)",
            file=sys.stderr,
        )
        return 2
    cases = read_measurements(files[0]) + read_startup_logs(files[1])
    out = io.StringIO()
    with redirect_stdout(out):
        results = [evaluate(corrected(c)) for c in cases]
        print_table(results)
        for row_id, (name, value, why) in CORRECTIONS.items():
            print(f"{row_id}: {name} {value} used: {why}")
        missed = summarise(results)
    print(out.getvalue(), end="")
    if args.write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(out.getvalue())
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
