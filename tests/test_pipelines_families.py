"""fastbert.pipeline against transformers.pipeline on the families other than BERT, each with its own tokenizer:
fill-mask with ``<mask>`` (byte-level BPE, SentencePiece Unigram), token classification with every aggregation
strategy over BPE / Unigram / WordPiece word boundaries, and question answering on models without token types
(RoBERTa, XLM-R, DistilBERT) against a brute-force reference of transformers 4's extractive pipeline (which
transformers 5 dropped) written on transformers' model and tokenizer.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from model_helpers import assert_same, perturb_norms_and_biases, require_transformers
from tokenizer_family_helpers import save_family_tokenizers

import fastbert

transformers = require_transformers()

WIDTHS = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
PREFIX = {"roberta": "Roberta", "xlm-roberta": "XLMRoberta", "distilbert": "DistilBert", "mpnet": "MPNet"}
LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    return save_family_tokenizers(str(tmp_path_factory.mktemp("family-pipelines")), model_max_length=64)


_FOLDERS: dict = {}


def folder(tokenizers, family: str, head: str) -> str:
    """A tiny random ``{family}For{head}`` saved by transformers beside the family's tokenizer."""
    key = (family, head)
    if key not in _FOLDERS:
        tok = transformers.AutoTokenizer.from_pretrained(tokenizers[family])
        extra = (
            {"id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}}
            if head == "TokenClassification"
            else {}
        )
        if family == "distilbert":
            config = transformers.DistilBertConfig(
                vocab_size=len(tok), dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=80,
                pad_token_id=tok.pad_token_id, **extra,
            )  # fmt: skip
        else:
            types = {"type_vocab_size": 1} if family in ("roberta", "xlm-roberta") else {}
            config_class = getattr(transformers, PREFIX[family] + "Config")
            config = config_class(
                vocab_size=len(tok), max_position_embeddings=80, pad_token_id=tok.pad_token_id, **WIDTHS, **types, **extra
            )  # fmt: skip
        torch.manual_seed(0)
        model = getattr(transformers, f"{PREFIX[family]}For{head}")(config).eval()
        path = f"{tokenizers[family]}-{head}"
        perturb_norms_and_biases(model, scale=0.5).save_pretrained(path)
        tok.save_pretrained(path)
        _FOLDERS[key] = path
    return _FOLDERS[key]


TEXT = "John Smith lives in São Paulo, naïve façade; it's don't-stop  ok"


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_fill_mask_with_the_family_mask_token(tokenizers, family):
    path = folder(tokenizers, family, "MaskedLM")
    ours = fastbert.pipeline("fill-mask", model=path)
    theirs = transformers.pipeline("fill-mask", model=path, device=-1)
    texts = ["the <mask> of france is paris.", "<mask> lives in new <mask>.", "Crème <mask> à la carte"]
    assert_same(ours(texts, top_k=4), theirs(texts, top_k=4))  # one mask, several masks
    targets = ["paris", "Ġparis", "▁paris", "city", " city"]  # in the vocabulary or its first piece
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # targets outside the vocabulary: both warn
        assert_same(ours(texts[1], targets=targets), theirs(texts[1], targets=targets))
    with pytest.raises(ValueError, match=r"no mask token \(<mask>\)"):
        ours("the [MASK] of france")


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "distilbert", "mpnet"])
@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_word_boundaries(tokenizers, family, strategy):
    path = folder(tokenizers, family, "TokenClassification")
    ours = fastbert.pipeline("token-classification", model=path)
    theirs = transformers.pipeline("token-classification", model=path, device=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BPE and Unigram: "Tokenizer does not support real words" (both)
        assert_same(ours(TEXT, aggregation_strategy=strategy), theirs(TEXT, aggregation_strategy=strategy))
        assert_same(
            ours(TEXT, aggregation_strategy=strategy, ignore_labels=[]),
            theirs(TEXT, aggregation_strategy=strategy, ignore_labels=[]),
        )
        if strategy != "none":
            long = " ".join([TEXT] * 5)
            assert_same(
                ours(long, aggregation_strategy=strategy, stride=5),
                theirs(long, aggregation_strategy=strategy, stride=5),
            )
        if family != "roberta":  # RoBERTa's pre-split words need add_prefix_space=True (transformers 4)
            words = TEXT.split()
            assert_same(
                ours(words, is_split_into_words=True, aggregation_strategy=strategy),
                theirs(words, is_split_into_words=True, aggregation_strategy=strategy),
            )


def reference_qa(
    path, question, context, top_k=1, doc_stride=None, max_seq_len=None, handle_impossible_answer=False
):
    """transformers 4's extractive question answering, brute force over spans, on transformers' model and
    tokenizer (token types only where the tokenizer gives them, answers aligned with its Encoding's words)."""
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(path).eval()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    max_seq_len = max_seq_len or min(tok.model_max_length, 384)
    doc_stride = doc_stride if doc_stride is not None else min(max_seq_len // 2, 128)
    enc = tok(
        question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )  # fmt: skip
    answers, null = [], 1e6
    for encoding in enc.encodings:
        ids = torch.tensor([encoding.ids])
        types = (
            {"token_type_ids": torch.tensor([encoding.type_ids])}
            if "token_type_ids" in tok.model_input_names
            else {}
        )
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), **types)
        ok = torch.tensor(
            [s == 1 or t == tok.cls_token_id for s, t in zip(encoding.sequence_ids, encoding.ids)]
        )
        ps = torch.where(ok, out.start_logits[0], torch.tensor(-10000.0)).softmax(-1)
        pe = torch.where(ok, out.end_logits[0], torch.tensor(-10000.0)).softmax(-1)
        null = min(null, (ps[0] * pe[0]).item())
        ctx = [j for j, s in enumerate(encoding.sequence_ids) if s == 1]
        spans = sorted(((ps[s] * pe[e]).item(), s, e) for s in ctx for e in ctx if s <= e < s + 15)[::-1]
        for score, s, e in spans[: top_k * 2 + 10]:
            a = encoding.word_to_chars(encoding.token_to_word(s), 1)[0]
            b = encoding.word_to_chars(encoding.token_to_word(e), 1)[1]
            same = [x for x in answers if x["answer"].lower() == context[a:b].lower()]
            if same:
                same[0]["score"] += score
            else:
                answers.append({"score": score, "start": a, "end": b, "answer": context[a:b]})
    if handle_impossible_answer:
        answers.append({"score": null, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "distilbert"])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"top_k": 5},
        {"handle_impossible_answer": True, "top_k": 3},
        {"max_seq_len": 34, "doc_stride": 6, "top_k": 4},
    ],
    ids=repr,
)
def test_question_answering_without_token_types(tokenizers, family, kw):
    path = folder(tokenizers, family, "QuestionAnswering")
    qa = fastbert.pipeline("question-answering", model=path)
    question, context = "where does john live?", TEXT + " and his sister lives in Paris."
    assert_same(
        qa(question=question, context=context, **kw), reference_qa(path, question, context, **kw), atol=1e-5
    )
