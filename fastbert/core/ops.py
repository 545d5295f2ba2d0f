"""The op tables: the primitive ops of an encoder's forward, one table per ``attn_implementation``.

```python
from fastbert.core.ops import get_ops, triton_available
ops = get_ops("sdpa")   # or "eager", "triton": same callables, same signatures
y = ops.add_norm(x, residual, bias, weight, norm_bias, eps)
context, probs = ops.attention(q, k, v, spec, scale)
```

The model resolves its backend once per forward into one of these tables (:func:`resolve`: every
fallback is decided there) and calls nothing else that depends on the backend. ``eager`` and ``sdpa``
compute with plain PyTorch in the input dtype, as transformers does (they are the reference of every
kernel); they differ in attention only: ``eager`` is the explicit matmul + softmax on the padded batch
(and returns the probabilities), ``sdpa`` runs torch's attention on packed tokens. ``triton`` calls
fastbert's kernels (``fastbert.kernels``), with fp32 statistics and the input dtype out.

Importing this module imports neither triton nor ``fastbert.kernels``; ``get_ops("triton")`` does.

Primitives (T tokens, H hidden, N features, heads, D head dim; vectors may be None where marked):

- ``linear(x, weight, bias=None)`` -> x @ weight.T + bias (a weight carrying a load-time transform,
  ``weight.fastbert_linear``, is computed by it: the int8 / FP8 copies of :mod:`fastbert.quant`).
- ``add_norm(x, residual, bias, weight, norm_bias, eps, rms=False, prenorm=False)`` -> norm(h), h = x +
  bias + residual (residual/bias None: left out); LayerNorm (``norm_bias`` None: without bias) or RMSNorm
  (``rms=True``). ``prenorm=True`` returns ``(norm(h), h)``: h is the next residual of a pre-norm layer.
- ``bias_act(x, bias, activation, norm_weight=None, norm_bias=None, eps=1e-12)`` -> act(x + bias), then a
  LayerNorm when ``norm_weight`` is given (an MLM head's transform).
- ``glu(x, bias, activation)`` -> act(a) * g with ``a, g = (x + bias).chunk(2, -1)`` (GeGLU / SwiGLU).
- ``embed(input_ids, position_ids, token_type_ids, word_weight, position_weight, type_weight,
  norm_weight, norm_bias, eps, validate=True)`` -> (T, H): the tables given (position_weight /
  type_weight None: left out; position_ids None = arange(T), token_type_ids None = type 0), LayerNorm.
- ``attention(q, k, v, spec, scale, dropout_p=0.0, bias=None)`` -> ``(context, probs or None)``: the
  model's attention. ``spec`` (an :class:`AttentionSpec`, one per layer type) says whether q/k/v are
  packed (T, heads, D) or padded (B, L, heads, D), which keys each query sees (key mask, causal, sliding
  window), and the positional terms inside it (RoPE tables, MPNet's relative bias). ``bias`` is an
  additive (B, heads, Lq, Lk) score bias of the padded path (BERT's relative_key positions).

Composites, written once over the primitives (:class:`OpTable` methods): ``dense_add_norm``,
``dense_act``, ``dense_glu`` -- a GEMM and the op after it. Where the GEMM's bias goes is the table's
``epilogue_bias``: the torch tables add it inside the GEMM (addmm), the triton table in the fused kernel
that follows.

Causal masks are bottom-right aligned (query i sees key j iff j <= i + Lk - Lq); a window keeps key j
for query i iff |i - j| <= window // 2 (indices inside each sequence). A query with no key to attend to
(fully padded row, empty key sequence) gets zeros, never NaN, in every table.

:data:`KERNEL_REFERENCES` holds the torch reference of every kernel of ``fastbert.kernels`` under the
kernel's name and signature (``attention_varlen``, ``attention_padded``, ``add_layernorm`` ...): what the
kernel tests and benchmarks compare against. Their extra keyword ``validate`` (embed_layernorm,
attention_varlen): True checks index/cu_seqlens values on the host (a device->host sync); False skips
that once the caller has validated.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import attention_ref as _ref_attention
from . import cpu, prepack, workspace
from . import layers_ref as _ref_layers
from .attention_ref import (
    AttentionSpec,
    additive_mask,
    allowed_keys,
    eager_attention,
    sdpa_padded,
    torch_attention_padded,
)
from .layers_ref import ACTIVATIONS, activation
from .padding import Packing, pack, unpack
from .tracing import traced

__all__ = [
    "ACTIVATIONS",
    "AttentionSpec",
    "OpTable",
    "activation",
    "get_ops",
    "triton_available",
]


def triton_available() -> bool:
    """True when triton is installed and kernels can run: a CUDA GPU, or ``TRITON_INTERPRET=1``.

    Looks triton up without importing it (importing costs about a second and is left to
    ``get_ops("triton")``).
    """
    if not triton_installed():
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_installed() -> bool:
    """Whether triton can be imported, looked up without importing it."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# torch references (eager and sdpa tables)
# ---------------------------------------------------------------------------------------------


def _onednn_linear_op():
    """torch's oneDNN linear (``torch.ops.mkldnn._linear_pointwise``, what inductor uses for CPU linears),
    or None where this torch build has no oneDNN."""
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


def _onednn_preferred() -> bool:
    """Whether oneDNN's fp32 linears beat MKL's (``F.linear``) on this CPU: with AVX-512 they did; on an
    AVX2-only CPU MKL's were as fast or faster at every encoder shape measured, with about half oneDNN's
    rounding error (benchmarks/results/code-notes.md, "CPU, fp32 linears")."""
    try:
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch without the query
        return False


_ONEDNN_LINEAR = _onednn_linear_op() if _onednn_preferred() else None


@functools.cache
def _onednn_dtypes() -> frozenset[torch.dtype]:
    """The dtypes whose CPU linears go through oneDNN where it is preferred: fp32, and bf16 too where the
    CPU computes bf16 itself (avx512_bf16 / AMX): there oneDNN's bf16 linear ran 1.08x torch's bf16
    ``addmm`` at MiniLM's shapes (benchmarks/results/code-notes.md, "CPU, bf16 linears")."""
    return frozenset({torch.float32, torch.bfloat16} if cpu.cpu_has_native_bf16() else {torch.float32})


#: outputs smaller than this (elements) are allocated as usual: below glibc's mmap threshold they come from
#: its heap already, and the workspace's bookkeeping would cost more than it saves
_WORKSPACE_MIN_NUMEL = 1 << 18

#: below this many multiply-adds oneDNN's call costs more than it saves (benchmarks/results/code-notes.md)
_ONEDNN_MIN_MACS = 1 << 21


def _cpu_inference(x, weight, bias) -> bool:
    """A CPU call that torch.compile and ``torch.jit.trace`` do not trace, no autograd records and no
    autocast recasts: the sdpa table's linear may pick its GEMM (oneDNN) and where it writes (the workspace)
    without changing what anyone observes. Under ``torch.autocast("cpu")`` ``F.linear`` runs in the autocast
    dtype, which neither oneDNN's op nor ``addmm(out=)`` would (they are not autocast ops). A
    ``torch.jit.trace`` (run under ``torch.no_grad()``, as for inference) would record oneDNN's op, whose
    argument list TorchScript cannot take, and the prepacked copy as a constant: it records ``F.linear``."""
    return (
        x.device.type == "cpu"
        and not traced(x)
        and not torch.jit.is_tracing()
        and not torch.is_autocast_enabled("cpu")
        and not (
            torch.is_grad_enabled()
            and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
        )
    )


def _sdpa_linear(x, weight, bias=None):
    """``F.linear``; on a CPU with AVX-512 in fp32 (and in bf16 where the CPU computes bf16) without autograd
    or autocast, through oneDNN instead of the BLAS ``F.linear`` calls. Same math (fp32 accumulation), other blocking: with AVX-512 oneDNN's GEMMs ran about
    twice MKL's speed at BERT-base's shapes (figures in benchmarks/results/code-notes.md), on a prepacked copy
    of the weight that follows it (:mod:`fastbert.core.prepack`: the same numbers, faster GEMMs; a
    one-row call on the plain weight, where the packed path rounds otherwise). On AVX2-only CPUs MKL's are the faster ones
    (:func:`_onednn_preferred`): ``F.linear`` there. Small GEMMs stay on ``F.linear``. A weight that carries
    a load-time transform (``weight.fastbert_linear``, e.g. the int8 copy of
    :mod:`fastbert.quant`) is computed by it. Inside a forward (:func:`fastbert.core.workspace.scope`) the MKL
    GEMM of a large CPU output without autograd writes into a reused buffer (:mod:`fastbert.core.workspace`):
    the same numbers, its pages faulted in once per forward instead of once per layer."""
    hook = getattr(weight, "fastbert_linear", None)
    if hook is not None:
        return hook(x, weight, bias)
    if (
        x.numel() * weight.shape[0] >= _ONEDNN_MIN_MACS  # first: small calls leave at once
        and _ONEDNN_LINEAR is not None
        and _cpu_inference(x, weight, bias)  # before the dtypes: torch.compile traces no CPU probe
        and x.dtype in _onednn_dtypes()
        and weight.dtype == x.dtype
        and weight.is_contiguous()  # oneDNN's op reads a strided weight or bias as if it were contiguous
        and (bias is None or (bias.dtype == x.dtype and bias.is_contiguous()))
    ):
        # one row (a matrix-vector product) on the plain weight: oneDNN's packed path rounds it otherwise
        w = prepack.packed(weight) if x.numel() > x.shape[-1] else weight
        return _ONEDNN_LINEAR(x, w, bias, "none", [], "")
    if (
        x.numel() // x.shape[-1] * weight.shape[0] >= _WORKSPACE_MIN_NUMEL
        and x.dtype == weight.dtype
        and (bias is None or bias.dtype == x.dtype)
        and _cpu_inference(x, weight, bias)
    ):
        out = workspace.take((*x.shape[:-1], weight.shape[0]), x.dtype)  # None outside a forward's scope
        if out is not None:  # F.linear's own GEMM (addmm / mm), written into a reused buffer
            x2, out2 = x.reshape(-1, x.shape[-1]), out.view(-1, weight.shape[0])
            if bias is None:
                torch.mm(x2, weight.t(), out=out2)
            else:
                torch.addmm(bias, x2, weight.t(), out=out2)
            return out
    return F.linear(x, weight, bias)


def _torch_add_norm(x, residual, bias, weight, norm_bias, eps, rms=False, prenorm=False):
    """norm(x + bias + residual) in x's dtype (``fastbert.core.layers_ref``); ``prenorm``: (norm(h), h)."""
    if prenorm:
        return _ref_layers.add_norm_residual(x, residual, bias, weight, norm_bias, eps, rms)
    return _ref_layers.add_norm(x, residual, bias, weight, norm_bias, eps, rms)


def _torch_bias_act(x, bias, activation_name, norm_weight=None, norm_bias=None, eps=1e-12):
    """act(x + bias), then a LayerNorm when ``norm_weight`` is given, in x's dtype (as the kernels: parameters
    of another dtype are cast, not promoted to)."""
    like = lambda t: None if t is None else t.to(x.dtype)  # noqa: E731
    h = activation(activation_name)(x if bias is None else x + like(bias))
    if norm_weight is None:
        return h
    return F.layer_norm(h, (h.shape[-1],), like(norm_weight), like(norm_bias), eps)


def _torch_embed(
    input_ids,
    position_ids,
    token_type_ids,
    word_weight,
    position_weight,
    type_weight,
    norm_weight,
    norm_bias,
    eps,
    validate: bool = True,
):
    if type_weight is None and token_type_ids is not None:  # a family without token types (DistilBERT)
        raise ValueError("token_type_ids given without a type_weight (the model has no token-type table)")
    return _ref_layers.embed_norm(
        input_ids, position_ids, token_type_ids, word_weight, position_weight, type_weight,
        norm_weight, norm_bias, eps,
    )  # fmt: skip


def _varlen_attn_caller() -> Callable | None:
    """torch's packed flash attention (``torch.nn.attention.varlen.varlen_attn``) where this torch has it,
    adapted to (q, k, v, q_packing, k_packing, scale, causal); None otherwise."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters

    def call(q, k, v, qp: Packing, kp: Packing, scale, causal):
        kw = {}
        if "scale" in params:
            kw["scale"] = scale
        elif abs(scale - q.shape[-1] ** -0.5) > 1e-12:
            q = q * (scale * q.shape[-1] ** 0.5)  # its default scale is 1/sqrt(D)
        if causal:
            if "window_size" in params:
                kw["window_size"] = (-1, 0)
            else:
                kw["is_causal"] = True
        return varlen_attn(q, k, v, qp.cu_seqlens, kp.cu_seqlens, qp.max_seqlen, kp.max_seqlen, **kw)

    return call


@functools.cache
def _varlen_attn() -> Callable | None:
    return _varlen_attn_caller()


def _sdpa_padded_once(q, k, v, spec: AttentionSpec, scale, dropout_p=0.0):
    """Packed q/k/v padded with the packing's index, one masked SDPA call, packed back."""
    qp, kp = spec.q_packing, spec.k_packing
    if spec.causal:
        mask = additive_mask(allowed_keys(kp.mask, qp.seqlen, kp.seqlen, True, q.device), q.dtype)
    else:
        mask = kp.additive_mask(q.dtype)  # computed once per forward
    out = F.scaled_dot_product_attention(
        unpack(q, qp).transpose(1, 2),
        unpack(k, kp).transpose(1, 2),
        unpack(v, kp).transpose(1, 2),
        attn_mask=mask,
        dropout_p=dropout_p,
        scale=scale,
    )
    out = pack(out.transpose(1, 2), qp)
    if qp is not kp:  # cross-attention: a query whose sequence has no key gets zeros
        out = out * qp.rows_with_keys(kp)[:, None, None]
    return out


def _sdpa_packed(q, k, v, spec: AttentionSpec, scale, dropout_p=0.0):
    """Attention on packed tokens with torch's own kernels; q (Tq, h, d), k/v (Tk, h, d) -> (Tq, h, d).

    On CUDA, torch's varlen flash attention (fp16/bf16, where torch has it), else one masked SDPA call
    over the batch padded with the index and mask the packing computed once for the whole forward. On
    the CPU, sequence by sequence (the fastest layout there, measured: no work on padding).
    """
    qp, kp = spec.q_packing, spec.k_packing
    if qp.total == 0 or kp.total == 0:  # every row padded: nothing to attend to (no zero-size launch)
        return q.new_zeros(q.shape[0], q.shape[1], v.shape[-1])
    if q.is_cuda:
        varlen = _varlen_attn()
        flash_ok = q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] % 8 == 0 and q.shape[-1] <= 256
        if varlen is not None and flash_ok and dropout_p == 0.0:
            out = varlen(q, k, v, qp, kp, scale, spec.causal)
            return out if qp is kp else out * qp.rows_with_keys(kp)[:, None, None]
        return _sdpa_padded_once(q, k, v, spec, scale, dropout_p)
    # (1, h, T, d) views: SDPA's fused CPU kernel takes 4-D inputs (3-D ones run twice as slow)
    qt, kt, vt = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))
    parts = []
    qs = ks = 0
    for lq, lk in zip(qp.seqlens_host, kp.seqlens_host):
        if lq and lk:
            parts.append(
                F.scaled_dot_product_attention(
                    qt[:, :, qs : qs + lq],
                    kt[:, :, ks : ks + lk],
                    vt[:, :, ks : ks + lk],
                    dropout_p=dropout_p,
                    is_causal=spec.causal and lq > 1,
                    scale=scale,
                )[0].transpose(0, 1)  # (lq, h, d)
            )
        elif lq:  # a query with no key gets zeros
            parts.append(q.new_zeros(lq, q.shape[1], v.shape[2]))
        qs += lq
        ks += lk
    if not parts:
        return q.new_zeros(q.shape[0], q.shape[1], v.shape[2])
    return parts[0] if len(parts) == 1 else torch.cat(parts)  # (Tq, h, d), contiguous when cat


def _packed_window_sdpa(q, k, v, spec: AttentionSpec, scale):
    """Self-attention with a sliding window (and RoPE) on packed tokens, by torch's SDPA kernel: per sequence,
    chunks of ``attention_ref.CHUNK`` queries against the keys their window reaches, a boolean band mask
    (none where every key is in reach). The fused kernel instead of ``attention_ref``'s explicit matmul +
    softmax, which was the slower of the two on the CPU (benchmarks/results/code-notes.md). Same memory
    bound: never more than a chunk's scores."""
    qp = spec.q_packing
    if spec.rotary is not None:
        cos, sin = spec.rotary
        positions = _ref_attention.sequence_positions(qp.cu_seqlens, q.shape[0])
        q = _ref_attention.apply_rotary(q, positions, cos, sin)
        k = _ref_attention.apply_rotary(k, positions, cos, sin)
    half, chunk = spec.window // 2, _ref_attention.CHUNK
    qt, kt, vt = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, heads, T, D) views
    parts = []
    start = 0
    for n in qp.seqlens_host:
        end = start + n
        for a in range(start, end, chunk):
            e = min(end, a + chunk)
            lo, hi = max(start, a - half), min(end, e + half)
            mask = None
            # some key out of a query's reach: the farthest pairs are (first query, last key) and (last query,
            # first key); decided on the host (mask.all() on the device was a graph break under torch.compile)
            if max(hi - 1 - a, e - 1 - lo) > half:
                i = torch.arange(a, e, device=q.device)[:, None]
                j = torch.arange(lo, hi, device=q.device)[None, :]
                mask = (j - i).abs() <= half
            out = F.scaled_dot_product_attention(
                qt[:, :, a:e], kt[:, :, lo:hi], vt[:, :, lo:hi], attn_mask=mask, scale=scale
            )
            parts.append(out[0].transpose(0, 1))  # (e - a, heads, D)
        start = end
    if not parts:
        return q.new_zeros(q.shape[0], q.shape[1], v.shape[-1])
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _packed_positional(q, k, v, spec: AttentionSpec, scale, dropout_p):
    """The packed torch path with a window, RoPE or MPNet's bias (``attention_ref``: per sequence, banded,
    never an L x L tensor for the batch)."""
    assert dropout_p == 0.0, (
        "the packed window / RoPE / relative-bias path has no dropout: resolve() runs training padded"
    )
    qp, kp = spec.q_packing, spec.k_packing
    if spec.window and spec.rel_bias is None and not spec.causal and qp is kp and q.device.type == "cpu":
        return _packed_window_sdpa(q, k, v, spec, scale)
    cos, sin = spec.rotary if spec.rotary is not None else (None, None)
    bounds = qp.cu_seqlens_host, kp.cu_seqlens_host  # known on the host (None: a CUDA graph's packing)
    return _ref_attention.attention_varlen(
        q, k, v, qp.cu_seqlens, kp.cu_seqlens, qp.max_seqlen, kp.max_seqlen, scale, spec.causal,
        window=spec.window, rel_bias=spec.rel_bias, rotary_cos=cos, rotary_sin=sin, validate=False,
        host_cu_seqlens=None if None in bounds else bounds,
    )  # fmt: skip


def _sdpa_attention(q, k, v, spec: AttentionSpec, scale, dropout_p=0.0, bias=None):
    if spec.q_packing is not None:
        assert bias is None, "a padded score bias reached the packed path: the model packs only without one"
        if spec.positional:
            return _packed_positional(q, k, v, spec, scale, dropout_p), None
        return _sdpa_packed(q, k, v, spec, scale, dropout_p), None
    return sdpa_padded(q, k, v, spec, scale, dropout_p, bias), None


def _eager_attention_entry(q, k, v, spec: AttentionSpec, scale, dropout_p=0.0, bias=None):
    return eager_attention(q, k, v, spec, scale, dropout_p, bias)


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


def _overwritable(h: torch.Tensor, other: torch.Tensor | None = None) -> bool:
    """The op after a GEMM may write into ``h``, the GEMM's fresh output: a CPU tensor that no autograd
    records (an in-place op on it would break the backward), and ``other`` (added into it) of its shape
    and dtype. Why it matters there: a separate GELU output or residual sum is a fresh buffer that glibc hands
    back to the kernel when freed and faults in again at the next layer; in place, none of those page faults
    (benchmarks/results/code-notes.md, "CPU, writing into the GEMM's output")."""
    if h.device.type != "cpu":
        return False
    if torch.is_grad_enabled() and (h.requires_grad or (other is not None and other.requires_grad)):
        return False
    return other is None or (other.shape == h.shape and other.dtype == h.dtype)


def _gelu_tanh_(x):
    return torch.ops.aten.gelu_(x, approximate="tanh")


#: activation name -> the same function in place (the names of :data:`ACTIVATIONS` that have one)
_INPLACE_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": torch.ops.aten.gelu_,
    "gelu_new": _gelu_tanh_,
    "gelu_pytorch_tanh": _gelu_tanh_,
    "relu": torch.relu_,
    "silu": functools.partial(F.silu, inplace=True),
    "swish": functools.partial(F.silu, inplace=True),
    "tanh": torch.tanh_,
}


# ------------------------------------------------------------------------------------- linears by the table
def fusable_linear(m: nn.Module) -> bool:
    """The op table may read this linear's weight and bias and fuse what follows into its GEMM: an
    ``nn.Linear`` itself (or fastbert's own subclass, the int8 ``QuantizedLinear``, whose weight carries the
    int8 path the table calls) without hooks and without a ``forward`` of its own. A PEFT LoRA layer, a
    module replaced by hand or a hooked one is not: it runs as a module (its adapter, hook or code applies)."""
    t, d = type(m), m.__dict__
    if not (t is nn.Linear or (issubclass(t, nn.Linear) and t.__module__.startswith("fastbert."))):
        return False
    return "forward" not in d and not (
        d["_forward_hooks"] or d["_forward_pre_hooks"] or d["_backward_hooks"] or d.get("_backward_pre_hooks")
    )


@dataclass(frozen=True)
class OpTable:
    """One backend's primitive ops (see the module docstring for signatures) and the composites over them."""

    name: str
    linear: Callable[..., torch.Tensor]
    add_norm: Callable[..., Any]
    bias_act: Callable[..., torch.Tensor]
    glu: Callable[..., torch.Tensor]
    embed: Callable[..., torch.Tensor]
    attention: Callable[..., tuple]
    #: packed tokens are worth it (False for eager: the twin of transformers' padded path)
    packs: bool = True
    #: the padded attention bounds each row's keys with ``AttentionSpec.key_lengths``
    wants_key_lengths: bool = False
    #: a GEMM's bias goes into the fused op after it (triton) rather than into the GEMM (torch: addmm)
    epilogue_bias: bool = False
    #: on the CPU, the op after a GEMM writes into the GEMM's fresh output (residual add, activation) when
    #: no autograd records it: one pass and one buffer fewer (see :func:`_overwritable`)
    inplace_epilogue: bool = False
    #: the dtype ``AttentionSpec.rel_bias`` tables are given in (None: the model's; triton's kernel reads fp32)
    rel_bias_dtype: torch.dtype | None = None

    def dense_add_norm(
        self, x, weight, bias, residual, norm_weight, norm_bias, eps, rms: bool = False, prenorm: bool = False
    ):
        """norm(x @ weight.T + bias + residual) (``prenorm``: and the sum): a GEMM and ``add_norm``."""
        if self.epilogue_bias:
            return self.add_norm(
                self.linear(x, weight), residual, bias, norm_weight, norm_bias, eps, rms, prenorm
            )
        h = self.linear(x, weight, bias)
        if self.inplace_epilogue and residual is not None and _overwritable(h, residual):
            h, residual = h.add_(residual), None
        return self.add_norm(h, residual, None, norm_weight, norm_bias, eps, rms, prenorm)

    def dense_act(
        self, x, weight, bias, activation_name, norm_weight=None, norm_bias=None, eps: float = 1e-12
    ):
        """act(x @ weight.T + bias), then a LayerNorm when ``norm_weight`` is given: a GEMM and ``bias_act``."""
        if self.epilogue_bias:
            return self.bias_act(self.linear(x, weight), bias, activation_name, norm_weight, norm_bias, eps)
        h = self.linear(x, weight, bias)
        act_ = _INPLACE_ACTIVATIONS.get(activation_name) if isinstance(activation_name, str) else None
        if self.inplace_epilogue and act_ is not None and _overwritable(h):
            h = act_(h)
            return h if norm_weight is None else self.add_norm(h, None, None, norm_weight, norm_bias, eps)
        return self.bias_act(h, None, activation_name, norm_weight, norm_bias, eps)

    def dense_glu(self, x, weight, bias, activation_name):
        """act(a) * g of ``x @ weight.T + bias = [a | g]``: a GEMM and ``glu``."""
        if self.epilogue_bias:
            return self.glu(self.linear(x, weight), bias, activation_name)
        return self.glu(self.linear(x, weight, bias), None, activation_name)


def _eager_linear(x, weight, bias=None):
    """``F.linear``, as transformers computes it; a weight that carries a load-time transform
    (``weight.fastbert_linear``: the int8 / FP8 copy of :mod:`fastbert.quant`) is computed by it, as in the
    other tables: a quantized model stays quantized under ``attn_implementation="eager"`` and
    ``output_attentions=True``."""
    hook = getattr(weight, "fastbert_linear", None)
    return F.linear(x, weight, bias) if hook is None else hook(x, weight, bias)


EAGER_OPS = OpTable(
    name="eager",
    linear=_eager_linear,
    add_norm=_torch_add_norm,
    bias_act=_torch_bias_act,
    glu=_ref_layers.glu,
    embed=_torch_embed,
    attention=_eager_attention_entry,
    packs=False,
)

#: the same torch ops as eager, its linears through oneDNN on the CPU; attention by torch SDPA on packed tokens
SDPA_OPS = replace(
    EAGER_OPS, name="sdpa", linear=_sdpa_linear, attention=_sdpa_attention, packs=True, inplace_epilogue=True
)

#: the tables by ``attn_implementation`` (the triton one is added on first use: it imports triton)
TABLES: dict[str, OpTable] = {"eager": EAGER_OPS, "sdpa": SDPA_OPS}


def _bias_act_layernorm_reference(x, bias, ln_weight, ln_bias, eps, activation_name="gelu"):
    return _torch_bias_act(x, bias, activation_name, ln_weight, ln_bias, eps)


def _add_rmsnorm_reference(x, residual, bias, ln_weight, eps):
    return _ref_layers.add_norm(x, residual, bias, ln_weight, None, eps, rms=True)


#: the torch reference of every kernel of ``fastbert.kernels``, under the kernel's name and signature
KERNEL_REFERENCES = SimpleNamespace(
    add_layernorm=_ref_layers.add_norm,
    add_rmsnorm=_add_rmsnorm_reference,
    add_norm_residual=_ref_layers.add_norm_residual,
    bias_act=_torch_bias_act,
    bias_act_layernorm=_bias_act_layernorm_reference,
    glu=_ref_layers.glu,
    embed_layernorm=_torch_embed,
    attention_varlen=_ref_attention.attention_varlen,
    attention_padded=torch_attention_padded,
)


def _triton_table() -> OpTable:
    from fastbert import kernels  # imports triton, registers torch.ops.fastbert.*

    kernel_acts = kernels.ACTIVATIONS
    padded_kernel = kernels.attention_padded
    key_lengths_arg = "seqlens_k" in inspect.signature(padded_kernel).parameters

    # a weight that carries a load-time transform (``weight.fastbert_linear``: the FP8 / int8 copy of
    # fastbert.quant) computes its GEMM; the bias is left to the fused kernel after it (``epilogue_bias``)
    def linear(x, weight, bias=None):
        hook = getattr(weight, "fastbert_linear", None)
        return F.linear(x, weight, bias) if hook is None else hook(x, weight, bias)

    def add_norm(x, residual, bias, weight, norm_bias, eps, rms=False, prenorm=False):
        if prenorm:
            return kernels.add_norm_residual(x, residual, bias, weight, norm_bias, eps, rms)
        if rms:
            assert norm_bias is None, "RMSNorm has no bias"
            return kernels.add_rmsnorm(x, residual, bias, weight, eps)
        return kernels.add_layernorm(x, residual, bias, weight, norm_bias, eps)

    def bias_act(x, bias, activation_name, norm_weight=None, norm_bias=None, eps=1e-12):
        if activation_name not in kernel_acts:  # no kernel for it (tanh): torch
            return _torch_bias_act(x, bias, activation_name, norm_weight, norm_bias, eps)
        if norm_weight is None:
            return kernels.bias_act(x, bias, activation_name)
        return kernels.bias_act_layernorm(x, bias, norm_weight, norm_bias, eps, activation_name)

    def glu(x, bias, activation_name):
        if activation_name not in kernel_acts:
            return _ref_layers.glu(x, bias, activation_name)
        return kernels.glu(x, bias, activation_name)

    def attention(q, k, v, spec: AttentionSpec, scale, dropout_p=0.0, bias=None):
        assert dropout_p == 0.0, "dropout has no Triton kernel: resolve() sends training to the sdpa table"
        qp, kp = spec.q_packing, spec.k_packing
        if qp is not None:
            assert bias is None, "a padded score bias reached the packed path"
            extra = {}
            if spec.window:
                extra["window"] = spec.window
            if spec.rel_bias is not None:
                extra["rel_bias"] = spec.rel_bias  # MPNet's bias table
            if spec.rotary is not None:
                extra["rotary_cos"], extra["rotary_sin"] = spec.rotary
            out = kernels.attention_varlen(
                q, k, v, qp.cu_seqlens, kp.cu_seqlens, qp.max_seqlen, kp.max_seqlen, scale, spec.causal,
                validate=False, **extra,  # cu_seqlens built by padding.packing_from_mask
            )  # fmt: skip
            return out, None
        if bias is not None or spec.window or spec.rotary is not None:
            # padded (a CUDA-graph bucket) with a score bias, window or RoPE: the padded kernel has none
            return sdpa_padded(q, k, v, spec, scale, 0.0, bias), None
        if key_lengths_arg and spec.key_lengths is not None:
            return padded_kernel(q, k, v, spec.key_mask, scale, spec.causal, seqlens_k=spec.key_lengths), None
        return padded_kernel(q, k, v, spec.key_mask, scale, spec.causal), None

    return OpTable(
        name="triton",
        linear=linear,
        add_norm=add_norm,
        bias_act=bias_act,
        glu=glu,
        embed=kernels.embed_layernorm,
        attention=attention,
        wants_key_lengths=key_lengths_arg,
        epilogue_bias=True,
        rel_bias_dtype=torch.float32,
    )


#: the model dtypes the Triton kernels take (``kernels.activation.FLOAT_DTYPES``)
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: the largest head dim the Triton attention kernel takes (``kernels.attention.MAX_HEAD_DIM``; kept here so
#: that resolving imports no triton)
TRITON_MAX_HEAD_DIM = 128
#: the widest row the Triton norm and embedding kernels take (``kernels.layernorm.MAX_HIDDEN``)
TRITON_MAX_HIDDEN = 16384
#: the most sequences one Triton attention launch takes (``kernels.attention.MAX_GRID_BATCH``: the grid's batch axis)
TRITON_MAX_BATCH = 65535


def resolve(
    attn_implementation: str,
    *,
    output_attentions: bool = False,
    position_embedding_type: str = "absolute",
    dropout: bool = False,
    needs_grad: Callable[[], bool] = lambda: False,
    cache: bool = False,
    device: Callable[[], torch.device] | None = None,
    no_real_tokens: bool = False,
    head_dim: int = 64,
    hidden_size: int = 768,
    autocast: bool = False,
    batch: int = 1,
    dtype: torch.dtype | None = None,
) -> tuple[OpTable, str | None]:
    """The table one forward runs with, and why it is not ``attn_implementation``'s own (None when it is).

    The fallback rules: attention probabilities need the eager table; so does a batch whose attention
    mask has no real token at all (nothing to pack: every output is what transformers computes over the
    padding); the triton kernels have no relative positions, dropout, gradients, KV cache or
    ``torch.autocast`` (each kernel takes one dtype; under autocast transformers' residual stream and
    LayerNorms stay fp32 while its GEMMs run in half precision: the torch tables do the same), take a model
    ``dtype`` of float32, float16 or bfloat16 (not float64), cover head
    dims up to :data:`TRITON_MAX_HEAD_DIM`, rows up to :data:`TRITON_MAX_HIDDEN` and batches up to
    :data:`TRITON_MAX_BATCH` sequences, and need CUDA (or the interpreter).
    """
    name = attn_implementation
    if name != "eager" and no_real_tokens:
        return get_ops("eager"), (
            "attention_mask masks every token of the batch: there is nothing to pack, and this call runs "
            "eagerly (as transformers computes it)"
        )
    if name != "eager" and output_attentions:
        return get_ops("eager"), (
            f"output_attentions=True needs the attention probabilities, which the {name} backend "
            "never materialises: this call runs attention eagerly"
        )
    if name != "triton":
        return get_ops(name), None
    reason = None
    if position_embedding_type != "absolute":
        reason = f"position_embedding_type={position_embedding_type!r} has no Triton kernel"
    elif dropout:
        reason = "training mode (dropout) has no Triton kernel"
    elif needs_grad():
        reason = "gradients are required and the Triton kernels are forward-only (use torch.no_grad())"
    elif cache:
        reason = "incremental decoding with a KV cache"
    elif autocast:
        reason = "torch.autocast mixes dtypes (half-precision GEMMs, an fp32 residual stream) and the Triton kernels take one"
    elif dtype is not None and dtype not in TRITON_DTYPES:
        reason = f"the Triton kernels take float32, float16 and bfloat16, not the model's {dtype}"
    elif head_dim > TRITON_MAX_HEAD_DIM:
        reason = f"head dim {head_dim} is over the attention kernel's {TRITON_MAX_HEAD_DIM}"
    elif hidden_size > TRITON_MAX_HIDDEN:
        reason = (
            f"hidden size {hidden_size} is over the norm kernels' {TRITON_MAX_HIDDEN} (one row per block)"
        )
    elif batch > TRITON_MAX_BATCH:
        # no count in the reason: the model warns once per reason, not once per batch size
        reason = f"batches of more than {TRITON_MAX_BATCH} sequences are over the attention kernel's grid (its batch axis)"
    elif not triton_available():
        reason = "the Triton kernels need CUDA (or TRITON_INTERPRET=1 on CPU)"
    elif device is not None and os.environ.get("TRITON_INTERPRET", "0") != "1" and device().type != "cuda":
        reason = (
            f"the model is on {device().type}: the Triton kernels need a CUDA device (or TRITON_INTERPRET=1)"
        )
    if reason is not None:
        return get_ops("sdpa"), f"{reason}: falling back to the sdpa backend"
    return get_ops("triton"), None


def default_attn_implementation(device: torch.device) -> str:
    """The backend of a model whose config names none: ``triton`` on CUDA when its kernels are available,
    else ``sdpa``."""
    return "triton" if device.type == "cuda" and triton_available() else "sdpa"


def get_ops(attn_implementation: str = "sdpa") -> OpTable:
    """The op table of ``attn_implementation``: "eager", "sdpa" (the torch reference) or "triton"."""
    table = TABLES.get(attn_implementation)
    if table is not None:
        return table
    if attn_implementation == "triton":
        if not triton_available():
            raise RuntimeError(
                "the triton backend needs triton and a CUDA GPU (or TRITON_INTERPRET=1 for CPU tensors)"
            )
        table = TABLES["triton"] = _triton_table()
        return table
    raise ValueError(
        f"unknown attn_implementation {attn_implementation!r}; expected 'eager', 'sdpa' or 'triton'"
    )
