"""Output buffers that the CPU linears of one forward reuse, so that their memory is touched once, not once a
layer.

Why: a fresh GEMM output above glibc's mmap threshold (at most 32 MB: BERT-base's QKV and intermediate
outputs at 4,096 tokens are 38 and 50 MB) is mapped anew and every one of its pages faults in, in every
layer. Written into a buffer of this workspace instead, they fault in once per forward (the page-fault
counts: benchmarks/results/code-notes.md).

```python
with workspace.scope():                  # the driver, around the layers of one forward
    out = workspace.take((T, N), dtype)  # the sdpa table's linear: a free buffer's view, or None
```

A buffer is handed out only while nothing else uses its memory: the view returned holds a reference to
the buffer's storage, so while that view, or any view of it (q/k/v, a residual kept by a pre-norm layer,
a hidden state the caller asked for), is alive the buffer is busy; when all of them are gone it is free
for the next linear. Buffers live as long as the scope (a forward); what the caller keeps of them (outputs
in ``hidden_states``) stays valid after it. No scope: :func:`take` returns None (a plain allocation).
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import torch

__all__ = ["MAX_BUFFERS", "Workspace", "scope", "take"]

#: the most buffers one forward keeps (BERT's layer needs three at once: QKV, attention output, intermediate)
MAX_BUFFERS = 6


_USE_COUNT = getattr(torch._C, "_storage_Use_Count", None)  # a private torch API: without it, no workspace


def _storage_uses(t: torch.Tensor) -> int:
    return _USE_COUNT(t.untyped_storage()._cdata)


#: what :func:`_storage_uses` reads for a tensor that nothing else shares (the call itself holds one)
_ALONE = _storage_uses(torch.empty(1)) if _USE_COUNT is not None else None


class Workspace:
    """The buffers of one forward: flat tensors, handed out best-fit by size while free."""

    def __init__(self, max_buffers: int = MAX_BUFFERS):
        self.max_buffers = max_buffers
        self.buffers: list[torch.Tensor] = []

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
        """A (shape, dtype) CPU view of a free buffer, a new buffer while fewer than ``max_buffers`` exist,
        else None (the caller allocates as usual)."""
        n = math.prod(shape)
        best = None
        for b in self.buffers:
            if b.dtype == dtype and b.numel() >= n and _storage_uses(b) == _ALONE:
                if best is None or b.numel() < best.numel():
                    best = b
        if best is None:
            if len(self.buffers) >= self.max_buffers:
                return None
            best = torch.empty(n, dtype=dtype)
            self.buffers.append(best)
        return best[:n].view(shape)


_ACTIVE: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar("fastbert_workspace", default=None)


@contextlib.contextmanager
def scope(max_buffers: int = MAX_BUFFERS):
    """A workspace for the calls inside (one forward); the one outside, if any, comes back after it."""
    token = _ACTIVE.set(Workspace(max_buffers))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def take(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """A buffer of the active workspace (see :meth:`Workspace.take`); None without one (or on a torch
    that cannot tell whether a buffer is still in use)."""
    ws = _ACTIVE.get()
    return None if ws is None or _ALONE is None else ws.take(shape, dtype)
