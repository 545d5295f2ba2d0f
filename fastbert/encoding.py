"""``BatchEncoding``: what a tokenizer call returns, with transformers' ``BatchEncoding`` API.

A dict of model inputs (``input_ids``, ``token_type_ids``, ``attention_mask``, ...) with attribute access,
``.to(device)``, conversion to torch tensors or numpy arrays, and, when it comes from the ``tokenizers``
backend, the per-sequence ``tokenizers.Encoding`` objects and their alignment helpers (``word_ids``,
``sequence_ids``, ``char_to_token``, ...).
"""

from __future__ import annotations

import copy
import logging
from collections import UserDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

__all__ = ["BatchEncoding", "CharSpan", "TokenSpan"]


class CharSpan(NamedTuple):
    start: int
    end: int


class TokenSpan(NamedTuple):
    start: int
    end: int


def _enum_value(x: Any) -> Any:
    """transformers' PaddingStrategy / TruncationStrategy / TensorType enums → their string value."""
    value = getattr(x, "value", None)
    return value if isinstance(value, str) else x


class BatchEncoding(UserDict):
    """What a tokenizer call returns: a mapping of model inputs (``input_ids``, ``token_type_ids``,
    ``attention_mask``, ...) with attribute access, ``.to(device)`` and, when it comes from the ``tokenizers``
    backend, the per-sequence ``encodings`` and their alignment helpers.

    As transformers' (4 and 5) a ``UserDict``: ``.data`` is the plain ``dict`` that holds the keys, so writing
    through it shows in the encoding, and ``torch.save(enc.data)`` loads back with ``weights_only=True``; like
    transformers', it is a ``Mapping``, not a ``dict`` subclass (``dict(enc)`` or ``enc.data`` give a dict)."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        encoding: Any = None,
        tensor_type: str | None = None,
        prepend_batch_axis: bool = False,
        n_sequences: int | None = None,
    ):
        super().__init__(data)
        if encoding is not None and not isinstance(encoding, (list, tuple)):
            encoding = [encoding]
        self._encodings = list(encoding) if encoding is not None else None
        if n_sequences is None and self._encodings:
            n_sequences = self._encodings[0].n_sequences
        self._n_sequences = n_sequences
        self.convert_to_tensors(tensor_type=tensor_type, prepend_batch_axis=prepend_batch_axis)

    # dict access ---------------------------------------------------------------------------------------------
    def __getitem__(self, item: Any) -> Any:
        """As transformers 4 and 5: a str key → its value; any other key (an int, a slice) indexes the
        ``tokenizers.Encoding`` list when there is one (``enc[:2]`` → ``list[Encoding]``); without encodings
        (built by hand or by ``pad``), a slice → ``{key: value[slice]}``, and an int is a ``KeyError``."""
        if isinstance(item, str):
            return self.data[item]
        if self._encodings is not None:
            return self._encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.data.items()}
        raise KeyError(
            "Invalid key. Only three types of key are available: (1) string, (2) integers for backend Encoding, "
            "and (3) slices for data subsetting."
        )

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__") or item in ("data", "_encodings", "_n_sequences"):
            raise AttributeError(item)
        try:
            return self.data[item]
        except KeyError:
            raise AttributeError(f"'BatchEncoding' object has no attribute {item!r}") from None

    def __getstate__(self) -> dict:
        return {"data": self.data, "encodings": self._encodings, "n_sequences": self._n_sequences}

    def __setstate__(self, state: dict) -> None:
        self.data = dict(state.get("data") or {})
        self._encodings = state.get("encodings")
        self._n_sequences = state.get("n_sequences")

    def __reduce__(self):
        return (self.__class__, (), self.__getstate__())

    def __copy__(self) -> BatchEncoding:
        return BatchEncoding(self.data, self._encodings, n_sequences=self._n_sequences)

    def copy(self) -> BatchEncoding:
        """A shallow copy that stays a ``BatchEncoding`` with its encodings, as transformers' ``UserDict.copy``."""
        return self.__copy__()

    def __or__(self, other: Any) -> BatchEncoding:
        """``enc | {...}``: a new ``BatchEncoding`` of the merged keys, without encodings, as transformers'
        ``UserDict.__or__``."""
        if not isinstance(other, Mapping):
            return NotImplemented
        return BatchEncoding({**self.data, **other})

    def __ror__(self, other: Any) -> BatchEncoding:
        if not isinstance(other, Mapping):
            return NotImplemented
        return BatchEncoding({**other, **self.data})

    def __deepcopy__(self, memo: dict) -> BatchEncoding:
        return BatchEncoding(
            copy.deepcopy(self.data, memo),
            copy.deepcopy(self._encodings, memo),
            n_sequences=self._n_sequences,
        )

    @property
    def encodings(self) -> list | None:
        """The ``tokenizers.Encoding`` of each sequence (None when built by hand or by ``pad``)."""
        return self._encodings

    @property
    def n_sequences(self) -> int | None:
        """1 for single sentences, 2 for pairs; None when unknown."""
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    # alignment helpers --------------------------------------------------------------------------------------
    def _encoding(self, batch_index: int, what: str) -> Any:
        if not self._encodings:
            raise ValueError(
                f"{what}() is not available when the BatchEncoding has no encodings (built by hand or by pad)"
            )
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        return self._encoding(batch_index, "tokens").tokens

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index, "sequence_ids").sequence_ids

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index, "word_ids").word_ids

    def words(self, batch_index: int = 0) -> list[int | None]:
        return self.word_ids(batch_index)

    def _ask(
        self, method: str, batch_or_index: int, index: int | None, *args: Any, from_end: bool = False
    ) -> Any:
        """``Encoding.<method>(index, *args)`` of one sequence: ``(index)`` is of sequence 0,
        ``(batch_index, index)`` of another; with ``from_end``, a negative index counts from the end."""
        batch, index = (batch_or_index, index) if index is not None else (0, batch_or_index)
        encoding = self._encoding(batch, method)
        if from_end and index < 0:
            index += len(encoding)
        return getattr(encoding, method)(index, *args)

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        return self._ask("token_to_sequence", batch_or_token_index, token_index, from_end=True)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        return self._ask("token_to_word", batch_or_token_index, token_index, from_end=True)

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        span = self._ask("token_to_chars", batch_or_token_index, token_index)
        return CharSpan(*span) if span is not None else None

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        return self._ask("char_to_token", batch_or_char_index, char_index, sequence_index)

    def char_to_word(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        return self._ask("char_to_word", batch_or_char_index, char_index, sequence_index)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        span = self._ask("word_to_tokens", batch_or_word_index, word_index, sequence_index)
        return TokenSpan(*span) if span is not None else None

    def word_to_chars(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> CharSpan | None:
        span = self._ask("word_to_chars", batch_or_word_index, word_index, sequence_index)
        return CharSpan(*span) if span is not None else None

    # tensors ------------------------------------------------------------------------------------------------
    def convert_to_tensors(
        self, tensor_type: str | None = None, prepend_batch_axis: bool = False
    ) -> BatchEncoding:
        """Turn the python lists into torch tensors (``"pt"``) or numpy arrays (``"np"``), in place."""
        tensor_type = _enum_value(tensor_type)
        if tensor_type is None:
            return self
        tensor_class, as_tensor = _converter(tensor_type)
        for key, value in list(self.data.items()):
            if prepend_batch_axis:
                value = [value]
            if isinstance(value, tensor_class):
                continue
            try:
                tensor = as_tensor(value)
            except Exception as e:
                raise _tensor_error(key) from e
            self.data[key] = tensor
        return self

    def to(self, device: Any, *, non_blocking: bool = False) -> BatchEncoding:
        """Move every tensor to ``device`` (a str, int or ``torch.device``), in place; returns ``self``.
        ``non_blocking`` is keyword-only, as transformers': ``.to("cuda", torch.float16)`` is a TypeError."""
        import torch

        if isinstance(device, (str, int, torch.device)):
            for key, value in list(self.data.items()):
                if isinstance(value, torch.Tensor):
                    self.data[key] = value.to(device=device, non_blocking=non_blocking)
        else:
            logger.warning(f"Attempting to cast a BatchEncoding to type {device!s}. This is not supported.")
        return self


def _torch_tensor(x: Any) -> Any:
    import torch

    if isinstance(x, list) and x and hasattr(x[0], "__array__") and not isinstance(x[0], list):
        import numpy as np

        return torch.from_numpy(np.array(x))
    if isinstance(x, (list, tuple)) and _is_empty(x):
        return torch.tensor(x, dtype=torch.long)  # empty (at any depth, lists or tuples): ids, not floats
    return torch.tensor(x)


def _is_empty(x: Any) -> bool:
    """No leaf value in ``x`` (``[]``, ``[[], []]``)."""
    if len(x) == 0:
        return True
    return isinstance(x[0], (list, tuple)) and all(_is_empty(r) for r in x)


def _numpy_array(x: Any, dtype: Any = None) -> Any:
    """transformers' numpy conversion (4.57 and 5): rows of different lengths (no padding) give a 1-D
    ``dtype=object`` array of per-row arrays, without a warning; empty lists give int64."""
    import numpy as np

    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (list, tuple, np.ndarray)) and dtype is None:
        if len({len(r) for r in x}) > 1:
            ragged = np.empty(len(x), dtype=object)  # never broadcast into a 2-D object array
            ragged[:] = [np.asarray(r) for r in x]
            return ragged
    if dtype is None and isinstance(x, (list, tuple)) and _is_empty(x):
        dtype = np.int64
    return np.asarray(x, dtype=dtype)


def _converter(tensor_type: str) -> tuple[type, Callable[[Any], Any]]:
    """The tensor class of ``tensor_type`` and the function that makes one from python lists."""
    if tensor_type == "pt":
        import torch

        return torch.Tensor, _torch_tensor
    if tensor_type == "np":
        import numpy as np

        return np.ndarray, _numpy_array
    raise ValueError(
        f"Unsupported return_tensors={tensor_type!r}: fastbert returns 'pt' (torch), 'np' (numpy) or None (lists)"
    )


def _tensor_error(key: str) -> ValueError:
    if key == "overflowing_tokens":
        return ValueError(
            "Unable to create tensor returning overflowing tokens of different lengths. "
            "Please see if a fast version of this tokenizer is available to have this feature available."
        )
    return ValueError(
        "Unable to create tensor, you should probably activate truncation and/or padding with "
        "'padding=True' 'truncation=True' to have batched tensors with the same length. Perhaps your "
        f"features (`{key}` in this case) have excessive nesting (inputs type `list` where type `int` is "
        "expected)."
    )
