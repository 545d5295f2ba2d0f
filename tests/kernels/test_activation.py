"""fastbert.kernels.activation: bias + activation against its torch reference."""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl
from kernel_checks import DTYPES, check_against_reference, reference, requires_cuda, run_both

from fastbert.kernels._compat import cast_out


@triton.jit
def _store_bf16(X, Y, N: tl.constexpr):
    offs = tl.arange(0, N)
    tl.store(Y + offs, cast_out(tl.load(X + offs), tl.bfloat16))


ACTIVATIONS = ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu", "relu", "silu"]


# every activation on small shapes; the larger, non-power-of-two one (masking, several row blocks)
# with one erf and one tanh activation: the masking does not depend on the activation
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "activation, shape",
    [(a, s) for a in ACTIVATIONS for s in ((1, 36), (7, 384))]
    + [("gelu", (65, 1000)), ("gelu_new", (65, 1000))],
)
def test_bias_act(dtype, activation, shape, device):
    x = 3 * torch.randn(*shape, dtype=dtype, device=device)
    b = torch.randn(shape[1], dtype=dtype, device=device)
    check_against_reference(*run_both("bias_act", x, b, activation), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_act_no_bias_strided_3d(dtype, device):
    x = torch.randn(384, 7, dtype=dtype, device=device).t()
    check_against_reference(*run_both("bias_act", x, None, "gelu"), dtype)
    x3 = torch.randn(2, 9, 36, dtype=dtype, device=device)[:, ::2]  # (2, 5, 36), strided
    b = torch.randn(36, dtype=dtype, device=device)
    check_against_reference(*run_both("bias_act", x3, b, "gelu"), dtype)


@pytest.mark.parametrize("shape", [(2, 3, 0), (0, 3, 4), (3, 0)])
def test_empty_inputs(shape, device):
    """Zero rows or a zero-width last dimension: an empty output of the reference's shape (a (2, 3, 0) input
    failed in the launcher's reshape to (-1, 0))."""
    x = torch.randn(*shape, device=device)
    out, torch_out, ref64 = run_both("bias_act", x, None, "gelu")
    assert out.shape == torch_out.shape == shape
    out, torch_out, _ = run_both("glu", x, None, "gelu")
    assert out.shape == torch_out.shape == (*shape[:-1], shape[-1] // 2)


# the interpreter evaluates tl.sigmoid(-1e4) with numpy's exp(1e4) = inf (result still exact)
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_extreme_values_finite(device):
    from fastbert import kernels

    x = torch.tensor([[-1e4, -30.0, -1e-3, 0.0, 1e-3, 30.0, 1e4, 65504.0]], device=device).repeat(1, 2)
    for act in ACTIVATIONS:
        y = kernels.bias_act(x, None, act)
        ref = reference("bias_act")(x.double(), None, act)
        assert torch.isfinite(y).all(), act
        check_against_reference(y, reference("bias_act")(x, None, act), ref, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_passes_through(dtype, device):
    """A NaN in is a NaN out, as in torch, for every activation: relu as tl.maximum(x, 0) turned it into 0,
    hiding an upstream NaN."""
    from fastbert import kernels

    x = torch.randn(3, 36, device=device)
    x[0, 5] = x[2, 0] = float("nan")
    x = x.to(dtype)
    for act in ACTIVATIONS:
        y = kernels.bias_act(x, None, act)
        ref = reference("bias_act")(x, None, act)
        assert torch.isnan(ref).sum() == 2, act
        assert torch.equal(torch.isnan(y), torch.isnan(ref)), act


def test_cast_out_keeps_nans(device):
    """The kernels' bf16 store (``_compat.cast_out``; under the interpreter a round-half-to-even on the
    bits) keeps every NaN a NaN: the rounding add carried the NaN 0x7FFFFFFF into -0.0."""
    bits = torch.tensor(
        [0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00000, 0x7F800001, 0x3F800000, 0x7F7FFFFF, 0, 0x80000000]
    )
    x = bits.to(torch.int32).view(torch.float32).to(device)
    y = torch.empty(8, dtype=torch.bfloat16, device=device)
    _store_bf16[(1,)](x, y, N=8)
    assert torch.isnan(y[:4]).all(), y
    assert torch.equal(y[4:].float(), x[4:].to(torch.bfloat16).float())  # 1.0, max float -> inf, +-0


def test_bad_inputs(device):
    from fastbert import kernels

    ops = kernels
    x = torch.randn(3, 36, device=device)
    with pytest.raises(ValueError, match="unsupported activation 'swiglu'"):
        ops.bias_act(x, None, "swiglu")
    with pytest.raises(ValueError, match="unsupported activation"):
        reference("bias_act")(x, None, "swiglu")
    with pytest.raises(ValueError, match="bias must have shape"):
        ops.bias_act(x, torch.randn(35, device=device), "gelu")
    with pytest.raises(ValueError, match="bias dtype"):
        ops.bias_act(x, torch.randn(36, device=device).double(), "gelu")
    with pytest.raises(ValueError, match="dtype must be"):
        ops.bias_act(x.double(), None, "gelu")


@requires_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["gelu", "gelu_new", "relu"])
def test_gpu_realistic(dtype, activation, device):
    x = torch.randn(4096, 3072, dtype=dtype, device=device)
    b = torch.randn(3072, dtype=dtype, device=device)
    check_against_reference(*run_both("bias_act", x, b, activation), dtype)


@requires_cuda
def test_gpu_compile_no_graph_break(device):
    from fastbert import kernels

    ops = kernels
    x = torch.randn(64, 3072, dtype=torch.float16, device=device)
    b = torch.randn(3072, dtype=torch.float16, device=device)
    f = torch.compile(lambda x, b: ops.bias_act(x, b, "gelu"), fullgraph=True)
    torch.testing.assert_close(f(x, b), ops.bias_act(x, b, "gelu"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_bias(dtype, device):
    x = torch.randn(7, 36, dtype=dtype, device=device)
    b = torch.randn(72, dtype=dtype, device=device)[::2]
    check_against_reference(*run_both("bias_act", x, b, "gelu"), dtype)


@pytest.mark.parametrize("name", ["bias_act", "bias_act_layernorm"])
def test_fp32_parameters_with_fp16_activations(name, device):
    """Parameters of another dtype than x (fp32 bias and norm under fp16 activations) are cast to x's dtype
    by the kernel and its torch reference alike: the sdpa and triton tables return the same dtype."""
    x = torch.randn(9, 773, dtype=torch.float16, device=device) * 2
    b, w, lb = (torch.randn(773, device=device) for _ in range(3))
    args = (x, b, "gelu") if name == "bias_act" else (x, b, w, lb, 1e-12, "gelu")
    out, torch_out, ref64 = run_both(name, *args)
    assert out.dtype == torch_out.dtype == torch.float16
    check_against_reference(out, torch_out, ref64, torch.float16)


def test_columns_past_the_grid_axis_are_refused(monkeypatch):
    """bias_act and glu tile a row's output columns on the grid's axis 1 (blocks of 1024), and CUDA launches
    at most 65,535 blocks on it: a row of more than 65,535 * 1024 outputs failed in the driver's launch on a
    GPU. Such an input is refused by name before any launch (meta tensors: no memory; a recording launch)."""
    from fastbert import kernels
    from fastbert.kernels import _compat

    launched = []
    monkeypatch.setattr(_compat, "launch", lambda kernel, grid, **kw: launched.append(grid))
    most = 65535 * 1024
    kernels.bias_act(torch.empty(1, most, dtype=torch.float16, device="meta"), None)
    kernels.glu(torch.empty(1, 2 * most, dtype=torch.float16, device="meta"), None)
    assert [g[1] for g in launched] == [65535, 65535]
    launched.clear()
    with pytest.raises(ValueError, match="67107841 output columns a row need 65536 column blocks"):
        kernels.bias_act(torch.empty(1, most + 1, dtype=torch.float16, device="meta"), None)
    with pytest.raises(ValueError, match="67107841 output columns a row need 65536 column blocks"):
        kernels.glu(torch.empty(1, 2 * (most + 1), dtype=torch.float16, device="meta"), None)
    assert not launched
