"""Whether a call is being traced (``torch.compile``, ``torch.export``) rather than run eagerly."""

from __future__ import annotations

import torch

__all__ = ["traced"]

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def traced(x: torch.Tensor) -> bool:
    """True while Dynamo traces the calling frame (``torch.compiler.is_dynamo_compiling()``, folded to True
    there), or while another tracer (export, make_fx) runs on ``x`` (a fake or functional tensor subclass,
    with torch's compile flag up). Not that flag alone: torch holds it up, process-wide, for a whole compile
    session, so a thread running eagerly while another thread compiles (a server's second worker, while the
    first compiles its int8 passes) would take itself for traced."""
    if torch.compiler.is_dynamo_compiling():
        return True
    return torch.compiler.is_compiling() and type(x) not in _PLAIN
