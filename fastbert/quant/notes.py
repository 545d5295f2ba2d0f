"""Warnings of the reduced-precision paths: said once per reason per model, at the user's line.

A quantized model's linears share one :class:`Notes`: the first linear that falls back for a reason
("gradients are recorded", "fp16 inputs", "under torch.compile") warns, the others of the model stay quiet,
and a later, different reason is still said once. The warning points at the first frame outside fastbert,
torch and the libraries that call a model for the user (transformers, sentence-transformers, PEFT): the
user's own call.
"""

from __future__ import annotations

import itertools
import os
import sys
import warnings
import weakref

__all__ = ["Notes", "caller_stacklevel", "note_compile", "warn_at_caller"]

_LIBRARIES = ("fastbert", "torch", "transformers", "sentence_transformers", "peft", "accelerate")


def _skipped_prefixes() -> tuple[str, ...]:
    """The folders of the libraries above that are imported now (never imports one)."""
    out = []
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            out.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(out)


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function point at the first frame
    outside fastbert, torch and the calling libraries (the user's line); 2 when every frame is theirs."""
    prefixes = _skipped_prefixes()
    frame = sys._getframe(1)  # the function that will call warnings.warn: stacklevel 1
    level = 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(prefixes) or name.startswith("<")):  # "<frozen ...>", "<string>" of torch
            return level
        frame = frame.f_back
        level += 1
    return 2


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message)`` attributed to the user's line (:func:`caller_stacklevel`)."""
    warnings.warn(message, category, stacklevel=caller_stacklevel())


class Notes:
    """The reasons one quantized model has warned about (shared by its linears): each said once. ``key``
    names it to :func:`note_compile`, which Dynamo may call with constants only."""

    _count = itertools.count()

    def __init__(self, said: set[str] | None = None):
        self.said: set[str] = set(said or ())
        self.key = f"fastbert-notes-{next(Notes._count)}"
        _BY_KEY[self.key] = self

    def __getstate__(self) -> dict:
        return {"said": set(self.said)}

    def __setstate__(self, state: dict) -> None:  # a copy (deepcopy, pickle) is a model of its own
        self.__init__(state["said"])

    def warn_once(self, key: str, message: str) -> None:
        """Warn ``message`` unless this model has said ``key`` already."""
        if key in self.said:
            return
        self.said.add(key)
        warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())


_BY_KEY: weakref.WeakValueDictionary[str, Notes] = weakref.WeakValueDictionary()


def note_compile(notes_key: str, method: str) -> bool:
    """Say once per model (the :class:`Notes` of ``notes_key``) that the linears compute without ``method``
    under torch.compile. Dynamo runs it while it traces and keeps its result as a constant (what
    ``torch._dynamo.assume_constant_result`` marks, set here without importing Dynamo): said once, with no
    graph break at every linear. Its arguments are strings: torch 2.11's Dynamo refuses any other object
    there (``AsPythonConstantNotImplementedError``)."""
    message = (
        f"{method} linears compute without {method} under torch.compile: the traced graph uses the model's own "
        f"weights (the {method} copies run in eager mode only; call the model without torch.compile for them)"
    )
    notes = _BY_KEY.get(notes_key)
    if notes is None:  # pragma: no cover - the model is gone
        warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())
    else:
        notes.warn_once("compile", message)
    return True


note_compile._dynamo_marked_constant = True  # torch._dynamo.assume_constant_result's mark
