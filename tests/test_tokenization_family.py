"""The encoder families' tokenizers (RoBERTa's byte-level BPE, XLM-RoBERTa's and CamemBERT's Unigram, DistilBERT's,
ELECTRA's and MPNet's WordPiece) against transformers' fast tokenizers (a test-only dependency), on tiny folders
saved by transformers (tests/tokenizer_family_helpers.py): ids, masks, offsets, pairs, truncation with overflow,
padding on both sides, ``<mask>`` in text, the sequence methods of transformers 4, save → reload.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil

import pytest

import fastbert
from fastbert.tokenization import (
    BertTokenizer,
    CamembertTokenizer,
    DistilBertTokenizer,
    ElectraTokenizer,
    MPNetTokenizer,
    RobertaTokenizer,
    XLMRobertaTokenizer,
)
from tests.tokenizer_family_helpers import (
    EXTRA_TEXTS,
    corpus,
    modernbert_tokenizer_folder,
    save_family_tokenizers,
)

transformers = pytest.importorskip("transformers")

EXPECTED_CLASS = {
    "roberta": RobertaTokenizer,
    "xlm-roberta": XLMRobertaTokenizer,
    "camembert": CamembertTokenizer,
    "distilbert": DistilBertTokenizer,
    "electra": ElectraTokenizer,
    "mpnet": MPNetTokenizer,
    "roberta-slow": RobertaTokenizer,
}
FAMILIES = list(EXPECTED_CLASS)
UNIGRAM = ("xlm-roberta", "camembert")
# the folders' model_max_length (roberta-slow has no tokenizer_config.json: no maximum, transformers' 1e30)
MAX_LENGTH = {family: 40 for family in FAMILIES} | {"roberta-slow": int(1e30)}
ROBERTA_STYLE = ("roberta", "xlm-roberta", "camembert", "mpnet", "roberta-slow")

EDGE_TEXTS = [
    "Hello, world! This is fastbert.",
    "Paris is the <mask> of France.",
    "a<mask>b <mask>  <mask>. <mask>",
    "<s> </s> <pad> <unk> <mask> [CLS] [SEP] [MASK]",
    "  leading and   runs\tof\n\nwhitespace  ",
    "\u00a0nbsp\u00a0inside\u3000ideographic space",
    "ÉCOLE Zürich ÀÉÎÕÜ ﬁne ①②③ ２０２６ Ｆｅ…",
    "control\x00chars\x07\x1b here\r\nand\u200b\ufeff",
    "don't won't it's they're I'm we've",
    "e-mail: someone@example.com, url https://example.org/a_b?c=d#e",
    "numbers 3.14159 1,000,000 42nd 2026-11-25",
    "supercalifragilisticexpialidocious " + "x" * 120,
    " ".join(["word"] * 90),
    "",
    " ",
    "a",
    *EXTRA_TEXTS,
]


def _texts() -> list[str]:
    """A few hundred strings: the edge cases, lines of the corpus, and seeded mixtures of pieces of both."""
    rng = random.Random(26)
    lines = corpus()[:1500]
    picked = rng.sample(lines, 150)
    pieces = [w for t in EDGE_TEXTS + picked[:40] for w in t.split(" ")] + [
        "<mask>",
        "😀",
        "北京",
        "  ",
        "\t",
    ]
    mixed = [" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(100)]
    return EDGE_TEXTS + picked + mixed


TEXTS = _texts()
PAIRS = list(zip(TEXTS[::2], TEXTS[1::2]))[:120]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    return save_family_tokenizers(str(tmp_path_factory.mktemp("family_tokenizers")))


@pytest.fixture(scope="module")
def loaded(folders):
    """{family: (fastbert's, transformers')} loaded by the two AutoTokenizers."""
    return {
        family: (
            fastbert.AutoTokenizer.from_pretrained(path),
            transformers.AutoTokenizer.from_pretrained(path),
        )
        for family, path in folders.items()
    }


def _same(ours, theirs, what=""):
    assert set(ours.keys()) == set(theirs.keys()), what
    for key in theirs.keys():
        assert _plain(ours[key]) == _plain(theirs[key]), f"{what} {key}"


def _plain(x):
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


ALL_KEYS = dict(return_offsets_mapping=True, return_special_tokens_mask=True, return_length=True)


# ---------------------------------------------------------------------------------------------------------
# the class of a folder
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_tokenizer_picks_the_family(loaded, family):
    ours, theirs = loaded[family]
    assert type(ours) is EXPECTED_CLASS[family]
    assert ours.is_fast
    expected = (
        type(ours).__name__ if family != "electra" else "BertTokenizer"
    )  # transformers 5's ELECTRA class
    assert type(theirs).__name__ == expected
    assert ours.model_input_names == theirs.model_input_names


def test_public_names_and_aliases():
    for family in ("Roberta", "XLMRoberta", "Camembert", "DistilBert", "Electra", "MPNet"):
        cls = getattr(fastbert, f"{family}Tokenizer")
        assert getattr(fastbert, f"{family}TokenizerFast") is cls
        assert issubclass(cls, fastbert.tokenization.base.TokenizerBase)


def test_minilm_is_still_bert():
    from fastbert.hub import embedded_model_path

    tok = fastbert.AutoTokenizer.from_pretrained(embedded_model_path())
    assert type(tok) is BertTokenizer
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102]


# ---------------------------------------------------------------------------------------------------------
# ids, masks, offsets equal transformers'
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_texts_equal_transformers(loaded, family):
    ours, theirs = loaded[family]
    _same(ours(TEXTS), theirs(TEXTS), "default keys")
    _same(ours(TEXTS, **ALL_KEYS), theirs(TEXTS, **ALL_KEYS), "all keys")
    _same(
        ours(TEXTS[:40], return_token_type_ids=True), theirs(TEXTS[:40], return_token_type_ids=True), "types"
    )
    for text in TEXTS[:40]:
        assert ours.tokenize(text) == theirs.tokenize(text), text
        _same(ours(text, **ALL_KEYS), theirs(text, **ALL_KEYS), text)


@pytest.mark.parametrize("family", FAMILIES)
def test_pairs_equal_transformers(loaded, family):
    ours, theirs = loaded[family]
    first, second = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    kwargs = dict(ALL_KEYS, return_token_type_ids=True)
    if (
        kwargs.get("truncation") == "only_second"
    ):  # a short first text, that the second may be truncated around
        first = [" ".join(w for w in a.split() if len(w) < 12)[:24] for a in first]
    _same(ours(first, second, **kwargs), theirs(first, second, **kwargs), "pairs")
    _same(ours(first, second), theirs(first, second), "pairs, default keys")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(truncation=True),  # model_max_length (40)
        dict(truncation=True, max_length=16, stride=3, return_overflowing_tokens=True),
        dict(truncation="only_second", max_length=40, stride=2, return_overflowing_tokens=True),
        dict(truncation="longest_first", max_length=17, padding="max_length", padding_side="left"),
        dict(padding=True, pad_to_multiple_of=8, return_token_type_ids=True),
    ],
    ids=["model-max", "overflow", "only-second", "left-pad", "multiple-of-8"],
)
def test_truncation_and_padding_equal_transformers(loaded, family, kwargs):
    ours, theirs = loaded[family]
    kwargs = dict(kwargs, return_offsets_mapping=True, return_special_tokens_mask=True)
    # pairs overflow as every window of the first text with every window of the second: short ones
    pairs = [p for p in PAIRS if p[1].strip() and len(p[0]) + len(p[1]) < 160][:40]
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    if kwargs.get("truncation") != "only_second":
        _same(ours(TEXTS[:80], **kwargs), theirs(TEXTS[:80], **kwargs), "single")
    if (
        kwargs.get("truncation") == "only_second"
    ):  # a short first text, that the second may be truncated around
        first = [" ".join(w for w in a.split() if len(w) < 12)[:24] for a in first]
    _same(ours(first, second, **kwargs), theirs(first, second, **kwargs), "pairs")


def test_truncation_that_cannot_be_done_is_a_value_error(loaded):
    """The tokenizers library raises a bare Exception, or panics on a stride (transformers passes both on):
    fastbert raises ValueError naming the arguments."""
    ours, theirs = loaded["roberta"]
    words = "the cat sat on the mat and the dog ran to the park with a ball in its mouth".split()
    first = ""
    while 24 - 4 - len(theirs(first, add_special_tokens=False)["input_ids"]) > 2:  # room for 1 or 2 tokens
        first = f"{first} {words[len(first.split())]}".strip()
    kwargs = dict(truncation="only_second", max_length=24, stride=2, return_overflowing_tokens=True)
    with pytest.raises(BaseException, match="stride"):
        theirs(first, "second text", **kwargs)
    with pytest.raises(ValueError, match=r"truncation='only_second', max_length=24, stride=2.*max_len="):
        ours(first, "second text", **kwargs)
    with pytest.raises(ValueError, match=r"max_length=6, stride=0.*too short"):  # no room at all
        ours(first, "second text", truncation="only_second", max_length=6)


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_side_and_tensors_equal_transformers(loaded, family):
    ours, theirs = loaded[family]
    for side in ("left", "right"):
        ours.padding_side = theirs.padding_side = side
        try:
            a = ours(TEXTS[:30], padding=True, return_tensors="pt")
            b = theirs(TEXTS[:30], padding=True, return_tensors="pt")
        finally:
            ours.padding_side = theirs.padding_side = "right"
        assert set(a.keys()) == set(b.keys())
        for key in b:
            assert a[key].dtype == b[key].dtype and a[key].tolist() == b[key].tolist(), (side, key)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "camembert", "mpnet"])
def test_pretokenized_words_equal_transformers(folders, family):
    ours = fastbert.AutoTokenizer.from_pretrained(folders[family], add_prefix_space=True)
    theirs = transformers.AutoTokenizer.from_pretrained(folders[family], add_prefix_space=True)
    words = [t.split() for t in TEXTS[:40] if t.split()]
    _same(
        ours(words, is_split_into_words=True, **ALL_KEYS),
        theirs(words, is_split_into_words=True, **ALL_KEYS),
        "words",
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_equals_transformers(loaded, family):
    ours, theirs = loaded[family]
    for ids in ours(TEXTS[:60])["input_ids"]:
        for skip in (False, True):
            kwargs = dict(skip_special_tokens=skip, clean_up_tokenization_spaces=False)
            assert ours.decode(ids, **kwargs) == theirs.decode(ids, **kwargs)
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)


# ---------------------------------------------------------------------------------------------------------
# special tokens and the sequence methods of transformers 4
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_special_tokens_equal_transformers(loaded, family):
    ours, theirs = loaded[family]
    for attr in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{attr}_token") == getattr(theirs, f"{attr}_token"), attr
        assert getattr(ours, f"{attr}_token_id") == getattr(theirs, f"{attr}_token_id"), attr
    assert sorted(ours.all_special_ids) == sorted(theirs.all_special_ids)
    assert ours.model_max_length == theirs.model_max_length == MAX_LENGTH[family]
    assert ours.padding_side == theirs.padding_side == "right"
    assert len(ours) == len(theirs) and ours.vocab_size == theirs.vocab_size
    assert ours.get_vocab() == theirs.get_vocab()
    assert {i: str(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: str(t) for i, t in theirs.added_tokens_decoder.items()
    }
    if family in ROBERTA_STYLE and family != "roberta-slow":  # vocab.json says nothing of <mask>'s flags
        mask = next(t for t in ours.added_tokens_decoder.values() if t.content == "<mask>")
        assert mask.lstrip, "<mask> takes the space on its left, as the folder says"


@pytest.mark.parametrize("family", FAMILIES)
def test_sequence_methods_as_transformers_4(loaded, family):
    ours, theirs = loaded[family]
    a, b = [11, 12, 13], [21, 22]
    cls, sep = ours.cls_token_id, ours.sep_token_id
    if family in ROBERTA_STYLE:  # <s> A </s></s> B </s>, no token types
        assert ours.build_inputs_with_special_tokens(a) == [cls, *a, sep]
        assert ours.build_inputs_with_special_tokens(a, b) == [cls, *a, sep, sep, *b, sep]
        assert ours.get_special_tokens_mask(a, b) == [1, 0, 0, 0, 1, 1, 0, 0, 1]
        assert ours.create_token_type_ids_from_sequences(a, b) == [0] * 9
        assert ours.num_special_tokens_to_add(pair=True) == 4
    else:  # [CLS] A [SEP] B [SEP]
        assert ours.build_inputs_with_special_tokens(a, b) == [cls, *a, sep, *b, sep]
        assert ours.get_special_tokens_mask(a, b) == [1, 0, 0, 0, 1, 0, 0, 1]
        assert ours.create_token_type_ids_from_sequences(a, b) == [0] * 5 + [1] * 3
        assert ours.num_special_tokens_to_add(pair=True) == 3
    assert ours.create_token_type_ids_from_sequences(a) == [0] * 5
    assert ours.get_special_tokens_mask(a) == [1, 0, 0, 0, 1]
    assert ours.num_special_tokens_to_add() == theirs.num_special_tokens_to_add() == 2
    assert ours.num_special_tokens_to_add(pair=True) == theirs.num_special_tokens_to_add(pair=True)
    # the methods agree with what a call builds
    ids_a = ours("Hello world", add_special_tokens=False)["input_ids"]
    ids_b = ours("Paris <mask>", add_special_tokens=False)["input_ids"]
    built = ours("Hello world", "Paris <mask>", return_special_tokens_mask=True)
    assert ours.build_inputs_with_special_tokens(ids_a, ids_b) == built["input_ids"]
    assert ours.get_special_tokens_mask(ids_a, ids_b) == built["special_tokens_mask"]
    assert ours.get_special_tokens_mask(built["input_ids"], already_has_special_tokens=True) == [
        1 if i in ours.all_special_ids else 0 for i in built["input_ids"]
    ]
    with pytest.raises(ValueError, match="second sequence"):
        ours.get_special_tokens_mask(a, b, already_has_special_tokens=True)


# ---------------------------------------------------------------------------------------------------------
# saving, pickling, folders with other files
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_save_pretrained_round_trip(loaded, family, tmp_path):
    ours, theirs = loaded[family]
    written = ours.save_pretrained(tmp_path)
    assert all(os.path.isfile(p) for p in written)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == type(ours).__name__
    assert config["model_max_length"] == MAX_LENGTH[family]
    again = fastbert.AutoTokenizer.from_pretrained(tmp_path)
    assert type(again) is type(ours)
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path)
    kwargs = dict(ALL_KEYS, return_token_type_ids=True)
    expected = theirs(TEXTS[:60], **kwargs)
    _same(again(TEXTS[:60], **kwargs), expected, "fastbert reload")
    _same(reloaded(TEXTS[:60], **kwargs), expected, "transformers reload")
    vocab_files = ours.save_vocabulary(str(tmp_path), filename_prefix="v") if family not in UNIGRAM else ()
    names = sorted(os.path.basename(p) for p in vocab_files)
    if family in ("roberta", "roberta-slow"):
        assert names == ["v-merges.txt", "v-vocab.json"]
    elif family in ("distilbert", "electra", "mpnet"):
        assert names == ["v-vocab.txt"]


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "mpnet"])
def test_save_pretrained_legacy_format(loaded, family, tmp_path):
    """transformers 4.57's fast tokenizers: legacy_format=True writes the slow tokenizer's files only (none
    for a Unigram tokenizer loaded without its SentencePiece model), False tokenizer.json only."""
    ours, theirs = loaded[family]
    # as transformers 4.57.1 writes them: added_tokens.json beside the vocabulary when an added token (here
    # <mask>) has an id past the base vocabulary
    slow = {
        "roberta": ["added_tokens.json", "merges.txt", "vocab.json"],
        "xlm-roberta": [],
        "mpnet": ["added_tokens.json", "vocab.txt"],
    }[family]
    config = ["special_tokens_map.json", "tokenizer_config.json"]
    ours.save_pretrained(tmp_path / "slow", legacy_format=True)
    assert sorted(os.listdir(tmp_path / "slow")) == sorted(config + slow)
    ours.save_pretrained(tmp_path / "fast", legacy_format=False)
    assert sorted(os.listdir(tmp_path / "fast")) == sorted(config + ["tokenizer.json"])
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "fast")
    assert reloaded(TEXTS[:20])["input_ids"] == theirs(TEXTS[:20])["input_ids"]
    if slow:
        again = fastbert.AutoTokenizer.from_pretrained(tmp_path / "slow")
        assert again(TEXTS[:20])["input_ids"] == ours(TEXTS[:20])["input_ids"]


def test_modernbert_has_no_legacy_format(tmp_path):
    """transformers 4.57: ModernBERT's tokenizer is a PreTrainedTokenizerFast, without a slow class."""
    folder = modernbert_tokenizer_folder(str(tmp_path / "modernbert"))
    ours = fastbert.AutoTokenizer.from_pretrained(folder)
    with pytest.raises(ValueError, match="does not have a legacy version defined"):
        ours.save_pretrained(tmp_path / "slow", legacy_format=True)
    assert not os.path.exists(tmp_path / "slow")
    ours.save_pretrained(tmp_path / "fast", legacy_format=False)
    assert "tokenizer.json" in os.listdir(tmp_path / "fast")
    # and the default writes no slow files either (vocab.json / merges.txt were written; 4.57 writes none)
    written = ours.save_pretrained(tmp_path / "default")
    files = ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert sorted(os.listdir(tmp_path / "default")) == sorted(os.path.basename(f) for f in written) == files


def test_unigram_save_vocabulary_needs_a_sentencepiece_model(loaded, tmp_path):
    ours, _ = loaded["xlm-roberta"]
    assert not ours.can_save_slow_tokenizer
    with pytest.raises(ValueError, match="slow tokenizer"):
        ours.save_vocabulary(str(tmp_path))


def test_interrupted_sentencepiece_copy_leaves_no_truncated_model(tmp_path, monkeypatch):
    """save_vocabulary copies the SentencePiece model into a folder inside the target and renames it in once
    complete: a copy interrupted half way leaves the model that was there, and no temporary file."""
    import shutil

    model = open(os.path.join(os.path.dirname(__file__), "data", "tiny_unigram.model"), "rb").read()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "sentencepiece.bpe.model").write_bytes(model)
    (tmp_path / "src" / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    ours = fastbert.AutoTokenizer.from_pretrained(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sentencepiece.bpe.model").write_bytes(b"the model saved before")

    def half_then_interrupt(src, dst, **kwargs):
        with open(dst, "wb") as f:
            f.write(open(src, "rb").read()[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfile", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ours.save_vocabulary(str(out))
    assert os.listdir(out) == ["sentencepiece.bpe.model"]
    assert (out / "sentencepiece.bpe.model").read_bytes() == b"the model saved before"
    monkeypatch.undo()
    assert ours.save_vocabulary(str(out)) == (str(out / "sentencepiece.bpe.model"),)
    assert (out / "sentencepiece.bpe.model").read_bytes() == model and os.listdir(out) == [
        "sentencepiece.bpe.model"
    ]


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "mpnet"])
def test_pickle(loaded, family):
    ours, _ = loaded[family]
    again = pickle.loads(pickle.dumps(ours))
    assert again(TEXTS[:20], **ALL_KEYS) == ours(TEXTS[:20], **ALL_KEYS)


def test_vocab_json_and_merges_only(loaded, folders):
    ours, _ = loaded["roberta-slow"]
    assert ours._tokenizer.model.__class__.__name__ == "BPE"
    assert sorted(os.listdir(folders["roberta-slow"])) == ["config.json", "merges.txt", "vocab.json"]
    direct = RobertaTokenizer(
        vocab_file=os.path.join(folders["roberta-slow"], "vocab.json"),
        merges_file=os.path.join(folders["roberta-slow"], "merges.txt"),
    )
    assert direct(TEXTS[:40])["input_ids"] == ours(TEXTS[:40])["input_ids"]


def test_merges_of_tokens_the_vocabulary_lacks_are_a_value_error(folders, tmp_path):
    """A merges.txt that does not belong to the vocab.json beside it (a merge of tokens the vocabulary lacks):
    the tokenizers library raises a bare Exception (transformers passes it on); fastbert says ValueError,
    naming both files."""
    shutil.copy(os.path.join(folders["roberta-slow"], "vocab.json"), tmp_path / "vocab.json")
    shutil.copy(os.path.join(folders["roberta-slow"], "config.json"), tmp_path / "config.json")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nzzqx wvyk\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges\.txt do not make a BPE: .*out of vocabulary"):
        fastbert.AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"vocab= and merges= do not make a BPE"):
        RobertaTokenizer(vocab={"a": 0, "b": 1}, merges=["a c"])


def test_slow_files_with_special_tokens_map_keep_mask_lstrip(folders, tmp_path):
    """A RoBERTa folder of transformers 4's slow tokenizer (vocab.json + merges.txt, no tokenizer.json):
    special_tokens_map.json's ``<mask>`` object says its lstrip, which transformers keeps."""
    for name in ("vocab.json", "merges.txt", "config.json"):
        (tmp_path / name).write_bytes(open(os.path.join(folders["roberta-slow"], name), "rb").read())
    mask = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>"}
    (tmp_path / "special_tokens_map.json").write_text(
        json.dumps({**specials, "pad_token": "<pad>", "cls_token": "<s>", "mask_token": mask})
    )
    ours = fastbert.AutoTokenizer.from_pretrained(tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert ours.tokenize("Paris is the <mask>.") == theirs.tokenize("Paris is the <mask>.")
    _same(ours(TEXTS, **ALL_KEYS), theirs(TEXTS, **ALL_KEYS), "texts")
    assert ours.mask_token == "<mask>" and ours.added_tokens_decoder[ours.mask_token_id].lstrip


@pytest.mark.parametrize("family", ["xlm-roberta", "camembert"])
def test_sentencepiece_model_only_folder(tmp_path, family):
    """A folder with only sentencepiece.bpe.model loads (read without sentencepiece or protobuf) to what
    transformers with sentencepiece gives: tests/data/tiny_unigram_expected.json, written by that (its
    ``made_by``) for tests/data/tiny_unigram.model, a 300-piece Unigram sentencepiece trained with the
    custom normalization rules of TINY_CHARSMAP."""
    data = os.path.join(os.path.dirname(__file__), "data")
    expected = json.loads(open(os.path.join(data, "tiny_unigram_expected.json"), encoding="utf-8").read())
    (tmp_path / "sentencepiece.bpe.model").write_bytes(
        open(os.path.join(data, "tiny_unigram.model"), "rb").read()
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": family}))
    ours = fastbert.AutoTokenizer.from_pretrained(tmp_path)
    assert type(ours) is EXPECTED_CLASS[family]
    want = expected[family]
    assert len(ours) == want["len"]
    assert {k: getattr(ours, f"{k}_token_id") for k in want["special_ids"]} == want["special_ids"]
    got = ours(expected["texts"], return_offsets_mapping=True)
    assert got["input_ids"] == want["texts"]["input_ids"]
    assert _plain(got["offset_mapping"]) == want["texts"]["offset_mapping"]
    first, second = zip(*expected["pairs"])
    got = ours(list(first), list(second), return_offsets_mapping=True)
    assert got["input_ids"] == want["pairs"]["input_ids"]
    assert _plain(got["offset_mapping"]) == want["pairs"]["offset_mapping"]
    # saved, the folder has both files; transformers reads it back (tokenizer.json) to the same ids
    ours.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "sentencepiece.bpe.model").is_file()
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert theirs(expected["texts"])["input_ids"] == want["texts"]["input_ids"]


def _proto_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (for lengths below 128)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_sentencepiece_files_that_cannot_be_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    model = tmp_path / "sentencepiece.bpe.model"
    pieces = b"".join(
        _proto_field(1, _proto_field(1, p.encode()) + b"\x18\x01") for p in ("<unk>", "<s>", "</s>", "a")
    )
    model.write_bytes(pieces + _proto_field(2, b"\x18\x02"))  # trainer_spec.model_type = BPE
    with pytest.raises(ValueError, match=r"SentencePiece BPE model.*pip install transformers sentencepiece"):
        fastbert.AutoTokenizer.from_pretrained(tmp_path)
    model.write_bytes(b"\x0a\xff\xff")  # a length past the end
    with pytest.raises(ValueError, match=r"sentencepiece\.bpe\.model is not a SentencePiece model file"):
        fastbert.AutoTokenizer.from_pretrained(tmp_path)
    model.write_bytes(b"")
    with pytest.raises(ValueError, match="it has no pieces"):
        fastbert.AutoTokenizer.from_pretrained(tmp_path)


def test_folder_without_family_or_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    with pytest.raises(ValueError, match=r"T5Tokenizer.*'t5'.*RobertaTokenizer"):
        fastbert.AutoTokenizer.from_pretrained(tmp_path)


def test_distilbert_folder_without_tokenizer_class(folders, tmp_path):
    """distilbert-base-uncased's tokenizer_config names no class: the model type decides (no token types)."""
    for name in ("tokenizer.json", "config.json"):
        (tmp_path / name).write_bytes(open(os.path.join(folders["distilbert"], name), "rb").read())
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": 512})
    )
    ours = fastbert.AutoTokenizer.from_pretrained(tmp_path)
    assert type(ours) is DistilBertTokenizer
    theirs = transformers.DistilBertTokenizerFast.from_pretrained(tmp_path)
    _same(ours(TEXTS[:40], **ALL_KEYS), theirs(TEXTS[:40], **ALL_KEYS), "distilbert")


def test_model_type_alone_and_tokenizer_json_alone(folders, tmp_path):
    """No tokenizer_config.json: config.json's model_type decides; neither: tokenizer.json's model."""
    with_type = tmp_path / "with_type"
    with_type.mkdir()
    for name in ("tokenizer.json", "config.json"):
        (with_type / name).write_bytes(open(os.path.join(folders["xlm-roberta"], name), "rb").read())
    assert type(fastbert.AutoTokenizer.from_pretrained(with_type)) is XLMRobertaTokenizer
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "tokenizer.json").write_bytes(
        open(os.path.join(folders["roberta"], "tokenizer.json"), "rb").read()
    )
    ours = fastbert.AutoTokenizer.from_pretrained(bare)
    assert type(ours) is RobertaTokenizer
    theirs = transformers.RobertaTokenizerFast.from_pretrained(bare)
    _same(ours(TEXTS[:40], **ALL_KEYS), theirs(TEXTS[:40], **ALL_KEYS), "bare roberta")


def test_wrong_model_for_the_class_is_named(folders):
    with pytest.raises(ValueError, match=r"tokenizer\.json holds a Unigram model.*RoBERTa.*BPE"):
        RobertaTokenizer.from_pretrained(folders["xlm-roberta"])


def test_settings_are_checked(folders):
    with pytest.raises(ValueError, match="add_prefix_space should be true or false"):
        RobertaTokenizer.from_pretrained(folders["roberta"], add_prefix_space="yes")


def test_add_special_tokens_updates_the_template(folders):
    ours = fastbert.AutoTokenizer.from_pretrained(folders["xlm-roberta"])
    theirs = transformers.AutoTokenizer.from_pretrained(folders["xlm-roberta"])
    for tok in (ours, theirs):
        tok.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    text = "an <ent> entity <mask>"
    _same(ours(text, **ALL_KEYS), theirs(text, **ALL_KEYS), "added special token")


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "mpnet", "distilbert"])
def test_pad_and_data_collators(loaded, family):
    """transformers' collators take the family tokenizers (pad with <pad>, no token types, <mask> for MLM)."""
    ours, theirs = loaded[family]
    feats = [dict(ours(t, return_special_tokens_mask=True)) for t in ["hello world", "a b c d e f g", ""]]
    for side in ("right", "left"):
        _same(ours.pad(feats, padding_side=side), theirs.pad(feats, padding_side=side), side)
    out = transformers.DataCollatorWithPadding(tokenizer=ours)(feats)
    assert set(out.keys()) == {"input_ids", "attention_mask", "special_tokens_mask"}
    assert (out["input_ids"][out["attention_mask"] == 0] == ours.pad_token_id).all()
    mlm = transformers.DataCollatorForLanguageModeling(tokenizer=ours, mlm_probability=0.9, seed=0)
    out = mlm(feats)
    masked = out["labels"] != -100
    assert masked.any() and not (masked & (out["attention_mask"] == 0)).any()
    assert (out["input_ids"] == ours.mask_token_id).any()


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_folders_written_by_transformers_4(folders, family, tmp_path):
    """Hub folders of transformers 4 (roberta-base, xlm-roberta-base): tokenizer_config.json without
    added_tokens_decoder (tokenizer.json's added tokens say <mask>'s lstrip), special_tokens_map.json with token
    objects, XLM-R's normalizer a Sequence of Precompiled and a whitespace Replace, a lone Metaspace."""
    data = json.loads(open(os.path.join(folders[family], "tokenizer.json"), encoding="utf-8").read())
    if family == "xlm-roberta":
        replace = {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
        data["normalizer"] = {"type": "Sequence", "normalizers": [data["normalizer"], replace]}
        data["pre_tokenizer"] = {
            "type": "Metaspace",
            "replacement": "▁",
            "prepend_scheme": "always",
            "split": True,
        }
    (tmp_path / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    mask = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>"}
    (tmp_path / "special_tokens_map.json").write_text(
        json.dumps({**specials, "pad_token": "<pad>", "cls_token": "<s>", "mask_token": mask})
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": family}))
    ours = fastbert.AutoTokenizer.from_pretrained(tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert type(ours) is EXPECTED_CLASS[family] and ours.model_max_length == 512
    _same(ours(TEXTS, **ALL_KEYS), theirs(TEXTS, **ALL_KEYS), "texts")
    first, second = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    _same(ours(first, second, **ALL_KEYS), theirs(first, second, **ALL_KEYS), "pairs")
    assert ours("a <mask>")["input_ids"][-2] == ours.mask_token_id


def test_direct_construction(loaded, folders):
    """vocab= / merges= (RoBERTa), vocab= [(piece, score)] (XLM-R), tokenizer_object=: the same ids as the folder."""
    ours, _ = loaded["roberta"]
    vocab, merges = ours._tokenizer.model.__class__.read_file(
        os.path.join(folders["roberta-slow"], "vocab.json"),
        os.path.join(folders["roberta-slow"], "merges.txt"),
    )
    direct = RobertaTokenizer(vocab=vocab, merges=merges, mask_token={"content": "<mask>", "lstrip": True})
    assert direct(TEXTS[:60])["input_ids"] == ours(TEXTS[:60])["input_ids"]
    xlmr, _ = loaded["xlm-roberta"]
    data = json.loads(open(os.path.join(folders["xlm-roberta"], "tokenizer.json"), encoding="utf-8").read())
    pieces = [tuple(p) for p in data["model"]["vocab"]]
    direct = XLMRobertaTokenizer(vocab=pieces, added_tokens_decoder=xlmr.added_tokens_decoder)
    texts = [
        t for t in TEXTS[:60] if not set(t) & set("①②③２０Ｆｅ…ﬁ\u00a0")
    ]  # no Precompiled normalizer here
    assert direct(texts)["input_ids"] == xlmr(texts)["input_ids"]
    again = XLMRobertaTokenizer(tokenizer_object=xlmr.backend_tokenizer)
    assert again(TEXTS)["input_ids"] == xlmr(TEXTS)["input_ids"]
    with pytest.raises(OSError, match="RobertaTokenizer needs a vocabulary"):
        RobertaTokenizer()
    with pytest.raises(OSError, match="XLMRobertaTokenizer needs a vocabulary"):
        XLMRobertaTokenizer()


def test_unigram_vocab_without_the_unk_token_is_a_value_error():
    """vocab= [(piece, score)] without ``<unk>``: text no piece spells was read as piece 0 (``<s>`` here), silently;
    transformers' Unigram raises (its unk_id past the vocabulary)."""
    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("\u2581a", -1.0)]
    for cls in (XLMRobertaTokenizer, CamembertTokenizer):
        with pytest.raises(ValueError, match="the vocabulary has no unk_token '<unk>'"):
            cls(vocab=pieces)
    spelled = XLMRobertaTokenizer(vocab=[*pieces, ("<unk>", 0.0)])
    assert spelled("a b")["input_ids"] == [0, 3, 4, 2]  # b: <unk> (4)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "camembert"])
def test_tokenizer_object_keeps_its_added_tokens(loaded, family):
    """``tokenizer_object=``: the object's added tokens keep their flags, as transformers keeps them (fastbert
    added ``<mask>`` over it without its ``lstrip``: "a <mask>" got a token for the space before the mask)."""
    ours, theirs = loaded[family]
    cls = type(ours)
    texts = ["a <mask>", "Paris is the <mask> of France.", "x  <mask>y", "<mask> b"]
    built = cls(tokenizer_object=theirs.backend_tokenizer)
    expected = getattr(transformers, cls.__name__ + "Fast")(tokenizer_object=theirs.backend_tokenizer)
    _same(built(texts, return_offsets_mapping=True), expected(texts, return_offsets_mapping=True), family)
    _same(built(texts), ours(texts), family)


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "is empty"),
        ("[1, 2]", "should hold a JSON object"),
        ('{"model": {"type": "BPE", "vocab": 3, "merges": []}}', "its model cannot be read"),
        ('{"model": null}', "holds a unknown model"),
    ],
)
def test_bad_tokenizer_json_is_named(tmp_path, content, match):
    (tmp_path / "tokenizer.json").write_text(content)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(ValueError, match=match) as info:
        fastbert.AutoTokenizer.from_pretrained(tmp_path)
    assert "tokenizer.json" in str(info.value)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "mpnet"])
def test_new_cls_and_sep_leave_the_template_as_transformers(folders, family):
    """transformers' fast tokenizers (4.57 and 5) name a new cls/sep (bos/eos) token without putting it in
    the post-processor's template: inputs keep the file's special tokens."""
    ours = fastbert.AutoTokenizer.from_pretrained(folders[family])
    theirs = transformers.AutoTokenizer.from_pretrained(folders[family])
    attrs = ("bos_token", "eos_token") if family == "xlm-roberta" else ("cls_token", "sep_token")
    for tok in (ours, theirs):
        tok.add_special_tokens({attrs[0]: "<cls2>", attrs[1]: "<sep2>"})
    assert ours("hello", "world")["input_ids"] == theirs("hello", "world")["input_ids"]
    assert getattr(ours, attrs[0]) == "<cls2>" and ours.convert_tokens_to_ids("<cls2>") == getattr(
        ours, attrs[0] + "_id"
    )


def test_modernbert_add_prefix_space_reaches_the_file_pipeline(tmp_path):
    """add_prefix_space=True given to from_pretrained sets the file's byte-level pre-tokenizer, as transformers
    4's fast tokenizer applies the keyword (a word-split input then reads as running text); not given, the
    file's own setting is kept and reported. Saved and reloaded, it stays."""
    from tokenizer_family_helpers import modernbert_tokenizer_folder

    folder = modernbert_tokenizer_folder(str(tmp_path / "modernbert"))
    plain = fastbert.AutoTokenizer.from_pretrained(folder)
    spaced = fastbert.AutoTokenizer.from_pretrained(folder, add_prefix_space=True)
    assert plain.add_prefix_space is False and spaced.add_prefix_space is True
    a, b = plain("hello world")["input_ids"], spaced("hello world")["input_ids"]
    assert b != a and spaced.tokenize("hello")[0].startswith("Ġ")  # a leading space now
    assert spaced(["hello", "world"], is_split_into_words=True)["input_ids"] == b
    again = fastbert.AutoTokenizer.from_pretrained(_saved(spaced))
    assert again.add_prefix_space is True and again("hello world")["input_ids"] == b


def _saved(tok) -> str:
    import tempfile

    folder = tempfile.mkdtemp()
    tok.save_pretrained(folder)
    return folder


def test_trust_remote_code_with_an_auto_map_tokenizer_is_refused(folders, tmp_path):
    """tokenizer_config.json's auto_map (or config.json's, when tokenizer_config.json names no class) names the
    folder's own tokenizer code: transformers runs it under trust_remote_code=True, fastbert cannot: refused
    (fastbert loaded its RobertaTokenizer in its place, silently); without the flag both load the built-in."""
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(folders["roberta"], folder)
    (folder / "tokenization_custom.py").write_text(
        "from transformers import RobertaTokenizerFast\n\n\n"
        "class CustomTokenizerFast(RobertaTokenizerFast):\n    pass\n"
    )
    config_path = folder / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text())
    tok_config["auto_map"] = {"AutoTokenizer": [None, "tokenization_custom.CustomTokenizerFast"]}
    config_path.write_text(json.dumps(tok_config))
    theirs = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert type(theirs).__name__ == "CustomTokenizerFast"
    with pytest.raises(ValueError, match="tokenization_custom.CustomTokenizerFast.*trust_remote_code"):
        fastbert.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    for flag in (None, False):
        assert (
            type(fastbert.AutoTokenizer.from_pretrained(folder, trust_remote_code=flag)) is RobertaTokenizer
        )
    # config.json's, read when tokenizer_config.json names no tokenizer_class
    del tok_config["auto_map"], tok_config["tokenizer_class"]
    config_path.write_text(json.dumps(tok_config))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": [None, "tokenization_custom.CustomTokenizerFast"]}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json's auto_map.*CustomTokenizerFast"):
        fastbert.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert type(fastbert.AutoTokenizer.from_pretrained(folder)) is RobertaTokenizer
