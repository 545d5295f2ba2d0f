"""Everything about packing: padding removed once per forward and restored once.

A padded batch ``(batch, seqlen, ...)`` with a 0/1 attention mask becomes packed tokens ``(total, ...)``:
only the real tokens, sequence after sequence. ``cu_seqlens`` (int32, ``batch + 1``) holds where each
sequence starts in the packed order, ``max_seqlen`` the longest one. The lengths come to the host once
per forward, in the model's one combined device->host read (:func:`host_read`), together with the
validation of the ids.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .tracing import traced


class HostReads:
    """A count of the device->host reads made through :func:`host_read` (see :func:`count_host_reads`)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __repr__(self) -> str:
        return f"HostReads(count={self.count})"


#: the open :func:`count_host_reads` blocks (empty outside them)
_COUNTERS: list[HostReads] = []


@contextmanager
def count_host_reads() -> Iterator[HostReads]:
    """``with count_host_reads() as reads: model(...)``: ``reads.count`` is the host reads made in the block.

    A counter object rather than a module-level int: ``torch.compile`` guards on the globals a traced
    function reads, so a global count mutated per call made every call a recompile.
    """
    reads = HostReads()
    _COUNTERS.append(reads)
    try:
        yield reads
    finally:
        _COUNTERS.remove(reads)


def host_read(t: torch.Tensor) -> list:
    """``t.tolist()``: the one place the model reads device values on the host (counted in eager mode by
    :func:`count_host_reads`; not under ``torch.compile``, which would otherwise guard on the counters)."""
    if not traced(t):  # this call, not torch's process-wide flag (another thread may be compiling)
        for reads in _COUNTERS:
            reads.count += 1
    return t.tolist()


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded batch are.

    Attributes:
        indices: int64 ``(total,)``, flat positions of the real tokens in ``batch * seqlen``.
        cu_seqlens: int32 ``(batch + 1,)``, cumulative sequence lengths in the packed order.
        seqlens: int32 ``(batch,)``, real tokens per sequence (0 for a fully padded row).
        max_seqlen: the longest sequence (a Python int; a static packing's bound on it).
        batch, seqlen: the padded shape.
        seqlens_host: the lengths as Python ints (for per-sequence loops); None in a CUDA graph's static
            packing (``fastbert.core.cuda_graphs``), whose lengths change from replay to replay on the device.
        static_rows: the packed rows when ``seqlens_host`` is None: the real tokens first, then filler
            rows past ``cu_seqlens[-1]`` that belong to no sequence.
    """

    indices: torch.Tensor
    cu_seqlens: torch.Tensor
    seqlens: torch.Tensor
    max_seqlen: int
    batch: int
    seqlen: int
    seqlens_host: tuple[int, ...] | None
    static_rows: int | None = None

    @property
    def cu_seqlens_host(self) -> tuple[int, ...] | None:
        """``cu_seqlens`` as Python ints, from ``seqlens_host`` (no device read; computed once, shared by every
        layer, cached by hand as :attr:`mask`); None where those are."""
        if self.seqlens_host is None:
            return None
        bounds = self.__dict__.get("_cu_seqlens_host")
        if bounds is None:
            bounds = self.__dict__["_cu_seqlens_host"] = tuple(
                itertools.accumulate(self.seqlens_host, initial=0)
            )
        return bounds

    @property
    def total(self) -> int:
        """Packed rows (the real tokens; a static packing's filler included)."""
        return sum(self.seqlens_host) if self.seqlens_host is not None else self.static_rows

    def _lengths_known(self, what: str) -> None:
        """Refuse what only a packing of known lengths defines: a static packing's filler rows point at
        position 0 and join no sequence, and its lengths change on the device at every replay."""
        if self.seqlens_host is None:
            raise RuntimeError(
                f"{what} of a CUDA graph's static packing is not defined (filler rows, lengths that change "
                "at each replay): the graph runner re-pads its real tokens itself"
            )

    # mask and rows are cached in __dict__ by hand, not by functools.cached_property: before Python 3.12 its
    # lock is a context manager Dynamo cannot enter, and torch.compile ran the frame reading them eagerly

    @property
    def mask(self) -> torch.Tensor:
        """(batch, seqlen) bool: True at real tokens (computed once, shared by every layer)."""
        mask = self.__dict__.get("mask")
        if mask is None:
            self._lengths_known("Packing.mask")
            mask = torch.zeros(self.batch * self.seqlen, dtype=torch.bool, device=self.indices.device)
            mask[self.indices] = True
            mask = self.__dict__["mask"] = mask.view(self.batch, self.seqlen)
        return mask

    @property
    def rows(self) -> torch.Tensor:
        """(total,) sequence index of each packed token."""
        rows = self.__dict__.get("rows")
        if rows is None:
            self._lengths_known("Packing.rows")
            rows = self.__dict__["rows"] = self.indices // max(self.seqlen, 1)
        return rows

    def rows_with_keys(self, keys: Packing) -> torch.Tensor:
        """(total,) bool: True where the token's sequence has at least one key in ``keys``."""
        self._lengths_known("Packing.rows_with_keys")
        cache = self.__dict__.setdefault("_rows_with_keys", {})
        out = cache.get(id(keys))
        if out is None:
            out = cache[id(keys)] = keys.seqlens[self.rows] > 0
        return out

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """(batch, 1, 1, seqlen) attention mask of these keys: 0 at real tokens, dtype's min at padding
        (transformers' convention), computed once per dtype."""
        self._lengths_known("Packing.additive_mask")
        cache = self.__dict__.setdefault("_additive", {})
        out = cache.get(dtype)
        if out is None:
            out = torch.zeros(self.mask.shape, dtype=dtype, device=self.mask.device)
            out = cache[dtype] = out.masked_fill_(~self.mask, torch.finfo(dtype).min)[:, None, None, :]
        return out


def lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """int32 ``(batch,)`` real tokens per row of a 0/1 (or bool) mask, on the mask's device."""
    return attention_mask.bool().sum(dim=1, dtype=torch.int32)


def extents(attention_mask: torch.Tensor) -> torch.Tensor:
    """int32 ``(batch,)`` one past the last real token of each row (the row's length when it is padded on
    the right; more when padding stands on the left or between tokens): the bound of a row's keys and
    queries that a kernel may skip beyond, computed on the device (no host read)."""
    keep = attention_mask.bool()
    positions = torch.arange(1, keep.shape[1] + 1, device=keep.device, dtype=torch.int32)
    return (keep * positions).amax(dim=1).to(torch.int32) if keep.shape[1] else lengths(attention_mask)


def packing_from_mask(
    attention_mask: torch.Tensor,
    seqlens: torch.Tensor | None = None,
    seqlens_host: tuple[int, ...] | None = None,
) -> Packing:
    """Packing of a ``(batch, seqlen)`` 0/1 (or bool) key-padding mask; nonzero marks a real token.

    ``seqlens``/``seqlens_host``: the lengths already computed and read by the caller (the model reads
    them with the rest of its validation); without them the lengths are read here (one host read).
    """
    batch, seqlen = attention_mask.shape
    keep = attention_mask.bool().flatten()
    if seqlens is None:
        seqlens = lengths(attention_mask)
    if seqlens_host is None:
        seqlens_host = tuple(host_read(seqlens))
    total = sum(seqlens_host)
    # the size is known on the host: no second sync on CUDA, and no graph break under torch.compile (whose
    # nonzero has a shape of the data; eager CPU keeps nonzero)
    if keep.is_cuda or traced(keep):
        indices = torch.nonzero_static(keep, size=total).flatten()
    else:
        indices = torch.nonzero(keep).flatten()
    cu_seqlens = torch.zeros(batch + 1, dtype=torch.int32, device=attention_mask.device)
    torch.cumsum(seqlens, dim=0, dtype=torch.int32, out=cu_seqlens[1:])
    return Packing(
        indices=indices,
        cu_seqlens=cu_seqlens,
        seqlens=seqlens,
        # not max(..., default=0): Dynamo cannot trace the keyword on the lengths of a dynamic compile
        max_seqlen=max(seqlens_host) if seqlens_host else 0,
        batch=batch,
        seqlen=seqlen,
        seqlens_host=tuple(seqlens_host),
    )


def full_packing(batch: int, seqlen: int, device) -> Packing:
    """The packing of a batch without padding (no device read: every length is ``seqlen``)."""
    seqlens = torch.full((batch,), seqlen, dtype=torch.int32, device=device)
    cu_seqlens = torch.arange(0, (batch + 1) * seqlen, seqlen, dtype=torch.int32, device=device)
    return Packing(
        indices=torch.arange(batch * seqlen, device=device),
        cu_seqlens=cu_seqlens,
        seqlens=seqlens,
        max_seqlen=seqlen if batch else 0,
        batch=batch,
        seqlen=seqlen,
        seqlens_host=(seqlen,) * batch,
    )


def pack(x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """``(batch, seqlen, *rest)`` → ``(total, *rest)``: the real tokens only."""
    return x.reshape(packing.batch * packing.seqlen, *x.shape[2:]).index_select(0, packing.indices)


def unpack(x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """``(total, *rest)`` → ``(batch, seqlen, *rest)``, padded positions zero."""
    packing._lengths_known("unpack")
    out = x.new_zeros(packing.batch * packing.seqlen, *x.shape[1:])
    out.index_copy_(0, packing.indices, x)
    return out.view(packing.batch, packing.seqlen, *x.shape[1:])


def has_padding(attention_mask: torch.Tensor | None) -> bool:
    """True when a mask marks at least one padded position (one host read)."""
    return attention_mask is not None and not host_read(attention_mask.bool().all())


#: set by :func:`packed_outputs`: per-token outputs stay packed
_PACKED_OUTPUTS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fastbert_packed_outputs", default=False
)


@contextmanager
def packed_outputs() -> Iterator[None]:
    """Within it, a forward that packed its padded batch returns its per-token outputs (``last_hidden_state``,
    per-token logits) packed: (real tokens, ...), the rows' real tokens one row after the other, as
    ``attention_mask`` orders them; a forward that did not pack (eager, no padding, a CUDA-graph replay)
    returns them padded as usual, so the caller tells them apart by their ``dim()``. Per-sequence outputs
    (the pooler, sequence classification, multiple choice, of every family: each sequence's first token or
    mean taken from the packed tokens) are (batch, ...) as outside it, and so are a causal LM's logits of
    ``logits_to_keep`` (positions of the padded layout). For callers that reduce each sequence
    (a server's pooling, SPLADE's max) and must not build (batch, longest, ...) tensors of a skewed batch;
    inference only (a head whose loss reads its per-token logits refuses labels here by name)."""
    token = _PACKED_OUTPUTS.set(True)
    try:
        yield
    finally:
        _PACKED_OUTPUTS.reset(token)
