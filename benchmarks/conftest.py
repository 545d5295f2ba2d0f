"""pytest-benchmark setup shared by ``benchmarks/test_bench_models.py`` and ``test_bench_cpu.py``.

Run with ``pytest benchmarks`` (``tests/`` is what CI runs; nothing here is collected there). Providers,
workloads and the parity gate are ``fastbert.benchmark``'s (``fastbert.core.tolerances`` against transformers
eager in float64), so a pytest-benchmark row and a ``fastbert bench`` row measure the same thing; but
pytest-benchmark times one provider after another, so for ratios prefer ``fastbert bench`` (interleaved).
Environment knobs: ``FASTBERT_BENCH_MODELS``, ``FASTBERT_BENCH_PROVIDERS``, ``FASTBERT_BENCH_DTYPES``.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from fastbert import benchmark as fb
from fastbert.benchmark.run import _gate
from fastbert.benchmark.timing import synchronize, timed_call


class BenchRunner:
    """Builds (and caches) source models and provider callables; runs one benchmark row."""

    def __init__(self, device: str):
        self.device = device
        self.env = fb.environment(device)
        self._sources: OrderedDict = OrderedDict()
        self._fns: OrderedDict = OrderedDict()

    def _source(self, model: str, task: str):
        key = (model, task)
        if key not in self._sources:
            while len(self._sources) >= 2:
                self._sources.popitem(last=False)
                self._fns.clear()
            self._sources[key] = fb.load_source_model(model, task, self.device)
        return self._sources[key]

    def _fn(self, model: str, task: str, dtype: str, provider: str):
        key = (model, task, dtype, provider)
        if key not in self._fns:
            while len(self._fns) >= 3:
                self._fns.popitem(last=False)
            ctx = fb.BuildContext(
                task=task,
                dtype=fb.DTYPES[dtype],
                device=self.device,
                source=self._source(model, task),
                max_batch=128,
                max_seqlen=512,
                compile_dynamic=False,
            )
            self._fns[key] = fb.PROVIDERS[provider].build(ctx)
        return self._fns[key]

    def run(self, benchmark, model: str, task: str, shape: str, dtype: str, provider: str, rounds: int = 10):
        """Parity gate, then ``benchmark.pedantic``; skips (with the reason) an unavailable provider."""
        p = fb.PROVIDERS[provider]
        reason = p.unavailable(self.device, fb.DTYPES[dtype])
        if reason:
            pytest.skip(f"{provider}: {reason}")
        source = self._source(model, task)
        s = fb.parse_shape(shape)
        inputs = fb.make_inputs(s, source.config.vocab_size, self.device)
        mask = fb.output_mask(task, inputs["attention_mask"])
        fn = self._fn(model, task, dtype, provider)  # built outside inference mode
        with torch.inference_mode():
            ref = fb.task_output(
                task, fb.hf_variant(source, "eager", torch.float64)(**inputs), inputs["attention_mask"]
            )
            plain = fb.hf_variant(source, "eager", fb.DTYPES[dtype])
            torch_out = fb.task_output(task, plain(**inputs), inputs["attention_mask"])
            out, first_s = timed_call(lambda: fn(inputs), self.device)
            ok, figures = _gate(p, out, torch_out, ref, fb.DTYPES[dtype], mask)
        if not ok:
            pytest.fail(
                f"{provider} {dtype} {model}/{task}/{shape}: {figures['message']}: a wrong answer gets no time"
            )

        def call():
            with torch.inference_mode():
                fn(inputs)
            synchronize(self.device)

        benchmark.group = f"{model}/{task}/{shape} {dtype}"
        benchmark.pedantic(call, rounds=rounds, warmup_rounds=2, iterations=1)
        if benchmark.stats is None:  # --benchmark-disable: the gate ran, nothing was timed
            return
        median = benchmark.stats.stats.median
        benchmark.extra_info.update({k: self.env.get(k) for k in fb.ENV_FIELDS})
        benchmark.extra_info.update(
            provider=provider,
            model=model,
            task=task,
            dtype=dtype,
            shape=shape,
            tokens=sum(s.lengths()),
            first_call_s=round(first_s, 4),
            seq_per_s=round(s.batch / median, 2),
            **{k: v for k, v in figures.items() if k != "message"},
        )


@pytest.fixture(scope="session")
def bench_runner_cuda_or_cpu():
    return BenchRunner(fb.default_device())


@pytest.fixture(scope="session")
def bench_runner_cpu():
    return BenchRunner("cpu")
