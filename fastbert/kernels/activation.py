"""Bias + activation, the intermediate layer of a BERT block: ``y = act(x + bias)``.

In:  x (M, N) fp32/fp16/bf16, any strides (leading dims beyond 2 are flattened); bias (N,) or
     None (fp32/fp16/bf16, may differ from x's dtype).
Out: y, x's shape, contiguous, x's dtype. Math in fp32, one rounding on store.

Activations (Hugging Face ``hidden_act`` names): "gelu"/"gelu_python" (erf, BERT's default),
"gelu_new"/"gelu_pytorch_tanh"/"gelu_fast" (tanh approximation), "quick_gelu", "relu",
"silu"/"swish". Reference: ``fastbert.core.ops.KERNEL_REFERENCES.bias_act``.

``glu``: the gated MLP's activation (ModernBERT's GeGLU): x (M, 2N) = [input | gate] (the chunks of
``Wi``'s output), ``y = act(input + bias[:N]) * (gate + bias[N:])`` (M, N), x's dtype, math in fp32,
one rounding. Reference: ``fastbert.core.layers_ref.glu``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _compat
from ._compat import cast_out, erf, tanh
from ._op import kernel_op

# activation name -> ACT code of apply_activation (0 is "none", used by the LayerNorm kernels)
ACTIVATIONS: dict[str, int] = {
    "gelu": 1,
    "gelu_python": 1,
    "gelu_new": 2,
    "gelu_pytorch_tanh": 2,
    "gelu_fast": 2,
    "relu": 3,
    "quick_gelu": 4,
    "silu": 5,
    "swish": 5,
}
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_GRID_COLUMN_BLOCKS = 65535  # the elementwise grid's axis 1 (CUDA: at most 65,535 blocks on axes 1 and 2)


def activation_code(activation: str) -> int:
    """ACT code of a Hugging Face activation name; ValueError for names without a kernel."""
    code = ACTIVATIONS.get(activation) if isinstance(activation, str) else None
    if code is None:
        raise ValueError(
            f"unsupported activation {activation!r}; supported: {', '.join(sorted(ACTIVATIONS))}"
        )
    return code


@triton.jit
def apply_activation(x, ACT: tl.constexpr):
    """act(x) on an fp32 block; ACT codes as in ``ACTIVATIONS`` (0 = identity)."""
    if ACT == 1:  # erf GELU
        x = 0.5 * x * (1.0 + erf(x * 0.7071067811865476))
    elif ACT == 2:  # tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x = 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    elif ACT == 3:
        x = tl.where(x < 0.0, 0.0, x)  # NaN passes, as torch.relu (tl.maximum(x, 0) gave 0)
    elif ACT == 4:
        x = x * tl.sigmoid(1.702 * x)
    elif ACT == 5:
        x = x * tl.sigmoid(x)
    return x


@triton.jit(do_not_specialize=["M"])  # the row count changes with every batch: one binary for all
def _bias_act_kernel(
    X,  # input, shape (M, N), strides (stride_xm, stride_xn)
    B,  # bias, shape (N,); unused when HAS_BIAS is False
    Y,  # output, shape (M, N), contiguous
    stride_xm,
    stride_xn,
    M,
    N,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows < M)[:, None] & (cols < N)[None, :]
    x = tl.load(X + rows[:, None] * stride_xm + cols[None, :] * stride_xn, mask=mask, other=0.0)
    x = x.to(tl.float32)
    if HAS_BIAS:
        x += tl.load(B + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    y = apply_activation(x, ACT)
    tl.store(Y + rows[:, None] * N + cols[None, :], cast_out(y, Y.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["M"])
def _glu_kernel(
    X,  # input, shape (M, 2N): [input | gate], strides (stride_xm, stride_xn)
    B,  # bias, shape (2N,); unused when HAS_BIAS is False
    Y,  # output, shape (M, N), contiguous
    stride_xm,
    stride_xn,
    M,
    N,  # output columns (half of x's)
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    mask = (rows < M)[:, None] & col_ok[None, :]
    x_row = X + rows[:, None] * stride_xm
    a = tl.load(x_row + cols[None, :] * stride_xn, mask=mask, other=0.0).to(tl.float32)  # (BLOCK_M, BLOCK_N)
    g = tl.load(x_row + (cols + N)[None, :] * stride_xn, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        a += tl.load(B + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
        g += tl.load(B + N + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    y = apply_activation(a, ACT) * g
    tl.store(Y + rows[:, None] * N + cols[None, :], cast_out(y, Y.dtype.element_ty), mask=mask)


def contiguous_or_none(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t.contiguous()`` (a no-op when it already is), None stays None: (N,) vectors are read unit-stride."""
    return None if t is None else t.contiguous()


def int32_columns(t2: torch.Tensor) -> torch.Tensor:
    """``t2`` (M, N) as the row kernels (and attention, its key padding mask) read it: they index a column as
    ``cols * stride(1)`` in int32 (only the row offset is int64), which a column stride of a transposed view of >= 2**31 elements would
    overflow (a read out of bounds on a GPU); such a view is copied contiguous (column stride 1)."""
    if (t2.shape[1] - 1) * t2.stride(1) >= 2**31:
        return t2.contiguous()
    return t2


def elementwise_settings(n_cols: int, tile: int = 8192) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps) for a row-tiled elementwise kernel: ~``tile`` elements a program."""
    block_n = min(_compat.next_power_of_2(max(n_cols, 16)), 1024)
    block_m = max(1, min(64, tile // block_n))
    num_warps = 8 if block_m * block_n >= 8192 else 4
    return block_m, block_n, num_warps


def check_vector(name: str, t: torch.Tensor | None, n: int, x: torch.Tensor) -> None:
    """ValueError unless ``t`` is None or a (n,) fp32/fp16/bf16 tensor on x's device.

    Its dtype may differ from x's (e.g. fp32 LayerNorm parameters with fp16 activations): kernels
    read every operand in its own dtype into fp32.
    """
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a tensor or None, got {type(t).__name__}")
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} dtype must be float32, float16 or bfloat16, got {t.dtype}")
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device}, input on {x.device}")


def check_grid_columns(n_out: int) -> None:
    """ValueError unless ``n_out`` output columns fit the elementwise grid: its axis 1 carries the column
    blocks (of at most 1024), and CUDA launches at most 65,535 blocks on that axis."""
    blocks = _compat.cdiv(n_out, elementwise_settings(n_out)[1])
    if blocks > MAX_GRID_COLUMN_BLOCKS:
        raise ValueError(
            f"{n_out} output columns a row need {blocks} column blocks, over the grid's "
            f"{MAX_GRID_COLUMN_BLOCKS} (its axis 1); split the last dimension"
        )


def check_input(name: str, x: torch.Tensor) -> None:
    """ValueError unless x is a floating tensor (fp32/fp16/bf16) with at least one dimension."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} dtype must be float32, float16 or bfloat16, got {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")


def _check_bias_act(args: dict) -> None:
    x = args["x"]
    check_input("x", x)
    check_vector("bias", args["bias"], x.shape[-1], x)
    activation_code(args["activation"])
    check_grid_columns(x.shape[-1])


def _launch_elementwise(
    kernel, x: torch.Tensor, bias, activation: str, n_out: int, wrap: bool
) -> torch.Tensor:
    """Launch an elementwise kernel of this file (X, B, Y, strides, M, N, HAS_BIAS, ACT) over x's rows,
    ``n_out`` output columns a row; returns the output (x's leading shape, ``n_out``, x's dtype)."""
    y = torch.empty((*x.shape[:-1], n_out), dtype=x.dtype, device=x.device)
    if y.numel() == 0:  # before the reshape: (..., 0) cannot be reshaped to (-1, 0)
        return y
    x2 = int32_columns(x if x.dim() == 2 else x.reshape(-1, x.shape[-1]))
    m = x2.shape[0]
    bias = contiguous_or_none(bias)
    block_m, block_n, num_warps = elementwise_settings(n_out)
    _compat.launch(
        kernel,
        (_compat.cdiv(m, block_m), _compat.cdiv(n_out, block_n)),
        device=x.device,
        wrap=wrap,
        X=x2,
        B=bias if bias is not None else x2,
        Y=y,
        stride_xm=x2.stride(0),
        stride_xn=x2.stride(1),
        M=m,
        N=n_out,
        HAS_BIAS=bias is not None,
        ACT=activation_code(activation),
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        num_warps=num_warps,
    )
    return y


@kernel_op(check=_check_bias_act)
def bias_act(
    x: torch.Tensor, bias: torch.Tensor | None, activation: str = "gelu", *, wrap: bool = False
) -> torch.Tensor:
    """``act(x + bias)`` in one pass: host validation, then the launcher (``fastbert::bias_act`` under compile)."""
    return _launch_elementwise(_bias_act_kernel, x, bias, activation, x.shape[-1], wrap)


def _check_glu(args: dict) -> None:
    x = args["x"]
    check_input("x", x)
    if x.shape[-1] % 2:
        raise ValueError(f"glu needs an even last dimension ([input | gate]), got {x.shape[-1]}")
    check_vector("bias", args["bias"], x.shape[-1], x)
    activation_code(args["activation"])
    check_grid_columns(x.shape[-1] // 2)


@kernel_op(check=_check_glu)
def glu(
    x: torch.Tensor, bias: torch.Tensor | None, activation: str = "gelu", *, wrap: bool = False
) -> torch.Tensor:
    """``act(input) * gate`` with ``input, gate = (x + bias).chunk(2, -1)``: (..., 2N) -> (..., N) in one
    pass (GeGLU for ``activation="gelu"``); the launcher directly, ``fastbert::glu`` under compile."""
    return _launch_elementwise(_glu_kernel, x, bias, activation, x.shape[-1] // 2, wrap)
