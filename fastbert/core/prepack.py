"""Prepacked oneDNN weights for the CPU's fp32 and bf16 linears.

On CPUs with AVX-512 the sdpa table's linears run oneDNN's GEMM (:func:`fastbert.core.ops._sdpa_linear`).
Called on a plain ``(N, K)`` weight, oneDNN reorders it into its blocked layout at every call; called on a
weight reordered once (``torch.ops.mkldnn._reorder_linear_weight``, what Inductor's freezing does), it
skips that pass. The numbers are the same, bit for bit (the same kernel on the same layout; one-row
products, which oneDNN's packed path rounds otherwise, stay on the plain weight), and the GEMMs are
faster (figures: benchmarks/results/code-notes.md, "CPU, prepacked oneDNN weights").

The cost is memory: the packed copy sits beside the parameter, which stays the truth (state dicts,
training, ``save_pretrained``): the encoder linears' weights once more (MiniLM: 40.5 MiB beside its 86.6
MiB of fp32 parameters; BERT-base about 324 MiB beside 418). A copy is made at a weight's first oneDNN
call (inference: no autograd, not traced by torch.compile), so a model that only trains never holds one;
it follows its weight (:class:`fastbert.core.weight_watch.WeightCopy`: made again when the weight is
another tensor or was edited) and goes with it (the copies are held by weak reference to the weight: a
model deleted frees them; a model moved or cast into other memory drops them at once, :func:`forget_moved`). ``FASTBERT_CPU_PREPACK=0`` (read at import) or :func:`set_enabled` (False)
turn it off; :func:`release` drops every copy (they are made again at the next call).
"""

from __future__ import annotations

import os
import threading

import torch
from torch.utils.weak import WeakIdKeyDictionary

from .weight_watch import WeightCopy

__all__ = ["ENV", "enabled", "forget", "forget_moved", "packed", "release", "set_enabled", "stats"]

ENV = "FASTBERT_CPU_PREPACK"


def _enabled_from_env() -> bool:
    raw = os.environ.get(ENV, "").strip().lower()
    if raw in ("", "1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"{ENV} must be 1/on or 0/off, got {raw!r}")


_ENABLED = _enabled_from_env()
#: weight (a fused query/key/value weight: its query parameter) -> [its own copy, the fused weight's copy]
_COPIES: WeakIdKeyDictionary = WeakIdKeyDictionary()
_LOCK = threading.Lock()


def _reorder(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight.default(weight)


class _Packed(WeightCopy):
    """One weight's prepacked copy (an opaque oneDNN tensor)."""

    def __init__(self, weight: torch.Tensor):
        # normal tensors even inside torch.inference_mode(): the copy outlives the call
        with torch.inference_mode(False), torch.no_grad():
            self.packed = _reorder(weight.detach())
        self.nbytes = weight.numel() * weight.element_size()
        self._remember(weight)


def enabled() -> bool:
    """Whether the CPU's oneDNN linears run on prepacked weights."""
    return _ENABLED


def set_enabled(flag: bool) -> None:
    """Turn prepacking on or off for the process; off drops every copy."""
    global _ENABLED
    if not isinstance(flag, bool):
        raise TypeError(f"set_enabled takes True or False, got {flag!r}")
    _ENABLED = flag
    if not flag:
        release()


def release() -> None:
    """Drop every prepacked copy (each is made again at its weight's next call while prepacking is on)."""
    with _LOCK:
        _COPIES.clear()


def forget(weights) -> None:
    """Drop the copies made for ``weights`` (a model's parameters): :func:`fastbert.quant.refresh`, for an
    edit the copies' checks cannot see."""
    with _LOCK:
        for w in weights:
            _COPIES.pop(w, None)


def forget_moved(weights) -> None:
    """Drop the copies made for ``weights`` (a model's parameters) whose weight now lives in other memory or
    has another dtype: called when the model (or a fastbert part of it, ``model.encoder``) is moved or cast
    (``.to()``, ``.half()``, ``.cuda()``), which gives its parameters new memory and would otherwise leave the
    old copies, and the old weights' memory they look at, held until the model is deleted. A call that
    changes nothing (``model.to("cpu")`` on the CPU, ``.float()`` of an fp32 model: the same tensors) keeps
    them, so a server that moves its model at every request does not pack it again each time (whether a
    copy is current is checked at each call anyway: :meth:`WeightCopy.current`)."""
    with _LOCK:
        for w in weights:
            pair = _COPIES.get(w)
            if pair is not None and not all(c is None or _made_from(c, w) for c in pair):
                del _COPIES[w]


def _made_from(copy: _Packed, weight: torch.Tensor) -> bool:
    """Whether ``copy`` was made from ``weight``'s memory and dtype (for a fused query/key/value copy, keyed
    by its query parameter: from the query's memory, which the first of its three parts records)."""
    key = copy._key
    if key is None:
        return False
    address = key[1][0][0] if isinstance(key[1], tuple) else key[0]
    return address == weight.data_ptr() and key[4] == weight.dtype and key[5] == weight.device


def stats() -> tuple[int, int]:
    """(copies held, their bytes)."""
    with _LOCK:
        slots = [c for pair in _COPIES.values() for c in pair if c is not None]
    return len(slots), sum(c.nbytes for c in slots)


def packed(weight: torch.Tensor) -> torch.Tensor:
    """The weight oneDNN's linear should take for ``weight``: its prepacked copy (made now when there is none
    or the weight changed), or ``weight`` itself when prepacking is off. ``weight`` is a contiguous fp32 or
    bf16 CPU weight the caller runs through ``torch.ops.mkldnn._linear_pointwise`` without autograd."""
    if not _ENABLED:
        return weight
    parts = weight.__dict__.get("fastbert_parts")
    # a fused query/key/value weight (a cached view, or a fresh concatenation at each call) is keyed by its
    # query parameter, which lives as long as the model; the copy checks all three (WeightCopy.current)
    key, slot = (weight, 0) if parts is None else (parts[0], 1)
    pair = _COPIES.get(key)
    copy = None if pair is None else pair[slot]
    if copy is not None and copy.current(weight):
        return copy.packed
    with _LOCK:  # once: threads that call at once wait for it, then use that copy
        if not _ENABLED:  # turned off (set_enabled(False) dropped the copies) since the check above
            return weight
        pair = _COPIES.get(key)
        copy = None if pair is None else pair[slot]
        if copy is None or not copy.current(weight):
            copy = _Packed(weight)
            pair = list(pair) if pair is not None else [None, None]
            pair[slot] = copy
            _COPIES[key] = pair
    return copy.packed
