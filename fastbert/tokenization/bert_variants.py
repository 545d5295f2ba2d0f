"""The WordPiece families beside BERT: ``DistilBertTokenizer`` (BERT's, without token type ids),
``ElectraTokenizer`` (BERT's) and ``MPNetTokenizer`` (BERT's WordPiece pipeline with RoBERTa's
``<s> A </s></s> B </s>`` sequences, ``<mask>`` taking the space before it, no token type ids).

Each loads ``tokenizer.json`` or ``vocab.txt`` as ``BertTokenizer`` does and saves the class name transformers
reads back (``tokenizer_class``).
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Tokenizer, processors

from .bert import BertTokenizer
from .files import _UNSET
from .roberta import RobertaSequencesMixin
from .special_tokens import _add_special_tokens


class DistilBertTokenizer(BertTokenizer):
    """DistilBERT's tokenizer: BERT's WordPiece, without ``token_type_ids`` by default (DistilBERT has no token
    types), as transformers' ``DistilBertTokenizerFast``."""

    model_input_names = ["input_ids", "attention_mask"]
    family = "DistilBERT"


class ElectraTokenizer(BertTokenizer):
    """ELECTRA's tokenizer: BERT's WordPiece (``[CLS] A [SEP] B [SEP]``, token type ids), as transformers'
    ``ElectraTokenizerFast``."""

    family = "ELECTRA"


class MPNetTokenizer(RobertaSequencesMixin, BertTokenizer):
    """MPNet's tokenizer with the API of transformers' ``MPNetTokenizerFast``: BERT's WordPiece pipeline
    (``vocab.txt`` or ``tokenizer.json``) with ``<s> A </s></s> B </s>`` sequences (a RoBERTa post-processor),
    ``<mask>`` stripping the space on its left, and no ``token_type_ids`` by default."""

    model_input_names = ["input_ids", "attention_mask"]
    family = "MPNet"

    def __init__(
        self,
        vocab_file: str | None = None,
        tokenizer_file: str | None = None,
        do_lower_case: bool = _UNSET,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        sep_token: str = "</s>",
        cls_token: str = "<s>",
        unk_token: str = "[UNK]",
        pad_token: str = "<pad>",
        mask_token: str = "<mask>",
        tokenize_chinese_chars: bool = _UNSET,
        strip_accents: bool | None = _UNSET,
        **kwargs: Any,
    ):
        super().__init__(
            vocab_file,
            tokenizer_file,
            do_lower_case=do_lower_case,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            tokenize_chinese_chars=tokenize_chinese_chars,
            strip_accents=strip_accents,
            bos_token=bos_token,
            eos_token=eos_token,
            **kwargs,
        )

    def _add_specials(self, backend: Tokenizer, specials: list[str]) -> None:
        # transformers (4 and 5): a <mask> the files do not describe takes the space before it
        existing = {t.content for t in backend.get_added_tokens_decoder().values()}
        if self.mask_token and self.mask_token not in existing:
            backend.add_special_tokens(
                [AddedToken(self.mask_token, lstrip=True, rstrip=False, normalized=False, special=True)]
            )
        _add_special_tokens(backend, specials)

    def _update_post_processor(self) -> None:
        # transformers 5 sets it whatever tokenizer.json holds: RobertaProcessing, trim_offsets, no prefix space
        self._tokenizer.post_processor = processors.RobertaProcessing(
            (self.sep_token, self.sep_token_id), (self.cls_token, self.cls_token_id), True, False
        )

    def _ensure_post_processor(self) -> None:
        self._update_post_processor()


DistilBertTokenizerFast = DistilBertTokenizer
ElectraTokenizerFast = ElectraTokenizer
MPNetTokenizerFast = MPNetTokenizer
