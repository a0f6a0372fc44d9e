#!/usr/bin/env bash
# The H100 throughput run (< 8 min on one H100): plain TRL SFTTrainer defaults vs the CGD recipe set-ups,
# Llama-3.2-1B shape (1.24B, random init), 2000 CGD-like rows, steps 11-40 timed, one process.
# Writes table.md, results.json, log.txt, env.txt to $OUT (default outputs/gpu_throughput).
#
# Runs from a checkout, with or without `pip install -e .` (it puts the checkout on PYTHONPATH). On a GPU image
# that has torch, transformers, accelerate, peft and triton but no network, put the rest in .whl/ as wheels
# (git-ignored; never commit them). From the repo root, on a machine with pip access:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#     trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 liger-kernel==0.8.5 pyarrow==26.0.1
# (about 58 MB; pyarrow is 55 MB of it, needed only where the image's pyarrow is older than 24, which datasets 5.2
# requires: `python3 -c "import pyarrow; print(pyarrow.__version__)"`.) Then copy the checkout with .whl/ to the GPU
# machine and run `bash benchmarks/gpu_throughput.sh` there.
# Without a GPU the same command runs the tiny CPU shapes (a smoke test of this script).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-outputs/gpu_throughput}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the cgd package from this checkout

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" | tee "$OUT/log.txt"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
  python3 - <<'PY' 2>&1
import importlib.metadata as m
for p in ("torch", "transformers", "trl", "datasets", "accelerate", "pyarrow", "liger_kernel", "flash_attn"):
    try:
        print(p, m.version(p))
    except m.PackageNotFoundError:
        print(p, "not installed")
PY
} | tee "$OUT/env.txt"

if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  ARGS=(--model_size 1.2b --num_rows 2000 --steps 40 --warmup_steps 10
        --setups trl_defaults,cgd_defaults,trl_fast,cgd_fast,cgd_recipe,cgd_recipe_padfree,cgd_recipe_bf16w,cgd_recipe_compile)
  LIMIT=450
else
  ARGS=(--model_size tiny --num_rows 48 --steps 3 --warmup_steps 1 --threads 1
        --setups trl_defaults,cgd_defaults,trl_fast,cgd_fast,cgd_recipe,cgd_recipe_padfree)
  LIMIT=300
fi
# The table is rewritten after every set-up, so a run cut by the time limit still leaves what it measured.
timeout "$LIMIT" python3 benchmarks/train_throughput.py "${ARGS[@]}" --output_dir "$OUT" 2>&1 | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
echo "exit status $status" | tee -a "$OUT/log.txt"
exit "$status"
