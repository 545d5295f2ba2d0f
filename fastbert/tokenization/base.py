"""What every fastbert tokenizer class shares, whatever its model (WordPiece, byte-level BPE, Unigram): the
settings kept beside the backend, ``from_pretrained``, ``save_pretrained``, printing and pickling.

A family class (``bert.py``, ``roberta.py``) builds its ``tokenizers`` backend, sets its special tokens, then
calls ``_init_settings``; it says which vocabulary files it reads (``vocab_files_names``), how it saves them
(``_save_vocabulary_files``) and its sequence methods (``build_inputs_with_special_tokens``...).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from tokenizers import Tokenizer

from ..output_files import open_output, output_name
from .call import CallMixin
from .files import (
    _CALL_KEYS_IGNORED,
    ADDED_TOKENS_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    VERY_LARGE_INTEGER,
    _check_settings,
    _is_jsonable,
    _read_pretrained,
)
from .special_tokens import SpecialTokensMixin


class TokenizerBase(SpecialTokensMixin, CallMixin):
    """The shared part of fastbert's tokenizers (transformers' fast-tokenizer API on a ``tokenizers`` backend)."""

    vocab_files_names: dict[str, str] = {"tokenizer_file": TOKENIZER_FILE}
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    is_fast = True
    slow_tokenizer_class = None
    family = "BERT"  # in error messages: "not a BERT tokenizer folder"

    def _init_settings(
        self,
        *,
        model_max_length: int | None,
        padding_side: str,
        truncation_side: str,
        clean_up_tokenization_spaces: bool,
        init_kwargs: dict[str, Any],
        kwargs: dict[str, Any],
    ) -> None:
        """The settings beside the backend; ``init_kwargs`` (the family's own) then the JSON-able ``kwargs`` are
        what ``save_pretrained`` writes to tokenizer_config.json."""
        # max_len: transformers' older name of model_max_length (old folders' tokenizer_config.json), read by
        # transformers 4 and 5 when model_max_length is not set; without it such a folder truncated nothing
        max_len = kwargs.pop("max_len", None)
        _check_settings({"max_len": max_len})
        if model_max_length is None:
            model_max_length = max_len
        self.model_max_length = int(VERY_LARGE_INTEGER if model_max_length is None else model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.pad_token_type_id = 0
        # transformers' documented constructor argument (and tokenizer_config.json key), the class's list when
        # unset: which of token_type_ids / attention_mask a call returns when not asked (it was ignored)
        model_input_names = kwargs.pop("model_input_names", None)
        _check_settings({"model_input_names": model_input_names})
        if model_input_names is not None:
            self.model_input_names = list(model_input_names)
        # transformers 4: special tokens in the text are tokenized as text on every call (saved when set)
        self.split_special_tokens = bool(kwargs.get("split_special_tokens", False))
        if not self.split_special_tokens:
            kwargs.pop("split_special_tokens", None)
        self._warned: set[str] = set()
        self.deprecation_warnings: dict[str, bool] = {}  # transformers 4 and 5 data collators write it
        for key in _CALL_KEYS_IGNORED:
            kwargs.pop(key, None)
        self.init_kwargs = {**init_kwargs, **{k: v for k, v in kwargs.items() if _is_jsonable(v)}}

    # ---------------------------------------------------------------------------------------------------------
    # loading and saving
    # ---------------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *init_inputs: Any, **kwargs: Any
    ):
        """Load from a model folder or hub id that holds ``tokenizer.json`` and/or the family's vocabulary files,
        with ``tokenizer_config.json`` and ``special_tokens_map.json`` when present; ``kwargs`` override them.

        The hub options are those of :class:`fastbert.hub.HubOptions` (``revision``, ``cache_dir``,
        ``local_files_only``, ``token``, ``subfolder``); transformers' ``use_auth_token`` is read as ``token``.
        """
        files, settings = _read_pretrained(
            str(pretrained_model_name_or_path), kwargs, cls.vocab_files_names, cls.family
        )
        # A tokenizer.json decides the vocabulary; the vocabulary files are the fallback.
        return cls(*init_inputs, **files, **settings)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        raise NotImplementedError

    def _save_vocabulary_files(self, save_directory: str, filename_prefix: str | None) -> tuple[str, ...]:
        """The vocabulary files ``save_pretrained`` writes beside tokenizer.json (the family's slow files)."""
        return tuple(self.save_vocabulary(save_directory, filename_prefix=filename_prefix))

    def _config_for_save(self) -> dict[str, Any]:
        config = dict(self.init_kwargs)
        config.update(
            {
                "model_max_length": self.model_max_length,
                "padding_side": self.padding_side,
                "truncation_side": self.truncation_side,
                "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
                "tokenizer_class": type(self).__name__,
                "model_input_names": list(self.model_input_names),
            }
        )
        config.update(self.special_tokens_map)
        return config

    #: whether transformers 4 has a slow (python) class for this tokenizer, whose files ``legacy_format=True``
    #: writes (ModernBERT's tokenizer is a plain ``PreTrainedTokenizerFast``: it has none)
    has_legacy_format = True

    @property
    def can_save_slow_tokenizer(self) -> bool:
        """Whether ``save_pretrained`` can write the slow tokenizer's files (transformers 4): a family that has
        a slow tokenizer, whose files this one can give back."""
        return self.has_legacy_format

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        legacy_format: bool | None = None,
        filename_prefix: str | None = None,
        **kwargs: Any,
    ) -> tuple[str, ...]:
        """Write tokenizer_config.json, special_tokens_map.json, the vocabulary files and tokenizer.json;
        transformers' ``AutoTokenizer`` loads the folder back to the same ids. Returns the written paths.

        ``legacy_format`` as transformers 4's fast tokenizers: None writes both the slow tokenizer's vocabulary
        files and tokenizer.json; True only the vocabulary files (an error for a tokenizer that has no slow
        version); False only tokenizer.json. transformers 5 accepts it and always writes tokenizer.json alone.
        The slow files include added_tokens.json when some added token's id is past the base vocabulary (4.57
        lists that path in what it returns even when it writes no such file; here only written files are).
        """
        if legacy_format is not None and not isinstance(legacy_format, bool):
            raise ValueError(f"legacy_format should be None, True or False, got {legacy_format!r}")
        if legacy_format is True and not self.has_legacy_format:
            raise ValueError(
                "Your tokenizer does not have a legacy version defined and therefore cannot register this version. "
                "You might consider leaving the legacy_format at `None` or setting it to `False`."
            )
        save_directory = str(save_directory)
        if os.path.isfile(save_directory):
            raise OSError(f"Provided path ({save_directory}) should be a directory, not a file")
        os.makedirs(save_directory, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        config_path = os.path.join(save_directory, prefix + TOKENIZER_CONFIG_FILE)
        special_path = os.path.join(save_directory, prefix + SPECIAL_TOKENS_MAP_FILE)
        tokenizer_path = os.path.join(save_directory, prefix + TOKENIZER_FILE)

        config = self._config_for_save()
        added = {}
        for index, token in sorted(self._tokenizer.get_added_tokens_decoder().items()):
            added[str(index)] = {
                "content": token.content,
                "lstrip": token.lstrip,
                "normalized": token.normalized,
                "rstrip": token.rstrip,
                "single_word": token.single_word,
                "special": token.special,
            }
        config["added_tokens_decoder"] = added
        with open_output(config_path, "w") as f:
            f.write(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        with open_output(special_path, "w") as f:
            f.write(json.dumps(self.special_tokens_map, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        vocab_files: tuple[str, ...] = ()
        if legacy_format is not False and self.can_save_slow_tokenizer:
            # the slow tokenizer's files, as transformers 4.57 writes them
            vocab_files = self._save_vocabulary_files(save_directory, filename_prefix)
            added_vocab = {t: i for t, i in self.get_added_vocab().items() if i >= self.vocab_size}
            if added_vocab:  # beside vocab.txt, what a slow tokenizer reads its added tokens from
                added_path = os.path.join(save_directory, prefix + ADDED_TOKENS_FILE)
                with open_output(added_path, "w") as f:
                    f.write(json.dumps(added_vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
                vocab_files += (added_path,)
        if legacy_format is True:
            return (config_path, special_path, *vocab_files)
        with self._lock:
            clean = Tokenizer.from_str(self._tokenizer.to_str())
        clean.no_padding()
        clean.no_truncation()
        with output_name(tokenizer_path) as name:  # beside it, renamed over it once complete
            clean.save(name)
        return (config_path, special_path, *vocab_files, tokenizer_path)

    # ---------------------------------------------------------------------------------------------------------
    # lengths
    # ---------------------------------------------------------------------------------------------------------
    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return len(self.build_inputs_with_special_tokens([], [] if pair else None))

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        raise NotImplementedError

    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # ---------------------------------------------------------------------------------------------------------
    # printing and pickling
    # ---------------------------------------------------------------------------------------------------------
    def _repr_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, is_fast=True, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map}"
            f"{self._repr_extra()})"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_tokenizer"] = self._tokenizer.to_str()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["_tokenizer"] = Tokenizer.from_str(state["_tokenizer"])
        self.__dict__.update(state)
        self._lock = threading.RLock()
