#!/usr/bin/env bash
# The GPU checks in one run, for a borrowed GPU machine with little time: each stage has its own
# time limit and writes its log and result files under $OUT as soon as it finishes, so a stage that
# overruns loses only itself.
#
#   On the CPU machine, first:  python3 -m pip download -d wheels soundfile soxr jiwer espeakng-loader
#   Then on the GPU machine:    OUT=/some/dir WHEELS=wheels bash scripts/gpu_checks.sh
#
# The GPU machine brings its own torch and transformers; the wheels add what it lacks.
set -uo pipefail
OUT=${OUT:?set OUT to the folder that collects the results}
WHEELS=${WHEELS:-wheels}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1

stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, note the exit code
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/stages.txt"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    echo "   exit $?" | tee -a "$OUT/stages.txt"
}

stage install 120 python3 -m pip install --no-index --find-links "$WHEELS" --no-deps -e . soundfile soxr jiwer espeakng-loader
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
stage cuda-tests 150 python3 -m pytest -q tests/test_cuda.py tests/models/test_kernels.py
stage speed-fp32 150 sew bench speed --models sew-d-mid w2v2-base --device cuda --dtype float32 --utterances 200 \
    --out "$OUT/speed-fp32"
stage speed-bf16 200 sew bench speed --models sew-d-mid w2v2-base --device cuda --dtype bfloat16 --utterances 200 \
    --compile cudagraphs --out "$OUT/speed-bf16"
stage train-speed-bf16 240 sew bench train-speed --models sew-d-mid w2v2-base --device cuda --dtype bfloat16 \
    --compile --out "$OUT/train-speed-bf16"
