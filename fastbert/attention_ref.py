"""Attention on packed tokens with a sliding window, MPNet's relative position bias and RoPE, in torch.

The torch reference of the Triton kernel ``fastbert.kernels.attention_varlen``'s options, and the packed
CPU path the ``sdpa`` op table calls for encoders that need them (MPNet, ModernBERT). Nothing here
imports triton or transformers.

Call signatures (what the op table uses; q (Tq, heads, D), k/v (Tk, heads, D) packed tokens,
``cu_seqlens_*`` int32 (B+1,) as ``fastbert.padding`` builds them):

- ``attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale, causal=False,
  window=0, rel_bias=None, rotary_cos=None, rotary_sin=None, validate=True) -> (Tq, heads, D)``: the
  kernel's signature.
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

import math

import torch

#: queries per chunk of the banded / biased path (memory: heads x CHUNK x (CHUNK + window) scores)
CHUNK = 256


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
# attention
# ---------------------------------------------------------------------------------------------


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
) -> torch.Tensor:
    """Packed attention with the kernel's options (see the module docstring) -> (Tq, heads, D) in q's dtype."""
    if not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be a non-negative int (0: no window), got {window!r}")
    if rotary_cos is not None:
        q = apply_rotary(q, sequence_positions(cu_seqlens_q, q.shape[0]), rotary_cos, rotary_sin)
        k = apply_rotary(k, sequence_positions(cu_seqlens_k, k.shape[0]), rotary_cos, rotary_sin)
    if window == 0 and rel_bias is None:
        # the plain case: SDPA per sequence (imported here: fastbert.ops imports this module)
        from fastbert.ops import _torch_attention_varlen

        return _torch_attention_varlen(
            q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale, causal
        )
    if rel_bias is not None:
        rel_bias = rel_bias.to(device=q.device, dtype=q.dtype)
    half = window // 2 if window > 0 else None
    out = q.new_zeros(q.shape[:2] + (v.shape[-1],))
    cq, ck = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()  # host loop over the sequences (CPU path)
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
