"""The activations, the gated MLP activation and the norms of the newer encoders, in torch: references of
the Triton kernels ``fastbert.kernels.glu`` / ``add_layernorm(ln_bias=None)`` / ``add_rmsnorm``, and the
CPU paths the ``sdpa`` op table calls for them. Nothing here imports triton, transformers or the op tables
(``fastbert.core.ops`` imports this module).

- ``activation(name) -> callable``: transformers' ``hidden_act`` names (:data:`ACTIVATIONS`, the one
  table; a callable is returned as is), ValueError naming the supported ones otherwise.

Call signatures (what the op table uses; x (..., N) any float dtype, vectors (N,)):

- ``glu(x, bias, activation="gelu") -> (..., N // 2)``: ``act(input) * gate`` with
  ``input, gate = (x + bias).chunk(2, -1)`` (ModernBERT's ``ModernBertMLP``: ``Wi``'s output chunks,
  ``act = ACT2FN[hidden_activation]``); bias may be None.
- ``add_norm(x, residual, bias, weight, norm_bias, eps, rms=False) -> x's shape``: ``norm(x + bias +
  residual)``, LayerNorm (``norm_bias`` None: without bias, as ``nn.LayerNorm(bias=False)``) or, with
  ``rms=True``, RMSNorm ``h / sqrt(mean(h^2) + eps) * weight`` (statistics in fp32 for fp16/bf16 inputs,
  one rounding, as ``LlamaRMSNorm``).
- ``add_norm_residual(x, residual, bias, weight, norm_bias, eps, rms=False) -> (norm(h), h)``: the
  pre-norm placement, h = x + bias + residual in x's dtype (the next residual).
- ``embed_norm(input_ids, position_ids, token_type_ids, word_weight, position_weight, type_weight,
  ln_weight, ln_bias, eps) -> (T, H)``: ``fastbert.kernels.embed_layernorm``'s signature with any of
  ``position_weight`` / ``type_weight`` / ``ln_bias`` None (ModernBERT: word embeddings + LayerNorm
  without bias).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# activations: the one table (transformers' ``hidden_act`` names and formulas)
# ---------------------------------------------------------------------------------------------


def _gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def _gelu_fast(x):
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _gelu_python(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


#: activation name -> torch function. The kernels (``fastbert.kernels.ACTIVATIONS``) have every name
#: here but ``tanh``; the triton table computes names without a kernel with these functions.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_python": _gelu_python,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def activation(name, field: str = "hidden_act") -> Callable[[torch.Tensor], torch.Tensor]:
    """The torch function of an activation name (a callable is returned as is); ValueError otherwise, naming
    the config ``field`` it came from."""
    if callable(name):
        return name
    fn = ACTIVATIONS.get(name) if isinstance(name, str) else None
    if fn is None:
        raise ValueError(
            f"unsupported activation {name!r} ({field}); supported: {', '.join(sorted(ACTIVATIONS))}"
        )
    return fn


_named = activation  # glu's argument is called activation, as transformers'


def glu(x: torch.Tensor, bias: torch.Tensor | None, activation: str = "gelu") -> torch.Tensor:
    """``act(input) * gate`` with ``input, gate = (x + bias).chunk(2, -1)``, in x's dtype."""
    if x.shape[-1] % 2:
        raise ValueError(f"glu needs an even last dimension ([input | gate]), got {x.shape[-1]}")
    h = x if bias is None else x + bias.to(x.dtype)
    a, g = h.chunk(2, dim=-1)
    return _named(activation)(a) * g


def add_norm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    bias: torch.Tensor | None,
    weight: torch.Tensor,
    norm_bias: torch.Tensor | None,
    eps: float,
    rms: bool = False,
) -> torch.Tensor:
    """LayerNorm (optionally without bias) or RMSNorm of ``x + bias + residual``, in the sum's dtype (x's,
    or the residual's wider one under ``torch.autocast``, as transformers' ``LayerNorm(dense(x) + residual)``)."""
    h = _add(x, residual, bias)
    if not rms:
        nb = None if norm_bias is None else norm_bias.to(h.dtype)
        return F.layer_norm(h, (h.shape[-1],), weight.to(h.dtype), nb, eps)
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    hc = h.to(compute)
    y = hc * torch.rsqrt(hc.pow(2).mean(-1, keepdim=True) + eps) * weight.to(compute)
    return y.to(h.dtype)


def embed_norm(
    input_ids: torch.Tensor,
    position_ids: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    word_weight: torch.Tensor,
    position_weight: torch.Tensor | None,
    type_weight: torch.Tensor | None,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor | None,
    eps: float,
    validate: bool = True,
) -> torch.Tensor:
    """Gather and add the tables that are given (positions default to 0..T-1, types to 0), LayerNorm.
    ``validate`` is accepted for the kernel's signature; ids out of range raise in ``F.embedding``."""
    h = F.embedding(input_ids, word_weight)  # (T, H); tables added in the sdpa table's order (BERT)
    if type_weight is not None:
        h = h + (type_weight[0] if token_type_ids is None else F.embedding(token_type_ids, type_weight))
    if position_weight is not None:
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[0], device=input_ids.device)
        h = h + F.embedding(position_ids, position_weight)
    ln_bias = None if ln_bias is None else ln_bias.to(h.dtype)
    return F.layer_norm(h, (h.shape[-1],), ln_weight.to(h.dtype), ln_bias, eps)


def add_norm_residual(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    bias: torch.Tensor | None,
    weight: torch.Tensor,
    norm_bias: torch.Tensor | None,
    eps: float,
    rms: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(norm(h), h)`` with ``h = x + bias + residual`` in x's dtype (pre-norm layers)."""
    h = _add(x, residual, bias)
    return add_norm(h, None, None, weight, norm_bias, eps, rms), h


def _add(x: torch.Tensor, residual: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """``x + bias + residual``: the bias in x's dtype (a GEMM's, as under autocast); the residual by type
    promotion (one dtype without autocast; under it a half GEMM output plus the fp32 stream is fp32, as in
    transformers)."""
    h = x if bias is None else x + bias.to(x.dtype)
    return h if residual is None else h + residual
