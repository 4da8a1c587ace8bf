#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent GPU machine: the CUDA tests, the pretraining step's
# decomposition against its bare backbone (benchmarks/gpu_step.py, both shapes, S-DIET vs DIET), S-DIET's host
# cost of its head rows (benchmarks/sdiet_rows.py) and generation at
# paper scale (benchmarks/generation_scale.py). Figures and logs go to $OUT (default gpu-results/). Each part has
# its own time limit, so a slow part cannot starve the others; a failing part is reported and the rest still run.
#
#   OUT=gpu-results bash benchmarks/gpu_all.sh          # from the repository root, with genssl importable
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}

part() {
    local name=$1 limit=$2 start status
    shift 2
    start=$(date +%s)
    timeout "$limit" "$@" >> "$OUT/$name.log" 2>&1
    status=$?
    echo "== $name: exit $status after $(( $(date +%s) - start )) s (limit $limit s)"
    tr '\r' '\n' < "$OUT/$name.log" | grep -v -E 'it/s\]|batch/s\]|img/s\]|s/it\]|s/batch\]' | tail -n 30
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$OUT/tests.log" 2>&1
cat "$OUT/tests.log"
part tests "${TEST_LIMIT:-90}" "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py -k cuda \
    tests/test_augment.py tests/test_optim.py tests/test_cuda_graphs.py
part views "${VIEWS_LIMIT:-60}" "$PYTHON" benchmarks/views.py --device cuda --batch 512 --compile ${REFERENCE_DIR:+--reference-dir "$REFERENCE_DIR"}
part gpu_step_r18 "${R18_LIMIT:-150}" "$PYTHON" benchmarks/gpu_step.py --shapes r18 --epochs 2 --compile simclr --graph-views simclr \
    --sdiet-n 0 --out "$OUT/gpu_step_r18.json"
part gpu_step_r50 "${R50_LIMIT:-120}" "$PYTHON" benchmarks/gpu_step.py --shapes r50 --epochs 2 --workers -1 \
    --pretrain-methods simclr byol sdiet --sdiet-n 100000 --out "$OUT/gpu_step_r50.json"
part sdiet_rows "${ROWS_LIMIT:-60}" "$PYTHON" benchmarks/sdiet_rows.py --device cuda --steps 50
part generation_scale "${GEN_LIMIT:-160}" "$PYTHON" benchmarks/generation_scale.py --device cuda --budget-s 120 \
    --out "$OUT/generation_scale.md"
