"""Copies that follow their weight: an int8 or FP8 copy (:mod:`fastbert.quant`), a prepacked oneDNN layout
(:mod:`fastbert.core.prepack`). The fp32 (or fp16/bf16) parameter stays the truth; a copy made from it is
checked at each call (:meth:`WeightCopy.current`) and made again when the weight changed."""

from __future__ import annotations

import torch

__all__ = ["DTYPE_NAMES", "WeightCopy", "weight_sample"]

#: the short names of the weights' dtypes, in the reprs of what computes a linear (a copy, or the weight's dtype)
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


#: the integer dtype of each element size: samples are compared bit for bit (NaN equals itself)
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
#: elements of a weight compared at each call (CPU), spread over its rows and columns
_SAMPLE = 64


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # an inference tensor keeps no version counter
        return None


def weight_sample(weight: torch.Tensor) -> torch.Tensor:
    """Up to 64 elements of a 2-D weight spread over its rows and columns, as a view of the weight's own
    memory and integer bits (no copy, so an edit through ``.data`` shows in it): evenly spaced in the memory of
    a contiguous weight; for another layout (a transposed or sliced weight) the t-th at row t * rs and column
    t * cs, the longer side covered end to end."""
    n, k = weight.shape
    if weight.is_contiguous():
        m = min(_SAMPLE, n * k)
        step = max((n * k - 1) // max(m - 1, 1), 1)
        if k > 1 and step % k == 0:  # not the same column of every sampled row
            step -= 1
    else:
        long, short = (n, k) if n >= k else (k, n)
        along = max(1, -(-(long - 1) // (_SAMPLE - 1)))  # ceil: the last row (column) is reached
        m = (long - 1) // along + 1
        across = (short - 1) // (m - 1) if m > 1 else 0
        rs, cs = (along, across) if n >= k else (across, along)
        step = rs * weight.stride(0) + cs * weight.stride(1)
    sample = weight.as_strided((m,), (step,), weight.storage_offset())
    return sample.view(_BITS[weight.element_size()])


def _identity(weight: torch.Tensor) -> tuple:
    """What a weight is, short of its values: address, version counter, shape, strides, dtype, device. A
    fused query/key/value weight (a view of, or a concatenation of, three parameters: ``fastbert_parts``)
    has, in place of its own version counter (the query's, or a fresh tensor's), the address and version
    counter of each of the three parameters."""
    parts = weight.__dict__.get("fastbert_parts")
    version = _version(weight) if parts is None else tuple((p.data_ptr(), _version(p)) for p in parts)
    return (weight.data_ptr(), version, weight.shape, weight.stride(), weight.dtype, weight.device)


class WeightCopy:
    """A copy made from a weight (a reduced or a prepacked one), and whether it still matches the weight it
    is called with (the module's current one).

    Remembered at each pack: the weight's address, version counter, shape, dtype and device, and (CPU
    weights) the bits of :func:`weight_sample`. At each call the copy is current when the weight is the same
    memory, not edited in place (``_version``; every in-place op through the parameter, ``load_state_dict``,
    an optimizer step), and (CPU) still holds the sampled bits: edits through ``.data`` (``p.data.copy_``,
    PEFT's ``merge_and_unload``) leave ``_version`` as it was and are seen by the sample. Another tensor
    (``p.data = t``, ``module.weight = ...``, ``load_state_dict(assign=True)``, ``to_empty``) is copied again;
    the concatenated query/key/value weight, a fresh tensor at each call, is taken as current while its three
    parameters are the same tensors, unedited in place, and the sampled bits are the same. On CUDA the sample
    is not compared (it would synchronise the device at every linear): another tensor is always copied
    again, and an edit through ``.data`` needs the copy's owner to make it again by hand
    (:func:`fastbert.quant.refresh`, :func:`fastbert.core.prepack.release`); so does an edit that leaves
    every sampled element as it was.
    """

    _key: tuple | None = None
    _sample: torch.Tensor | None = None
    _view: torch.Tensor | None = None  # the sampled elements of the remembered weight, a view of its memory

    def _remember(self, weight: torch.Tensor) -> None:
        cpu = weight.device.type == "cpu"
        # the view is made once, not at every check: a Parameter's as_strided goes through autograd, half
        # of what a check cost (benchmarks/results/code-notes.md)
        self._view = weight_sample(weight.detach()) if cpu else None
        self._sample = self._view.clone() if cpu else None
        self._key = _identity(weight)  # last: a thread that sees it finds the copy complete

    def current(self, weight: torch.Tensor) -> bool:
        """True when the copy was made from this weight's values (see the class docstring)."""
        old = self._key
        if old is None:
            return False
        key = _identity(weight)
        if key[2:] != old[2:]:
            return False
        same_memory = key[0] == old[0]
        fused = isinstance(key[1], tuple)
        if key[1] != old[1] and (same_memory or fused):
            return False  # edited in place through the parameter (one of a fused weight's three)
        if not same_memory and not fused:
            # another tensor (p.data = t, module.weight = ..., assign=True, to_empty): its values may differ
            # wherever the sample does not look (a pruned or sparsely edited weight)
            return False
        if self._sample is None:  # CUDA: the host-side checks only
            return same_memory
        view = self._view if same_memory else weight_sample(weight.detach())
        if not torch.equal(view, self._sample):
            return False
        if not same_memory:  # a concatenated fused weight (a fresh tensor at each call) of the same three
            self._key, self._view = key, view
        return True
