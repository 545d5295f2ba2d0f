"""fastbert.kernels.layernorm: add_layernorm and bias_act_layernorm against their torch references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kernel_checks import DTYPES, check_against_reference, reference, requires_cuda, run_both

SHAPES = [(1, 36), (7, 384), (65, 36), (3, 1000)]


def _params(m, n, dtype, device):
    mk = lambda *s: torch.randn(*s, dtype=dtype, device=device)
    return mk(m, n), mk(m, n), mk(n), 1 + 0.1 * mk(n), mk(n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_residual", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_add_layernorm(dtype, shape, with_residual, with_bias, device):
    x, r, b, w, lb = _params(*shape, dtype, device)
    out = run_both("add_layernorm", x, r if with_residual else None, b if with_bias else None, w, lb, 1e-12)
    check_against_reference(*out, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [768, 1024])
def test_add_layernorm_bert_sizes(dtype, hidden, device):
    x, r, b, w, lb = _params(5, hidden, dtype, device)
    check_against_reference(*run_both("add_layernorm", x, r, b, w, lb, 1e-5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_layernorm_strided_and_3d(dtype, device):
    base = torch.randn(7, 2 * 384, dtype=dtype, device=device)
    x = base[:, ::2]  # column stride 2
    r = torch.randn(384, 7, dtype=dtype, device=device).t()  # transposed
    _, _, b, w, lb = _params(7, 384, dtype, device)
    check_against_reference(*run_both("add_layernorm", x, r, b, w, lb, 1e-12), dtype)
    x3 = torch.randn(2, 5, 36, dtype=dtype, device=device)[:, 1:]  # (2, 4, 36), non-contiguous
    r3 = torch.randn(2, 4, 36, dtype=dtype, device=device)
    _, _, b, w, lb = _params(1, 36, dtype, device)
    check_against_reference(*run_both("add_layernorm", x3, r3, b, w, lb, 1e-12), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [384, 1000])
def test_add_layernorm_constant_rows(dtype, hidden, device):
    """Zero-variance rows (x + bias + residual constant along the row) with BERT's eps = 1e-12: the output
    is the LayerNorm bias, as torch gives it exactly. A mean an ulp off the row's value (its rounded sum)
    times rstd ~ 1e6 gave outputs up to 0.9 off."""
    _, _, _, w, lb = _params(1, hidden, dtype, device)
    x = torch.tensor([0.1, 1 / 3, 7.7, 0.0], dtype=dtype, device=device)[:, None].repeat(1, hidden)
    r = torch.full_like(x, 0.37)
    b = torch.full((hidden,), 0.01, dtype=dtype, device=device)
    check_against_reference(*run_both("add_layernorm", x, None, None, w, lb, 1e-12), dtype)
    check_against_reference(*run_both("add_layernorm", x, r, b, w, lb, 1e-12), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["gelu", "gelu_new", "relu"])
@pytest.mark.parametrize("shape", [(1, 36), (7, 384), (65, 36)])
def test_bias_act_layernorm(dtype, activation, shape, device):
    x, _, b, w, lb = _params(*shape, dtype, device)
    check_against_reference(*run_both("bias_act_layernorm", x, b, w, lb, 1e-12, activation), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_act_layernorm_no_bias_strided(dtype, device):
    x = torch.randn(384, 7, dtype=dtype, device=device).t()
    _, _, _, w, lb = _params(1, 384, dtype, device)
    check_against_reference(*run_both("bias_act_layernorm", x, None, w, lb, 1e-5, "gelu"), dtype)


def test_bad_inputs(device):
    from fastbert import kernels

    ops = kernels
    x, r, b, w, lb = _params(3, 36, torch.float32, device)
    with pytest.raises(ValueError, match="dtype"):
        ops.add_layernorm(x.to(torch.int32), r, b, w, lb, 1e-12)
    with pytest.raises(ValueError, match="residual shape"):
        ops.add_layernorm(x, r[:2], b, w, lb, 1e-12)
    with pytest.raises(ValueError, match="residual dtype"):
        ops.add_layernorm(x, r.double(), b, w, lb, 1e-12)
    with pytest.raises(ValueError, match=r"residual dtype torch.float16 != x dtype torch.float32"):
        ops.add_layernorm(x, r.half(), b, w, lb, 1e-12)  # it was added in x's dtype, where torch promotes
    with pytest.raises(ValueError, match="bias must have shape"):
        ops.add_layernorm(x, r, b[:5], w, lb, 1e-12)
    with pytest.raises(ValueError, match="ln_weight dtype"):
        ops.add_layernorm(x, r, b, w.double(), lb, 1e-12)
    with pytest.raises(ValueError, match="ln_weight is required"):
        ops.add_layernorm(x, r, b, None, lb, 1e-12)
    with pytest.raises(ValueError, match="unsupported activation"):
        ops.bias_act_layernorm(x, b, w, lb, 1e-12, "tanh_but_not_really")
    for eps in (-1e-12, float("nan"), True):
        with pytest.raises(ValueError, match="eps must be a finite float >= 0"):
            ops.add_layernorm(x, r, b, w, lb, eps)
    want = ops.add_layernorm(x, r, b, w, lb, 1e-5)
    torch.testing.assert_close(ops.add_layernorm(x, r, b, w, lb, np.float64(1e-5)), want, rtol=0, atol=0)


@requires_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [384, 768, 1000, 1024])
def test_gpu_realistic(dtype, hidden, device):
    x, r, b, w, lb = _params(4096, hidden, dtype, device)
    check_against_reference(*run_both("add_layernorm", x, r, b, w, lb, 1e-12), dtype)
    check_against_reference(*run_both("bias_act_layernorm", x, b, w, lb, 1e-12, "gelu"), dtype)


@requires_cuda
def test_gpu_compile_no_graph_break(device):
    x, r, b, w, lb = _params(64, 768, torch.float16, device)
    from fastbert import kernels

    ops = kernels
    f = torch.compile(lambda *a: ops.add_layernorm(*a, 1e-12), fullgraph=True)
    torch.testing.assert_close(f(x, r, b, w, lb), ops.add_layernorm(x, r, b, w, lb, 1e-12))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_vectors(dtype, device):
    """bias / LayerNorm weight and bias given as strided views (e.g. slices of a packed buffer)."""
    x, r, _, _, _ = _params(7, 36, dtype, device)
    packed = torch.randn(3, 72, dtype=dtype, device=device)
    b, w, lb = packed[0, ::2], 1 + 0.1 * packed[1, 1::2], packed[2, ::2]
    check_against_reference(*run_both("add_layernorm", x, r, b, w, lb, 1e-12), dtype)
    check_against_reference(*run_both("bias_act_layernorm", x, b, w, lb, 1e-12, "gelu"), dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fp32_parameters_low_precision_activations(dtype, device):
    """fp32 bias / LayerNorm parameters with fp16/bf16 activations: output in x's dtype, error as
    small as the torch op's with all operands in x's dtype."""
    from fastbert import kernels

    x, r, b, w, lb = _params(7, 384, dtype, device)
    b32, w32, lb32 = b.float(), w.float(), lb.float()
    out = kernels.add_layernorm(x, r, b32, w32, lb32, 1e-12)
    torch_out = reference("add_layernorm")(x, r, b, w, lb, 1e-12)
    ref64 = reference("add_layernorm")(*(t.double() for t in (x, r, b, w, lb)), 1e-12)
    check_against_reference(out, torch_out, ref64, dtype)


def test_transposed_views_past_int32_columns_are_copied(monkeypatch):
    """The row kernels index a column as ``cols * stride`` in int32: a transposed view whose last column lies
    2**31 elements or more from the first (4 GiB in fp16) would wrap to a read out of bounds, so it is
    copied contiguous first. Meta tensors (no memory) and a launch that only records its arguments."""
    from fastbert import kernels
    from fastbert.kernels import _compat

    launched = []
    monkeypatch.setattr(_compat, "launch", lambda kernel, grid, **kw: launched.append(kw))
    m, n = 2**22, 1024
    x = torch.empty_strided((m, n), (1, m), dtype=torch.float16, device="meta")  # x.t() of a (n, m) tensor
    w = torch.ones(n, device="meta")
    kernels.add_layernorm(x, x, None, w, None, 1e-5)
    kernels.bias_act(x, None)
    kernels.glu(x, None)
    for kw in launched:
        assert kw["stride_xn"] * (n - 1) < 2**31, kw["stride_xn"]
        assert kw.get("stride_rn", 0) * (n - 1) < 2**31
    assert len(launched) == 3
    small = torch.empty_strided((4, n), (1, 4), dtype=torch.float16, device="meta")  # far from int32's limit
    launched.clear()
    kernels.bias_act(small, None)
    assert launched[0]["stride_xn"] == 4  # read in place, not copied
