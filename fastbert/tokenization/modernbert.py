"""ModernBERT's tokenizer: its ``tokenizer.json`` (byte-level BPE, OLMo's vocabulary) used as the file
describes it, as transformers loads such a folder (``tokenizer_class`` ``PreTrainedTokenizerFast``, transformers
5's ``TokenizersBackend``): the file's normalizer, pre-tokenizer, post-processor (``[CLS] A [SEP]`` and
``[CLS] A [SEP] B [SEP]``) and decoder, the special tokens ``[CLS] [SEP] [PAD] [MASK] [UNK]``, no token types.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tokenizers import Tokenizer, processors

from .files import _parse_json_object, _read_text
from .roberta import RobertaTokenizer, _added_tokens_of, _model_type


class ModernBertTokenizer(RobertaTokenizer):
    """ModernBERT's byte-level BPE tokenizer with the API of transformers' fast tokenizers: construct it with
    :meth:`from_pretrained` (a folder or hub id with ``tokenizer.json``) or ``tokenizer_file=``. The file's own
    pipeline is kept; a file without a post-processor gets ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]``."""

    family = "ModernBERT"
    has_legacy_format = False  # transformers 4: a PreTrainedTokenizerFast, without a slow class
    #: transformers has no ModernBERT tokenizer class: the class name written in tokenizer_config.json
    saved_class_name = "PreTrainedTokenizerFast"

    def __init__(
        self,
        vocab_file: str | None = None,
        merges_file: str | None = None,
        tokenizer_file: str | None = None,
        errors: str = "replace",
        bos_token: str | None = None,
        eos_token: str | None = None,
        sep_token: str = "[SEP]",
        cls_token: str = "[CLS]",
        unk_token: str = "[UNK]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        add_prefix_space: bool | None = None,
        **kwargs: Any,
    ):
        kwargs.pop("backend", None)  # transformers 5 writes "backend": "tokenizers"
        # given: set on the file's byte-level pre-tokenizer, as transformers 4's fast tokenizer does with
        # this keyword; not given: the file's own setting
        self._prefix_space_given = add_prefix_space
        super().__init__(
            vocab_file,
            merges_file,
            tokenizer_file,
            errors=errors,
            bos_token=bos_token,
            eos_token=eos_token,
            sep_token=sep_token,
            cls_token=cls_token,
            unk_token=unk_token,
            pad_token=pad_token,
            mask_token=mask_token,
            add_prefix_space=bool(add_prefix_space),
            **kwargs,
        )
        if add_prefix_space is None:
            self.add_prefix_space = self._file_prefix_space

    def _from_tokenizer_json(self, path: str) -> tuple[Tokenizer, dict[int, dict]]:
        """The file's whole pipeline (as transformers' generic fast tokenizer uses it) and its added tokens."""
        if not os.path.exists(path):
            raise OSError(f"tokenizer_file {path} does not exist")
        text = _read_text(path)
        data = _parse_json_object(text, path)
        model = data.get("model")
        kind = _model_type(model) if isinstance(model, dict) else None
        if kind != "BPE":
            raise ValueError(
                f"{path} holds a {kind or 'unknown'} model, but a ModernBERT tokenizer needs a BPE model"
            )
        given = getattr(self, "_prefix_space_given", None)
        found = _byte_level_prefix_space(data.get("pre_tokenizer"), given)
        self._file_prefix_space = bool(found)
        if given is not None and found is not None:
            text = json.dumps(data)
        try:
            backend = Tokenizer.from_str(text)
        except Exception as e:  # the tokenizers library raises a bare Exception for a bad file
            raise ValueError(f"{path} is not a tokenizer.json the tokenizers library reads ({e})") from None
        self._file_post_processor = backend.post_processor is not None
        return backend, _added_tokens_of(data)

    def _check_call(self, is_split_into_words: bool) -> None:
        """Pre-split words are taken as transformers' generic fast tokenizer takes them (RoBERTa's check aside)."""

    def _update_post_processor(self) -> None:
        if getattr(self, "_file_post_processor", False):
            return  # the file's own template
        cls, sep = (self.cls_token, self.cls_token_id), (self.sep_token, self.sep_token_id)
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls[0]}:0 $A:0 {sep[0]}:0",
            pair=f"{cls[0]}:0 $A:0 {sep[0]}:0 $B:0 {sep[0]}:0",
            special_tokens=[cls, sep],
        )

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, True)
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def _config_for_save(self) -> dict[str, Any]:
        config = super()._config_for_save()
        config["tokenizer_class"] = self.saved_class_name
        for name in ("bos_token", "eos_token"):
            if config.get(name) is None:
                config.pop(name, None)
        return config


def _byte_level_prefix_space(pre_tokenizer: Any, given: bool | None) -> bool | None:
    """The ``add_prefix_space`` of the byte-level pre-tokenizer(s) in a tokenizer.json's ``pre_tokenizer``
    (inside a ``Sequence`` too), set to ``given`` in place when it is not None; None without one."""
    if not isinstance(pre_tokenizer, dict):
        return None
    if pre_tokenizer.get("type") == "Sequence":
        found = [_byte_level_prefix_space(p, given) for p in pre_tokenizer.get("pretokenizers") or []]
        return next((f for f in found if f is not None), None)
    if pre_tokenizer.get("type") == "ByteLevel":
        value = bool(pre_tokenizer.get("add_prefix_space", False))
        if given is not None:
            pre_tokenizer["add_prefix_space"] = bool(given)
        return value
    return None
