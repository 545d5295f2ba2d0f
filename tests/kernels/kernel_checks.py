"""Helpers of the kernel tests: device, dtypes, and the one tolerance rule.

Tolerance (every kernel, every dtype): the reference is the torch op on inputs upcast to float64
(``ref64``; for fp16/bf16 inputs this is the usual "fp32 reference on upcast inputs", float64 also
gives fp32 inputs a reference that is not the op under test). The torch op run in the input
dtype has its own error ``err_torch = max|torch_in_dtype - ref64|``; the kernel passes when

    max|kernel - ref64| <= K * err_torch + ATOL_FLOOR[dtype],   K = 3

The floor (one ulp at 1.0 for fp16/bf16, 1e-6 for fp32) covers outputs the torch op happens to
get exactly right (relu, tiny rows). Masked positions take part like any other (zeros compared).

Without CUDA the kernels run on CPU tensors under TRITON_INTERPRET=1 (tests/conftest.py sets it),
with tiny shapes; with CUDA the same tests run on the GPU, plus realistic shapes (``requires_cuda``).
"""

from __future__ import annotations

import os

import pytest
import torch

CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cuda" if CUDA else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]

K = 3.0
ATOL_FLOOR = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}

requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def to64(a):
    """Floating tensors to float64 (ints, None and scalars unchanged)."""
    return a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a


def check_against_reference(out: torch.Tensor, torch_out: torch.Tensor, ref64: torch.Tensor, dtype) -> None:
    """Assert the tolerance rule above (and equal shapes, out's dtype, no NaN)."""
    assert out.shape == ref64.shape, (out.shape, ref64.shape)
    assert out.dtype == dtype, (out.dtype, dtype)
    assert not torch.isnan(out).any(), "kernel produced NaN"
    err = (out.double() - ref64).abs().max().item() if out.numel() else 0.0
    err_torch = (torch_out.double() - ref64).abs().max().item() if out.numel() else 0.0
    bound = K * err_torch + ATOL_FLOOR[dtype]
    assert err <= bound, f"max|kernel - ref64| = {err:.3g} > {K} * {err_torch:.3g} + {ATOL_FLOOR[dtype]:g}"


def run_both(name: str, *args, **kwargs):
    """(triton output, torch output in dtype, torch output on float64 inputs) of op ``name``."""
    from fastbert.ops import get_ops

    out = getattr(get_ops("triton"), name)(*args, **kwargs)
    torch_out = getattr(get_ops("torch"), name)(*args, **kwargs)
    ref64 = getattr(get_ops("torch"), name)(*[to64(a) for a in args], **kwargs)
    return out, torch_out, ref64
