"""One copy of every weight: query/key/value as transformers' modules over one contiguous storage,
transformers' key names, storage shared with transformers, nothing stale after an edit, and one host
read per forward."""

import pytest
import torch
from model_helpers import (
    CLASSES,
    TINY,
    assert_rule,
    in_float64,
    perturb_norms_and_biases,
    require_transformers,
)

import fastbert
from fastbert.core import padding
from fastbert.core.tolerances import assert_close

transformers = require_transformers()


def hf_of(name, **kw):
    cfg = dict(TINY, is_decoder=name == "BertLMHeadModel", **kw)
    torch.manual_seed(0)
    return perturb_norms_and_biases(getattr(transformers, name)(transformers.BertConfig(**cfg)).eval())


def batch(name):
    g = torch.Generator().manual_seed(2)
    shape = (2, 2, 9) if name == "BertForMultipleChoice" else (2, 9)
    ids = torch.randint(1, 99, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., 5:] = 0
    return dict(input_ids=ids, attention_mask=mask)


def first_tensor(out, mask):
    """The first output, on valid tokens when it is per token."""
    t = next(v for v in out.values() if isinstance(v, torch.Tensor))
    m = mask.reshape(-1, mask.shape[-1]) if t.shape[:2] != mask.shape[:2] else mask
    return t[m.bool()] if tuple(t.shape[: m.dim()]) == tuple(m.shape) else t


@pytest.mark.parametrize("name", CLASSES)
def test_from_transformers_every_class_same_keys_and_storage(name):
    hf = hf_of(name)
    hf_state = {k: v.clone() for k, v in hf.state_dict().items()}
    fb = fastbert.from_transformers(hf)
    assert type(fb).__name__ == name
    ours = fb.state_dict()
    assert set(ours) == set(hf.state_dict()) == set(hf_state)  # key sets, not a zip
    for key, value in hf_state.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0, msg=key)
    # storage: every parameter is transformers' own (query/key/value: one fused storage, both models)
    hf_params = dict(hf.named_parameters())
    assert set(dict(fb.named_parameters())) == set(hf_params)
    for pname, p in fb.named_parameters():
        assert p.data_ptr() == hf_params[pname].data_ptr(), pname
    att = (
        fb.bert.encoder.layer[0].attention.self if name != "BertModel" else fb.encoder.layer[0].attention.self
    )
    hf_att = (hf.bert if name != "BertModel" else hf).encoder.layer[0].attention.self
    with torch.no_grad():  # the fused GEMM reads a view of the storage: no copy
        assert att.fused_qkv()[0].data_ptr() == hf_att.query.weight.data_ptr()
    assert (
        hf_att.value.bias.data_ptr() == hf_att.query.bias.data_ptr() + 2 * 36 * att.query.bias.element_size()
    )
    with torch.no_grad():
        inputs = batch(name)
        m = inputs["attention_mask"]
        assert_rule(first_tensor(fb(**inputs), m), hf, lambda h: first_tensor(h(**inputs), m))
        hf_att.key.weight.mul_(3.0)  # edit transformers': fastbert sees it
        assert att.key.weight.data_ptr() == hf_att.key.weight.data_ptr()
        torch.testing.assert_close(att.key.weight, hf_att.key.weight, rtol=0, atol=0)
        att.query.weight.data[0] = 7.0  # edit fastbert's view: transformers sees it
        assert (hf_att.query.weight[0] == 7.0).all()
        assert_rule(first_tensor(fb(**inputs), m), hf, lambda h: first_tensor(h(**inputs), m))


def test_converting_fastbert_leaves_transformers_intact():
    hf = hf_of("BertForMaskedLM")
    inputs = batch("BertForMaskedLM")
    m = inputs["attention_mask"]
    with torch.no_grad():
        before = first_tensor(hf(**inputs), m)
        fb = fastbert.from_transformers(hf).to(torch.bfloat16)
        assert all(p.dtype == torch.float32 for p in hf.parameters())
        torch.testing.assert_close(first_tensor(hf(**inputs), m), before, rtol=0, atol=0)
        assert fb.dtype == torch.bfloat16 and fb(**inputs).logits.dtype == torch.bfloat16


def test_from_transformers_refuses_other_modules():
    with pytest.raises(ValueError, match="not one of the classes fastbert converts"):
        fastbert.from_transformers(torch.nn.Linear(2, 2))


def test_from_transformers_names_a_config_edited_after_building():
    """num_labels changed on the config of a built classifier: its weights keep their shape, and the error
    says so (it said the classifier's weights were missing)."""
    hf = hf_of("BertForSequenceClassification", num_labels=2)
    hf.config.num_labels = 5
    with pytest.raises(ValueError, match=r"classifier\.weight is \(2, 36\), the config says \(5, 36\)"):
        fastbert.from_transformers(hf)


def test_from_transformers_refuses_heads_or_pad_id_edited_after_building():
    """The heads or RoBERTa's pad_token_id edited on a built model's config keep their shapes: transformers'
    modules keep what they were built with, fastbert (built from the config) computed other numbers silently."""
    small = dict(vocab_size=50, num_hidden_layers=1, intermediate_size=32)
    roberta = transformers.RobertaModel(
        transformers.RobertaConfig(hidden_size=16, num_attention_heads=2, **small)
    )
    roberta.config.pad_token_id = 3
    with pytest.raises(
        ValueError, match="edited after it was built: embeddings.padding_idx is 1, not the config's"
    ):
        fastbert.from_transformers(roberta)
    bert = hf_of("BertModel")
    bert.config.num_attention_heads = bert.config.num_attention_heads * 2
    with pytest.raises(ValueError, match=r"attention\.self\.num_attention_heads is \d+, not the config's"):
        fastbert.from_transformers(bert)
    assert type(fastbert.from_transformers(hf_of("BertModel"))) is fastbert.BertModel


def test_from_transformers_refuses_adapters_and_wrapped_projections_before_sharing():
    """q/k/v modules that are not transformers' nn.Linear (a PEFT LoRA layer, a subclass set by hand) are
    refused with the reason, and the transformers model's parameters are left as they were (the sharing
    replaced query's and key's, then failed with a KeyError on a LoRA value, or ignored a subclass's code)."""
    peft = pytest.importorskip("peft")

    class Doubled(torch.nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    hf = hf_of("BertModel")
    attn = hf.encoder.layer[1].attention.self
    attn.value = Doubled(attn.value.in_features, attn.value.out_features)
    before = [p for p in hf.parameters()]
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.attention\.self\.value is a .*Doubled"):
        fastbert.from_transformers(hf)
    assert all(a is b for a, b in zip(before, hf.parameters()))

    hf = peft.get_peft_model(
        hf_of("BertModel"), peft.LoraConfig(target_modules=["value"], r=2)
    ).base_model.model
    before = [p for p in hf.parameters()]
    with pytest.raises(ValueError, match="PEFT adapters"):
        fastbert.from_transformers(hf)
    assert all(a is b for a, b in zip(before, hf.parameters()))


def test_from_transformers_names_weights_that_are_not_loaded():
    with torch.device("meta"):
        hf = transformers.BertModel(transformers.BertConfig(**TINY))
    with pytest.raises(ValueError, match="not loaded \\(on the meta device"):
        fastbert.from_transformers(hf)


def test_from_transformers_and_accelerate_name_a_compiled_model():
    compiled = torch.compile(hf_of("BertModel"))
    with pytest.raises(ValueError, match=r"torch\.compile'd model: convert the model it compiles"):
        fastbert.from_transformers(compiled)
    with pytest.raises(ValueError, match=r"torch\.compile'd model.*_orig_mod"):
        fastbert.accelerate(compiled, strict=True)


def test_from_transformers_refuses_a_decoder_untied_by_hand():
    """A decoder weight of its own under tie_word_embeddings=True: transformers computes with it, fastbert's
    tie would compute with the word embeddings (different logits, silently); refused, and accelerate warns."""
    hf = hf_of("BertForMaskedLM")
    hf.cls.predictions.decoder.weight = torch.nn.Parameter(
        torch.randn_like(hf.cls.predictions.decoder.weight)
    )
    with pytest.raises(ValueError, match=r"cls\.predictions\.decoder\.weight.*tie_word_embeddings=True"):
        fastbert.from_transformers(hf)
    with pytest.warns(fastbert.accelerate.AccelerateWarning, match="hold tensors of their own"):
        assert fastbert.accelerate(hf) is hf


def test_qkv_are_linear_modules_over_one_storage_and_never_go_stale():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    att = model.encoder.layer[0].attention.self
    names = [n for n, _ in model.named_parameters() if "layer.0.attention.self" in n]
    assert names == [
        f"encoder.layer.0.attention.self.{n}.{kind}"
        for n in ("query", "key", "value")
        for kind in ("weight", "bias")
    ]
    assert type(att.query) is torch.nn.Linear and att.query.weight.shape == (36, 36)
    with torch.no_grad():
        weight, _ = att.fused_qkv()
    assert weight.shape == (108, 36) and weight.data_ptr() == att.query.weight.data_ptr()
    ids = torch.randint(1, 99, (2, 7))
    for backend in ("eager", "sdpa"):
        model.set_attn_implementation(backend)
        with torch.no_grad():
            before = model(input_ids=ids).last_hidden_state
            att.value.weight.data[...] = 0.5  # through .data: no version bump, nothing to re-check
            after = model(input_ids=ids).last_hidden_state
            assert (att.fused_qkv()[0][72:] == 0.5).all()
            assert (after - before).abs().max() > 1e-3, backend
            att.value.weight.data.normal_(0, 0.02)


def test_state_dict_round_trip_through_transformers(tmp_path):
    torch.manual_seed(0)
    fb = perturb_norms_and_biases(fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY)).eval())
    fb.save_pretrained(tmp_path)
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(1, 99, (2, 9))
    with torch.no_grad():
        got, want = fb(input_ids=ids).logits, hf(input_ids=ids).logits
    assert_close(got, want, in_float64(hf, input_ids=ids).logits, torch.float32, what="logits")
    # transformers' state dict -> ours -> back: same keys, same values
    hf_state = hf.state_dict()
    again = fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY)).eval()
    result = again.load_state_dict(hf_state, strict=False)
    assert not result.unexpected_keys and not result.missing_keys
    back = again.state_dict()
    assert set(back) == set(hf_state)
    for k in hf_state:
        torch.testing.assert_close(back[k], hf_state[k], rtol=0, atol=0, msg=k)
    assert list(back)[5:11] == [
        f"bert.encoder.layer.0.attention.self.{n}.{kind}"
        for n in ("query", "key", "value")
        for kind in ("weight", "bias")
    ]


def test_to_dtype_keeps_the_fused_layout():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval().to(torch.float64)
    att = model.encoder.layer[1].attention.self
    assert att.query.weight.dtype == torch.float64
    assert att.key.weight.data_ptr() == att.query.weight.data_ptr() + 36 * 36 * 8
    assert att.value.bias.data_ptr() == att.query.bias.data_ptr() + 2 * 36 * 8


@pytest.mark.parametrize("backend", ["eager", "sdpa", "triton"])
def test_one_host_read_per_forward(backend, monkeypatch):
    """Validation (id ranges) and the mask's lengths come back in one device->host read."""
    if backend == "triton":
        from fastbert.core.ops import triton_available

        if not triton_available():
            pytest.skip("needs triton (CUDA or TRITON_INTERPRET=1)")
    model = fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY)).eval()
    model.set_attn_implementation(backend)
    ids = torch.randint(1, 99, (3, 8))
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    counts = {"reads": 0}
    for method in ("item", "tolist", "cpu", "__bool__", "__int__", "__float__", "numpy"):
        real = getattr(torch.Tensor, method)

        def counted(self, *a, _real=real, **kw):
            counts["reads"] += 1
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, method, counted)
    with torch.no_grad(), padding.count_host_reads() as reads:
        model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    assert reads.count == 1
    assert counts["reads"] == 1, counts


def test_weights_version_marks_moves_not_in_place_edits():
    """What a CUDA graph compares: bumped when the parameters may have moved, not on in-place edits."""
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY)).eval()
    base = model.bert
    v0 = base.weights_version
    with torch.no_grad():
        base.encoder.layer[0].output.dense.bias.add_(1.0)
    assert base.weights_version == v0
    model.to(torch.float64)
    assert base.weights_version > v0
    v1 = base.weights_version
    model.load_state_dict(model.state_dict(), assign=True)
    assert base.weights_version > v1


def test_submodule_attributes_follow_assignment_and_deletion():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    layer = model.encoder.layer[0]
    new = torch.nn.Linear(37, 36)
    layer.output.dense = new
    assert layer.output.dense is new and layer.output._modules["dense"] is new
    assert model.state_dict()["encoder.layer.0.output.dense.weight"].data_ptr() == new.weight.data_ptr()
    model.pooler = None
    assert model.pooler is None and model(input_ids=torch.ones(1, 3, dtype=torch.long)).pooler_output is None
    del layer.intermediate
    assert not hasattr(layer, "intermediate") and "intermediate" not in layer._modules
    clone = __import__("copy").deepcopy(model)
    assert clone.encoder.layer[0].output.dense is clone.encoder.layer[0].output._modules["dense"]
    assert clone.encoder.layer[0].output.dense is not new


@pytest.mark.parametrize("name", ["BertForMaskedLM", "BertForPreTraining"])
def test_checkpoint_with_only_the_decoder_bias_loads_it(name, tmp_path):
    """A checkpoint holding the MLM output bias only as ``cls.predictions.decoder.bias`` (no
    ``cls.predictions.bias``): the tied bias takes its value, nothing is reported missing (transformers 5;
    fastbert zeroed it before, silently)."""
    hf = perturb_norms_and_biases(hf_of(name))
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state["cls.predictions.decoder.bias"] = state.pop("cls.predictions.bias")
    torch.save(state, tmp_path / "pytorch_model.bin")
    hf.config.save_pretrained(tmp_path)
    model, info = getattr(fastbert, name).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() and not info["unexpected_keys"]
    torch.testing.assert_close(model.cls.predictions.bias, hf.cls.predictions.bias, rtol=0, atol=0)
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    assert model.cls.predictions.bias.abs().max() > 0  # perturbed: a zeroed bias would fail
