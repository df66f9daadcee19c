#!/usr/bin/env bash
# One accelerator lease, prepared on the CPU (../shared/GPU.md): the rows that wait for a GPU,
# highest priority first, each under its own time limit, their result files into $OUT.
#
#     OUT=/tmp/gpu_out bash experiments/gpu_batch.sh           # on the lent GPU
#     OUT=/tmp/gpu_out bash experiments/gpu_batch.sh --quick   # CI-size rehearsal on the CPU
#
# The lent machine has no network; its image holds jax (CUDA), flax, optax, orbax, chex and
# rich, so the project runs from the checkout (PYTHONPATH) instead of `pip install
# .[cuda13]`. The bench needs no dataset file: its batch is synthetic. Afterwards, here: the
# JSON in $OUT is the measurement (it names its device).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder the result files go to}
QUICK=${1:-}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY -c "import jax; print(jax.__version__, jax.devices())" | tee "$OUT/devices.txt"

# 1. ResNet-50 at its reference size in bfloat16, the plain Flax step timed in the same run
#    (issue: at least 45 % of the dense bfloat16 peak, and no slower than the peer)
if [ -n "$QUICK" ]; then batch=2 steps=3; else batch=256 steps=20; fi
timeout 240 $PY -m zoo_jax.cli bench --model resnet50 --input reference --batch-size $batch \
  --steps $steps --dtype bfloat16 --optimizer nag --peer flax > "$OUT/resnet50_bfloat16.json"
echo "resnet50 bench: exit $?"

# The converged character and dates rows, once queued here, finished on the CPU (every row's
# result file is in experiments/results/converged/).
ls -l "$OUT"
