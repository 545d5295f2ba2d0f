"""The call / pad / truncate path: text in, ``BatchEncoding`` out, as transformers' fast tokenizers do it.

``CallMixin`` turns the ``padding`` / ``truncation`` / ``max_length`` arguments into strategies (transformers'
``_get_padding_truncation_strategies``), sets them on the ``tokenizers`` backend, encodes the batch and gathers
the asked-for keys; ``pad`` pads encodings made without padding (data collators, pipelines); ``decode`` goes
back. Model-agnostic: it reads the tokenizer's ``_tokenizer`` backend, ``pad_token`` and length settings.
"""

from __future__ import annotations

import logging
import numbers
import operator
import threading
import warnings
from collections.abc import Mapping, Sequence, Sized
from typing import Any

from tokenizers import Tokenizer

from ..encoding import BatchEncoding, _enum_value
from .files import LARGE_INTEGER, _is_str_list

logger = logging.getLogger(__name__)

_PADDING = ("longest", "max_length", "do_not_pad")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")
# encode()'s positional arguments after text and text_pair (transformers 4.57 and 5)
_ENCODE_POSITIONAL = (
    "add_special_tokens",
    "padding",
    "truncation",
    "max_length",
    "stride",
    "padding_side",
    "return_tensors",
)
# transformers 4.57's encode_plus() / batch_encode_plus(): positional arguments after the text(s)
_PLUS_POSITIONAL = (
    "add_special_tokens",
    "padding",
    "truncation",
    "max_length",
    "stride",
    "is_split_into_words",
    "pad_to_multiple_of",
    "padding_side",
    "return_tensors",
    "return_token_type_ids",
    "return_attention_mask",
    "return_overflowing_tokens",
    "return_special_tokens_mask",
    "return_offsets_mapping",
    "return_length",
    "verbose",
)


def _to_py(obj: Any) -> Any:
    """Tensors, arrays and numpy scalars → python ints and lists."""
    if isinstance(obj, (int, float, str)) or obj is None:
        return obj
    if isinstance(obj, Mapping):
        return {k: _to_py(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_py(o) for o in obj]
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    return obj


def _is_valid_text_input(t: Any) -> bool:
    if isinstance(t, str):
        return True
    if isinstance(t, (list, tuple)):
        if len(t) == 0:
            return True
        if isinstance(t[0], str):
            return True
        if isinstance(t[0], (list, tuple)):
            return len(t[0]) == 0 or isinstance(t[0][0], str)
    return False


_TEXT_TYPE_ERROR = (
    "text input must be of type `str` (single example), `list[str]` (batch or single pretokenized example) "
    "or `list[list[str]]` (batch of pretokenized examples)."
)


# --------------------------------------------------------------------------------------------------------------
# the call path of a tokenizer
# --------------------------------------------------------------------------------------------------------------


class CallMixin:
    """``__call__``, ``encode``, ``tokenize``, ``decode`` and ``pad`` of a tokenizer whose backend is
    ``self._tokenizer`` (set per call under ``self._lock``)."""

    _tokenizer: Tokenizer
    _lock: threading.RLock
    _warned: set[str]
    model_input_names: list[str]
    model_max_length: int
    padding_side: str
    truncation_side: str
    pad_token: str | None
    pad_token_type_id: int
    clean_up_tokenization_spaces: bool

    # ---------------------------------------------------------------------------------------------------------
    # encoding
    # ---------------------------------------------------------------------------------------------------------
    def _strategies(
        self,
        padding: Any = False,
        truncation: Any = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        verbose: bool = True,
    ) -> tuple[str, str, int | None]:
        """transformers' _get_padding_truncation_strategies: → (padding, truncation, max_length)."""
        max_length = _check_count("max_length", max_length)
        pad_to_multiple_of = _check_count("pad_to_multiple_of", pad_to_multiple_of)
        padding, truncation = _enum_value(padding), _enum_value(truncation)
        if max_length is not None and padding is False and truncation is None:
            self._warn_once(
                "truncation-not-explicitly-activated",
                verbose,
                "Truncation was not explicitly activated but `max_length` is provided a specific value, please"
                " use `truncation=True` to explicitly truncate examples to max length. Defaulting to"
                " 'longest_first' truncation strategy. If you encode pairs of sequences (GLUE-style) with the"
                " tokenizer you can select this strategy more precisely by providing a specific strategy to"
                " `truncation`.",
            )
            truncation = "longest_first"
        if (
            padding is True
            and verbose
            and max_length is not None
            and truncation in (None, False, "do_not_truncate")
        ):
            warnings.warn(
                "`max_length` is ignored when `padding`=`True` and there is no truncation strategy. "
                "To pad to max length, use `padding='max_length'`.",
                stacklevel=3,
            )
        padding_strategy = _strategy("padding", padding, _PADDING, "longest", "do_not_pad")
        truncation_strategy = _strategy(
            "truncation", truncation, _TRUNCATION, "longest_first", "do_not_truncate"
        )

        if max_length is None and self.model_max_length > LARGE_INTEGER:
            if padding_strategy == "max_length":
                self._warn_once(
                    "asking-to-pad-to-max_length",
                    verbose,
                    "Asking to pad to max_length but no maximum length is provided and the model has no "
                    "predefined maximum length. Default to no padding.",
                )
                padding_strategy = "do_not_pad"
            if truncation_strategy != "do_not_truncate":
                self._warn_once(
                    "asking-to-truncate-to-max_length",
                    verbose,
                    "Asking to truncate to max_length but no maximum length is provided and the model has "
                    "no predefined maximum length. Default to no truncation.",
                )
                truncation_strategy = "do_not_truncate"
        elif max_length is None and (
            padding_strategy == "max_length" or truncation_strategy != "do_not_truncate"
        ):
            max_length = self.model_max_length

        if padding_strategy != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None):
            raise ValueError(
                "Asking to pad but the tokenizer does not have a padding token. Please select a token to use as "
                "`pad_token` `(tokenizer.pad_token = tokenizer.eos_token e.g.)` or add a new pad token via "
                "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
            )
        if (
            truncation_strategy != "do_not_truncate"
            and padding_strategy != "do_not_pad"
            and pad_to_multiple_of
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                "Truncation and padding are both activated but "
                f"truncation length ({max_length}) is not a multiple of pad_to_multiple_of ({pad_to_multiple_of})."
            )
        return padding_strategy, truncation_strategy, max_length

    def _warn_once(self, key: str, verbose: bool, message: str) -> None:
        """Log ``message`` the first time ``key`` comes up for this tokenizer (never when not ``verbose``)."""
        if verbose and key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def _configure_backend(
        self,
        padding_strategy: str,
        truncation_strategy: str,
        max_length: int | None,
        stride: int,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
    ) -> None:
        backend = self._tokenizer
        if truncation_strategy == "do_not_truncate":
            if backend.truncation is not None:
                backend.no_truncation()
        else:
            target = {
                "max_length": max_length,
                "stride": stride,
                "strategy": truncation_strategy,
                "direction": self.truncation_side,
            }
            current = backend.truncation
            if current is None or {k: current.get(k) for k in target} != target:
                backend.enable_truncation(**target)
        if padding_strategy == "do_not_pad":
            if backend.padding is not None:
                backend.no_padding()
        else:
            side = padding_side if padding_side is not None else self.padding_side
            if side not in ("right", "left"):
                raise ValueError(
                    f"Padding side should be selected between 'right' and 'left', current value: {side}"
                )
            target = {
                "length": max_length if padding_strategy == "max_length" else None,
                "direction": side,
                "pad_id": self.pad_token_id,
                "pad_token": self.pad_token,
                "pad_type_id": self.pad_token_type_id,
                "pad_to_multiple_of": pad_to_multiple_of,
            }
            if backend.padding != target:
                backend.enable_padding(**target)

    def _warn_too_long(self, encodings: list, max_length: int | None, verbose: bool) -> None:
        """transformers' warning (once) when a sequence is longer than the model takes and nothing truncates."""
        if max_length is not None or not verbose or "sequence-too-long" in self._warned:
            return
        longest = max((len(e) for e in encodings), default=0)
        if longest > self.model_max_length:
            self._warned.add("sequence-too-long")
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({longest} > {self.model_max_length}). Running this sequence through the model will "
                "result in indexing errors"
            )

    def _output_keys(self, **wanted: bool | None) -> list[str]:
        """The keys a call returns: ``input_ids``, then each ``return_<key>`` asked for (None: the model's)."""
        keys = ["input_ids"]
        for key in ("token_type_ids", "attention_mask", "special_tokens_mask", "offset_mapping", "length"):
            flag = wanted[key]
            if flag or (flag is None and key in self.model_input_names):
                keys.append(key)
        return keys

    def __call__(
        self,
        text: Any = None,
        text_pair: Any = None,
        text_target: Any = None,
        text_pair_target: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenize a text, a batch of texts, pairs (``text_pair``) or pre-tokenized words
        (``is_split_into_words=True``) into model inputs, as transformers' ``BertTokenizerFast`` does.

        ``text_target`` (and ``text_pair_target``) are encoded with the same arguments, as transformers 4 does it:
        alone, their encoding is returned; beside ``text``, their ``input_ids`` are the output's ``labels``.
        ``split_special_tokens=True`` (default: the tokenizer's ``split_special_tokens``) tokenizes special
        tokens written in the text as plain text. ``tokenizer_kwargs`` (transformers 5): a dict of these
        arguments, which wins over the ones given by name.
        """
        if text is None and text_target is None:
            raise ValueError("You need to specify either `text` or `text_target`.")
        if tokenizer_kwargs is not None and not isinstance(tokenizer_kwargs, Mapping):
            raise TypeError(f"tokenizer_kwargs should be a dict, got {type(tokenizer_kwargs).__name__}")
        split_special_tokens = kwargs.pop("split_special_tokens", None)
        if split_special_tokens is None:
            split_special_tokens = getattr(self, "split_special_tokens", False)
        options = dict(
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            is_split_into_words=is_split_into_words,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_tensors=return_tensors,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_length=return_length,
            split_special_tokens=bool(split_special_tokens),
            verbose=verbose,
        )
        # transformers 5: tokenizer_kwargs update the named arguments (then the other keyword arguments do)
        for key, value in (tokenizer_kwargs or {}).items():
            if key in options:
                options[key] = bool(value) if key == "split_special_tokens" else value
            else:
                kwargs.setdefault(key, value)
        if kwargs:
            logger.warning(f"Keyword arguments {kwargs} not recognized.")
        encodings = self._call_one(text, text_pair, **options) if text is not None else None
        if text_target is None:
            return encodings
        targets = self._call_one(text_target, text_pair_target, **options)
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def _check_call(self, is_split_into_words: bool) -> None:
        """A family's own refusal of a call (RoBERTa: pre-split words need ``add_prefix_space=True``)."""

    def _call_one(
        self,
        text: Any,
        text_pair: Any,
        *,
        add_special_tokens: bool,
        padding: bool | str,
        truncation: bool | str | None,
        max_length: int | None,
        stride: int,
        is_split_into_words: bool,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        return_tensors: str | None,
        return_token_type_ids: bool | None,
        return_attention_mask: bool | None,
        return_overflowing_tokens: bool,
        return_special_tokens_mask: bool,
        return_offsets_mapping: bool,
        return_length: bool,
        split_special_tokens: bool,
        verbose: bool,
    ) -> BatchEncoding:
        """One text (or batch, with its pairs) → ``BatchEncoding``: the work of ``__call__``."""
        stride = _check_count("stride", stride)
        pad_to_multiple_of = _check_count("pad_to_multiple_of", pad_to_multiple_of)
        self._check_call(is_split_into_words)
        batch, is_batched = _as_batch(text, text_pair, is_split_into_words)
        padding_strategy, truncation_strategy, max_length = self._strategies(
            padding, truncation, max_length, pad_to_multiple_of, verbose
        )
        with self._lock:
            self._configure_backend(
                padding_strategy, truncation_strategy, max_length, stride, pad_to_multiple_of, padding_side
            )
            if split_special_tokens:  # set for this call only: the backend keeps matching them otherwise
                self._tokenizer.encode_special_tokens = True
            try:
                encodings = self._tokenizer.encode_batch(
                    batch, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
                )
            except BaseException as e:  # tokenizers raises Exception, or panics (a BaseException) on a stride
                message = str(e).splitlines()[0] if str(e) else type(e).__name__
                if not (message.startswith("Truncation error") or type(e).__name__ == "PanicException"):
                    raise
                if "Second sequence not provided" in message:  # transformers 4.57 / 5: the bare message
                    raise ValueError(
                        f"truncation={truncation_strategy!r} needs a pair of texts (text, text_pair): it truncates "
                        f"only the second one, and this input has no text_pair while a text is longer than "
                        f"max_length={max_length}; pass text_pair=..., or truncate single texts with "
                        f"truncation=True ('longest_first') or 'only_first' (tokenizers: {message})"
                    ) from None
                raise ValueError(
                    f"cannot truncate this input with truncation={truncation_strategy!r}, max_length={max_length}, "
                    f"stride={stride}: the text that is truncated must keep more tokens than the stride once the "
                    f"special tokens and the other text of a pair are counted (tokenizers: {message})"
                ) from None
            finally:
                if split_special_tokens:
                    self._tokenizer.encode_special_tokens = False
        keys = self._output_keys(
            token_type_ids=return_token_type_ids,
            attention_mask=return_attention_mask,
            special_tokens_mask=return_special_tokens_mask,
            offset_mapping=return_offsets_mapping,
            length=return_length,
        )
        output = _batch_encoding(encodings, keys, return_overflowing_tokens, return_tensors)
        self._warn_too_long(output.encodings, max_length, verbose)
        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            # one example: its rows unwrapped (``length`` stays a one-item list: transformers 5)
            output = BatchEncoding(
                {k: (v[0] if len(v) > 0 and isinstance(v[0], list) else v) for k, v in output.items()},
                output.encodings,
            )
        return output

    def prepare_for_model(
        self,
        ids: list[int],
        pair_ids: list[int] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        prepend_batch_axis: bool = False,
        **kwargs: Any,
    ) -> BatchEncoding:
        """transformers 4's ``prepare_for_model`` (gone from 5's fast tokenizers): ids (and ``pair_ids``) that
        are already tokens (``convert_tokens_to_ids(tokenize(text))``) → a model input: truncated (in python,
        ``truncate_sequences``), with the special tokens, token types and masks, padded. ``overflowing_tokens``
        and ``num_truncated_tokens`` with ``return_overflowing_tokens`` (one window, not the call's list of
        windows); ``return_offsets_mapping`` is accepted and ignored (ids have no offsets), as in 4."""
        pad_to_multiple_of = _check_count("pad_to_multiple_of", pad_to_multiple_of)
        padding_strategy, truncation_strategy, max_length = self._strategies(
            padding, truncation, max_length, pad_to_multiple_of, verbose
        )
        stride = _check_count("stride", stride)
        ids = list(ids)
        pair = pair_ids is not None
        pair_ids = list(pair_ids) if pair else None
        if return_token_type_ids and not add_special_tokens:
            raise ValueError(
                "Asking to return token_type_ids while setting add_special_tokens to False "
                "results in an undefined behavior. Please set add_special_tokens to True or "
                "set return_token_type_ids to None."
            )
        if return_overflowing_tokens and truncation_strategy == "longest_first" and pair:
            raise ValueError(
                "Not possible to return overflowing tokens for pair of sequences with the "
                "`longest_first`. Please select another truncation strategy than `longest_first`, "
                "for instance `only_second` or `only_first`."
            )
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names

        encoded: dict[str, Any] = {}
        total_len = len(ids) + (len(pair_ids) if pair else 0)
        if add_special_tokens:
            total_len += self.num_special_tokens_to_add(pair=pair)
        overflowing: list[int] = []
        if truncation_strategy != "do_not_truncate" and max_length and total_len > max_length:
            ids, pair_ids, overflowing = self.truncate_sequences(
                ids,
                pair_ids=pair_ids,
                num_tokens_to_remove=total_len - max_length,
                truncation_strategy=truncation_strategy,
                stride=stride,
            )
        if return_overflowing_tokens:
            encoded["overflowing_tokens"] = overflowing
            # 4.57 computes total_len - max_length (a TypeError without a max_length); 5's python tokenizers: 0
            encoded["num_truncated_tokens"] = total_len - max_length if max_length else 0
        if add_special_tokens:
            sequence = self.build_inputs_with_special_tokens(ids, pair_ids)
            token_type_ids = self.create_token_type_ids_from_sequences(ids, pair_ids)
        else:
            sequence = ids + pair_ids if pair else ids
            token_type_ids = [0] * len(ids) + ([0] * len(pair_ids) if pair else [])
        encoded["input_ids"] = sequence
        if return_token_type_ids:
            encoded["token_type_ids"] = token_type_ids
        if return_special_tokens_mask:
            encoded["special_tokens_mask"] = (
                self.get_special_tokens_mask(ids, pair_ids) if add_special_tokens else [0] * len(sequence)
            )
        self._warn_too_long([sequence], max_length, verbose)
        if padding_strategy != "do_not_pad" or return_attention_mask:
            encoded = dict(
                self.pad(
                    encoded,
                    max_length=max_length,
                    padding=padding_strategy,
                    pad_to_multiple_of=pad_to_multiple_of,
                    padding_side=padding_side,
                    return_attention_mask=return_attention_mask,
                    verbose=verbose,
                )
            )
        if return_length:
            encoded["length"] = len(encoded["input_ids"])
        return BatchEncoding(encoded, tensor_type=return_tensors, prepend_batch_axis=prepend_batch_axis)

    def truncate_sequences(
        self,
        ids: list[int],
        pair_ids: list[int] | None = None,
        num_tokens_to_remove: int = 0,
        truncation_strategy: str = "longest_first",
        stride: int = 0,
    ) -> tuple[list[int], list[int] | None, list[int]]:
        """transformers 4's ``truncate_sequences``: ``(ids, pair_ids, overflowing_tokens)`` with
        ``num_tokens_to_remove`` tokens removed as ``truncation_strategy`` says, from the tokenizer's
        ``truncation_side``; the overflow keeps ``stride`` more tokens (none for a ``longest_first`` pair). A
        sequence too short to lose that many tokens is left whole, with transformers' logged error."""
        if num_tokens_to_remove <= 0:
            return ids, pair_ids, []
        truncation_strategy = _enum_value(truncation_strategy)
        if truncation_strategy not in _TRUNCATION:
            raise ValueError(
                f"{truncation_strategy!r} is not a valid TruncationStrategy, please select one of {list(_TRUNCATION)}"
            )
        side = self.truncation_side
        if side not in ("left", "right"):
            raise ValueError(f"invalid truncation strategy: {side}, use 'left' or 'right'.")
        overflowing: list[int] = []
        if truncation_strategy == "only_first" or (
            truncation_strategy == "longest_first" and pair_ids is None
        ):
            if len(ids) > num_tokens_to_remove:
                window = min(len(ids), stride + num_tokens_to_remove)
                if side == "left":
                    overflowing, ids = ids[:window], ids[num_tokens_to_remove:]
                else:
                    overflowing, ids = ids[-window:], ids[:-num_tokens_to_remove]
            else:
                message = (
                    f"We need to remove {num_tokens_to_remove} to truncate the input "
                    f"but the first sequence has a length {len(ids)}. "
                )
                if truncation_strategy == "only_first":
                    message += (
                        "Please select another truncation strategy than "
                        f"{truncation_strategy}, for instance 'longest_first' or 'only_second'."
                    )
                logger.error(message)
        elif truncation_strategy == "longest_first":
            logger.warning(
                "Be aware, overflowing tokens are not returned for the setting you have chosen, i.e. sequence "
                "pairs with the 'longest_first' truncation strategy. So the returned list will always be empty "
                "even if some tokens have been removed."
            )
            len_ids, len_pair = len(ids), len(pair_ids)
            first_remove = min(abs(len_pair - len_ids), num_tokens_to_remove)
            second_remove = num_tokens_to_remove - first_remove
            if len_ids > len_pair:
                ids_to_move = first_remove + second_remove // 2
                pair_to_move = second_remove - second_remove // 2
            else:
                ids_to_move = second_remove // 2
                pair_to_move = first_remove + second_remove - (second_remove // 2)
            if side == "right":
                ids = ids[:-ids_to_move] if ids_to_move > 0 else ids
                pair_ids = pair_ids[:-pair_to_move] if pair_to_move > 0 else pair_ids
            else:
                ids, pair_ids = ids[ids_to_move:], pair_ids[pair_to_move:]
        elif truncation_strategy == "only_second" and pair_ids is not None:
            if len(pair_ids) > num_tokens_to_remove:
                window = min(len(pair_ids), stride + num_tokens_to_remove)
                if side == "right":
                    overflowing, pair_ids = pair_ids[-window:], pair_ids[:-num_tokens_to_remove]
                else:
                    overflowing, pair_ids = pair_ids[:window], pair_ids[num_tokens_to_remove:]
            else:
                logger.error(
                    f"We need to remove {num_tokens_to_remove} to truncate the input "
                    f"but the second sequence has a length {len(pair_ids)}. "
                    f"Please select another truncation strategy than {truncation_strategy}, "
                    "for instance 'longest_first' or 'only_first'."
                )
        return ids, pair_ids, overflowing

    def encode_plus(self, text: Any, text_pair: Any = None, *args: Any, **kwargs: Any) -> BatchEncoding:
        """transformers 4's ``encode_plus``: the call of one text (or pair); the other arguments are those of
        ``__call__``, positionally in 4's order (``add_special_tokens, padding, truncation, max_length, stride,
        is_split_into_words, pad_to_multiple_of, padding_side, return_tensors, ...``). As 4 documents it, a list
        of strings is tokens (what ``tokenize`` returns) and a list of ints is their ids, each turned into a
        model input by ``prepare_for_model``; with ``is_split_into_words=True`` a list of strings is words."""
        kwargs = _by_name("encode_plus", _PLUS_POSITIONAL, 2, args, kwargs)
        if not kwargs.get("is_split_into_words") and isinstance(text, (list, tuple)):
            kwargs.pop("is_split_into_words", None)
            return self.prepare_for_model(
                self._plus_ids(text, "text"),
                None if text_pair is None else self._plus_ids(text_pair, "text_pair"),
                prepend_batch_axis=True,
                **kwargs,
            )
        return self(text, text_pair, **kwargs)

    def _plus_ids(self, text: Any, name: str) -> list[int]:
        """transformers 4's ``encode_plus`` input → ids: a text is tokenized, tokens are looked up, ids kept."""
        if isinstance(text, str):
            return self.convert_tokens_to_ids(self.tokenize(text))
        if isinstance(text, (list, tuple)) and text and _is_str_list(text):
            return self.convert_tokens_to_ids(list(text))
        if (
            isinstance(text, (list, tuple))
            and text
            and all(isinstance(t, int) and not isinstance(t, bool) for t in text)
        ):
            return list(text)
        raise ValueError(
            f"encode_plus: {name} {str(text)[:80]!r} is not valid. Should be a string, a list/tuple of strings "
            "(tokens) or a list/tuple of integers (token ids); for a batch, use batch_encode_plus or call the tokenizer."
        )

    def batch_encode_plus(
        self, batch_text_or_text_pairs: Sequence, *args: Any, **kwargs: Any
    ) -> BatchEncoding:
        """transformers 4's ``batch_encode_plus``: the call of a batch of texts or of (text, text_pair) pairs;
        the other arguments positionally in ``encode_plus``'s order."""
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError(
                f"batch_text_or_text_pairs has to be a list or a tuple (got {type(batch_text_or_text_pairs)})"
            )
        kwargs = _by_name("batch_encode_plus", _PLUS_POSITIONAL, 1, args, kwargs)
        return self(list(batch_text_or_text_pairs), **kwargs)

    def encode(self, text: Any, text_pair: Any = None, *args: Any, **kwargs: Any) -> Any:
        """The ``input_ids`` of one text (or pair). The arguments are those of ``__call__``; positionally, as
        transformers' ``encode`` orders them: ``add_special_tokens, padding, truncation, max_length, stride,
        padding_side, return_tensors``."""
        return self(text, text_pair, **_by_name("encode", _ENCODE_POSITIONAL, 2, args, kwargs))["input_ids"]

    def tokenize(
        self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any
    ) -> list[str]:
        """WordPiece tokens of a text (without [CLS]/[SEP] unless ``add_special_tokens``), or of a list of words
        with ``is_split_into_words=True`` (transformers 4 and 5)."""
        if not isinstance(text, str) and not (kwargs.get("is_split_into_words") and _is_str_list(text)):
            raise TypeError(
                f"tokenize() takes a str, or a list of str words with is_split_into_words=True; got "
                f"{type(text).__name__}"
            )
        return self(text, pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

    # ---------------------------------------------------------------------------------------------------------
    # decoding
    # ---------------------------------------------------------------------------------------------------------
    @staticmethod
    def clean_up_tokenization(out_string: str) -> str:
        """transformers' clean-up of spaces before punctuation and English contractions."""
        return (
            out_string.replace(" .", ".")
            .replace(" ?", "?")
            .replace(" !", "!")
            .replace(" ,", ",")
            .replace(" ' ", "'")
            .replace(" n't", "n't")
            .replace(" 'm", "'m")
            .replace(" 's", "'s")
            .replace(" 've", "'ve")
            .replace(" 're", "'re")
        )

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """Ids (int, list, tensor or array) → text."""
        token_ids = _to_py(token_ids)
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if not isinstance(token_ids, list) or any(isinstance(t, list) for t in token_ids):
            raise TypeError("decode() takes a sequence of ids (use batch_decode for a batch)")
        for t in token_ids:
            if not isinstance(t, numbers.Integral):
                raise TypeError(f"decode() takes integer token ids, got {type(t).__name__} {t!r}")
            if t < 0:
                raise ValueError(
                    f"decode() got token id {t}: ids are not negative (-100, the loss's ignore index, marks "
                    "labels, not tokens: replace it with the pad token id before decoding)"
                )
        text = self._tokenizer.decode([int(t) for t in token_ids], skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            text = self.clean_up_tokenization(text)
        return text

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        return [
            self.decode(
                seq,
                skip_special_tokens=skip_special_tokens,
                clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            )
            for seq in _to_py(sequences)
        ]

    # ---------------------------------------------------------------------------------------------------------
    # padding already-encoded inputs (data collators, pipelines)
    # ---------------------------------------------------------------------------------------------------------
    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encodings that were tokenized without padding, as transformers' ``pad`` does.

        ``encoded_inputs`` is one encoding (a dict / ``BatchEncoding`` of lists of ids), a dict of batched
        lists, or a list of encodings (each with the keys of the first). ``input_ids`` is padded with
        ``pad_token_id``, ``token_type_ids`` with ``pad_token_type_id`` (0), ``special_tokens_mask`` with 1
        and ``attention_mask`` with 0 (built as all ones first where absent, unless
        ``return_attention_mask=False``); every other key (``labels``, ``offset_mapping``, ``length``...)
        is left as it is. ``padding``: ``True``/``"longest"`` (the longest of the batch), ``"max_length"``
        (``max_length``, else ``model_max_length``), ``False``/``"do_not_pad"``; then up to a multiple of
        ``pad_to_multiple_of``. Sequences longer than the target are kept whole. ``padding_side`` defaults
        to the tokenizer's. Tensors or arrays in give tensors or arrays out unless ``return_tensors`` says
        otherwise (``"pt"``, ``"np"`` or None for lists); a key whose rows still differ in length cannot
        become a tensor and raises ``ValueError`` naming it. Returns a ``BatchEncoding`` without encodings.
        """
        if padding_side not in (None, "right", "left"):
            raise ValueError(f"padding_side should be 'right' or 'left', got {padding_side!r}")
        main = self.model_input_names[0]
        inputs = _as_dict_of_lists(encoded_inputs, main)
        required = inputs[main]
        if required is None or (isinstance(required, Sized) and len(required) == 0):
            if return_attention_mask:
                inputs["attention_mask"] = []
            return BatchEncoding(inputs)
        inputs, tensor_type = _tensors_to_lists(inputs, main)
        if return_tensors is None:
            return_tensors = tensor_type

        pad_to_multiple_of = _check_count("pad_to_multiple_of", pad_to_multiple_of)
        padding_strategy, _, max_length = self._strategies(
            padding, False, max_length, pad_to_multiple_of, verbose
        )
        settings = dict(
            padding_side=padding_side,
            pad_to_multiple_of=pad_to_multiple_of,
            return_attention_mask=return_attention_mask,
        )
        required = inputs[main]
        if not isinstance(required[0], (list, tuple)):  # one encoding
            out = self._pad(inputs, max_length, padding_strategy, **settings)
            return BatchEncoding(out, tensor_type=return_tensors)

        batch_size = len(required)
        for key, value in inputs.items():
            if not isinstance(value, Sized) or len(value) != batch_size:
                raise ValueError(
                    f"Some items in the output dictionary have a different batch size than others ({key})."
                )
        if padding_strategy == "longest":
            max_length = max(len(ids) for ids in required)
            padding_strategy = "max_length"
        rows = [
            self._pad({k: v[i] for k, v in inputs.items()}, max_length, padding_strategy, **settings)
            for i in range(batch_size)
        ]
        return BatchEncoding({k: [row[k] for row in rows] for k in rows[0]}, tensor_type=return_tensors)

    def _pad(
        self,
        encoded_inputs: dict,
        max_length: int | None,
        padding_strategy: str,
        *,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        return_attention_mask: bool | None,
    ) -> dict:
        """One encoding (a dict of lists) padded to ``max_length`` (rounded up to ``pad_to_multiple_of``)."""
        encoded_inputs = dict(encoded_inputs)
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        main = self.model_input_names[0]
        length = len(encoded_inputs[main])
        if padding_strategy == "longest":
            max_length = length
        if max_length is not None and pad_to_multiple_of and max_length % pad_to_multiple_of != 0:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in encoded_inputs:
            encoded_inputs["attention_mask"] = [1] * length
        if padding_strategy == "do_not_pad" or max_length is None or length >= max_length:
            return encoded_inputs
        pads = {
            "attention_mask": 0,
            "token_type_ids": self.pad_token_type_id,
            "special_tokens_mask": 1,
            main: self.pad_token_id,
        }
        left = (padding_side if padding_side is not None else self.padding_side) == "left"
        for key, pad_value in pads.items():
            if key not in encoded_inputs or (key == "attention_mask" and not return_attention_mask):
                continue
            values = encoded_inputs[key]
            if not isinstance(values, (list, tuple)):
                raise ValueError(f"pad(): {key} should be a list of ids, got {type(values).__name__}")
            padding = [pad_value] * (max_length - length)
            encoded_inputs[key] = padding + list(values) if left else list(values) + padding
        return encoded_inputs


def _as_batch(text: Any, text_pair: Any, is_split_into_words: bool) -> tuple[list, bool]:
    """The inputs of a call as the list ``encode_batch`` takes, and whether they were a batch."""
    if not _is_valid_text_input(text):
        raise ValueError(_TEXT_TYPE_ERROR + f" Got {type(text).__name__}.")
    if text_pair is not None and not _is_valid_text_input(text_pair):
        raise ValueError(_TEXT_TYPE_ERROR + f" Got text_pair of type {type(text_pair).__name__}.")
    if is_split_into_words:
        is_batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
    else:
        is_batched = isinstance(text, (list, tuple))
    if is_batched:
        if isinstance(text_pair, str):
            raise TypeError(
                "when tokenizing batches of text, `text_pair` must be a list or tuple with the same length as `text`."
            )
        if text_pair is not None and len(text) != len(text_pair):
            raise ValueError(
                f"batch length of `text`: {len(text)} does not match batch length of `text_pair`: {len(text_pair)}."
            )
        batch = list(zip(text, text_pair)) if text_pair is not None else list(text)
    else:
        # transformers 4 and 5: an empty text_pair of a single example means no pair
        batch = [(text, text_pair)] if text_pair else [text]
    for item in batch:
        if is_split_into_words:
            ok = _is_str_list(item) or (
                isinstance(item, tuple) and len(item) == 2 and all(_is_str_list(p) for p in item)
            )
        else:
            ok = isinstance(item, str) or (
                isinstance(item, (list, tuple)) and len(item) == 2 and _is_str_list(item)
            )
        if not ok:
            raise ValueError(_TEXT_TYPE_ERROR + f" Got an element {type(item).__name__}: {str(item)[:80]!r}.")
    return batch, is_batched


# the attribute of ``tokenizers.Encoding`` behind each output key
_ENCODING_ATTRIBUTES = {
    "input_ids": "ids",
    "token_type_ids": "type_ids",
    "attention_mask": "attention_mask",
    "special_tokens_mask": "special_tokens_mask",
    "offset_mapping": "offsets",
}


def _batch_encoding(
    encodings: list, keys: list[str], overflowing: bool, tensor_type: str | None
) -> BatchEncoding:
    """The ``keys`` of each encoding (and of its overflowing windows, with ``overflow_to_sample_mapping``)."""
    rows: list = []
    sample_mapping: list[int] = []
    for sample, encoding in enumerate(encodings):
        group = [encoding, *encoding.overflowing] if overflowing else [encoding]
        rows += group
        sample_mapping += [sample] * len(group)
    data: dict[str, list] = {
        key: [len(e) for e in rows]
        if key == "length"
        else [getattr(e, _ENCODING_ATTRIBUTES[key]) for e in rows]
        for key in keys
    }
    if overflowing:
        data["overflow_to_sample_mapping"] = sample_mapping
    return BatchEncoding(data, rows, tensor_type=tensor_type)


def _by_name(method: str, names: tuple[str, ...], before: int, args: tuple, kwargs: dict) -> dict:
    """``kwargs`` with the positional ``args`` of ``method`` (after its ``before`` text arguments) named."""
    if len(args) > len(names):
        raise TypeError(f"{method}() takes at most {before + len(names)} positional arguments")
    for name, value in zip(names, args):
        if name in kwargs:
            raise TypeError(f"{method}() got multiple values for argument {name!r}")
        kwargs[name] = value
    return kwargs


def _check_count(name: str, value: Any) -> int | None:
    """``value`` of the argument ``name`` as a python int ≥ 0, or None. As transformers (which hands it to
    ``tokenizers``), any integer with ``__index__`` is taken: a numpy integer, a one-element integer tensor
    (``torch.tensor(8)``); a float, a string or a bool is a TypeError naming the argument."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} should be a whole number or None, got {value!r}")
    if not isinstance(value, numbers.Integral):
        try:
            value = operator.index(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"{name} should be a whole number or None (an int, a numpy integer or a one-element integer "
                f"tensor), got {type(value).__name__} {value!r}"
            ) from None
        if isinstance(value, bool):  # a bool tensor's __index__
            raise TypeError(f"{name} should be a whole number or None, got a boolean")
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} should be at least 0, got {value}")
    return value


def _strategy(name: str, value: Any, choices: tuple[str, ...], when_true: str, when_false: str) -> str:
    """A ``padding`` / ``truncation`` argument (True, False, None or one of ``choices``) → its strategy name."""
    if value is True:
        return when_true
    if value is False or value is None:
        return when_false
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"{name}={value!r} is not valid: use True, False, " + ", ".join(map(repr, choices)))


def _as_dict_of_lists(encoded_inputs: Any, main: str) -> dict[str, Any]:
    """What ``pad`` takes (one encoding, a dict of batched lists, a list of encodings) as one dict."""
    if (
        isinstance(encoded_inputs, (list, tuple))
        and encoded_inputs
        and isinstance(encoded_inputs[0], Mapping)
    ):
        keys = list(encoded_inputs[0].keys())
        for index, example in enumerate(encoded_inputs):
            if not isinstance(example, Mapping):
                raise ValueError(
                    f"pad(): encoded_inputs[{index}] is a {type(example).__name__}, not an encoding (a dict)"
                )
            missing = [k for k in keys if k not in example]
            if missing:
                raise ValueError(
                    f"pad(): encoded_inputs[{index}] has no {missing[0]!r}, which encoded_inputs[0] has"
                )
        encoded_inputs = {key: [example[key] for example in encoded_inputs] for key in keys}
    if not isinstance(encoded_inputs, Mapping):
        raise ValueError(
            "pad() takes an encoding (a dict / BatchEncoding) or a list of encodings, "
            f"got {type(encoded_inputs).__name__}"
        )
    if main not in encoded_inputs:
        raise ValueError(
            "You should supply an encoding or a list of encodings to this method "
            f"that includes {main}, but you provided {list(encoded_inputs.keys())}"
        )
    return dict(encoded_inputs)


def _tensors_to_lists(inputs: dict[str, Any], main: str) -> tuple[dict[str, Any], str | None]:
    """Torch tensors or numpy arrays → python lists, and the tensor type they came as (None for lists)."""
    required = inputs[main]
    first = required[0]
    if isinstance(first, (list, tuple)):
        first = next((row[0] for row in required if len(row) != 0), first)
    if isinstance(first, (int, list, tuple)):
        return inputs, None
    kind = type(first).__module__.split(".")[0]
    tensor_type = None
    if kind == "torch" or (isinstance(required, list) and type(required[0]).__module__.startswith("torch")):
        tensor_type = "pt"
    elif kind == "numpy":
        tensor_type = "np"
    return {k: _to_py(v) for k, v in inputs.items()}, tensor_type
