"""pytest-benchmark setup shared by ``benchmarks/test_bench_models.py`` and ``test_bench_cpu.py``.

Run with ``pytest benchmarks`` (``tests/`` is what CI runs; nothing here is collected there). The
workloads, providers, parity gate and reference are ``fastbert.benchmark``'s, so a pytest-benchmark
row and a ``fastbert bench`` row measure the same thing. Environment knobs:

- ``FASTBERT_BENCH_FULL=1``: the full grid instead of ``--quick``'s;
- ``FASTBERT_BENCH_MODELS``, ``FASTBERT_BENCH_PROVIDERS``, ``FASTBERT_BENCH_DTYPES``: comma lists to narrow.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from fastbert import benchmark as fb


class BenchRunner:
    """Builds (and caches) reference outputs and provider callables; runs one benchmark row."""

    def __init__(self, device: str):
        self.device = device
        self.env = fb.environment(device)
        self._references: OrderedDict = OrderedDict()
        self._fns: OrderedDict = OrderedDict()

    def _reference(self, model: str, task: str):
        key = (model, task)
        if key not in self._references:
            while len(self._references) >= 2:
                self._references.popitem(last=False)
                self._fns.clear()
            self._references[key] = fb.load_reference_model(model, task, self.device)
        return self._references[key]

    def _fn(self, w: fb.Workload, dtype: str, provider: str):
        key = (w.model, w.task, dtype, provider)
        if key not in self._fns:
            while len(self._fns) >= 3:
                self._fns.popitem(last=False)
            reference = self._reference(w.model, w.task)
            ctx = fb.BuildContext(
                reference, w.task, fb.DTYPES[dtype], self.device, max_batch=128, max_seqlen=512
            )
            self._fns[key] = fb.PROVIDERS[provider].build(ctx)
        return self._fns[key]

    def run(
        self, benchmark, w: fb.Workload, dtype: str, provider: str, rounds: int = 10, warmup: int = 2
    ) -> None:
        """Parity gate, then ``benchmark.pedantic``; skips (with the reason) an unavailable provider."""
        reason = fb.PROVIDERS[provider].unavailable(self.device, fb.DTYPES[dtype])
        if reason:
            pytest.skip(f"{provider}: {reason}")
        reference = self._reference(w.model, w.task)
        inputs = fb.make_inputs(w.shape, reference.config.vocab_size, self.device)
        try:  # built outside inference mode: parameters stay normal tensors
            fn = self._fn(w, dtype, provider)
        except NotImplementedError as e:  # e.g. fastbert without cuda_graphs() yet
            pytest.skip(f"{provider}: {e}")
        with torch.inference_mode():
            ref = fb.task_output(w.task, reference(**inputs), inputs["attention_mask"])
            out, first_s = fb.first_call(fn, inputs, self.device)
            err = max(
                fb.parity_error(out, ref, inputs["attention_mask"], w.task),
                fb.parity_error(fn(inputs), ref, inputs["attention_mask"], w.task),
            )
        del out, ref
        if not err <= fb.TOLERANCES[dtype]:
            pytest.fail(
                f"{provider} {dtype} {w.label}: error {err:.3g} > {fb.TOLERANCES[dtype]:g} against "
                f"{fb.REFERENCE}: a wrong answer gets no time"
            )

        device = self.device

        def call():
            with torch.inference_mode():
                fn(inputs)
            fb._sync(device)

        benchmark.group = f"{w.label} {dtype}"
        benchmark.pedantic(call, rounds=rounds, warmup_rounds=warmup, iterations=1)
        lengths = w.shape.lengths()
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(
            {
                k: self.env.get(k)
                for k in ("device", "torch", "transformers", "triton", "fastbert", "threads", "date")
            }
        )
        benchmark.extra_info.update(
            provider=provider,
            model=w.model,
            task=w.task,
            dtype=dtype,
            shape=w.shape.label,
            batch=w.shape.batch,
            tokens=sum(lengths),
            error=err,
            first_call_s=round(first_s, 4),
            seq_per_s=round(w.shape.batch / median, 2),
            tok_per_s=round(sum(lengths) / median, 1),
        )


@pytest.fixture(scope="session")
def bench_runner_cuda_or_cpu():
    return BenchRunner(fb.default_device())


@pytest.fixture(scope="session")
def bench_runner_cpu():
    return BenchRunner("cpu")
