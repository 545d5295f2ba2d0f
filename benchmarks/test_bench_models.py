"""End-to-end model benchmarks (pytest-benchmark), the workloads of ``fastbert bench --quick``.

``pytest benchmarks/test_bench_models.py`` on CUDA or CPU, whichever is present: every workload x
dtype x provider, the output checked against transformers' fp32 eager output before it is timed.
``FASTBERT_BENCH_FULL=1`` for the full grid (CPU default: MiniLM only); see ``benchmarks/conftest.py`` for the other knobs.
Compare providers with ``--benchmark-group-by=group`` (the default groups by workload and dtype).
"""

import os

import pytest

from fastbert import benchmark as fb


def env_list(name, default):
    value = os.environ.get(name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else list(default)


DEVICE = fb.default_device()
FULL = os.environ.get("FASTBERT_BENCH_FULL") == "1"
MODELS = env_list(
    "FASTBERT_BENCH_MODELS",
    ("minilm", "bert-base", "bert-large")
    if FULL
    else ("minilm", "bert-base")
    if DEVICE == "cuda"
    else ("minilm",),
)
DTYPES = env_list("FASTBERT_BENCH_DTYPES", ("fp16", "bf16", "fp32") if DEVICE == "cuda" else ("fp32",))
PROVIDERS = env_list("FASTBERT_BENCH_PROVIDERS", fb.PROVIDERS)
WORKLOADS, _ = fb.build_workloads(MODELS, fb.TASKS, quick=not FULL, max_positions={m: 512 for m in MODELS})


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.label)
def test_bench_model(benchmark, bench_runner_cuda_or_cpu, workload, dtype, provider):
    bench_runner_cuda_or_cpu.run(benchmark, workload, dtype, provider, rounds=10 if DEVICE == "cuda" else 3)
