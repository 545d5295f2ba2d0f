"""Issue 25's model items: nothing loaded as uninitialised memory, config fields refused by name, non-tensor
and small-integer inputs, and an all-padding batch on every backend."""

import json
import math
import warnings

import pytest
import torch
from model_helpers import CLASSES, TINY, in_float64, perturb_norms_and_biases, require_transformers
from safetensors.torch import load_file, save_file

import fastbert
from fastbert.config import ConfigFieldError
from fastbert.core.ops import triton_available
from fastbert.core.tolerances import assert_close

transformers = require_transformers()

BACKENDS = ["eager", "sdpa"] + (["triton"] if triton_available() else [])
STD = 0.5  # initializer_range: far from what garbage memory or zeros would show


def save_checkpoint(tmp_path, name="BertForSequenceClassification", drop=(), **cfg):
    """A transformers checkpoint of ``name`` with the tensors in ``drop`` removed from the file."""
    torch.manual_seed(0)
    config = transformers.BertConfig(**{**TINY, "initializer_range": STD, **cfg})
    model = getattr(transformers, name)(config).eval()
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    state = load_file(path)
    missing = [k for k in state if k in drop]
    assert len(missing) == len(drop), "a name to drop is not in the checkpoint"
    save_file({k: v for k, v in state.items() if k not in drop}, path, metadata={"format": "pt"})
    return model


def assert_initialised_like_transformers(name, t):
    """normal(0, initializer_range) for weights; 0 for biases; LayerNorm 1 / 0."""
    assert torch.isfinite(t).all(), name
    if "LayerNorm.weight" in name:
        assert (t == 1).all(), name
    elif name.endswith("bias"):
        assert (t == 0).all(), name
    else:
        assert abs(t.mean().item()) < 0.15 * STD, name
        assert 0.85 * STD < t.std().item() < 1.15 * STD, (name, t.std().item())


QKV_DROPS = [
    ("bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.key.bias"),
    ("bert.encoder.layer.1.attention.self.value.weight", "bert.encoder.layer.1.attention.self.value.bias"),
    ("bert.encoder.layer.0.attention.self.key.weight", "bert.encoder.layer.1.output.LayerNorm.weight"),
]


@pytest.mark.parametrize("drop", QKV_DROPS, ids=["q+k-bias", "value", "key+layernorm"])
def test_missing_qkv_tensors_are_initialised_as_transformers(drop, tmp_path):
    hf = save_checkpoint(tmp_path, drop=drop)
    model, info = fastbert.BertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set(drop)
    params = dict(model.named_parameters())
    for key in drop:
        assert_initialised_like_transformers(key, params[key])
    # the tensors that were in the file are the file's, even in the same module
    hf_params = dict(hf.named_parameters())
    for key, p in params.items():
        if key not in drop:
            torch.testing.assert_close(p, hf_params[key], rtol=0, atol=0, msg=key)
    ids = torch.randint(1, 99, (2, 7))
    for backend in ("eager", "sdpa"):
        model.set_attn_implementation(backend)
        with torch.no_grad():
            assert torch.isfinite(model(input_ids=ids).logits).all()
    # transformers, on the same folder: its own draws differ, the statistics do not
    ref, ref_info = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert ref_info["missing_keys"] == info["missing_keys"]
    ref_params = dict(ref.named_parameters())
    for key in drop:
        assert_initialised_like_transformers(key, ref_params[key])


def test_more_layers_than_the_checkpoint(tmp_path):
    save_checkpoint(tmp_path, name="BertModel")
    model, info = fastbert.BertModel.from_pretrained(tmp_path, num_hidden_layers=3, output_loading_info=True)
    new = {k for k in info["missing_keys"]}
    assert new and all(k.startswith("encoder.layer.2.") for k in new)
    assert len(new) == 16  # every parameter of the third layer
    for key, p in model.named_parameters():
        if key in new:
            assert_initialised_like_transformers(key, p)
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.randint(1, 99, (2, 5))).last_hidden_state).all()


@pytest.mark.parametrize("name", CLASSES)
def test_every_class_from_an_empty_checkpoint(name, tmp_path):
    """Every tensor missing (a meta-device build underneath): every parameter and buffer initialised."""
    config = fastbert.BertConfig(**TINY, initializer_range=STD, is_decoder=name == "BertLMHeadModel")
    config.save_pretrained(tmp_path)
    save_file({"unrelated": torch.zeros(1)}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model = getattr(fastbert, name).from_pretrained(tmp_path)
    for key, p in model.named_parameters():
        if "position_embeddings" in key or "token_type_embeddings" in key:
            assert torch.isfinite(p).all() and 0.8 * STD < p.std().item() < 1.2 * STD, key
        elif "word_embeddings" in key or "decoder.weight" in key:  # the padding row is zero
            assert torch.isfinite(p).all() and (p[config.pad_token_id] == 0).all(), key
        else:
            assert_initialised_like_transformers(key, p)
    emb = (getattr(model, "bert", None) or model).embeddings
    assert torch.equal(emb.position_ids, torch.arange(TINY["max_position_embeddings"]).expand(1, -1))
    assert not emb.token_type_ids.any()


def test_an_init_that_leaves_a_parameter_unwritten_is_an_error(tmp_path, monkeypatch):
    """The guard: a parameter _init_weights does not write would keep uninitialised memory: refused."""
    save_checkpoint(tmp_path, drop=("classifier.weight",))
    real = fastbert.BertForSequenceClassification._init_weights

    def skips_linear(self, module):
        if not isinstance(module, torch.nn.Linear):
            real(self, module)

    monkeypatch.setattr(fastbert.BertForSequenceClassification, "_init_weights", skips_linear)
    with pytest.raises(RuntimeError, match="classifier.weight"):
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------- config fields
SMALL = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)

# field, bad value: refused when the config is made (its type), as transformers 5's strict configs
TYPE_ERRORS = [
    ("is_decoder", "yes"),
    ("is_decoder", 1),
    ("add_cross_attention", "true"),
    ("use_cache", "no"),
    ("tie_word_embeddings", 0),
    ("output_attentions", "yes"),
    ("output_hidden_states", 1),
    ("return_dict", "x"),
    ("is_encoder_decoder", "no"),
    ("vocab_size", "10"),
    ("hidden_size", 16.0),
    ("num_hidden_layers", None),
    ("num_attention_heads", True),
    ("intermediate_size", 2.5),
    ("max_position_embeddings", "512"),
    ("type_vocab_size", [2]),
    ("chunk_size_feed_forward", "0"),
    ("pad_token_id", "0"),
    ("bos_token_id", 1.5),
    ("eos_token_id", [1, "x"]),
    ("hidden_dropout_prob", "0.1"),
    ("attention_probs_dropout_prob", None),
    ("classifier_dropout", "0.1"),
    ("initializer_range", "0.02"),
    ("layer_norm_eps", "1e-12"),
    ("layer_norm_eps", True),
    ("hidden_act", 3),
    ("position_embedding_type", 1),
    ("problem_type", 2),
    ("architectures", "BertModel"),
    ("num_labels", 2.0),
    ("id2label", ["a", "b"]),
    ("dtype", 3),
]

# field, bad value: refused when a model is built (the moment transformers checks shapes)
VALUE_ERRORS = [
    ("layer_norm_eps", 0.0),
    ("layer_norm_eps", -1e-12),
    ("layer_norm_eps", 1e10),
    ("layer_norm_eps", math.nan),
    ("layer_norm_eps", math.inf),
    ("vocab_size", 0),
    ("hidden_size", -16),
    ("num_hidden_layers", -1),
    ("num_attention_heads", 0),
    ("intermediate_size", -3),
    ("max_position_embeddings", 0),
    ("type_vocab_size", 0),
    ("chunk_size_feed_forward", -1),
    ("hidden_size", 15),  # not a multiple of num_attention_heads
    ("hidden_dropout_prob", 1.5),
    ("attention_probs_dropout_prob", -0.1),
    ("classifier_dropout", 2.0),
    ("hidden_dropout_prob", math.nan),
    ("initializer_range", -0.02),
    ("initializer_range", math.inf),
    ("pad_token_id", 40),
    ("pad_token_id", -1),
    ("bos_token_id", -1),
    ("eos_token_id", [2, -3]),
    ("num_labels", 0),
    ("hidden_act", "bogus"),
    ("attn_implementation", "flash_attention_2"),
]


@pytest.mark.parametrize("field, value", TYPE_ERRORS, ids=[f"{f}={v!r}" for f, v in TYPE_ERRORS])
def test_wrong_types_refused_at_construction_naming_the_field(field, value, tmp_path):
    with pytest.raises(TypeError) as info:
        fastbert.BertConfig(**{**SMALL, field: value})
    assert field in str(info.value)
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    assert isinstance(info.value, (ConfigFieldError, StrictDataclassFieldValidationError))
    # the same from a config.json: the file and the field named
    if field in ("dtype", "num_labels", "id2label"):
        return
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **SMALL, field: value}))
    with pytest.raises(TypeError) as info:
        fastbert.BertModel.from_pretrained(tmp_path)
    assert field in str(info.value) and "config.json" in str(info.value)


@pytest.mark.parametrize("field, value", VALUE_ERRORS, ids=[f"{f}={v!r}" for f, v in VALUE_ERRORS])
def test_values_out_of_range_refused_when_a_model_is_built(field, value, tmp_path):
    config = fastbert.BertConfig(**{**SMALL, field: value})  # made, as transformers makes it
    with pytest.raises(ValueError) as info:
        fastbert.BertForSequenceClassification(config)
    assert field.removeprefix("attn_") in str(info.value)
    if field == "attn_implementation" or not isinstance(value, (int, float)) or math.isfinite(value):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **SMALL, field: value}))
        save_file({"unrelated": torch.zeros(1)}, tmp_path / "model.safetensors", metadata={"format": "pt"})
        with pytest.raises(ValueError) as info:
            fastbert.BertModel.from_pretrained(tmp_path)
        assert field.removeprefix("attn_") in str(info.value)


def test_boundary_values_are_accepted():
    for fields in (
        dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=1.0, classifier_dropout=0),
        dict(num_hidden_layers=0, layer_norm_eps=1e-5, initializer_range=0.0, pad_token_id=None),
        dict(eos_token_id=[1, 2], bos_token_id=0, initializer_range=1),
    ):
        fastbert.BertForSequenceClassification(fastbert.BertConfig(**{**SMALL, **fields}))


def test_is_decoder_yes_no_longer_changes_the_output(tmp_path):
    """The issue's example: ``is_decoder: "yes"`` loaded and turned attention causal."""
    torch.manual_seed(0)
    fastbert.BertModel(fastbert.BertConfig(**SMALL)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "is_decoder": "yes"}))
    with pytest.raises(TypeError, match="is_decoder"):
        fastbert.BertModel.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY)).eval()


@pytest.mark.parametrize(
    "argument", ["input_ids", "attention_mask", "token_type_ids", "position_ids", "labels", "inputs_embeds"]
)
@pytest.mark.parametrize("kind", ["list", "numpy"])
def test_non_tensor_inputs_refused_by_name(classifier, argument, kind):
    ids = torch.tensor([[1, 2, 3, 4]])
    values = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
        "position_ids": torch.arange(4)[None],
        "labels": torch.tensor([1]),
        "inputs_embeds": torch.zeros(1, 4, TINY["hidden_size"]),
    }
    inputs = {"input_ids": ids}
    if argument == "inputs_embeds":
        inputs = {}
    inputs[argument] = values[argument].tolist() if kind == "list" else values[argument].numpy()
    with pytest.raises(TypeError, match=rf"{argument} must be a torch.Tensor, got (list|ndarray)"):
        classifier(**inputs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_small_integer_ids_are_converted(classifier, backend, dtype):
    ids = torch.tensor([[1, 2, 3, 98], [5, 6, 7, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    types = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 0]])
    classifier.set_attn_implementation(backend)
    with torch.no_grad():
        ref = classifier(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        out = classifier(
            input_ids=ids.to(dtype), attention_mask=mask.to(dtype), token_type_ids=types.to(dtype)
        ).logits
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_small_integer_ids_still_range_checked(classifier):
    with pytest.raises(ValueError, match="input_ids holds 200"):
        classifier(input_ids=torch.tensor([[1, 200]], dtype=torch.uint8))
    with pytest.raises(ValueError, match="input_ids holds -1"):
        classifier(input_ids=torch.tensor([[1, -1]], dtype=torch.int8))


# ------------------------------------------------------------------------------------------- all padding
def inputs_for(name, mask_rows):
    ids = torch.randint(1, 99, (len(mask_rows), 6), generator=torch.Generator().manual_seed(7))
    mask = torch.tensor(mask_rows)
    if name == "BertForMultipleChoice":
        return dict(input_ids=ids[:, None].expand(-1, 2, -1), attention_mask=mask[:, None].expand(-1, 2, -1))
    return dict(input_ids=ids, attention_mask=mask)


def all_outputs(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    return [t for t in out.to_tuple() if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", CLASSES)
def test_all_padding_batch_equals_eager_on_every_backend(name):
    torch.manual_seed(0)
    config = fastbert.BertConfig(**TINY, is_decoder=name == "BertLMHeadModel")
    model = perturb_norms_and_biases(getattr(fastbert, name)(config).eval())
    inputs = inputs_for(name, [[0] * 6, [0] * 6])
    model.set_attn_implementation("eager")
    ref = all_outputs(model, inputs)
    assert ref and all(torch.isfinite(t).all() for t in ref)
    for backend in BACKENDS[1:]:
        model.set_attn_implementation(backend)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = all_outputs(model, inputs)
        assert all("masks every token" in str(w.message) for w in caught)
        for a, b in zip(out, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=backend)


def test_all_padding_matches_transformers():
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, attn_implementation="eager")  # transformers' reference path
    hf = transformers.BertForSequenceClassification(config).eval()
    fb = fastbert.from_transformers(hf, attn_implementation="sdpa")
    inputs = inputs_for("BertForSequenceClassification", [[0] * 6])
    with torch.no_grad(), pytest.warns(UserWarning, match="masks every token"):
        got = fb(**inputs).logits
    with torch.no_grad():
        want = hf(**inputs).logits
    assert_close(got, want, in_float64(hf, **inputs).logits, torch.float32, what="all-padding logits")


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_fully_padded_row_beside_real_ones(backend):
    """The case beside: one row without a real token in a batch that has some (packed as usual)."""
    torch.manual_seed(0)
    model = perturb_norms_and_biases(fastbert.BertForTokenClassification(fastbert.BertConfig(**TINY)).eval())
    inputs = inputs_for("BertForTokenClassification", [[1, 1, 1, 0, 0, 0], [0] * 6, [1] * 6])
    model.set_attn_implementation("eager")
    ref = model(**inputs).logits
    model.set_attn_implementation(backend)
    with torch.no_grad():
        out = model(**inputs).logits
    assert torch.isfinite(out).all()
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)
