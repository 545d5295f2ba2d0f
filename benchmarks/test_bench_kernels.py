"""pytest-benchmark timings of fastbert's kernels against their torch references (GPU only).

    pytest benchmarks/test_bench_kernels.py --benchmark-group-by=param:case

Each case is timed for provider "triton" (fastbert kernel) and "torch" (the eager reference of
``fastbert.core.ops``; SDPA for attention). No timed assertions: the numbers are the result. Every
run records the GPU name and versions in ``extra_info``. The GB/s, TFLOP/s and copy-bandwidth
report lives in ``benchmarks/bench_kernels.py``.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytest_benchmark")
if not torch.cuda.is_available():
    pytest.skip(
        "kernel benchmarks need a CUDA GPU (the interpreter's timings mean nothing)", allow_module_level=True
    )

import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402

from fastbert import kernels  # noqa: E402
from fastbert.core.ops import KERNEL_REFERENCES  # noqa: E402

DEV = "cuda"
T, H = 16384, 768  # 32 x 512 tokens, BERT-base


def _mk(*s, dtype):
    return torch.randn(*s, dtype=dtype, device=DEV)


def _cases():
    out = {}
    for dname, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        _add_cases(out, dname, dtype)
    return out


def _add_cases(out, dname, dtype):
    """Cases of one dtype (a function per dtype, so the lambdas bind this dtype's tensors)."""
    ref, tri = KERNEL_REFERENCES, kernels
    x, r, b, w, lb = (
        _mk(T, H, dtype=dtype),
        _mk(T, H, dtype=dtype),
        *(_mk(H, dtype=dtype) for _ in range(3)),
    )
    xi, bi = _mk(T, 4 * H, dtype=dtype), _mk(4 * H, dtype=dtype)
    tabs = (_mk(30522, H, dtype=dtype), _mk(512, H, dtype=dtype), _mk(2, H, dtype=dtype), w, lb)
    ids = torch.randint(0, 30522, (T,), device=DEV)
    pos = torch.arange(T, device=DEV) % 512
    tt = torch.randint(0, 2, (T,), device=DEV)
    out[f"add_layernorm-{dname}"] = (
        lambda x=x, r=r, b=b, w=w, lb=lb: tri.add_layernorm(x, r, b, w, lb, 1e-12),
        lambda x=x, r=r, b=b, w=w, lb=lb: ref.add_layernorm(x, r, b, w, lb, 1e-12),
    )
    out[f"bias_gelu-{dname}"] = (
        lambda: tri.bias_act(xi, bi, "gelu"),
        lambda: ref.bias_act(xi, bi, "gelu"),
    )
    out[f"bias_gelu_layernorm-{dname}"] = (
        lambda x=x, b=b, w=w, lb=lb: tri.bias_act_layernorm(x, b, w, lb, 1e-12, "gelu"),
        lambda x=x, b=b, w=w, lb=lb: ref.bias_act_layernorm(x, b, w, lb, 1e-12, "gelu"),
    )
    out[f"embed_layernorm-{dname}"] = (
        lambda: tri.embed_layernorm(ids, pos, tt, *tabs, 1e-12, validate=False),
        lambda: ref.embed_layernorm(ids, pos, tt, *tabs, 1e-12),
    )
    for length in (128, 512):
        q, k, v = _mk(32, length, 3, 12, 64, dtype=dtype).unbind(2)
        qt, kt, vt = (_mk(32, 12, length, 64, dtype=dtype) for _ in range(3))
        out[f"attention_padded-L{length}-{dname}"] = (
            lambda q=q, k=k, v=v: tri.attention_padded(q, k, v, None, 0.125),
            lambda qt=qt, kt=kt, vt=vt: F.scaled_dot_product_attention(qt, kt, vt, scale=0.125),
        )
    gen = torch.Generator().manual_seed(0)
    lens = torch.randint(16, 513, (32,), generator=gen).tolist()
    q, k, v = _mk(sum(lens), 3, 12, 64, dtype=dtype).unbind(1)
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=DEV)
    qt, kt, vt = (_mk(32, 12, max(lens), 64, dtype=dtype) for _ in range(3))
    mask = (torch.arange(max(lens))[None, :] < torch.tensor(lens)[:, None]).to(DEV)[:, None, None, :]
    out[f"attention_varlen-16to512-{dname}"] = (
        lambda q=q, k=k, v=v: tri.attention_varlen(
            q, k, v, cu, cu, max(lens), max(lens), 0.125, validate=False
        ),
        lambda: F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=0.125),
    )


CASES = _cases()


@pytest.mark.parametrize("provider", ["triton", "torch"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bench(benchmark, case, provider):
    fn = CASES[case][0 if provider == "triton" else 1]
    benchmark.extra_info.update(
        gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__
    )
    fn()  # compile / autotune outside the timing
    torch.cuda.synchronize()

    def run():
        fn()
        torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=50, warmup_rounds=5, iterations=1)
