"""Flash-attention forward (online softmax, fp32 statistics, no L x L matrix in memory).

Two layouts, one kernel:
- padded: q (B, Lq, heads, D), k/v (B, Lk, heads, D), optional key-padding mask (B, Lk)
  (True/nonzero = attend);
- varlen: packed tokens q (Tq, heads, D), k/v (Tk, heads, D), ``cu_seqlens_q``/``cu_seqlens_k``
  int32 (B+1,) sequence starts, ``max_seqlen_q`` (the grid's query extent).
q, k, v: one dtype (fp32, fp16, bf16), any strides (e.g. views of a fused (T, 3, heads, D) QKV
output), head dim D <= 128 (padded to a power of two >= 16 inside, masked). Lq != Lk gives
cross-attention. ``causal``: query i sees key j iff j <= i + Lk - Lq (bottom-right aligned, per
sequence). ``scale`` multiplies q.k. Out: q's shape with v's head dim, contiguous, q's dtype.
A query with nothing to attend to (fully padded, empty key sequence) gets zeros.

Varlen options for the encoder families (constexpr-gated: BERT's binaries are unchanged; i, j are a
query's and a key's index inside their sequence, so a pack gives what the padded batch gives):
- ``window``: sliding window ``|i - j| <= window // 2`` (ModernBERT's local layers). Each query block
  loops only over the key blocks that meet ``[first query - w, last query + w]``: the others are never
  loaded (8,192 tokens, window 128: 3 key blocks per 64-query block instead of 128).
- ``rel_bias``: MPNet's relative position bias from a (heads, 2 R + 1) table of the clamped offset
  ``j - i`` (``attention_ref.relative_bias_table``: bucketing done once on the host by the reference's
  own function, so buckets are exact), added to the scores: one gather per score, no L x L tensor.
- ``rotary_cos`` / ``rotary_sin``: RoPE applied where q and k are loaded (q once per program, each key
  block as it is loaded), from (positions, D // 2) fp32 tables. Fused rather than a separate rotary
  kernel: no extra pass writing and re-reading rotated q/k, and the rotation costs O(BLOCK_N * D) per
  key block against the O(BLOCK_M * BLOCK_N * D) product; with a window only loaded blocks are rotated.
  Tables rather than in-kernel sin/cos: exact fp32 cos/sin as transformers computes them, and the
  libdevice trigonometry spilled registers on sm_90.

Numerics: q.k and p.v on tensor cores with fp32 accumulation (fp32 inputs: IEEE fp32, no TF32);
running max / sum in fp32 (base-2 exponentials with log2(e) folded into the scale); p rounded to
v's dtype before p.v, as flash-attention does. fp32 inputs end with an IEEE division; ``exp2`` is the
hardware's (``ex2.approx``, ~2 ulp), within the tolerance rule over a 12-layer encoder in fp32
(tests/kernels/test_fp32_exactness.py emulates that error).
Padded layout with ``seqlens_k``: each row's key loop stops at its length and query blocks past it
load nothing and store zeros (the lengths stay on the device).
Reference: ``fastbert.core.ops.KERNEL_REFERENCES.attention_padded`` / ``.attention_varlen`` (SDPA, ``fastbert.core.attention_ref``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _compat
from ._compat import cast_out, div_rn
from ._op import check_count, check_flag, check_float, kernel_op
from .activation import int32_columns

MAX_HEAD_DIM = 128
MAX_GRID_BATCH = 65535  # grid axis 2 carries the batch
MAX_GRID_HEADS = 65535  # grid axis 1 carries the heads (CUDA: at most 65,535 blocks on axes 1 and 2)
_LOG2E = 1.4426950408889634

# Candidates (BLOCK_M, BLOCK_N, num_warps, num_stages) by dtype class and padded head dim. Each was
# compiled for sm_90 as launched (tests/kernels/hopper_compile.py, triton 3.6 and later) with no
# register spill and within Hopper's shared memory, in the heaviest variant (mask, lengths, causal);
# left out for spilling: (128, 64, 4, 3) at D=64 (triton 3.6), (64, 128, 4, 2) and (128, 64, 4, 2)
# at D=128, fp32 (64, 32, 4, *).
# fp16/bf16 are autotuned over theirs (one compile each on the first call of a dtype, head dim and
# layout; lengths are not specialised, so later shapes reuse those binaries); fp32 (IEEE dots on CUDA
# cores: correctness, not speed) runs its one config.
_CANDIDATES: dict[int, list[tuple[int, int, int, int]]] = {
    16: [(64, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2)],
    32: [(64, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2)],
    64: [(64, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2)],
    128: [(128, 64, 8, 3), (64, 32, 4, 3), (128, 32, 8, 3)],
}
_FP32_CANDIDATES: dict[int, tuple[int, int, int, int]] = {
    16: (64, 32, 8, 2),
    32: (64, 32, 8, 2),
    64: (64, 32, 8, 2),
    128: (32, 16, 8, 2),
}
# fp32 with RoPE: the rotation's extra tiles spill at the plain tile (sm_90): (64, 32, 8, 2) at D=64, and
# (32, 16, 8, 2) at D=128; smaller tiles
_FP32_ROTARY_CANDIDATES: dict[int, tuple[int, int, int, int]] = {
    16: (32, 16, 8, 2),
    32: (32, 16, 8, 2),
    64: (32, 16, 8, 2),
    128: (16, 16, 8, 2),
}
LENGTH_BUCKETS = (128, 512)  # autotuning key: <= 128, <= 512, longer


def _config(c: tuple[int, int, int, int]) -> triton.Config:
    return triton.Config({"BLOCK_M": c[0], "BLOCK_N": c[1]}, num_warps=c[2], num_stages=c[3])


_CONFIGS = [_config(c) for c in dict.fromkeys(c for cs in _CANDIDATES.values() for c in cs)]


def candidates(
    dtype: torch.dtype, block_d: int, rotary: bool = False, rel_bias: bool = False
) -> list[tuple[int, int, int, int]]:
    """The configs the autotuner may pick for ``dtype`` at padded head dim ``block_d`` (fp32: one), for the
    kernel's variant: RoPE and the relative bias take tiles of their own (compiled for sm_90 by
    tests/kernels/hopper_compile.py: the larger ones spill registers or overflow shared memory)."""
    if dtype == torch.float32:
        return [(_FP32_ROTARY_CANDIDATES if rotary else _FP32_CANDIDATES)[block_d]]
    keep = _CANDIDATES[block_d]
    if rel_bias:  # the bias gather spills registers at 128 x 128
        keep = [c for c in keep if c[0] * c[1] <= 128 * 64]
    if block_d == 128 and (rotary or rel_bias):  # at 128 x 64: RoPE's tiles overflow, the bias spills
        keep = [c for c in keep if c[0] * c[1] <= 128 * 32]
    return keep


def length_bucket(max_seqlen: int) -> int:
    """The autotuning key of a query length: the first of ``LENGTH_BUCKETS`` it fits in, else 4096."""
    return next((b for b in LENGTH_BUCKETS if max_seqlen <= b), 4096)


def _prune(configs, named_args, **kwargs):
    """Early pruning of the autotuner: only the candidates of this dtype and head dim (launch arguments
    come by keyword, so they are in ``kwargs``; positional ones would be in ``named_args``)."""
    launch = {**named_args, **kwargs}
    allowed = candidates(
        launch["Q"].dtype, launch["BLOCK_D"], bool(launch.get("ROTARY")), bool(launch.get("HAS_REL_BIAS"))
    )
    keep = [
        c for c in configs if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) in allowed
    ]
    return keep or configs[:1]


@triton.jit
def rotate(x, x_pair, pos, mask, cos_ptr, sin_ptr, stride_rot, offs_half, rot_sign):
    """RoPE (rotate-half) of a (rows, BLOCK_D) block at positions ``pos`` (rows,), in fp32:
    ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = rot_sign * x_pair`` and cos/sin read from
    the (positions, D // 2) tables at (pos, column mod D // 2)."""
    idx = pos[:, None] * stride_rot + offs_half[None, :]
    c = tl.load(cos_ptr + idx, mask=mask, other=0.0)
    s = tl.load(sin_ptr + idx, mask=mask, other=0.0)
    return x.to(tl.float32) * c + rot_sign[None, :] * x_pair.to(tl.float32) * s


@triton.jit
def _attn_inner(
    acc,  # (BLOCK_M, BLOCK_D) fp32 running p.v
    l_i,  # (BLOCK_M,) fp32 running sum of p
    m_i,  # (BLOCK_M,) fp32 running max of the base-2 logits (-inf: nothing seen yet)
    q,  # (BLOCK_M, BLOCK_D) query block
    k_base,  # K + this sequence's and head's offset
    v_base,  # V + this sequence's and head's offset
    kpm_base,  # key-padding mask row of this batch entry
    stride_kt,
    stride_kd,
    stride_vt,
    stride_vd,
    stride_mn,
    offs_m,  # (BLOCK_M,) query positions within the sequence
    offs_d,  # (BLOCK_D,)
    lo,
    hi,  # key blocks [lo, hi) in steps of BLOCK_N
    seqlen_k,
    diag,  # seqlen_k - seqlen_q: causal offset
    qk_scale,  # scale * log2(e)
    window_half,  # HAS_WINDOW: key j is seen by query i iff |i - j| <= window_half
    rel_base,  # HAS_REL_BIAS: this head's row of the offset table, (2 * rel_max + 1,) fp32
    rel_max,  # HAS_REL_BIAS: offsets j - i are clamped to [-rel_max, rel_max]
    cos_ptr,  # ROTARY: cos table (positions, HEAD_DIM // 2) fp32, row stride stride_rot
    sin_ptr,  # ROTARY: sin table, like cos
    stride_rot,
    offs_half,  # ROTARY: (BLOCK_D,) each column's frequency index (column mod HEAD_DIM // 2)
    offs_rot,  # ROTARY: (BLOCK_D,) the column each column's rotate-half partner is read from
    rot_sign,  # ROTARY: (BLOCK_D,) -1 on the first half, +1 on the second (rotate_half)
    count_ptr,  # COUNT_BLOCKS: int32 counter of the key/value blocks loaded
    HEAD_DIM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    MASK: tl.constexpr,  # True: blocks that may cross seqlen_k, the causal diagonal or the window
    HAS_KPM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_REL_BIAS: tl.constexpr,
    ROTARY: tl.constexpr,
    COUNT_BLOCKS: tl.constexpr,
    IEEE: tl.constexpr,  # fp32 inputs: IEEE dots
):
    offs_n = tl.arange(0, BLOCK_N)
    d_ok = offs_d < HEAD_DIM
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if COUNT_BLOCKS:
            tl.atomic_add(count_ptr, 1)
        if MASK:
            kv_mask = (cols < seqlen_k)[:, None] & d_ok[None, :]
        else:
            kv_mask = d_ok[None, :]
        k = tl.load(k_base + cols[:, None] * stride_kt + offs_d[None, :] * stride_kd, mask=kv_mask, other=0.0)
        if ROTARY:  # rotate the key block at its positions (its partner columns are in the same cache lines)
            k_pair = tl.load(
                k_base + cols[:, None] * stride_kt + offs_rot[None, :] * stride_kd, mask=kv_mask, other=0.0
            )
            k = rotate(k, k_pair, cols, kv_mask, cos_ptr, sin_ptr, stride_rot, offs_half, rot_sign).to(
                k.dtype
            )
        if IEEE:  # fp32 inputs: full fp32 products, no TF32
            qk = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            qk = tl.dot(q, tl.trans(k))
        qk = qk * qk_scale  # (BLOCK_M, BLOCK_N), base-2 logits
        if HAS_REL_BIAS:  # MPNet: bias of the clamped offset j - i, from a (2 R + 1,) row of this head
            rel = tl.minimum(tl.maximum(cols[None, :] - offs_m[:, None], -rel_max), rel_max) + rel_max
            qk += tl.load(rel_base + rel) * 1.4426950408889634
        if MASK:
            valid = (cols < seqlen_k)[None, :]
            if IS_CAUSAL:
                valid = valid & (cols[None, :] <= offs_m[:, None] + diag)
            if HAS_WINDOW:
                valid = valid & (tl.abs(cols[None, :] - offs_m[:, None]) <= window_half)
            qk = tl.where(valid, qk, float("-inf"))
        if HAS_KPM:
            keep = tl.load(kpm_base + cols * stride_mn, mask=cols < seqlen_k, other=0)
            qk = tl.where((keep != 0)[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # all masked so far: keep exp2 finite
        p = tl.math.exp2(qk - m_use[:, None])
        alpha = tl.math.exp2(m_i - m_use)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_base + cols[:, None] * stride_vt + offs_d[None, :] * stride_vd, mask=kv_mask, other=0.0)
        if IEEE:
            acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision="ieee")
        else:
            acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    return acc, l_i, m_i


# lengths (and the mask's row stride, Lk) change with every batch: not specialised, one binary for all
@triton.jit(do_not_specialize=["seqlen_q", "seqlen_k", "seqlen_bucket", "stride_mb"])
def _attn_fwd_kernel(
    Q,  # queries: (B, Lq, heads, D) padded or (Tq, heads, D) varlen, strides stride_q*
    K,  # keys: (B, Lk, heads, D) or (Tk, heads, D), strides stride_k*
    V,  # values: like K, strides stride_v*
    O,  # output: like Q, strides stride_o*
    KPM,  # key-padding mask (B, Lk) uint8, nonzero = attend; unused unless HAS_KPM
    CU_Q,  # cu_seqlens_q int32 (B+1,); unused unless IS_VARLEN
    CU_K,  # cu_seqlens_k int32 (B+1,); unused unless IS_VARLEN
    SEQLENS,  # real keys (and queries) per batch row, int32 (B,); unused unless HAS_SEQLENS
    REL_BIAS,  # MPNet relative bias by offset j - i: (heads, 2 * rel_max + 1) fp32; unused unless HAS_REL_BIAS
    COS,  # RoPE cos(position * inv_freq), (positions, HEAD_DIM // 2) fp32; unused unless ROTARY
    SIN,  # RoPE sin, like COS
    BLOCK_COUNT,  # int32 (1,) counter of loaded key/value blocks; unused unless COUNT_BLOCKS (tests)
    stride_qb,  # 0 when IS_VARLEN
    stride_qt,
    stride_qh,
    stride_qd,
    stride_kb,
    stride_kt,
    stride_kh,
    stride_kd,
    stride_vb,
    stride_vt,
    stride_vh,
    stride_vd,
    stride_ob,
    stride_ot,
    stride_oh,
    stride_od,
    stride_mb,
    stride_mn,
    stride_rel_h,
    stride_rot,  # row stride of COS / SIN
    rel_max,  # offsets beyond +-rel_max share the bias of +-rel_max
    window_half,  # sliding window: |i - j| <= window_half (ModernBERT: local_attention // 2)
    seqlen_q,  # Lq (padded); ignored when IS_VARLEN
    seqlen_k,  # Lk (padded); ignored when IS_VARLEN
    qk_scale,  # softmax scale * log2(e)
    seqlen_bucket,  # length_bucket(max query length): autotuning key only
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    IS_VARLEN: tl.constexpr,
    HAS_KPM: tl.constexpr,
    HAS_SEQLENS: tl.constexpr,  # padded layout with per-row lengths (self-attention, Lq == Lk)
    IS_CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,  # sliding window: only the key blocks that meet it are loaded
    HAS_REL_BIAS: tl.constexpr,  # relative position bias added to the scores (MPNet)
    ROTARY: tl.constexpr,  # RoPE on q and k where they are loaded, at their positions in the sequence
    COUNT_BLOCKS: tl.constexpr,
    IEEE: tl.constexpr,  # fp32 inputs: IEEE dots (no TF32), IEEE division
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # a float argument is fp32 in a plain launch but fp64 where Inductor launches the kernel (torch.compile):
    # the scores, the running max and sum stay fp32 either way (an fp64 accumulator fails tl.dot's check)
    qk_scale = tl.cast(qk_scale, tl.float32)
    start_m = tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    if IS_VARLEN:
        q_start = tl.load(CU_Q + off_b).to(tl.int64)
        seqlen_q = tl.load(CU_Q + off_b + 1) - tl.load(CU_Q + off_b)
        k_start = tl.load(CU_K + off_b).to(tl.int64)
        seqlen_k = tl.load(CU_K + off_b + 1) - tl.load(CU_K + off_b)
    else:
        q_start = 0
        k_start = 0
    if start_m * BLOCK_M >= seqlen_q:
        return
    diag = seqlen_k - seqlen_q  # causal offset (0 with per-row lengths: Lq == Lk)
    q_real = seqlen_q
    if HAS_SEQLENS:
        n_real = tl.minimum(tl.maximum(tl.load(SEQLENS + off_b), 0), seqlen_k)
        q_real = n_real
        # a query block past the row's real queries loads no keys and writes zeros
        seqlen_k = tl.where(start_m * BLOCK_M < n_real, n_real, 0)

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q_base = Q + off_b * stride_qb + q_start * stride_qt + off_h * stride_qh
    k_base = K + off_b * stride_kb + k_start * stride_kt + off_h * stride_kh
    v_base = V + off_b * stride_vb + k_start * stride_vt + off_h * stride_vh
    o_base = O + off_b * stride_ob + q_start * stride_ot + off_h * stride_oh
    kpm_base = KPM + off_b * stride_mb

    q_mask = (offs_m < seqlen_q)[:, None] & (offs_d < HEAD_DIM)[None, :]
    q = tl.load(q_base + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd, mask=q_mask, other=0.0)
    offs_half = offs_d  # placeholders when not ROTARY
    offs_rot = offs_d
    rot_sign = offs_d.to(tl.float32)
    if ROTARY:
        offs_half = offs_d % (HEAD_DIM // 2)
        offs_rot = tl.where(offs_d < HEAD_DIM // 2, offs_d + HEAD_DIM // 2, offs_d - HEAD_DIM // 2)
        rot_sign = tl.where(offs_d < HEAD_DIM // 2, -1.0, 1.0)
        q_pair = tl.load(
            q_base + offs_m[:, None] * stride_qt + offs_rot[None, :] * stride_qd, mask=q_mask, other=0.0
        )
        q = rotate(q, q_pair, offs_m, q_mask, COS, SIN, stride_rot, offs_half, rot_sign)
        q = q.to(Q.dtype.element_ty)  # rounded as transformers rounds it
    rel_base = REL_BIAS + off_h * stride_rel_h

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # key blocks needing no bounds/causal mask: [0, full_end); the rest up to hi are masked
    full_end = (seqlen_k // BLOCK_N) * BLOCK_N
    hi = seqlen_k
    if IS_CAUSAL:
        full_end = tl.minimum(full_end, ((start_m * BLOCK_M + diag + 1) // BLOCK_N) * BLOCK_N)
        full_end = tl.maximum(full_end, 0)
        hi = tl.minimum(hi, (start_m + 1) * BLOCK_M + diag)
        hi = tl.maximum(hi, full_end)
    lo = 0
    if HAS_WINDOW:
        # only the key blocks that meet [first query - w, last query + w]; all of them masked
        lo = (tl.maximum(start_m * BLOCK_M - window_half, 0) // BLOCK_N) * BLOCK_N
        hi = tl.maximum(tl.minimum(hi, (start_m + 1) * BLOCK_M + window_half), lo)
        full_end = lo

    acc, l_i, m_i = _attn_inner(
        acc, l_i, m_i, q, k_base, v_base, kpm_base,
        stride_kt, stride_kd, stride_vt, stride_vd, stride_mn,
        offs_m, offs_d, lo, full_end, seqlen_k, diag, qk_scale,
        window_half, rel_base, rel_max, COS, SIN, stride_rot, offs_half, offs_rot, rot_sign, BLOCK_COUNT,
        HEAD_DIM, BLOCK_N, BLOCK_D, False, HAS_KPM, IS_CAUSAL, HAS_WINDOW, HAS_REL_BIAS, ROTARY, COUNT_BLOCKS, IEEE,
    )  # fmt: skip
    acc, l_i, m_i = _attn_inner(
        acc, l_i, m_i, q, k_base, v_base, kpm_base,
        stride_kt, stride_kd, stride_vt, stride_vd, stride_mn,
        offs_m, offs_d, full_end, hi, seqlen_k, diag, qk_scale,
        window_half, rel_base, rel_max, COS, SIN, stride_rot, offs_half, offs_rot, rot_sign, BLOCK_COUNT,
        HEAD_DIM, BLOCK_N, BLOCK_D, True, HAS_KPM, IS_CAUSAL, HAS_WINDOW, HAS_REL_BIAS, ROTARY, COUNT_BLOCKS, IEEE,
    )  # fmt: skip

    l_safe = tl.where(l_i == 0.0, 1.0, l_i)  # nothing attended: acc is 0, output 0
    if IEEE:
        out = div_rn(acc, tl.broadcast_to(l_safe[:, None], acc.shape))
    else:
        out = acc / l_safe[:, None]
    if HAS_SEQLENS:
        out = tl.where((offs_m < q_real)[:, None], out, 0.0)
    tl.store(
        o_base + offs_m[:, None] * stride_ot + offs_d[None, :] * stride_od,
        cast_out(out, O.dtype.element_ty),
        mask=q_mask,
    )


_attn_fwd_tuned = _compat.autotune(
    _CONFIGS,
    key=[
        "HEAD_DIM",
        "IS_CAUSAL",
        "IS_VARLEN",
        "HAS_KPM",
        "HAS_SEQLENS",
        "HAS_WINDOW",
        "HAS_REL_BIAS",
        "ROTARY",
        "seqlen_bucket",
    ],
    prune=_prune,
)(_attn_fwd_kernel)


def _forced(
    dtype: torch.dtype, block_d: int, rotary: bool = False, rel_bias: bool = False
) -> tuple[int, int, int, int] | None:
    """The one config to run without autotuning: fp32, the interpreter, or ``FASTBERT_KERNEL_CONFIG``
    ("first": the variant's first candidate, the one the autotuner would try first)."""
    first = candidates(dtype, block_d, rotary, rel_bias)[0]
    if dtype == torch.float32:
        return first
    forced = _compat.forced_config()
    if forced is None and not _compat.INTERPRET:
        return None
    if isinstance(forced, tuple):
        return forced
    return first


def _in_sequence_span(t: torch.Tensor, seqlen: int) -> int:
    """The largest in-sequence offset the kernel computes in int32 for ``t``: last position times the token
    stride plus last column times the column stride."""
    return (seqlen - 1) * t.stride(-3) + (t.shape[-1] - 1) * t.stride(-1)


def _int32_offsets(name: str, t: torch.Tensor, seqlen: int) -> torch.Tensor:
    """``t`` as the kernel reads it: inside a sequence it offsets a token by ``position * stride`` and a column
    by ``column * stride`` in int32 (the batch, sequence start and head offsets are int64), which a view
    with a token or column stride that large (a sequence-first or transposed view of >= 2**31 elements)
    would overflow (a read out of bounds on a GPU); such a view is copied contiguous. A sequence that spans
    2**31 elements even contiguous (seqlen x heads x head dim) is refused (ValueError naming ``name``)."""
    if _in_sequence_span(t, seqlen) < 2**31:
        return t
    t = t.contiguous()
    if _in_sequence_span(t, seqlen) >= 2**31:
        raise ValueError(
            f"{name}: a sequence of {seqlen} tokens x {t.shape[-2]} heads x head dim {t.shape[-1]} spans 2**31 "
            "elements or more, over the attention kernel's int32 offsets within a sequence; use the torch "
            "reference (fastbert.core.ops.KERNEL_REFERENCES) for such a sequence"
        )
    return t


def _launch(q, k, v, kpm, cu_q, cu_k, seqlens, seqlen_q, seqlen_k, max_seqlen_q, batch, scale, causal, wrap, *,
            window=0, rel_bias=None, cos=None, sin=None, block_count=None, max_seqlen_k=None):  # fmt: skip
    """The one launcher of ``_attn_fwd_kernel`` (both layouts): allocates and returns the output.
    ``block_count``: an int32 (1,) tensor that counts the key/value blocks loaded (tests only).
    ``max_seqlen_k``: varlen, the longest key sequence (padded: ``seqlen_k``)."""
    o = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    heads, d = q.shape[-2], int(q.shape[-1])  # a compile-time constant of the kernel: never symbolic
    if batch == 0 or max_seqlen_q == 0:
        return o
    keys = seqlen_k if max_seqlen_k is None else max_seqlen_k
    q, k, v = _int32_offsets("q", q, max_seqlen_q), _int32_offsets("k", k, keys), _int32_offsets("v", v, keys)
    _int32_offsets("the output (q's shape)", o, max_seqlen_q)
    varlen = cu_q is not None
    stride_b = (lambda t: 0) if varlen else (lambda t: t.stride(0))  # noqa: E731
    block_d = max(16, _compat.next_power_of_2(d))
    meta = {}
    forced = _forced(q.dtype, block_d, rotary=cos is not None, rel_bias=rel_bias is not None)
    kernel = _attn_fwd_tuned
    if forced is not None:
        kernel = _attn_fwd_kernel
        bm, bn, nw, ns = forced
        meta = dict(BLOCK_M=bm, BLOCK_N=bn, num_warps=nw, num_stages=ns)
    _compat.launch(
        kernel,
        lambda meta: (_compat.cdiv(max_seqlen_q, meta["BLOCK_M"]), heads, batch),
        device=q.device,
        wrap=wrap,
        Q=q,
        K=k,
        V=v,
        O=o,
        KPM=kpm if kpm is not None else q,
        CU_Q=cu_q if varlen else q,
        CU_K=cu_k if varlen else q,
        SEQLENS=seqlens if seqlens is not None else q,
        REL_BIAS=rel_bias if rel_bias is not None else q,
        COS=cos if cos is not None else q,
        SIN=sin if sin is not None else q,
        BLOCK_COUNT=block_count if block_count is not None else q,
        stride_qb=stride_b(q), stride_qt=q.stride(-3), stride_qh=q.stride(-2), stride_qd=q.stride(-1),
        stride_kb=stride_b(k), stride_kt=k.stride(-3), stride_kh=k.stride(-2), stride_kd=k.stride(-1),
        stride_vb=stride_b(v), stride_vt=v.stride(-3), stride_vh=v.stride(-2), stride_vd=v.stride(-1),
        stride_ob=stride_b(o), stride_ot=o.stride(-3), stride_oh=o.stride(-2), stride_od=o.stride(-1),
        stride_mb=kpm.stride(0) if kpm is not None else 0,
        stride_mn=kpm.stride(1) if kpm is not None else 0,
        stride_rel_h=rel_bias.stride(0) if rel_bias is not None else 0,
        stride_rot=cos.stride(0) if cos is not None else 0,
        rel_max=(rel_bias.shape[1] - 1) // 2 if rel_bias is not None else 0,
        window_half=window // 2,
        seqlen_q=seqlen_q,
        seqlen_k=seqlen_k,
        qk_scale=scale * _LOG2E,
        seqlen_bucket=length_bucket(max_seqlen_q),
        HEAD_DIM=d,
        BLOCK_D=block_d,
        IS_VARLEN=varlen,
        HAS_KPM=kpm is not None,
        HAS_SEQLENS=seqlens is not None,
        IS_CAUSAL=causal,
        HAS_WINDOW=window > 0,
        HAS_REL_BIAS=rel_bias is not None,
        ROTARY=cos is not None,
        COUNT_BLOCKS=block_count is not None,
        IEEE=q.dtype == torch.float32,
        **meta,
    )  # fmt: skip
    return o


# ---------------------------------------------------------------------------------------------
# host-side validation and launchers
# ---------------------------------------------------------------------------------------------


def _check_qkv(q, k, v, ndim: int, layout: str) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
        if t.dim() != ndim:
            raise ValueError(f"{name} must be {layout}, got shape {tuple(t.shape)}")
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"{name} dtype must be float32, float16 or bfloat16, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v devices differ: {q.device}, {k.device}, {v.device}")
    if k.shape != v.shape:
        raise ValueError(f"k shape {tuple(k.shape)} != v shape {tuple(v.shape)}")
    if q.shape[-2:] != k.shape[-2:]:
        raise ValueError(f"q heads/head dim {tuple(q.shape[-2:])} != k's {tuple(k.shape[-2:])}")
    if q.shape[-2] > MAX_GRID_HEADS:
        raise ValueError(f"{q.shape[-2]} heads exceed {MAX_GRID_HEADS} (the grid's heads axis); split them")
    d = q.shape[-1]
    if not 1 <= d <= MAX_HEAD_DIM:
        raise ValueError(f"head dim must be in 1..{MAX_HEAD_DIM}, got {d}")


def _check_scale(scale) -> float:
    return check_float("scale", scale)


def _check_padded(args: dict) -> None:
    q, k, v = args["q"], args["k"], args["v"]
    key_padding_mask, seqlens_k = args["key_padding_mask"], args["seqlens_k"]
    _check_qkv(q, k, v, 4, "(batch, seqlen, heads, head_dim)")
    if q.shape[0] != k.shape[0]:
        raise ValueError(f"q batch {q.shape[0]} != k batch {k.shape[0]}")
    if q.shape[0] > MAX_GRID_BATCH:
        raise ValueError(f"batch {q.shape[0]} exceeds {MAX_GRID_BATCH}; split it")
    if key_padding_mask is not None:
        m = key_padding_mask
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be a bool tensor, got {getattr(m, 'dtype', type(m))}")
        if m.shape != (k.shape[0], k.shape[1]):
            raise ValueError(f"key_padding_mask shape {tuple(m.shape)} != (batch, Lk) = {tuple(k.shape[:2])}")
        if m.device != q.device:
            raise ValueError(f"key_padding_mask is on {m.device}, q on {q.device}")
        # the kernel offsets a key by key * stride in int32: a view past that is copied contiguous
        key_padding_mask = int32_columns(m.view(torch.uint8))
    if seqlens_k is not None:
        n = seqlens_k
        if not isinstance(n, torch.Tensor) or n.dtype != torch.int32 or n.shape != (q.shape[0],):
            raise ValueError(
                f"seqlens_k must be an int32 tensor of shape (batch,) = ({q.shape[0]},), got "
                f"{getattr(n, 'dtype', type(n).__name__)} {tuple(getattr(n, 'shape', ()))}"
            )
        if n.device != q.device:
            raise ValueError(f"seqlens_k is on {n.device}, q on {q.device}")
        if q.shape[1] != k.shape[1]:
            raise ValueError(
                f"seqlens_k needs self-attention shapes (Lq == Lk), got Lq {q.shape[1]}, Lk {k.shape[1]}"
            )
        seqlens_k = n.contiguous()
    args["key_padding_mask"], args["seqlens_k"] = key_padding_mask, seqlens_k
    args["scale"], args["causal"] = _check_scale(args["scale"]), check_flag("causal", args["causal"])


@kernel_op(check=_check_padded)
def attention_padded(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    scale: float,
    causal: bool = False,
    seqlens_k: torch.Tensor | None = None,
    *,
    wrap: bool = False,
) -> torch.Tensor:
    """Attention over padded batches: q (B, Lq, heads, D), k/v (B, Lk, heads, D) -> (B, Lq, heads, D).

    ``key_padding_mask``: bool (B, Lk), True = attend, or None (all keys).
    ``seqlens_k``: None, or an int32 tensor (B,) on q's device with the real length of each row of a
    self-attention batch (Lq == Lk, the real tokens first): row b's key loop stops at
    ``seqlens_k[b]`` and its queries from ``seqlens_k[b]`` on are zeros, without computing them.
    Its values are read on the device only (no host sync; safe inside a CUDA graph) and clamped to
    [0, Lk]. It may be combined with ``key_padding_mask``.
    """
    return _launch(q, k, v, key_padding_mask, None, None, seqlens_k, q.shape[1], k.shape[1], q.shape[1],
                   q.shape[0], scale, causal, wrap)  # fmt: skip


def _check_cu(
    name: str, cu, batch_plus_one: int | None, total: int, max_seqlen, vals: list | None = None
) -> None:
    """The structure of a ``cu_seqlens`` tensor; with ``vals`` (its values, read once by the caller) its
    values too."""
    if not isinstance(cu, torch.Tensor) or cu.dtype != torch.int32 or cu.dim() != 1:
        raise ValueError(
            f"{name} must be a 1-D int32 tensor, got {getattr(cu, 'dtype', type(cu))} {getattr(cu, 'shape', '')}"
        )
    if cu.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one value (0)")
    if batch_plus_one is not None and cu.shape[0] != batch_plus_one:
        raise ValueError(f"{name} has {cu.shape[0]} entries, cu_seqlens_q has {batch_plus_one}")
    if not cu.is_contiguous():
        raise ValueError(f"{name} must be contiguous")
    check_count(f"max_seqlen for {name}", max_seqlen)
    if vals is not None:  # read on the host by the caller (validate=True)
        if vals[0] != 0:
            raise ValueError(f"{name} must start at 0, got {vals[0]}")
        lengths = [b - a for a, b in zip(vals[:-1], vals[1:])]
        if any(n < 0 for n in lengths):
            raise ValueError(f"{name} must be non-decreasing, got {vals}")
        if vals[-1] != total:
            raise ValueError(f"{name} must end at the token count {total}, ends at {vals[-1]}")
        if lengths and max(lengths) > max_seqlen:
            raise ValueError(f"{name} has a sequence of {max(lengths)} tokens > max_seqlen {max_seqlen}")


def _check_varlen(args: dict, *, validate: bool = True) -> None:
    """Structure always; ``validate=True`` also the values of ``cu_seqlens_*`` (one device->host sync)."""
    q, k, v = args["q"], args["k"], args["v"]
    cu_seqlens_q, cu_seqlens_k = args["cu_seqlens_q"], args["cu_seqlens_k"]
    max_seqlen_q = args["max_seqlen_q"] = check_count("max_seqlen_q", args["max_seqlen_q"])
    max_seqlen_k = args["max_seqlen_k"] = check_count("max_seqlen_k", args["max_seqlen_k"])
    _check_qkv(q, k, v, 3, "(tokens, heads, head_dim)")
    _check_cu("cu_seqlens_q", cu_seqlens_q, None, q.shape[0], max_seqlen_q)
    _check_cu("cu_seqlens_k", cu_seqlens_k, cu_seqlens_q.shape[0], k.shape[0], max_seqlen_k)
    if cu_seqlens_q.device != q.device or cu_seqlens_k.device != q.device:
        raise ValueError(f"cu_seqlens are on {cu_seqlens_q.device}/{cu_seqlens_k.device}, q on {q.device}")
    if validate:
        both = torch.cat([cu_seqlens_q, cu_seqlens_k]).tolist()  # one host sync
        n = cu_seqlens_q.shape[0]
        _check_cu("cu_seqlens_q", cu_seqlens_q, None, q.shape[0], max_seqlen_q, both[:n])
        _check_cu("cu_seqlens_k", cu_seqlens_k, n, k.shape[0], max_seqlen_k, both[n:])
    if cu_seqlens_q.shape[0] - 1 > MAX_GRID_BATCH:
        raise ValueError(f"{cu_seqlens_q.shape[0] - 1} sequences exceed {MAX_GRID_BATCH}; split the batch")
    args["scale"], args["causal"] = _check_scale(args["scale"]), check_flag("causal", args["causal"])
    args["window"] = check_count("window", args["window"], " (0: no window)")
    heads, d = q.shape[-2], q.shape[-1]
    rel_bias = args["rel_bias"]
    if rel_bias is not None:
        if not isinstance(rel_bias, torch.Tensor) or rel_bias.dtype != torch.float32 or rel_bias.dim() != 2:
            raise ValueError(
                "rel_bias must be a float32 (heads, 2 * max_distance + 1) table "
                f"(fastbert.core.attention_ref.relative_bias_table), got {getattr(rel_bias, 'dtype', type(rel_bias))} "
                f"{tuple(getattr(rel_bias, 'shape', ()))}"
            )
        if rel_bias.shape[0] != heads or rel_bias.shape[1] % 2 != 1:
            raise ValueError(
                f"rel_bias must have shape ({heads}, 2 * max_distance + 1), got {tuple(rel_bias.shape)}"
            )
        if rel_bias.device != q.device:
            raise ValueError(f"rel_bias is on {rel_bias.device}, q on {q.device}")
        args["rel_bias"] = rel_bias.contiguous()
    cos, sin = args["rotary_cos"], args["rotary_sin"]
    if (cos is None) != (sin is None):
        raise ValueError("rotary_cos and rotary_sin go together (both or neither)")
    if cos is not None:
        if d % 2:
            raise ValueError(f"rotary needs an even head dim, got {d}")
        positions = max(args["max_seqlen_q"], args["max_seqlen_k"])
        for name, t in (("rotary_cos", cos), ("rotary_sin", sin)):
            if (
                not isinstance(t, torch.Tensor)
                or t.dtype != torch.float32
                or t.dim() != 2
                or t.shape[1] != d // 2
                or t.shape[0] < positions
            ):
                raise ValueError(
                    f"{name} must be a float32 (positions >= max_seqlen = {positions}, head_dim // 2 = {d // 2}) "
                    f"table (fastbert.core.attention_ref.rope_cos_sin), got {getattr(t, 'dtype', type(t))} "
                    f"{tuple(getattr(t, 'shape', ()))}"
                )
            if t.device != q.device:
                raise ValueError(f"{name} is on {t.device}, q on {q.device}")
        if cos.shape != sin.shape:
            raise ValueError(f"rotary_cos {tuple(cos.shape)} and rotary_sin {tuple(sin.shape)} differ")
        cos, sin = cos.contiguous(), sin.contiguous()
        args["rotary_cos"], args["rotary_sin"] = cos, sin


@kernel_op(check=_check_varlen)
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
    *,
    wrap: bool = False,
) -> torch.Tensor:
    """Attention over packed sequences: q (Tq, heads, D), k/v (Tk, heads, D) -> (Tq, heads, D).

    ``cu_seqlens_*``: int32 (B+1,), 0 then cumulative lengths. ``validate=True`` checks their
    values (one device->host sync); ``validate=False`` trusts them (dtype/shape still checked).
    Runs the launcher directly, ``fastbert::attention_varlen`` under torch.compile.

    Options, each compiled in only when given (i, j: a query's and a key's index in their sequence):

    - ``window`` > 0: sliding window, key j seen by query i iff ``|i - j| <= window // 2`` (ModernBERT's
      local layers: ``window = local_attention``); key blocks wholly outside it are never loaded.
    - ``rel_bias``: float32 (heads, 2 R + 1), the bias of offset ``j - i`` clamped to [-R, R] at column
      ``j - i + R``, added to the scaled scores (MPNet: ``fastbert.core.attention_ref.relative_bias_table``
      of its (buckets, heads) embedding, R = max_distance; never a (B, heads, L, L) tensor).
    - ``rotary_cos`` / ``rotary_sin``: float32 (P, D // 2) tables, row p = cos / sin(p * inv_freq) with
      P >= max_seqlen (``fastbert.core.attention_ref.rope_cos_sin``, built once per forward and layer type):
      q and k rotated (rotate-half) at positions i and j where they are loaded, rounded to their dtype
      before the products, as transformers' ``apply_rotary_pos_emb``.
    """
    return _launch(q, k, v, None, cu_seqlens_q, cu_seqlens_k, None, 0, 0, max_seqlen_q, cu_seqlens_q.shape[0] - 1,
                   scale, causal, wrap, window=window, rel_bias=rel_bias, cos=rotary_cos, sin=rotary_sin,
                   max_seqlen_k=max_seqlen_k)  # fmt: skip
