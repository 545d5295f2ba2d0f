"""fastbert.BertTokenizerLayer (the TFBertTokenizer row) against the tokenizers it wraps: fastbert's
BertTokenizer and transformers' BertTokenizerFast, over option combinations, TFBertTokenizer's defaults,
the packed output (fastbert.core.padding's contract) and the module's device."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch

import fastbert
from fastbert.core.padding import pack, packing_from_mask
from fastbert.hub import embedded_model_path
from fastbert.tokenization import BertTokenizer, BertTokenizerLayer
from fastbert.tokenization.layer import DEFAULTS

transformers = pytest.importorskip("transformers")

MINILM = embedded_model_path()
LONG = "the quick brown fox jumps over the lazy dog " * 8  # 72 words
TEXTS = ["Hello, world!", "Plants create [MASK] through a process known as photosynthesis.", "", LONG, "a"]
SECOND = ["Paris.", "", "Only the second text is long: " + LONG, "b", "Crème brûlée"]

# the input forms forward takes: a string, a list, a list of pairs, text with text_pair (one and a batch)
INPUTS = {
    "one": (TEXTS[1], None),
    "batch": (TEXTS, None),
    "pair": (TEXTS[3], SECOND[2]),
    "pairs-as-text_pair": (TEXTS, SECOND),
    "pairs-as-tuples": (list(zip(TEXTS, SECOND)), None),
}
# TFBertTokenizer's options (transformers 4, tokenization_bert_tf.py) and values around their edges
OPTIONS = {
    "padding": ["longest", "max_length"],
    "truncation": [True, False, "only_second"],
    "max_length": [None, 16, 9],
    "pad_to_multiple_of": [None, 8],
    "return_token_type_ids": [True, False],
    "return_attention_mask": [True, False],
}


@pytest.fixture(scope="module")
def tokenizers():
    return {
        "fastbert": BertTokenizer.from_pretrained(MINILM),
        "transformers": transformers.BertTokenizerFast.from_pretrained(MINILM),
    }


def _expected(tokenizer, text, text_pair, **options):
    """``tokenizer(text, text_pair, return_tensors="pt", **options)`` as a dict, or the exception's type."""
    try:
        return dict(tokenizer(text, text_pair, return_tensors="pt", **options))
    except Exception as e:  # the layer must raise the same
        return type(e)


def _same(got: dict, expected: dict):
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == torch.long and torch.equal(got[key], value), key


def _check(layer, tokenizer, text, text_pair, **options):
    expected = _expected(tokenizer, text, text_pair, **options)
    if isinstance(expected, type):
        with pytest.raises(expected):
            layer(text, text_pair)
        return expected
    _same(layer(text, text_pair), expected)
    return expected


def test_defaults_are_tfberttokenizers():
    # TFBertTokenizer's documented defaults: padding "longest", truncation True, max_length 512,
    # pad_to_multiple_of None, token type ids and attention mask returned
    assert DEFAULTS == {
        "padding": "longest",
        "truncation": True,
        "max_length": 512,
        "pad_to_multiple_of": None,
        "return_token_type_ids": True,
        "return_attention_mask": True,
        "return_packed": False,
    }


@pytest.mark.parametrize("source", ["fastbert", "transformers"])
def test_defaults_equal_the_tokenizer(tokenizers, source):
    tokenizer = tokenizers[source]
    layer = BertTokenizerLayer.from_tokenizer(tokenizer)
    very_long = " ".join(["word"] * 700)  # past max_length 512: truncated
    for text, text_pair in [*INPUTS.values(), ([very_long, "short"], None)]:
        expected = tokenizer(
            text,
            text_pair,
            padding="longest",
            truncation=True,
            max_length=512,
            return_token_type_ids=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        _same(layer(text, text_pair), dict(expected))
    assert layer([very_long])["input_ids"].shape == (1, 512)


@pytest.mark.parametrize("form", list(INPUTS))
def test_option_combinations_equal_both_tokenizers(tokenizers, form):
    """Every combination of the options, on the layer of each tokenizer: equal to that tokenizer called with
    the same options (or the same exception), and fastbert's layer equal to transformers' tokenizer."""
    text, text_pair = INPUTS[form]
    compared = 0
    for values in itertools.product(*OPTIONS.values()):
        options = dict(zip(OPTIONS, values))
        results = {}
        for source, tokenizer in tokenizers.items():
            layer = BertTokenizerLayer.from_tokenizer(tokenizer, **options)
            results[source] = _check(layer, tokenizer, text, text_pair, **options)
        if not isinstance(results["transformers"], type):
            layer = BertTokenizerLayer.from_tokenizer(tokenizers["fastbert"], **options)
            _same(layer(text, text_pair), results["transformers"])
            compared += 1
    assert compared >= len(list(itertools.product(*OPTIONS.values()))) // 3  # most combinations are valid


def test_call_options_override_the_layers(tokenizers):
    tokenizer = tokenizers["fastbert"]
    layer = BertTokenizerLayer.from_tokenizer(tokenizer, padding="max_length", max_length=32)
    assert layer("hello")["input_ids"].shape == (1, 32)
    overrides = dict(padding="longest", max_length=8, pad_to_multiple_of=4, return_token_type_ids=False)
    expected = tokenizer(TEXTS, truncation=True, return_attention_mask=True, return_tensors="pt", **overrides)
    _same(layer(TEXTS, **overrides), dict(expected))
    assert layer("hello")["input_ids"].shape == (1, 32)  # the layer's own options are unchanged
    assert layer.options["padding"] == "max_length"


def test_call_options_given_as_none_are_the_layers(tokenizers):
    """TFBertTokenizer.call's options default to None, which means the layer's own (its max_length, not the
    tokenizer's model_max_length; its padding, not an error)."""
    tokenizer = tokenizers["fastbert"]
    options = dict(padding="max_length", max_length=12, pad_to_multiple_of=4, return_token_type_ids=False)
    layer = BertTokenizerLayer.from_tokenizer(tokenizer, **options)
    nones = {name: None for name in DEFAULTS if name != "return_packed"}
    _same(layer([LONG, "a"], **nones), dict(layer([LONG, "a"])))
    assert layer([LONG, "a"], **nones)["input_ids"].shape == (2, 12)
    packed = layer([LONG, "a"], return_packed=True, max_length=None)
    assert packed["max_seqlen"] == 12


@pytest.mark.parametrize("source", ["fastbert", "transformers"])
@pytest.mark.parametrize("form", list(INPUTS))
@pytest.mark.parametrize("max_length", [512, 12])
def test_packed_is_the_padded_batch_packed(tokenizers, source, form, max_length):
    """return_packed: the real tokens of the padded output, packed as fastbert.core.padding packs a batch."""
    text, text_pair = INPUTS[form]
    layer = BertTokenizerLayer.from_tokenizer(tokenizers[source], max_length=max_length)
    padded = layer(text, text_pair)
    packed = layer(text, text_pair, return_packed=True)
    packing = packing_from_mask(padded["attention_mask"])
    assert list(packed) == ["input_ids", "token_type_ids", "position_ids", "cu_seqlens", "max_seqlen"]
    assert torch.equal(packed["input_ids"], pack(padded["input_ids"], packing))
    assert torch.equal(packed["token_type_ids"], pack(padded["token_type_ids"], packing))
    batch, seqlen = padded["input_ids"].shape
    positions = torch.arange(seqlen).expand(batch, seqlen)  # the model's positions of a right-padded batch
    assert torch.equal(packed["position_ids"], pack(positions, packing))
    assert packed["cu_seqlens"].dtype == torch.int32 and torch.equal(packed["cu_seqlens"], packing.cu_seqlens)
    assert packed["max_seqlen"] == packing.max_seqlen and isinstance(packed["max_seqlen"], int)
    for key in ("input_ids", "token_type_ids", "position_ids"):
        assert packed[key].dtype == torch.long and packed[key].shape == (packing.total,)
    without = layer(text, text_pair, return_packed=True, return_token_type_ids=False)
    assert "token_type_ids" not in without and torch.equal(without["input_ids"], packed["input_ids"])


def test_packed_empty_batch(tokenizers):
    packed = BertTokenizerLayer.from_tokenizer(tokenizers["fastbert"], return_packed=True)([])
    assert packed["input_ids"].shape == (0,) and packed["cu_seqlens"].tolist() == [0]
    assert packed["max_seqlen"] == 0


def test_outputs_follow_the_module_device(tokenizers):
    layer = BertTokenizerLayer.from_tokenizer(tokenizers["fastbert"])
    assert layer.device == torch.device("cpu") and layer.state_dict() == {}  # nothing to save in weights
    layer.to("meta")  # any device: the outputs go where the module went
    assert layer.device.type == "meta"
    out = layer(TEXTS)
    assert all(v.device.type == "meta" for v in out.values())
    packed = layer(TEXTS, return_packed=True)
    assert all(v.device.type == "meta" for k, v in packed.items() if k != "max_seqlen")
    if torch.cuda.is_available():
        out = layer.to("cuda")(TEXTS)
        assert all(v.is_cuda for v in out.values())


def test_in_front_of_a_model(tokenizers, tmp_path):
    """The layer's output is the model's input: a model in a Sequential-like module runs from strings."""
    torch.manual_seed(0)
    config = fastbert.BertConfig(
        vocab_size=len(tokenizers["fastbert"]),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
    )
    model = fastbert.BertModel(config).eval()
    layer = BertTokenizerLayer.from_tokenizer(tokenizers["fastbert"], max_length=64)
    with torch.no_grad():
        out = model(**layer(TEXTS, SECOND)).last_hidden_state
        expected = model(**tokenizers["fastbert"](TEXTS, SECOND, padding=True, truncation=True,
                                                   max_length=64, return_tensors="pt")).last_hidden_state  # fmt: skip
    assert torch.equal(out, expected)


def test_from_pretrained_splits_layer_and_loading_options(tmp_path):
    layer = BertTokenizerLayer.from_pretrained(MINILM, max_length=10, do_lower_case=False)
    assert layer.options["max_length"] == 10 and layer.tokenizer.do_lower_case is False
    assert layer(LONG)["input_ids"].shape == (1, 10)
    layer.save_pretrained(tmp_path)
    again = BertTokenizerLayer.from_pretrained(tmp_path, max_length=10)
    _same(again(TEXTS), layer(TEXTS))


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(padding=True), ValueError, "padding should be 'longest' or 'max_length'"),
        (dict(padding="do_not_pad"), ValueError, "padding"),
        (dict(truncation="sideways"), ValueError, "truncation"),
        (dict(max_length=0), ValueError, "max_length"),
        (dict(max_length=True), ValueError, "max_length"),
        (dict(pad_to_multiple_of=2.5), ValueError, "pad_to_multiple_of"),
        (dict(return_attention_mask="yes"), TypeError, "return_attention_mask"),
        (dict(return_tensors="np"), TypeError, "no option 'return_tensors'"),
    ],
)
def test_bad_options_name_the_option(tokenizers, options, error, match):
    with pytest.raises(error, match=match):
        BertTokenizerLayer.from_tokenizer(tokenizers["fastbert"], **options)
    with pytest.raises(error, match=match):
        BertTokenizerLayer.from_tokenizer(tokenizers["fastbert"])("hello", **options)
    if "return_tensors" not in options:  # from_pretrained gives the names that are no option to the tokenizer
        with pytest.raises(error, match=match):  # checked before any file is looked for
            BertTokenizerLayer.from_pretrained("/no/such/folder", **options)


def test_not_a_tokenizer():
    with pytest.raises(TypeError, match="needs a tokenizer"):
        BertTokenizerLayer("vocab.txt")


def test_public_names_import_torch_lazily():
    assert fastbert.BertTokenizerLayer is BertTokenizerLayer
    code = "import sys, fastbert.tokenization; fastbert.BertTokenizer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_calls_on_a_transformers_tokenizer_are_serialised(tokenizers):
    """transformers' fast tokenizer sets its backend's padding and truncation per call and encodes with the GIL
    released: threads calling it with different options (a padded and a packed call) got each other's settings
    (a packed batch holding padding, or a ValueError). The layers that wrap one such tokenizer call it one
    thread at a time; this wrapper sees whether two calls overlap (the first waits for a second to come in)."""
    import threading

    class Watched:
        def __init__(self, tokenizer):
            self.tokenizer, self.inside, self.most = tokenizer, 0, 0
            self.guard, self.second = threading.Lock(), threading.Event()

        def __call__(self, *args, **kwargs):
            with self.guard:
                self.inside += 1
                self.most = max(self.most, self.inside)
                first = self.inside == 1
            if first:
                self.second.wait(0.5)  # an unserialised second call comes in meanwhile
            else:
                self.second.set()
            try:
                return self.tokenizer(*args, **kwargs)
            finally:
                with self.guard:
                    self.inside -= 1

    watched = Watched(tokenizers["transformers"])
    padded = BertTokenizerLayer.from_tokenizer(watched, max_length=64)
    packed = BertTokenizerLayer.from_tokenizer(watched, max_length=64, return_packed=True)
    expected = {"padded": padded(TEXTS), "packed": packed(TEXTS)}
    got = {}
    threads = [
        threading.Thread(target=lambda name=name, layer=layer: got.update({name: layer(TEXTS)}))
        for name, layer in (("padded", padded), ("packed", packed))
    ]
    watched.most = 0
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert watched.most == 1
    _same(got["padded"], expected["padded"])
    assert list(got["packed"]) == list(expected["packed"])
    for key, value in expected["packed"].items():
        assert torch.equal(got["packed"][key], value) if key != "max_seqlen" else got["packed"][key] == value
