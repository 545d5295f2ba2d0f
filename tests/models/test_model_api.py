"""transformers' model API on fastbert's classes: resize_token_embeddings (same rows as transformers for the
same seed), base_model, main_input_name, can_generate, init_weights, get_extended_attention_mask, and
``generate`` on BertLMHeadModel (the same tokens as transformers' generate for the same weights and seed)."""

from __future__ import annotations

import copy
import json
import os
import warnings

import pytest
import torch

import fastbert
from fastbert import registry
from tests.model_helpers import (
    CLASSES,
    TINY,
    assert_rule,
    fake_hub_api,
    require_interpreter,
    require_transformers,
    tiny_family_config,
)

transformers = require_transformers()


def _pair(name: str, **overrides):
    cfg = dict(TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = getattr(transformers, name)(transformers.BertConfig(**cfg)).eval()
        fb = getattr(fastbert, name)(fastbert.BertConfig(**cfg)).eval()
    missing, unexpected = fb.load_state_dict(hf.state_dict(), strict=False)
    assert not unexpected
    return hf, fb


# --------------------------------------------------------------------------------------------- resizing
@pytest.mark.parametrize("name", ["BertForMaskedLM", "BertForPreTraining", "BertModel"])
@pytest.mark.parametrize(
    "args",
    [
        dict(new_num_tokens=110),
        dict(new_num_tokens=110, mean_resizing=False),
        dict(new_num_tokens=None, pad_to_multiple_of=16),
        dict(new_num_tokens=90),
    ],
)
def test_resize_token_embeddings_as_transformers(name, args):
    hf, fb = _pair(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(3)
        hf_emb = hf.resize_token_embeddings(**args)
        torch.manual_seed(3)
        fb_emb = fb.resize_token_embeddings(**args)
    assert fb_emb is fb.get_input_embeddings()
    assert torch.equal(fb_emb.weight, hf_emb.weight)  # same rows, same draws
    assert fb.config.vocab_size == hf.config.vocab_size == fb_emb.weight.shape[0]
    head = fb.get_output_embeddings()
    if head is not None:
        assert head.weight is fb_emb.weight  # still tied
        assert head.bias is fb.cls.predictions.bias and head.bias.shape[0] == fb_emb.weight.shape[0]
        assert torch.equal(head.bias, hf.get_output_embeddings().bias)
        assert head.out_features == fb_emb.weight.shape[0]
    # the resized model computes what transformers' resized model computes
    ids = torch.randint(0, fb.config.vocab_size, (2, 6))
    ids[0, -1] = fb.config.vocab_size - 1  # a new (or the last kept) row
    with torch.no_grad():
        ours = fb(ids)[0]
    assert_rule(ours, hf, lambda m: m(ids)[0])


def test_resize_untied_decoder_as_transformers():
    hf, fb = _pair("BertForMaskedLM", tie_word_embeddings=False)
    assert fb.get_output_embeddings().weight is not fb.get_input_embeddings().weight
    torch.manual_seed(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf.resize_token_embeddings(120)
    torch.manual_seed(4)
    fb.resize_token_embeddings(120)
    for ours, theirs in zip(
        (
            fb.get_input_embeddings().weight,
            fb.get_output_embeddings().weight,
            fb.get_output_embeddings().bias,
        ),
        (
            hf.get_input_embeddings().weight,
            hf.get_output_embeddings().weight,
            hf.get_output_embeddings().bias,
        ),
    ):
        assert ours.shape[0] == 120 and torch.equal(ours, theirs)
    assert fb.get_output_embeddings().weight is not fb.get_input_embeddings().weight
    assert fb.cls.predictions.bias is fb.get_output_embeddings().bias


def test_resize_mean_resizing_keeps_the_distribution_and_saves(tmp_path):
    torch.manual_seed(0)
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY))
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(TINY["vocab_size"] + 7)
    new = model.get_input_embeddings().weight.detach()
    assert torch.equal(new[: old.shape[0]], old)
    # added rows sit at the old rows' mean (covariance scaled by 1e-9)
    torch.testing.assert_close(new[old.shape[0] :], old.mean(0).expand(7, -1), rtol=0, atol=1e-4)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == TINY["vocab_size"] + 7
    again = fastbert.BertForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(again.get_input_embeddings().weight, new)


def test_resize_bad_arguments():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY))
    assert model.resize_token_embeddings() is model.get_input_embeddings()
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        model.resize_token_embeddings(100, pad_to_multiple_of=2.5)
    with pytest.raises(ValueError, match="new_num_tokens"):
        model.resize_token_embeddings(0)


# --------------------------------------------------------------------------------------------- small API
@pytest.mark.parametrize("name", CLASSES)
def test_attributes_as_transformers(name):
    hf, fb = _pair(name, is_decoder=name == "BertLMHeadModel")
    assert fb.main_input_name == hf.main_input_name == "input_ids"
    assert fb.base_model_prefix == hf.base_model_prefix == "bert"
    assert type(fb.base_model).__name__ == type(hf.base_model).__name__ == "BertModel"
    assert fb.can_generate() == hf.can_generate() == (name == "BertLMHeadModel")
    assert fb.supports_gradient_checkpointing is True
    assert fb.num_parameters() == hf.num_parameters()
    assert fb.num_parameters(exclude_embeddings=True) == hf.num_parameters(exclude_embeddings=True)


@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM"])
def test_position_embeddings_methods_not_implemented_as_transformers(name):
    """``get_position_embeddings`` / ``resize_position_embeddings``: NotImplementedError, as transformers' BERT
    (code written for DistilBERT catches it; AttributeError before)."""
    hf, fb = _pair(name)
    for model in (hf, fb):
        with pytest.raises(NotImplementedError, match="get_position_embeddings"):
            model.get_position_embeddings()
        with pytest.raises(NotImplementedError, match="resize_position_embeddings"):
            model.resize_position_embeddings(100)
    assert fb.config.max_position_embeddings == TINY["max_position_embeddings"]


def test_name_or_path_as_transformers(tmp_path):
    """``model.name_or_path``: the folder it was loaded from (PEFT and sentence-transformers read it)."""
    hf = transformers.BertModel(transformers.BertConfig(**TINY))
    hf.save_pretrained(tmp_path)
    fb = fastbert.BertModel.from_pretrained(tmp_path)
    assert fb.name_or_path == transformers.BertModel.from_pretrained(tmp_path).name_or_path == str(tmp_path)
    assert fastbert.BertModel(fastbert.BertConfig(**TINY)).name_or_path == hf.name_or_path == ""
    # an instance attribute, as transformers sets it (PEFT reads ``model.__dict__``): the model's own
    hf = transformers.BertModel.from_pretrained(tmp_path)
    for model in (fb, hf):
        assert model.__dict__["name_or_path"] == str(tmp_path)
        model.name_or_path = "elsewhere"
    assert fb.name_or_path == hf.name_or_path == "elsewhere"
    assert fb.config.name_or_path == hf.config.name_or_path == str(tmp_path)


def test_warnings_issued_as_transformers4(tmp_path):
    """transformers 4's ``warnings_issued``, a dict from the start: TRL's trainers set
    ``model.warnings_issued["estimate_tokens"] = True`` before training (AttributeError before), which silences
    ``estimate_tokens``'s warning."""
    hf = transformers.BertModel(transformers.BertConfig(**TINY))
    hf.save_pretrained(tmp_path)
    for model in (
        fastbert.BertModel(fastbert.BertConfig(**TINY)),
        fastbert.BertModel.from_pretrained(tmp_path),
    ):
        assert model.warnings_issued == {}
        model.warnings_issued["estimate_tokens"] = True
        assert model.estimate_tokens({"labels": torch.ones(2, 3)}) == 0
        assert model.warnings_issued == {"estimate_tokens": True}


def test_add_model_tags_as_transformers():
    """``add_model_tags`` / ``model_tags`` (the Trainer's model card reads them): None, then each tag once."""
    hf = transformers.BertModel(transformers.BertConfig(**TINY))
    fb = fastbert.BertModel(fastbert.BertConfig(**TINY))
    other = fastbert.BertModel(fastbert.BertConfig(**TINY))
    for model in (hf, fb):
        assert model.model_tags is None
        model.add_model_tags(["a", "b"])
        model.add_model_tags("a")
        model.add_model_tags("c")
    assert fb.model_tags == hf.model_tags == ["a", "b", "c"]
    assert other.model_tags is None  # per model, not shared through the class


def test_push_to_hub_uploads_a_saved_model(monkeypatch):
    """``model.push_to_hub(repo_id)`` as transformers': the model saved into a temporary folder (gone after),
    the repo made if missing, the folder uploaded in one commit (AttributeError before)."""
    calls = fake_hub_api(monkeypatch)
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY))
    assert model.push_to_hub("me/tiny", private=True, token="t") == "commit"
    assert calls == [
        ("token", "t"),
        ("create", "me/tiny", True, True),
        ("upload", "me/tiny", ["config.json", "model.safetensors"], "Upload model"),
    ]
    upload = calls.uploads[0]
    assert upload["config"]["architectures"] == ["BertForMaskedLM"]
    assert upload["create_pr"] is False and upload["revision"] is None
    assert not os.path.exists(upload["folder_path"])
    calls.clear()
    calls.uploads.clear()
    model.push_to_hub("me/tiny", commit_message="v2", create_pr=True, safe_serialization=False)
    assert calls[2] == ("upload", "me/tiny", ["config.json", "pytorch_model.bin"], "v2")
    assert calls.uploads[0]["create_pr"] is True


def test_save_pretrained_push_to_hub_uploads_the_generation_config_too(monkeypatch, tmp_path):
    """A generative model's ``save_pretrained(push_to_hub=True)`` uploaded the folder before it wrote
    ``generation_config.json``: the hub got config and weights without it (transformers uploads all three)."""
    calls = fake_hub_api(monkeypatch)
    model = fastbert.BertLMHeadModel(fastbert.BertConfig(**TINY, is_decoder=True))
    model.save_pretrained(tmp_path, push_to_hub=True, repo_id="me/tiny", token="t")
    assert calls[2] == ("upload", "me/tiny", ["config.json", "generation_config.json", "model.safetensors"],
                        "Upload model")  # fmt: skip
    calls.clear()
    model.save_pretrained(tmp_path / "other", is_main_process=False, push_to_hub=True, repo_id="me/tiny")
    assert calls == []  # the other processes of a distributed run neither write nor upload


def test_init_weights_initialises_only_new_modules_and_ties(tmp_path):
    """``init_weights()`` as transformers 4.57 and 5: a module already initialised, loaded or converted keeps
    its values (``_is_hf_initialized``); a head swapped in after loading is initialised; the decoder is tied.
    ``apply(_init_weights)`` re-draws everything (it re-drew every loaded weight)."""
    torch.manual_seed(0)
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    model.init_weights()
    assert all(torch.equal(p, torch.full_like(p, 0.5)) for p in model.parameters())  # as transformers
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    model.apply(model._init_weights)  # the explicit re-draw
    ln = model.bert.encoder.layer[0].output.LayerNorm
    assert torch.equal(ln.weight, torch.ones_like(ln.weight)) and torch.equal(
        ln.bias, torch.zeros_like(ln.bias)
    )
    std = model.bert.encoder.layer[0].output.dense.weight.std().item()
    assert 0.01 < std < 0.03  # initializer_range 0.02
    assert torch.equal(model.cls.predictions.bias, torch.zeros_like(model.cls.predictions.bias))
    # loaded (and converted) models: only what is added afterwards is initialised
    model.save_pretrained(tmp_path)
    hf = transformers.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    for loaded in (
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2),
        fastbert.from_transformers(hf),
    ):
        kept = {n: p.detach().clone() for n, p in loaded.named_parameters()}
        loaded.classifier = torch.nn.Linear(TINY["hidden_size"], 5)
        with torch.no_grad():
            loaded.classifier.weight.fill_(0.5)
        loaded.init_weights()
        for name, p in loaded.named_parameters():
            if not name.startswith("classifier."):
                assert torch.equal(p, kept[name]), name
        assert 0.01 < loaded.classifier.weight.std().item() < 0.03
        assert torch.equal(loaded.classifier.bias, torch.zeros_like(loaded.classifier.bias))


def test_tie_weights_after_a_larger_input_table_pads_the_decoder_bias():
    """``set_input_embeddings`` with more rows, then ``tie_weights``: the tied decoder's bias is padded with
    zeros, as transformers' tying does (every forward raised a size mismatch)."""
    torch.manual_seed(0)
    config = fastbert.BertConfig(**TINY)
    fb = fastbert.BertForMaskedLM(config).eval()
    hf = transformers.BertForMaskedLM(transformers.BertConfig(**TINY)).eval()
    hf.load_state_dict(fb.state_dict(), strict=False)
    table = torch.nn.Embedding(TINY["vocab_size"] + 11, TINY["hidden_size"])
    for model in (fb, hf):
        model.set_input_embeddings(copy.deepcopy(table))
        model.tie_weights()
    assert fb.cls.predictions.bias.shape == hf.cls.predictions.bias.shape == (TINY["vocab_size"] + 11,)
    assert torch.equal(fb.cls.predictions.bias[TINY["vocab_size"] :], torch.zeros(11))
    ids = torch.randint(0, TINY["vocab_size"] + 11, (2, 6))
    with torch.no_grad():
        ours = fb(input_ids=ids).logits
    assert ours.shape == (2, 6, TINY["vocab_size"] + 11)
    assert_rule(ours, hf, lambda m: m(input_ids=ids).logits)


def test_get_extended_attention_mask():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    ext = model.get_extended_attention_mask(mask, (2, 3))
    low = torch.finfo(torch.float32).min
    assert ext.shape == (2, 1, 1, 3) and ext.dtype == torch.float32
    assert ext[0, 0, 0].tolist() == [0.0, 0.0, low] and ext[1].abs().sum() == 0
    decoder = fastbert.BertModel(fastbert.BertConfig(**TINY, is_decoder=True))
    ext = decoder.get_extended_attention_mask(mask, (2, 3))
    assert ext.shape == (2, 1, 3, 3)
    assert ext[1, 0].eq(0).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    cached = decoder.get_extended_attention_mask(torch.ones(2, 5, dtype=torch.long), (2, 2))
    assert cached.shape == (2, 1, 2, 5) and cached[0, 0, 0].eq(0).tolist() == [True, True, True, True, False]
    with pytest.raises(ValueError, match="attention_mask"):
        model.get_extended_attention_mask(torch.ones(3), (3,))


# --------------------------------------------------------------------------------------------- generate
GENERATE_CASES = [
    dict(max_new_tokens=6),
    dict(max_length=9),
    dict(max_new_tokens=6, do_sample=True),
    dict(max_new_tokens=6, do_sample=True, temperature=0.6, top_k=7, top_p=0.85),
    dict(max_new_tokens=6, do_sample=True, top_k=0, top_p=0.5, num_return_sequences=3),
    dict(max_new_tokens=8, eos_token_id=[11, 12, 13, 14, 15], pad_token_id=2, do_sample=True, top_k=20),
    dict(max_new_tokens=8, eos_token_id=13),
]


@pytest.fixture(scope="module")
def lm_pair():
    return _pair("BertLMHeadModel", is_decoder=True)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("case", range(len(GENERATE_CASES)))
def test_generate_same_tokens_as_transformers(lm_pair, case, use_cache):
    hf, fb = lm_pair
    args = GENERATE_CASES[case]
    g = torch.Generator().manual_seed(case)
    ids = torch.randint(3, TINY["vocab_size"], (3, 5), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # left padding
    mask[2, :1] = 0
    ids = ids.masked_fill(mask == 0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(11)
        theirs = hf.generate(ids, attention_mask=mask, use_cache=use_cache, **args)
    torch.manual_seed(11)
    ours = fb.generate(ids, attention_mask=mask, use_cache=use_cache, **args)
    assert ours.dtype == torch.long
    assert torch.equal(ours, theirs), (ours, theirs)


def test_generate_cache_equals_no_cache_and_dict_output(lm_pair):
    _, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, 4))
    a = fb.generate(ids, max_new_tokens=5)
    b = fb.generate(ids, max_new_tokens=5, use_cache=False)
    assert torch.equal(a, b) and a.shape == (2, 9)
    out = fb.generate(
        ids, max_new_tokens=5, return_dict_in_generate=True, output_scores=True, output_logits=True
    )
    assert torch.equal(out.sequences, a)
    assert len(out.scores) == len(out.logits) == 5 and out.scores[0].shape == (2, TINY["vocab_size"])
    assert torch.equal(out.scores[0].argmax(-1), a[:, 4])
    assert len(out.past_key_values) == TINY["num_hidden_layers"]


def test_generate_stops_at_eos_and_pads(lm_pair):
    _, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, 4))
    free = fb.generate(ids, max_new_tokens=6)
    eos = int(free[0, 5])  # row 0's second new token
    out = fb.generate(ids, max_new_tokens=6, eos_token_id=eos, pad_token_id=1)
    assert out[0, 5] == eos and (out[0, 6:] == 1).all()


def test_generate_bad_arguments_and_config(lm_pair, tmp_path):
    _, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (1, 3))
    with pytest.raises(ValueError, match="num_return_sequences"):
        fb.generate(ids, num_return_sequences=2)
    with pytest.raises(ValueError, match="temperature"):
        fb.generate(ids, do_sample=True, temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        fb.generate(ids, do_sample=True, top_k=-1)
    with pytest.raises(ValueError, match="max_new_tokens"):
        fb.generate(ids, max_new_tokens=0)
    with pytest.raises(ValueError, match="input_ids"):
        fb.generate(ids.float())
    with pytest.raises(ValueError, match="num_beams=4"):
        fb.generate(ids, num_beams=4)
    fb.generation_config = fastbert.generation.GenerationConfig(max_new_tokens=2, pad_token_id=0)
    try:
        assert fb.generate(ids).shape == (1, 5)  # the model's generation config
        assert fb.generate(ids, max_new_tokens=4).shape == (1, 7)  # the call wins
    finally:
        fb.generation_config = fastbert.generation.GenerationConfig.from_model_config(fb.config)
    fb.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["pad_token_id"] == 0
    model = transformers.BertLMHeadModel.from_pretrained(tmp_path)  # transformers reads it back
    assert model.generation_config.pad_token_id == 0


@pytest.mark.parametrize("model_type", registry.supported_model_types())
def test_cuda_graphs_entry_on_a_cpu_model(model_type):
    """The opt-in itself runs anywhere: on a CPU model it refuses with the reason, and turning it off is a
    no-op that returns the model (the capture is tested on CUDA in test_triton_backend / test_family_gpu)."""
    model = registry.model_class(model_type, "base")(tiny_family_config(model_type)).eval()
    with pytest.raises(ValueError, match="CUDA graphs need the model on a CUDA device"):
        model.cuda_graphs()
    assert model.cuda_graphs(enabled=False) is model


def test_a_loss_over_padded_positions_on_triton_equals_transformers():
    """A QA loss whose positions point at padding runs the padded forward, which must give transformers' values
    at the padded positions: on the triton table the padded kernel's per-row bound (meant for CUDA graphs, which
    zero those positions after) gave their queries zeros, and the logits there and the loss differed."""
    require_interpreter()
    hf, fb = _pair("BertForQuestionAnswering")
    fb.set_attn_implementation("triton")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, TINY["vocab_size"], (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    targets = dict(start_positions=torch.tensor([2, 7]), end_positions=torch.tensor([3, 8]))  # row 1: padding
    with torch.no_grad():
        got = fb(input_ids=ids, attention_mask=mask, **targets)
    for name in ("start_logits", "end_logits", "loss"):  # every position, the padded ones included
        assert_rule(
            got[name], hf, lambda m, name=name: m(input_ids=ids, attention_mask=mask, **targets)[name]
        )
