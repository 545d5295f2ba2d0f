"""Bad tokenizer files and arguments: each raises ValueError / OSError naming the file (or argument) and what
was expected — never the tokenizers library's bare ``Exception``, a raw ``JSONDecodeError`` or
``UnicodeDecodeError``, or a ``TypeError`` from deep inside the constructor.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from fastbert.tokenization import BertTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "."]
NOT_UTF8 = b"[PAD]\n[UNK]\n\xff\xfe caf\xe9\n"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    """A complete tokenizer folder: tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json."""
    folder = tmp_path_factory.mktemp("saved")
    BertTokenizer(vocab={t: i for i, t in enumerate(VOCAB)}, model_max_length=16).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def folder(saved, tmp_path) -> str:
    """A fresh copy of the complete folder, for one test to break."""
    return shutil.copytree(saved, tmp_path / "tok")


@pytest.fixture
def vocab_folder(saved, tmp_path) -> str:
    """A folder with vocab.txt, tokenizer_config.json and special_tokens_map.json, no tokenizer.json."""
    copy = shutil.copytree(saved, tmp_path / "vocab_only")
    os.remove(copy / "tokenizer.json")
    return copy


def _fails(call, exc: type[Exception], *words: str) -> Exception:
    """``call()`` raises exactly ``exc`` (not a subclass such as JSONDecodeError) whose message has ``words``."""
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    return info.value


def _write(path, content) -> None:
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content if isinstance(content, (str, bytes)) else json.dumps(content))


def _edit_json(path, **fields) -> None:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data.update(fields)
    _write(path, data)


def test_the_intact_folders_load(folder, vocab_folder):
    for path in (folder, vocab_folder):
        assert BertTokenizer.from_pretrained(path)("the cats")["input_ids"] == [2, 5, 6, 8, 3]


# ------------------------------------------------------------------------------------------------- tokenizer.json
def _tokenizer_json_text(folder) -> str:
    with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize(
    "content, words",
    [
        (lambda text: text[: len(text) // 2], ["not valid JSON", "line"]),  # truncated
        (lambda text: text.replace('"model"', '"model" "x"', 1), ["not valid JSON"]),  # corrupt
        (lambda text: "", ["empty"]),
        (lambda text: "  \n", ["empty"]),
        (lambda text: b"\xff\xfe\x00{", ["not UTF-8"]),
        (lambda text: "[1, 2, 3]", ["JSON object", "array"]),
        (lambda text: '{"hello": "world"}', ["not a tokenizer.json"]),
        (lambda text: '{"model": 3}', ["not a tokenizer.json"]),
        (lambda text: "[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
        # added_tokens malformed: an id that is not a number
        (
            lambda text: text.replace('"id": 0', '"id": "zero"', 1),
            ["not a tokenizer.json"],
        ),
    ],
    ids=[
        "truncated",
        "corrupt",
        "empty",
        "blank",
        "not-utf8",
        "array",
        "json-not-tokenizer",
        "model-not-object",
        "deeply-nested",
        "added-tokens-bad-id",
    ],
)
def test_bad_tokenizer_json(folder, content, words):
    path = os.path.join(folder, "tokenizer.json")
    _write(path, content(_tokenizer_json_text(folder)))
    _fails(lambda: BertTokenizer.from_pretrained(folder), ValueError, path, *words)
    _fails(lambda: BertTokenizer(tokenizer_file=path), ValueError, path, *words)


def test_tokenizer_json_without_its_unk_token(folder):
    path = os.path.join(folder, "tokenizer.json")
    data = json.loads(_tokenizer_json_text(folder))
    data["model"]["unk_token"] = "[NOT-THERE]"
    _write(path, data)
    _fails(lambda: BertTokenizer.from_pretrained(folder), ValueError, path, "unk_token", "[NOT-THERE]")


def test_tokenizer_json_that_is_a_directory(folder):
    path = os.path.join(folder, "tokenizer.json")
    os.remove(path)
    os.mkdir(path)
    _fails(lambda: BertTokenizer.from_pretrained(folder), OSError, path, "directory")
    _fails(lambda: BertTokenizer(tokenizer_file=path), OSError, path, "directory")


def test_tokenizer_json_as_a_broken_link_or_fifo(folder):
    path = os.path.join(folder, "tokenizer.json")
    os.remove(path)
    os.symlink(os.path.join(folder, "nowhere.json"), path)
    _fails(lambda: BertTokenizer.from_pretrained(folder), OSError, path, "link")
    os.remove(path)
    os.mkfifo(path)  # never opened: reading it would block
    _fails(lambda: BertTokenizer.from_pretrained(folder), OSError, path, "not a regular file")


def test_named_tokenizer_file_that_does_not_exist(tmp_path):
    missing = str(tmp_path / "missing.json")
    _fails(lambda: BertTokenizer(tokenizer_file=missing), OSError, missing, "does not exist")


def test_unreadable_tokenizer_json(folder):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = os.path.join(folder, "tokenizer.json")
    os.chmod(path, 0)
    _fails(lambda: BertTokenizer.from_pretrained(folder), PermissionError, path)


# ------------------------------------------------------------------------------------------------------ vocab.txt
@pytest.mark.parametrize(
    "content, words",
    [
        (NOT_UTF8, ["not UTF-8", "byte"]),
        ("", ["empty"]),
        ("[PAD]\n[CLS]\n[SEP]\nthe\n", ["unk_token", "[UNK]"]),
    ],
    ids=["not-utf8", "empty", "no-unk"],
)
def test_bad_vocab_txt(vocab_folder, content, words):
    path = os.path.join(vocab_folder, "vocab.txt")
    _write(path, content)
    _fails(lambda: BertTokenizer.from_pretrained(vocab_folder), ValueError, path, *words)
    _fails(lambda: BertTokenizer(vocab_file=path), ValueError, path, *words)


def test_vocab_txt_that_is_a_directory(vocab_folder):
    path = os.path.join(vocab_folder, "vocab.txt")
    os.remove(path)
    os.mkdir(path)
    _fails(lambda: BertTokenizer.from_pretrained(vocab_folder), OSError, path, "directory")


def test_vocab_without_the_unk_token_passed_as_argument():
    _fails(lambda: BertTokenizer(vocab={"the": 0, "cat": 1}), ValueError, "vocab", "[UNK]")
    vocab = {t: i for i, t in enumerate(VOCAB)}
    _fails(lambda: BertTokenizer(vocab=vocab, unk_token="<unk>"), ValueError, "vocab", "<unk>")


# ------------------------------------------------------------------------------------------ tokenizer_config.json
@pytest.mark.parametrize(
    "field, value, words",
    [
        ("model_max_length", "big", ["a whole number"]),
        ("model_max_length", -5, ["a whole number"]),
        ("model_max_length", 0, ["a whole number"]),
        ("model_max_length", 12.5, ["a whole number"]),
        ("model_max_length", True, ["a whole number"]),
        ("do_lower_case", "yes", ["true or false"]),
        ("strip_accents", "sometimes", ["true, false or null"]),
        ("padding_side", "middle", ["'right' or 'left'"]),
        ("truncation_side", 1, ["'right' or 'left'"]),
        ("never_split", "abc", ["a list of strings"]),
        ("never_split", ["ok", 3], ["a list of strings"]),
        ("mask_token", {"lstrip": True, "special": True}, ['"content"']),
        ("mask_token", 5, ['"content"']),
        ("additional_special_tokens", "[X]", ["a list of tokens"]),
        ("additional_special_tokens", [{"content": 7}], ["a list of tokens"]),
        ("added_tokens_decoder", ["[PAD]"], ["{id: token}"]),
        ("added_tokens_decoder", {"0": {"lstrip": False}}, ["{id: token}"]),
        ("added_tokens_decoder", {"zero": {"content": "[PAD]"}}, ["{id: token}"]),
        ("added_tokens_decoder", {"10": {"content": "[X]", "special": "yes"}}, ["{id: token}"]),
        ("added_tokens_decoder", {"10": None}, ["{id: token}"]),
    ],
)
def test_wrong_field_in_tokenizer_config(folder, vocab_folder, field, value, words):
    for root in (folder, vocab_folder):
        path = os.path.join(root, "tokenizer_config.json")
        _edit_json(path, **{field: value})
        _fails(lambda r=root: BertTokenizer.from_pretrained(r), ValueError, path, field, *words)


def test_an_argument_overrides_a_bad_field(folder):
    _edit_json(os.path.join(folder, "tokenizer_config.json"), model_max_length="big", padding_side=None)
    tok = BertTokenizer.from_pretrained(folder, model_max_length=8, padding_side="left")
    assert tok.model_max_length == 8 and tok.padding_side == "left"


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"do_lower_case": true,', ["not valid JSON", "line 1"]),
        (b'{"x": "\xe9"}', ["not UTF-8"]),
        ("", ["empty"]),
        ("[]", ["JSON object", "array"]),
        ('"text"', ["JSON object", "string"]),
        ("null", ["JSON object", "null"]),
        ("3", ["JSON object", "number"]),
    ],
    ids=["truncated", "not-utf8", "empty", "array", "string", "null", "number"],
)
@pytest.mark.parametrize("name", ["tokenizer_config.json", "special_tokens_map.json"])
def test_bad_json_file(folder, name, content, words):
    path = os.path.join(folder, name)
    _write(path, content)
    _fails(lambda: BertTokenizer.from_pretrained(folder), ValueError, path, *words)


def test_config_file_that_is_a_directory(folder):
    path = os.path.join(folder, "tokenizer_config.json")
    os.remove(path)
    os.mkdir(path)
    _fails(lambda: BertTokenizer.from_pretrained(folder), OSError, path, "directory")


def test_well_formed_variants_still_load(folder):
    """What real checkpoints write: a float maximum length, AddedToken dicts, extra added tokens, nulls."""
    path = os.path.join(folder, "tokenizer_config.json")
    _edit_json(
        path,
        model_max_length=1e30,
        mask_token={"__type": "AddedToken", "content": "[MASK]", "lstrip": True, "rstrip": False},
        added_tokens_decoder={
            "0": {"content": "[PAD]", "special": True},
            "10": {"content": "newtok", "special": False, "normalized": True},
        },
        strip_accents=None,
        additional_special_tokens=[],
    )
    tok = BertTokenizer.from_pretrained(folder)
    assert tok.model_max_length == int(1e30) and tok.mask_token == "[MASK]"
    assert tok.convert_tokens_to_ids("newtok") == 10


# ---------------------------------------------------------------------------------------- special_tokens_map.json
@pytest.mark.parametrize(
    "field, value",
    [
        ("mask_token", {"lstrip": True}),  # a dict token without "content"
        ("pad_token", {"content": None}),
        ("cls_token", ["[CLS]"]),
        ("additional_special_tokens", [{"single_word": False}]),
        ("additional_special_tokens", {"content": "[X]"}),
    ],
)
def test_wrong_token_in_special_tokens_map(folder, field, value):
    path = os.path.join(folder, "special_tokens_map.json")
    _edit_json(path, **{field: value})
    _fails(lambda: BertTokenizer.from_pretrained(folder), ValueError, path, field)


# -------------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"model_max_length": "big"}, "model_max_length"),
        ({"padding_side": "middle"}, "padding_side"),
        ({"truncation_side": None}, "truncation_side"),
        ({"do_lower_case": "no"}, "do_lower_case"),
        ({"mask_token": {"lstrip": True}}, "mask_token"),
        ({"never_split": "abc"}, "never_split"),
        ({"additional_special_tokens": "[X]"}, "additional_special_tokens"),
    ],
)
def test_wrong_argument(saved, kwargs, name):
    vocab = {t: i for i, t in enumerate(VOCAB)}
    _fails(lambda: BertTokenizer(vocab=vocab, **kwargs), ValueError, name)
    _fails(lambda: BertTokenizer.from_pretrained(saved, **kwargs), ValueError, name)
