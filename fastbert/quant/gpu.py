"""Reduced-precision linears for CUDA: FP8 (e4m3) through ``torch._scaled_mm`` on GPUs of compute capability
8.9 or newer (Ada, Hopper, Blackwell), and int8 through ``torch._int_mm``. Load-time transforms, as the CPU
int8 of :mod:`fastbert.quant.int8`: the model's parameters are not changed, the reduced copy belongs to the
linear's module (``QuantizedLinear.qlinear``, pointed to by ``weight.fastbert_linear``) or to the
self-attention (``qkv_linear``), the op table calls it, and it is made again when its weight changes
(:class:`fastbert.quant.int8.WeightWatch`; on CUDA an edit through ``.data`` needs
:func:`fastbert.quant.refresh`).

One linear ``y = x @ W.T + b``, x ``(M, K)`` in the model's dtype (fp16, bf16 or fp32), W ``(N, K)``::

    W' = W * smooth            xs = x * inv_smooth     SmoothQuant migration, (K,) per input channel (or
                                                       none); 0 at the outlier channels, computed apart
    FP8 e4m3 (largest value 448), weights per output channel, activations per token (dynamic):
    sw[n] = max_k |W'[n, k]| / 448          qW = e4m3(W' / sw)                       at load
    sx[m] = max_k |xs[m, k]| / 448          qx = e4m3(clamp(xs * 448 / max_k |xs|))  per call
    y = (qx @ qW.T) * sx[m] * sw[n] + b     torch._scaled_mm: fp32 sums, output in x's dtype
      (per-tensor mode: one scale for W and one for x, the same formula with scalars)
    int8, 8-bit weights symmetric, 8-bit activations with a zero point per token (tensor cores sum int8
    products exactly in int32):
    sw[n] = max_k |W'[n, k]| / 127          qW = round(W' / sw)                      at load
    lo, hi = min(min_k xs[m], 0), max(max_k xs[m], 0)                               per call
    sx[m] = (hi - lo) / 255                 zx[m] = round(-lo / sx) - 128
    qx = clamp(round(xs / sx) + zx, -128, 127)                 xs ~ sx * (qx - zx)
    y = (qx @ qW.T - zx[m] * sum_k qW[n, k]) * sx[m] * sw[n] + b     torch._int_mm: int32 sums; the rest
                                                                     in fp32
    (the CPU's codes minus 128: ``_int_mm`` multiplies signed int8; one-sided inputs such as GELU's output
    get all 256 codes, not the 128 of a symmetric scale)
    and for both: y += x[:, outliers] @ W[:, outliers].T (LLM.int8's decomposition), in x's dtype

What the calls accept (torch 2.11 to 2.13): ``_scaled_mm`` wants K and N multiples of 16, the weight
column-major (``qW.t()`` of the ``(N, K)`` row-major copy), fp32 scales of shape ``(M, 1)`` and ``(1, N)``
(or one element each), a bias in the output dtype and none with an fp32 output; a build that refuses the
output dtype with per-row scales (CUTLASS' row-wise kernel takes bf16 only in older releases) gets a bf16
output cast to x's dtype, decided on the first call (with a bias and without apart: the row-wise kernel takes
an fp16 output but no fp16 bias) and shown in the repr. ``_int_mm`` wants M > 16 on
CUDA (fewer rows are padded with zero rows), K and N multiples of 8. A linear whose K or N does not fit
keeps the model's dtype, with the reason in the report. torch 2.13 also runs both calls on the CPU, which
is how the call path is tested without a GPU.

The references (:func:`reference_fp8_linear`, :func:`reference_int8_mm_linear`) are the same formulas
with the products in float64 (or ``compute_dtype``): the quantizers are shared, the GEMM is emulated.
"""

from __future__ import annotations

import functools

import torch

from .int8 import WeightWatch, _Fused, quantize_tokens, quantize_weight, split_smoothing
from .notes import Notes

__all__ = [
    "FP8_MAX",
    "Fp8Linear",
    "cpu_implements",
    "IntMMLinear",
    "fp8_refusal",
    "int_mm_refusal",
    "quantize_tokens_fp8",
    "quantize_tokens_int8",
    "quantize_weight_fp8",
    "reference_fp8_linear",
    "reference_int8_mm_linear",
    "shape_refusal",
]

FP8 = getattr(torch, "float8_e4m3fn", None)
#: the largest finite e4m3 value
FP8_MAX = 448.0

#: (K, N) multiples each GEMM needs
_MULTIPLE = {"fp8": 16, "int8": 8}
_KERNEL = {"fp8": "torch._scaled_mm", "int8": "torch._int_mm"}


def _capability(device: torch.device) -> tuple[int, int, str]:
    """(major, minor, name) of a CUDA device."""
    return (*torch.cuda.get_device_capability(device), torch.cuda.get_device_name(device))


def fp8_refusal(device: torch.device | str) -> str | None:
    """Why FP8 linears cannot run on ``device`` (None when they can): they need ``torch._scaled_mm`` on a
    CUDA GPU of compute capability 8.9 or newer."""
    device = torch.device(device)
    need = "FP8 (e4m3) linears run torch._scaled_mm on a CUDA GPU of compute capability 8.9 or newer"
    if FP8 is None or not hasattr(torch, "_scaled_mm"):
        return f"{need}; this torch {torch.__version__} has no float8_e4m3fn/_scaled_mm"
    if device.type != "cuda":
        return (
            f"{need} (Ada sm_89, Hopper sm_90, Blackwell); this model is on the {device.type}, which has none"
        )
    if getattr(torch.version, "hip", None):
        return f"{need}; this is a ROCm build (its FP8 type is e4m3fnuz), not supported here"
    major, minor, name = _capability(device)
    if (major, minor) < (8, 9):
        return f"{need}; {name} has compute capability {major}.{minor} (sm_{major}{minor})"
    return None


def int_mm_refusal(device: torch.device | str) -> str | None:
    """Why int8 linears through ``torch._int_mm`` cannot run on ``device`` (None when they can)."""
    device = torch.device(device)
    if not hasattr(torch, "_int_mm"):
        return f"int8 linears on CUDA run torch._int_mm, which this torch {torch.__version__} does not have"
    if device.type != "cuda":
        return f"torch._int_mm int8 linears are the CUDA path; this model is on the {device.type}"
    return None


@functools.cache
def cpu_implements(method: str) -> bool:
    """Whether this torch runs the method's GEMM (``_scaled_mm`` on e4m3, ``_int_mm``) on CPU tensors
    (torch 2.13 does): the tests and the dry run check the whole call path there, without a GPU."""
    try:
        if method == "fp8":
            a = torch.ones(16, 16, dtype=torch.float32).to(FP8)
            torch._scaled_mm(
                a,
                a.t(),
                scale_a=torch.ones(16, 1, dtype=torch.float32),
                scale_b=torch.ones(1, 16, dtype=torch.float32),
                out_dtype=torch.float32,
            )
        else:
            torch._int_mm(torch.ones(4, 8, dtype=torch.int8), torch.ones(8, 8, dtype=torch.int8).t())
        return True
    except (AttributeError, RuntimeError, NotImplementedError, TypeError, ValueError):
        return False


def shape_refusal(method: str, weight: torch.Tensor) -> str | None:
    """Why one ``(N, K)`` weight cannot take the method's GEMM (None when it can)."""
    n, k = weight.shape
    m = _MULTIPLE[method]
    if k % m or n % m:
        return f"{_KERNEL[method]} needs K and N multiples of {m}, this linear has K={k}, N={n}"
    return None


def quantize_weight_fp8(w: torch.Tensor, smooth: torch.Tensor | None, per_row: bool = True):
    """(N, K) weight -> (e4m3 (N, K), fp32 scales (N,) per output channel, or (1,) per tensor). ``smooth``
    (K,) multiplies the input channels first (0 drops a channel: an outlier computed apart)."""
    w = w.detach().float()
    if smooth is not None:
        w = w * smooth.to(w.device)
    a = w.abs().amax(dim=1) if per_row else w.abs().amax().reshape(1)
    scale = a.clamp_min(1e-12) / FP8_MAX
    q = (w / scale[:, None] if per_row else w / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, scale


def quantize_tokens_fp8(x: torch.Tensor, inv_smooth: torch.Tensor | None, per_row: bool = True):
    """(M, K) -> (e4m3 (M, K), fp32 dequantisation scale (M, 1) per token, or (1, 1) per tensor)."""
    x = x.float()
    if inv_smooth is not None:
        x = x * inv_smooth
    a = x.abs().amax(dim=1, keepdim=True) if per_row else x.abs().amax().reshape(1, 1)
    a = a.clamp_min(1e-12)
    q = (x * (FP8_MAX / a)).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, a * (1.0 / FP8_MAX)


def quantize_tokens_int8(x: torch.Tensor, inv_smooth: torch.Tensor | None):
    """(M, K) -> (int8 (M, K) codes in [-128, 127], fp32 (M, 1) scale s, fp32 (M, 1) zero point z): per
    token, asymmetric, ``x ~ s * (q - z)``: :func:`fastbert.quant.int8.quantize_tokens`' 8-bit codes minus 128."""
    u, s, z = quantize_tokens(x.float(), inv_smooth, 255)
    return (u.to(torch.int16) - 128).to(torch.int8), s, z - 128


def _outlier_part(x2, weight, outliers, dtype):
    return x2[:, outliers].to(dtype) @ weight.detach()[:, outliers].to(dtype).T


def _sides(weight, smooth, outliers):
    """split_smoothing on the weight's device: (weight-side factors, input-side factors) or Nones."""
    w_side, x_side = split_smoothing(
        weight.detach().cpu() if weight.device.type != "cpu" else weight,
        None if smooth is None else smooth.detach().cpu(),
        None if outliers is None else outliers.cpu(),
    )
    move = lambda t: None if t is None else t.to(weight.device)  # noqa: E731
    return move(w_side), move(x_side)


def reference_fp8_linear(
    x, weight, bias=None, smooth=None, outliers=None, per_row: bool = True, compute_dtype=torch.float64
) -> torch.Tensor:
    """The FP8 linear's formula with the product of the e4m3 values in ``compute_dtype`` (float64: the
    reference its ``torch._scaled_mm`` call must equal to the output dtype's rounding)."""
    w_side, x_side = _sides(weight, smooth, outliers)
    qw, sw = quantize_weight_fp8(weight, w_side, per_row)
    x2 = x.reshape(-1, x.shape[-1])
    qx, sx = quantize_tokens_fp8(x2, x_side, per_row)
    y = (qx.to(compute_dtype) @ qw.to(compute_dtype).T) * sx.to(compute_dtype) * sw.to(compute_dtype)
    if outliers is not None:
        y = y + _outlier_part(x2, weight, outliers, compute_dtype)
    if bias is not None:
        y = y + bias.to(compute_dtype)
    return y.reshape(*x.shape[:-1], weight.shape[0])


def reference_int8_mm_linear(
    x, weight, bias=None, smooth=None, outliers=None, compute_dtype=torch.float64, codes=None
) -> torch.Tensor:
    """The ``torch._int_mm`` int8 linear's formula with the integer product in ``compute_dtype``
    (float64 holds every int32 sum exactly); ``codes``: the weight's codes where calibration chose them."""
    w_side, x_side = _sides(weight, smooth, outliers)
    qw, sw = quantize_weight(weight, w_side, 127, codes)
    x2 = x.reshape(-1, x.shape[-1])
    qx, sx, zx = quantize_tokens_int8(x2, x_side)
    c = compute_dtype
    y = ((qx.to(c) - zx.to(c)) @ qw.to(c).T) * sx.to(c) * sw.to(c)
    if outliers is not None:
        y = y + _outlier_part(x2, weight, outliers, compute_dtype)
    if bias is not None:
        y = y + bias.to(compute_dtype)
    return y.reshape(*x.shape[:-1], weight.shape[0])


def _rescale_int8(acc, x_scale, x_zero, w_sum, w_scale, bias):
    """int32 (M, N) sums -> x's dtype: (acc - zx[m] * sum_k qW[n, k]) * sx[m] * sw[n] + b, in fp32 before
    the one cast."""
    return ((acc.float() - x_zero * w_sum) * (x_scale * w_scale) + bias.float()).to(bias.dtype)


# fused on CUDA (one Triton kernel each by Inductor; compiled once, dynamic shapes); eager on the CPU,
# where these paths only check the formulas
_FUSED = {
    "fp8": _Fused(quantize_tokens_fp8),
    "int8": _Fused(quantize_tokens_int8),
    "rescale": _Fused(_rescale_int8),
}
_EAGER = {"fp8": quantize_tokens_fp8, "int8": quantize_tokens_int8, "rescale": _rescale_int8}

#: (device, dtype, per_row, with a bias) -> the output dtype _scaled_mm accepted (x's own, or bf16 then a
#: cast): CUTLASS' row-wise kernel (sm_89, and sm_90 before cuBLAS 12.9) takes an fp16 output without a bias
#: but no fp16 bias, so the two are decided apart
_FP8_OUT: dict[tuple, torch.dtype] = {}


class _ReducedLinear(WeightWatch):
    """The reduced copy of one linear's weight, called as ``linear(x, weight, bias)`` by the op table.

    Attributes:
        smooth: (K,) fp32 SmoothQuant factors (None: no migration), alpha: their migration strength.
        outliers: int64 (k,) input channels computed apart in x's dtype (None: none).
        error: relative error of this linear on the calibration tokens (``||y_q - y|| / ||y||``).
        notes: the warnings said for the model (shared by its linears: each reason once per model).
    """

    _PACKED = ("qw_t", "w_scale", "w_sum", "w_outliers", "zero_bias")

    def __init__(
        self,
        weight,
        smooth,
        alpha: float,
        error: float,
        outliers=None,
        notes: Notes | None = None,
        codes=None,
    ):
        why = shape_refusal(self.method, weight)
        if why is not None:
            raise ValueError(why)
        self.device = weight.device
        self.smooth, self.alpha, self.error = smooth, alpha, error
        self.outliers = None if outliers is None else outliers.to(weight.device)
        self.w_side, self.inv_smooth = _sides(weight, smooth, self.outliers)
        # always a tensor: one compiled variant of the fused quantizer (x * 1 is x)
        self.inv_or_ones = (
            self.inv_smooth
            if self.inv_smooth is not None
            else torch.ones(weight.shape[1], dtype=torch.float32, device=self.device)
        )
        self.out_features, self.in_features = weight.shape
        self.notes = notes if notes is not None else Notes()
        self._take_codes(codes, weight)
        self.repack(weight)

    def _pack(self, weight: torch.Tensor) -> None:
        raise NotImplementedError

    def inactive(self, weight: torch.Tensor) -> str | None:
        """Why this copy does not run for ``weight`` (None when it does): it takes fp32, fp16 or bf16
        weights on the device it was made on."""
        if weight.device != self.device or weight.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            return f"the weights are {weight.dtype} on {weight.device}, the {self.method} copy lives on {self.device}"
        return None

    def refusal(self, x: torch.Tensor, weight: torch.Tensor) -> tuple[str, str] | None:
        if x.device != self.device or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            return (
                f"{x.dtype}/{x.device}",
                f"the copy lives on {self.device}, got {x.dtype} inputs on {x.device}",
            )
        return None

    def _ops(self, x: torch.Tensor):
        return _FUSED if x.is_cuda else _EAGER

    def _describe(self) -> str:
        smooth = f"smoothquant alpha={self.alpha}" if self.smooth is not None else "no smoothing"
        k = 0 if self.outliers is None else len(self.outliers)
        return f"{smooth}, {k} outlier channels unquantized, calib err {self.error:.1e}"


class Fp8Linear(_ReducedLinear):
    """FP8 e4m3 linear through ``torch._scaled_mm`` (see the module docstring for the formula).

    ``per_row``: scales per output channel and per token (default), else one per tensor.
    ``fast_accum``: ``_scaled_mm``'s ``use_fast_accum`` (faster on Hopper, sums less exact); off by default.
    """

    method = "fp8"

    def __init__(
        self, weight, smooth, alpha, error, outliers=None, notes=None, *, per_row=True, fast_accum=False
    ):
        if FP8 is None or not hasattr(torch, "_scaled_mm"):
            raise RuntimeError(fp8_refusal(weight.device))
        self.per_row, self.fast_accum = per_row, fast_accum
        self.bf16_for: list[str] = []  # the output dtypes _scaled_mm refused here: bf16, then cast
        super().__init__(weight, smooth, alpha, error, outliers, notes)

    def _pack(self, weight: torch.Tensor) -> None:
        qw, sw = quantize_weight_fp8(weight, self.w_side, self.per_row)
        self.qw_t = qw.t()  # (K, N) column-major view of the (N, K) row-major copy, as _scaled_mm wants
        self.w_scale = sw.reshape(1, -1).contiguous()  # (1, N) or (1, 1) fp32
        self.w_outliers = None if self.outliers is None else weight.detach()[:, self.outliers].T.contiguous()
        self._remember(weight)

    def __repr__(self) -> str:
        scales = "weights per channel, activations per token" if self.per_row else "per-tensor scales"
        out = "".join(f", {d} output from bf16 (this build refuses {d})" for d in self.bf16_for)
        return f"fp8 e4m3 ({scales}{out}, {self._describe()})"

    def _call(self, qx, sx, bias, out_dtype):
        b = None if bias is None or out_dtype == torch.float32 else bias.to(out_dtype)
        y = torch._scaled_mm(
            qx, self.qw_t, scale_a=sx, scale_b=self.w_scale, bias=b, out_dtype=out_dtype,
            use_fast_accum=self.fast_accum,
        )  # fmt: skip
        return y, b is not None

    def _product(self, x2: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        qx, sx = self._ops(x2)["fp8"](x2, self.inv_or_ones, self.per_row)  # (M, K) e4m3, (M, 1) fp32
        key = (x2.device, x2.dtype, self.per_row, bias is not None)
        out_dtype = _FP8_OUT.get(key)
        if out_dtype is None:  # first call: does this build take x's dtype as the output?
            try:
                y, has_bias = self._call(qx, sx, bias, x2.dtype)
                _FP8_OUT[key] = x2.dtype
            except (RuntimeError, ValueError):
                if x2.dtype == torch.bfloat16:
                    raise
                _FP8_OUT[key] = torch.bfloat16
                y, has_bias = self._call(qx, sx, bias, torch.bfloat16)
        else:
            y, has_bias = self._call(qx, sx, bias, out_dtype)
        if y.dtype != x2.dtype:
            if str(x2.dtype) not in self.bf16_for:
                self.bf16_for.append(str(x2.dtype))
            y = y.to(x2.dtype)
        if bias is not None and not has_bias:
            y = y + bias.to(x2.dtype)
        return y


class IntMMLinear(_ReducedLinear):
    """int8 linear through ``torch._int_mm`` (int32 sums; see the module docstring for the formula)."""

    method = "int8"

    def __init__(self, weight, smooth, alpha, error, outliers=None, notes=None, codes=None):
        if not hasattr(torch, "_int_mm"):
            raise RuntimeError(int_mm_refusal(weight.device))
        super().__init__(weight, smooth, alpha, error, outliers, notes, codes)

    def _pack(self, weight: torch.Tensor) -> None:
        qw, sw = quantize_weight(weight, self.w_side, 127, self._codes_for(weight))
        qw = qw.contiguous()
        self.qw_t = qw.t()  # (K, N) column-major view of the (N, K) int8 copy
        self.w_scale = sw.reshape(1, -1).contiguous()  # (1, N) fp32
        self.w_sum = qw.sum(dim=1, dtype=torch.int32).float().reshape(1, -1)  # (1, N): for the zero points
        self.w_outliers = None if self.outliers is None else weight.detach()[:, self.outliers].T.contiguous()
        self.zero_bias = {}
        self._remember(weight)

    def _packed_codes(self) -> torch.Tensor | None:
        qw_t = self.__dict__.get("qw_t")
        return None if qw_t is None else qw_t.t().contiguous()

    def __repr__(self) -> str:
        return (
            f"int8 via torch._int_mm (weights per channel |q|<=127, {self.rounding()}, activations per token "
            f"with a zero point, {self._describe()})"
        )

    def _product(self, x2: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ops = self._ops(x2)
        qx, sx, zx = ops["int8"](x2, self.inv_or_ones)  # (M, K) int8, (M, 1) fp32 x 2
        m = qx.shape[0]
        if x2.is_cuda and m <= 16:  # cuBLASLt's int8 GEMM takes more than 16 rows: pad with zero rows
            qx = torch.cat([qx, qx.new_zeros(17 - m, qx.shape[1])])
        acc = torch._int_mm(qx, self.qw_t)[:m]  # (M, N) int32
        if bias is None:
            bias = self.zero_bias.get(x2.dtype)
            if bias is None:
                bias = self.zero_bias[x2.dtype] = torch.zeros(
                    self.out_features, dtype=x2.dtype, device=x2.device
                )
        return ops["rescale"](acc, sx, zx, self.w_sum, self.w_scale, bias.to(x2.dtype))


def fp8_output_dtype(
    device: torch.device, dtype: torch.dtype, per_row: bool = True, bias: bool = True
) -> torch.dtype | None:
    """The output dtype ``torch._scaled_mm`` computed for inputs of ``dtype`` on ``device``, with a bias or
    without (``dtype`` itself, or bf16 where this build refused it; None before the first call)."""
    return _FP8_OUT.get((torch.device(device), dtype, per_row, bias))


#: the reduced linear class and its reference, by method
LINEARS = {"fp8": Fp8Linear, "int8": IntMMLinear}


def emulate(method: str, rows, weight, smooth, outliers, codes=None) -> torch.Tensor:
    """The method's formula (no bias) on calibration rows, products in fp32 (exact for the e4m3 products,
    and for int8 sums below 2**24): what calibration measures each candidate by."""
    if method == "fp8":
        return reference_fp8_linear(rows, weight, None, smooth, outliers, compute_dtype=torch.float32)
    return reference_int8_mm_linear(
        rows, weight, None, smooth, outliers, compute_dtype=torch.float32, codes=codes
    )
