#!/usr/bin/env bash
# GPU figures for benchmarks/README.md, unattended, in under 5 minutes on one GPU.
#
#   benchmarks/gpu_check.sh [OUT_DIR]            # on a GPU machine: figures into OUT_DIR (default $OUT, else ./gpu-figures)
#   benchmarks/gpu_check.sh --dry-run [OUT_DIR]  # tiny models on the CPU, the same code paths, in seconds
#
# Writes OUT_DIR/gpu_figures.json, OUT_DIR/gpu_figures.md and OUT_DIR/gpu_check.log. Exits 2 with a message
# when no GPU is visible (and not --dry-run), 124 when it ran past its time limit (MJBENCH_GPU_CHECK_TIMEOUT,
# default 290 s; the figures measured so far are kept). Run from the repository root, in an environment with
# `pip install -e ".[torch]"`; nothing is downloaded (random weights). PYTHON picks the interpreter.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=1
  shift
fi
out="${1:-${OUT:-./gpu-figures}}"
python="${PYTHON:-python}"
limit="${MJBENCH_GPU_CHECK_TIMEOUT:-290}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$out"

if [[ $dry_run -eq 0 ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU found (nvidia-smi missing or failing); run with --dry-run for the CPU check" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu_check.log"
  args=(--out "$out")
else
  args=(--out "$out" --tiny)
fi

set +e
timeout "$limit" "$python" "$here/bench_gpu.py" "${args[@]}" 2>&1 | grep -v "No pretrained weights loaded" \
  | tee -a "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -eq 124 ]]; then
  echo "gpu_check: stopped after ${limit} s; the figures measured so far are in $out" >&2
fi
exit "$rc"
