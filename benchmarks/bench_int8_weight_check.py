"""What the int8 copies' per-call weight check costs (``fastbert.quant.int8.WeightWatch.current``: the
weight's address, version and strides, and on the CPU 64 sampled elements compared with the values the copy
was made from), on the real MiniLM quantized to int8.

Prints the check's cost a call, then forwards at three batch shapes timed interleaved in one process: the
real check against one patched to answer "current" without looking. Quote the ratios, with the CPU model
and its flags beside them::

    python3 benchmarks/bench_int8_weight_check.py
"""

from __future__ import annotations

import platform
import statistics
import time

import torch

import fastbert
from fastbert.hub import embedded_model_path
from fastbert.quant import int8


def main() -> None:
    torch.manual_seed(0)
    model = fastbert.BertModel.from_pretrained(embedded_model_path(), quantization="int8").eval()
    dense = model.encoder.layer[0].intermediate.dense  # a QuantizedLinear
    copy = dense.qlinear
    n = 20000
    for _ in range(100):
        copy.current(dense.weight)
    t = time.perf_counter()
    for _ in range(n):
        copy.current(dense.weight)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"check: {(time.perf_counter() - t) / n * 1e6:.2f} us a call")
    real = int8.WeightWatch.current
    for b, length, reps in ((1, 16, 200), (8, 64, 40), (32, 128, 8)):
        ids = torch.randint(1000, 20000, (b, length))
        mask = torch.ones(b, length, dtype=torch.long)
        times: dict[str, list[float]] = {"check": [], "no check": []}
        try:
            with torch.inference_mode():
                for _ in range(3):
                    model(input_ids=ids, attention_mask=mask)
                for r in range(7):
                    for name in ("check", "no check") if r % 2 == 0 else ("no check", "check"):
                        int8.WeightWatch.current = real if name == "check" else (lambda self, weight: True)
                        t = time.perf_counter()
                        for _ in range(reps):
                            model(input_ids=ids, attention_mask=mask)
                        times[name].append((time.perf_counter() - t) / reps)
        finally:
            int8.WeightWatch.current = real
        a, c = statistics.median(times["check"]), statistics.median(times["no check"])
        print(f"{b}x{length}: with the check {a * 1e3:.2f} ms, without {c * 1e3:.2f} ms, ratio {a / c:.3f}")


if __name__ == "__main__":
    main()
