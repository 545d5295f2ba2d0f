"""BERT embeddings in one kernel: word + position + token-type row gather, add, LayerNorm.

In:  input_ids (T,) int64/int32; position_ids (T,) or None (= arange(T)); token_type_ids (T,)
     or None (= all type 0); word_weight (V, H), position_weight (P, H), type_weight (TV, H),
     ln_weight (H,), ln_bias (H,): tables of one dtype (fp32/fp16/bf16), any row/column strides
     (row and column offsets in int64: a transposed table of >= 2**31 elements is read in place);
     LayerNorm parameters fp32/fp16/bf16. position_weight, type_weight and ln_bias may be None (no
     such table / a LayerNorm without bias: ModernBERT's embeddings are word + LayerNorm(bias=False)).
Out: (T, H) contiguous in the weights' dtype. Sum and LayerNorm statistics in fp32, eps as given
     (IEEE division and square root for an fp32 output, as in ``layernorm``).
Reference: ``fastbert.core.ops.KERNEL_REFERENCES.embed_layernorm``; ``fastbert.core.layers_ref.embed_norm``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._compat import cast_out
from ._op import check_float, kernel_op
from .activation import check_vector, contiguous_or_none
from .layernorm import MAX_HIDDEN, launch_rows, normalize


@triton.jit(do_not_specialize=["T"])  # the token count changes with every batch: one binary for all
def _embed_layernorm_kernel(
    IDS,  # token ids, shape (T,), contiguous
    POS,  # position ids, shape (T,), contiguous; unused unless HAS_POS (then position = row)
    TT,  # token type ids, shape (T,), contiguous; unused unless HAS_TT (then type = 0)
    WE,  # word embeddings, shape (V, H), strides (stride_we0, stride_we1)
    PE,  # position embeddings, shape (P, H), strides (stride_pe0, stride_pe1); unused unless HAS_PE
    TE,  # token type embeddings, shape (TV, H), strides (stride_te0, stride_te1); unused unless HAS_TE
    W,  # LayerNorm weight, shape (H,)
    LB,  # LayerNorm bias, shape (H,); unused unless HAS_LN_BIAS
    Y,  # output, shape (T, H), contiguous
    stride_we0,
    stride_we1,
    stride_pe0,
    stride_pe1,
    stride_te0,
    stride_te1,
    T,
    H,
    eps,
    HAS_POS: tl.constexpr,
    HAS_TT: tl.constexpr,
    HAS_PE: tl.constexpr,  # a position table (False: ModernBERT, RoPE in attention instead)
    HAS_TE: tl.constexpr,  # a token type table
    HAS_LN_BIAS: tl.constexpr,
    EXACT: tl.constexpr,  # fp32 output: IEEE division and square root
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < T
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < H
    mask = row_ok[:, None] & col_ok[None, :]
    # a table's column offset in int64, as its row offset: a transposed (V, H) view of >= 2**31 elements
    # (a stride that fits int32 times a column that makes it pass 2**31) wrapped to a read out of bounds
    tcols = cols.to(tl.int64)
    ids = tl.load(IDS + rows, mask=row_ok, other=0).to(tl.int64)
    if HAS_POS:
        pos = tl.load(POS + rows, mask=row_ok, other=0).to(tl.int64)
    else:
        pos = rows
    h = tl.load(WE + ids[:, None] * stride_we0 + tcols[None, :] * stride_we1, mask=mask, other=0.0)
    h = h.to(tl.float32)
    if HAS_PE:
        pe = tl.load(PE + pos[:, None] * stride_pe0 + tcols[None, :] * stride_pe1, mask=mask, other=0.0)
        h += pe.to(tl.float32)
    if HAS_TE:
        if HAS_TT:
            tt = tl.load(TT + rows, mask=row_ok, other=0).to(tl.int64)
            te = tl.load(TE + tt[:, None] * stride_te0 + tcols[None, :] * stride_te1, mask=mask, other=0.0)
            h += te.to(tl.float32)
        else:
            h += tl.load(TE + tcols * stride_te1, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    # h is 0 on padding columns (masked loads)
    y = normalize(h, col_ok, H, eps, W, LB, cols, HAS_LN_BIAS, False, EXACT)
    tl.store(Y + rows[:, None] * H + cols[None, :], cast_out(y, Y.dtype.element_ty), mask=mask)


_INDEX_DTYPES = (torch.int64, torch.int32)


def _check_ids(name: str, ids: torch.Tensor | None, t: int, device) -> None:
    if ids is None:
        return
    if not isinstance(ids, torch.Tensor) or ids.dtype not in _INDEX_DTYPES:
        raise ValueError(f"{name} must be an int64 or int32 tensor, got {getattr(ids, 'dtype', type(ids))}")
    if ids.dim() != 1 or ids.shape[0] != t:
        raise ValueError(f"{name} must have shape ({t},), got {tuple(ids.shape)}")
    if ids.device != device:
        raise ValueError(f"{name} is on {ids.device}, weights on {device}")


def _check_ranges(checks: list[tuple[str, torch.Tensor, int]]) -> None:
    """Every (name, ids, table rows) in range, with one device -> host read for all of them."""
    if not checks or checks[0][1].shape[0] == 0:
        return
    bounds = torch.stack([b for _, ids, _ in checks for b in (ids.min(), ids.max())]).tolist()  # one sync
    for (name, _, rows), lo, hi in zip(checks, bounds[::2], bounds[1::2]):
        if lo < 0 or hi >= rows:
            raise ValueError(f"{name} out of range: values in [{lo}, {hi}], table has {rows} rows")


def _check_embed(args: dict, *, validate: bool = True) -> None:
    """Shapes, dtypes and devices always; ``validate=True`` also every id against its table (one sync)."""
    word_weight, position_weight, type_weight = (
        args["word_weight"],
        args["position_weight"],
        args["type_weight"],
    )
    tables = [
        ("word_weight", word_weight),
        ("position_weight", position_weight),
        ("type_weight", type_weight),
    ]
    tables = [(name, w) for name, w in tables if w is not None or name == "word_weight"]
    for name, w in tables:
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor, got {getattr(w, 'shape', type(w))}")
        if w.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"{name} dtype must be float32, float16 or bfloat16, got {w.dtype}")
    h = word_weight.shape[1]
    if h == 0 or h > MAX_HIDDEN:
        raise ValueError(f"hidden size must be in 1..{MAX_HIDDEN}, got {h}")
    for name, w in tables[1:]:
        if w.shape[1] != h or w.dtype != word_weight.dtype or w.device != word_weight.device:
            raise ValueError(
                f"{name} is {tuple(w.shape)} {w.dtype} on {w.device}; word_weight is "
                f"{tuple(word_weight.shape)} {word_weight.dtype} on {word_weight.device}"
            )
    if type_weight is not None and type_weight.shape[0] == 0:
        raise ValueError("type_weight has no rows")
    check_vector("ln_weight", args["ln_weight"], h, word_weight)
    check_vector("ln_bias", args["ln_bias"], h, word_weight)
    if args["ln_weight"] is None:
        raise ValueError("ln_weight is required (ln_bias may be None: a LayerNorm without bias)")
    for ids, table in (("position_ids", "position_weight"), ("token_type_ids", "type_weight")):
        if args[ids] is not None and args[table] is None:
            raise ValueError(f"{ids} given without a {table}")
    input_ids, position_ids = args["input_ids"], args["position_ids"]
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 1:
        raise ValueError(
            f"input_ids must be a 1-D tensor (T,), got {getattr(input_ids, 'shape', type(input_ids))}"
        )
    t = input_ids.shape[0]
    dev = word_weight.device
    ranges = []
    for name, ids, table in (
        ("input_ids", input_ids, word_weight),
        ("position_ids", position_ids, position_weight),
        ("token_type_ids", args["token_type_ids"], type_weight),
    ):
        if table is not None and ids is not None:
            _check_ids(name, ids, t, dev)
            ranges.append((name, ids, table.shape[0]))
    if validate:
        _check_ranges(ranges)
    if position_weight is not None and position_ids is None and t > position_weight.shape[0]:
        raise ValueError(f"{t} tokens but only {position_weight.shape[0]} positions (position_ids=None)")
    for name in ("input_ids", "position_ids", "token_type_ids"):
        if args[name] is not None:
            args[name] = args[name].contiguous()
    args["eps"] = check_float("eps", args["eps"], minimum=0.0)


@kernel_op(check=_check_embed)
def embed_layernorm(
    input_ids: torch.Tensor,
    position_ids: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    word_weight: torch.Tensor,
    position_weight: torch.Tensor | None,
    type_weight: torch.Tensor | None,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor | None,
    eps: float,
    *,
    wrap: bool = False,
) -> torch.Tensor:
    """Gather + add + LayerNorm of BERT's three embeddings -> (T, H) in the weights' dtype.

    ``position_weight`` / ``type_weight`` None: no such table (then its ids must be None too);
    ``ln_bias`` None: LayerNorm without bias.

    ``validate=True`` also checks every id against its table (one device->host sync);
    ``validate=False`` skips that value check (shapes and dtypes are always checked). Runs the
    launcher directly, ``fastbert::embed_layernorm`` under torch.compile.
    """
    t = input_ids.shape[0]
    h = word_weight.shape[1]
    y = torch.empty((t, h), dtype=word_weight.dtype, device=word_weight.device)
    if t == 0:
        return y
    ln_weight, ln_bias = contiguous_or_none(ln_weight), contiguous_or_none(ln_bias)
    launch_rows(
        _embed_layernorm_kernel,
        t,
        h,
        device=word_weight.device,
        wrap=wrap,
        IDS=input_ids,
        POS=position_ids if position_ids is not None else input_ids,
        TT=token_type_ids if token_type_ids is not None else input_ids,
        WE=word_weight,
        PE=position_weight if position_weight is not None else word_weight,
        TE=type_weight if type_weight is not None else word_weight,
        W=ln_weight,
        LB=ln_bias if ln_bias is not None else ln_weight,
        Y=y,
        stride_we0=word_weight.stride(0),
        stride_we1=word_weight.stride(1),
        stride_pe0=position_weight.stride(0) if position_weight is not None else 0,
        stride_pe1=position_weight.stride(1) if position_weight is not None else 0,
        stride_te0=type_weight.stride(0) if type_weight is not None else 0,
        stride_te1=type_weight.stride(1) if type_weight is not None else 0,
        T=t,
        H=h,
        eps=eps,
        HAS_POS=position_ids is not None,
        HAS_TT=token_type_ids is not None,
        HAS_PE=position_weight is not None,
        HAS_TE=type_weight is not None,
        HAS_LN_BIAS=ln_bias is not None,
        EXACT=word_weight.dtype == torch.float32,
    )
    return y
