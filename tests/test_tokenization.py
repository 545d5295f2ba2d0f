"""fastbert.BertTokenizer against transformers' BertTokenizerFast (a test-only dependency).

Four vocabularies: the MiniLM tokenizer.json, a vocab.txt-only copy of it, a small hand-written vocab and
antiberty's amino-acid vocab.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from collections.abc import Mapping

import pytest
import tokenizers
import torch

import fastbert
from fastbert import encoding
from fastbert.hub import embedded_model_path
from fastbert.tokenization import BatchEncoding, BertTokenizer, BertTokenizerFast

transformers = pytest.importorskip("transformers")

MINILM = embedded_model_path()

TEXTS = [
    "Hello, world! This is fastbert.",
    "Plants create [MASK] through a process known as photosynthesis.",
    "The quick brown fox jumps over the lazy dog; isn't it?",
    "Héllo Crème brûlée à la carte, naïve façade, Ångström, São Paulo",
    "ÉCOLE Zürich ÀÉÎÕÜ",
    "北京是中国的首都。我爱自然语言处理",
    "日本語のテキストと한국어 텍스트",
    "emoji 😀🎉👍🏽 and ❤️ and 🇫🇷",
    "control\x00chars\x07\x1b here\tand\r\nnewlines\u200b\ufeff",
    "   ",
    "\t\n ",
    "",
    "a",
    "[CLS] [SEP] [PAD] [UNK] [mask] [MASK]",
    "don't won't it's they're I'm we've",
    "e-mail: someone@example.com, url https://example.org/a_b?c=d#e",
    "numbers 3.14159 1,000,000 42nd 2026-11-25",
    "supercalifragilisticexpialidocious " + "x" * 150,
    " ".join(["word"] * 700),
]

PAIRS = [
    ("What is the capital of France?", "Paris is the capital and largest city of France."),
    ("Who?", ""),
    ("", "Only second."),
    ("Crème brûlée", "北京 emoji 😀"),
]

SMALL_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "dog",
    "##s",
    "##ing",
    "run",
    "play",
    ".",
    ",",
    "!",
    "?",
    "a",
    "b",
    "c",
    "##a",
    "##b",
    "##c",
    "hello",
    "world",
    "foo",
    "bar",
    "foo.bar",
    "北",
    "京",
    "é",
    "e",
    "Hello",
    "The",
    "Cat",
]

ANTIBERTY_SEQS = [
    "E V Q L V E S G G G L V Q P G G S L R L S C A A S G F T F S",
    "Q V Q L Q E S G P G L V K P S E T L S L T C T V S",
    "D I Q M T Q S P S S L S A S V G D R V T I T C",
    "E V Q L X B Z",  # letters not in the vocabulary
    "E",
]


# ---------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------


def _antiberty_dir() -> str:
    antiberty = pytest.importorskip("antiberty")
    folder = os.path.join(os.path.dirname(antiberty.__file__), "trained_models")
    if not os.path.isfile(os.path.join(folder, "vocab.txt")):
        pytest.skip("antiberty has no trained_models/vocab.txt")
    return folder


@pytest.fixture(scope="module")
def vocab_only_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("vocab_only")
    shutil.copy(os.path.join(MINILM, "vocab.txt"), d / "vocab.txt")
    return str(d)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("small_vocab")
    (d / "vocab.txt").write_text("\n".join(SMALL_VOCAB) + "\n", encoding="utf-8")
    return str(d)


@pytest.fixture(scope="module")
def minilm_pair():
    return BertTokenizer.from_pretrained(MINILM), transformers.BertTokenizerFast.from_pretrained(MINILM)


@pytest.fixture(scope="module")
def vocab_only_pair(vocab_only_dir):
    return (
        BertTokenizer.from_pretrained(vocab_only_dir),
        transformers.BertTokenizerFast.from_pretrained(vocab_only_dir),
    )


@pytest.fixture(scope="module", params=["minilm", "vocab_only"])
def pair(request, minilm_pair, vocab_only_pair):
    return minilm_pair if request.param == "minilm" else vocab_only_pair


def _same_encoding(ours, theirs, keys=None):
    keys = keys or list(theirs.keys())
    for k in keys:
        a, b = ours[k], theirs[k]
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype, k
            assert torch.equal(a, b), k
        else:
            assert _norm(a) == _norm(b), k


def _norm(x):
    if isinstance(x, (list, tuple)):
        return [_norm(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------------------
# ids equal transformers'
# ---------------------------------------------------------------------------------------------------------


def test_public_names_and_alias():
    assert fastbert.BertTokenizer is BertTokenizer
    assert fastbert.BertTokenizerFast is BertTokenizer
    assert BertTokenizerFast is BertTokenizer
    assert fastbert.BatchEncoding is BatchEncoding
    # BatchEncoding lives in its own module; the tokenizer module re-exports it
    assert encoding.BatchEncoding is BatchEncoding


def test_import_fastbert_does_not_import_transformers():
    code = "import sys, fastbert; fastbert.BertTokenizer; fastbert.BatchEncoding; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_auto_tokenizer_does_not_import_torch():
    """A tokenizer alone needs no torch: AutoTokenizer lives with the tokenizers, not with the Auto models."""
    code = (
        "import sys, fastbert; fastbert.AutoTokenizer; fastbert.BertTokenizer; fastbert.RobertaTokenizer; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("text", TEXTS)
def test_ids_equal_transformers(pair, text):
    ours, theirs = pair
    _same_encoding(ours(text), theirs(text))
    assert ours.tokenize(text) == theirs.tokenize(text)


def test_batch_and_pairs_equal_transformers(pair):
    ours, theirs = pair
    _same_encoding(ours(TEXTS[:-1], padding=True), theirs(TEXTS[:-1], padding=True))
    a = [p[0] for p in PAIRS]
    b = [p[1] for p in PAIRS]
    _same_encoding(ours(a, b, padding=True), theirs(a, b, padding=True))
    _same_encoding(ours([list(p) for p in PAIRS]), theirs([list(p) for p in PAIRS]))
    _same_encoding(ours(PAIRS), theirs(PAIRS))  # a list of (a, b) tuples
    for x, y in PAIRS:
        _same_encoding(ours(x, y), theirs(x, y))
        assert ours.encode(x, y) == theirs.encode(x, y)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"do_lower_case": False},
        {"do_lower_case": False, "strip_accents": True},
        {"do_lower_case": True, "strip_accents": False},
        {"do_lower_case": True, "strip_accents": True},
        {"tokenize_chinese_chars": False},
    ],
)
@pytest.mark.parametrize("source", ["minilm", "vocab_only"])
def test_normalizer_options_equal_transformers(kwargs, source, vocab_only_dir):
    folder = MINILM if source == "minilm" else vocab_only_dir
    ours = BertTokenizer.from_pretrained(folder, **kwargs)
    theirs = transformers.BertTokenizerFast.from_pretrained(folder, **kwargs)
    for key, value in kwargs.items():
        assert getattr(ours, key) == value
    for text in TEXTS:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text


def test_direct_construction(vocab_only_dir):
    vocab = os.path.join(vocab_only_dir, "vocab.txt")
    ours = BertTokenizer(vocab_file=vocab, do_lower_case=False)
    theirs = transformers.BertTokenizerFast.from_pretrained(vocab_only_dir, do_lower_case=False)
    for text in TEXTS[:8]:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"]
    from_json = BertTokenizer(tokenizer_file=os.path.join(MINILM, "tokenizer.json"))
    assert from_json("Hello World")["input_ids"] == [101, 7592, 2088, 102]
    from_dict = BertTokenizer(vocab={t: i for i, t in enumerate(SMALL_VOCAB)})
    assert from_dict("the cats")["input_ids"] == [2, 5, 6, 11, 3]
    assert BertTokenizer({t: i for i, t in enumerate(SMALL_VOCAB)})("the cats")["input_ids"] == [
        2,
        5,
        6,
        11,
        3,
    ]
    assert BertTokenizer(vocab)("Hello")["input_ids"] == [101, 7592, 102]
    with pytest.raises(ValueError, match="needs a vocabulary"):
        BertTokenizer()


@pytest.mark.parametrize("lower", [True, False])
def test_small_vocab_equals_transformers(small_dir, lower):
    ours = BertTokenizer.from_pretrained(small_dir, do_lower_case=lower)
    theirs = transformers.BertTokenizerFast.from_pretrained(small_dir, do_lower_case=lower)
    texts = TEXTS + [
        "The cats sat on the mat.",
        "Hello world!",
        "foo.bar foo bar",
        "北京 é É",
        "dogs running",
    ]
    for text in texts:
        _same_encoding(ours(text), theirs(text))
    assert ours.vocab_size == len(SMALL_VOCAB) == len(ours)
    assert ours("the cats")["input_ids"] == [2, 5, 6, 11, 3]
    assert ours.tokenize("the cats zzz") == ["the", "cat", "##s", "[UNK]"]


def test_antiberty_vocab_equals_transformers():
    folder = _antiberty_dir()
    # as antiberty's own runner: BertTokenizer(vocab_file=..., do_lower_case=False)
    ours = BertTokenizer(vocab_file=os.path.join(folder, "vocab.txt"), do_lower_case=False)
    assert BertTokenizer.from_pretrained(folder, do_lower_case=False)("E V")["input_ids"] == [2, 8, 22, 3]
    theirs = transformers.BertTokenizerFast.from_pretrained(folder, do_lower_case=False)
    lowered = BertTokenizer.from_pretrained(folder)  # the BERT default lowercases: all [UNK], as transformers
    assert (
        lowered("E V Q")["input_ids"]
        == transformers.BertTokenizerFast.from_pretrained(folder)("E V Q")["input_ids"]
    )
    for seq in ANTIBERTY_SEQS:
        _same_encoding(ours(seq), theirs(seq))
    _same_encoding(
        ours(ANTIBERTY_SEQS, padding=True, return_tensors="pt"),
        theirs(ANTIBERTY_SEQS, padding=True, return_tensors="pt"),
    )
    enc = ours("E V Q L")
    assert enc["input_ids"] == [2, 8, 22, 18, 14, 3]
    assert ours.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "E", "V", "Q", "L", "[SEP]"]
    assert ours.mask_token_id == 4 and ours.pad_token_id == 0 and ours.vocab_size == 25


def test_special_tokens(minilm_pair, small_dir):
    ours, theirs = minilm_pair
    for name in ("unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(theirs, f"{name}_token")
        assert getattr(ours, f"{name}_token_id") == getattr(theirs, f"{name}_token_id")
    assert ours.all_special_tokens == ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
    assert ours.all_special_ids == [100, 102, 0, 101, 103]
    assert sorted(ours.all_special_ids) == sorted(theirs.all_special_ids)
    assert ours.special_tokens_map == {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    small = BertTokenizer.from_pretrained(small_dir)
    assert (
        small.pad_token_id,
        small.unk_token_id,
        small.cls_token_id,
        small.sep_token_id,
        small.mask_token_id,
    ) == (0, 1, 2, 3, 4)
    # special tokens whole in raw text, not after lowercasing
    assert ours.tokenize("a [MASK] b [mask]") == theirs.tokenize("a [MASK] b [mask]")
    # a special token missing from the vocabulary gets a new id
    custom = BertTokenizer.from_pretrained(small_dir, mask_token="<mask>")
    assert custom.mask_token_id == len(SMALL_VOCAB)
    assert custom("a <mask> b")["input_ids"][2] == custom.mask_token_id


def test_setting_special_tokens_as_transformers():
    """``tok.pad_token_id = i`` sets the pad token (transformers 4 and 5; fastbert had no setter, an
    AttributeError), an ``AddedToken`` is its content (fastbert kept the object: a TypeError at the next id
    read), and a value that is not a token is refused where it is set."""
    from tokenizers import AddedToken

    for set_it in (
        lambda tok: setattr(tok, "pad_token_id", tok.unk_token_id),
        lambda tok: setattr(tok, "pad_token", AddedToken("[UNK]")),
        lambda tok: setattr(tok, "sep_token_id", 1012),
        lambda tok: setattr(tok, "mask_token_id", None),
        lambda tok: setattr(tok, "pad_token_id", 10**7),  # no such id: no pad token
    ):
        ours, theirs = (
            BertTokenizer.from_pretrained(MINILM),
            transformers.BertTokenizerFast.from_pretrained(MINILM),
        )
        set_it(ours), set_it(theirs)
        assert ours.special_tokens_map == theirs.special_tokens_map
        assert [getattr(ours, f"{n}_token_id") for n in ("pad", "sep", "mask")] == [
            getattr(theirs, f"{n}_token_id") for n in ("pad", "sep", "mask")
        ]
        if ours.pad_token_id is not None:
            kwargs = dict(padding="max_length", max_length=8)
            assert ours("hi", "x", **kwargs)["input_ids"] == theirs("hi", "x", **kwargs)["input_ids"]
    ours = BertTokenizer.from_pretrained(MINILM)
    ours.additional_special_tokens_ids = [1, 2]  # transformers 4's
    assert ours.additional_special_tokens == ["[unused0]", "[unused1]"]
    with pytest.raises(ValueError, match="non-string value as the pad_token"):
        ours.pad_token = 0
    assert ours.pad_token == "[PAD]"


def test_vocab_helpers(minilm_pair):
    ours, theirs = minilm_pair
    assert ours.vocab_size == theirs.vocab_size == 30522
    assert len(ours) == len(theirs)
    assert ours.get_vocab() == theirs.get_vocab()
    assert ours.convert_tokens_to_ids("hello") == 7592
    assert ours.convert_tokens_to_ids(["hello", "world", "qqqqzz"]) == [7592, 2088, 100]
    assert ours.convert_ids_to_tokens(7592) == "hello"
    assert ours.convert_ids_to_tokens([101, 7592, 102]) == ["[CLS]", "hello", "[SEP]"]
    assert ours.convert_ids_to_tokens([101, 7592, 102], skip_special_tokens=True) == ["hello"]
    assert ours.convert_ids_to_tokens(torch.tensor([7592, 2088])) == ["hello", "world"]
    tokens = ours.tokenize("unaffable playing")
    assert (
        ours.convert_tokens_to_string(tokens)
        == theirs.convert_tokens_to_string(tokens)
        == "unaffable playing"
    )
    assert ours.model_max_length == theirs.model_max_length == 512


def test_never_split(small_dir):
    # never_split tokens of the vocabulary are kept whole, as transformers' slow (python) BertTokenizer does
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    vocab = os.path.join(small_dir, "vocab.txt")
    ours = BertTokenizer.from_pretrained(small_dir, never_split=["foo.bar"])
    slow = legacy.BertTokenizerLegacy(vocab, never_split=["foo.bar"])
    for text in ["foo.bar", "the foo.bar cat", "foo bar foo.bar"]:
        assert ours.tokenize(text) == slow.tokenize(text), text
    assert ours.tokenize("the foo.bar cat") == ["the", "foo.bar", "cat"]
    assert BertTokenizer.from_pretrained(small_dir).tokenize("foo.bar") == ["foo", ".", "bar"]
    # none given: ids equal the fast tokenizer's
    theirs = transformers.BertTokenizerFast.from_pretrained(small_dir)
    assert BertTokenizer.from_pretrained(small_dir)("foo.bar")["input_ids"] == theirs("foo.bar")["input_ids"]


# ---------------------------------------------------------------------------------------------------------
# padding, truncation, overflow, offsets
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding": True},
        {"padding": "longest"},
        {"padding": "max_length", "max_length": 24},
        {"padding": "max_length", "max_length": 24, "truncation": True},
        {"padding": "do_not_pad", "truncation": True, "max_length": 8},
        {"padding": False, "truncation": "longest_first", "max_length": 10},
        {"padding": True, "pad_to_multiple_of": 8},
        {"padding": True, "truncation": True, "max_length": 16, "pad_to_multiple_of": 8},
        {"padding": True, "padding_side": "left"},
        {
            "padding": True,
            "return_special_tokens_mask": True,
            "return_offsets_mapping": True,
            "return_length": True,
        },
        {"padding": True, "return_token_type_ids": False, "return_attention_mask": False},
        {"padding": True, "add_special_tokens": False},
        {"truncation": True},
        {"max_length": 6},
    ],
)
def test_padding_truncation_equal_transformers(pair, kwargs):
    ours, theirs = pair
    texts = TEXTS[:-1]
    a, b = ours(texts, **kwargs), theirs(texts, **kwargs)
    assert list(a.keys()) == list(b.keys())
    _same_encoding(a, b)
    if len({len(ids) for ids in a["input_ids"]}) == 1:
        a, b = ours(texts, return_tensors="pt", **kwargs), theirs(texts, return_tensors="pt", **kwargs)
        _same_encoding(a, b)
    else:  # ragged: no tensors, in both
        with pytest.raises(ValueError):
            theirs(texts, return_tensors="pt", **kwargs)
        with pytest.raises(ValueError, match="padding"):
            ours(texts, return_tensors="pt", **kwargs)


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
def test_pair_truncation_equal_transformers(minilm_pair, strategy):
    ours, theirs = minilm_pair
    q = "How many words does this rather long question have in it?"
    c = "The context is a paragraph that is long enough to need truncation; it has many words in it indeed."
    kwargs = {"truncation": strategy, "max_length": 20, "padding": "max_length"}
    if strategy == "only_first":
        q, c = c, q
    _same_encoding(ours(q, c, **kwargs), theirs(q, c, **kwargs))


@pytest.mark.parametrize("batched", [False, True])
def test_only_second_on_a_single_text_says_a_pair_is_needed(minilm_pair, batched):
    """transformers 4.57 and 5 raise a bare ``Exception("Truncation error: Second sequence not provided")``;
    fastbert raises a ValueError (still an Exception) that says a text pair is needed, with that message."""
    ours, theirs = minilm_pair
    text = "one two three four five six seven eight nine ten"
    texts = [text, "a"] if batched else text
    with pytest.raises(Exception, match="Second sequence not provided"):
        theirs(texts, truncation="only_second", max_length=6)
    with pytest.raises(ValueError, match=r"needs a pair of texts \(text, text_pair\)") as info:
        ours(texts, truncation="only_second", max_length=6)
    assert "Second sequence not provided" in str(info.value)
    assert "stride" not in str(info.value)  # not the too-short message
    # nothing to truncate: no error, in both
    assert (
        ours("one two", truncation="only_second", max_length=6)["input_ids"]
        == theirs("one two", truncation="only_second", max_length=6)["input_ids"]
    )


def test_truncation_side_left(minilm_pair):
    ours, theirs = minilm_pair
    text = "one two three four five six seven eight nine ten"
    ours.truncation_side = theirs.truncation_side = "left"
    try:
        _same_encoding(ours(text, truncation=True, max_length=6), theirs(text, truncation=True, max_length=6))
        assert (
            ours.decode(ours(text, truncation=True, max_length=6)["input_ids"])
            == "[CLS] seven eight nine ten [SEP]"
        )
    finally:
        ours.truncation_side = theirs.truncation_side = "right"


def test_overflow_with_stride_equals_transformers(minilm_pair):
    """What the question-answering pipeline asks for."""
    ours, theirs = minilm_pair
    questions = ["Where do plants make food?", "What is photosynthesis?"]
    context = " ".join(
        ["Plants create energy through a process known as photosynthesis, in their leaves."] * 6
    )
    kwargs = dict(
        truncation="only_second",
        max_length=48,
        stride=12,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    a = ours(questions, [context, context], **kwargs)
    b = theirs(questions, [context, context], **kwargs)
    assert list(a.keys()) == list(b.keys())
    assert "overflow_to_sample_mapping" in a
    _same_encoding(a, b)
    assert len(a["input_ids"]) > 2 and a["overflow_to_sample_mapping"][0] == 0
    for i in range(len(a["input_ids"])):
        assert a.sequence_ids(i) == b.sequence_ids(i)
        assert a.word_ids(i) == b.word_ids(i)
    # a single example keeps its batch axis when overflowing
    single_a = ours(questions[0], context, **kwargs)
    single_b = theirs(questions[0], context, **kwargs)
    _same_encoding(single_a, single_b)
    assert isinstance(single_a["input_ids"][0], list)
    ta = ours(questions[0], context, return_tensors="pt", **kwargs)
    tb = theirs(questions[0], context, return_tensors="pt", **kwargs)
    _same_encoding(ta, tb)
    assert ta["overflow_to_sample_mapping"].dtype == torch.int64


def test_offsets_equal_transformers(pair):
    ours, theirs = pair
    for text in TEXTS[:-1]:
        _same_encoding(ours(text, return_offsets_mapping=True), theirs(text, return_offsets_mapping=True))
    a = ours("Crème brûlée", "北京 😀", return_offsets_mapping=True)
    b = theirs("Crème brûlée", "北京 😀", return_offsets_mapping=True)
    _same_encoding(a, b)


def test_pretokenized_equals_transformers(pair):
    ours, theirs = pair
    words = ["Hello", "world", "Crème", "brûlée", "北京", "don't"]
    _same_encoding(
        ours(words, is_split_into_words=True, return_offsets_mapping=True),
        theirs(words, is_split_into_words=True, return_offsets_mapping=True),
    )
    batch = [words, ["a", "b"], ["single"]]
    a = ours(batch, is_split_into_words=True, padding=True, return_tensors="pt")
    b = theirs(batch, is_split_into_words=True, padding=True, return_tensors="pt")
    _same_encoding(a, b)
    for i in range(3):
        assert a.word_ids(i) == b.word_ids(i)
    _same_encoding(
        ours(words, ["x", "y"], is_split_into_words=True), theirs(words, ["x", "y"], is_split_into_words=True)
    )


def test_too_long_warns_not_raises(minilm_pair, caplog):
    ours, _ = minilm_pair
    ours._warned.discard("sequence-too-long")
    with caplog.at_level(logging.WARNING, logger="fastbert.tokenization"):
        enc = ours(" ".join(["word"] * 700))
    assert len(enc["input_ids"]) == 702
    assert "longer than the specified maximum sequence length" in caplog.text
    truncated = ours(" ".join(["word"] * 700), truncation=True)
    assert len(truncated["input_ids"]) == 512


def test_no_max_length_model(small_dir, caplog):
    tok = BertTokenizer.from_pretrained(small_dir)
    assert tok.model_max_length == int(1e30)
    with caplog.at_level(logging.WARNING, logger="fastbert.tokenization"):
        enc = tok("the cat " * 10, truncation=True)
    assert len(enc["input_ids"]) == 22
    assert "no maximum length" in caplog.text
    assert BertTokenizer.from_pretrained(small_dir, model_max_length=5)("the cat sat on", truncation=True)[
        "input_ids"
    ] == [2, 5, 6, 7, 3]


def test_padding_side_left(minilm_pair):
    ours, theirs = minilm_pair
    texts = ["short", "a much longer sentence here"]
    a = ours(texts, padding=True, padding_side="left")
    assert a["input_ids"][0][:3] == [0, 0, 0] and a["attention_mask"][0][:3] == [0, 0, 0]
    left = BertTokenizer.from_pretrained(MINILM, padding_side="left")
    assert left.padding_side == "left"
    assert left(texts, padding=True)["input_ids"] == a["input_ids"]
    theirs_left = transformers.BertTokenizerFast.from_pretrained(MINILM, padding_side="left")
    _same_encoding(left(texts, padding=True), theirs_left(texts, padding=True))
    ours.padding_side = "left"
    try:
        assert ours(texts, padding=True)["input_ids"] == a["input_ids"]
    finally:
        ours.padding_side = "right"
    assert ours(texts, padding=True)["input_ids"][0][-1] == 0


# ---------------------------------------------------------------------------------------------------------
# BatchEncoding
# ---------------------------------------------------------------------------------------------------------


def test_batch_encoding_api(minilm_pair):
    ours, theirs = minilm_pair
    enc = ours(["Hello world", "Crème brûlée"], ["pair one", "two"], padding=True, return_tensors="pt")
    assert isinstance(enc, BatchEncoding) and isinstance(enc, Mapping)
    assert list(enc.keys()) == ["input_ids", "token_type_ids", "attention_mask"]
    assert enc.input_ids is enc["input_ids"]
    for k in enc:
        assert enc[k].dtype == torch.int64
    assert enc.to("cpu") is enc
    assert enc.to(torch.device("cpu")) is enc
    unpacked = dict(**enc)
    assert set(unpacked) == {"input_ids", "token_type_ids", "attention_mask"}
    assert len(enc.encodings) == 2 and enc.n_sequences == 2
    ref = theirs(["Hello world", "Crème brûlée"], ["pair one", "two"], padding=True, return_tensors="pt")
    for i in range(2):
        assert enc.tokens(i) == ref.tokens(i)
        assert enc.word_ids(i) == ref.word_ids(i)
        assert enc.sequence_ids(i) == ref.sequence_ids(i)
    assert enc.token_to_chars(1, 1) == ref.token_to_chars(1, 1)
    assert tuple(enc.token_to_chars(0, 1)) == (0, 5)
    assert enc.char_to_token(1, 7) == ref.char_to_token(1, 7)
    assert enc.char_to_token(0, 1, sequence_index=1) == ref.char_to_token(0, 1, sequence_index=1)
    assert enc.token_to_word(0, 2) == ref.token_to_word(0, 2)
    assert enc.word_to_tokens(0, 1) == ref.word_to_tokens(0, 1)
    assert enc.char_to_word(0, 7) == ref.char_to_word(0, 7)
    assert enc.token_to_sequence(0, 1) == ref.token_to_sequence(0, 1)
    single = ours("Hello world")
    assert single.tokens() == ["[CLS]", "hello", "world", "[SEP]"]
    assert single.char_to_token(7) == 2
    assert single.n_sequences == 1
    assert single[0].ids == single["input_ids"]
    assert [e.ids for e in single[:2]] == [single["input_ids"]]  # a list of Encoding: see below
    with pytest.raises(AttributeError):
        _ = single.not_a_key
    # non-tensors untouched by .to()
    mixed = BatchEncoding({"input_ids": torch.tensor([[1, 2]]), "meta": ["x"]})
    assert mixed.to("cpu")["meta"] == ["x"]
    # pickling and copying keep the encodings
    again = pickle.loads(pickle.dumps(enc))
    assert torch.equal(again["input_ids"], enc["input_ids"]) and again.tokens(0) == enc.tokens(0)
    assert copy.deepcopy(single).tokens() == single.tokens()


def test_return_tensors_dtypes_and_numpy(minilm_pair):
    ours, _ = minilm_pair
    enc = ours(
        "Hello world", return_tensors="pt", return_offsets_mapping=True, return_special_tokens_mask=True
    )
    assert enc["input_ids"].shape == (1, 4)
    for k, v in enc.items():
        assert v.dtype == torch.int64, k
    np = pytest.importorskip("numpy")
    arr = ours(["Hello world", "a"], padding=True, return_tensors="np")
    assert isinstance(arr["input_ids"], np.ndarray) and arr["input_ids"].dtype == np.int64
    assert arr["input_ids"].shape == (2, 4)
    with pytest.raises(ValueError, match="padding"):
        ours(["Hello world", "a"], return_tensors="pt")
    with pytest.raises(ValueError, match="Unsupported return_tensors='tf'"):
        ours("a", return_tensors="tf")


def test_batch_encoding_indexing_as_transformers(minilm_pair):
    """transformers 4.57 and 5's ``BatchEncoding.__getitem__``: a str key → its value; with encodings, any other
    key indexes the Encoding list (``enc[:1]`` → ``list[Encoding]``, ``enc[[0]]`` → TypeError); without
    (built by hand), a slice → a dict of sliced values and an int → KeyError. ``.data`` is a plain dict."""
    ours, theirs = minilm_pair
    texts = ["Hello world", "a much longer sentence here ok", "b"]
    enc, ref = ours(texts, padding=True), theirs(texts, padding=True)
    for key in (slice(None, 1), slice(1, None), slice(None, None, 2), 0, -1):
        a, b = enc[key], ref[key]
        assert type(a) is type(b), key
        if isinstance(b, list):
            assert [e.ids for e in a] == [e.ids for e in b] and [e.offsets for e in a] == [
                e.offsets for e in b
            ]
        else:
            assert a.ids == b.ids and a.tokens == b.tokens
    with pytest.raises(TypeError):
        ref[[0]]
    with pytest.raises(TypeError):
        enc[[0]]
    # without encodings
    data = {"input_ids": [[1, 2], [3, 4], [5, 6]], "attention_mask": [[1, 1], [1, 1], [1, 0]]}
    mine, theirs_ = BatchEncoding(data), transformers.BatchEncoding(data)
    assert mine[1:] == theirs_[1:] == {k: v[1:] for k, v in data.items()}
    assert type(mine[1:]) is type(theirs_[1:]) is dict
    for bad in (0, 1.5):
        with pytest.raises(KeyError):
            theirs_[bad]
        with pytest.raises(KeyError):
            mine[bad]
    # .data: a plain dict of the same values, as transformers' UserDict's
    assert type(enc.data) is type(ref.data) is dict
    assert enc.data == dict(enc) and enc.data["input_ids"] is enc["input_ids"]
    assert json.dumps(enc.data) == json.dumps(dict(ref.data))


def test_batch_encoding_data_is_the_dict_behind_it(minilm_pair, tmp_path):
    """transformers' BatchEncoding is a UserDict: ``enc.data`` is the very dict that holds the keys (writes
    through it show in ``enc``, and the reverse), and a modified ``enc.data`` of tensors saved with
    ``torch.save`` loads back with ``weights_only=True``. ``.to``, ``convert_to_tensors`` and the encodings
    keep working on it."""
    ours, theirs = minilm_pair
    texts = ["Hello world", "a"]
    for tok in (ours, theirs):
        enc = tok(texts, padding=True)
        assert isinstance(enc, Mapping) and isinstance(enc, dict) is isinstance(theirs(texts), dict)
        data = enc.data
        assert enc.data is data and type(data) is dict
        data["labels"] = [[0, 1, 2, 3], [1, 2, 3, 4]]
        assert "labels" in enc and enc["labels"] is data["labels"] and enc.labels == data["labels"]
        enc["extra"] = [[5], [6]]
        assert data["extra"] == [[5], [6]]
        del data["extra"]
        assert "extra" not in enc and list(enc) == [*tok.model_input_names, "labels"]
        enc.convert_to_tensors("pt")
        assert enc.data is data and isinstance(data["labels"], torch.Tensor)
        assert enc.to("cpu") is enc
        data = enc.data  # transformers' .to() puts a new dict behind it; fastbert's moves them in place
        data["input_ids"] = data["input_ids"][:, :2]
        assert enc["input_ids"].shape == (2, 2)
        assert enc.word_ids(0) == theirs(texts, padding=True).word_ids(0)
        path = tmp_path / f"{type(tok).__module__.split('.')[0]}.pt"
        torch.save(enc.data, path)
        loaded = torch.load(path, weights_only=True)
        assert type(loaded) is dict and list(loaded) == list(enc)
        assert all(torch.equal(loaded[k], enc[k]) for k in loaded)
        # a copy has a dict of its own
        copied = enc.copy()
        assert copied.data is not data and copied.data == data
        copied.data["labels"] = None
        assert enc["labels"] is data["labels"] is not None
        again = pickle.loads(pickle.dumps(enc))
        assert type(again.data) is dict and list(again.data) == list(data)


def test_batch_encoding_copy_and_merge_stay_batch_encodings(minilm_pair):
    """``enc.copy()`` and ``enc | {...}`` / ``{...} | enc`` give a BatchEncoding (with ``.to``) as transformers'
    UserDict: the copy keeps the encodings, the merge has none; ``|=`` updates in place."""
    ours, theirs = minilm_pair
    enc, ref = (tok(["Hello world", "a"], padding=True, return_tensors="pt") for tok in (ours, theirs))
    for a, b in ((enc.copy(), ref.copy()), (enc | {"labels": 1}, ref | {"labels": 1})):
        assert type(a) is BatchEncoding and type(b) is transformers.BatchEncoding
        assert list(a) == list(b) and a.is_fast == b.is_fast
        assert a.to("cpu") is a
    copied = enc.copy()
    assert copied is not enc and copied["input_ids"] is enc["input_ids"] and copied.tokens(1) == ref.tokens(1)
    copied["labels"] = 0
    assert "labels" not in enc
    merged = {"labels": 1} | enc
    assert type(merged) is BatchEncoding and list(merged) == list({"labels": 1} | ref)
    assert not merged.is_fast and merged["labels"] == 1
    same = enc
    same |= {"labels": 2}
    assert same is enc and enc["labels"] == 2 and enc.is_fast


@pytest.mark.parametrize("how", ["call", "convert_to_tensors", "pad"])
def test_return_tensors_np_ragged_as_transformers(minilm_pair, how):
    """An unpadded batch of different lengths with return_tensors="np": transformers 4.57 and 5 return a 1-D
    dtype=object array of per-row int arrays, without warning; "pt" still refuses it."""
    np = pytest.importorskip("numpy")
    ours, theirs = minilm_pair
    texts = ["hello world", "a much longer sentence here ok", "b"]

    def run(tok, lib):
        if how == "call":
            return tok(texts, return_tensors="np", return_offsets_mapping=True, return_length=True)
        if how == "convert_to_tensors":
            return tok(texts).convert_to_tensors("np")
        return tok.pad(
            [{"input_ids": tok(t)["input_ids"]} for t in texts], padding=False, return_tensors="np"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = run(ours, "fastbert")
    b = run(theirs, "transformers")
    assert list(a.keys()) == list(b.keys())
    for key in b:
        assert type(a[key]) is np.ndarray and a[key].dtype == b[key].dtype, key
        assert a[key].shape == b[key].shape, key
        if b[key].dtype == object:
            assert a[key].ndim == 1
            for x, y in zip(a[key], b[key]):
                assert type(x) is np.ndarray and x.dtype == y.dtype and np.array_equal(x, y), key
        else:
            assert np.array_equal(a[key], b[key]), key
    with pytest.raises(ValueError, match="padding"):
        ours(texts, return_tensors="pt")
    # empty lists: int64, as transformers
    assert BatchEncoding({"input_ids": [[], []]}, tensor_type="np")["input_ids"].dtype == np.int64
    assert (
        transformers.BatchEncoding({"input_ids": [[], []]}, tensor_type="np")["input_ids"].dtype == np.int64
    )


@pytest.mark.parametrize(
    ("value", "prepend"), [([[], []], True), ([[[], []]], False), ([(), ()], False), ((), False), ([], True)]
)
def test_return_tensors_pt_empty_is_int64_as_transformers(value, prepend):
    """Empty ids at any depth, in lists or tuples, become int64 tensors (transformers' ``_is_empty``), not
    torch's default float32 that an embedding refuses."""
    ours = BatchEncoding({"input_ids": value}, tensor_type="pt", prepend_batch_axis=prepend)["input_ids"]
    theirs = transformers.BatchEncoding({"input_ids": value}, tensor_type="pt", prepend_batch_axis=prepend)
    assert ours.dtype == theirs["input_ids"].dtype == torch.int64
    assert ours.shape == theirs["input_ids"].shape


def test_batch_encoding_to_non_blocking_is_keyword_only(minilm_pair):
    """As transformers': ``non_blocking`` only by keyword, so ``.to(device, dtype)`` (a tensor's habit) is
    refused before any tensor is touched, not passed on to torch as ``non_blocking=torch.float16``."""
    ours, theirs = minilm_pair
    enc, ref = ours("Hello", return_tensors="pt"), theirs("Hello", return_tensors="pt")
    for args in (("cpu", torch.float16), ("cpu", True)):
        with pytest.raises(TypeError, match="positional argument"):
            ref.to(*args)
        with pytest.raises(TypeError, match="positional argument"):
            enc.to(*args)
    assert enc.to("cpu", non_blocking=True) is enc and enc["input_ids"].dtype == torch.int64


def test_cuda_to(minilm_pair):
    ours, _ = minilm_pair
    enc = ours("Hello", return_tensors="pt")
    if torch.cuda.is_available():
        assert enc.to("cuda")["input_ids"].is_cuda
    else:
        with pytest.raises((AssertionError, RuntimeError)):
            enc.to("cuda")


# ---------------------------------------------------------------------------------------------------------
# decode, pad, the four BERT methods
# ---------------------------------------------------------------------------------------------------------


def test_decode(minilm_pair):
    ours, theirs = minilm_pair
    ids = ours("Hello, world! Isn't it nice? Crème brûlée.")["input_ids"]
    # the MiniLM folder has a tokenizer.json and no clean_up_tokenization_spaces: no clean-up by default
    assert (
        ours.decode(ids) == theirs.decode(ids) == "[CLS] hello, world! isn ' t it nice? creme brulee. [SEP]"
    )
    assert ours.decode(ids, skip_special_tokens=True) == "hello, world! isn ' t it nice? creme brulee."
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    assert ours.decode(ids, clean_up_tokenization_spaces=False) == theirs.decode(
        ids, clean_up_tokenization_spaces=False
    )
    assert ours.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True) == theirs.decode(
        ids, skip_special_tokens=True, clean_up_tokenization_spaces=True
    )
    assert (
        ours.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
        == "hello, world! isn't it nice? creme brulee."
    )
    assert ours.decode([101, 7592, 1012, 2023, 1005, 1055, 102]) == "[CLS] hello. this ' s [SEP]"
    assert (
        ours.decode([101, 7592, 1012, 2023, 1005, 1055, 102], clean_up_tokenization_spaces=True)
        == "[CLS] hello. this's [SEP]"
    )
    assert ours.decode(torch.tensor([7592])) == "hello"
    assert ours.decode(torch.tensor(7592)) == "hello"
    assert ours.decode(7592) == "hello"
    batch = ours(["Hello world", "a b c"], padding=True, return_tensors="pt")["input_ids"]
    assert ours.batch_decode(batch, skip_special_tokens=True) == ["hello world", "a b c"]
    assert ours.batch_decode(batch) == theirs.batch_decode(batch)


def _copy_with_config(src: str, dst, update: dict, keep_tokenizer_json: bool = True) -> str:
    """A copy of the tokenizer folder ``src`` whose tokenizer_config.json has ``update`` (None values: removed)."""
    shutil.copytree(src, dst)
    config_path = os.path.join(dst, "tokenizer_config.json")
    config = {}
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    config.update(update)
    config = {k: v for k, v in config.items() if v is not None}
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    if not keep_tokenizer_json:
        os.remove(os.path.join(dst, "tokenizer.json"))
    return str(dst)


@pytest.mark.parametrize(
    "setting, tokenizer_json, expected",
    [
        (None, True, False),  # transformers 4.57 (BertTokenizerFast) and 5.25: False
        (True, True, True),
        (False, True, False),
        (True, False, True),
        (False, False, False),
        # unset, vocab.txt only: 4.57's BertTokenizerFast converts the slow tokenizer and takes its default
        # (True); 5.25 gives False. fastbert follows 4.57 (the spec's version).
        (None, False, True),
    ],
)
def test_clean_up_tokenization_spaces_default(tmp_path, setting, tokenizer_json, expected):
    """``clean_up_tokenization_spaces``: as tokenizer_config.json sets it; unset, what transformers' fast
    tokenizer (AutoTokenizer) does. save_pretrained writes the value in force (as 4.57), so that transformers
    loads the saved folder back to the same decoding."""
    folder = _copy_with_config(
        MINILM,
        tmp_path / "src",
        {"clean_up_tokenization_spaces": setting},
        keep_tokenizer_json=tokenizer_json,
    )
    ours = fastbert.AutoTokenizer.from_pretrained(folder)
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    assert ours.clean_up_tokenization_spaces is expected
    if not (setting is None and not tokenizer_json):
        assert theirs.clean_up_tokenization_spaces is expected  # 4.57 too
    ids = ours("Hello , world ! isn't it [MASK] ?")["input_ids"]
    text = ours.decode(ids)
    cleaned, raw = (
        "[CLS] hello, world! isn't it [MASK]? [SEP]",
        "[CLS] hello, world! isn ' t it [MASK]? [SEP]",
    )
    assert text == (cleaned if expected else raw)
    assert raw == theirs.decode(ids, clean_up_tokenization_spaces=False)
    assert ours.batch_decode([ids, ids[:3]]) == [text, ours.decode(ids[:3])]
    if setting is not None or tokenizer_json:
        assert text == theirs.decode(ids)
    # an argument wins over the file and the default
    assert BertTokenizer.from_pretrained(folder, clean_up_tokenization_spaces=not expected).decode(ids) == (
        theirs.decode(ids, clean_up_tokenization_spaces=not expected)
    )
    ours.save_pretrained(tmp_path / "saved")
    with open(tmp_path / "saved" / "tokenizer_config.json", encoding="utf-8") as f:
        assert json.load(f)["clean_up_tokenization_spaces"] is expected
    again = transformers.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert again.clean_up_tokenization_spaces is expected and again.decode(ids) == text
    assert fastbert.AutoTokenizer.from_pretrained(tmp_path / "saved").decode(ids) == text


def test_clean_up_tokenization_spaces_constructors(tmp_path):
    """The constructors: from a vocab.txt, True (4.57's BertTokenizerFast(vocab_file=...)); from a
    tokenizer.json or a tokenizers object, False (4.57 and 5.25); from a {token: id} dict (a transformers 5
    form), 5's False."""
    vocab = os.path.join(MINILM, "vocab.txt")
    assert BertTokenizer(vocab_file=vocab).clean_up_tokenization_spaces is True
    assert (
        BertTokenizer(vocab_file=vocab, clean_up_tokenization_spaces=False).clean_up_tokenization_spaces
        is False
    )
    tokenizer_json = os.path.join(MINILM, "tokenizer.json")
    assert BertTokenizer(tokenizer_file=tokenizer_json).clean_up_tokenization_spaces is False
    theirs = transformers.BertTokenizerFast(tokenizer_file=tokenizer_json)
    assert theirs.clean_up_tokenization_spaces is False
    assert BertTokenizer(tokenizer_object=theirs.backend_tokenizer).clean_up_tokenization_spaces is False
    assert BertTokenizer(vocab={"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}).clean_up_tokenization_spaces is False


def test_pad(minilm_pair):
    ours, theirs = minilm_pair
    feats = [ours(t) for t in ["Hello world", "a", "a longer sentence than the others"]]
    a = ours.pad(feats, return_tensors="pt")
    b = theirs.pad(
        [theirs(t) for t in ["Hello world", "a", "a longer sentence than the others"]], return_tensors="pt"
    )
    _same_encoding(a, b)
    assert list(a.keys()) == ["input_ids", "token_type_ids", "attention_mask"]
    plain = [{"input_ids": f["input_ids"]} for f in feats]
    a = ours.pad(plain, padding="max_length", max_length=12)
    b = theirs.pad(plain, padding="max_length", max_length=12)
    _same_encoding(a, b)
    a = ours.pad(plain, pad_to_multiple_of=8, padding_side="left")
    b = theirs.pad(plain, pad_to_multiple_of=8, padding_side="left")
    _same_encoding(a, b)
    # tensors in → tensors out; other keys left alone
    tens = [{"input_ids": torch.tensor(f["input_ids"]), "label": 1} for f in feats]
    out = ours.pad(tens)
    assert isinstance(out["input_ids"], torch.Tensor) and out["input_ids"].shape == (3, 8)
    assert out["label"].tolist() == [1, 1, 1]
    one = ours.pad({"input_ids": [101, 102]}, padding="max_length", max_length=4)
    assert one["input_ids"] == [101, 102, 0, 0] and one["attention_mask"] == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="includes input_ids"):
        ours.pad([{"attention_mask": [1]}])


PAD_TEXTS = ["Hello world", "a", "a longer sentence than the others, with commas", "Crème brûlée"]
PAD_KINDS = [
    "encodings",  # BatchEncodings of single texts
    "ids",
    "ids_and_types",
    "extra_keys",  # special_tokens_mask (padded with 1) and a label (left alone)
    "offsets_and_length",  # offset_mapping and length: left alone
    "torch",
    "numpy",
    "dict_of_lists",
    "one_encoding",
    "same_length",
]


def _pad_inputs(tok, kind):
    """The same unpadded encodings, in each form that ``pad`` takes."""
    if kind == "encodings":
        return [tok(t) for t in PAD_TEXTS]
    if kind == "same_length":
        return [{"input_ids": [101, 7, 102]}, {"input_ids": [101, 8, 102]}]
    rows = [
        dict(tok(t, return_special_tokens_mask=True, return_offsets_mapping=True, return_length=True))
        for t in PAD_TEXTS
    ]
    if kind == "one_encoding":
        return {k: rows[2][k] for k in ("input_ids", "special_tokens_mask")}
    if kind == "dict_of_lists":
        return {k: [r[k] for r in rows] for k in ("input_ids", "token_type_ids")}
    if kind == "offsets_and_length":
        return rows
    keys = {
        "ids": ("input_ids",),
        "ids_and_types": ("input_ids", "token_type_ids"),
        "extra_keys": ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"),
        "torch": ("input_ids", "attention_mask"),
        "numpy": ("input_ids", "token_type_ids"),
    }[kind]
    out = [{k: r[k] for k in keys} for r in rows]
    if kind == "extra_keys":
        for i, r in enumerate(out):
            r["label"] = i
    if kind == "torch":
        out = [{k: torch.tensor(v) for k, v in r.items()} for r in out]
    if kind == "numpy":
        np = pytest.importorskip("numpy")
        out = [{k: np.array(v) for k, v in r.items()} for r in out]
    return out


def _comparable(value):
    np = pytest.importorskip("numpy")
    if isinstance(value, torch.Tensor):
        return ("pt", value.dtype, value.tolist())
    if isinstance(value, np.ndarray):
        return ("np", str(value.dtype), _comparable(value.tolist()))
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _pad_outcome(pad, inputs, kwargs):
    """What ``pad`` gives: ("ok", keys, values, keys held as ragged object arrays) or ("error", type, text)."""
    try:
        out = pad(copy.deepcopy(inputs), **kwargs)
    except Exception as e:
        return ("error", type(e), str(e))
    ragged = [k for k, v in out.items() if str(getattr(v, "dtype", "")) == "object"]
    return ("ok", list(out.keys()), {k: _comparable(v) for k, v in out.items()}, ragged)


@pytest.mark.parametrize("kind", PAD_KINDS)
def test_pad_equals_transformers(minilm_pair, kind):
    """``pad`` (what data collators and the pipelines' batching use) gives what transformers' ``pad`` gives,
    for every form of input, padding strategy, multiple, side, tensor type and attention-mask choice."""
    ours, theirs = minilm_pair
    inputs = _pad_inputs(ours, kind)
    grid = itertools.product(
        [True, ("max_length", 20), ("max_length", None), ("max_length", 3), False],
        [None, 8],
        [None, "pt", "np"],
        [(None, None), ("left", None), (None, False)],  # padding_side, return_attention_mask
    )
    compared = ragged = 0
    for padding, multiple, tensors, (side, mask) in grid:
        kwargs = dict(pad_to_multiple_of=multiple, return_tensors=tensors, padding_side=side)
        kwargs["return_attention_mask"] = mask
        if isinstance(padding, tuple):
            padding, length = padding
            if length is not None:
                kwargs["max_length"] = length
        kwargs["padding"] = padding
        expected = _pad_outcome(theirs.pad, inputs, kwargs)
        got = _pad_outcome(ours.pad, inputs, kwargs)
        # rows of different lengths with return_tensors="np" (max_length below the longest, padding=False):
        # numpy object arrays of per-row arrays, in fastbert as in transformers 4.57 and 5
        ragged += bool(expected[0] == "ok" and expected[3])
        if expected[0] == "error":
            assert got[0] == "error" and got[1] is expected[1], (kwargs, got)
        else:
            assert got == expected, kwargs
            compared += 1
    assert compared >= 25  # most of the grid compares outputs, not only errors
    assert ragged or kind in ("one_encoding", "same_length"), kind  # the object-array case was met


def test_pad_gives_what_a_padded_call_gives(minilm_pair):
    """Padding unpadded encodings afterwards equals tokenizing with padding (as a pipeline batches)."""
    ours, _ = minilm_pair
    texts = PAD_TEXTS + ["Where do plants make food?"]
    pairs = [("question one", "a context " * 5), ("two?", "short")]
    for kwargs in [{}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 24}]:
        call = dict(kwargs, padding=kwargs.get("padding", True))
        for batch, second in [(texts, None), ([p[0] for p in pairs], [p[1] for p in pairs])]:
            singles = [
                ours(t, s, return_special_tokens_mask=True)
                for t, s in zip(batch, second or [None] * len(batch))
            ]
            padded = ours.pad(singles, return_tensors="pt", padding_side="right", **kwargs)
            direct = ours(batch, second, return_special_tokens_mask=True, return_tensors="pt", **call)
            assert list(padded.keys()) == list(direct.keys())
            _same_encoding(padded, direct)
            assert padded.encodings is None
    # offset_mapping is not padded by pad (as in transformers); a padded call pads it with (0, 0)
    rows = [ours(t, return_offsets_mapping=True) for t in texts]
    out = ours.pad(rows)
    assert out["offset_mapping"] == [r["offset_mapping"] for r in rows]


def test_pad_errors_name_what_is_wrong(minilm_pair):
    ours, _ = minilm_pair
    feats = [{"input_ids": [101, 7592, 102]}, {"input_ids": [101, 102]}]
    with pytest.raises(ValueError, match=r"encoded_inputs\[1\] has no 'token_type_ids'"):
        ours.pad([{"input_ids": [101, 102], "token_type_ids": [0, 0]}, {"input_ids": [101, 102]}])
    with pytest.raises(ValueError, match="token_type_ids should be a list of ids"):
        ours.pad(
            [
                {"input_ids": [101, 7592, 102], "token_type_ids": None},
                {"input_ids": [101, 102], "token_type_ids": None},
            ]
        )
    with pytest.raises(ValueError, match="padding_side"):
        ours.pad(feats, padding_side="middle")
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        ours.pad(feats, pad_to_multiple_of=-8)
    with pytest.raises(TypeError, match="max_length"):
        ours.pad(feats, padding="max_length", max_length="12")
    with pytest.raises(ValueError, match="padding"):
        ours.pad(feats, padding="sideways")
    with pytest.raises(ValueError, match="a list of encodings"):
        ours.pad([])
    with pytest.raises(ValueError, match="str"):
        ours.pad("Hello world")
    with pytest.raises(ValueError, match=r"encoded_inputs\[1\] is a list"):
        ours.pad([{"input_ids": [101, 102]}, [101, 102]])
    with pytest.raises(ValueError, match="`input_ids`"):
        ours.pad(feats, padding=False, return_tensors="pt")


def test_numeric_arguments_are_checked_by_name(minilm_pair):
    ours, _ = minilm_pair
    np = pytest.importorskip("numpy")
    for kwargs, error, name in [
        ({"truncation": True, "max_length": -1}, ValueError, "max_length"),
        ({"truncation": True, "max_length": 4.0}, TypeError, "max_length"),
        ({"truncation": True, "max_length": "8"}, TypeError, "max_length"),
        ({"truncation": True, "max_length": 8, "stride": -1}, ValueError, "stride"),
        ({"padding": True, "pad_to_multiple_of": -2}, ValueError, "pad_to_multiple_of"),
        ({"padding": True, "pad_to_multiple_of": True}, TypeError, "pad_to_multiple_of"),
    ]:
        with pytest.raises(error, match=name):
            ours(["a b c d", "a"], **kwargs)
    # numpy integers are whole numbers
    assert ours("a b c d", truncation=True, max_length=np.int64(4))["input_ids"] == [101, 1037, 1038, 102]


def test_bert_special_token_methods(minilm_pair):
    ours, _ = minilm_pair
    a, b = [7592, 2088], [1037, 1038, 1039]
    assert ours.build_inputs_with_special_tokens(a) == [101, 7592, 2088, 102]
    assert ours.build_inputs_with_special_tokens(a, b) == [101, 7592, 2088, 102, 1037, 1038, 1039, 102]
    assert ours.get_special_tokens_mask(a) == [1, 0, 0, 1]
    assert ours.get_special_tokens_mask(a, b) == [1, 0, 0, 1, 0, 0, 0, 1]
    assert ours.get_special_tokens_mask([101, 7592, 102, 0], already_has_special_tokens=True) == [1, 0, 1, 1]
    with pytest.raises(ValueError, match="should not supply a second sequence"):
        ours.get_special_tokens_mask([101], [102], already_has_special_tokens=True)
    assert ours.create_token_type_ids_from_sequences(a) == [0, 0, 0, 0]
    assert ours.create_token_type_ids_from_sequences(a, b) == [0, 0, 0, 0, 1, 1, 1, 1]
    # they agree with what a call produces
    enc = ours("hello world", "a b c", return_special_tokens_mask=True)
    assert enc["input_ids"] == ours.build_inputs_with_special_tokens(a, b)
    assert enc["token_type_ids"] == ours.create_token_type_ids_from_sequences(a, b)
    assert enc["special_tokens_mask"] == ours.get_special_tokens_mask(a, b)


# transformers 4.57.1's BertTokenizerFast.prepare_for_model on the MiniLM vocabulary (5's fast tokenizers
# dropped the method): (ids, pair_ids, arguments) → the BatchEncoding's values
PREPARE_FOR_MODEL_CASES = [
    (
        "a",
        None,
        {},
        {
            "input_ids": [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        "b",
        {},
        {
            "input_ids": [
                101,
                1996,
                4248,
                2829,
                4419,
                14523,
                2058,
                1996,
                13971,
                3899,
                102,
                1037,
                2460,
                3940,
                102,
            ],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        None,
        {"max_length": 6},
        {
            "input_ids": [101, 1996, 4248, 2829, 4419, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        None,
        {"truncation": True, "max_length": 6, "stride": 2, "return_overflowing_tokens": True},
        {
            "overflowing_tokens": [2829, 4419, 14523, 2058, 1996, 13971, 3899],
            "num_truncated_tokens": 5,
            "input_ids": [101, 1996, 4248, 2829, 4419, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        "b",
        {"truncation": "only_first", "max_length": 9, "stride": 1, "return_overflowing_tokens": True},
        {
            "overflowing_tokens": [2829, 4419, 14523, 2058, 1996, 13971, 3899],
            "num_truncated_tokens": 6,
            "input_ids": [101, 1996, 4248, 2829, 102, 1037, 2460, 3940, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 1, 1, 1, 1],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        "b",
        {"truncation": "only_second", "max_length": 12, "stride": 1, "return_overflowing_tokens": True},
        {
            "overflowing_tokens": [],
            "num_truncated_tokens": 3,
            "input_ids": [
                101,
                1996,
                4248,
                2829,
                4419,
                14523,
                2058,
                1996,
                13971,
                3899,
                102,
                1037,
                2460,
                3940,
                102,
            ],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        "b",
        {"truncation": "only_second", "max_length": 6, "return_overflowing_tokens": True},
        {
            "overflowing_tokens": [],
            "num_truncated_tokens": 9,
            "input_ids": [
                101,
                1996,
                4248,
                2829,
                4419,
                14523,
                2058,
                1996,
                13971,
                3899,
                102,
                1037,
                2460,
                3940,
                102,
            ],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        "b",
        {"truncation": "longest_first", "max_length": 9},
        {
            "input_ids": [101, 1996, 4248, 2829, 102, 1037, 2460, 3940, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 1, 1, 1, 1],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        "b",
        {"truncation": "longest_first", "max_length": 13, "truncation_side": "left"},
        {
            "input_ids": [101, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 102, 1037, 2460, 3940, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "a",
        None,
        {
            "truncation": True,
            "max_length": 7,
            "truncation_side": "left",
            "return_overflowing_tokens": True,
            "stride": 1,
        },
        {
            "overflowing_tokens": [1996, 4248, 2829, 4419, 14523],
            "num_truncated_tokens": 4,
            "input_ids": [101, 14523, 2058, 1996, 13971, 3899, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "b",
        None,
        {"padding": "max_length", "max_length": 10, "return_length": True},
        {
            "input_ids": [101, 1037, 2460, 3940, 102, 0, 0, 0, 0, 0],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
            "length": 10,
        },
    ),
    (
        "b",
        "b",
        {"padding": True, "pad_to_multiple_of": 8, "padding_side": "left"},
        {
            "input_ids": [0, 0, 0, 0, 0, 0, 0, 101, 1037, 2460, 3940, 102, 1037, 2460, 3940, 102],
            "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
            "attention_mask": [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        },
    ),
    (
        "b",
        None,
        {"add_special_tokens": False, "return_attention_mask": False},
        {"input_ids": [1037, 2460, 3940], "token_type_ids": [0, 0, 0]},
    ),
    (
        "b",
        "b",
        {
            "add_special_tokens": False,
            "padding": "max_length",
            "max_length": 9,
            "return_token_type_ids": False,
        },
        {
            "input_ids": [1037, 2460, 3940, 1037, 2460, 3940, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1, 1, 0, 0, 0],
        },
    ),
    (
        "a",
        None,
        {
            "truncation": True,
            "max_length": 8,
            "padding": "max_length",
            "return_tensors": "pt",
            "prepend_batch_axis": True,
        },
        {
            "input_ids": [[101, 1996, 4248, 2829, 4419, 14523, 2058, 102]],
            "token_type_ids": [[0, 0, 0, 0, 0, 0, 0, 0]],
            "attention_mask": [[1, 1, 1, 1, 1, 1, 1, 1]],
        },
    ),
]


@pytest.mark.parametrize("case", range(len(PREPARE_FOR_MODEL_CASES)))
def test_prepare_for_model_as_transformers_4(minilm_pair, case):
    """transformers 4's ``prepare_for_model`` (a python path: ``truncate_sequences`` with its stride window,
    the four BERT methods, ``pad``): 4.57's values, and the call's ids where the call does the same."""
    ours, _ = minilm_pair
    first, second, kwargs, expected = PREPARE_FOR_MODEL_CASES[case]
    texts = {"a": "the quick brown fox jumps over the lazy dog", "b": "a short pair"}
    ids = {k: ours.convert_tokens_to_ids(ours.tokenize(v)) for k, v in texts.items()}
    kwargs = dict(kwargs)
    ours.truncation_side = kwargs.pop("truncation_side", "right")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = ours.prepare_for_model(ids[first], ids[second] if second else None, **kwargs)
            if not kwargs.get("return_overflowing_tokens") and ours.truncation_side == "right":
                call_kwargs = {k: v for k, v in kwargs.items() if k != "prepend_batch_axis"}
                call = ours(texts[first], texts[second] if second else None, **call_kwargs)
                assert _norm(_plain_ids(got["input_ids"])) == _norm(_plain_ids(call["input_ids"]))
    finally:
        ours.truncation_side = "right"
    assert isinstance(got, BatchEncoding)
    assert list(got.keys()) == list(expected)
    assert {k: v.tolist() if hasattr(v, "tolist") else v for k, v in got.items()} == expected
    if kwargs.get("return_tensors") == "pt":
        assert got["input_ids"].shape == (1, kwargs["max_length"])


def _plain_ids(x):
    return x.tolist() if hasattr(x, "tolist") else x


def test_prepare_for_model_errors_and_special_tokens_mask(minilm_pair):
    ours, _ = minilm_pair
    a, b = [5, 6, 7, 8], [9, 10]
    with pytest.raises(ValueError, match="add_special_tokens to False"):
        ours.prepare_for_model(a, add_special_tokens=False, return_token_type_ids=True)
    with pytest.raises(ValueError, match="overflowing tokens for pair of sequences with the `longest_first`"):
        ours.prepare_for_model(a, b, truncation=True, max_length=5, return_overflowing_tokens=True)
    # 4.57's fast tokenizers fail here (their get_special_tokens_mask needs already_has_special_tokens);
    # fastbert has the BERT page's get_special_tokens_mask, so the mask is the call's
    got = ours.prepare_for_model(a, b, return_special_tokens_mask=True)
    assert got["special_tokens_mask"] == [1, 0, 0, 0, 0, 1, 0, 0, 1]
    assert got["special_tokens_mask"] == ours.get_special_tokens_mask(a, b)
    assert ours.truncate_sequences(a, b, num_tokens_to_remove=0) == (a, b, [])
    assert ours.truncate_sequences(a, None, num_tokens_to_remove=2, stride=1) == ([5, 6], None, [6, 7, 8])
    assert ours.truncate_sequences(a, b, 3, "only_second") == (a, b, [])  # too short: left whole, logged


def test_save_vocabulary(minilm_pair, tmp_path):
    ours, _ = minilm_pair
    files = ours.save_vocabulary(str(tmp_path))
    assert isinstance(files, tuple) and files == (str(tmp_path / "vocab.txt"),)
    with open(os.path.join(MINILM, "vocab.txt"), encoding="utf-8") as f:
        assert (tmp_path / "vocab.txt").read_text(encoding="utf-8") == f.read()
    assert ours.save_vocabulary(str(tmp_path), filename_prefix="pre") == (str(tmp_path / "pre-vocab.txt"),)


# ---------------------------------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["minilm", "vocab_only", "cased"])
def test_save_pretrained_round_trip_with_transformers(source, tmp_path, vocab_only_dir):
    kwargs = {"do_lower_case": False} if source == "cased" else {}
    folder = MINILM if source != "vocab_only" else vocab_only_dir
    ours = BertTokenizer.from_pretrained(folder, **kwargs)
    files = ours.save_pretrained(tmp_path / "saved")
    names = {os.path.basename(f) for f in files}
    assert {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"} <= names
    loaded = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    back = BertTokenizer.from_pretrained(tmp_path / "saved")
    for text in TEXTS:
        assert loaded(text)["input_ids"] == ours(text)["input_ids"], text
        assert back(text)["input_ids"] == ours(text)["input_ids"], text
    assert loaded.model_max_length == ours.model_max_length == back.model_max_length
    assert loaded.all_special_ids == ours.all_special_ids or sorted(loaded.all_special_ids) == sorted(
        ours.all_special_ids
    )
    # the saved tokenizer.json carries no padding/truncation state from earlier calls
    ours(["a", "b c"], padding=True, truncation=True, max_length=8)
    ours.save_pretrained(tmp_path / "again")
    with open(tmp_path / "again" / "tokenizer.json", encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["padding"] is None and saved["truncation"] is None
    # vocab.txt alone of the saved folder gives the same ids
    only = tmp_path / "only_vocab"
    only.mkdir()
    shutil.copy(tmp_path / "saved" / "vocab.txt", only / "vocab.txt")
    shutil.copy(tmp_path / "saved" / "tokenizer_config.json", only / "tokenizer_config.json")
    assert BertTokenizer.from_pretrained(only)(TEXTS[3])["input_ids"] == ours(TEXTS[3])["input_ids"]


@pytest.mark.parametrize(
    "legacy_format, files",
    [
        # transformers 4.57's fast tokenizer writes these files (5.25 accepts legacy_format and writes
        # tokenizer_config.json + tokenizer.json whatever its value)
        (None, ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]),
        (True, ["special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]),
        (False, ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]),
    ],
)
@pytest.mark.parametrize("positional", [False, True])
def test_save_pretrained_legacy_format(minilm_pair, tmp_path, legacy_format, files, positional):
    """``save_pretrained(save_directory, legacy_format=None, filename_prefix=None)``, transformers' order."""
    ours, theirs = minilm_pair
    if positional:
        written = ours.save_pretrained(tmp_path, legacy_format)
    else:
        written = ours.save_pretrained(tmp_path, legacy_format=legacy_format)
    assert sorted(os.listdir(tmp_path)) == files
    assert sorted(os.path.basename(f) for f in written) == files
    theirs.save_pretrained(tmp_path / "theirs", legacy_format=legacy_format)  # accepted by transformers too
    for loader in (transformers.AutoTokenizer, fastbert.AutoTokenizer):
        again = loader.from_pretrained(tmp_path)
        for text in TEXTS[:4]:
            assert again(text)["input_ids"] == ours(text)["input_ids"], (loader, text)
    prefixed = ours.save_pretrained(tmp_path / "p", legacy_format, "pre")
    assert sorted(os.path.basename(f) for f in prefixed) == [f"pre-{f}" for f in files]


def test_save_pretrained_legacy_format_refused(minilm_pair, tmp_path):
    ours, _ = minilm_pair
    for bad in ("pre", 1):
        with pytest.raises(ValueError, match="legacy_format should be None, True or False"):
            ours.save_pretrained(tmp_path, bad)
    assert not os.listdir(tmp_path)  # refused before anything is written


_LEGACY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "city", "of", "river", "##s", "a"]
_LEGACY_SPECIALS = dict(
    unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
    additional_special_tokens=["<special1>"],
)  # fmt: skip


def _legacy_folder(path, config: dict, added_tokens: dict | None = None):
    """A BERT tokenizer folder as transformers wrote them before tokenizer.json: vocab.txt, the configs, and
    (older still) added_tokens.json."""
    os.makedirs(path)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(_LEGACY_VOCAB) + "\n")
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer", **config}, f)
    with open(os.path.join(path, "special_tokens_map.json"), "w") as f:
        json.dump(_LEGACY_SPECIALS, f)
    if added_tokens is not None:
        with open(os.path.join(path, "added_tokens.json"), "w") as f:
            json.dump(added_tokens, f)
    return str(path)


def _flags(content, special):
    return dict(
        content=content,
        lstrip=False,
        normalized=not special,
        rstrip=False,
        single_word=False,
        special=special,
    )


@pytest.mark.parametrize("form", ["added_tokens.json", "added_tokens_decoder"])
def test_legacy_folder_added_tokens_keep_their_ids(tmp_path, form):
    """Added tokens of a folder without tokenizer.json take the ids its files give them: from added_tokens.json
    (which was ignored: 'newword' became [UNK]), and from tokenizer_config.json's added_tokens_decoder when an
    additional special token comes after a normal one (the specials were added first, swapping their ids).
    Expected ids: transformers 4.57.1 and 5.25 on the same folders."""
    if form == "added_tokens.json":
        folder = _legacy_folder(tmp_path / "f", {}, {"newword": 11, "<special1>": 12})
    else:
        decoder = {str(i): _flags(t, True) for i, t in enumerate(_LEGACY_VOCAB[:5])}
        decoder.update({"11": _flags("newword", False), "12": _flags("<special1>", True)})
        folder = _legacy_folder(tmp_path / "f", {"added_tokens_decoder": decoder})
    for tok in (BertTokenizer.from_pretrained(folder), fastbert.AutoTokenizer.from_pretrained(folder)):
        assert len(tok) == 13
        assert tok("the city newword of rivers <special1> a")["input_ids"] == [
            2,
            5,
            6,
            11,
            7,
            8,
            9,
            12,
            10,
            3,
        ]
        assert (
            tok.decode(tok("the newword <special1>")["input_ids"], skip_special_tokens=True) == "the newword"
        )
        assert tok.convert_tokens_to_ids(["newword", "<special1>"]) == [11, 12]
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    assert theirs("the city newword of rivers <special1> a")["input_ids"] == [2, 5, 6, 11, 7, 8, 9, 12, 10, 3]


def test_added_tokens_round_trip_through_the_slow_files(tmp_path):
    """save_pretrained(legacy_format=True) writes added_tokens.json beside vocab.txt for tokens past the base
    vocabulary (as 4.57): the folder, without tokenizer.json, loads back to the same ids here and in
    transformers."""
    tok = BertTokenizer.from_pretrained(_legacy_folder(tmp_path / "f", {}))
    tok.add_tokens(["newword"])
    tok.add_special_tokens({"additional_special_tokens": ["<special1>", "<special2>"]})
    text = "the <special2> city newword <special1>"
    want = tok(text)["input_ids"]
    assert want == [2, 5, 13, 6, 12, 11, 3]  # <special1> came with the folder (11), then newword, <special2>
    written = tok.save_pretrained(tmp_path / "saved", legacy_format=True)
    assert sorted(os.path.basename(f) for f in written) == sorted(os.listdir(tmp_path / "saved"))
    with open(tmp_path / "saved" / "added_tokens.json") as f:
        assert json.load(f) == {"<special1>": 11, "newword": 12, "<special2>": 13}
    assert BertTokenizer.from_pretrained(tmp_path / "saved")(text)["input_ids"] == want
    (tmp_path / "saved" / "tokenizer_config.json").unlink()  # added_tokens.json alone carries them
    with open(tmp_path / "saved" / "tokenizer_config.json", "w") as f:
        json.dump({"tokenizer_class": "BertTokenizer"}, f)
    assert BertTokenizer.from_pretrained(tmp_path / "saved")(text)["input_ids"] == want
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "saved")(text)["input_ids"] == want


def test_tokenizer_config_is_read(tmp_path, small_dir):
    shutil.copy(os.path.join(small_dir, "vocab.txt"), tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": False, "model_max_length": 7, "tokenizer_class": "BertTokenizer"})
    )
    tok = BertTokenizer.from_pretrained(tmp_path)
    assert tok.do_lower_case is False and tok.model_max_length == 7
    assert tok.tokenize("Hello The") == ["Hello", "The"]
    # kwargs override tokenizer_config
    assert BertTokenizer.from_pretrained(tmp_path, do_lower_case=True).tokenize("Hello The") == [
        "hello",
        "the",
    ]


def test_max_len_of_old_folders_is_model_max_length(tmp_path, small_dir):
    """``max_len``, the older name of ``model_max_length`` in old folders' tokenizer_config.json, sets it
    when ``model_max_length`` is unset (transformers 4 and 5); fastbert ignored it, so truncation=True
    truncated nothing."""
    shutil.copy(os.path.join(small_dir, "vocab.txt"), tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"max_len": 6}))
    ours, theirs = (
        BertTokenizer.from_pretrained(tmp_path),
        transformers.BertTokenizerFast.from_pretrained(tmp_path),
    )
    assert ours.model_max_length == theirs.model_max_length == 6
    text = "the cat sat on the mat the dog"
    for kwargs in ({"truncation": True}, {"padding": "max_length"}):
        assert ours(text, **kwargs)["input_ids"] == theirs(text, **kwargs)["input_ids"]
    assert len(ours(text, truncation=True)["input_ids"]) == 6
    # model_max_length, given or in the file, wins
    assert BertTokenizer.from_pretrained(tmp_path, model_max_length=9).model_max_length == 9
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"max_len": 6, "model_max_length": 7}))
    assert BertTokenizer.from_pretrained(tmp_path).model_max_length == 7
    ours.save_pretrained(tmp_path / "saved")  # saved as model_max_length
    assert BertTokenizer.from_pretrained(tmp_path / "saved").model_max_length == 6
    with pytest.raises(ValueError, match="max_len should be a whole number"):
        BertTokenizer.from_pretrained(small_dir, max_len=0)


def test_model_input_names_is_read_as_transformers(tmp_path, small_dir):
    """``model_input_names`` (transformers' documented constructor argument, and a tokenizer_config.json key)
    decides which inputs a call returns unasked; fastbert ignored it and always returned token_type_ids."""
    shutil.copy(os.path.join(small_dir, "vocab.txt"), tmp_path / "vocab.txt")
    names = ["input_ids", "attention_mask"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_input_names": names}))
    theirs = transformers.BertTokenizerFast.from_pretrained(tmp_path)
    loaded = {
        "config": BertTokenizer.from_pretrained(tmp_path),
        "argument": BertTokenizer.from_pretrained(small_dir, model_input_names=names),
        "constructor": BertTokenizer(os.path.join(small_dir, "vocab.txt"), model_input_names=names),
    }
    for how, ours in loaded.items():
        assert ours.model_input_names == theirs.model_input_names == names, how
        for kwargs in ({}, {"return_token_type_ids": True}, {"padding": "max_length", "max_length": 8}):
            assert dict(ours("the cat", "sat", **kwargs)) == dict(theirs("the cat", "sat", **kwargs)), how
    ours.save_pretrained(tmp_path / "saved")
    assert BertTokenizer.from_pretrained(tmp_path / "saved").model_input_names == names
    with pytest.raises(ValueError, match="model_input_names should be a list of input names"):
        BertTokenizer.from_pretrained(small_dir, model_input_names="input_ids")


def test_hub_options_travel_as_one_value(tmp_path, monkeypatch):
    """from_pretrained passes its hub keyword arguments to every file lookup as one HubOptions; None values
    and transformers-only arguments never reach the tokenizer's saved settings."""
    from fastbert import hub

    shutil.copytree(MINILM, tmp_path / "tok")
    seen = []
    resolve = hub.resolve_file

    def recording(path, name, hub=None, **kwargs):
        seen.append((name, hub, kwargs))
        return resolve(path, name, hub=hub, **kwargs)

    monkeypatch.setattr(hub, "resolve_file", recording)
    tok = BertTokenizer.from_pretrained(
        tmp_path, subfolder="tok", revision="main", token=None, cache_dir=None, use_auth_token="legacy"
    )
    assert tok("Hello")["input_ids"] == [101, 7592, 102]
    expected = hub.HubOptions(revision="main", subfolder="tok", token="legacy")
    assert {name for name, _, _ in seen} == {
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    assert all(options == expected and kwargs == {"required": False} for _, options, kwargs in seen)
    for key in (*hub.HUB_FIELDS, "use_auth_token"):
        assert key not in tok.init_kwargs


def test_pickle_tokenizer(minilm_pair):
    ours, _ = minilm_pair
    again = pickle.loads(pickle.dumps(ours))
    assert again(TEXTS[0])["input_ids"] == ours(TEXTS[0])["input_ids"]


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------


def test_missing_files_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(OSError, match=str(tmp_path).replace("\\", "\\\\")):
        BertTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("bad", [123, 4.5, {"a": 1}, [1, 2], [[1, 2]], object()])
def test_bad_input_types(minilm_pair, bad):
    ours, _ = minilm_pair
    with pytest.raises((ValueError, TypeError)):
        ours(bad)


def test_bad_arguments(minilm_pair):
    ours, _ = minilm_pair
    with pytest.raises(ValueError, match="specify either `text` or `text_target`"):
        ours()
    with pytest.raises(ValueError, match="padding='sideways' is not valid"):
        ours("a", padding="sideways")
    with pytest.raises(ValueError, match="truncation='middle' is not valid"):
        ours("a", truncation="middle")
    with pytest.raises(ValueError, match="does not match batch length"):
        ours(["a", "b"], ["c"])
    with pytest.raises(TypeError):
        ours(["a", "b"], "c")
    with pytest.raises(ValueError, match="multiple"):
        ours("a", padding=True, truncation=True, max_length=10, pad_to_multiple_of=8)
    with pytest.raises(TypeError):
        ours.tokenize(["a"])
    with pytest.raises(TypeError):
        ours.tokenize(["a", 1], is_split_into_words=True)
    with pytest.raises(ValueError, match="Padding side should be selected"):
        ours("a", padding_side="middle", padding=True)


def test_tokenize_pre_split_words(minilm_pair):
    """transformers 4's fast ``tokenize`` is ``encode_plus(text, pair, **kwargs).tokens()`` (5 keeps that): with
    ``is_split_into_words=True`` it takes a list of words (and of pair words); fastbert refused any list with a
    TypeError. A list without ``is_split_into_words`` is still refused (4 reads it as a pair, 5 as a batch)."""
    ours, theirs = minilm_pair
    assert ours.tokenize(["Héllo", "world!"], is_split_into_words=True) == ["hello", "world", "!"]
    assert ours.tokenize(("un", "affable"), ["x"], is_split_into_words=True) == [
        "un",
        "af",
        "##fa",
        "##ble",
        "x",
    ]
    assert theirs.tokenize(("un", "affable"), ["x"], is_split_into_words=True) == [
        "un",
        "af",
        "##fa",
        "##ble",
        "x",
    ]
    assert ours.tokenize(["a"], is_split_into_words=True, add_special_tokens=True) == ["[CLS]", "a", "[SEP]"]
    assert ours.tokenize([], is_split_into_words=True) == []
    with pytest.raises(TypeError, match="is_split_into_words=True"):
        ours.tokenize(["hello", "world"])


# ---------------------------------------------------------------------------------------------------------
# random text
# ---------------------------------------------------------------------------------------------------------


def test_random_text_property(minilm_pair):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    ours, theirs = minilm_pair

    @hypothesis.settings(max_examples=60, deadline=None, derandomize=True)
    @hypothesis.given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=40)))
    def check(text, text_pair):
        a = ours(text, text_pair, return_offsets_mapping=True)
        b = theirs(text, text_pair, return_offsets_mapping=True)
        _same_encoding(a, b)

    check()


def test_transformers_data_collators(minilm_pair):
    """transformers' collators take fastbert's tokenizer (pad, special tokens mask, mask token, len)."""
    ours, _ = minilm_pair
    feats = [dict(ours(t, return_special_tokens_mask=True)) for t in ["hello world", "a b c d e f"]]
    out = transformers.DataCollatorWithPadding(tokenizer=ours)(feats)
    assert out["input_ids"].shape == (2, 8) and out["attention_mask"][0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    mlm = transformers.DataCollatorForLanguageModeling(tokenizer=ours, mlm_probability=0.5)
    out = mlm(feats)
    assert out["labels"].shape == (2, 8)
    assert (out["labels"][out["attention_mask"] == 0] == -100).all()
    tc = transformers.DataCollatorForTokenClassification(tokenizer=ours)
    out = tc([{"input_ids": f["input_ids"], "labels": [0] * len(f["input_ids"])} for f in feats])
    assert out["labels"][0].tolist() == [0, 0, 0, 0, -100, -100, -100, -100]


def test_loads_a_folder_saved_by_transformers(tmp_path):
    theirs = transformers.BertTokenizerFast.from_pretrained(MINILM)
    theirs.save_pretrained(tmp_path)
    ours = BertTokenizer.from_pretrained(tmp_path)
    assert ours.model_max_length == 512
    for text in TEXTS:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"]


def test_tokenizer_json_normalizer_without_config_takes_transformers_defaults(tmp_path):
    """With no do_lower_case anywhere, a cased tokenizer.json is lower-cased, as transformers'
    BertTokenizerFast (4.57 and 5) rebuilds its normalizer with the default do_lower_case=True; fastbert
    kept the file's settings, so the ids differed from what a model trained with transformers saw."""
    BertTokenizer.from_pretrained(MINILM, do_lower_case=False, strip_accents=False).save_pretrained(tmp_path)
    os.remove(tmp_path / "tokenizer_config.json")
    os.remove(tmp_path / "vocab.txt")
    tok = BertTokenizer.from_pretrained(tmp_path)
    assert tok.do_lower_case is True and tok.strip_accents is None
    assert tok.tokenize("Héllo") == ["hello"]
    transformers = pytest.importorskip("transformers")
    theirs = transformers.BertTokenizerFast.from_pretrained(tmp_path)
    text = "Héllo WORLD, Ünïcode"
    assert tok(text)["input_ids"] == theirs(text)["input_ids"]
    assert BertTokenizer.from_pretrained(tmp_path, do_lower_case=False).tokenize("Hello") == ["[UNK]"]


def test_empty_batch(minilm_pair):
    ours, _ = minilm_pair
    assert ours([])["input_ids"] == []
    assert ours([], return_tensors="pt")["input_ids"].dtype == torch.int64
    assert ours("", add_special_tokens=False, return_tensors="pt")["input_ids"].shape == (1, 0)


def test_transformers_4_helpers_and_clear_errors(minilm_pair):
    """transformers 4's names its data collators call (DataCollatorForWholeWordMask reads
    _convert_id_to_token), the extended special-token views, and bad tokens / ids refused by name."""
    ours, theirs = minilm_pair
    assert ours._convert_id_to_token(7592) == theirs._convert_id_to_token(7592) == "hello"
    assert ours._convert_token_to_id_with_added_voc("hello") == 7592
    assert ours.added_tokens_encoder["[CLS]"] == 101
    assert [str(t) for t in ours.all_special_tokens_extended] == ours.all_special_tokens
    assert str(ours.special_tokens_map_extended["cls_token"]) == "[CLS]"
    with pytest.raises(ValueError, match="token id -100: ids are not negative"):
        ours.decode([101, -100, 102])
    with pytest.raises(ValueError, match="Token 5 is not a string"):
        ours.add_tokens([5])
    with pytest.raises(ValueError, match="pad_token must be a string or an AddedToken, got int 5"):
        ours.add_special_tokens({"pad_token": 5})
    assert ours.add_tokens(None) == 0 and ours.add_tokens([]) == 0


def test_never_split_matches_whole_words_only(tmp_path):
    """A never_split word was also matched inside other words ("renew" -> "re" + "new"), unlike transformers'
    slow and fast tokenizers, and the saved tokenizer.json made transformers split that way too."""
    tok = BertTokenizer.from_pretrained(MINILM, never_split=["new", "hello"])
    assert tok.tokenize("renew the hello-new") == ["renew", "the", "hello", "-", "new"]
    assert tok.tokenize("hellonew") == BertTokenizer.from_pretrained(MINILM).tokenize("hellonew")
    tok.save_pretrained(tmp_path)
    transformers = pytest.importorskip("transformers")
    assert transformers.AutoTokenizer.from_pretrained(tmp_path).tokenize("renew") == ["renew"]


def test_do_basic_tokenize_false_as_transformers_4(tmp_path):
    """transformers 4's BertTokenizer(do_basic_tokenize=False) runs WordPiece on whitespace-split text as is
    (no lower-casing, no punctuation split); fastbert stored the flag and ignored it. Ids from transformers
    4.57.1's slow BertTokenizer on the MiniLM vocabulary."""
    tok = BertTokenizer.from_pretrained(MINILM, do_basic_tokenize=False)
    assert tok("hello, world!")["input_ids"] == [101, 7592, 29623, 2088, 29612, 102]
    assert tok("The Quick fox")["input_ids"] == [101, 100, 100, 4419, 102]
    tok.save_pretrained(tmp_path)
    assert BertTokenizer.from_pretrained(tmp_path)("hello, world!")["input_ids"] == [
        101,
        7592,
        29623,
        2088,
        29612,
        102,
    ]


def test_never_split_is_unused_without_the_basic_tokenizer():
    """transformers 4's BertTokenizer(do_basic_tokenize=False) runs WordPiece alone: never_split (a setting of its
    basic tokenizer) changes nothing there; fastbert still matched the words whole, splitting "new," into "new"
    and "," (WordPiece gives "new", "##,")."""
    tok = BertTokenizer.from_pretrained(MINILM, do_basic_tokenize=False, never_split=["new", "[unused1]"])
    plain = BertTokenizer.from_pretrained(MINILM, do_basic_tokenize=False)
    for text in ["new, york", "renew new.", "x [unused1], y", "([unused1])"]:
        assert tok.tokenize(text) == plain.tokenize(text), text
    assert tok.tokenize("new, york") == ["new", "##,", "york"]
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    slow = legacy.BertTokenizerLegacy(
        os.path.join(MINILM, "vocab.txt"), do_basic_tokenize=False, never_split=["new", "[unused1]"]
    )
    for text in ["new, york", "x [unused1], y", "([unused1])"]:
        assert tok.tokenize(text) == slow.tokenize(text), text


def test_save_vocabulary_to_a_file_path(tmp_path):
    """transformers 4's BertTokenizer.save_vocabulary takes a folder or a file path."""
    tok = BertTokenizer.from_pretrained(MINILM)
    (path,) = tok.save_vocabulary(str(tmp_path / "my-vocab.txt"))
    assert path == str(tmp_path / "my-vocab.txt")
    (folder_file,) = tok.save_vocabulary(str(tmp_path))
    assert open(path).read() == open(folder_file).read()
    assert BertTokenizer(path).tokenize("hello world") == ["hello", "world"]
    with pytest.raises(OSError, match="should be a directory"):
        tok.save_vocabulary(str(tmp_path / "missing" / "vocab.txt"))


def test_save_vocabulary_warns_of_ids_it_cannot_keep_into_a_folder_too(tmp_path, caplog):
    """A vocab.txt with a repeated line has an id no token holds; the saved file's line numbers are then not the
    ids. transformers 4's BertTokenizer warns whether it saves into a folder or to a file path; the folder save
    (the one save_pretrained makes) said nothing."""
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nx\nhello\nx\ny\n", encoding="utf-8")
    tok = BertTokenizer(str(tmp_path / "vocab.txt"))
    for target in (tmp_path / "folder", tmp_path / "file.txt"):
        os.makedirs(tmp_path / "folder", exist_ok=True)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="fastbert.tokenization"):
            (path,) = tok.save_vocabulary(str(target))
        assert "vocabulary indices are not consecutive" in caplog.text and path in caplog.text
        assert open(path, encoding="utf-8").read() == "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nx\ny\n"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fastbert.tokenization"):
        BertTokenizer.from_pretrained(MINILM).save_vocabulary(str(tmp_path / "folder"))
    assert "not consecutive" not in caplog.text


@pytest.mark.parametrize("saved_class", ["PreTrainedTokenizerFast", "TokenizersBackend"])
def test_generic_fast_tokenizer_folder_keeps_its_normalizer(tmp_path, saved_class):
    """A WordPiece tokenizer.json saved by transformers' generic fast tokenizer (tokenizer_class
    PreTrainedTokenizerFast, 5's TokenizersBackend) runs its own normalizer in transformers' AutoTokenizer,
    whatever tokenizer_config.json's do_lower_case says; fastbert's AutoTokenizer rebuilt it with BERT's defaults,
    so a cased file was lower-cased (other ids than the model was trained on)."""
    BertTokenizer.from_pretrained(MINILM, do_lower_case=False, strip_accents=False).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["tokenizer_class"] = saved_class
    config["do_lower_case"] = True  # the generic tokenizer does not read it
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ours = fastbert.AutoTokenizer.from_pretrained(tmp_path)
    assert ours.do_lower_case is False and ours.strip_accents is False
    for text in ["Héllo WORLD, Ünïcode", *TEXTS[:6]]:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"]
    assert ours.tokenize("Hello") != ["hello"]
    # an argument still wins, and a BertTokenizer folder is still rebuilt as transformers' BertTokenizerFast does
    assert fastbert.AutoTokenizer.from_pretrained(tmp_path, do_lower_case=True).tokenize("Hello") == ["hello"]
    config["tokenizer_class"] = "BertTokenizerFast"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert fastbert.AutoTokenizer.from_pretrained(tmp_path).tokenize("Hello") == ["hello"]


@pytest.mark.parametrize("where", ["special_tokens_map.json", "tokenizer_config.json", "argument"])
def test_special_token_flags_of_the_files_are_kept(tmp_path, where):
    """A special token described with flags ([MASK] with lstrip / rstrip / single_word, in special_tokens_map.json
    or tokenizer_config.json as older transformers saved it, or given as an AddedToken) is matched with them, as
    transformers matches it; fastbert kept only its content (other offsets, and 'a[MASK]b' matched)."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "a", "b", "[", "]", "mask"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    mask = {"content": "[MASK]", "lstrip": True, "rstrip": True, "single_word": True, "normalized": False}
    config = {"tokenizer_class": "BertTokenizer"}
    if where == "tokenizer_config.json":
        config["mask_token"] = {"__type": "AddedToken", **mask}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    if where == "special_tokens_map.json":
        (tmp_path / "special_tokens_map.json").write_text(json.dumps({"mask_token": mask}), encoding="utf-8")
    kwargs = {}
    if where == "argument":
        kwargs["mask_token"] = transformers.AddedToken(**mask)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path, **kwargs)
    if where == "argument":
        from tokenizers import AddedToken

        kwargs["mask_token"] = AddedToken(**mask)
    ours = fastbert.AutoTokenizer.from_pretrained(tmp_path, **kwargs)
    text = "hello [MASK] world a[MASK]b [MASK]"
    assert ours.mask_token == "[MASK]"
    mine, ref = ours(text, return_offsets_mapping=True), theirs(text, return_offsets_mapping=True)
    assert mine["input_ids"] == ref["input_ids"]
    assert mine["offset_mapping"] == ref["offset_mapping"]
    assert mine["offset_mapping"][2] == (5, 13)  # the spaces around [MASK] are its own


def test_max_length_as_integer_tensor_or_numpy_integer(minilm_pair):
    """transformers hands ``max_length`` (and ``stride``, ``pad_to_multiple_of``) to ``tokenizers``, which takes
    any integer with ``__index__``: a 0-d integer tensor or a numpy integer works as the int; a float tensor, a
    float or a string is a TypeError naming the argument."""
    np = pytest.importorskip("numpy")
    ours, theirs = minilm_pair
    texts = ["hello world how are you doing today", "a"]
    for max_length in (torch.tensor(8), np.int64(8), torch.tensor([8])):
        kwargs = dict(max_length=max_length, truncation=True, padding="max_length")
        assert ours(texts, **kwargs)["input_ids"] == theirs(texts, **kwargs)["input_ids"]
        enc = ours(texts, return_tensors="pt", **kwargs)
        assert enc["input_ids"].shape == (2, 8)
        padded = ours.pad({"input_ids": [[1, 2], [3]]}, padding="max_length", max_length=max_length)
        assert (
            padded["input_ids"]
            == theirs.pad({"input_ids": [[1, 2], [3]]}, padding="max_length", max_length=8)["input_ids"]
        )
    kwargs = dict(
        truncation=True, padding=True, pad_to_multiple_of=torch.tensor(4), max_length=torch.tensor(8)
    )
    assert ours(texts, **kwargs)["input_ids"] == theirs(texts, **kwargs)["input_ids"]
    windows = dict(
        max_length=torch.tensor(6), truncation=True, stride=torch.tensor(2), return_overflowing_tokens=True
    )
    assert ours(texts[0], **windows)["input_ids"] == theirs(texts[0], **windows)["input_ids"]
    for bad in (torch.tensor(8.5), 8.5, "8", torch.tensor([8, 9])):
        with pytest.raises(TypeError, match="max_length"):
            ours(texts, max_length=bad, truncation=True)
    with pytest.raises(ValueError, match="max_length should be at least 0"):
        ours(texts, max_length=torch.tensor(-1), truncation=True)


@pytest.mark.parametrize("lower", [True, False])
def test_never_split_beside_punctuation_as_the_slow_tokenizer(small_dir, tmp_path, lower):
    """transformers 4's slow BasicTokenizer keeps a never_split entry whole only when a whitespace-separated
    word is that entry (as written, or once lower-cased); "([XX])." or "(a.b)." are split on punctuation.
    fastbert matched the entries beside punctuation too ("(", "[XX]", ")", "."). Compared with transformers 5's
    BertTokenizerLegacy (the slow tokenizer), also after a save and reload."""
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    vocab = os.path.join(tmp_path, "vocab.txt")
    extra = [
        "[XX]",
        "a.b",
        "foo.bar",
        "a",
        "b",
        "x",
        "xx",
        "(",
        ")",
        ".",
        "[",
        "]",
        "!",
        "中",
        "Cat",
        "a b",
        "中x",
    ]
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(SMALL_VOCAB + extra) + "\n")
    never_split = ["[XX]", "a.b", "foo.bar", "a b", "中x"]
    texts = [
        "([XX]).",
        "[XX]",
        "x [XX]\tx",
        "[xx] [Xx]",
        "(a.b). a.b a.b. A.B",
        "foo.bar! (foo.bar) xfoo.bar foo.bar",
        "中[XX]中 中x",
        "[MASK][XX] [XX][SEP]",
        "the cat sat on the mat.",
        "Cat",
        "a b 中x",
    ]
    ours = BertTokenizer(vocab, never_split=never_split, do_lower_case=lower)
    slow = legacy.BertTokenizerLegacy(vocab, never_split=never_split, do_lower_case=lower)
    plain = BertTokenizer(vocab, do_lower_case=lower)
    for text in texts:
        assert ours.tokenize(text) == slow.tokenize(text), text
        assert ours(text)["input_ids"] == slow(text)["input_ids"], text
    assert ours.tokenize("([XX]).") == ["(", "[", "xx" if lower else "[UNK]", "]", ")", "."]
    enc = ours("x [XX] a.b", return_offsets_mapping=True)
    assert enc.tokens() == ["[CLS]", "x", "[XX]", "a.b", "[SEP]"]
    assert enc["offset_mapping"] == [(0, 0), (0, 1), (2, 6), (7, 10), (0, 0)]
    # where no entry is a whole word, the tokens are those without never_split
    for text in TEXTS:
        assert ours.tokenize(text) == plain.tokenize(text), text
    if lower:  # the pre-tokenizer splits every character as BertPreTokenizer does
        every = " ".join(f"q{chr(c)}q" for c in range(0x110000) if not 0xD800 <= c < 0xE000)
        bert = tokenizers.pre_tokenizers.BertPreTokenizer()
        assert ours._tokenizer.pre_tokenizer.pre_tokenize_str(every) == bert.pre_tokenize_str(every)
    # saved and loaded back: the same tokens (the pipeline is rebuilt, not wrapped twice)
    ours.save_pretrained(tmp_path / "saved")
    again = BertTokenizer.from_pretrained(tmp_path / "saved")
    for text in texts:
        assert again.tokenize(text) == slow.tokenize(text), text
    assert again._tokenizer.to_str() == ours._tokenizer.to_str()
    assert BertTokenizer.from_pretrained(tmp_path / "saved", never_split=None).tokenize("a.b") == [
        "a",
        ".",
        "b",
    ]


def test_never_split_entries_not_in_the_vocabulary_are_unk(tmp_path):
    """transformers 4's slow BertTokenizer keeps a never_split entry whole wherever it is a whole word (as written,
    or once lower-cased) and looks the word up: an entry not in the vocabulary is [UNK]. fastbert split such
    entries as if never_split did not name them ("hello!" gave hello + !), with a warning. Expected ids from
    transformers 4's slow tokenizer (transformers 5's BertTokenizerLegacy), written out."""
    vocab = tmp_path / "vocab.txt"
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] hello ! x foo . bar ( ) 中 zurich".split()
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    never_split = ["hello!", "Foo.Bar", "zürich!"]
    expected = {
        # a whole word, as written or once lower-cased: [UNK] (1); beside punctuation: split as usual
        "x hello! HELLO! (hello!)": [2, 7, 1, 1, 11, 5, 6, 12, 3],
        # "Foo.Bar" as written only: lower-cased, no word is the entry
        "Foo.Bar foo.bar FOO.BAR": [2, 1, 8, 9, 10, 8, 9, 10, 3],
        # "zürich!" as written only: "Zürich!" is "zurich!" once lower-cased, which is no entry
        "zürich! Zürich!": [2, 1, 14, 6, 3],
        "中hello!中": [2, 13, 1, 13, 3],
    }
    ours = BertTokenizer(str(vocab), never_split=never_split)
    for text, ids in expected.items():
        assert ours(text)["input_ids"] == ids, text
    enc = ours("x hello! x", return_offsets_mapping=True)
    assert enc.tokens() == ["[CLS]", "x", "[UNK]", "x", "[SEP]"]
    assert enc["offset_mapping"] == [(0, 0), (0, 1), (2, 8), (9, 10), (0, 0)]
    assert ours.decode(ours("x hello! x")["input_ids"]) == "[CLS] x [UNK] x [SEP]"
    ours.save_pretrained(tmp_path / "saved")
    again = BertTokenizer.from_pretrained(tmp_path / "saved")
    for text, ids in expected.items():
        assert again(text)["input_ids"] == ids, text
    assert BertTokenizer.from_pretrained(tmp_path / "saved", never_split=None).tokenize("hello!") == [
        "hello",
        "!",
    ]
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    slow = legacy.BertTokenizerLegacy(str(vocab), never_split=never_split)
    for text, ids in expected.items():
        assert slow(text)["input_ids"] == ids, text


def test_never_split_found_where_the_slow_tokenizer_finds_it(tmp_path):
    """transformers 4's slow BasicTokenizer looks for never_split entries in the cleaned, composed text (control
    characters such as a zero-width space dropped, NFC), and its _tokenize keeps whole every piece that is an
    entry, also a piece of a word split on punctuation: an entry not in the vocabulary is [UNK] there. fastbert
    looked in the raw text ("[XX]" beside a zero-width space was split), matched an entry written decomposed,
    which the slow tokenizer never finds ("e" + U+0301 became [UNK]), and split unknown entries beside
    punctuation ("(qzy)" gave q ##z ##y). Expected ids from the slow tokenizer (transformers 5's
    BertTokenizerLegacy), written out."""
    vocab = tmp_path / "vocab.txt"
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] [XX] x ( ) [ ] xx ' s ! e hello q ##z ##y H ##ello".split()
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    never_split = ["[XX]", "qzy", "Hello", "hello!", "e\u0301"]
    expected = {
        (True, "x \u200b[XX]\ufeff x"): [2, 6, 5, 6, 3],
        (True, "(qzy) qzy's"): [2, 7, 1, 8, 1, 12, 13, 3],
        (True, "e\u0301 x"): [2, 15, 6, 3],
        # "Hello!" is split on punctuation ("hello!" is an entry, not "Hello!"): its piece "Hello" is an entry
        (False, "Hello! hello!"): [2, 1, 14, 1, 3],
    }
    ours = {
        lower: BertTokenizer(str(vocab), never_split=never_split, do_lower_case=lower)
        for lower in (True, False)
    }
    for (lower, text), ids in expected.items():
        assert ours[lower](text)["input_ids"] == ids, text
    enc = ours[True]("x \u200b[XX]\ufeff x", return_offsets_mapping=True)
    assert enc["offset_mapping"] == [(0, 0), (0, 1), (3, 7), (9, 10), (0, 0)]
    ours[True].save_pretrained(tmp_path / "saved")
    again = BertTokenizer.from_pretrained(tmp_path / "saved")
    assert again._tokenizer.to_str() == ours[True]._tokenizer.to_str()
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    for (lower, text), ids in expected.items():
        slow = legacy.BertTokenizerLegacy(str(vocab), never_split=never_split, do_lower_case=lower)
        assert slow(text)["input_ids"] == ids, text


def test_never_split_written_decomposed_as_the_slow_tokenizer(tmp_path):
    """transformers 4's slow BasicTokenizer composes the text (NFC) before it looks for never_split entries, so
    an entry is found whatever spelling of it the text has ("Cafe" + U+0301 for "Café", "u" + U+0308 + U+0301
    or "ü" + U+0301 for "ǘ"): kept whole and looked up as the entry. fastbert looked for the entry as written
    only: a decomposed one was lower-cased and split as any word ("cafe", or [UNK]). Compared with
    transformers 5's BertTokenizerLegacy (the slow tokenizer) under each casing setting, and written out."""
    import unicodedata

    vocab = tmp_path / "vocab.txt"
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] Café café cafe x ( ) . ! ǘ u ệ Zürich zürich zurich".split()
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    never_split = ["Café", "ǘ", "ệ", "Zürich", "qǘq"]
    spellings = {
        "Café": ["Cafe\u0301"],
        "ǘ": ["u\u0308\u0301", "\u00fc\u0301"],
        "ệ": ["e\u0323\u0302", "e\u0302\u0323", "\u00ea\u0323", "\u1eb9\u0302"],
        "Zürich": ["Zu\u0308rich", unicodedata.normalize("NFD", "Zürich")],
        "qǘq": ["qu\u0308\u0301q"],
    }
    assert all(unicodedata.normalize("NFC", w) == e != w for e, ws in spellings.items() for w in ws)
    texts = [
        f"{before}{w}{after}"
        for ws in spellings.values()
        for w in ws
        for before, after in (("x ", " x"), ("(", ")."), ("", "!"), ("x", ""))
    ]
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    for lower, strip in itertools.product((True, False), (None, True, False)):
        settings = dict(never_split=never_split, do_lower_case=lower, strip_accents=strip)
        ours = BertTokenizer(str(vocab), **settings)
        slow = legacy.BertTokenizerLegacy(str(vocab), **settings)
        for text in texts:
            assert ours(text)["input_ids"] == slow(text)["input_ids"], (lower, strip, text)
    ours = BertTokenizer(str(vocab), never_split=never_split)
    expected = {
        "x Cafe\u0301 x": [2, 8, 5, 8, 3],  # Café, as written
        "x u\u0308\u0301 \u00fc\u0301 x": [2, 8, 13, 13, 8, 3],
        "x e\u0302\u0323 x": [2, 8, 15, 8, 3],  # its marks in another order
        "x qu\u0308\u0301q": [2, 8, 1, 3],  # not in the vocabulary: [UNK]
        "x CAFE\u0301 Zu\u0308rich": [2, 8, 7, 16, 3],  # no entry: cafe; Zürich as written
    }
    for text, ids in expected.items():
        assert ours(text)["input_ids"] == ids, text
    enc = ours("x Cafe\u0301 x", return_offsets_mapping=True)
    assert enc.tokens() == ["[CLS]", "x", "Café", "x", "[SEP]"]
    assert enc["offset_mapping"] == [(0, 0), (0, 1), (2, 7), (8, 9), (0, 0)]
    ours.save_pretrained(tmp_path / "saved")
    again = BertTokenizer.from_pretrained(tmp_path / "saved")
    assert again._tokenizer.to_str() == ours._tokenizer.to_str()
    for text, ids in expected.items():
        assert again(text)["input_ids"] == ids, text
    plain = BertTokenizer.from_pretrained(tmp_path / "saved", never_split=None)
    assert plain._tokenizer.to_str() == BertTokenizer(str(vocab))._tokenizer.to_str()


def test_never_split_as_a_set(tmp_path):
    """transformers documents never_split as an Iterable (its BasicTokenizer makes a set of it): a set was refused
    with a ValueError. It is used in sorted order, so the saved tokenizer_config.json is the same on every run; a
    plain string is still refused (transformers would make a set of its characters)."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join("[PAD] [UNK] [CLS] [SEP] [MASK] [XX] x [ ] xx".split()) + "\n", encoding="utf-8"
    )
    tok = BertTokenizer(str(vocab), never_split={"x", "[XX]"})
    assert tok("[XX] x")["input_ids"] == [2, 5, 6, 3]
    assert tok.never_split == ["[XX]", "x"]
    tok.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["never_split"] == ["[XX]", "x"]
    assert BertTokenizer(str(vocab), never_split=frozenset({"[XX]"})).tokenize("[XX]") == ["[XX]"]
    with pytest.raises(ValueError, match="never_split should be a list of strings"):
        BertTokenizer(str(vocab), never_split="[XX]")
    with pytest.raises(ValueError, match="never_split should be a list of strings"):
        BertTokenizer(str(vocab), never_split={1})


def test_never_split_on_a_pipeline_that_is_not_berts(tmp_path):
    """A tokenizer.json whose normalizer is not a BertNormalizer (here a Sequence of NFD, Lowercase and
    StripAccents) still keeps the never_split entries whole as whole words, as before."""
    plain = BertTokenizer.from_pretrained(MINILM)
    backend = tokenizers.Tokenizer.from_str(plain._tokenizer.to_str())
    backend.normalizer = tokenizers.normalizers.Sequence(
        [
            tokenizers.normalizers.NFD(),
            tokenizers.normalizers.Lowercase(),
            tokenizers.normalizers.StripAccents(),
        ]
    )
    tok = BertTokenizer(tokenizer_object=backend, never_split=["[unused1]"])
    assert tok.tokenize("x [unused1] y") == ["x", "[unused1]", "y"]
    assert BertTokenizer(tokenizer_object=backend).tokenize("[unused1]") == ["[", "unused", "##1", "]"]
