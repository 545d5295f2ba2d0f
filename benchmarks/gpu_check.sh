#!/usr/bin/env bash
# One call on a lent GPU machine (see the project's GPU notes, shared/GPU.md): install, versions, CUDA tests, fastbert check,
# kernel and end-to-end benchmarks; results and a log copied to $OUT as they come (at most 8 files).
#
#   bash benchmarks/gpu_check.sh                 # from the repository root; $OUT set by the device tool
#
# Every step has its own time limit (seconds, override through the environment) so the whole call
# stays under the device's 10 minutes and a step that hangs costs only its own share:
#   GPU_CHECK_TESTS_S=140 GPU_CHECK_REST_S=60 GPU_CHECK_CHECK_S=50 GPU_CHECK_KERNELS_S=80 GPU_CHECK_BENCH_S=130
#   GPU_CHECK_AUTOTUNE_S=60 (with the 60 s install: 580 s)
# (GPU_CHECK_SKIP_INSTALL=1 skips the pip install, for a dry run on a machine that has the checkout installed).
# GPU_CHECK_STEPS picks steps (default "tests check kernels bench autotune"); a second call can spend its
# 10 minutes on the end-to-end grid and torch.compile:
#   GPU_CHECK_STEPS="bench autotune" GPU_CHECK_BENCH_S=300 GPU_CHECK_AUTOTUNE_S=260 bash benchmarks/gpu_check.sh
# A step that fails is logged and the next one runs; the exit status is the number of failed steps.
# Files in $OUT: gpu_check.log, bench.json, bench.csv, speedup_vs_seqlen.png, varlen_throughput.png,
# kernels.csv, kernels_speedup.png, autotune.json.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/fastbert_gpu_out}"
WORK="$(mktemp -d /tmp/fastbert_gpu_check.XXXXXX)"
LOG="$WORK/gpu_check.log"
mkdir -p "$OUT"
unset TRITON_INTERPRET
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
FAILED=0

collect() {  # copy what exists so far: a killed call still returns it
    cp -f "$LOG" "$OUT/gpu_check.log" 2>/dev/null
    for f in bench/bench.json bench/bench.csv bench/speedup_vs_seqlen.png bench/varlen_throughput.png \
        kernels/kernels.csv kernels/kernels_speedup.png; do
        [ -f "$WORK/$f" ] && cp -f "$WORK/$f" "$OUT/"
    done
    [ -f "$WORK/autotune/bench.json" ] && cp -f "$WORK/autotune/bench.json" "$OUT/autotune.json"
    return 0
}

STEPS=" ${GPU_CHECK_STEPS:-tests check kernels bench autotune} "  # "tests" runs tests-cuda and tests-rest

step() {  # step NAME SECONDS COMMAND...
    local name="$1" limit="$2"
    shift 2
    case "$STEPS" in *" $name "*|*" ${name%%-*} "*) ;; *) [ "$name" != install ] && return 0 ;; esac
    echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    echo "=== $name: rc=$rc in $((SECONDS - t0))s" | tee -a "$LOG"
    [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
    collect
    return 0
}

echo "=== fastbert gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null)" | tee "$LOG"
# No registry on the device: no build isolation (it would fetch setuptools), no dependencies.
[ "${GPU_CHECK_SKIP_INSTALL:-0}" = 1 ] || step install 60 python -m pip install -e . --no-deps --no-build-isolation -q
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works even when the install step failed
{
    nvidia-smi -L
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv
    python - <<'EOF'
import platform, torch
from importlib.metadata import version
def v(m):
    try:
        return version(m)
    except Exception:
        return "absent"
print("python", platform.python_version(), "| torch", torch.__version__, "cuda", torch.version.cuda,
      "| triton", v("triton"), "| transformers", v("transformers"), "| onnxruntime", v("onnxruntime"))
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "NO CUDA")
EOF
} 2>&1 | tee -a "$LOG"

# The CUDA-only tests first (kernels at realistic shapes, the triton backend, CUDA graphs, torch.compile),
# without -x so one failure does not hide the rest; the sm_90 ptxas compile test is for GPU-less machines.
step tests-cuda "${GPU_CHECK_TESTS_S:-140}" python -m pytest -q -p no:cacheprovider \
    tests/models/test_triton_backend.py tests/kernels --deselect tests/kernels/test_compile_hopper.py
step tests-rest "${GPU_CHECK_REST_S:-60}" python -m pytest tests -q -p no:cacheprovider \
    --ignore=tests/kernels --ignore=tests/models/test_triton_backend.py
step check "${GPU_CHECK_CHECK_S:-50}" python -m fastbert check --config bert-base --dtypes fp32,fp16,bf16
# torch.compile baselines of the kernels are left to a second call (GPU_CHECK_KERNEL_FLAGS=""): compiling
# each case costs seconds, and the step must leave its CSV within its limit.
step kernels "${GPU_CHECK_KERNELS_S:-80}" python benchmarks/bench_kernels.py --out "$WORK/kernels" \
    ${GPU_CHECK_KERNEL_FLAGS---no-compile --dtypes fp16 bf16}
# End to end on the --quick grid, every provider but torch.compile (tens of seconds of compiling per
# model x task x dtype): BERT-base first so it is measured whole; --max-time stops timing new rows in
# time to write what was measured.
BENCH_S="${GPU_CHECK_BENCH_S:-130}"
step bench "$BENCH_S" python -m fastbert bench --quick --models bert-base,minilm --tasks model,embed,mlm \
    --dtypes bf16,fp16,fp32 --no-progress --max-time "$((BENCH_S - 30))" --out "$WORK/bench" \
    --providers fastbert-triton,fastbert-triton-graphs,fastbert-sdpa,hf-eager,hf-sdpa,onnxruntime
# torch.compile of transformers (default mode, then max-autotune-no-cudagraphs) on BERT-base bf16,
# against fastbert triton and the same baseline.
AUTOTUNE_S="${GPU_CHECK_AUTOTUNE_S:-60}"
step autotune "$AUTOTUNE_S" python -m fastbert bench --models bert-base --tasks model --dtypes bf16 \
    --shapes 32x128,32xskewed8-512 --no-progress --no-plots --max-time "$((AUTOTUNE_S - 15))" \
    --out "$WORK/autotune" --providers fastbert-triton,fastbert-triton-graphs,hf-sdpa,hf-compile,hf-compile-max-autotune

for t in bench autotune; do
    [ -f "$WORK/$t/TABLE.md" ] && { echo "=== $t/TABLE.md"; cat "$WORK/$t/TABLE.md"; } >>"$LOG"
done
echo "=== done: $FAILED step(s) failed; results in $OUT" | tee -a "$LOG"
collect
ls -la "$OUT"
exit "$FAILED"
