"""int8 linears on the CPU: weights int8 per output channel, activations uint8 per token, int32 sums.

One linear ``y = x @ W.T + b`` (x ``(M, K)`` fp32, W ``(N, K)``) becomes

    xs = x * inv_smooth                          # SmoothQuant migration, (K,) per input channel (or none);
                                                 # 0 at the few outlier channels, computed apart in fp32
    lo, hi = min(min_k xs[m], 0), max(max_k xs[m], 0)  # per token (row), dynamic, asymmetric
    s  = (hi - lo) / L;  z = round(-lo / s)      # L = 255, or 127 on AVX2 (see below)
    qx = clamp(round(xs / s) + z, 0, L)          # uint8 (M, K); 0.0 is exactly z
    acc = qx @ qW.T                              # int32, oneDNN's u8 x s8 GEMM (torch.ops.onednn)
    y  = s[m] * (acc - z[m] * sum_k qW[n, k]) * w_scale[n] + b    # fp32 (M, N)
    y += x[:, outliers] @ W[:, outliers].T       # the outlier channels (LLM.int8's decomposition), fp32

with ``qW = round(W * smooth / w_scale)`` per output channel, ``|qW| <= Q``. The per-token zero point
gives one-sided inputs (GELU's output: the output linear's input) twice the resolution of a symmetric
scale. With VNNI or AMX, ``L = 255`` and ``Q = 127``. On CPUs without them (AVX2: AMD Zen 3, Intel before
Cascade Lake) the u8 x s8 products are summed in pairs into int16 (``vpmaddubsw``), which saturates past
32,767: one side gives up a bit, chosen per linear by its calibration error (:data:`Int8Scheme`): 7-bit
activations and 8-bit weights (``L = 127, Q = 127``: 2 x 127 x 127 fits) or 8-bit activations and 7-bit
weights (``L = 255, Q = 63``); both sum exactly. The reference is the same formula in float64
(:func:`reference_int8_linear`).

The fp32 parameters are never changed: the int8 copy rides on the weight (``weight.fastbert_linear``) and
the sdpa table's linear calls it, so a quantized model saves as the fp32 checkpoint it was loaded from.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "Int8Linear",
    "Int8Scheme",
    "int8_schemes",
    "int8_available",
    "reference_int8_linear",
    "split_smoothing",
]


class Int8Scheme(NamedTuple):
    """How one int8 linear splits its bits: activation codes in ``[0, levels]``, weights ``|q| <= qmax``."""

    levels: int
    qmax: int

    def __str__(self) -> str:
        return f"activations per token in [0, {self.levels}], weights per channel |q|<={self.qmax}"


#: 8 bits on both sides: exact with VNNI/AMX (int32 sums of four products)
FULL = Int8Scheme(255, 127)
#: the two that sum exactly in AVX2's saturating int16 pairs (2 x 127 x 127, 2 x 255 x 63 <= 32,767)
AVX2_SCHEMES = (Int8Scheme(127, 127), Int8Scheme(255, 63))


def _onednn_qlinear():
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        return torch.ops.onednn.qlinear_prepack.default, torch.ops.onednn.qlinear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


_QLINEAR = _onednn_qlinear()


def int8_available() -> bool:
    """True when this torch has oneDNN's int8 linear (``torch.ops.onednn.qlinear_pointwise``)."""
    return _QLINEAR is not None


def int8_schemes() -> tuple[Int8Scheme, ...]:
    """The schemes whose products sum exactly on this CPU: 8 bits on both sides with VNNI/AMX, else the two
    AVX2 ones (``vpmaddubsw`` adds two u8 x s8 products in saturating int16)."""
    cpu = torch.cpu
    for probe in ("_is_vnni_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return (FULL,)
    return AVX2_SCHEMES


def quantize_weight(w: torch.Tensor, smooth: torch.Tensor | None, qmax: int = 127):
    """(N, K) fp32 weight -> (int8 (N, K), fp32 (N,) scales), per output channel. ``smooth`` (K,)
    multiplies the input channels first (0 drops a channel: an outlier computed apart)."""
    w = w.detach().float()
    if smooth is not None:
        w = w * smooth
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / qmax
    q = torch.round(w / scale[:, None]).clamp_(-qmax, qmax).to(torch.int8)
    return q, scale


def quantize_tokens(x: torch.Tensor, inv_smooth: torch.Tensor | None, levels: int):
    """(M, K) fp32 -> (uint8 (M, K) codes in [0, levels], fp32 (M, 1) scale s, fp32 (M, 1) zero point z):
    per token (row), asymmetric, ``x ~ s * (q - z)``."""
    if inv_smooth is not None:
        x = x * inv_smooth
    lo = x.amin(dim=1, keepdim=True).clamp_max(0.0)
    hi = x.amax(dim=1, keepdim=True).clamp_min(0.0)
    s = ((hi - lo) * (1.0 / levels)).clamp_min(1e-12)
    z = torch.round(-lo / s)
    q = (torch.round(x / s) + z).clamp_(0, levels)
    return q.to(torch.uint8), s, z


def _dequantize_(
    acc: torch.Tensor, s: torch.Tensor, z: torch.Tensor, w_sum: torch.Tensor, bias: torch.Tensor
):
    """s * (acc - z * w_sum) + bias, written into acc (oneDNN's fresh output, already times w_scale):
    one pass, no second buffer. ``w_sum`` (N,): each output channel's sum of int8 weights times its scale."""
    acc.sub_(z * w_sum).mul_(s).add_(bias)


class _Fused:
    """``fn`` compiled by Inductor (one C++ loop for its elementwise passes, dynamic shapes: compiled once),
    or ``fn`` itself where compiling fails (no C++ compiler): eager passes, the same numbers, slower."""

    def __init__(self, fn):
        self.fn = fn
        self.compiled = None
        self.failed = False

    def __call__(self, *args):
        if self.failed:
            return self.fn(*args)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.fn, dynamic=True)
            return self.compiled(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure: the eager passes
            self.failed = True
            warnings.warn(
                f"fastbert.quant: fusing the quantization passes failed ({type(e).__name__}): eager passes",
                stacklevel=2,
            )
            return self.fn(*args)


_QUANTIZE_TOKENS = _Fused(quantize_tokens)
_DEQUANTIZE = _Fused(_dequantize_)


def split_smoothing(weight, smooth, outliers) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(weight-side factors, input-side factors), (K,) each, with the outlier channels zeroed in both."""
    if smooth is None and outliers is None:
        return None, None
    k = weight.shape[1]
    s = torch.ones(k) if smooth is None else smooth.detach().float().clone()
    inv = 1.0 / s
    if outliers is not None:
        s[outliers] = 0.0
        inv[outliers] = 0.0
    return s, inv


def reference_int8_linear(
    x, weight, bias, smooth, scheme: Int8Scheme, outliers=None, compute_dtype=torch.float64
) -> torch.Tensor:
    """The int8 linear's formula with the products in ``compute_dtype`` (float64: the reference its oneDNN
    call must equal to rounding; float32: what calibration measures each candidate by)."""
    w_side, x_side = split_smoothing(weight, smooth, outliers)
    qw, w_scale = quantize_weight(weight, w_side, scheme.qmax)
    x2 = x.reshape(-1, x.shape[-1]).float()
    qx, s, z = quantize_tokens(x2, x_side, scheme.levels)
    c = compute_dtype
    y = (qx.to(c) - z.to(c)) @ qw.to(c).T * w_scale.to(c) * s.to(c)
    if outliers is not None:
        y = y + x2[:, outliers].to(c) @ weight.detach()[:, outliers].to(c).T
    if bias is not None:
        y = y + bias.to(c)
    return y.reshape(*x.shape[:-1], weight.shape[0])


class Int8Linear:
    """The int8 copy of one linear's weight, called as ``linear(x, weight, bias)`` by the sdpa table.

    Attributes:
        smooth: (K,) fp32 SmoothQuant factors (None: no migration), alpha: their migration strength.
        outliers: int64 (k,) input channels computed in fp32 apart (None: none).
        scheme: the activations' and the weights' ranges (:func:`int8_schemes`).
        error: relative error of this linear on the calibration tokens (``||y_int8 - y|| / ||y||``).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        smooth: torch.Tensor | None,
        alpha: float,
        scheme: Int8Scheme,
        error: float,
        outliers: torch.Tensor | None = None,
    ):
        if _QLINEAR is None:
            raise RuntimeError(
                "int8 linears need torch's oneDNN int8 ops (torch.ops.onednn.qlinear_pointwise)"
            )
        self.smooth = smooth
        self.outliers = outliers
        self.w_side, self.inv_smooth = split_smoothing(weight, smooth, outliers)
        k = weight.shape[1]
        self.inv_smooth_or_ones = self.inv_smooth if self.inv_smooth is not None else torch.ones(k)
        self.zero_bias = torch.zeros(weight.shape[0])
        self.alpha = alpha
        self.scheme = Int8Scheme(*scheme)
        self.error = error
        self._warned = False
        self._pack(weight)

    def _pack(self, weight: torch.Tensor) -> None:
        prepack, _ = _QLINEAR
        qw, self.w_scale = quantize_weight(weight, self.w_side, self.scheme.qmax)
        self.w_sum = qw.sum(dim=1, dtype=torch.int32).float() * self.w_scale  # (N,) for the zero points
        self.w_outliers = None if self.outliers is None else weight.detach()[:, self.outliers].T.contiguous()
        self.w_zero = torch.zeros(qw.shape[0], dtype=torch.long)
        self.packed = prepack(qw, None)
        self.version = weight._version
        self.out_features, self.in_features = qw.shape

    def __repr__(self) -> str:
        smooth = f"smoothquant alpha={self.alpha}" if self.smooth is not None else "no smoothing"
        k = 0 if self.outliers is None else len(self.outliers)
        return f"int8 ({self.scheme}, {smooth}, {k} outlier channels fp32, calib err {self.error:.1e})"

    def _fallback(self, why: str, x, weight, bias):
        if not self._warned:
            self._warned = True
            warnings.warn(f"int8 linears compute without int8 here: {why}", stacklevel=4)
        return F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))

    def __call__(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return F.linear(x, weight, bias)  # tracing: the fp32 weights (the int8 path is eager only)
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return self._fallback("gradients are recorded (run under torch.no_grad())", x, weight, bias)
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return self._fallback(
                f"the int8 path takes fp32 CPU inputs, got {x.dtype} on {x.device.type}", x, weight, bias
            )
        if weight._version != self.version:  # the fp32 weight was edited in place: quantize it again
            self._pack(weight)
        _, qlinear = _QLINEAR
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        qx, s, z = _QUANTIZE_TOKENS(x2, self.inv_smooth_or_ones, self.scheme.levels)  # (M, K) u8, (M, 1) x 2
        acc = qlinear(
            qx, 1.0, 0, self.packed, self.w_scale, self.w_zero, None, 1.0, 0, torch.float32, "none", [], ""
        )  # (M, N) fp32: the int32 sums times w_scale
        _DEQUANTIZE(acc, s, z, self.w_sum, bias if bias is not None else self.zero_bias)
        y = acc
        if self.outliers is not None:
            y.addmm_(x2.index_select(1, self.outliers), self.w_outliers)
        return y.view(*lead, self.out_features)
