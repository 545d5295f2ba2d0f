"""Parity fuzz: fastbert's tokenizers of every family against transformers' fast tokenizers on seeded random
inputs (unicode, accents, CJK, emoji, control characters, whitespace runs, empty strings, long texts, special-token
strings in the text, pairs, pre-split words) and random combinations of the call's arguments.

The reference is transformers 5 (the installed test dependency) wherever it keeps transformers 4's documented
behaviour; where 5 dropped it, fastbert keeps 4's (README) and the case checks 4's result instead, saying so:

* ``decode``'s ``clean_up_tokenization_spaces``: 4 cleans up when asked, BPE tokenizers too (5 ignores it for
  them); unset, 4.57's fast tokenizers default to False, but to True for the BERT family built from a vocab.txt
  alone (converted from the slow tokenizer, whose default is True); 5 defaults to False;
* ``build_inputs_with_special_tokens``, ``get_special_tokens_mask``, ``create_token_type_ids_from_sequences``,
  ``encode_plus`` and ``batch_encode_plus`` (gone from 5's fast tokenizers): checked against the call's output;
* RoBERTa with ``is_split_into_words=True`` needs ``add_prefix_space=True`` (4 raises, 5 does not);
* an empty batch, ``decode`` of a batch, ``batch_decode`` of flat ids, ``convert_tokens_to_ids(None)``: 4's results.

A call that transformers refuses must be refused by fastbert too, with a ``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import warnings

import pytest

import fastbert
from fastbert.hub import embedded_model_path
from tests.tokenizer_family_helpers import corpus, modernbert_tokenizer_folder, save_family_tokenizers

transformers = pytest.importorskip("transformers")

SEED = 2026
# family → extra from_pretrained arguments (the same for both libraries)
FAMILIES = {
    "bert": {},
    "bert-vocab": {},
    "distilbert": {},
    "electra": {},
    "mpnet": {},
    "roberta": {},
    "roberta-prefix": {"add_prefix_space": True},
    "roberta-slow": {},
    "xlm-roberta": {},
    "camembert": {},
    "modernbert": {},
}
FOLDER_OF = {"roberta-prefix": "roberta"}
BPE_FAMILIES = ("roberta", "roberta-prefix", "roberta-slow", "modernbert")

PIECES = [
    "hello",
    "world",
    "The",
    "quick",
    "brown",
    "fox",
    "Paris",
    "Crème",
    "brûlée",
    "naïve",
    "ÉCOLE",
    "Zürich",
    "São",
    "ﬁne",
    "①",
    "２０２６",
    "Ｆｅ…",
    "北京",
    "中国的首都。",
    "日本語",
    "한국어",
    "😀",
    "👍🏽",
    "🇫🇷",
    "don't",
    "I'm",
    "it's",
    "n't",
    ".",
    ",",
    "!",
    "?",
    "'",
    "e-mail",
    "a@b.com",
    "3.14",
    "1,000",
    "x" * 40,
    "supercalifragilisticexpialidocious",
    "\x00",
    "\x07",
    "\u200b",
    "\ufeff",
    "\u00a0",
    "\u3000",
    "\t",
    "\n",
    "\r\n",
    "  ",
    "   ",
    "",
    # special tokens of every family, written in the text
    "[CLS]",
    "[SEP]",
    "[PAD]",
    "[UNK]",
    "[MASK]",
    "[mask]",
    "<s>",
    "</s>",
    "<pad>",
    "<unk>",
    "<mask>",
    "<s>NOTUSED",
    "<mask>x",
    "a<mask>",
]


def _text(rng: random.Random) -> str:
    """A random text: pieces glued with nothing, one space or a whitespace run; sometimes a corpus line, an empty
    or blank string, or a long text."""
    kind = rng.random()
    if kind < 0.05:
        return rng.choice(["", " ", "\t\n ", "\u3000"])
    if kind < 0.1:
        return " ".join(rng.choice(PIECES[:20]) for _ in range(rng.randint(150, 400)))
    if kind < 0.25:
        return rng.choice(CORPUS)
    glue = ["", " ", " ", " ", "  ", "\t", "\n"]
    return "".join(rng.choice(PIECES) + rng.choice(glue) for _ in range(rng.randint(1, 14)))


def _words(rng: random.Random) -> list[str]:
    words = _text(rng).split()
    if rng.random() < 0.2:
        # odd words, as users pass them
        words.insert(rng.randint(0, len(words)), rng.choice(["", " ", "a b"]))
    return words


CORPUS = corpus()[:400]


# --------------------------------------------------------------------------------------------------------------
# the tokenizers
# --------------------------------------------------------------------------------------------------------------


def _modernbert_folder(path: str) -> str:
    """A ModernBERT-style tokenizer folder with its config.json (model_type modernbert)."""
    modernbert_tokenizer_folder(path, model_max_length=48)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"model_type": "modernbert"}, f)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = str(tmp_path_factory.mktemp("fuzz_tokenizers"))
    out = save_family_tokenizers(root)
    out["bert"] = embedded_model_path()
    vocab_only = os.path.join(root, "bert-vocab")
    os.makedirs(vocab_only)
    shutil.copy(os.path.join(embedded_model_path(), "vocab.txt"), vocab_only)
    with open(os.path.join(vocab_only, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "BertTokenizer", "model_max_length": 64, "do_lower_case": False}, f)
    out["bert-vocab"] = vocab_only
    out["modernbert"] = _modernbert_folder(os.path.join(root, "modernbert"))
    return out


@pytest.fixture(scope="module")
def loaded(folders):
    """{family: (fastbert's, transformers')}, each loaded by its library's AutoTokenizer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            family: (
                fastbert.AutoTokenizer.from_pretrained(folders[FOLDER_OF.get(family, family)], **kwargs),
                transformers.AutoTokenizer.from_pretrained(folders[FOLDER_OF.get(family, family)], **kwargs),
            )
            for family, kwargs in FAMILIES.items()
        }


@pytest.fixture(autouse=True)
def _quiet():
    """transformers' and fastbert's advice (truncation, lengths) is not what these tests look at."""
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.disable(logging.NOTSET)


# --------------------------------------------------------------------------------------------------------------
# comparing
# --------------------------------------------------------------------------------------------------------------


def _plain(x):
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "keys"):
        return {k: _plain(x[k]) for k in x.keys()}
    return x


def _outcome(fn):
    """``("ok", value)`` or ``("error", exception)``; tokenizers' panics (BaseException) are errors too."""
    try:
        return "ok", _plain(fn())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - pyo3's PanicException derives from BaseException
        return "error", e


def _same(ours_fn, theirs_fn, what):
    """Both give the same value, or both refuse (fastbert with a ValueError or TypeError)."""
    ours, theirs = _outcome(ours_fn), _outcome(theirs_fn)
    if theirs[0] == "error":
        assert ours[0] == "error", f"{what}: transformers raises {theirs[1]!r}, fastbert gives {ours[1]!r}"
        assert isinstance(ours[1], (ValueError, TypeError)), f"{what}: fastbert raises {ours[1]!r}"
        return
    assert ours[0] == "ok", f"{what}: fastbert raises {ours[1]!r}, transformers gives {theirs[1]!r}"
    assert ours[1] == theirs[1], what


def _same_method(ours, theirs, name, *args, what="", **kwargs):
    """``_same`` of ``ours.<name>(*args, **kwargs)`` and ``theirs.<name>(*args, **kwargs)``."""
    _same(lambda: getattr(ours, name)(*args, **kwargs), lambda: getattr(theirs, name)(*args, **kwargs), what)


def _random_kwargs(rng: random.Random) -> dict:
    kwargs = {
        "padding": rng.choice([True, "longest", "max_length", False, "do_not_pad"]),
        "truncation": rng.choice([True, "longest_first", "only_first", "only_second", False, None]),
        "max_length": rng.choice([None, None, 5, 8, 12, 17, 32]),
    }
    if rng.random() < 0.3:
        kwargs["pad_to_multiple_of"] = rng.choice([2, 4, 8])
    if rng.random() < 0.4:
        kwargs["padding_side"] = rng.choice(["left", "right"])
    if rng.random() < 0.3:
        kwargs["return_overflowing_tokens"] = True
        kwargs["stride"] = rng.choice([0, 1, 2, 4])
    for key in ("return_offsets_mapping", "return_special_tokens_mask", "return_length"):
        if rng.random() < 0.4:
            kwargs[key] = True
    for key in ("return_token_type_ids", "return_attention_mask"):
        if rng.random() < 0.2:
            kwargs[key] = rng.choice([False, True])
    if rng.random() < 0.2:
        kwargs["add_special_tokens"] = False
    if rng.random() < 0.1:
        kwargs["split_special_tokens"] = True
    if rng.random() < 0.1:
        kwargs["return_tensors"] = rng.choice(["pt", "np"])
    return kwargs


def _needs_prefix_space(family: str, kwargs: dict) -> bool:
    """transformers 4: RoBERTa refuses pre-split words without add_prefix_space (5 tokenizes them)."""
    return kwargs.get("is_split_into_words") and family in ("roberta", "roberta-slow")


# --------------------------------------------------------------------------------------------------------------
# __call__
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_call_fuzz(loaded, family):
    ours, theirs = loaded[family]
    rng = random.Random(f"{SEED}-call-{family}")
    for case in range(36):
        kwargs = _random_kwargs(rng)
        shape = rng.choice(["single", "pair", "batch", "batch-pairs", "words", "word-pairs", "word-batch"])
        if shape == "single":
            args = (_text(rng),)
        elif shape == "pair":
            args = (_text(rng), _text(rng))
        elif shape in ("batch", "batch-pairs"):
            texts = [_text(rng) for _ in range(rng.randint(1, 4))]
            args = (texts, [_text(rng) for _ in texts]) if shape == "batch-pairs" else (texts,)
        else:
            kwargs["is_split_into_words"] = True
            if shape == "words":
                args = (_words(rng),)
            elif shape == "word-pairs":
                args = (_words(rng), _words(rng))
            else:
                args = ([_words(rng) for _ in range(rng.randint(1, 3))],)
        if rng.random() < 0.1:
            kwargs["text_target"] = args[0]
            args = ()
        elif rng.random() < 0.1:
            kwargs["text_target"] = _text(rng) if not kwargs.get("is_split_into_words") else _words(rng)
            if isinstance(args[0], list) and not kwargs.get("is_split_into_words"):
                kwargs["text_target"] = [_text(rng) for _ in args[0]]
            elif kwargs.get("is_split_into_words") and shape == "word-batch":
                kwargs["text_target"] = [_words(rng) for _ in args[0]]
        what = f"{family} case {case}: {shape} {kwargs}"
        if _needs_prefix_space(family, kwargs):
            with pytest.raises(ValueError, match="add_prefix_space=True"):
                ours(*args, **kwargs)
            continue
        _same_method(ours, theirs, "__call__", *args, what=what, **kwargs)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_encoding_views_fuzz(loaded, family):
    """tokens, word_ids, sequence_ids and the char/token/word maps of the encodings."""
    ours, theirs = loaded[family]
    rng = random.Random(f"{SEED}-views-{family}")
    for case in range(10):
        texts = [_text(rng) for _ in range(2)]
        pairs = [_text(rng) for _ in range(2)]
        a, b = ours(texts, pairs), theirs(texts, pairs)
        for i in range(2):
            what = f"{family} case {case} row {i}"
            assert a.tokens(i) == b.tokens(i), what
            assert a.word_ids(i) == b.word_ids(i), what
            assert a.sequence_ids(i) == b.sequence_ids(i), what
            for token in range(0, len(b.tokens(i)), 3):
                _same_method(a, b, "token_to_chars", i, token, what=what)
                _same_method(a, b, "token_to_word", i, token, what=what)
            for char in range(0, len(texts[i]), 5):
                _same_method(a, b, "char_to_token", i, char, what=what)
                _same_method(a, b, "char_to_word", i, char, what=what)


# tokenizers of the fixtures with other settings (family → (folder family, from_pretrained arguments))
VARIANTS = {
    "mpnet-left": ("mpnet", {"truncation_side": "left", "padding_side": "left"}),
    "roberta-prefix-notrim": ("roberta", {"add_prefix_space": True, "trim_offsets": False}),
    "xlm-roberta-noprefix": ("xlm-roberta", {"add_prefix_space": False, "truncation_side": "left"}),
}


@pytest.fixture(scope="module")
def variants(folders, loaded):
    """{name: (fastbert's, transformers')}: every family of ``loaded`` and the ``VARIANTS``."""
    out = dict(loaded)
    for name, (family, kwargs) in VARIANTS.items():
        out[name] = (
            fastbert.AutoTokenizer.from_pretrained(folders[family], **kwargs),
            transformers.AutoTokenizer.from_pretrained(folders[family], **kwargs),
        )
    return out


def _try(obj, method: str, *args, **kwargs):
    """``("ok", obj.<method>(...))`` or ``("error", the exception's type name)``."""
    try:
        return "ok", getattr(obj, method)(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - pyo3's PanicException derives from BaseException
        return "error", type(e).__name__


def _views(encoding, rows: int) -> list:
    """What the alignment methods of a call's output say about each row (its first 40 tokens and 30 chars)."""
    out = []
    for i in range(rows):
        tokens = encoding.tokens(i)
        out.append([tokens, encoding.word_ids(i), encoding.sequence_ids(i)])
        for t in range(0, min(len(tokens), 40), 2):
            out += [_try(encoding, m, i, t) for m in ("token_to_chars", "token_to_word", "token_to_sequence")]
        for sequence in (0, 1):
            for c in range(0, 30, 3):
                out.append(_try(encoding, "char_to_token", i, c, sequence_index=sequence))
                out.append(_try(encoding, "char_to_word", i, c, sequence_index=sequence))
            for w in range(4):
                out.append(_try(encoding, "word_to_tokens", i, w, sequence_index=sequence))
    return out


def _tensor_types(output) -> dict:
    return {
        k: (type(v).__name__, str(getattr(v, "dtype", "")), tuple(getattr(v, "shape", ())))
        for k, v in output.items()
    }


@pytest.mark.parametrize("family", list(FAMILIES) + list(VARIANTS))
def test_call_outputs_and_views_fuzz(variants, family):
    """Random calls (max_length down to 0, below the special tokens; odd pad_to_multiple_of; pre-split pairs
    and batches of them; the tokenizer's own truncation_side / padding_side): the same keys in the same order,
    the same tensor types and shapes, and the same word_ids / sequence_ids / char_to_token / token_to_chars /
    word_to_tokens on every returned row (overflowing windows and padding included)."""
    ours, theirs = variants[family]
    rng = random.Random(f"{SEED}-views-call-{family}")
    for case in range(30):
        kwargs = _random_kwargs(rng)
        kwargs["max_length"] = rng.choice([None, 0, 1, 2, 3, 4, 7, 9, 13])
        if "pad_to_multiple_of" in kwargs:
            kwargs["pad_to_multiple_of"] = rng.choice([1, 3, 4])
        shape = rng.choice(["pair", "batch-pairs", "word-pairs", "word-batch-pairs"])
        n = rng.randint(1, 3)
        if shape == "pair":
            args = (_text(rng), _text(rng))
        elif shape == "batch-pairs":
            args = ([_text(rng) for _ in range(n)], [_text(rng) for _ in range(n)])
        elif shape == "word-pairs":
            args = (_words(rng), _words(rng))
        else:
            args = ([_words(rng) for _ in range(n)], [_words(rng) for _ in range(n)])
        if shape.startswith("word"):
            kwargs["is_split_into_words"] = True
            if _needs_prefix_space(family, kwargs):
                continue
        what = f"{family} case {case}: {shape} {args!r:.200} {kwargs}"
        both = _same_outputs(ours, theirs, "__call__", args, kwargs, what)
        if both is None:
            continue
        a, b = both
        assert a.n_sequences == b.n_sequences and len(a.encodings) == len(b.encodings), what
        assert _views(a, len(b.encodings)) == _views(b, len(b.encodings)), what


def _same_outputs(ours, theirs, method, args, kwargs, what):
    """Call ``method`` on both tokenizers: where transformers raises, fastbert must raise a ValueError or
    TypeError (returns None); else the same values, keys in the same order and the same tensor types as
    transformers (returns both outputs)."""
    a, b = _try(ours, method, *args, **kwargs), _try(theirs, method, *args, **kwargs)
    if b[0] == "error":
        assert a[0] == "error" and a[1] in ("ValueError", "TypeError"), f"{what}: transformers raises {b[1]}"
        return None
    assert a[0] == "ok", f"{what}: fastbert raises {a[1]}"
    a, b = a[1], b[1]
    assert _plain(a) == _plain(b), what
    assert list(a.keys()) == list(b.keys()), what
    assert _tensor_types(a) == _tensor_types(b), what
    return a, b


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta", "modernbert", "mpnet-left"])
def test_pad_tensors_fuzz(variants, family):
    """``pad`` of what data collators hand it: a list of rows of torch tensors, numpy arrays or lists (one key a
    tensor, the others lists; a ``labels`` key left alone), one row, or a dict of rows; the same values, keys in
    the same order and the same tensor types and shapes as transformers."""
    import numpy as np
    import torch

    ours, theirs = variants[family]
    rng = random.Random(f"{SEED}-pad-tensors-{family}")
    for case in range(24):
        keys = dict(return_special_tokens_mask=rng.random() < 0.5, return_token_type_ids=rng.random() < 0.5)
        texts = [_text(rng) for _ in range(rng.randint(1, 4))]
        rows = [dict(theirs(t, truncation=True, max_length=rng.choice([6, 24]), **keys)) for t in texts]
        kind = rng.choice(["pt", "np", "mixed", None])
        form = rng.choice(["rows", "one", "dict"])
        if form == "one" and kind == "np":
            form = "rows"  # transformers 5 refuses one row of numpy arrays (numpy ints are of no known type)
        if rng.random() < 0.3:
            # one row's label: a list (transformers 5 cannot make a tensor of a scalar there)
            for row in rows:
                row["labels"] = [rng.randint(0, 3)] if form == "one" else rng.randint(0, 3)
        if kind in ("pt", "np"):
            make = torch.tensor if kind == "pt" else np.array
            rows = [{k: make(v) for k, v in row.items()} for row in rows]
        elif kind == "mixed":
            rows = [{k: torch.tensor(v) if k == "input_ids" else v for k, v in row.items()} for row in rows]
        kwargs = {"padding": rng.choice([True, "longest", "max_length", False])}
        if kwargs["padding"] == "max_length" or rng.random() < 0.3:
            kwargs["max_length"] = rng.choice([3, 8, 24])
        if rng.random() < 0.4:
            kwargs["pad_to_multiple_of"] = rng.choice([3, 8])
        if rng.random() < 0.3:
            kwargs["padding_side"] = rng.choice(["left", "right"])
        if rng.random() < 0.3:
            kwargs["return_attention_mask"] = rng.choice([False, True])
        if rng.random() < 0.3:
            kwargs["return_tensors"] = rng.choice(["pt", "np", None])
        inputs = (
            rows
            if form == "rows"
            else rows[0]
            if form == "one"
            else {k: [r[k] for r in rows] for k in rows[0]}
        )
        what = f"{family} case {case}: {form} of {kind} {keys} {kwargs}"
        _same_outputs(ours, theirs, "pad", (inputs,), kwargs, what)


# --------------------------------------------------------------------------------------------------------------
# tokenize, encode, decode, the vocabulary
# --------------------------------------------------------------------------------------------------------------


# transformers 4.57's default clean_up_tokenization_spaces when the folder does not set it: True only for the
# BERT-family folder without a tokenizer.json (5.25: False for every folder)
CLEAN_UP_BY_DEFAULT = {"bert-vocab"}


def _expected_decode(theirs, ids, skip, clean_up, family):
    """transformers 4.57's decode: ``clean_up_tokenization_spaces`` applies ``clean_up_tokenization`` to the
    decoded text, for BPE tokenizers too (5 ignores it for them); unset, 4.57's default for the folder."""
    text = theirs.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)
    if clean_up is None:
        clean_up = family in CLEAN_UP_BY_DEFAULT
    return theirs.clean_up_tokenization(text) if clean_up else text


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tokenize_encode_decode_fuzz(loaded, family):
    ours, theirs = loaded[family]
    assert ours.clean_up_tokenization_spaces is (family in CLEAN_UP_BY_DEFAULT)
    rng = random.Random(f"{SEED}-decode-{family}")
    for case in range(30):
        text, pair = _text(rng), _text(rng) if rng.random() < 0.5 else None
        what = f"{family} case {case}: {text!r} / {pair!r}"
        assert ours.tokenize(text) == theirs.tokenize(text), what
        assert ours.tokenize(text, pair, add_special_tokens=True) == theirs.tokenize(
            text, pair, add_special_tokens=True
        ), what
        assert ours.encode(text, pair) == theirs.encode(text, pair), what
        assert ours.encode(text, add_special_tokens=False) == theirs.encode(text, add_special_tokens=False), (
            what
        )
        ids = theirs(text, pair)["input_ids"]
        for skip in (False, True):
            for clean_up in (None, False, True):
                assert ours.decode(
                    ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean_up
                ) == _expected_decode(theirs, ids, skip, clean_up, family), (what, skip, clean_up)
        batch = [ids, ids[: len(ids) // 2], []]
        assert ours.batch_decode(batch, skip_special_tokens=True, clean_up_tokenization_spaces=False) == (
            theirs.batch_decode(batch, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        ), what
        assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids), what
        assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == theirs.convert_ids_to_tokens(
            ids, skip_special_tokens=True
        ), what
        assert ours.convert_ids_to_tokens(ids[0]) == theirs.convert_ids_to_tokens(ids[0]), what
        tokens = theirs.convert_ids_to_tokens(ids) + ["qqzzqqzz", "[MASK]", "<mask>"]
        assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens), what
        assert ours.convert_tokens_to_ids(tokens[0]) == theirs.convert_tokens_to_ids(tokens[0]), what
        tokens = theirs.convert_ids_to_tokens(ids)
        assert ours.convert_tokens_to_string(tokens) == theirs.convert_tokens_to_string(tokens), what


@pytest.mark.parametrize("family", list(FAMILIES))
def test_sequence_methods_fuzz(loaded, family):
    """transformers 4's sequence methods (5's fast tokenizers dropped them) give what the call gives."""
    ours, theirs = loaded[family]
    rng = random.Random(f"{SEED}-sequences-{family}")
    assert ours.num_special_tokens_to_add(False) == theirs.num_special_tokens_to_add(False)
    assert ours.num_special_tokens_to_add(True) == theirs.num_special_tokens_to_add(True)
    for case in range(20):
        text, pair = _text(rng), _text(rng) if rng.random() < 0.6 else None
        pair = pair or None  # transformers 4 and 5: an empty text_pair of one example is no pair
        what = f"{family} case {case}: {text!r} / {pair!r}"
        a = theirs.encode(text, add_special_tokens=False)
        b = theirs.encode(pair, add_special_tokens=False) if pair is not None else None
        call = theirs(text, pair, return_special_tokens_mask=True, return_token_type_ids=True)
        assert ours.build_inputs_with_special_tokens(a, b) == call["input_ids"], what
        assert ours.get_special_tokens_mask(a, b) == call["special_tokens_mask"], what
        assert ours.create_token_type_ids_from_sequences(a, b) == call["token_type_ids"], what
        assert ours.get_special_tokens_mask(
            call["input_ids"], already_has_special_tokens=True
        ) == theirs.get_special_tokens_mask(call["input_ids"], already_has_special_tokens=True), what
        assert _plain(ours.encode_plus(text, pair, return_offsets_mapping=True)) == _plain(
            theirs(text, pair, return_offsets_mapping=True)
        ), what
        batch = [text, pair or "x"]
        assert _plain(ours.batch_encode_plus(batch, padding=True)) == _plain(theirs(batch, padding=True)), (
            what
        )


@pytest.mark.parametrize("family", list(FAMILIES))
def test_pad_fuzz(loaded, family):
    ours, theirs = loaded[family]
    rng = random.Random(f"{SEED}-pad-{family}")
    for case in range(12):
        texts = [_text(rng) for _ in range(rng.randint(1, 4))]
        keys = dict(return_special_tokens_mask=rng.random() < 0.5, return_token_type_ids=rng.random() < 0.5)
        rows = [dict(theirs(t, truncation=True, max_length=24, **keys)) for t in texts]
        kwargs = {"padding": rng.choice([True, "longest", "max_length", False])}
        if kwargs["padding"] == "max_length" or rng.random() < 0.3:
            kwargs["max_length"] = rng.choice([8, 24, 30])
        if rng.random() < 0.4:
            kwargs["pad_to_multiple_of"] = rng.choice([4, 8])
        if rng.random() < 0.5:
            kwargs["padding_side"] = rng.choice(["left", "right"])
        if rng.random() < 0.2:
            kwargs["return_attention_mask"] = False
        what = f"{family} case {case}: {kwargs}"
        _same_method(ours, theirs, "pad", rows, what=what, **kwargs)


# --------------------------------------------------------------------------------------------------------------
# saving and loading
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_save_pretrained_round_trip_fuzz(loaded, family, tmp_path):
    """fastbert's save loads back (in fastbert and transformers) to the same tokenizer, and so does
    transformers' save in fastbert."""
    ours, theirs = loaded[family]
    rng = random.Random(f"{SEED}-save-{family}")
    texts = [_text(rng) for _ in range(16)]
    pairs = [_text(rng) for _ in range(16)]
    ours.save_pretrained(tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "theirs")
    reloaded = {
        "fastbert → fastbert": fastbert.AutoTokenizer.from_pretrained(tmp_path / "ours"),
        "fastbert → transformers": transformers.AutoTokenizer.from_pretrained(tmp_path / "ours"),
        "transformers → fastbert": fastbert.AutoTokenizer.from_pretrained(tmp_path / "theirs"),
    }
    keys = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    expected = _plain(theirs(texts, pairs, **keys))
    for route, tok in reloaded.items():
        what = f"{family}: {route}"
        assert _plain(tok(texts, pairs, **keys)) == expected, what
        assert _plain(tok(texts, padding="max_length", truncation=True)) == _plain(
            theirs(texts, padding="max_length", truncation=True)
        ), what
        assert tok.model_max_length == theirs.model_max_length, what
        assert list(tok.model_input_names) == list(theirs.model_input_names), what
        assert tok.all_special_tokens == ours.all_special_tokens, what
        assert len(tok) == len(theirs), what
        for ids in expected["input_ids"][:4]:
            assert tok.decode(ids, clean_up_tokenization_spaces=False) == theirs.decode(
                ids, clean_up_tokenization_spaces=False
            ), what


# --------------------------------------------------------------------------------------------------------------
# what transformers refuses
# --------------------------------------------------------------------------------------------------------------

ERROR_CASES = {
    "text None": lambda t: t(None),
    "text an int": lambda t: t(5),
    "text ids": lambda t: t([1, 2, 3]),
    "batch of id lists": lambda t: t([[1, 2], [3]]),
    "batch with a number": lambda t: t(["a", 1]),
    "a triple in a batch": lambda t: t([("a", "b", "c")]),
    "pairs of different lengths": lambda t: t(["a", "b"], ["c"]),
    "str pair of a batch": lambda t: t(["a", "b"], "c"),
    "padding='sideways'": lambda t: t("a b", padding="sideways"),
    "truncation='middle'": lambda t: t("a b", truncation="middle", max_length=4),
    "padding_side='middle'": lambda t: t("a b", padding=True, padding_side="middle"),
    "max_length=-1": lambda t: t("a b", truncation=True, max_length=-1),
    "stride too long": lambda t: t(
        "hello world foo bar baz qux", truncation=True, max_length=6, stride=4, return_overflowing_tokens=True
    ),
    "only_second too short": lambda t: t(
        "hello world foo bar baz", "a", truncation="only_second", max_length=4
    ),
    "only_first too short": lambda t: t(
        "a", "hello world foo bar baz", truncation="only_first", max_length=4
    ),
    "max_length not a multiple": lambda t: t(
        "hello world", padding="max_length", truncation=True, max_length=10, pad_to_multiple_of=4
    ),
    "ragged tensors": lambda t: t(["hello world foo bar", "a"], return_tensors="pt"),
    "unknown tensor type": lambda t: t("a", return_tensors="xx"),
    "pre-split str": lambda t: t("hello world", is_split_into_words=True),
    "pre-split with a str pair": lambda t: t(["a"], "b", is_split_into_words=True),
    "tokenize an int": lambda t: t.tokenize(5),
    "decode a str": lambda t: t.decode("abc"),
    "decode floats": lambda t: t.decode([1.5, 2.0]),
    "mask of a pair already formatted": lambda t: t.get_special_tokens_mask([1, 2], [3], True),
    "pad nothing to pad": lambda t: t.pad({"attention_mask": [[1]]}),
    "pad rows of other keys": lambda t: t.pad([{"input_ids": [1, 2]}, {"attention_mask": [1]}]),
}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_refused_by_both(loaded, family, case):
    """Refused by both (fastbert: ValueError or TypeError), or, where this family's tokens make the call possible
    (a truncation that fits), the same output."""
    ours, theirs = loaded[family]
    call = ERROR_CASES[case]
    _same(lambda: call(ours), lambda: call(theirs), f"{family}: {case}")


# --------------------------------------------------------------------------------------------------------------
# transformers 4's behaviour where 5 dropped it (fastbert keeps 4's), and the differences the fuzz found
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_transformers_4_results_that_5_dropped(loaded, family):
    ours, theirs = loaded[family]
    # an empty batch: 4 gives empty lists (5 raises IndexError)
    assert _plain(ours([])) == {k: [] for k in _plain(ours(["a"]))}
    # decode of a batch: 4 raises TypeError (5 decodes each row); batch_decode of flat ids: 4 decodes each id
    with pytest.raises(TypeError):
        ours.decode([[1, 2]])
    assert ours.batch_decode([5, 6]) == [ours.decode([5]), ours.decode([6])]
    assert ours.convert_tokens_to_ids(None) is None  # 4: None (5 raises TypeError)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_text_target(loaded, family):
    """transformers 4 and 5: ``text_target`` alone is encoded as ``text``; beside ``text``, its ids are
    ``labels`` (fastbert raised ValueError alone and dropped it silently beside ``text``)."""
    ours, theirs = loaded[family]
    kwargs = dict(padding=True, truncation=True, max_length=12, return_tensors="pt")
    _same(
        lambda: ours(text_target="Paris is the capital."),
        lambda: theirs(text_target="Paris is the capital."),
        family,
    )
    texts, targets = ["hello world", "北京 crème"], ["a b c d e f g h i j k l m n", "x"]
    _same(
        lambda: ours(texts, text_target=targets, **kwargs),
        lambda: theirs(texts, text_target=targets, **kwargs),
        family,
    )
    _same(
        lambda: ours(texts, texts, text_target=targets, text_pair_target=texts),
        lambda: theirs(texts, texts, text_target=targets, text_pair_target=texts),
        family,
    )
    # positionally, as transformers orders the call's arguments
    _same(lambda: ours("hello", None, "world"), lambda: theirs("hello", None, "world"), family)
    with pytest.raises(ValueError, match="text_target"):
        ours()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_split_special_tokens(loaded, family, folders):
    """``split_special_tokens`` (call argument and setting) tokenizes special tokens in the text as text
    (fastbert ignored it); it does not stay on for the next call."""
    ours, theirs = loaded[family]
    text = "a [CLS] <s> [MASK] <mask> b [SEP] </s> [PAD]"
    for split in (True, False, True):
        kwargs = dict(split_special_tokens=split, return_offsets_mapping=True)
        _same_method(ours, theirs, "__call__", text, "c <pad>", what=f"{family} split={split}", **kwargs)
    assert ours(text)["input_ids"] == theirs(text)["input_ids"]
    folder = folders[FOLDER_OF.get(family, family)]
    kwargs = {**FAMILIES[family], "split_special_tokens": True}
    mine = fastbert.AutoTokenizer.from_pretrained(folder, **kwargs)
    assert mine(text)["input_ids"] == theirs(text, split_special_tokens=True)["input_ids"]
    assert mine(text, split_special_tokens=False)["input_ids"] == theirs(text)["input_ids"]


@pytest.mark.parametrize("family", ["roberta", "roberta-slow"])
def test_roberta_pre_split_words_need_add_prefix_space(loaded, family):
    """transformers 4 (RobertaTokenizerFast): pre-split words need ``add_prefix_space=True``; 5 drops the check."""
    ours, _ = loaded[family]
    with pytest.raises(ValueError, match="add_prefix_space=True"):
        ours(["hello", "world"], is_split_into_words=True)
    with pytest.raises(ValueError, match="add_prefix_space=True"):
        ours(text_target=["hello", "world"], is_split_into_words=True)
    assert ours("hello world")["input_ids"]  # text is fine


def test_modernbert_saved_alone_loads_back(loaded, tmp_path):
    """A ModernBERT tokenizer saved without its config.json (tokenizer_class PreTrainedTokenizerFast, or 5's
    TokenizersBackend) loads back as the file's own pipeline, as transformers loads it (not as RoBERTa's)."""
    ours, theirs = loaded["modernbert"]
    ours.save_pretrained(tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "theirs")
    texts = ["Paris is the [MASK] of France.", "hello <s> world </s>", ""]
    pairs = ["a b", "c", "d"]
    for folder in ("ours", "theirs"):
        again = fastbert.AutoTokenizer.from_pretrained(tmp_path / folder)
        assert type(again) is type(ours), folder
        assert _plain(again(texts, pairs)) == _plain(theirs(texts, pairs)), folder
        assert again.all_special_tokens == ours.all_special_tokens, folder
        assert len(again) == len(theirs), folder


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta"])
def test_encode_positional_arguments(loaded, family):
    """``encode``'s positional order is transformers' (4.57 and 5): ``..., stride, padding_side, return_tensors``
    (fastbert took the eighth argument as ``return_tensors``)."""
    ours, theirs = loaded[family]
    args = ("hello world foo bar baz", None, True, "max_length", True, 12, 0)
    _same_method(ours, theirs, "encode", *args, "left", what=family)
    _same_method(ours, theirs, "encode", *args, "left", "pt", what=family)
    _same_method(ours, theirs, "encode", *args, None, "np", what=family)
    with pytest.raises(TypeError):
        ours.encode(*args, "left", "pt", "extra")


@pytest.mark.parametrize("family", ["bert", "roberta-prefix", "xlm-roberta"])
def test_call_tokenizer_kwargs(loaded, family):
    """transformers 5's ``tokenizer_kwargs`` of the call: its arguments win over the named ones (fastbert logged
    them as not recognized and ignored them: no truncation, no padding)."""
    ours, theirs = loaded[family]
    texts, pairs = ["hello world foo bar baz qux", "a"], ["x y z", "b c d e f g h"]
    for tokenizer_kwargs, named in [
        ({"truncation": True, "max_length": 6}, {}),
        ({"padding": "max_length", "max_length": 16, "return_tensors": "pt"}, {"max_length": 9}),
        ({"truncation": "only_second", "max_length": 9, "return_overflowing_tokens": True, "stride": 1}, {}),
        ({"split_special_tokens": True, "return_offsets_mapping": True}, {"padding": True}),
        ({"is_split_into_words": True, "add_special_tokens": False}, {}),
    ]:
        what = f"{family}: {tokenizer_kwargs} {named}"
        args = ([t.split() for t in texts],) if "is_split_into_words" in tokenizer_kwargs else (texts, pairs)
        _same_method(ours, theirs, "__call__", *args, tokenizer_kwargs=tokenizer_kwargs, what=what, **named)
    with pytest.raises(TypeError, match="tokenizer_kwargs"):
        ours("a", tokenizer_kwargs=[("truncation", True)])


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta"])
def test_encode_plus_positional_arguments(loaded, family):
    """transformers 4's ``encode_plus`` and ``batch_encode_plus`` (gone from 5) take the call's arguments
    positionally after the text(s), in 4's order (fastbert refused them with a TypeError)."""
    ours, theirs = loaded[family]
    text, pair = "hello world foo bar baz", "qux quux"
    names = ("add_special_tokens", "padding", "truncation", "max_length", "stride", "is_split_into_words")
    names += ("pad_to_multiple_of", "padding_side", "return_tensors")
    values = (True, "max_length", "longest_first", 8, 0, False, 4, "left", "pt")
    expected = _plain(theirs(text, pair, **dict(zip(names, values))))
    assert _plain(ours.encode_plus(text, pair, *values)) == expected
    assert _plain(ours.encode_plus(text, pair, *values[:3], **dict(zip(names[3:], values[3:])))) == expected
    batch = [text, pair]
    values = (False, True, True, 3, 1, False, None, "right", "np", None, None, True)
    expected = _plain(
        theirs(
            batch,
            **dict(zip(names + ("return_token_type_ids", "return_attention_mask"), values[:11])),
            return_overflowing_tokens=True,
        )
    )
    assert _plain(ours.batch_encode_plus(batch, *values)) == expected
    with pytest.raises(TypeError, match="multiple values"):
        ours.encode_plus(text, pair, True, add_special_tokens=False)
    with pytest.raises(TypeError, match="positional"):
        ours.batch_encode_plus(batch, *range(17))


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta"])
def test_encode_plus_tokens_and_ids(loaded, family):
    """transformers 4 documents ``encode_plus``'s list of strings as tokens (``tokenize``'s output) and a list
    of ints as their ids, the same example as the text (fastbert encoded a list of strings as a batch)."""
    ours, theirs = loaded[family]
    text, pair = "hello world foo bar baz", "qux quux"
    tokens, pair_tokens = ours.tokenize(text), ours.tokenize(pair)
    ids = ours.convert_tokens_to_ids(tokens)
    for kwargs in (
        {},
        {"truncation": "longest_first", "max_length": 7, "return_tensors": "pt"},
        {"padding": "max_length", "max_length": 16},
    ):
        expected = _plain(theirs(text, pair, **kwargs))
        assert _plain(ours.encode_plus(tokens, pair_tokens, **kwargs)) == expected, (family, kwargs)
        assert _plain(ours.encode_plus(ids, pair, **kwargs)) == expected, (family, kwargs)
    assert _plain(ours.encode_plus(tokens)) == _plain(theirs(text))
    words = text.split()  # RoBERTa's tokenizers take words only with add_prefix_space
    if family == "bert":
        assert _plain(ours.encode_plus(words, is_split_into_words=True)) == _plain(
            theirs(words, is_split_into_words=True)
        )
    for bad in ([["hello"]], [], [1, "a"]):
        with pytest.raises(ValueError, match="encode_plus: text"):
            ours.encode_plus(bad)
