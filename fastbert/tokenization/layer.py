"""``BertTokenizerLayer``: a tokenizer as an ``nn.Module``, PyTorch's counterpart of transformers'
``TFBertTokenizer`` (the BERT page's in-graph tokenizer row).

TFBertTokenizer is a Keras layer that turns strings into the model's input tensors, so that a model can be
exported or served from text. In PyTorch the tokenizer runs on the host either way (the ``tokenizers``
library, outside any graph); what the layer gives is the module's shape: one object that sits in front of
a model (``nn.Sequential``, a serving wrapper), remembers its options, follows the model with
``.to(device)`` and hands back tensors already on that device. Its options and their defaults are
TFBertTokenizer's (transformers 4): ``padding="longest"``, ``truncation=True``, ``max_length=512``,
``pad_to_multiple_of=None``, ``return_token_type_ids=True``, ``return_attention_mask=True``.

``forward(text, text_pair)`` returns exactly what ``tokenizer(text, text_pair, return_tensors="pt", ...)``
returns with the same options; ``return_packed=True`` returns the packed tokens of the varlen forward
instead (see :meth:`BertTokenizerLayer.forward`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .bert import BertTokenizer
from .call import CallMixin

# TFBertTokenizer's call options and defaults (transformers 4's tokenization_bert_tf.py), + return_packed
DEFAULTS: dict[str, Any] = {
    "padding": "longest",
    "truncation": True,
    "max_length": 512,
    "pad_to_multiple_of": None,
    "return_token_type_ids": True,
    "return_attention_mask": True,
    "return_packed": False,
}
_TRUNCATIONS = (True, False, "longest_first", "only_first", "only_second", "do_not_truncate")

# transformers' fast tokenizers set their backend's truncation and padding on every call, then encode with the
# GIL released: threads calling one tokenizer with different options (the layer's padded and packed calls
# differ) encode with each other's settings (a packed batch holding padding, or a ValueError). fastbert's
# tokenizers hold their own lock around both steps; any other tokenizer gets one lock, shared by every layer
# that wraps it, around the layer's calls.
_CALL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CALL_LOCKS_GUARD = threading.Lock()
_SHARED_CALL_LOCK = threading.Lock()


def _call_lock(tokenizer: Any) -> Any:
    """The context the layer calls ``tokenizer`` in: nothing for fastbert's, else that tokenizer's lock."""
    if isinstance(tokenizer, CallMixin):
        return contextlib.nullcontext()
    with _CALL_LOCKS_GUARD:
        try:
            return _CALL_LOCKS.setdefault(tokenizer, threading.Lock())
        except TypeError:  # neither hashable nor weakly referable: one lock for all of those
            return _SHARED_CALL_LOCK


def _check_options(options: Mapping[str, Any]) -> None:
    """``ValueError`` / ``TypeError`` naming the first option that is not what it may be."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(
            f"BertTokenizerLayer has no option {unknown[0]!r}; its options: {', '.join(DEFAULTS)}"
        )
    for name, value in options.items():
        if name == "padding" and value not in ("longest", "max_length"):
            raise ValueError(f"padding should be 'longest' or 'max_length', got {value!r}")
        if name == "truncation" and not any(
            value is t if isinstance(t, bool) else value == t for t in _TRUNCATIONS
        ):
            raise ValueError(f"truncation should be True, False or a strategy name, got {value!r}")
        if name in ("max_length", "pad_to_multiple_of") and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} should be a whole number of tokens, at least 1, or None; got {value!r}"
                )
        if name.startswith("return_") and not isinstance(value, bool):
            raise TypeError(f"{name} should be True or False, got {value!r}")


class BertTokenizerLayer(nn.Module):
    """Strings in, the model's input tensors out, on the module's device.

    Build it with :meth:`from_pretrained` (a model folder or hub id) or :meth:`from_tokenizer` (a fastbert
    or transformers BERT tokenizer); the keyword options set the defaults of every call, and each call may
    override them. The tokenizer is kept as it is: the layer's output is the tokenizer's, as tensors.
    """

    def __init__(self, tokenizer: Any, **options: Any):
        super().__init__()
        if not callable(tokenizer):
            raise TypeError(
                f"BertTokenizerLayer needs a tokenizer (fastbert.BertTokenizer or transformers' BertTokenizerFast), "
                f"got {type(tokenizer).__name__}"
            )
        _check_options(options)
        self.tokenizer = tokenizer
        self.options = {**DEFAULTS, **options}
        # no parameters: this empty buffer follows .to(device), and says where outputs go
        self.register_buffer("_device_marker", torch.empty(0), persistent=False)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **options: Any) -> BertTokenizerLayer:
        """The layer of an existing tokenizer (fastbert's ``BertTokenizer`` or transformers' ``BertTokenizerFast``
        / ``BertTokenizer``), with the options of every call (``padding``, ``truncation``, ``max_length``,
        ``pad_to_multiple_of``, ``return_token_type_ids``, ``return_attention_mask``, ``return_packed``)."""
        return cls(tokenizer, **options)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> BertTokenizerLayer:
        """Load fastbert's ``BertTokenizer`` from a model folder or hub id; the layer's options (see
        :meth:`from_tokenizer`) are taken out of ``kwargs``, the rest go to ``BertTokenizer.from_pretrained``."""
        options = {name: kwargs.pop(name) for name in list(kwargs) if name in DEFAULTS}
        _check_options(options)  # before any file is read
        return cls(BertTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs), **options)

    @property
    def device(self) -> torch.device:
        return self._device_marker.device

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Any:
        """The tokenizer's files (``from_pretrained`` loads them back; the options are the caller's)."""
        return self.tokenizer.save_pretrained(save_directory, **kwargs)

    def forward(self, text: Any, text_pair: Any = None, **options: Any) -> dict[str, Any]:
        """Tokenize a string, a list of strings, a list of ``(text, text_pair)`` pairs, or ``text`` with
        ``text_pair`` (a string or a list of strings), with the layer's options overridden by ``options`` (one
        given as None is the layer's, as in ``TFBertTokenizer.call``).

        Returns ``tokenizer(text, text_pair, return_tensors="pt", padding=..., truncation=..., max_length=...,
        pad_to_multiple_of=..., return_token_type_ids=..., return_attention_mask=...)`` as a dict of int64
        tensors on the layer's device (a single string gives a batch of one).

        With ``return_packed=True``: no padding at all, the packed tokens of the varlen forward
        (``fastbert.core.padding``'s contract): ``input_ids`` (total,) int64, the real tokens sequence after
        sequence; ``token_type_ids`` (total,) int64 (with ``return_token_type_ids``); ``position_ids`` (total,)
        int64, 0 .. length - 1 within each sequence (as the model numbers a right-padded batch);
        ``cu_seqlens`` (batch + 1,) int32, where each sequence starts; ``max_seqlen``, a Python int.
        ``padding``, ``pad_to_multiple_of`` and ``return_attention_mask`` do not apply.
        """
        # None is the layer's option, as in TFBertTokenizer.call (every option there defaults to None)
        options = {name: value for name, value in options.items() if value is not None}
        _check_options(options)
        o = {**self.options, **options}
        common = dict(
            truncation=o["truncation"],
            max_length=o["max_length"],
            return_token_type_ids=o["return_token_type_ids"],
        )
        if o["return_packed"]:
            with _call_lock(self.tokenizer):
                encoded = self.tokenizer(
                    text, text_pair, padding=False, return_attention_mask=False, **common
                )
            return self._packed(encoded, o["return_token_type_ids"])
        with _call_lock(self.tokenizer):
            encoded = self.tokenizer(
                text,
                text_pair,
                padding=o["padding"],
                pad_to_multiple_of=o["pad_to_multiple_of"],
                return_attention_mask=o["return_attention_mask"],
                return_tensors="pt",
                **common,
            )
        return {key: value.to(self.device) for key, value in encoded.items()}

    def _packed(self, encoded: Mapping[str, Any], with_token_types: bool) -> dict[str, Any]:
        """Unpadded encodings (lists of ids, one list a sequence) → the packed tensors."""
        rows = encoded["input_ids"]
        batched = len(rows) == 0 or isinstance(rows[0], list)
        rows = rows if batched else [rows]
        lengths = torch.tensor([len(row) for row in rows], dtype=torch.int32)
        cu_seqlens = torch.zeros(len(rows) + 1, dtype=torch.int32)
        torch.cumsum(lengths, dim=0, dtype=torch.int32, out=cu_seqlens[1:])
        out: dict[str, Any] = {"input_ids": torch.tensor([i for row in rows for i in row], dtype=torch.long)}
        if with_token_types:
            types = encoded["token_type_ids"] if batched else [encoded["token_type_ids"]]
            out["token_type_ids"] = torch.tensor([t for row in types for t in row], dtype=torch.long)
        out["position_ids"] = torch.tensor([p for row in rows for p in range(len(row))], dtype=torch.long)
        out = {key: value.to(self.device) for key, value in out.items()}
        out["cu_seqlens"] = cu_seqlens.to(self.device)
        out["max_seqlen"] = int(lengths.max()) if len(rows) else 0
        return out

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if DEFAULTS[k] != v)
        name = getattr(self.tokenizer, "name_or_path", "")
        return f"tokenizer={type(self.tokenizer).__name__}({name!r})" + (f", {options}" if options else "")
