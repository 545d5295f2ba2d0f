"""Removing padding once per forward and restoring it once (shared by the ``sdpa`` and ``triton`` paths).

A padded batch ``(batch, seqlen, ...)`` with a 0/1 attention mask becomes packed tokens ``(total, ...)``:
only the real tokens, sequence after sequence. ``cu_seqlens`` (int32, ``batch + 1``) holds where each
sequence starts in the packed order, ``max_seqlen`` the longest one, read to the host once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded batch are.

    Attributes:
        indices: int64 ``(total,)``, flat positions of the real tokens in ``batch * seqlen``.
        cu_seqlens: int32 ``(batch + 1,)``, cumulative sequence lengths in the packed order.
        seqlens: int32 ``(batch,)``, real tokens per sequence (0 for a fully padded row).
        max_seqlen: the longest sequence (a Python int, read once).
        batch, seqlen: the padded shape.
        seqlens_host: the lengths as a Python list (read with max_seqlen, for per-sequence loops).
    """

    indices: torch.Tensor
    cu_seqlens: torch.Tensor
    seqlens: torch.Tensor
    max_seqlen: int
    batch: int
    seqlen: int
    seqlens_host: tuple[int, ...]

    @property
    def total(self) -> int:
        return int(self.indices.numel())


def packing_from_mask(attention_mask: torch.Tensor) -> Packing:
    """Packing of a ``(batch, seqlen)`` 0/1 (or bool) key-padding mask; nonzero marks a real token."""
    batch, seqlen = attention_mask.shape
    keep = attention_mask.bool()
    seqlens = keep.sum(dim=1, dtype=torch.int32)  # (batch,)
    indices = torch.nonzero(keep.flatten(), as_tuple=False).flatten()  # (total,)
    cu_seqlens = torch.zeros(batch + 1, dtype=torch.int32, device=attention_mask.device)
    cu_seqlens[1:] = torch.cumsum(seqlens, dim=0, dtype=torch.int32)
    seqlens_host = tuple(seqlens.tolist())  # the one host read of this forward
    return Packing(
        indices=indices,
        cu_seqlens=cu_seqlens,
        seqlens=seqlens,
        max_seqlen=max(seqlens_host, default=0),
        batch=batch,
        seqlen=seqlen,
        seqlens_host=seqlens_host,
    )


def pack(x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """``(batch, seqlen, *rest)`` → ``(total, *rest)``: the real tokens only."""
    return x.reshape(packing.batch * packing.seqlen, *x.shape[2:]).index_select(0, packing.indices)


def unpack(x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """``(total, *rest)`` → ``(batch, seqlen, *rest)``, padded positions zero."""
    out = x.new_zeros(packing.batch * packing.seqlen, *x.shape[1:])
    out.index_copy_(0, packing.indices, x)
    return out.view(packing.batch, packing.seqlen, *x.shape[1:])


def has_padding(attention_mask: torch.Tensor | None) -> bool:
    """True when a mask marks at least one padded position (one host read)."""
    return attention_mask is not None and not bool(attention_mask.bool().all())
