"""The CPU linears of MiniLM's encoder shapes (4,096 tokens: 32 x 128) in one dtype, through each GEMM the
sdpa table could call: torch's ``F.linear`` (MKL in fp32, oneDNN's bf16 matmul through ``addmm`` in bf16),
``addmm`` into a reused output (the workspace), oneDNN's ``_linear_pointwise`` on the plain weight (what
``fastbert.core.ops._sdpa_linear`` called where oneDNN is preferred until 2026-12-07, and still calls for one
row) and on a prepacked weight (what it calls since: :mod:`fastbert.core.prepack`). Interleaved, medians in ms; the CPU and its flags printed first.

    flock -x /tmp/fastbert-quiet.lock python3 benchmarks/bench_cpu_linears.py bfloat16
    flock -x /tmp/fastbert-quiet.lock python3 benchmarks/bench_cpu_linears.py float32
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = (
    (384, 1152),
    (384, 384),
    (384, 1536),
    (1536, 384),
)  # (K, N): QKV, attention out, intermediate, output


def interleaved(fns: dict, rounds: int = 25) -> dict[str, float]:
    times = {k: [] for k in fns}
    for f in fns.values():
        for _ in range(3):
            f()
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def _calls(x, w, b, packed, out) -> dict:
    mk = torch.ops.mkldnn
    return {
        "F.linear": lambda: F.linear(x, w, b),
        "addmm into a buffer": lambda: torch.addmm(b, x, w.t(), out=out),
        "oneDNN plain weight": lambda: mk._linear_pointwise(x, w, b, "none", [], ""),
        "oneDNN packed weight": lambda: mk._linear_pointwise(x, packed, b, "none", [], ""),
    }


def main(dtype_name: str = "bfloat16", rows: int = 4096) -> None:
    from fastbert.benchmark.run import cpu_details, cpu_name

    dtype = getattr(torch, dtype_name)
    print(
        f"{cpu_name()} ({cpu_details()}), {torch.get_num_threads()} threads, torch {torch.__version__}, {dtype}"
    )
    total: dict[str, float] = {}
    torch.manual_seed(0)
    for k, n in SHAPES:
        x, w, b = (
            torch.randn(rows, k, dtype=dtype),
            torch.randn(n, k, dtype=dtype) * 0.05,
            torch.randn(n, dtype=dtype),
        )
        packed = torch.ops.mkldnn._reorder_linear_weight(w, rows)
        out = torch.empty(rows, n, dtype=dtype)
        with torch.inference_mode():
            ms = interleaved(_calls(x, w, b, packed, out))
        for name, v in ms.items():
            total[name] = total.get(name, 0.0) + v
        print(f"{rows}x{k}x{n}: " + ", ".join(f"{name} {v:.2f}" for name, v in ms.items()))
    print("sum of the four: " + ", ".join(f"{name} {v:.2f}" for name, v in total.items()))


if __name__ == "__main__":
    main(*sys.argv[1:2])
