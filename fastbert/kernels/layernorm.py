"""Fused LayerNorm / RMSNorm forward: where an encoder normalises after a dense layer.

- ``add_layernorm``: ``y = LN(x + bias + residual)``: the output/self-output sublayers, with the
  dense layer's bias folded in. ``bias`` and ``residual`` are optional.
- ``bias_act_layernorm``: ``y = LN(act(x + bias))``: the masked-LM head transform.
- ``add_rmsnorm``: ``y = RMSNorm(x + bias + residual)``.
- ``add_norm_residual``: ``(norm(h), h)``, h = x + bias + residual: pre-norm layers (ModernBERT), where
  the sum is the next residual; LayerNorm or RMSNorm.
Each LayerNorm may go without its bias (``ln_bias=None``: ModernBERT's norms).

In:  x (M, N) and residual (M, N), any strides (more dims are flattened); bias, ln_weight,
     ln_bias (N,); each fp32, fp16 or bf16 (operands may differ, e.g. fp32 LayerNorm parameters
     with fp16 activations; each is read in its own dtype into fp32).
Out: y (M, N) contiguous in x's dtype. Mean/variance (biased, as torch) in fp32, eps as given; an fp32
     output uses IEEE division and square root (``div_rn``/``sqrt_rn``), fp16/bf16 the fast ones.
Reference: ``fastbert.core.ops.KERNEL_REFERENCES.add_layernorm`` / ``.bias_act_layernorm``;
``fastbert.core.layers_ref.add_norm`` (without bias, RMSNorm).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _compat
from ._compat import cast_out, div_rn, sqrt_rn
from ._op import check_flag, check_float, kernel_op
from .activation import (
    activation_code,
    apply_activation,
    check_input,
    check_vector,
    contiguous_or_none,
    int32_columns,
)

MAX_HIDDEN = 16384  # one row must fit one block


@triton.jit(do_not_specialize=["M"])  # the row count changes with every batch: one binary for all
def _layernorm_fwd_kernel(
    X,  # input, shape (M, N), strides (stride_xm, stride_xn)
    R,  # residual, shape (M, N), strides (stride_rm, stride_rn); unused unless HAS_RES
    B,  # dense bias, shape (N,); unused unless HAS_BIAS
    W,  # LayerNorm weight, shape (N,)
    LB,  # LayerNorm bias, shape (N,); unused unless HAS_LN_BIAS
    Y,  # output, shape (M, N), contiguous
    S,  # the sum x + bias + residual, shape (M, N), contiguous; unused unless STORE_SUM
    stride_xm,
    stride_xn,
    stride_rm,
    stride_rn,
    M,
    N,
    eps,
    HAS_RES: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,  # activation code applied to x + bias before the residual (0 = none)
    HAS_LN_BIAS: tl.constexpr,  # False: LayerNorm without bias (ModernBERT)
    RMS: tl.constexpr,  # RMSNorm: no mean subtracted, no bias
    STORE_SUM: tl.constexpr,  # pre-norm layers: the sum is the next residual
    EXACT: tl.constexpr,  # fp32 output: IEEE division and square root
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < N
    mask = (rows < M)[:, None] & col_ok[None, :]
    h = tl.load(X + rows[:, None] * stride_xm + cols[None, :] * stride_xn, mask=mask, other=0.0)
    h = h.to(tl.float32)
    if HAS_BIAS:
        h += tl.load(B + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    if ACT != 0:
        h = apply_activation(h, ACT)
    if HAS_RES:
        r = tl.load(R + rows[:, None] * stride_rm + cols[None, :] * stride_rn, mask=mask, other=0.0)
        h += r.to(tl.float32)
    h = tl.where(col_ok[None, :], h, 0.0)  # padding columns out of the statistics
    if STORE_SUM:
        tl.store(S + rows[:, None] * N + cols[None, :], cast_out(h, S.dtype.element_ty), mask=mask)
    y = normalize(h, col_ok, N, eps, W, LB, cols, HAS_LN_BIAS, RMS, EXACT)
    tl.store(Y + rows[:, None] * N + cols[None, :], cast_out(y, Y.dtype.element_ty), mask=mask)


@triton.jit
def normalize(
    h, col_ok, N, eps, W, LB, cols, HAS_LN_BIAS: tl.constexpr, RMS: tl.constexpr, EXACT: tl.constexpr
):
    """LayerNorm (``RMS``: RMSNorm) of the fp32 rows ``h`` (padding columns zero), weight ``W`` and, when
    ``HAS_LN_BIAS``, bias ``LB`` read at ``cols``."""
    # eps is fp64 where Inductor launches the kernel: the statistics stay fp32, as torch's
    eps = tl.cast(eps, tl.float32)
    total = tl.sum(h, axis=1)
    n = tl.zeros_like(total) + N  # the precise helpers take operands of one shape
    if RMS:
        d = h
    else:
        if EXACT:
            mean = div_rn(total, n)
        else:
            mean = total / N
        # one correction of the mean by the mean of the deviations (the corrected two-pass algorithm): the
        # rounded sum leaves the mean of a constant row an ulp off its value, and with BERT's eps = 1e-12
        # that ulp times rstd ~ 1e6 was the output (0.9 off at H=384); corrected, such a row's deviations
        # are exactly 0, as torch's Welford statistics give
        d = tl.where(col_ok[None, :], h - mean[:, None], 0.0)
        if EXACT:
            mean += div_rn(tl.sum(d, axis=1), n)
        else:
            mean += tl.sum(d, axis=1) / N
        d = tl.where(col_ok[None, :], h - mean[:, None], 0.0)
    if EXACT:
        rstd = div_rn(tl.zeros_like(total) + 1.0, sqrt_rn(div_rn(tl.sum(d * d, axis=1), n) + eps))
    else:
        rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=1) / N + eps)
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    y = d * rstd[:, None] * w[None, :]
    if HAS_LN_BIAS:
        y += tl.load(LB + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    return y


def row_settings(n_cols: int, tile: int = 4096) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps) for a kernel that holds whole rows: ~``tile`` elements a program."""
    block_n = _compat.next_power_of_2(max(n_cols, 16))
    block_m = max(1, min(16, tile // block_n))
    size = block_m * block_n
    num_warps = 16 if size >= 16384 else 8 if size >= 4096 else 4
    return block_m, block_n, num_warps


def launch_rows(kernel, n_rows: int, n_cols: int, *, device: torch.device, wrap: bool, **kwargs) -> None:
    """Launch a whole-row kernel over ``n_rows`` rows of ``n_cols``: grid, BLOCK_M/BLOCK_N and warps
    from ``row_settings``; every other argument by keyword."""
    block_m, block_n, num_warps = row_settings(n_cols)
    _compat.launch(
        kernel,
        (_compat.cdiv(n_rows, block_m),),
        device=device,
        wrap=wrap,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        num_warps=num_warps,
        **kwargs,
    )


def _launch(x, residual, bias, ln_weight, ln_bias, eps, act, wrap: bool, rms: bool = False, sum_out=None):
    """The one launcher of ``_layernorm_fwd_kernel`` (every op of this file), arguments already validated."""
    n = x.shape[-1]
    x2 = int32_columns(x if x.dim() == 2 else x.reshape(-1, n))
    r2 = (
        None
        if residual is None
        else int32_columns(residual if residual.dim() == 2 else residual.reshape(-1, n))
    )
    m = x2.shape[0]
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if m == 0:
        return y
    bias, ln_weight, ln_bias = (
        contiguous_or_none(bias),
        contiguous_or_none(ln_weight),
        contiguous_or_none(ln_bias),
    )
    launch_rows(
        _layernorm_fwd_kernel,
        m,
        n,
        device=x.device,
        wrap=wrap,
        X=x2,
        R=r2 if r2 is not None else x2,
        B=bias if bias is not None else ln_weight,
        W=ln_weight,
        LB=ln_bias if ln_bias is not None else ln_weight,
        Y=y,
        S=sum_out if sum_out is not None else y,
        stride_xm=x2.stride(0),
        stride_xn=x2.stride(1),
        stride_rm=r2.stride(0) if r2 is not None else 0,
        stride_rn=r2.stride(1) if r2 is not None else 0,
        M=m,
        N=n,
        eps=eps,
        HAS_RES=r2 is not None,
        HAS_BIAS=bias is not None,
        ACT=act,
        HAS_LN_BIAS=ln_bias is not None,
        RMS=rms,
        STORE_SUM=sum_out is not None,
        EXACT=x.dtype == torch.float32,
    )
    return y


def _check(args: dict) -> None:
    x, residual = args["x"], args.get("residual")
    check_input("x", x)
    n = x.shape[-1]
    if n == 0 or n > MAX_HIDDEN:
        raise ValueError(f"hidden size must be in 1..{MAX_HIDDEN}, got {n}")
    if residual is not None:
        check_input("residual", residual)
        if residual.shape != x.shape:
            raise ValueError(f"residual shape {tuple(residual.shape)} != x shape {tuple(x.shape)}")
        if residual.device != x.device:
            raise ValueError(f"residual is on {residual.device}, x on {x.device}")
        if residual.dtype != x.dtype:  # the kernel would add it in x's dtype, where torch promotes
            raise ValueError(f"residual dtype {residual.dtype} != x dtype {x.dtype}: cast one to the other's")
    check_vector("bias", args["bias"], n, x)
    if args["ln_weight"] is None:
        raise ValueError("ln_weight is required (ln_bias may be None: a norm without bias)")
    check_vector("ln_weight", args["ln_weight"], n, x)
    check_vector("ln_bias", args.get("ln_bias"), n, x)
    args["eps"] = check_float("eps", args["eps"], minimum=0.0)
    if "activation" in args:
        activation_code(args["activation"])
    if "rms" in args:
        args["rms"] = check_flag("rms", args["rms"])
    if args.get("rms") and args.get("ln_bias") is not None:
        raise ValueError("RMSNorm has no bias: ln_bias must be None with rms=True")


@kernel_op(check=_check)
def add_layernorm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    bias: torch.Tensor | None,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor | None,
    eps: float,
    *,
    wrap: bool = False,
) -> torch.Tensor:
    """``LayerNorm(x + bias + residual)`` in one pass: host validation, then the launcher
    (``fastbert::add_layernorm`` under torch.compile). ``ln_bias=None``: LayerNorm without bias
    (``nn.LayerNorm(bias=False)``, ModernBERT)."""
    return _launch(x, residual, bias, ln_weight, ln_bias, eps, 0, wrap)


@kernel_op(check=_check)
def bias_act_layernorm(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor | None,
    eps: float,
    activation: str = "gelu",
    *,
    wrap: bool = False,
) -> torch.Tensor:
    """``LayerNorm(act(x + bias))`` in one pass: host validation, then the launcher
    (``fastbert::bias_act_layernorm`` under torch.compile)."""
    return _launch(x, None, bias, ln_weight, ln_bias, eps, activation_code(activation), wrap)


@kernel_op(check=_check)
def add_rmsnorm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    bias: torch.Tensor | None,
    ln_weight: torch.Tensor,
    eps: float,
    *,
    wrap: bool = False,
) -> torch.Tensor:
    """``RMSNorm(x + bias + residual) = h / sqrt(mean(h^2) + eps) * ln_weight`` in one pass (statistics
    in fp32, one rounding): host validation, then the launcher (``fastbert::add_rmsnorm`` under compile)."""
    return _launch(x, residual, bias, ln_weight, None, eps, 0, wrap, rms=True)


@kernel_op(check=_check)
def add_norm_residual(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    bias: torch.Tensor | None,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor | None,
    eps: float,
    rms: bool = False,
    *,
    wrap: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-norm placement in one pass: ``(norm(h), h)`` with ``h = x + bias + residual`` (h in x's dtype: the
    next residual; the norm taken on h in fp32). LayerNorm (``ln_bias`` may be None) or, with ``rms``,
    RMSNorm (``ln_bias`` must be None). ``fastbert::add_norm_residual`` under torch.compile."""
    h = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    y = _launch(x, residual, bias, ln_weight, ln_bias, eps, 0, wrap, rms=rms, sum_out=h)
    return y, h
