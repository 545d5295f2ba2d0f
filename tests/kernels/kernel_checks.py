"""Helpers of the kernel tests: device, dtypes, the reference, and the one parity rule.

Parity: ``fastbert.core.tolerances`` (the rule every parity check of fastbert uses). The reference is the
torch op on inputs upcast to float64 (``ref64``; for fp16/bf16 inputs this is the usual "high-precision
reference on upcast inputs", float64 also gives fp32 inputs a reference that is not the op under test);
the torch op run in the input dtype has its own error against it, and the kernel may be at most
``tolerances.FACTOR`` times worse, plus the floor. Masked positions take part like any other (zeros
compared) unless a test passes ``mask``.

The kernels under test are the public functions of ``fastbert.kernels``; the torch reference is the
``fastbert.core.ops.KERNEL_REFERENCES`` (the torch reference of each kernel under its name and signature).

Without CUDA the kernels run on CPU tensors under TRITON_INTERPRET=1 (tests/conftest.py sets it),
with tiny shapes; with CUDA the same tests run on the GPU, plus realistic shapes (``requires_cuda``).
"""

from __future__ import annotations

import os

import pytest
import torch

from fastbert.core import tolerances

CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cuda" if CUDA else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]

requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def to64(a):
    """Floating tensors to float64 (ints, None and scalars unchanged)."""
    return a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a


def reference(name: str):
    """The torch reference of kernel ``name`` (same signature as ``fastbert.kernels.<name>``)."""
    from fastbert.core.ops import KERNEL_REFERENCES

    return getattr(KERNEL_REFERENCES, name)


def kernel(name: str):
    """The public kernel function ``fastbert.kernels.<name>``."""
    from fastbert import kernels

    return getattr(kernels, name)


def check_against_reference(out, torch_out, ref64, dtype, mask=None) -> tolerances.Verdict:
    """Equal shapes, out's dtype, and the parity rule of ``fastbert.core.tolerances`` (NaN never passes)."""
    assert out.shape == ref64.shape, (out.shape, ref64.shape)
    assert out.dtype == dtype, (out.dtype, dtype)
    return tolerances.assert_close(out, torch_out, ref64, dtype, mask=mask, what=f"kernel ({dtype})")


def run_both(name: str, *args, **kwargs):
    """(kernel output, torch output in dtype, torch output on float64 inputs) of op ``name``."""
    out = kernel(name)(*args, **kwargs)
    torch_out = reference(name)(*args, **kwargs)
    ref64 = reference(name)(*[to64(a) for a in args], **kwargs)
    return out, torch_out, ref64
