#!/usr/bin/env bash
# The openb benchmark of `gpuplace simulate` (bench/README.md): writes
#   bench/results/openb.md           every trace x policy, 10 seeds, paper's figures beside
#   bench/results/openb_default.png  allocated vs arrived GPU % on `default`
#   bench/results/openb_nvlink.md    the NVLink variant on default and the multigpu traces
# Finished replays are kept in $CACHE_DIR (JSON lines), so an interrupted run resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
TRACE_DIR="${GPUPLACE_TRACE_DIR:-../shared/data/openb}"
WORKERS="${WORKERS:-2}"
SEEDS="${SEEDS:-10}"
CACHE_DIR="${CACHE_DIR:-/tmp/gpuplace-bench}"
GPUPLACE="${GPUPLACE:-.venv/bin/gpuplace}"
mkdir -p bench/results "$CACHE_DIR"

"$GPUPLACE" simulate --trace-dir "$TRACE_DIR" --seeds "$SEEDS" --workers "$WORKERS" --progress \
    --cache "$CACHE_DIR/openb.jsonl" \
    --results-md bench/results/openb.md --plot bench/results/openb_default.png

"$GPUPLACE" simulate --trace-dir "$TRACE_DIR" --seeds "$SEEDS" --workers "$WORKERS" --progress --nvlink \
    --traces default,multigpu20,multigpu30,multigpu40,multigpu50 \
    --cache "$CACHE_DIR/openb_nvlink.jsonl" \
    --results-md bench/results/openb_nvlink.md
