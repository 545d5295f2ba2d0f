"""The end-to-end rows of ``fastbert bench --suite cpu`` (pytest-benchmark): MiniLM and BERT-base, fp32,
2 threads, 8 x 128 and a skewed variable-length batch of 32 (``lengths = (8 + torch.rand(32,
generator=torch.Generator().manual_seed(7)) ** 3 * 248).long()``), against transformers ``sdpa``,
``torch.compile`` of transformers (a graph per shape), ONNX Runtime (plain, BERT-optimized, dynamic int8)
and OpenVINO where installed. For ratios read ``fastbert bench --suite cpu`` (providers interleaved).
"""

import pytest
import torch

from fastbert import benchmark as fb

GROUP = next(g for g in fb.suite_groups("cpu", "cpu") if g.name == "e2e")


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("provider", GROUP.providers)
@pytest.mark.parametrize("shape", GROUP.shapes)
@pytest.mark.parametrize("model", GROUP.models)
def test_bench_cpu(benchmark, bench_runner_cpu, model, shape, provider):
    bench_runner_cpu.run(benchmark, model, "model", shape, "fp32", provider, rounds=5)
