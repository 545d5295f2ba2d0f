"""Op table: each fused op of the BERT forward pass, as a torch reference and as a Triton launcher.

```python
from fastbert.ops import get_ops, triton_available
ops = get_ops("torch")   # or "triton": same callables, same signatures
y = ops.add_layernorm(x, residual, bias, ln_weight, ln_bias, eps)
```

The "torch" ops are plain PyTorch computing in the input dtype, as PyTorch/transformers would;
they are the reference every kernel is tested against. The "triton" ops validate on the host,
then call the custom ops ``torch.ops.fastbert.<name>`` (registered with ``torch.library.triton_op``
so ``torch.compile`` traces through them), with fp32 statistics and the input dtype out.

Importing this module imports neither triton nor ``fastbert.kernels``; ``get_ops("triton")`` does.

Ops (T tokens, H hidden, N features, heads, D head dim):
- ``embed_layernorm(input_ids, position_ids, token_type_ids, word_weight, position_weight,
  type_weight, ln_weight, ln_bias, eps)`` -> (T, H) in the weights' dtype; position_ids None =
  arange(T), token_type_ids None = type 0.
- ``add_layernorm(x, residual, bias, ln_weight, ln_bias, eps)`` -> LN(x + bias + residual).
- ``bias_act(x, bias, activation)`` -> act(x + bias).
- ``bias_act_layernorm(x, bias, ln_weight, ln_bias, eps, activation)`` -> LN(act(x + bias)).
- ``attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale,
  causal=False)``: packed (T, heads, D) tokens -> (Tq, heads, D).
- ``attention_padded(q, k, v, key_padding_mask, scale, causal=False)``: (B, L, heads, D),
  mask bool (B, Lk) True = attend, or None -> (B, Lq, heads, D).

Causal masks are bottom-right aligned (query i sees key j iff j <= i + Lk - Lq). A query with no
key to attend to (fully padded row, empty key sequence) gets zeros, never NaN, in both backends.
Extra keyword ``validate`` (embed_layernorm, attention_varlen): True checks index/cu_seqlens
values on the host (a device->host sync); False skips that once the caller has validated.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["OpTable", "get_ops", "triton_available", "ACTIVATION_NAMES", "torch_activation"]

ACTIVATION_NAMES = (
    "gelu",
    "gelu_python",
    "gelu_new",
    "gelu_pytorch_tanh",
    "gelu_fast",
    "quick_gelu",
    "relu",
    "silu",
    "swish",
)


def triton_available() -> bool:
    """True when triton is installed and kernels can run: a CUDA GPU, or ``TRITON_INTERPRET=1``.

    Looks triton up without importing it (importing costs about a second and is left to
    ``get_ops("triton")``).
    """
    try:
        if importlib.util.find_spec("triton") is None:
            return False
    except (ImportError, ValueError):
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") == "1"


# ---------------------------------------------------------------------------------------------
# torch references
# ---------------------------------------------------------------------------------------------


def torch_activation(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The activation as transformers computes it (in x's dtype); ValueError for unknown names."""
    if activation in ("gelu", "gelu_python"):
        return F.gelu(x)
    if activation in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return F.gelu(x, approximate="tanh")
    if activation == "relu":
        return F.relu(x)
    if activation == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    if activation in ("silu", "swish"):
        return F.silu(x)
    raise ValueError(
        f"unsupported activation {activation!r}; supported: {', '.join(sorted(ACTIVATION_NAMES))}"
    )


def _torch_embed_layernorm(
    input_ids,
    position_ids,
    token_type_ids,
    word_weight,
    position_weight,
    type_weight,
    ln_weight,
    ln_bias,
    eps,
    validate: bool = True,
):
    t = input_ids.shape[0]
    if position_ids is None:
        position_ids = torch.arange(t, device=input_ids.device)
    h = F.embedding(input_ids, word_weight)  # (T, H)
    if token_type_ids is None:
        h = h + type_weight[0]
    else:
        h = h + F.embedding(token_type_ids, type_weight)
    h = h + F.embedding(position_ids, position_weight)
    return F.layer_norm(h, (h.shape[-1],), ln_weight, ln_bias, eps)


def _torch_add_layernorm(x, residual, bias, ln_weight, ln_bias, eps):
    h = x if bias is None else x + bias
    if residual is not None:
        h = h + residual
    return F.layer_norm(h, (h.shape[-1],), ln_weight, ln_bias, eps)


def _torch_bias_act(x, bias, activation):
    return torch_activation(x if bias is None else x + bias, activation)


def _torch_bias_act_layernorm(x, bias, ln_weight, ln_bias, eps, activation):
    h = _torch_bias_act(x, bias, activation)
    return F.layer_norm(h, (h.shape[-1],), ln_weight, ln_bias, eps)


def _torch_attention_padded(q, k, v, key_padding_mask, scale, causal=False):
    b, lq, _, _ = q.shape
    lk = k.shape[1]
    allowed = torch.ones(b, 1, lq, lk, dtype=torch.bool, device=q.device)  # (B, 1, Lq, Lk)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask.to(torch.bool)[:, None, None, :]
    if causal:
        i = torch.arange(lq, device=q.device)[:, None]
        j = torch.arange(lk, device=q.device)[None, :]
        allowed = allowed & (j <= i + (lk - lq))
    if lk == 0:
        return q.new_zeros(q.shape[:3] + (v.shape[-1],))
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=allowed, scale=scale
    ).transpose(1, 2)  # (B, Lq, heads, D)
    row_ok = allowed.any(-1).transpose(1, 2)[..., None]  # (B, Lq, 1, 1)
    return torch.where(row_ok, out, out.new_zeros(()))


def _torch_attention_varlen(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    scale,
    causal=False,
    validate: bool = True,
):
    out = q.new_zeros(q.shape[:2] + (v.shape[-1],))
    cq = cu_seqlens_q.tolist()
    ck = cu_seqlens_k.tolist()
    for i in range(len(cq) - 1):
        if cq[i + 1] == cq[i]:
            continue
        qs, ks, vs = (
            t[None, a:e] for t, a, e in ((q, cq[i], cq[i + 1]), (k, ck[i], ck[i + 1]), (v, ck[i], ck[i + 1]))
        )
        out[cq[i] : cq[i + 1]] = _torch_attention_padded(qs, ks, vs, None, scale, causal)[0]
    return out


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpTable:
    """One backend's fused ops (see the module docstring for signatures)."""

    name: str
    embed_layernorm: Callable[..., torch.Tensor]
    add_layernorm: Callable[..., torch.Tensor]
    bias_act: Callable[..., torch.Tensor]
    bias_act_layernorm: Callable[..., torch.Tensor]
    attention_varlen: Callable[..., torch.Tensor]
    attention_padded: Callable[..., torch.Tensor]


TORCH_OPS = OpTable(
    name="torch",
    embed_layernorm=_torch_embed_layernorm,
    add_layernorm=_torch_add_layernorm,
    bias_act=_torch_bias_act,
    bias_act_layernorm=_torch_bias_act_layernorm,
    attention_varlen=_torch_attention_varlen,
    attention_padded=_torch_attention_padded,
)

_TRITON_OPS: OpTable | None = None


def _triton_ops() -> OpTable:
    global _TRITON_OPS
    if _TRITON_OPS is None:
        from fastbert import kernels  # imports triton, registers torch.ops.fastbert.*

        _TRITON_OPS = OpTable(
            name="triton",
            embed_layernorm=kernels.embed_layernorm,
            add_layernorm=kernels.add_layernorm,
            bias_act=kernels.bias_act,
            bias_act_layernorm=kernels.bias_act_layernorm,
            attention_varlen=kernels.attention_varlen,
            attention_padded=kernels.attention_padded,
        )
    return _TRITON_OPS


def get_ops(backend: str = "torch") -> OpTable:
    """The op table of ``backend``: "torch" (reference) or "triton" (fused kernels)."""
    if backend == "torch":
        return TORCH_OPS
    if backend == "triton":
        if not triton_available():
            raise RuntimeError(
                "the triton backend needs triton and a CUDA GPU (or TRITON_INTERPRET=1 for CPU tensors)"
            )
        return _triton_ops()
    raise ValueError(f"unknown ops backend {backend!r}; expected 'torch' or 'triton'")
