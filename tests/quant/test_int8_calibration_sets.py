"""Calibration sets that carry nothing to measure: refused with a clear error before the model changes
(an empty list calibrated on the built-in set; a model with non-finite outputs was refused after its
linears were replaced, as "the calibration set is empty"), and rows with no token are not counted (their
zero embeddings made the cosine 0 and every linear went back to fp32)."""

import numpy as np
import pytest
import torch

import fastbert
from fastbert.quant import QuantizedLinear, quantize
from fastbert.quant.int8 import int8_available

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def _model():
    torch.manual_seed(0)
    return fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()


def _batch(masked_row=False):
    ids = torch.randint(1, 99, (4, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    if masked_row:
        mask[-1] = 0
    return dict(input_ids=ids, attention_mask=mask)


def _untouched(model):
    return getattr(model, "quantization", None) is None and not any(
        isinstance(m, QuantizedLinear) for m in model.modules()
    )


def test_an_empty_calibration_list_is_refused():
    model = _model()
    with pytest.raises(ValueError, match="calibration is empty"):
        quantize(model, "int8", calibration=[])
    assert _untouched(model)


def test_non_finite_outputs_are_refused_before_the_model_changes():
    model = _model()
    with torch.no_grad():
        model.encoder.layer[0].output.dense.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        quantize(model, "int8", calibration=[_batch()])
    assert _untouched(model)


def test_rows_without_tokens_do_not_count():
    model = _model()
    quantize(model, "int8", calibration=[_batch(masked_row=True)])
    assert model.quantization.active and model.quantization.min_cosine > 0.99


def test_tokenized_batches_with_a_tokenizers_extra_keys():
    """A tokenizer's whole output as a calibration batch (a BatchEncoding, with special_tokens_mask and
    length beside the model's inputs): the model's inputs are taken, the rest left (the extra keys reached
    the forward, "unexpected keyword arguments")."""
    from collections import UserDict

    batch = _batch()
    extra = UserDict(  # transformers' BatchEncoding is a UserDict, not a dict
        dict(batch, special_tokens_mask=torch.zeros_like(batch["input_ids"]), length=torch.tensor([16] * 4))
    )
    model = _model()
    quantize(model, "int8", calibration=[extra], min_cosine=0.0, mean_cosine=0.0)
    assert model.quantization.active and isinstance(model.encoder.layer[0].output.dense, QuantizedLinear)


def _tokenizer(texts, **kwargs):
    raise AssertionError("the calibration set reached the tokenizer")


@pytest.mark.parametrize(
    "calibration, error",
    [
        (["a sentence", None], r"calibration\[1\] is NoneType None"),
        ([1, 2], r"calibration\[0\] is int 1"),
        ([b"bytes"], r"calibration\[0\] is bytes b'bytes'"),
        (["a sentence", _batch()], r"calibration\[1\] is dict of \{'input_ids': 'Tensor'"),
        ([_batch(), "a sentence"], r"calibration\[1\] is str 'a sentence'"),
        ([dict(input_ids=[[5, 6]], attention_mask=[[1, 1]])], r"return_tensors='pt'.*'input_ids': 'list'"),
        ([{"attention_mask": torch.ones(1, 2, dtype=torch.long)}], r"with input_ids .*calibration\[0\]"),
    ],
    ids=["none", "ints", "bytes", "batch-among-sentences", "sentence-among-batches", "lists", "no-input-ids"],
)
def test_a_calibration_item_of_another_kind_is_refused_by_its_index(calibration, error, monkeypatch):
    """Calibration takes sentences or tokenized batches (dicts of tensors): an item of another kind is
    refused by its index before any forward; it failed inside the tokenizer or the forward, in words that did
    not name calibration ("text input must be of type `str`...", "give exactly one of input_ids or
    inputs_embeds", "'list' object has no attribute 'to'")."""
    import fastbert.quant as quant

    model = _model()
    monkeypatch.setattr(quant, "_embed", lambda *a: pytest.fail("calibration ran"))
    with pytest.raises(TypeError, match=error):
        quantize(model, "int8", tokenizer=_tokenizer, calibration=calibration)
    assert _untouched(model)


def test_int8_on_a_device_it_has_no_path_for_says_where_it_runs():
    """A model on the meta device (or MPS) is refused with where int8 runs, as from_pretrained refuses it;
    quantize said 'torch._int_mm int8 linears are the CUDA path; this model is on the meta'."""
    with pytest.raises(
        ValueError, match=r"runs on the CPU \(oneDNN\) or on CUDA \(torch._int_mm\), not on the meta"
    ):
        quantize(_model().to("meta"), "int8", calibration=[_batch()])


@pytest.mark.parametrize("option", ["return_dict", "torchscript"])
def test_a_model_that_returns_tuples_quantizes(option):
    """A model whose config says return_dict=False (``from_pretrained(path, return_dict=False)``, or
    torchscript=True) calibrates as any other and still returns its tuples (calibration read
    ``.last_hidden_state`` of a tuple: AttributeError)."""
    model = _model()
    setattr(model.config, option, option == "torchscript")
    assert not model.config.use_return_dict
    quantize(model, "int8", calibration=[_batch()], min_cosine=0.0, mean_cosine=0.0)
    assert model.quantization.active
    with torch.no_grad():
        assert isinstance(model(**_batch()), tuple)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(min_cosine=None), "min_cosine must be a number .*got None"),
        (dict(mean_cosine="0.999"), "mean_cosine must be a number .*got '0.999'"),
        (dict(min_cosine=float("nan")), "min_cosine is NaN"),
        (dict(min_cosine=1.5), r"min_cosine=1.5 is outside \[-1, 1\]"),
        (dict(mean_cosine=-2), r"mean_cosine=-2.0 is outside \[-1, 1\]"),
        (dict(tokenizer="bert-base-uncased"), "tokenizer must be a tokenizer .*got str 'bert-base-uncased'"),
    ],
)
def test_bad_arguments_are_refused_before_calibrating(kwargs, error, monkeypatch):
    """min_cosine / mean_cosine are compared only after calibration has run (seconds on the MiniLM, 43 s on
    BERT-base): one that is not a number failed there ('>=' not supported), and NaN or one above 1 kept every
    linear in fp32 (one below -1 quantized every linear, whatever it cost); a tokenizer that is not one ('str' object is not callable). Refused, by name, before any forward."""
    import fastbert.quant as quant

    model = _model()
    monkeypatch.setattr(quant, "_embed", lambda *a: pytest.fail("calibration ran"))
    with pytest.raises((TypeError, ValueError), match=error):
        quantize(model, "int8", calibration=["a sentence"] if "tokenizer" in kwargs else [_batch()], **kwargs)
    assert getattr(model, "quantization", None) is None
    monkeypatch.undo()  # numbers of numpy and torch are numbers
    quantize(model, "int8", calibration=[_batch()], min_cosine=np.float32(0.0), mean_cosine=torch.tensor(0.0))
    assert model.quantization.active


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["labled"], 2), (["labeled", "extra"], 2)])
def test_the_corpus_tool_writes_nothing_but_what_it_is_asked(tmp_path, monkeypatch, argv, code):
    """tools/make_sentence_corpus.py rewrites the committed corpora (the gates' inputs): --help, a typo or
    an extra argument print its usage and write nothing (it used to take any argument but "labeled" as
    "write all three")."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "tools" / "make_sentence_corpus.py"
    spec = importlib.util.spec_from_file_location("make_sentence_corpus", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr("sys.argv", ["make_sentence_corpus.py", *argv])
    with pytest.raises(SystemExit) as exit_:
        tool.main(argv)
    assert exit_.value.code == code and list(tmp_path.iterdir()) == []
