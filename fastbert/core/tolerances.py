"""The one parity rule of fastbert: kernel tests, model tests, ``fastbert check`` and ``fastbert bench``.

An output is judged against a reference computed in higher precision (float64 for ops and, where the
device allows it, for models; else fp32). PyTorch's own output in the dtype under test, computed the
plain way, has its own error against that reference. fastbert passes when

    max|ours - ref| <= FACTOR * max|torch - ref| + FLOOR[dtype] * max|ref|

on the positions that count (valid tokens: padded positions are excluded by the caller's mask). The
floor is a few units in the last place of the dtype at the reference's magnitude: it covers outputs that
the torch op happens to get exactly right (relu, tiny rows, an fp32 reference against itself) and nothing
more. It scales with the output below 1 too: one ulp at magnitude 1 as the floor of every smaller output
passed bf16 unit-normalized embeddings (components of at most 0.18) 0.008 off, 16 times torch's own error
(cosine 0.989). A tensor that is zero in exact arithmetic (a key bias's gradient) has rounding errors at
the scale of the terms it sums, not at its own: judge it together with the tensors it shares that scale with
(a block's gradients as one output: a key bias's with its attention's query, key and value; a model's weights
after training), and no wider: a whole model's gradients as one output passed a query's 10% off. Quantized
rivals (int8) cannot meet an error bound of their dtype; they are judged by cosine similarity instead
(:data:`MIN_COSINE_QUANTIZED`).

```python
from fastbert.core.tolerances import judge
v = judge(ours, torch_out, ref, torch.float16, mask=attention_mask.bool())
assert v.ok, v.message("last_hidden_state")
```
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: ours may be this many times worse than PyTorch's own error in the same dtype
FACTOR = 4.0

#: the floor, in units of the reference's magnitude: about 8 ulps of fp32, one of fp16/bf16
FLOOR: dict[torch.dtype, float] = {
    torch.float64: 1e-12,
    torch.float32: 2.0**-20,
    torch.float16: 2.0**-10,
    torch.bfloat16: 2.0**-7,
}

#: int8-quantized rivals: minimum cosine similarity of each output row to the fp32 reference
MIN_COSINE_QUANTIZED = 0.999


def _select(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    t = t.detach().double()
    return t if mask is None else t[mask.to(device=t.device, dtype=torch.bool)]


def max_error(out: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """max |out - ref| (on ``mask``'s positions when given; 0 for empty tensors)."""
    diff = _select(out, mask) - _select(ref, mask).to(out.device)
    return diff.abs().max().item() if diff.numel() else 0.0


def bound(torch_error: float, dtype: torch.dtype, ref_magnitude: float = 1.0) -> float:
    """The largest error the rule allows for a dtype, given PyTorch's own error there and the reference's
    magnitude (max |ref| on the positions that count)."""
    return FACTOR * torch_error + FLOOR[dtype] * ref_magnitude


@dataclass(frozen=True)
class Verdict:
    """One comparison: our error, PyTorch's own error, the bound they imply."""

    error: float
    torch_error: float
    bound: float
    finite: bool = True

    @property
    def bounded(self) -> bool:
        """False when PyTorch's own output or the reference holds inf (an overflow in the dtype): the bound
        is then infinite and would pass any finite output, so the comparison fails instead."""
        return self.bound < float("inf")

    @property
    def ok(self) -> bool:
        return self.finite and self.bounded and self.error <= self.bound

    def message(self, what: str = "output") -> str:
        if not self.finite:
            return f"{what}: NaN or inf in the output"
        if not self.bounded:
            return f"{what}: NaN or inf in torch's own output or in the reference: no bound to judge by"
        verb = "<=" if self.ok else ">"
        return (
            f"{what}: max|ours - ref| = {self.error:.3g} {verb} {FACTOR:g} * torch's own {self.torch_error:.3g}"
            f" + floor = {self.bound:.3g}"
        )


def judge(
    out: torch.Tensor,
    torch_out: torch.Tensor | None,
    ref: torch.Tensor,
    dtype: torch.dtype,
    mask: torch.Tensor | None = None,
) -> Verdict:
    """Apply the rule. ``torch_out`` is PyTorch's own output in ``dtype`` (None: the floor alone, as for an
    fp32 output judged against an fp32 reference); ``mask`` selects the positions that count (at least one of
    a non-empty output: a ValueError otherwise, as an all-padding batch compares nothing). The three
    must have one shape: torch's output of shape (n, 1) against a reference of shape (n,) broadcast to an
    (n, n) difference, its "error" the spread of the values, and the bound passed anything."""
    for name, t in (("output", out), ("torch's own output", torch_out)):
        if t is not None and tuple(t.shape) != tuple(ref.shape):
            raise ValueError(
                f"{name} of shape {tuple(t.shape)} judged against a reference of shape {tuple(ref.shape)}"
            )
    ours = _select(out, mask)
    if mask is not None and out.numel() and not ours.numel():
        # every position padding (a mask of zeros): nothing compared, an error of 0 that passed any output
        raise ValueError(
            f"the mask of shape {tuple(mask.shape)} selects no position of the output: nothing to judge "
            "(give at least one valid token)"
        )
    finite = bool(torch.isfinite(ours).all()) if ours.numel() else True
    reference = _select(ref, mask).to(ours.device)
    magnitude = reference.abs().max().item() if reference.numel() else 1.0
    torch_error = 0.0 if torch_out is None else max_error(torch_out, ref, mask)
    error = max_error(out, ref, mask) if finite else float("inf")
    return Verdict(error, torch_error, bound(torch_error, dtype, magnitude), finite)


def assert_close(
    out: torch.Tensor,
    torch_out: torch.Tensor | None,
    ref: torch.Tensor,
    dtype: torch.dtype,
    mask: torch.Tensor | None = None,
    what: str = "output",
) -> Verdict:
    """:func:`judge`, raising AssertionError with the figures when the rule is broken."""
    verdict = judge(out, torch_out, ref, dtype, mask)
    if not verdict.ok:
        raise AssertionError(verdict.message(what))
    return verdict


def min_cosine(out: torch.Tensor, ref: torch.Tensor) -> float:
    """The smallest cosine similarity between matching rows (last dimension) of two outputs; a ValueError
    where there is no row (an all-padding selection), as :func:`judge` refuses one: a cosine of 1 over no
    row passed any output."""
    a = out.detach().double().reshape(-1, out.shape[-1])
    b = ref.detach().double().reshape(-1, ref.shape[-1]).to(a.device)
    if not a.numel():
        raise ValueError(
            f"no row to compare (outputs of shape {tuple(out.shape)}): nothing to judge (give at least one "
            "valid token)"
        )
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item()
