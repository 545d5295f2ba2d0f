"""Attention in torch: the spec of one attention, the padded references and the packed ones.

:class:`AttentionSpec` says which keys each query sees in one attention of a forward (the op tables take
it). ``eager_attention`` / ``sdpa_padded`` are transformers' eager and SDPA attention on padded
(B, L, heads, D) tensors, ``torch_attention_padded`` the reference of the Triton kernel
``fastbert.kernels.attention_padded``; ``attention_varlen`` is the torch reference of
``fastbert.kernels.attention_varlen``'s options on packed tokens (a sliding window, MPNet's relative
position bias, RoPE), and the packed CPU path the ``sdpa`` op table calls for encoders that need them
(MPNet, ModernBERT). Nothing here imports triton, transformers or the op tables (``fastbert.core.ops``
imports this module).

Call signatures (what the op table uses; q (Tq, heads, D), k/v (Tk, heads, D) packed tokens,
``cu_seqlens_*`` int32 (B+1,) as ``fastbert.core.padding`` builds them):

- ``attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale, causal=False,
  window=0, rel_bias=None, rotary_cos=None, rotary_sin=None, validate=True) -> (Tq, heads, D)``: the
  kernel's signature (plus ``chunk`` and ``host_cu_seqlens``: both ``cu_seqlens`` as Python ints where the
  caller knows them, read from the device otherwise).
  ``window`` > 0: query i sees key j iff ``|i - j| <= window // 2`` (ModernBERT's local layers, window =
  ``local_attention``); ``rel_bias``: (heads, 2 R + 1) from :func:`relative_bias_table`, the bias of the
  offset ``j - i`` clamped to [-R, R], added to the scaled scores (MPNet); ``rotary_cos`` / ``rotary_sin``:
  (P, D // 2) from :func:`rope_cos_sin`, q and k rotated at their positions in their own sequence
  (ModernBERT).
  i and j are indices inside each sequence: a pack gives what the padded batch gives, row by row.
  Each sequence is computed alone, in chunks of ``CHUNK`` queries against only the keys their window
  (and causality) can reach: memory grows linearly with the length for a window, and no (B, L, L) or
  (B, heads, L, L) tensor is ever built. Without window and bias the plain sequences go through SDPA.
- ``relative_bias_table(weight, num_buckets=32, max_distance=128, dtype=float32) -> (heads, 2 *
  max_distance + 1)``: MPNet's shared ``relative_attention_bias.weight`` (buckets, heads) read at every offset
  (built once per forward: every layer shares it). Offsets beyond +-max_distance fall in the last bucket
  of their side, so the clamp is exact.
- ``rope_inv_freq(theta, head_dim) -> (head_dim // 2,)`` float32, as transformers' default RoPE;
  ``rope_cos_sin(inv_freq, positions) -> (cos, sin)``, each float32 (positions, head_dim // 2): build once
  per forward and layer type (theta), with positions >= the longest sequence;
  ``sequence_positions(cu_seqlens, total) -> (T,)`` int64 index of each token in its sequence;
  ``apply_rotary(x, positions, cos, sin) -> x's shape and dtype`` (rotate-half, transformers' rounding).

Numerics: scores and p.v in the inputs' dtype, softmax in fp32 (float64 inputs: float64 throughout), as
transformers' eager attention: the "torch in dtype" side of the tolerance rule. A query with no key to
attend to gets zeros (as the kernel).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .padding import Packing

#: queries per chunk of the banded / biased path (memory: heads x CHUNK x (CHUNK + window) scores)
CHUNK = 256


# ---------------------------------------------------------------------------------------------
# the per-forward description of one attention
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionSpec:
    """Which keys each query sees in one attention of a forward (built once per forward by the model).

    Packed (``q_packing`` set): q (Tq, heads, D) and k/v (Tk, heads, D) hold real tokens only.
    Padded (``q_packing`` None): (B, L, heads, D), ``key_mask`` (B, Lk) bool True = attend, or None.
    ``key_lengths`` (padded): int32 (B,) real keys per row on the device, for kernels that bound
    their key loop with it (graph-safe: no host read).
    ``rel_bias`` (packed): MPNet's relative position bias, (heads, 2 R + 1) by the clamped offset ``j - i``
    inside each sequence (``attention_ref.relative_bias_table``), added to the scaled scores; the padded
    path takes the model's (B | 1, heads, Lq, Lk) ``bias`` argument instead.
    ``window`` > 0: a sliding window, query i sees key j iff ``|i - j| <= window // 2`` (ModernBERT's local
    layers, ``window = local_attention``); 0: every key.
    ``rotary``: RoPE's ``(cos, sin)`` float32 (P, D // 2) tables (``attention_ref.rope_cos_sin``, P >= the
    longest sequence): q and k rotated at their index in their own sequence (padded: 0..L-1).

    Self-attention of an encoder whose layers differ (global and local layers, two RoPE thetas) has one spec
    per layer type: ``LayerContext.spec_for(layer_type)``.
    """

    causal: bool = False
    q_packing: Packing | None = None
    k_packing: Packing | None = None
    key_mask: torch.Tensor | None = None
    key_lengths: torch.Tensor | None = None
    rel_bias: torch.Tensor | None = None
    window: int = 0
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def positional(self) -> bool:
        """The spec carries a term plain attention has not (window, RoPE, relative bias)."""
        return self.window > 0 or self.rotary is not None or self.rel_bias is not None


# ---------------------------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------------------------


def rope_inv_freq(theta: float, head_dim: int, device: torch.device | str | None = None) -> torch.Tensor:
    """RoPE inverse frequencies ``1 / theta ** (arange(0, D, 2) / D)``, float32 (D // 2,), as transformers."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    return 1.0 / (theta**exponent)


def rope_cos_sin(inv_freq: torch.Tensor, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) tables, float32 (positions, D // 2): row p is cos / sin of ``p * inv_freq``, the angle
    rounded to fp32 and its cos/sin taken in fp32, as transformers' rotary embedding computes them."""
    angle = torch.arange(positions, device=inv_freq.device).float()[:, None] * inv_freq.float()[None, :]
    return angle.cos().contiguous(), angle.sin().contiguous()


def sequence_positions(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """(total,) int64: each packed token's index inside its own sequence (restarts at every sequence)."""
    cu = cu_seqlens.to(torch.int64)
    lengths = cu[1:] - cu[:-1]
    starts = torch.repeat_interleave(cu[:-1], lengths, output_size=total)
    return torch.arange(total, device=cu.device) - starts


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(
    x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """RoPE on x (T, heads, D) at ``positions`` (T,) with :func:`rope_cos_sin`'s tables: ``x cos +
    rotate_half(x) sin``, cos/sin rounded to x's dtype, computed in fp32 (float64 for float64 x) and
    rounded once to x's dtype, as transformers' ``apply_rotary_pos_emb``."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos = torch.cat((cos[positions], cos[positions]), dim=-1).to(x.dtype).to(compute)[:, None, :]  # (T, 1, D)
    sin = torch.cat((sin[positions], sin[positions]), dim=-1).to(x.dtype).to(compute)[:, None, :]
    xc = x.to(compute)
    return (xc * cos + _rotate_half(xc) * sin).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# MPNet relative position bias
# ---------------------------------------------------------------------------------------------


def relative_position_bucket(
    relative_position: torch.Tensor, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """MPNet's (T5's bidirectional) bucket of ``key - query``: half the buckets each side, exact up to
    a quarter of them, logarithmic up to ``max_distance``, the last bucket beyond."""
    n = -relative_position
    half = num_buckets // 2
    ret = (n < 0).to(torch.long) * half
    n = n.abs()
    max_exact = half // 2
    is_small = n < max_exact
    large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    large = torch.clamp(large, max=half - 1)
    return ret + torch.where(is_small, n, large)


def relative_bias_table(
    weight: torch.Tensor, num_buckets: int = 32, max_distance: int = 128, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(heads, 2 * max_distance + 1) in ``dtype`` (float32: what the kernel reads): ``weight`` (buckets,
    heads) at offset ``j - i`` in column ``j - i + max_distance``. Beyond +-max_distance the bucket no
    longer changes (the log term reaches the last bucket there), so clamping offsets to the table is exact."""
    if weight.dim() != 2 or weight.shape[0] < num_buckets:
        raise ValueError(f"weight must be (num_buckets={num_buckets}, heads), got {tuple(weight.shape)}")
    offsets = torch.arange(-max_distance, max_distance + 1, device=weight.device)
    buckets = relative_position_bucket(offsets, num_buckets, max_distance)
    return weight.detach()[buckets].t().to(dtype).contiguous()


# ---------------------------------------------------------------------------------------------
# padded attention and the plain packed case: transformers' eager and torch SDPA
# ---------------------------------------------------------------------------------------------


def allowed_keys(
    key_mask, q_len: int, k_len: int, causal: bool, device, window: int = 0
) -> torch.Tensor | None:
    """(B or 1, 1, Lq, Lk) bool, True = attend; None when every key is allowed. Query i sits at key
    position i + Lk - Lq (bottom-right); ``window`` > 0 keeps keys with |i - j| <= window // 2."""
    allowed = None
    if key_mask is not None:
        allowed = key_mask[:, None, None, :].bool()
    if causal or window > 0:
        q_pos = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
        k_pos = torch.arange(k_len, device=device)[None, :]
        c = torch.ones((q_len, k_len), dtype=torch.bool, device=device)
        if causal:
            c = c & (k_pos <= q_pos)
        if window > 0:
            c = c & ((q_pos - k_pos).abs() <= window // 2)
        allowed = c[None, None] if allowed is None else (allowed & c[None, None])
    return allowed


def padded_rotary(q, k, spec: AttentionSpec):
    """q/k (B, L, heads, D) rotated at positions 0..Lk-1 (queries bottom-right) when the spec has RoPE."""
    if spec.rotary is None:
        return q, k
    cos, sin = spec.rotary
    k_pos = torch.arange(k.shape[1], device=k.device)
    q_pos = k_pos[k.shape[1] - q.shape[1] :]
    return apply_rotary(q, q_pos, cos, sin), apply_rotary(k, k_pos, cos, sin)


def additive_mask(allowed: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """transformers' additive mask: 0 where allowed, dtype's min elsewhere."""
    if allowed is None:
        return None
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


def torch_attention_varlen(
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
    host_cu_seqlens: tuple[Sequence[int], Sequence[int]] | None = None,
):
    out = q.new_zeros(q.shape[:2] + (v.shape[-1],))
    # the bounds as Python ints where the caller has them (no device read: under torch.compile a graph break
    # in every layer's loop, which made Dynamo run the whole layer loop eagerly)
    cq, ck = (
        host_cu_seqlens if host_cu_seqlens is not None else (cu_seqlens_q.tolist(), cu_seqlens_k.tolist())
    )
    for i in range(len(cq) - 1):
        if cq[i + 1] == cq[i]:
            continue
        qs, ks, vs = (
            t[None, a:e] for t, a, e in ((q, cq[i], cq[i + 1]), (k, ck[i], ck[i + 1]), (v, ck[i], ck[i + 1]))
        )
        out[cq[i] : cq[i + 1]] = torch_attention_padded(qs, ks, vs, None, scale, causal)[0]
    return out


def eager_attention(q, k, v, spec: AttentionSpec, scale, dropout_p=0.0, bias=None):
    """transformers' eager attention on padded (B, L, heads, D) tensors; returns context and probabilities."""
    q, k = padded_rotary(q, k, spec)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, L, D)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    allowed = allowed_keys(spec.key_mask, q.shape[2], k.shape[2], spec.causal, q.device, spec.window)
    mask = additive_mask(allowed, scores.dtype)
    if mask is not None:
        scores = scores + mask
    probs = F.softmax(scores, dim=-1)
    # transformers returns the weights that multiplied V: after dropout, in training
    dropped = F.dropout(probs, dropout_p, training=True) if dropout_p > 0 else probs
    return torch.matmul(dropped, v).transpose(1, 2), dropped


def sdpa_padded(q, k, v, spec: AttentionSpec, scale, dropout_p=0.0, bias=None):
    """torch SDPA on padded (B, L, heads, D) tensors, transformers' additive mask (+ the score bias)."""
    q, k = padded_rotary(q, k, spec)
    allowed = allowed_keys(spec.key_mask, q.shape[1], k.shape[1], spec.causal, q.device, spec.window)
    mask = additive_mask(allowed, q.dtype)
    if bias is not None:
        mask = bias if mask is None else mask + bias
    with _math_for_keyless_rows(allowed, q, k, v):
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            dropout_p=dropout_p,
            scale=scale,
        )
    return out.transpose(1, 2)


def _math_for_keyless_rows(allowed, q, k, v):
    """torch's math SDPA where a gradient flows through a query that may see no key (a padded query of a
    local window holding only padding, a fully padded row): the fused CPU kernel computes such a row's
    forward as transformers' eager softmax does (uniform over the masked keys) but its backward weights
    every key 1 instead of 1/L (gradients L times too large); the math backend is autograd's own softmax."""
    if (
        allowed is None
        or not torch.is_grad_enabled()
        or not (q.requires_grad or k.requires_grad or v.requires_grad)
        or bool(allowed.any(-1).all())
    ):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def torch_attention_padded(q, k, v, key_padding_mask, scale, causal=False, seqlens_k=None):
    """The kernel's signature over torch SDPA (the reference of ``attention_padded``): a query with no
    key to attend to gets zeros. ``seqlens_k`` (B,) bounds each row's keys and queries (as the kernel
    does: positions at or past a row's length are padding, their outputs zero)."""
    if seqlens_k is not None:
        if q.shape[1] != k.shape[1]:
            raise ValueError("seqlens_k bounds queries and keys alike: it needs Lq == Lk")
        real = torch.arange(k.shape[1], device=k.device)[None, :] < seqlens_k.to(k.device).long()[:, None]
        key_padding_mask = real if key_padding_mask is None else (key_padding_mask.bool() & real)
        out = torch_attention_padded(q, k, v, key_padding_mask, scale, causal)
        return out * real[:, :, None, None].to(out.dtype)
    if k.shape[1] == 0:
        return q.new_zeros(q.shape[:3] + (v.shape[-1],))
    out = sdpa_padded(q, k, v, AttentionSpec(causal=causal, key_mask=key_padding_mask), scale)
    allowed = allowed_keys(key_padding_mask, q.shape[1], k.shape[1], causal, q.device)
    if allowed is None:
        return out
    row_ok = allowed.expand(q.shape[0], 1, q.shape[1], k.shape[1]).any(-1).transpose(1, 2)[..., None]
    return torch.where(row_ok, out, out.new_zeros(()))  # (B, Lq, heads, D)


def _sequence_attention(q, k, v, scale, causal, half, rel_bias, chunk):
    """One sequence: q (Lq, heads, D), k/v (Lk, heads, D) -> (Lq, heads, D); chunks of queries against
    the keys their window / causality reaches. half: window // 2, or None (no window)."""
    lq, lk = q.shape[0], k.shape[0]
    out = q.new_zeros(q.shape[:2] + (v.shape[-1],))
    qh, kh, vh = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # (heads, L, D)
    r = None if rel_bias is None else (rel_bias.shape[1] - 1) // 2
    for a in range(0, lq, chunk):
        e = min(lq, a + chunk)
        lo, hi = 0, lk
        if half is not None:
            lo, hi = max(0, a - half), min(lk, e + half)
        if causal:
            hi = min(hi, e + lk - lq)
        if hi <= lo:
            continue  # no key for any query of the chunk: zeros
        i = torch.arange(a, e, device=q.device)[:, None]
        j = torch.arange(lo, hi, device=q.device)[None, :]
        scores = torch.matmul(qh[:, a:e], kh[:, lo:hi].transpose(1, 2)) * scale  # (heads, C, K)
        if rel_bias is not None:
            scores = scores + rel_bias[:, ((j - i).clamp(-r, r) + r)].to(scores.dtype)
        allowed = torch.ones(e - a, hi - lo, dtype=torch.bool, device=q.device)
        if half is not None:
            allowed = allowed & ((j - i).abs() <= half)
        if causal:
            allowed = allowed & (j <= i + lk - lq)
        scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(
            scores, dim=-1, dtype=torch.float32 if q.dtype != torch.float64 else torch.float64
        )
        probs = torch.nan_to_num(probs, nan=0.0).to(q.dtype)  # rows with nothing allowed: zeros
        out[a:e] = torch.matmul(probs, vh[:, lo:hi]).transpose(0, 1)
    return out


def attention_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float,
    causal: bool = False,
    window: int = 0,
    rel_bias: torch.Tensor | None = None,
    rotary_cos: torch.Tensor | None = None,
    rotary_sin: torch.Tensor | None = None,
    validate: bool = True,
    chunk: int = CHUNK,
    host_cu_seqlens: tuple[Sequence[int], Sequence[int]] | None = None,
) -> torch.Tensor:
    """Packed attention with the kernel's options (see the module docstring) -> (Tq, heads, D) in q's dtype."""
    if not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be a non-negative int (0: no window), got {window!r}")
    if rotary_cos is not None:
        q = apply_rotary(q, sequence_positions(cu_seqlens_q, q.shape[0]), rotary_cos, rotary_sin)
        k = apply_rotary(k, sequence_positions(cu_seqlens_k, k.shape[0]), rotary_cos, rotary_sin)
    if window == 0 and rel_bias is None:
        # the plain case: SDPA per sequence
        return torch_attention_varlen(
            q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale, causal,
            host_cu_seqlens=host_cu_seqlens,
        )  # fmt: skip
    if rel_bias is not None:
        rel_bias = rel_bias.to(device=q.device, dtype=q.dtype)
    half = window // 2 if window > 0 else None
    out = q.new_zeros(q.shape[:2] + (v.shape[-1],))
    # host loop over the sequences (CPU path)
    cq, ck = (
        host_cu_seqlens if host_cu_seqlens is not None else (cu_seqlens_q.tolist(), cu_seqlens_k.tolist())
    )
    for b in range(len(cq) - 1):
        if cq[b + 1] > cq[b]:
            out[cq[b] : cq[b + 1]] = _sequence_attention(
                q[cq[b] : cq[b + 1]],
                k[ck[b] : ck[b + 1]],
                v[ck[b] : ck[b + 1]],
                scale,
                causal,
                half,
                rel_bias,
                chunk,
            )
    return out
