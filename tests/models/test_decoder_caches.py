"""The decoder side as transformers' own code drives it: a transformers ``Cache`` passed in is updated in
place (the KV-cache guide's loop, ``EncoderDecoderModel.generate``), a StaticCache is read at its filled
length, a past that is all padding keeps its mask, ``generation_config.json`` is read, and transformers'
``EncoderDecoderModel`` holds fastbert models (or is accelerated) with transformers' numbers and tokens."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch

import fastbert
from tests.model_helpers import TINY, assert_rule, require_transformers

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()
cache_utils = pytest.importorskip("transformers.cache_utils")

DECODER = dict(TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, is_decoder=True)


def _pair(name="BertLMHeadModel", **overrides):
    cfg = dict(DECODER, **overrides)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = transformers.BertConfig(**cfg)
        config._attn_implementation = "eager"  # 4.57's sdpa mask overflows in float64 on an all-padding past
        hf = getattr(transformers, name)(config).eval()
    return hf, fastbert.from_transformers(hf, attn_implementation="sdpa").eval()


def _new_cache(cross: bool):
    own = cache_utils.DynamicCache()
    return cache_utils.EncoderDecoderCache(own, cache_utils.DynamicCache()) if cross else own


@pytest.mark.parametrize("cross", [False, True])
def test_a_passed_cache_is_updated_in_place_as_transformers(cross):
    """The KV-cache guide's loop: one Cache object passed on every call. Before, fastbert returned new
    tuples and left the object empty, so each step ran as a fresh prompt (error 0.19 against 1e-7)."""
    hf, fb = _pair(add_cross_attention=cross)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=g)
    extra = {}
    if cross:
        extra["encoder_hidden_states"] = torch.randn(2, 4, TINY["hidden_size"], generator=g)

    def loop(model):
        cache = _new_cache(cross)
        kw = {k: v.to(model.dtype) for k, v in extra.items()}
        logits = [model(ids[:, :3], past_key_values=cache, use_cache=True, **kw).logits]
        for t in range(3, 6):
            out = model(ids[:, t : t + 1], past_key_values=cache, use_cache=True, **kw)
            logits.append(out.logits)
        assert cache.get_seq_length() == 6
        assert out.past_key_values is cache
        return torch.cat(logits, dim=1)

    with torch.no_grad():
        ours = loop(fb)
    assert_rule(ours, hf, loop, what=f"step logits through one in-place cache (cross={cross})")


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("how", ["labels", "use_cache_false"])
def test_a_passed_cache_is_updated_without_use_cache_as_transformers(cross, how):
    """transformers' layers update a Cache passed in whatever use_cache says: a call with labels (which sets
    use_cache=False) or use_cache=False still fills it, and only leaves it out of the output. Before, fastbert
    read the cache but left it as it was, so the next call continued from the stale past (other logits)."""
    hf, fb = _pair(add_cross_attention=cross)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=g)
    kw = {"encoder_hidden_states": torch.randn(2, 4, TINY["hidden_size"], generator=g)} if cross else {}
    first = dict(labels=ids[:, :4]) if how == "labels" else dict(use_cache=False)

    def run(model):
        cache = _new_cache(cross)
        states = {k: v.to(model.dtype) for k, v in kw.items()}
        out = model(ids[:, :4], past_key_values=cache, **first, **states)
        assert out.past_key_values is None
        assert cache.get_seq_length() == 4
        return model(ids[:, 4:], past_key_values=cache, use_cache=True, **states).logits

    with torch.no_grad():
        ours = run(fb)
    assert_rule(ours, hf, run, what=f"logits after a {how} call on a cache (cross={cross})")


def _static_cache(hf, max_cache_len: int):
    """transformers' StaticCache for ``hf``'s config, or a skip where this transformers has none or builds it
    otherwise."""
    if not hasattr(cache_utils, "StaticCache"):
        pytest.skip("this transformers has no StaticCache")
    try:
        return cache_utils.StaticCache(config=hf.config, max_cache_len=max_cache_len)
    except TypeError as error:  # its constructor differs between transformers versions
        pytest.skip(f"StaticCache(config=, max_cache_len=) not accepted: {error}")


def test_a_static_cache_is_read_at_its_filled_length():
    hf, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 5), generator=torch.Generator().manual_seed(2))
    static = _static_cache(hf, 16)
    with torch.no_grad():
        fb(ids[:, :4], past_key_values=static, use_cache=True)
        step = fb(ids[:, 4:], past_key_values=static, use_cache=True).logits
        dynamic = cache_utils.DynamicCache()
        fb(ids[:, :4], past_key_values=dynamic, use_cache=True)
        want = fb(ids[:, 4:], past_key_values=dynamic, use_cache=True).logits
    # bit-identical by construction: the StaticCache read at its filled length holds the bits the DynamicCache
    # holds, and the attention concatenates either with the new keys into one contiguous tensor
    assert torch.equal(step, want)
    assert_rule(step, hf, lambda m: m(ids).logits[:, 4:], what="a step on a StaticCache")


def test_a_past_that_is_all_padding_keeps_the_mask():
    """Every row's real positions equal the new chunk's length: the key mask was dropped (the check compared
    the mask's count with the new length, not past + new) and the padded past keys were attended."""
    hf, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 5), generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 1, 1, 1]])

    def run(model):
        past = model(ids[:, :2], attention_mask=mask[:, :2], use_cache=True).past_key_values
        return model(ids[:, 2:], attention_mask=mask, past_key_values=past, use_cache=True).logits

    with torch.no_grad():
        ours = run(fb)
    assert_rule(ours, hf, run, what="a chunk after an all-padding past")


def test_prepare_inputs_for_generation_reads_a_cache_and_the_mask():
    _, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    first = fb.prepare_inputs_for_generation(
        ids, past_key_values=cache_utils.DynamicCache(), attention_mask=mask
    )
    assert first["input_ids"].shape == (2, 6)
    assert first["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5], [1, 1, 0, 1, 2, 3]]  # transformers 4's rule
    cache = cache_utils.DynamicCache()
    with torch.no_grad():
        fb(ids[:, :5], attention_mask=mask[:, :5], past_key_values=cache, use_cache=True)
    step = fb.prepare_inputs_for_generation(ids, past_key_values=cache, attention_mask=mask)
    assert step["input_ids"].tolist() == ids[:, 5:].tolist()
    assert step["position_ids"].tolist() == [[5], [3]]


def test_a_past_that_does_not_fit_is_refused_naming_it():
    """Too few layers failed deep in the layers with "tuple index out of range", another batch size with a
    torch.cat size error: now a ValueError naming past_key_values."""
    _, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        past = fb(ids[:, :4], use_cache=True).past_key_values
        with pytest.raises(ValueError, match=r"past_key_values holds 1 layers, the model has 2"):
            fb(ids[:, 4:], past_key_values=past[:1], use_cache=True)
        with pytest.raises(ValueError, match=r"past_key_values\[0\] has batch size 1, the input 2"):
            fb(ids[:, 4:], past_key_values=tuple((k[:1], v[:1]) for k, v in past), use_cache=True)
        with pytest.raises(ValueError, match=r"past_key_values\[0\] must be \(key, value\)"):
            fb(ids[:, 4:], past_key_values=tuple((k,) for k, _ in past), use_cache=True)


def test_outputs_have_transformers_5_cache_name():
    _, fb = _pair()
    with torch.no_grad():
        out = fb(torch.tensor([[5, 6, 7]]), use_cache=True)
    assert out.cache is out.past_key_values and "cache" not in out.keys()


# --------------------------------------------------------------------------------------------- generation_config
def test_generation_config_json_is_read_and_kept(tmp_path):
    hf, fb = _pair()
    hf.generation_config = transformers.GenerationConfig(
        max_new_tokens=4, do_sample=True, top_k=5, temperature=0.7, eos_token_id=7, pad_token_id=0
    )
    hf.save_pretrained(tmp_path / "hf")
    loaded = fastbert.BertLMHeadModel.from_pretrained(tmp_path / "hf")
    settings = loaded.generation_config.to_dict()
    assert settings == {
        "max_new_tokens": 4,
        "do_sample": True,
        "top_k": 5,
        "temperature": 0.7,
        "eos_token_id": 7,
        "pad_token_id": 0,
    }
    ids = torch.randint(8, TINY["vocab_size"], (2, 3), generator=torch.Generator().manual_seed(5))
    torch.manual_seed(9)
    want = hf.generate(ids)
    torch.manual_seed(9)
    assert torch.equal(loaded.generate(ids), want)
    loaded.save_pretrained(tmp_path / "fb")  # fastbert's own round trip keeps it
    again = fastbert.BertLMHeadModel.from_pretrained(tmp_path / "fb")
    assert again.generation_config.to_dict() == settings
    written = json.loads((tmp_path / "fb" / "generation_config.json").read_text())
    assert "_from_model_config" not in written  # set by a user, not derived from config.json
    assert transformers.BertLMHeadModel.from_pretrained(tmp_path / "fb").generation_config.max_new_tokens == 4
    # a transformers model's settings go along with from_transformers / accelerate
    assert fastbert.from_transformers(hf).generation_config.to_dict() == settings


def test_generation_config_unsupported_settings_warn_and_transformers_objects_are_taken(tmp_path):
    _, fb = _pair()
    fb.save_pretrained(tmp_path)
    path = tmp_path / "generation_config.json"
    data = json.loads(path.read_text())
    assert data.get("_from_model_config") is True  # derived from config.json, as transformers marks it
    path.write_text(json.dumps({**data, "num_beams": 4, "repetition_penalty": 1.0, "max_new_tokens": 2}))
    with pytest.warns(UserWarning, match=r"num_beams=4") as record:
        loaded = fastbert.BertLMHeadModel.from_pretrained(tmp_path)
    assert not any(
        "repetition_penalty" in str(w.message) for w in record
    )  # transformers' default: no warning
    assert loaded.generation_config.max_new_tokens == 2
    fb.generation_config = transformers.GenerationConfig(max_new_tokens=3)
    assert fb.generation_config.max_new_tokens == 3
    ids = torch.tensor([[5, 6, 7]])
    assert fb.generate(inputs=ids, num_beams=1).shape == (1, 6)  # transformers' argument names and default
    with pytest.raises(ValueError, match="num_beams"):
        fb.generate(ids, num_beams=2)
    # None (transformers' "unset", as a wrapper forwarding every option passes it) or transformers' default
    # asks nothing of a setting generate does not implement; any other value is a ValueError
    plain = fb.generate(ids, max_new_tokens=3)
    unset = dict(
        repetition_penalty=None, no_repeat_ngram_size=None, num_beams=None, min_p=None, typical_p=1.0
    )
    assert torch.equal(fb.generate(ids, max_new_tokens=3, **unset), plain)
    for asked in (dict(repetition_penalty=1.3), dict(num_beams=True), dict(no_repeat_ngram_size=2)):
        with pytest.raises(ValueError, match=next(iter(asked))):
            fb.generate(ids, max_new_tokens=3, **asked)
    with pytest.raises(TypeError, match="GenerationConfig"):
        fb.generation_config = 3


def test_an_unsupported_setting_is_kept_by_save_pretrained(tmp_path):
    """A checkpoint whose generation_config.json asks for beam search, loaded by fastbert and saved again (after
    fine-tuning, say): before, the settings fastbert does not apply were dropped from the written file, so
    transformers then generated from the saved model with greedy search instead of the checkpoint's beams."""
    hf, _ = _pair()
    hf.generation_config = transformers.GenerationConfig(
        num_beams=3, repetition_penalty=1.3, max_new_tokens=4
    )
    hf.save_pretrained(tmp_path / "hf")
    with pytest.warns(UserWarning, match=r"num_beams=3, repetition_penalty=1\.3"):
        loaded = fastbert.BertLMHeadModel.from_pretrained(tmp_path / "hf")
    assert loaded.generation_config.max_new_tokens == 4
    loaded.save_pretrained(tmp_path / "fb")
    written = json.loads((tmp_path / "fb" / "generation_config.json").read_text())
    assert written == {"max_new_tokens": 4, "num_beams": 3, "repetition_penalty": 1.3}
    again = transformers.BertLMHeadModel.from_pretrained(tmp_path / "fb")
    assert (again.generation_config.num_beams, again.generation_config.repetition_penalty) == (3, 1.3)
    # from_transformers keeps them too; one set on the object (with its warning) is written as well
    with pytest.warns(UserWarning, match="num_beams=3"):
        converted = fastbert.from_transformers(hf)
    with pytest.warns(UserWarning, match="no_repeat_ngram_size=2"):
        converted.generation_config.no_repeat_ngram_size = 2
    converted.save_pretrained(tmp_path / "converted")
    written = json.loads((tmp_path / "converted" / "generation_config.json").read_text())
    assert (written["num_beams"], written["no_repeat_ngram_size"]) == (3, 2)


@pytest.mark.parametrize(
    "text, says", [("{not json", "is not valid JSON"), ("[1, 2]", "does not hold a JSON object")]
)
def test_a_generation_config_json_that_is_not_a_json_object_is_refused_naming_it(tmp_path, text, says):
    """A truncated or hand-broken generation_config.json: before, a bare JSONDecodeError ("Expecting property
    name enclosed in double quotes: line 1 column 2") that named no file."""
    _, fb = _pair()
    fb.save_pretrained(tmp_path)
    path = tmp_path / "generation_config.json"
    path.write_text(text)
    with pytest.raises(OSError, match=f"generation_config.json {says}"):
        fastbert.BertLMHeadModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("kind", ["fastbert", "transformers"])
def test_a_passed_generation_config_falls_back_to_the_model_s(kind):
    """transformers fills what a ``generation_config=`` leaves unset from ``model.generation_config``; fastbert
    used the passed one alone, so the model's eos id and max_new_tokens were dropped (20 new tokens, no stop)."""
    hf, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(1))
    eos = int(hf.generate(ids, max_new_tokens=6)[0, 5])  # row 0's second new token
    for model in (hf, fb):
        model.generation_config.eos_token_id, model.generation_config.pad_token_id = eos, 1
        model.generation_config.max_new_tokens = 6
    passed = fastbert.generation.GenerationConfig(do_sample=False)
    if kind == "transformers":
        passed = transformers.GenerationConfig(do_sample=False)
    want = hf.generate(ids, generation_config=transformers.GenerationConfig(do_sample=False))
    ours = fb.generate(ids, generation_config=passed)
    assert want.shape[1] <= 10 and want[0, 5] == eos and (want[0, 6:] == 1).all()  # the model's settings
    assert torch.equal(ours, want)


def test_an_unsupported_setting_set_on_the_generation_config_warns():
    """``model.generation_config.repetition_penalty = 1.5`` (transformers' documented way) was stored as a
    plain attribute and silently not applied: the tokens differed from transformers' without a word."""
    _, fb = _pair()
    with pytest.warns(UserWarning, match=r"generation_config\.repetition_penalty=1\.5"):
        fb.generation_config.repetition_penalty = 1.5
    with pytest.warns(UserWarning, match=r"generation_config\.num_beams=4"):
        fb.generation_config.num_beams = 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fb.generation_config.num_beams = 1  # transformers' default: nothing to say
        fb.generation_config.max_new_tokens = 3  # implemented


# --------------------------------------------------------------------------------------------- EncoderDecoderModel
def _encoder_decoder():
    cfg = dict(TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = transformers.BertModel(transformers.BertConfig(**cfg), add_pooling_layer=False)
        dec = transformers.BertLMHeadModel(
            transformers.BertConfig(**cfg, is_decoder=True, add_cross_attention=True)
        )
        model = transformers.EncoderDecoderModel(encoder=enc, decoder=dec).eval()
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id, config.pad_token_id = 2, 0
    return model


@pytest.mark.parametrize("how", ["held", "accelerated"])
def test_encoder_decoder_model_with_fastbert_models(how):
    """transformers' EncoderDecoderModel assigns its own configs to the models it holds (a fastbert model then
    failed on 'head_dim'), calls them with transformers Caches, and accelerate refused it as a whole."""
    ref = _encoder_decoder()
    if how == "held":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enc = fastbert.from_transformers(copy.deepcopy(ref.encoder))
            dec = fastbert.from_transformers(copy.deepcopy(ref.decoder))
            model = transformers.EncoderDecoderModel(encoder=enc, decoder=dec).eval()
        for config in (model.config, model.generation_config):
            config.decoder_start_token_id, config.pad_token_id = 2, 0
        assert isinstance(dec.config, fastbert.BertConfig) and dec.config.add_cross_attention
        assert dec.bert.config is dec.config  # the submodules follow the new config
    else:
        model = fastbert.accelerate(copy.deepcopy(ref), strict=True)
    assert isinstance(model.encoder, fastbert.BertModel) and isinstance(
        model.decoder, fastbert.BertLMHeadModel
    )
    g = torch.Generator().manual_seed(4)
    src = torch.randint(3, TINY["vocab_size"], (2, 6), generator=g)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    tgt = torch.randint(3, TINY["vocab_size"], (2, 5), generator=g)

    def call(m):
        return m(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits

    with torch.no_grad():
        ours = call(model)
        assert torch.equal(
            model.generate(src, attention_mask=mask, max_new_tokens=5),
            ref.generate(src, attention_mask=mask, max_new_tokens=5),
        )
    assert_rule(ours, ref, call, what=f"EncoderDecoderModel logits ({how})")


@pytest.mark.parametrize("cache", ["legacy", "EncoderDecoderCache"])
def test_one_row_of_encoder_states_for_all_rows_runs_on_a_cache(cache):
    """The forward takes one row of encoder states for all input rows (it broadcasts it): its cached
    cross-attention keys keep that one row, and the next step refused them as "cross_key has shape (1, ...),
    expected (2, ...)"; they are read as the first call computed them now."""
    hf, fb = _pair(add_cross_attention=True)
    g = torch.Generator().manual_seed(6)
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=g)
    one = torch.randn(1, 4, TINY["hidden_size"], generator=g)
    with torch.no_grad():
        if cache == "legacy":
            past = fb(ids[:, :4], encoder_hidden_states=one, use_cache=True).past_key_values
            assert past[0][2].shape[0] == 1
        else:
            past = _new_cache(True)
            fb(ids[:, :4], encoder_hidden_states=one, past_key_values=past, use_cache=True)
        step = fb(ids[:, 4:], encoder_hidden_states=one, past_key_values=past).logits
    assert_rule(
        step,
        hf,
        lambda m: m(ids, encoder_hidden_states=one.expand(2, -1, -1).to(m.dtype)).logits[:, 4:],
        what=f"a step on the cross keys of one row of encoder states ({cache})",
    )


def test_a_decoder_built_without_cross_attention_is_named_in_an_encoder_decoder_model():
    """transformers' EncoderDecoderModel sets add_cross_attention=True on its decoder's config, also for a
    decoder built without those layers (a common slip: from_pretrained(..., is_decoder=True) only): its forward
    then failed with an AttributeError naming BertLayer's crossattention; a ValueError says what to build now,
    as transformers' own decoder does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = fastbert.BertModel(fastbert.BertConfig(**TINY), add_pooling_layer=False)
        dec = fastbert.BertLMHeadModel(fastbert.BertConfig(**TINY, is_decoder=True))
        model = transformers.EncoderDecoderModel(encoder=enc, decoder=dec).eval()
    assert model.decoder.config.add_cross_attention and not hasattr(
        dec.bert.encoder.layer[0], "crossattention"
    )
    src = torch.randint(3, TINY["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad(), pytest.raises(ValueError, match="built without cross-attention layers"):
        model(input_ids=src, decoder_input_ids=src[:, :3])


def test_a_config_of_another_family_is_refused():
    _, fb = _pair()
    with pytest.raises(TypeError, match="model_type 'roberta'"):
        fb.config = transformers.RobertaConfig(**TINY)


def test_outputs_answer_the_cache_key_as_transformers_5():
    """transformers 5 names the field ``cache``: ``out["cache"]``, ``"cache" in out`` and ``out.get("cache")``
    read it there (it maps the old name the other way); fastbert's outputs, whose field keeps transformers 4's
    name, answered only the attribute (a KeyError, False, None)."""
    fb = fastbert.BertLMHeadModel(fastbert.BertConfig(**TINY, is_decoder=True)).eval()
    with torch.no_grad():
        out = fb(torch.tensor([[5, 6, 7]]), use_cache=True)
        bare = fastbert.BertModel(fastbert.BertConfig(**TINY, is_decoder=True)).eval()(
            torch.tensor([[5, 6, 7]]), use_cache=True
        )
    for o in (out, bare):
        assert o["cache"] is o.past_key_values and "cache" in o and o.get("cache") is o.past_key_values
        assert o["past_key_values"] is o.past_key_values and "past_key_values" in o
    assert list(out.keys()) == ["logits", "past_key_values"]  # the tuple order is unchanged
    without = fb(torch.tensor([[5, 6, 7]]), use_cache=False)
    assert "cache" not in without and without.get("cache", 1) == 1
    with pytest.raises(KeyError):
        without["cache"]


@pytest.mark.parametrize("kind", ["DynamicCache", "StaticCache"])
def test_a_cache_built_from_the_model_s_config_as_transformers_documents(kind):
    """``DynamicCache(config=model.config)`` / ``StaticCache(config=model.config, max_cache_len=...)``, as
    transformers 5's cache docstrings write them: transformers 5.25 reads ``config.per_layer_config`` there,
    and a fastbert config failed with an AttributeError naming it before any step ran."""
    if not hasattr(cache_utils, kind):
        pytest.skip(f"this transformers has no {kind}")
    hf, fb = _pair(add_cross_attention=True)
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=g)
    states = torch.randn(2, 4, TINY["hidden_size"], generator=g)

    def make(config):
        own = getattr(cache_utils, kind)(
            config=config, **({"max_cache_len": 8} if kind == "StaticCache" else {})
        )
        return cache_utils.EncoderDecoderCache(own, cache_utils.DynamicCache(config=config))

    def loop(model):
        cache = make(model.config)
        enc = states.to(model.dtype)
        logits = [model(ids[:, :3], encoder_hidden_states=enc, past_key_values=cache, use_cache=True).logits]
        for t in range(3, 6):
            step = model(ids[:, t : t + 1], encoder_hidden_states=enc, past_key_values=cache, use_cache=True)
            logits.append(step.logits)
        assert cache.get_seq_length() == 6
        return torch.cat(logits, dim=1)

    with torch.no_grad():
        ours = loop(fb)
    assert_rule(ours, hf, loop, what=f"step logits through a {kind} built from the model's config")


def test_a_per_layer_config_field_is_kept_as_any_unknown_field():
    config = fastbert.BertConfig(**TINY, per_layer_config={"0": {"hidden_act": "relu"}})
    assert config.to_dict()["per_layer_config"] == {"0": {"hidden_act": "relu"}}
    assert config.per_layer_config == [config] * TINY["num_hidden_layers"]


def test_a_past_of_another_shape_is_refused_naming_it():
    """A cache another model filled (other heads, other head size), or legacy tuples whose keys and values
    disagree: a ValueError naming past_key_values and the shape wanted; it was torch.cat's size error from
    inside the attention."""
    hf, fb = _pair()
    _, other = _pair(hidden_size=24, num_attention_heads=2)
    ids = torch.randint(3, TINY["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(5))
    heads, head_dim = TINY["num_attention_heads"], TINY["hidden_size"] // TINY["num_attention_heads"]
    with torch.no_grad():
        cache = cache_utils.DynamicCache()
        other(ids[:, :3], past_key_values=cache, use_cache=True)
        with pytest.raises(
            ValueError,
            match=rf"past_key_values\[0\] key has shape \(2, 2, 3, 12\), expected \(2, {heads}, 3, {head_dim}\)",
        ):
            fb(ids[:, 3:], past_key_values=cache)
        past = fb(ids[:, :3], use_cache=True).past_key_values
        bad = (past[0], (past[1][0], past[1][1][:, :, :2]))  # layer 1's values one position short
        with pytest.raises(
            ValueError,
            match=r"past_key_values\[1\] value has shape \(2, 3, 2, 12\), expected \(2, 3, 3, 12\)",
        ):
            fb(ids[:, 3:], past_key_values=bad)
        fits = fb(ids[:, 3:], past_key_values=past).logits[:, 0]
    assert_rule(fits, hf, lambda m: m(ids).logits[:, 3], what="the past that fits still runs")


def test_a_past_of_a_dtype_the_attention_cannot_take_is_refused_naming_it():
    """A past wider than the model (float32 keys into a bfloat16 model, float64 into float32) or a
    cross-attention past of another dtype failed in the attention with torch's "Expected query, key, and value
    to have the same dtype", naming nothing (transformers fails alike): a ValueError naming past_key_values. A
    narrower self-attention past is widened by the concatenation and runs, as in transformers."""
    hf, fb = _pair(add_cross_attention=True)
    g = torch.Generator().manual_seed(8)
    ids = torch.randint(3, TINY["vocab_size"], (2, 5), generator=g)
    enc = torch.randn(2, 4, TINY["hidden_size"], generator=g)
    with torch.no_grad():
        past = fb(ids[:, :4], encoder_hidden_states=enc, use_cache=True).past_key_values
        wide = tuple(tuple(t.double() for t in layer) for layer in past)
        with pytest.raises(
            ValueError, match=r"past_key_values\[0\] key is torch.float64, the model torch.float32"
        ):
            fb(ids[:, 4:], encoder_hidden_states=enc, past_key_values=wide)
        cross = tuple((k, v, ck.bfloat16(), cv.bfloat16()) for k, v, ck, cv in past)
        with pytest.raises(ValueError, match=r"past_key_values\[0\] cross_key is torch.bfloat16"):
            fb(ids[:, 4:], encoder_hidden_states=enc, past_key_values=cross)
        narrow = tuple((k.bfloat16(), v.bfloat16(), ck, cv) for k, v, ck, cv in past)
        assert fb(ids[:, 4:], encoder_hidden_states=enc, past_key_values=narrow).logits.dtype == torch.float32
        cache = _new_cache(True)
        fb(ids[:, :4], encoder_hidden_states=enc, past_key_values=cache, use_cache=True)
        fb.bfloat16()
        with pytest.raises(
            ValueError, match=r"past_key_values\[0\] key is torch.float32, the model torch.bfloat16"
        ):
            fb(ids[:, 4:], encoder_hidden_states=enc.bfloat16(), past_key_values=cache)


def test_a_past_on_another_device_is_refused_naming_it():
    """A past on another device than the model (a cache left on the CPU beside a CUDA model) failed in
    torch.cat or the attention with torch's device error, naming no argument: a ValueError naming
    past_key_values and the devices. The meta device stands in for another one on a CPU-only run."""
    _, fb = _pair(add_cross_attention=True)
    g = torch.Generator().manual_seed(9)
    ids = torch.randint(3, TINY["vocab_size"], (2, 5), generator=g)
    enc = torch.randn(2, 4, TINY["hidden_size"], generator=g)
    with torch.no_grad():
        past = fb(ids[:, :4], encoder_hidden_states=enc, use_cache=True).past_key_values
        for moved, what in (
            (tuple(tuple(t.to("meta") for t in layer) for layer in past), "key"),
            (tuple((k, v, ck.to("meta"), cv.to("meta")) for k, v, ck, cv in past), "cross_key"),
        ):
            with pytest.raises(
                ValueError, match=rf"past_key_values\[0\] {what} is on meta, the model on cpu"
            ):
                fb(ids[:, 4:], encoder_hidden_states=enc, past_key_values=moved)


def test_prepare_inputs_for_generation_takes_transformers_5_arguments():
    """transformers 5.25 calls it with ``cache=`` (its name of past_key_values), ``next_sequence_length`` (1 on
    a cache) and ``is_first_iteration``: fastbert passed the last two on to forward (a TypeError) and did not
    read ``cache``, so the step fed the whole sequence again on a filled cache."""
    hf, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(7))
    mask = torch.ones_like(ids)

    def step(model, **how):
        cache = cache_utils.DynamicCache()
        first = model.prepare_inputs_for_generation(
            ids[:, :5], cache=cache, attention_mask=mask[:, :5], use_cache=True, is_first_iteration=True
        )
        model(**first)
        inputs = model.prepare_inputs_for_generation(
            ids, cache=cache, attention_mask=mask, use_cache=True, is_first_iteration=False, **how
        )
        assert inputs["input_ids"].tolist() == ids[:, 5:].tolist()
        return model(**inputs).logits

    with torch.no_grad():
        ours = step(fb, next_sequence_length=1)
        # without next_sequence_length: the tokens the cache has not seen, as with past_key_values
        unseen = step(fb)
    assert_rule(ours, hf, lambda m: step(m, next_sequence_length=1), what="next_sequence_length=1")
    assert_rule(unseen, hf, lambda m: step(m, next_sequence_length=1), what="without next_sequence_length")


def test_past_key_values_and_cache_both_given_are_refused():
    """transformers 5.25 reads ``cache`` and ignores ``past_key_values`` when both are given; fastbert read
    ``past_key_values`` and ignored ``cache``: two different caches are a ValueError, the same one is taken."""
    hf, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 5), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        filled = cache_utils.DynamicCache()
        fb(ids[:, :4], past_key_values=filled, use_cache=True)
        with pytest.raises(ValueError, match="both past_key_values and cache"):
            fb(ids[:, 4:], past_key_values=cache_utils.DynamicCache(), cache=filled)
        step = fb(ids[:, 4:], past_key_values=filled, cache=filled).logits
    assert_rule(step[:, 0], hf, lambda m: m(ids).logits[:, 4], what="the same cache under both names")


def test_a_static_cache_that_is_full_is_refused_naming_it():
    """More positions than a StaticCache's max_cache_len: transformers' StaticLayer fails with an IndexError of
    index_copy_ after the forward; a ValueError naming the cache and its size now, before it, the cache left
    as it was; what fits still runs."""
    hf, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(10))
    static = _static_cache(hf, 4)
    with torch.no_grad():
        fb(ids[:, :3], past_key_values=static, use_cache=True)
        with pytest.raises(
            ValueError, match="StaticCache of 4 positions, which holds 3: the 2 new ones do not fit"
        ):
            fb(ids[:, 3:5], past_key_values=static, use_cache=True)
        assert static.get_seq_length() == 3
        step = fb(ids[:, 3:4], past_key_values=static, use_cache=True).logits
    assert_rule(step[:, 0], hf, lambda m: m(ids[:, :4]).logits[:, 3], what="what fits a full StaticCache")
