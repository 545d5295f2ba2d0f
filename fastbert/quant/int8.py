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

The fp32 parameters are never changed and stay the truth: the int8 copy belongs to the linear's module
(``QuantizedLinear.qlinear``; the fused query/key/value projection's to its self-attention), the weight
carries a pointer to it (``weight.fastbert_linear``) that every op table's linear calls, and a quantized model
saves as the fp32 checkpoint it was loaded from. The copy follows its weight (:class:`WeightWatch`): it is
made again at the next call when the weight is another tensor, was edited in place, or (on the CPU) no
longer holds the values it was made from at a sample of positions; copies, pickles and ``torch.save`` of a
model leave it out and make it again at the first call.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.tracing import traced
from ..core.weight_watch import DTYPE_NAMES, WeightCopy
from .notes import Notes, note_compile

__all__ = [
    "Int8Linear",
    "Int8Scheme",
    "WeightWatch",
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


def weight_grid(w: torch.Tensor, smooth: torch.Tensor | None, qmax: int = 127):
    """(N, K) weight -> (fp32 (N, K) weight to quantize, fp32 (N,) scales): ``smooth`` (K,) multiplies the
    input channels first (0 drops a channel: an outlier computed apart); per output channel, the largest
    magnitude is ``qmax`` codes."""
    w = w.detach().float()
    if smooth is not None:
        w = w * smooth
    return w, w.abs().amax(dim=1).clamp_min(1e-12) / qmax


def quantize_weight(
    w: torch.Tensor, smooth: torch.Tensor | None, qmax: int = 127, codes: torch.Tensor | None = None
):
    """(N, K) fp32 weight -> (int8 (N, K), fp32 (N,) scales), per output channel (:func:`weight_grid`):
    each weight rounded to its nearest code, or ``codes`` (calibration's error-compensated rounding,
    :mod:`fastbert.quant.gptq`) on the same scales."""
    w, scale = weight_grid(w, smooth, qmax)
    if codes is not None:
        return codes, scale
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
        # tensors detached from their bases: the callers pass views (of the hidden states, the packed tokens,
        # the attention context) and Dynamo guards on a view's base, whose rank and strides vary: a variant
        # per layout, up to its recompile limit
        args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
        if self.failed:
            return self.fn(*args)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.fn, dynamic=True)
            try:
                return self.compiled(*args)
            except Exception as e:
                if type(e).__name__ != "RecompileError":
                    raise
                # the user set torch._dynamo.config.error_on_recompile for their own code: these passes'
                # variants (another view of the hidden states, another width) compile anyway, once each
                from torch._dynamo import config as dynamo_config

                with dynamo_config.patch(error_on_recompile=False):
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
    s = torch.ones(k, dtype=torch.float32) if smooth is None else smooth.detach().float().clone()
    inv = 1.0 / s
    if outliers is not None:
        s[outliers] = 0.0
        inv[outliers] = 0.0
    return s, inv


def reference_int8_linear(
    x, weight, bias, smooth, scheme: Int8Scheme, outliers=None, compute_dtype=torch.float64, codes=None
) -> torch.Tensor:
    """The int8 linear's formula with the products in ``compute_dtype`` (float64: the reference its oneDNN
    call must equal to rounding; float32: what calibration measures each candidate by); ``codes``: the
    weight's int8 codes where calibration chose them (:func:`quantize_weight`)."""
    w_side, x_side = split_smoothing(weight, smooth, outliers)
    qw, w_scale = quantize_weight(weight, w_side, scheme.qmax, codes)
    x2 = x.reshape(-1, x.shape[-1]).float()
    qx, s, z = quantize_tokens(x2, x_side, scheme.levels)
    c = compute_dtype
    y = (qx.to(c) - z.to(c)) @ qw.to(c).T * w_scale.to(c) * s.to(c)
    if outliers is not None:
        y = y + x2[:, outliers].to(c) @ weight.detach()[:, outliers].to(c).T
    if bias is not None:
        y = y + bias.to(c)
    return y.reshape(*x.shape[:-1], weight.shape[0])


def weight_digest(weight: torch.Tensor) -> bytes:
    """A digest of every value of ``weight`` as float32 (the values calibration's GPTQ codes were made from):
    computed when a copy is packed while it has codes, never at a call."""
    w = weight.detach().float().contiguous().cpu()
    return hashlib.blake2b(w.view(torch.int32).numpy().data, digest_size=16).digest()


class WeightWatch(WeightCopy):
    """A reduced copy of a weight (int8, FP8) that follows it (:class:`fastbert.core.weight_watch.WeightCopy`:
    made again at the next call when the weight is another tensor or was edited), with calibration's codes,
    the model's own linear where the copy does not run, and its pickling. On CUDA an edit through ``.data``
    needs :func:`fastbert.quant.refresh`; so does one that leaves every sampled element as it was.
    """

    #: calibration's error-compensated int8 codes (:mod:`fastbert.quant.gptq`) not packed yet (at the first
    #: pack, and after a copy or unpickling); once packed, the packed copy holds them (no second copy)
    codes: torch.Tensor | None = None
    #: a digest of every value of the weight the codes were made for (:func:`weight_digest`); None: nearest
    #: rounding
    _codes_digest: bytes | None = None

    def _take_codes(self, codes: torch.Tensor | None, weight: torch.Tensor) -> None:
        """Keep ``codes`` (None: none) as the rounding of ``weight``'s current values (before packing)."""
        self.codes = codes
        self._codes_digest = None if codes is None else weight_digest(weight)

    def _packed_codes(self) -> torch.Tensor | None:
        """The (N, K) int8 codes in the packed copy (None before the first pack)."""
        raise NotImplementedError

    def gptq_codes(self) -> torch.Tensor | None:
        """Calibration's GPTQ codes (N, K), wherever they are now (not packed yet, or in the packed copy);
        None with nearest rounding."""
        if self._codes_digest is None:
            return None
        return self.codes if self.codes is not None else self._packed_codes()

    def _codes_for(self, weight: torch.Tensor) -> torch.Tensor | None:
        """Calibration's codes while ``weight`` holds exactly the values they were made for (every value,
        :func:`weight_digest`: a repack follows an edit the 64-element sample may not see), for the next
        pack; else None, and they are dropped: a weight edited after calibration is rounded to nearest from
        then on (calibrating again means loading again with ``quantization=``)."""
        codes = self.gptq_codes()
        if codes is not None and codes.shape == weight.shape and weight_digest(weight) == self._codes_digest:
            self.codes = None  # the copy about to be packed holds them
            return codes.to(weight.device)
        self.codes = self._codes_digest = None
        return None

    def rounding(self) -> str:
        """How the weights became codes, for the repr."""
        return "GPTQ rounding" if self._codes_digest is not None else "nearest rounding"

    def repack(self, weight: torch.Tensor) -> None:
        """Make the copy again from ``weight``, as normal tensors even inside ``torch.inference_mode()`` (the
        copy outlives the call)."""
        with torch.inference_mode(False), torch.no_grad():
            self._pack(weight)

    def _pack(self, weight: torch.Tensor) -> None:
        raise NotImplementedError

    #: the quantization's name in the warnings ("int8", "fp8")
    method = ""
    notes: Notes

    def inactive(self, weight: torch.Tensor) -> str | None:
        """Why this copy does not run for ``weight`` (None when it does)."""
        raise NotImplementedError

    def running(self, weight: torch.Tensor) -> str:
        """What computes the linear for ``weight``, as its repr says: this copy, or the weight's dtype and
        why the copy does not run (``fp16 (int8 inactive: ...)`` after ``.half()``)."""
        why = self.inactive(weight)
        if why is None:
            return repr(self)
        return f"{DTYPE_NAMES.get(weight.dtype, str(weight.dtype))} ({self.method} inactive: {why})"

    def refusal(self, x: torch.Tensor, weight: torch.Tensor) -> tuple[str, str] | None:
        """(warning key, why) when this copy cannot take ``x`` and ``weight``; None when it can."""
        raise NotImplementedError

    def _fallback(self, key: str, why: str, x, weight, bias):
        self.notes.warn_once(key, f"{self.method} linears compute without {self.method} here: {why}")
        return F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))

    def model_linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        """The model's own linear where this copy does not run (while torch.compile traces: the copies run in
        eager mode only; with gradients; inputs it does not take), with the model's warning; None where it
        runs, after packing an edited or another weight again."""
        if traced(x):  # not torch's process-wide compile flag: another thread may be compiling
            note_compile(self.notes.key, self.method)  # said once, while Dynamo traces
            return F.linear(x, weight, bias)  # tracing: the model's weights
        # a trainable bias alone (frozen weights, BitFit) too: the reduced product takes it detached
        grads = x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        if torch.is_grad_enabled() and grads:
            return self._fallback(
                "grad", "gradients are recorded (run under torch.no_grad())", x, weight, bias
            )
        refusal = self.refusal(x, weight)
        if refusal is not None:
            return self._fallback(*refusal, x, weight, bias)
        if not self.current(weight):  # another or an edited weight: quantize it again
            with self._packing():  # once: threads that call at once wait for it, then use that copy
                if not self.current(weight):
                    self.repack(weight)
        return None

    def _packing(self) -> threading.Lock:
        """The lock one pack holds (made at the first, and again after a copy or unpickling: a copy's
        state leaves it out); ``dict.setdefault`` keeps one when threads make it at once."""
        lock = self.__dict__.get("_lock")
        return lock if lock is not None else self.__dict__.setdefault("_lock", threading.Lock())

    def _product(self, x2: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """(M, N) in x2's dtype, bias added: the reduced GEMM of (M, K) rows."""
        raise NotImplementedError

    def __call__(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``F.linear(x, weight, bias)`` through the reduced copy (:meth:`_product` on the rows, then the fp32
        outlier channels), or the model's own linear where the copy does not run (:meth:`model_linear`)."""
        y = self.model_linear(x, weight, bias)
        if y is not None:
            return y
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        y = self._product(x2, bias)  # (M, N) in x's dtype, bias added
        if self.outliers is not None:
            y.addmm_(x2.index_select(1, self.outliers), self.w_outliers.to(x.dtype))
        return y.view(*lead, self.out_features)

    def invalidate(self) -> None:
        """Make the copy again at the next call from the current weight (:func:`fastbert.quant.refresh`):
        with calibration's codes where it holds the values they were made for, else rounded to nearest."""
        self._key = None

    def __getstate__(self) -> dict:
        """``copy.deepcopy``, pickle and ``torch.save`` leave the packed copy out (oneDNN's prepacked weight
        cannot be serialised): the fp32 weight is the truth, and the first call makes the copy again (with
        GPTQ's codes, which go along unpacked)."""
        state = dict(self.__dict__)
        if self._codes_digest is not None and self.codes is None:  # GPTQ's codes leave with the copy
            packed = self._packed_codes()
            state["codes"] = None if packed is None else _CodesByValue(packed)
        for name in (*self._PACKED, "_lock"):
            state.pop(name, None)
        state["_key"] = state["_sample"] = state["_view"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        codes = state.get("codes")
        if isinstance(codes, _CodesByValue):  # copy.copy hands the state over as it is: the tensor inside
            state = {**state, "codes": codes.codes}
        self.__dict__.update(state)

    _PACKED: tuple[str, ...] = ()


def _codes_from_bytes(data: bytes, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.int8).reshape(shape)


class _CodesByValue:
    """int8 codes read back from a packed copy, pickled by value (an int8 CPU tensor once unpickled or
    deep-copied). A tensor made for a pickle lives only as long as the pickling, and ``torch.multiprocessing``
    (sentence-transformers' ``start_multi_process_pool``, a ``Queue``) shares a tensor's memory with the other
    process through a file descriptor, or a CUDA handle, that lives only as long as the tensor: the other
    process would read a closed descriptor, and a spawned one failed to start ('bad value(s) in
    fds_to_keep': the closed descriptors' numbers were taken again before the start)."""

    def __init__(self, codes: torch.Tensor):
        self.codes = codes

    def __reduce__(self):
        codes = self.codes.detach().to("cpu", torch.int8).contiguous()
        return _codes_from_bytes, (codes.numpy().tobytes(), tuple(codes.shape))


class Int8Linear(WeightWatch):
    """The int8 copy of one linear's weight, called as ``linear(x, weight, bias)`` by the op tables.

    Attributes:
        smooth: (K,) fp32 SmoothQuant factors (None: no migration), alpha: their migration strength.
        outliers: int64 (k,) input channels computed in fp32 apart (None: none).
        codes: int8 (N, K) codes of the weight chosen by calibration (:mod:`fastbert.quant.gptq`; None: each
            weight rounded to nearest); packed into the copy, which holds them from then on.
        scheme: the activations' and the weights' ranges (:func:`int8_schemes`).
        error: relative error of this linear on the calibration tokens (``||y_int8 - y|| / ||y||``).
        notes: the warnings said for the model (shared by its linears: each reason once per model).
    """

    method = "int8"
    _PACKED = ("packed", "w_scale", "w_sum", "w_outliers", "w_zero")

    def __init__(
        self,
        weight: torch.Tensor,
        smooth: torch.Tensor | None,
        alpha: float,
        scheme: Int8Scheme,
        error: float,
        outliers: torch.Tensor | None = None,
        notes: Notes | None = None,
        codes: torch.Tensor | None = None,
    ):
        if _QLINEAR is None:
            raise RuntimeError(
                "int8 linears need torch's oneDNN int8 ops (torch.ops.onednn.qlinear_pointwise)"
            )
        self.smooth = smooth
        self.outliers = outliers
        self.w_side, self.inv_smooth = split_smoothing(weight, smooth, outliers)
        k = weight.shape[1]
        # fp32 whatever torch's default dtype: oneDNN's int8 GEMM takes fp32 scales
        ones = torch.ones(k, dtype=torch.float32)
        self.inv_smooth_or_ones = self.inv_smooth if self.inv_smooth is not None else ones
        self.zero_bias = torch.zeros(weight.shape[0], dtype=torch.float32)
        self.alpha = alpha
        self.scheme = Int8Scheme(*scheme)
        self.error = error
        self.notes = notes if notes is not None else Notes()
        self.out_features, self.in_features = weight.shape
        self._take_codes(codes, weight)
        self.repack(weight)

    def _pack(self, weight: torch.Tensor) -> None:
        prepack, _ = _QLINEAR
        qw, self.w_scale = quantize_weight(weight, self.w_side, self.scheme.qmax, self._codes_for(weight))
        qw = qw.contiguous()  # oneDNN's prepack reads a strided int8 weight as if it were contiguous
        self.w_sum = qw.sum(dim=1, dtype=torch.int32).float() * self.w_scale  # (N,) for the zero points
        self.w_outliers = None if self.outliers is None else weight.detach()[:, self.outliers].T.contiguous()
        self.w_zero = torch.zeros(qw.shape[0], dtype=torch.long)
        self.packed = prepack(qw, None)
        self.out_features, self.in_features = qw.shape
        self._remember(weight)

    def _packed_codes(self) -> torch.Tensor | None:
        packed = self.__dict__.get("packed")
        # oneDNN keeps (K, N), exactly; contiguous: its prepack reads a strided int8 weight as if it were not
        return None if packed is None else packed.to_dense().t().contiguous()

    def __repr__(self) -> str:
        smooth = f"smoothquant alpha={self.alpha}" if self.smooth is not None else "no smoothing"
        k = 0 if self.outliers is None else len(self.outliers)
        return (
            f"int8 ({self.scheme}, {self.rounding()}, {smooth}, {k} outlier channels fp32, calib err "
            f"{self.error:.1e})"
        )

    def inactive(self, weight: torch.Tensor) -> str | None:
        """Why this copy does not run for ``weight`` (None when it does): it takes fp32 CPU weights."""
        if weight.device.type != "cpu" or weight.dtype != torch.float32:
            return f"the weights are {weight.dtype} on {weight.device.type}, int8 takes fp32 on the CPU"
        return None

    def refusal(self, x: torch.Tensor, weight: torch.Tensor) -> tuple[str, str] | None:
        if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
            return (
                f"{x.dtype}/{weight.dtype}/{x.device.type}",
                f"the int8 path takes fp32 CPU inputs and weights, got {x.dtype} inputs and {weight.dtype} "
                f"weights on {x.device.type}",
            )
        return None

    def _product(self, x2: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        _, qlinear = _QLINEAR
        qx, s, z = _QUANTIZE_TOKENS(x2, self.inv_smooth_or_ones, self.scheme.levels)  # (M, K) u8, (M, 1) x 2
        acc = qlinear(
            qx, 1.0, 0, self.packed, self.w_scale, self.w_zero, None, 1.0, 0, torch.float32, "none", [], ""
        )  # (M, N) fp32: the int32 sums times w_scale
        # a plain tensor for the bias, a Parameter or not: one compiled variant of the fused pass
        _DEQUANTIZE(acc, s, z, self.w_sum, bias.detach() if bias is not None else self.zero_bias)
        return acc
