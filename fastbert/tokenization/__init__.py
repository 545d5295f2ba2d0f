"""Tokenizers on the ``tokenizers`` library, with transformers' fast-tokenizer API.

One job per module: ``files`` (finding and reading tokenizer files, their settings, the backend from
``tokenizer.json``), ``special_tokens`` (the special tokens and vocabulary API), ``call`` (the call / pad /
truncate path), ``base`` (what every class shares: settings, from_pretrained, save_pretrained, pickling),
``bert`` (the WordPiece pipeline, ``BertTokenizer`` and the BERT page's methods), ``bert_variants``
(DistilBERT, ELECTRA, MPNet on BERT's WordPiece), ``roberta`` (byte-level BPE RoBERTa, Unigram XLM-RoBERTa and
CamemBERT), ``sentencepiece_model`` (reading a SentencePiece model file without sentencepiece), ``auto`` (the
class a folder needs, for ``AutoTokenizer``) and ``layer``
(``BertTokenizerLayer``, an ``nn.Module`` that tokenizes: the TFBertTokenizer row, imported on first use since
it imports torch).

A tokenizer file that cannot be used (not UTF-8, not JSON, not a tokenizer, a field of the wrong type, a
vocabulary without its unk token) raises ``ValueError`` or ``OSError`` naming the file and what was expected.

transformers is not imported here: it is a test-only dependency.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..encoding import BatchEncoding, CharSpan, TokenSpan
from .bert import BertTokenizer, BertTokenizerFast
from .bert_variants import (
    DistilBertTokenizer,
    DistilBertTokenizerFast,
    ElectraTokenizer,
    ElectraTokenizerFast,
    MPNetTokenizer,
    MPNetTokenizerFast,
)
from .roberta import (
    CamembertTokenizer,
    CamembertTokenizerFast,
    RobertaTokenizer,
    RobertaTokenizerFast,
    XLMRobertaTokenizer,
    XLMRobertaTokenizerFast,
)

__all__ = [
    "BatchEncoding",
    "BertTokenizer",
    "BertTokenizerFast",
    "BertTokenizerLayer",
    "CamembertTokenizer",
    "CamembertTokenizerFast",
    "CharSpan",
    "DistilBertTokenizer",
    "DistilBertTokenizerFast",
    "ElectraTokenizer",
    "ElectraTokenizerFast",
    "MPNetTokenizer",
    "MPNetTokenizerFast",
    "RobertaTokenizer",
    "RobertaTokenizerFast",
    "TokenSpan",
    "XLMRobertaTokenizer",
    "XLMRobertaTokenizerFast",
]


def __getattr__(name: str) -> Any:
    if name == "BertTokenizerLayer":  # torch is imported on first use only
        value = importlib.import_module(".layer", __name__).BertTokenizerLayer
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
