"""End-to-end model benchmarks (pytest-benchmark): the rows of ``fastbert bench --suite quick`` (CPU) or
``--suite gpu-e2e`` (CUDA), every provider's output checked before it is timed.

``pytest benchmarks/test_bench_models.py --benchmark-group-by=group``; see ``benchmarks/conftest.py``.
"""

import os

import pytest

from fastbert import benchmark as fb

DEVICE = fb.default_device()
GROUP = fb.suite_groups("gpu-e2e" if DEVICE == "cuda" else "quick", DEVICE)[0]


def env_list(name, default):
    value = os.environ.get(name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else list(default)


MODELS = env_list("FASTBERT_BENCH_MODELS", GROUP.models)
DTYPES = env_list("FASTBERT_BENCH_DTYPES", GROUP.dtypes)
PROVIDERS = env_list("FASTBERT_BENCH_PROVIDERS", GROUP.providers)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GROUP.shapes)
@pytest.mark.parametrize("model", MODELS)
def test_bench_model(benchmark, bench_runner_cuda_or_cpu, model, shape, dtype, provider):
    bench_runner_cuda_or_cpu.run(
        benchmark, model, "model", shape, dtype, provider, rounds=10 if DEVICE == "cuda" else 3
    )
