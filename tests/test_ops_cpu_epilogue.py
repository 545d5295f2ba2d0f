"""The sdpa table's CPU epilogues in place (``OpTable.inplace_epilogue``): the activation and the residual
sum write into the GEMM's fresh output when no autograd records it; the same numbers as the eager table's
separate passes, and out of place whenever gradients are taken."""

import dataclasses

import pytest
import torch

from fastbert.core import ops

ACTS = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "tanh"]


def _spy_linear(monkeypatch, table_name: str):
    """The sdpa linear, recording each output it returns (to check what the epilogue wrote into)."""
    outs = []
    real = ops._sdpa_linear

    def linear(x, weight, bias=None):
        y = real(x, weight, bias)
        outs.append(y)
        return y

    table = dataclasses.replace(ops.get_ops(table_name), linear=linear)
    return table, outs


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dense_act_in_place_equals_the_eager_passes(monkeypatch, act, dtype):
    torch.manual_seed(0)
    x, w, b = (
        torch.randn(2, 37, 48, dtype=dtype),
        torch.randn(96, 48, dtype=dtype),
        torch.randn(96, dtype=dtype),
    )
    table, outs = _spy_linear(monkeypatch, "sdpa")
    assert table.inplace_epilogue and not ops.EAGER_OPS.inplace_epilogue
    with torch.no_grad():
        ours = table.dense_act(x, w, b, act)
        ref = ops.EAGER_OPS.dense_act(x, w, b, act)
        assert ours.data_ptr() == outs[-1].data_ptr()  # written into the GEMM's output
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)  # the same op, in place
        ln_w, ln_b = torch.rand(96, dtype=dtype) + 0.5, torch.randn(96, dtype=dtype)
        ours = table.dense_act(x, w, b, act, ln_w, ln_b, 1e-12)
        torch.testing.assert_close(
            ours, ops.EAGER_OPS.dense_act(x, w, b, act, ln_w, ln_b, 1e-12), rtol=0, atol=0
        )


@pytest.mark.parametrize("prenorm", [False, True])
def test_dense_add_norm_sums_in_place_and_leaves_the_residual(monkeypatch, prenorm):
    torch.manual_seed(1)
    x, w, b = torch.randn(37, 48), torch.randn(32, 48), torch.randn(32)
    residual = torch.randn(37, 32)
    kept = residual.clone()
    nw, nb = torch.rand(32) + 0.5, torch.randn(32)
    table, outs = _spy_linear(monkeypatch, "sdpa")
    with torch.no_grad():
        ours = table.dense_add_norm(x, w, b, residual, nw, nb, 1e-12, prenorm=prenorm)
        ref = ops.EAGER_OPS.dense_add_norm(x, w, b, residual, nw, nb, 1e-12, prenorm=prenorm)
    assert torch.equal(residual, kept)  # the sum went into the GEMM's output, not the residual
    if prenorm:
        assert ours[1].data_ptr() == outs[-1].data_ptr()
        torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=0)
        ours, ref = ours[0], ref[0]
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    # a residual of another shape (broadcast) or dtype is added out of place, as eager does
    with torch.no_grad():
        row = torch.randn(32)
        torch.testing.assert_close(
            table.dense_add_norm(x, w, b, row, nw, nb, 1e-12),
            ops.EAGER_OPS.dense_add_norm(x, w, b, row, nw, nb, 1e-12),
            rtol=0,
            atol=0,
        )


def test_with_autograd_the_epilogue_stays_out_of_place_and_gradients_flow(monkeypatch):
    torch.manual_seed(2)
    x = torch.randn(9, 16, requires_grad=True)
    w, b = torch.randn(16, 16, requires_grad=True), torch.randn(16, requires_grad=True)
    table, outs = _spy_linear(monkeypatch, "sdpa")
    y = table.dense_act(x, w, b, "gelu")
    assert y.data_ptr() != outs[-1].data_ptr()
    z = table.dense_add_norm(y, w, b, y, torch.ones(16), torch.zeros(16), 1e-12)
    z.square().sum().backward()
    grads = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    y2 = ops.EAGER_OPS.dense_act(x, w, b, "gelu")
    ops.EAGER_OPS.dense_add_norm(
        y2, w, b, y2, torch.ones(16), torch.zeros(16), 1e-12
    ).square().sum().backward()
    for g, t in zip(grads, (x, w, b)):
        torch.testing.assert_close(g, t.grad, rtol=0, atol=0)
    # a frozen GEMM (no grad of its own) whose residual needs one: out of place as well
    frozen = torch.randn(9, 16)
    res = torch.randn(9, 16, requires_grad=True)
    out = table.dense_add_norm(frozen, w.detach(), b.detach(), res, torch.ones(16), torch.zeros(16), 1e-12)
    out.sum().backward()
    assert res.grad is not None


def test_an_activation_without_an_in_place_twin_runs_as_eager(monkeypatch):
    table, outs = _spy_linear(monkeypatch, "sdpa")
    x, w, b = torch.randn(5, 8), torch.randn(8, 8), torch.randn(8)
    with torch.no_grad():
        for act in ("quick_gelu", "gelu_fast", "gelu_python"):
            ours = table.dense_act(x, w, b, act)
            assert ours.data_ptr() != outs[-1].data_ptr()
            torch.testing.assert_close(ours, ops.EAGER_OPS.dense_act(x, w, b, act), rtol=0, atol=0)
    assert set(ops._INPLACE_ACTIVATIONS) <= set(ops.ACTIVATIONS)
