#!/usr/bin/env bash
# The GPU check, in two calls of under 6 minutes each on a cold H100/H200 (see the GPU notes):
#
#   bash benchmarks/gpu_check.sh 1   # install, versions, CUDA test tier, fastbert check, kernel and end-to-end benches
#   bash benchmarks/gpu_check.sh 2   # torch.compile test, FP8/int8 tests, CUDA-graph and compile rows, host, FP8/int8 rows
#   bash benchmarks/gpu_check.sh 1 --dry-run   # (or GPU_CHECK_DRY_RUN=1) the same on the CPU: interpreter, tiny shapes
#                                              # (each sub-step killed GPU_CHECK_DRY_GRACE_S=60 after its limit)
#   GPU_CHECK_COMMIT=$(git rev-parse --short HEAD) bash benchmarks/gpu_check.sh 1   # the log names the tree sent
#
# Run from anywhere; it works in the repository root. Results go to $OUT (the device tool's folder; default
# /tmp/fastbert_gpu_out) row by row as they are measured, so a killed sub-step keeps what it measured and the
# next one still runs (each sub-step is under its own `timeout`). Files in $OUT (at most 6, two folders deep):
#   gpu_check.log        everything printed, in order (pytest -rA names every failure)
#   steps.tsv            one line per sub-step: name, exit status, seconds
#   kernels.csv          step 1: kernel micro-benchmark rows (copy bandwidth row first)
#   e2e/rows.jsonl       step 1: `fastbert bench --suite gpu-e2e` rows
#   compile/rows.jsonl   step 2: `fastbert bench --suite gpu-compile` rows
#   quant/rows.jsonl     step 2: benchmarks/bench_quant_gpu.py rows (FP8 / int8 linears: MiniLM gates, speed vs fp16)
#   host.txt             step 2: benchmarks/profile_host.py (where a forward's time goes on the host)
#   targets.txt          the targets table (benchmarks/gpu_targets.py), also printed last
# A copy of step 1's files is kept in $GPU_CHECK_KEEP (default /tmp/fastbert_gpu_keep) so that step 2, on the
# same warm machine, judges the targets that need both steps' rows.
# Device time: the session has 900 s in all, a machine start (60-120 s) and the transfers included, so each
# step ends within its deadline GPU_CHECK_DEADLINE_S (default 330 s; start + both steps + transfers <= about
# 820 s; each step is expected to take about 300 s). A sub-step's limit is cut to what is left before the deadline, less the floors
# kept for the sub-steps after it (so a slow test tier cannot take the benchmarks' time), less 15 s for the
# targets table and timeout's kill; a sub-step left under 10 s is not run (exit 124 in steps.tsv). targets.txt
# and the copy of step 1's files in $GPU_CHECK_KEEP are rewritten after every sub-step: a step that the device
# tool kills still leaves its table.
# Time limits (seconds, environment), from the H200 runs of 2026-12-04 (in brackets what it took there):
# GPU_CHECK_INSTALL_S=30 [4]; step 1: GPU_CHECK_TESTS_MODELS_S=120 [82-99 s with 550 tests in session 10; 458
# now (2026-12-06), the cpu_only tests left out] GPU_CHECK_TESTS_KERNELS_S=100 [57-87, 707 tests; 730 now]
# GPU_CHECK_CHECK_S=60 [33-40 before its triton-eager and triton-packed rows; the model is built once now]
# GPU_CHECK_KERNELS_S=45 [27] GPU_CHECK_E2E_S=100 [36 for 4 shapes x 3 providers and the overhead rows]
# (expected about 300 s with the install and the version probe); step 2: GPU_CHECK_TESTS_COMPILE_S=50 [19-25]
# (torch.compile over the kernels, the one test left out of step 1), GPU_CHECK_TESTS_QUANT_S=75 [55]
# (tests/quant/test_gpu_linears.py: the real _scaled_mm / _int_mm calls against their formulas, the MiniLM
# gates), GPU_CHECK_COMPILE_S=140 [the CUDA-graph row and two compile shapes fitted a 95 s budget] (CUDA-graph
# rows first, then torch.compile rows), GPU_CHECK_HOST_S=40 (benchmarks/profile_host.py: the host cost of a
# launch, wall vs GPU-busy time per forward), GPU_CHECK_QUANT_S=65 [48] (bench_quant_gpu.py: gates and speed
# of fastbert-fp8 / fastbert-int8 vs fp16 on 32x128 and 32xskewed8-256) (expected about 290 s). The device
# has no MiniLM package: the MiniLM
# gates use $FASTBERT_MINILM, by default ./.gpu_minilm when it exists (an fp16 copy, 45 MB, made here by
# `python3 benchmarks/bench_quant_gpu.py --export-minilm .gpu_minilm` and carried: run(carry=[".gpu_minilm"]));
# without it they skip and the speed rows use MiniLM's configuration with random weights.
# GPU_CHECK_TESTS_MODELS / GPU_CHECK_TESTS_KERNELS override the CUDA tier's paths; FASTBERT_KERNEL_CONFIG
# (default "first") its kernel config.
# The exit status is the number of sub-steps that failed.
set -u
cd "$(dirname "$0")/.."
# the device image's interpreter is python3 (a plain "python" may not exist there)
PY="${PYTHON:-$(command -v python3 || command -v python)}"

STEP="${1:-}"
shift || true
DRY="${GPU_CHECK_DRY_RUN:-0}"
for arg in "$@"; do [ "$arg" = --dry-run ] && DRY=1; done
case "$STEP" in 1 | 2) ;; *)
    echo "usage: bash benchmarks/gpu_check.sh 1|2 [--dry-run]" >&2
    exit 2
    ;;
esac

OUT="${OUT:-/tmp/fastbert_gpu_out}"
KEEP="${GPU_CHECK_KEEP:-/tmp/fastbert_gpu_keep}"
mkdir -p "$OUT" "$KEEP"
LOG="$OUT/gpu_check.log"
STEPS="$OUT/steps.tsv"
: >"$STEPS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" # works even when the install sub-step failed
[ -z "${FASTBERT_MINILM:-}" ] && [ -f .gpu_minilm/config.json ] && export FASTBERT_MINILM="$PWD/.gpu_minilm"
if [ "$DRY" = 1 ]; then
    export TRITON_INTERPRET=1 # CPU tensors through the Triton interpreter
    TINY=(--tiny)
    DEVICE=cpu
else
    unset TRITON_INTERPRET
    TINY=()
    DEVICE=cuda
fi
FAILED=0
# this step's deadline (seconds since the script started); the dry run's is longer (a CPU under other jobs)
DEFAULT_DEADLINE=330
[ "$DRY" = 1 ] && DEFAULT_DEADLINE=900
DEADLINE="${GPU_CHECK_DEADLINE_S:-$DEFAULT_DEADLINE}"
KILL_AFTER=5 # timeout's grace between TERM and KILL
# the dry run's sub-steps may run GPU_CHECK_DRY_GRACE_S past their limits, which are the GPU's (its benches
# keep their budgets): on a CPU under other jobs the host profile ran past its limit and failed the dry run
GRACE=0
[ "$DRY" = 1 ] && GRACE="${GPU_CHECK_DRY_GRACE_S:-60}"
RESERVE=15   # the targets table (the last one) and timeout's kill-after, kept out of every sub-step's limit
AFTER=0      # seconds kept for the sub-steps after the next one (the floors they need: `after`)

after() { # after SECONDS...: the floors of the sub-steps still to come, kept out of the next one's limit
    AFTER=0
    local s
    for s in "$@"; do AFTER=$((AFTER + s)); done
}

fit() { # fit SECONDS: LIM = SECONDS cut to what is left before the deadline, less RESERVE and AFTER
    local left=$((DEADLINE - SECONDS - RESERVE - AFTER))
    [ "$left" -lt 0 ] && left=0
    LIM=$(($1 < left ? $1 : left))
}

budget() { # budget LIMIT MARGIN: a bench's own --time-budget inside its sub-step's limit (at least half of it)
    local b=$(($1 - $2))
    echo $((b > $1 / 2 ? b : $1 / 2))
}

targets() { # the targets table from what this step has written so far (quiet: the last one is printed)
    "$PY" benchmarks/gpu_targets.py --kernels "$KCSV" --rows "${ROWS[@]}" --steps "${STEPS_FOR_TARGETS[@]}" \
        --out "$OUT/targets.txt" >/dev/null 2>&1
    if [ "$STEP" = 1 ]; then # step 2 (same warm machine) reads step 1's files from here
        rm -rf "$KEEP/step1" && mkdir -p "$KEEP/step1"
        cp -f "$STEPS" "$KEEP/step1/"
        [ -f "$OUT/kernels.csv" ] && cp -f "$OUT/kernels.csv" "$KEEP/step1/"
        [ -f "$OUT/e2e/rows.jsonl" ] && cp -f "$OUT/e2e/rows.jsonl" "$KEEP/step1/"
    fi
    return 0
}

sub() { # sub NAME SECONDS COMMAND... : one sub-step under its own time limit (cut by `fit`), output to the log
    local name="$1" limit="$2"
    shift 2
    fit "$limit"
    local t0=$SECONDS rc
    if [ "$LIM" -lt 10 ]; then
        echo "=== $name: not run, ${LIM}s left before the step's deadline (${DEADLINE}s)" | tee -a "$LOG"
        rc=124
    else
        local cut=""
        [ "$LIM" -lt "$limit" ] && cut=", cut from ${limit}s by the step's deadline"
        [ "$GRACE" -gt 0 ] && cut="$cut, +${GRACE}s in the dry run"
        echo "=== $name (limit ${LIM}s$cut; ${SECONDS}s of ${DEADLINE}s spent): $*" | tee -a "$LOG"
        timeout --kill-after="$KILL_AFTER" "$((LIM + GRACE))" "$@" >>"$LOG" 2>&1
        rc=$?
        echo "=== $name: rc=$rc in $((SECONDS - t0))s" | tee -a "$LOG"
    fi
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$STEPS"
    [ "$rc" -ne 0 ] && FAILED=$((FAILED + 1))
    targets
    return 0
}

keep_only_rows() { # keep_only_rows DIR: the bench's other outputs (tables, plots) stay out of $OUT's file count
    [ -d "$1" ] && find "$1" -type f ! -name rows.jsonl -delete
    return 0
}

# what the targets table reads: this step's files (step 2: step 1's too, kept on the same warm machine)
if [ "$STEP" = 1 ]; then
    ROWS=("$OUT/e2e/rows.jsonl")
    KCSV="$OUT/kernels.csv"
    STEPS_FOR_TARGETS=("$STEPS")
else
    # step 1's rows complete the targets that compare both steps' providers; the CUDA test tier is both steps'
    # test sub-steps (step 1's tiers, this step's compile and quant tests)
    ROWS=("$KEEP/step1/rows.jsonl" "$OUT/compile/rows.jsonl")
    KCSV="$KEEP/step1/kernels.csv"
    STEPS_FOR_TARGETS=("$KEEP/step1/steps.tsv" "$STEPS")
fi

# the commit: the caller's GPU_CHECK_COMMIT=<sha> where given (the device's copy of .git lagged the tree sent
# with the call in session 9), else git's here, said to be so
COMMIT="${GPU_CHECK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null) (git on this machine; GPU_CHECK_COMMIT unset)}"
echo "=== fastbert gpu_check step $STEP$([ "$DRY" = 1 ] && echo ' (dry run)') $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "commit $COMMIT, deadline ${DEADLINE}s" | tee "$LOG"
if [ "$DRY" != 1 ]; then
    # No registry on the device: no build isolation (it would fetch setuptools), no dependencies.
    sub install "${GPU_CHECK_INSTALL_S:-30}" "$PY" -m pip install --no-deps --no-build-isolation -q -e .
fi
{
    # bounded: a hung driver query or CUDA init must not take the step's device time
    timeout --kill-after=5 20 nvidia-smi -L 2>&1 || echo "nvidia-smi: not available (or no answer in 20 s)"
    timeout --kill-after=5 90 "$PY" - <<'EOF'
import platform, torch
from importlib.metadata import version
def v(m):
    try:
        return version(m)
    except Exception:
        return "absent"
print("python", platform.python_version(), "| torch", torch.__version__, "cuda", torch.version.cuda,
      "| triton", v("triton"), "| transformers", v("transformers"), "| pytest", v("pytest"))
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no CUDA)")
EOF
} 2>&1 | tee -a "$LOG"

if [ "$STEP" = 1 ]; then
    # CUDA test tier: one forced kernel config (no autotuning, lengths unspecialised: a few compiles per
    # kernel variant), each test named as it finishes (-v) and every result summed up (-rA), no -x; a per-test
    # timeout where pytest-timeout is installed. Two sub-steps, so that a killed one leaves the other's
    # results: the models (parity of every class) first, then the kernels. The dry run runs small CPU
    # selections through the same lines.
    export FASTBERT_KERNEL_CONFIG="${FASTBERT_KERNEL_CONFIG:-first}"
    # 90 s: a CPU test (Inductor's CPU compile) took over 60 s under 16 busy cores on the H200 and passed with 90
    TIMEOUT_ARGS=()
    "$PY" -c "import pytest_timeout" 2>/dev/null && TIMEOUT_ARGS=(--timeout="${GPU_CHECK_TEST_TIMEOUT_S:-90}")
    # On the device (16 cores, one GPU) the tier is bound by Triton's compiles, one core each: spread the tests
    # over GPU_CHECK_WORKERS pytest-xdist workers (default 8) where xdist is installed; the models a file at a
    # time (module fixtures), the kernels test by test (test_attention.py alone holds ~200 tests).
    XDIST_MODELS=()
    XDIST_KERNELS=()
    if [ "$DRY" != 1 ] && [ "${GPU_CHECK_WORKERS:-8}" -gt 1 ] && "$PY" -c "import xdist" 2>/dev/null; then
        XDIST_MODELS=(-n "${GPU_CHECK_WORKERS:-8}" --dist loadfile)
        XDIST_KERNELS=(-n "${GPU_CHECK_WORKERS:-8}" --dist load)
    fi
    if [ "$DRY" = 1 ]; then
        read -r -a TESTS_MODELS <<<"${GPU_CHECK_TESTS_MODELS:-tests/test_tolerances.py}"
        read -r -a TESTS_KERNELS <<<"${GPU_CHECK_TESTS_KERNELS:-tests/kernels/test_configs.py}"
    else
        # with the CUDA tests outside tests/models (the fp16 fill-mask pipeline on sdpa and triton)
        read -r -a TESTS_MODELS <<<"${GPU_CHECK_TESTS_MODELS:-tests/models tests/test_pipelines.py::test_fill_mask_fp16_cuda}"
        # the attention tests (most compiles) last, so that a time-out costs them and not the others
        if [ -n "${GPU_CHECK_TESTS_KERNELS:-}" ]; then
            read -r -a TESTS_KERNELS <<<"$GPU_CHECK_TESTS_KERNELS"
        else
            mapfile -t TESTS_KERNELS < <(ls tests/kernels/test_*.py | grep -v /test_attention.py)
            TESTS_KERNELS+=(tests/kernels/test_attention.py)
        fi
    fi
    # torch.compile over the kernels (a cold compile of BERT) runs in step 2, not inside this step's limit; the
    # tests marked cpu_only (CPU models, no CUDA path: the fuzz files and the files of tests/models that never
    # touch CUDA, about 620 cases) run in CI, not on the device
    after 60 35 25 60 # floors of tests-kernels, check, kernels, e2e
    sub tests-models "${GPU_CHECK_TESTS_MODELS_S:-120}" "$PY" -m pytest -v -rA -p no:cacheprovider \
        -m "not slow and not cpu_only" \
        -k "not torch_compile" "${XDIST_MODELS[@]}" "${TIMEOUT_ARGS[@]}" "${TESTS_MODELS[@]}"
    after 35 25 60
    sub tests-kernels "${GPU_CHECK_TESTS_KERNELS_S:-100}" "$PY" -m pytest -v -rA -p no:cacheprovider -m "not slow" \
        "${XDIST_KERNELS[@]}" "${TIMEOUT_ARGS[@]}" "${TESTS_KERNELS[@]}"
    unset FASTBERT_KERNEL_CONFIG
    after 25 60
    if [ "$DRY" = 1 ]; then
        # fp32 only: the dry run shows that the sub-step works (the interpreter takes 12 s a dtype, and computes
        # bf16 tl.dot wrongly); the triton backend's fp16 parity is tests/models/test_triton_backend.py's
        sub check "${GPU_CHECK_CHECK_S:-60}" "$PY" -m fastbert check --config tiny --device cpu --dtypes fp32
    else
        sub check "${GPU_CHECK_CHECK_S:-60}" "$PY" -m fastbert check --config bert-base --dtypes fp32,fp16,bf16
    fi
    if [ "$DRY" = 1 ]; then
        KFLAGS=(--tiny --dtypes fp16 fp32)
    else
        KFLAGS=(--dtypes bf16 fp16)
    fi
    after 60
    fit "${GPU_CHECK_KERNELS_S:-45}"
    sub kernels "$LIM" "$PY" benchmarks/bench_kernels.py "${KFLAGS[@]}" --no-compile --no-plots \
        --time-budget "$(budget "$LIM" 20)" --csv "$OUT/kernels.csv" --out "$KEEP/kernels"
    after
    fit "${GPU_CHECK_E2E_S:-100}"
    sub e2e "$LIM" "$PY" -m fastbert bench --suite gpu-e2e "${TINY[@]}" --device "$DEVICE" --no-progress \
        --time-budget "$(budget "$LIM" 20)" --out "$OUT/e2e"
    keep_only_rows "$OUT/e2e"
else
    # the tests, then what the step is for (torch.compile and CUDA graphs: its targets' rows), then the host's
    # share and the FP8 / int8 rows
    if [ "$DRY" != 1 ]; then
        after 45 100 25 45 # floors of tests-quant, compile, host, quant
        sub tests-compile "${GPU_CHECK_TESTS_COMPILE_S:-50}" "$PY" -m pytest -v -rA -p no:cacheprovider \
            -k torch_compile tests/models/test_triton_backend.py
        after 100 25 45
        sub tests-quant "${GPU_CHECK_TESTS_QUANT_S:-75}" "$PY" -m pytest -v -rA -p no:cacheprovider \
            tests/quant/test_gpu_linears.py
    fi
    after 25 45
    fit "${GPU_CHECK_COMPILE_S:-140}"
    sub compile "$LIM" "$PY" -m fastbert bench --suite gpu-compile "${TINY[@]}" --device "$DEVICE" --no-progress \
        --time-budget "$(budget "$LIM" 25)" --out "$OUT/compile"
    keep_only_rows "$OUT/compile"
    # the host's share (dry run: a tiny model under the interpreter)
    after 45
    sub host "${GPU_CHECK_HOST_S:-40}" "$PY" benchmarks/profile_host.py "${TINY[@]}" --device "$DEVICE" \
        --out "$OUT/host.txt"
    # FP8 / int8 linears: gates on the real MiniLM and speed vs fp16 (dry run: a tiny model, the CPU GEMMs)
    after
    fit "${GPU_CHECK_QUANT_S:-65}"
    sub quant "$LIM" "$PY" benchmarks/bench_quant_gpu.py "${TINY[@]}" --device "$DEVICE" \
        --time-budget "$((LIM / 3))" --out "$OUT/quant/rows.jsonl"
fi

echo "=== targets" | tee -a "$LOG"
targets
cat "$OUT/targets.txt" 2>/dev/null | tee -a "$LOG"
echo "=== done: step $STEP, $FAILED sub-step(s) failed, ${SECONDS}s of the ${DEADLINE}s deadline; results in $OUT" |
    tee -a "$LOG"
ls -la "$OUT" "$OUT"/*/ 2>/dev/null | tee -a "$LOG" >/dev/null
exit "$FAILED"
