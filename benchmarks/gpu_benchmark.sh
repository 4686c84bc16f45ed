#!/usr/bin/env bash
# AlexNet train-step throughput on one NVIDIA GPU, JAX against PyTorch, in about 4 minutes.
#
#   bash benchmarks/gpu_benchmark.sh                # the paper's config, batch 128/256/512, bf16 + fp32
#   RESULTS=out.jsonl bash benchmarks/gpu_benchmark.sh
#
# Needs jax (with CUDA), flax, optax and torch; no TensorFlow. Each (dtype, batch) run compiles both
# sides, warms up, then alternates JAX and PyTorch steps; it prints a table per run and a summary
# with images/s, MFU (4.35 GFLOP per 227x227 image per step over the GPU's dense peak: bf16 989,
# fp32 as TF32 495 TFLOP/s on H100/H200) and the JAX/PyTorch ratio. Variables (defaults):
# PYTHON (python3), BATCH_SIZES ("128 256 512"), DTYPES ("bfloat16 float32"), STEPS (10),
# REPEATS (3), WARMUP (3), INPUT_SIZE (227), RESULTS (file for the JSON lines; none by default).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
common=(--batch_size ${BATCH_SIZES:-128 256 512} --dtype ${DTYPES:-bfloat16 float32}
        --steps "${STEPS:-10}" --repeats "${REPEATS:-3}" --warmup "${WARMUP:-3}"
        --input_size "${INPUT_SIZE:-227}")

"$PYTHON" - <<'PY'
import jax, flax, optax, torch
print(f"jax {jax.__version__} ({jax.default_backend()}: {jax.devices()[0].device_kind}), "
      f"flax {flax.__version__}, optax {optax.__version__}, torch {torch.__version__} "
      f"(cuda {torch.cuda.is_available()})")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader || true

if [[ -n "${RESULTS:-}" ]]; then
  "$PYTHON" -m alexnet_jax.benchmark "${common[@]}" --json | tee "$RESULTS"
  "$PYTHON" - "$RESULTS" <<'PY'
import json, sys
from alexnet_jax.yardsticks import benchmark_report
benchmark_report.print_summary([json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")])
PY
else
  "$PYTHON" -m alexnet_jax.benchmark "${common[@]}"
fi
