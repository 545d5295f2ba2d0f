"""transformers' adapter API (``PeftAdapterMixin``) on fastbert models: ``load_adapter``, ``add_adapter``,
``set_adapter``, ``disable_adapters`` / ``enable_adapters``, ``active_adapters``, ``get_adapter_state_dict``,
``delete_adapter``. The adapters are PEFT's; transformers' reference is its model wrapped by PEFT with the
same adapter (transformers 5.25's own ``load_adapter`` wants a newer peft than the test extra pins)."""

import copy
import subprocess
import sys

import pytest
import torch
from model_helpers import TINY, assert_rule, perturb_norms_and_biases, require_transformers

import fastbert

#: CPU models only (no CUDA path)
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()
peft = pytest.importorskip("peft")  # the test extra

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def pair(tmp_path, name="BertForSequenceClassification"):
    """transformers' model and fastbert's, loaded from the same folder (dropout off)."""
    torch.manual_seed(0)
    hf = getattr(transformers, name)(transformers.BertConfig(**TINY, **NO_DROPOUT))
    perturb_norms_and_biases(hf).eval()
    hf.save_pretrained(tmp_path / "base")
    return hf, getattr(fastbert, name).from_pretrained(tmp_path / "base")


def batch():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 99, (3, 8), generator=g)
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    return dict(input_ids=ids, attention_mask=mask)


def logits(model, inputs=None):
    with torch.no_grad():
        return model(**(inputs or batch())).logits


def lora(**kw):
    """LoRA with a non-zero B: the adapter changes the outputs from the start."""
    return peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False, **kw)


def saved_adapter(hf, folder, **kw):
    """transformers' model wrapped by PEFT with a LoRA adapter (and, for a classifier, its head trained too),
    saved in ``folder`` with PeftModel.save_pretrained: the wrapped model."""
    torch.manual_seed(1)
    wrapped = peft.get_peft_model(hf, lora(target_modules=["query", "value"], **kw))
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "modules_to_save" in name:
                p.add_(0.5)  # the saved head differs from the base model's
    wrapped.save_pretrained(folder)
    return wrapped.eval()


def test_load_adapter_gives_transformers_outputs_with_the_same_adapter(tmp_path):
    hf, fb = pair(tmp_path)
    before = logits(fb)
    theirs = saved_adapter(hf, tmp_path / "adapter", task_type="SEQ_CLS")
    fb.train()
    assert fb.load_adapter(tmp_path / "adapter") is None
    assert fb._hf_peft_config_loaded and list(fb.peft_config) == ["default"]
    assert fb.active_adapters() == ["default"]
    assert not fb.training  # is_trainable=False: frozen, in eval mode, as transformers
    adapter = [p for n, p in fb.named_parameters() if "lora_" in n]
    assert adapter and not any(p.requires_grad for p in adapter)
    ours = logits(fb)
    assert_rule(ours, theirs, logits)
    assert (ours - before).abs().max() > 1e-3, "the adapter changes nothing: the test could not fail"
    # the same adapter again under another name, trainable
    fb.load_adapter(tmp_path / "adapter", adapter_name="again", is_trainable=True)
    assert list(fb.peft_config) == ["default", "again"]
    assert all(p.requires_grad for n, p in fb.named_parameters() if "lora_" in n and ".again." in n)


def test_load_adapter_from_a_state_dict_and_its_errors(tmp_path):
    hf, fb = pair(tmp_path)
    theirs = saved_adapter(hf, tmp_path / "adapter")
    config = peft.PeftConfig.from_pretrained(str(tmp_path / "adapter"))
    state = peft.get_peft_model_state_dict(theirs)  # base_model.model.-prefixed names, as a PeftModel has
    fb.load_adapter(peft_config=config, adapter_state_dict=state)
    assert_rule(logits(fb), theirs, logits)
    assert config.inference_mode is True and config.target_modules == {"query", "value"}  # the caller's kept
    with pytest.raises(ValueError, match="Adapter with name default already exists"):
        fb.load_adapter(tmp_path / "adapter")
    _, other = pair(tmp_path / "other")
    before = logits(other)
    with pytest.raises(ValueError, match="adapter model file not found"):
        other.load_adapter(tmp_path / "base")  # a model folder, not an adapter
    with pytest.raises(ValueError, match="either pass a `peft_model_id`"):
        other.load_adapter()
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['bogus'\\]"):
        other.load_adapter(tmp_path / "adapter", bogus=1)
    (tmp_path / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises((OSError, ValueError)):
        other.load_adapter(tmp_path / "adapter")
    # nothing was injected by the refused calls
    assert not other._hf_peft_config_loaded and "peft_config" not in other.__dict__
    assert torch.equal(logits(other), before)


def test_load_adapter_hotswap_replaces_the_weights_of_a_loaded_lora(tmp_path):
    hf, fb = pair(tmp_path)
    first = saved_adapter(copy.deepcopy(hf), tmp_path / "first")
    torch.manual_seed(2)
    second = peft.get_peft_model(hf, lora(target_modules=["query", "value"])).eval()
    second.save_pretrained(tmp_path / "second")
    with pytest.raises(ValueError, match="there must already be an existing adapter"):
        fb.load_adapter(tmp_path / "second", hotswap=True)
    fb.load_adapter(tmp_path / "first", is_trainable=True)
    assert_rule(logits(fb), first, logits)
    fb.train()
    fb.load_adapter(tmp_path / "second", hotswap=True)
    assert list(fb.peft_config) == ["default"]
    # is_trainable=False (the default): frozen and in eval mode, as transformers' hotswap leaves it
    assert not fb.training and not any(p.requires_grad for n, p in fb.named_parameters() if "lora_" in n)
    ours = logits(fb)
    assert_rule(ours, second, logits)
    assert (ours - logits(first)).abs().max() > 1e-3


def test_add_set_disable_enable_adapters(tmp_path):
    hf, fb = pair(tmp_path)
    before = logits(fb)
    torch.manual_seed(1)
    theirs = peft.get_peft_model(hf, lora(target_modules=["query", "value"])).eval()
    fb.add_adapter(lora(target_modules=["query", "value"]))
    assert fb.active_adapters() == ["default"]
    assert fb.peft_config["default"].base_model_name_or_path == str(tmp_path / "base")
    ours = fb.get_adapter_state_dict()
    reference = peft.get_peft_model_state_dict(theirs)
    assert set(ours) == {k.removeprefix("base_model.model.") for k in reference}
    named = {
        "lora_A.": "lora_A.default.",
        "lora_B.": "lora_B.default.",
    }  # the model's names hold the adapter's
    copied = {}
    for key, value in reference.items():  # transformers' random draws
        key = key.removeprefix("base_model.model.")
        for plain, with_name in named.items():
            key = key.replace(plain, with_name)
        copied[key] = value
    assert not fb.load_state_dict(copied, strict=False).unexpected_keys
    adapted = logits(fb)
    assert_rule(adapted, theirs, logits)
    assert (adapted - before).abs().max() > 1e-3
    fb.disable_adapters()
    torch.testing.assert_close(logits(fb), before)
    fb.enable_adapters()
    torch.testing.assert_close(logits(fb), adapted, rtol=0, atol=0)
    # a second adapter is active once added; set_adapter switches back
    fb.add_adapter(lora(target_modules=["key"]), adapter_name="other")
    assert fb.active_adapters() == ["other"]
    other = logits(fb)
    assert (other - adapted).abs().max() > 1e-3
    fb.set_adapter("default")
    assert fb.active_adapters() == ["default"]
    torch.testing.assert_close(logits(fb), adapted, rtol=0, atol=0)
    with pytest.warns(FutureWarning, match="active_adapter"):
        assert fb.active_adapter() == "default"
    assert set(fb.get_adapter_state_dict("other")) == {
        f"bert.encoder.layer.{i}.attention.self.key.lora_{ab}.weight" for i in range(2) for ab in "AB"
    }
    with pytest.raises(ValueError, match="Adapter with name nope not found"):
        fb.set_adapter("nope")
    with pytest.raises(ValueError, match="could not be found: nope"):
        fb.set_adapter(["default", "nope"])
    with pytest.raises(ValueError, match="Adapter with name other already exists"):
        fb.add_adapter(lora(target_modules=["key"]), adapter_name="other")
    # deleting every adapter leaves the base model
    fb.delete_adapter("other")
    assert list(fb.peft_config) == ["default"]
    with pytest.raises(ValueError, match="not present and cannot be deleted: other"):
        fb.delete_adapter("other")
    fb.delete_adapter(["default"])
    assert not fb._hf_peft_config_loaded and not hasattr(fb, "peft_config")
    torch.testing.assert_close(logits(fb), before)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.set_adapter("default"),
        lambda m: m.disable_adapters(),
        lambda m: m.enable_adapters(),
        lambda m: m.active_adapters(),
        lambda m: m.get_adapter_state_dict(),
        lambda m: m.delete_adapter("default"),
    ],
)
def test_the_adapter_methods_need_an_adapter(call):
    model = fastbert.BertModel(fastbert.BertConfig(**TINY))
    with pytest.raises(ValueError, match="No adapter loaded"):
        call(model)


def test_add_adapter_refuses_what_it_cannot_add(tmp_path):
    model = fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY))
    with pytest.raises(TypeError, match="adapter_config should be an instance of PeftConfig"):
        model.add_adapter({"r": 2})
    prefix = peft.PrefixTuningConfig(num_virtual_tokens=4, task_type="SEQ_CLS")
    with pytest.raises(ValueError, match=r"PrefixTuningConfig.*prompt-learning.*peft.get_peft_model"):
        model.add_adapter(prefix)
    with pytest.raises(ValueError, match=r"PrefixTuningConfig.*prompt-learning"):
        model.load_adapter(peft_config=prefix, adapter_state_dict={})
    assert not model._hf_peft_config_loaded and "peft_config" not in model.__dict__


def test_without_peft_fastbert_runs_and_the_adapter_methods_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ImportError
    model = fastbert.BertModel(fastbert.BertConfig(**TINY))
    for call in (
        lambda: model.add_adapter(None),
        lambda: model.load_adapter("somewhere"),
        lambda: model.active_adapters(),
    ):
        with pytest.raises(ImportError, match="pip install peft"):
            call()
    code = (
        "import sys; sys.modules['peft'] = None\n"
        "import torch, fastbert\n"
        f"m = fastbert.BertModel(fastbert.BertConfig(**{TINY!r}))\n"
        "print(m(input_ids=torch.tensor([[5, 6]])).last_hidden_state.shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([1, 2, 36])" in out.stdout


def test_save_pretrained_with_an_adapter_writes_the_adapter_alone(tmp_path):
    """As transformers: adapter_model.safetensors (keys prefixed as a PeftModel's) and adapter_config.json
    only, which PEFT loads on transformers' model to the same outputs; fastbert wrote config.json and the
    whole model, with the adapters' weights under names neither library loads as an adapter."""
    from safetensors.torch import load_file

    hf, fb = pair(tmp_path)
    theirs = saved_adapter(copy.deepcopy(hf), tmp_path / "adapter", task_type="SEQ_CLS")
    fb.load_adapter(tmp_path / "adapter")
    ours = logits(fb)
    fb.save_pretrained(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    written = load_file(tmp_path / "out" / "adapter_model.safetensors")
    assert written.keys() == load_file(tmp_path / "adapter" / "adapter_model.safetensors").keys()
    assert all(k.startswith("base_model.model.") for k in written)
    reloaded = peft.PeftModel.from_pretrained(hf, tmp_path / "out").eval()
    assert_rule(ours, reloaded, logits)
    torch.testing.assert_close(logits(reloaded), logits(theirs), rtol=0, atol=0)
    _, again = pair(tmp_path / "again")
    again.load_adapter(tmp_path / "out")
    torch.testing.assert_close(logits(again), ours, rtol=0, atol=0)
    # save_peft_format=False: the model's own names; safe_serialization=False: the .bin (transformers 4)
    fb.save_pretrained(tmp_path / "plain", save_peft_format=False, safe_serialization=False)
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == [
        "adapter_config.json",
        "adapter_model.bin",
    ]
    plain = torch.load(tmp_path / "plain" / "adapter_model.bin", weights_only=True)
    assert plain.keys() == {k.removeprefix("base_model.model.") for k in written}
    # two active adapters: refused before anything is written
    two = fastbert.BertModel(fastbert.BertConfig(**TINY))
    two.add_adapter(lora(target_modules=["query"]))
    two.add_adapter(lora(target_modules=["key"]), adapter_name="other")
    two.set_adapter(["default", "other"])
    with pytest.raises(ValueError, match="Multiple active adapters detected"):
        two.save_pretrained(tmp_path / "two")
    assert not any((tmp_path / "two").iterdir())


@pytest.mark.parametrize("auto", [False, True])
def test_from_pretrained_on_an_adapter_folder_loads_the_base_model_and_the_adapter(auto, tmp_path):
    """As transformers: a folder holding adapter_config.json alone loads the base model its config names,
    then the adapter (``adapter_name``); one holding a model and an adapter loads both. fastbert looked for
    config.json (OSError)."""
    import shutil

    hf, _ = pair(tmp_path)
    base = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "base").eval()
    theirs = saved_adapter(base, tmp_path / "adapter", task_type="SEQ_CLS")
    cls = fastbert.AutoModelForSequenceClassification if auto else fastbert.BertForSequenceClassification
    ours = cls.from_pretrained(tmp_path / "adapter", adapter_name="sst2")
    assert type(ours) is fastbert.BertForSequenceClassification
    assert list(ours.peft_config) == ["sst2"] and ours.active_adapters() == ["sst2"]
    assert ours.name_or_path == str(tmp_path / "base")
    adapted = logits(ours)
    assert_rule(adapted, theirs, logits)
    assert (adapted - logits(hf)).abs().max() > 1e-3
    # a model folder with the adapter beside it: both
    shutil.copytree(tmp_path / "base", tmp_path / "both")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(tmp_path / "adapter" / name, tmp_path / "both" / name)
    both = cls.from_pretrained(tmp_path / "both")
    assert list(both.peft_config) == ["default"]
    torch.testing.assert_close(logits(both), adapted, rtol=0, atol=0)


def test_from_pretrained_on_an_adapter_folder_without_peft_or_a_base_model(tmp_path, monkeypatch):
    import json
    import shutil

    hf, fb = pair(tmp_path)
    saved_adapter(hf, tmp_path / "adapter")  # the base model was built, not loaded: no base named
    with pytest.raises(ValueError, match=r"names no base model.*load_adapter"):
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "base")
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    shutil.copytree(tmp_path / "base", tmp_path / "both")
    shutil.copy(tmp_path / "adapter" / "adapter_config.json", tmp_path / "both")
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match="pip install peft"):
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "adapter")
    # a model with an adapter beside it: without peft the model alone, as transformers
    plain = fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "both")
    assert not plain._hf_peft_config_loaded
    torch.testing.assert_close(logits(plain), logits(fb), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, task",
    [
        ("BertForSequenceClassification", "SEQ_CLS"),
        ("BertForTokenClassification", "TOKEN_CLS"),
        ("BertForQuestionAnswering", "QUESTION_ANS"),
    ],
)
def test_prefix_tuning_on_a_head_is_refused_naming_the_reason(name, task, tmp_path):
    """PEFT passes the prefix to a transformers PreTrainedModel it looks for inside the head; fastbert's
    classes are none, and the forward failed with "has no attribute 'transformer_backbone_name'".
    transformers 5's heads are refused too (PEFT's ValueError)."""
    hf, fb = pair(tmp_path, name)
    config = peft.PrefixTuningConfig(num_virtual_tokens=4, task_type=task)
    theirs = peft.get_peft_model(hf, copy.deepcopy(config))
    with pytest.raises(ValueError, match="does not support past key values"):
        theirs(**batch())
    ours = peft.get_peft_model(fb, config)
    refusal = rf"PEFT prefix tuning cannot run on fastbert's {name}.*past_key_values"
    with pytest.raises(AttributeError, match=refusal):
        ours(**batch())
    assert not hasattr(fb, "transformer_backbone_name")


@pytest.mark.parametrize(
    "name, task, config",
    [("BertModel", "FEATURE_EXTRACTION", {}), ("BertLMHeadModel", "CAUSAL_LM", {"is_decoder": True})],
)
def test_prefix_tuning_on_the_encoder_and_the_lm_head_matches_transformers(name, task, config):
    """Where the forward takes past_key_values, PEFT gives the prefix to the model itself: transformers'
    outputs with the same prefix."""
    torch.manual_seed(0)
    hf = getattr(transformers, name)(transformers.BertConfig(**TINY, **NO_DROPOUT, **config))
    perturb_norms_and_biases(hf).eval()
    fb = getattr(fastbert, name)(fastbert.BertConfig(**TINY, **NO_DROPOUT, **config)).eval()
    fb.load_state_dict(hf.state_dict())
    prefix = peft.PrefixTuningConfig(num_virtual_tokens=4, task_type=task)
    theirs, ours = peft.get_peft_model(hf, copy.deepcopy(prefix)), peft.get_peft_model(fb, prefix)
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        for model in (theirs, ours):
            model.prompt_encoder.default.embedding.weight.copy_(
                torch.linspace(-2, 2, 4 * 2 * 2 * 36).view(4, -1)
            )
    inputs = batch()
    mask = inputs["attention_mask"].bool()

    def first(model):
        return model(**inputs)[0][mask]

    with torch.no_grad():
        out = first(ours)
        plain = fb(**inputs)[0][mask]
    assert_rule(out, theirs, first)
    assert (out - plain).abs().max() > 1e-3, "the prefix changes nothing: the test could not fail"


@pytest.mark.parametrize("kind", ["PromptTuningConfig", "PromptEncoderConfig"])
def test_prompt_tuning_and_p_tuning_on_the_classifier_match_transformers(kind, tmp_path):
    """They prepend virtual-token embeddings (``inputs_embeds``): no past_key_values, the head runs as is."""
    hf, fb = pair(tmp_path)
    extra = {"encoder_hidden_size": 8} if kind == "PromptEncoderConfig" else {}
    config = getattr(peft, kind)(num_virtual_tokens=4, task_type="SEQ_CLS", **extra)
    torch.manual_seed(1)
    theirs = peft.get_peft_model(hf, copy.deepcopy(config)).eval()
    ours = peft.get_peft_model(fb, config).eval()
    ours.load_state_dict(theirs.state_dict())
    out = logits(ours)
    assert_rule(out, theirs, logits)
    assert (out - logits(fb)).abs().max() > 1e-4, "the prompt changes nothing: the test could not fail"


#: per family, the attention projection LoRA targets
FAMILY_TARGETS = {
    "bert": ["query"],
    "roberta": ["query"],
    "electra": ["query"],
    "distilbert": ["q_lin"],
    "mpnet": ["q"],
    "modernbert": ["Wqkv"],
}


@pytest.mark.parametrize("model_type", list(FAMILY_TARGETS))
def test_an_adapter_folder_of_every_family_loads_to_transformers_outputs(model_type, tmp_path):
    """A sequence-classification LoRA adapter (its head trained too) saved by PEFT on transformers' model of
    each family: AutoModelForSequenceClassification.from_pretrained on the adapter folder gives the outputs
    of transformers' model with the adapter."""
    from model_helpers import tiny_family_config

    torch.manual_seed(0)
    config = tiny_family_config(model_type)
    perturb_norms_and_biases(fastbert.AutoModelForSequenceClassification.from_config(config)).save_pretrained(
        tmp_path / "base"
    )
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "base").eval()
    plain = logits(fastbert.AutoModelForSequenceClassification.from_pretrained(tmp_path / "base"))
    torch.manual_seed(1)
    theirs = peft.get_peft_model(hf, lora(target_modules=FAMILY_TARGETS[model_type], task_type="SEQ_CLS"))
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "modules_to_save" in name:
                p.add_(0.5)
    theirs.save_pretrained(tmp_path / "adapter")
    theirs.eval()
    inputs = batch()
    ours = fastbert.AutoModelForSequenceClassification.from_pretrained(tmp_path / "adapter")
    assert ours.active_adapters() == ["default"]
    out = logits(ours, inputs)
    assert_rule(out, theirs, lambda m: logits(m, inputs), what=model_type)
    assert (out - plain).abs().max() > 1e-3, "the adapter changes nothing: the test could not fail"


def test_hotswap_of_a_lora_on_the_word_embeddings(tmp_path):
    """A LoRA on an embedding (``lora_embedding_A`` / ``_B``, saved without a ``.weight``) hotswaps in place,
    its scaling too (another lora_alpha), to transformers' outputs with the second adapter; fastbert named the
    weights as a linear's (KeyError), then PEFT's function looked for the scaling on the parent module
    (AttributeError). Another rank is refused before anything changes."""
    hf, fb = pair(tmp_path)
    models = {}
    for seed, alpha, rank in ((1, 8, 4), (2, 16, 4), (3, 8, 8)):
        torch.manual_seed(seed)
        config = peft.LoraConfig(
            r=rank, lora_alpha=alpha, lora_dropout=0.0, init_lora_weights=False,
            target_modules=["word_embeddings", "query"],
        )  # fmt: skip
        models[seed] = peft.get_peft_model(copy.deepcopy(hf), config).eval()
        models[seed].save_pretrained(tmp_path / f"a{seed}")
    fb.load_adapter(tmp_path / "a1")
    first = logits(fb)
    assert_rule(first, models[1], logits)
    fb.load_adapter(tmp_path / "a2", hotswap=True)
    assert list(fb.peft_config) == ["default"]
    ours = logits(fb)
    assert_rule(ours, models[2], logits)
    assert (ours - first).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"lora_embedding_A.default is \(8, 99\).*\(4, 99\)"):
        fb.load_adapter(tmp_path / "a3", hotswap=True)
    torch.testing.assert_close(logits(fb), ours, rtol=0, atol=0)


def two_classifier_adapters(tmp_path):
    """(transformers model, fastbert twin, the first and the second PEFT model): two sequence-classification
    adapters that save their heads whole (modules_to_save), saved in tmp_path / "first" and "second"; the
    second's head differs (-0.7)."""
    hf, fb = pair(tmp_path)
    first = saved_adapter(copy.deepcopy(hf), tmp_path / "first", task_type="SEQ_CLS")
    torch.manual_seed(2)
    second = peft.get_peft_model(
        copy.deepcopy(hf), lora(target_modules=["query", "value"], task_type="SEQ_CLS")
    )
    with torch.no_grad():
        for name, p in second.named_parameters():
            if "modules_to_save" in name:
                p.sub_(0.7)
    second.eval().save_pretrained(tmp_path / "second")
    return hf, fb, first, second


def test_hotswap_of_a_classifier_adapter_swaps_its_head_too(tmp_path):
    """A sequence-classification adapter saves its head whole (modules_to_save): hotswapping another one
    loads its head into the adapter's copy, as transformers' load_adapter(hotswap=True) does (fastbert passed
    the head's weights to PEFT's LoRA swap: KeyError 'classifier.bias'). A head the loaded adapter has no
    place for is refused, naming it, before anything changes."""
    hf, fb, first, second = two_classifier_adapters(tmp_path)
    fb.load_adapter(tmp_path / "first")
    before = logits(fb)
    assert_rule(before, first, logits)
    fb.load_adapter(tmp_path / "second", hotswap=True)
    ours = logits(fb)
    assert_rule(ours, second, logits)
    assert (ours - before).abs().max() > 1e-3
    # an adapter without a head, then one with a head: no place for it
    _, plain = pair(tmp_path / "plain")
    saved_adapter(copy.deepcopy(hf), tmp_path / "headless")
    plain.load_adapter(tmp_path / "headless")
    kept = logits(plain)
    with pytest.raises(ValueError, match="no place for: classifier.bias, classifier.weight"):
        plain.load_adapter(tmp_path / "second", hotswap=True)
    torch.testing.assert_close(logits(plain), kept, rtol=0, atol=0)


def test_save_pretrained_after_a_hotswap_writes_the_new_adapters_config(tmp_path):
    """After a hotswap the model holds the new adapter (its weights and its scaling): save_pretrained writes
    its config; it wrote the first adapter's lora_alpha beside the new weights, which loaded to other
    outputs."""
    import json

    hf, fb = pair(tmp_path)
    for seed, alpha in ((1, 8), (2, 32)):
        torch.manual_seed(seed)
        config = lora(target_modules=["query", "value"])
        config.lora_alpha = alpha
        peft.get_peft_model(copy.deepcopy(hf), config).save_pretrained(tmp_path / f"a{seed}")
    fb.load_adapter(tmp_path / "a1")
    fb.load_adapter(tmp_path / "a2", hotswap=True)
    ours = logits(fb)
    fb.save_pretrained(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["lora_alpha"] == 32
    _, again = pair(tmp_path / "again")
    again.load_adapter(tmp_path / "out")
    torch.testing.assert_close(logits(again), ours, rtol=0, atol=0)


def test_add_adapter_beside_an_adapter_with_a_head(tmp_path):
    """A loaded classifier adapter saves its head whole (modules_to_save); a second adapter without one is
    added and made active (its head: the model's own), and set_adapter switches back, as PEFT's set_adapter
    does. Each module's set_adapter raised "Adapter new not found" at the head, with the new adapter's layers
    injected already."""
    hf, fb = pair(tmp_path)
    theirs = saved_adapter(copy.deepcopy(hf), tmp_path / "adapter", task_type="SEQ_CLS")
    fb.load_adapter(tmp_path / "adapter")
    adapted = logits(fb)
    fb.add_adapter(peft.LoraConfig(r=2, target_modules=["key"]), adapter_name="new")  # B = 0: no change
    assert fb.active_adapters() == ["new"]
    assert_rule(logits(fb), hf, logits)  # the base model's head and encoder
    fb.set_adapter("default")
    torch.testing.assert_close(logits(fb), adapted, rtol=0, atol=0)
    assert_rule(adapted, theirs, logits)


def test_delete_the_active_adapter_leaves_the_other_with_its_head(tmp_path):
    """Deleting the active adapter makes the remaining one active (PEFT's choice), its saved head included:
    the head stayed off when the deleted adapter had none, and the model ran the remaining adapter's layers
    with the model's own head (active_adapters() said the remaining one)."""
    hf, fb = pair(tmp_path)
    saved_adapter(copy.deepcopy(hf), tmp_path / "adapter", task_type="SEQ_CLS")
    fb.load_adapter(tmp_path / "adapter")
    adapted = logits(fb)
    fb.add_adapter(lora(target_modules=["query", "value"]), adapter_name="new")
    assert (logits(fb) - adapted).abs().max() > 1e-3
    fb.delete_adapter("new")
    assert fb.active_adapters() == ["default"]
    torch.testing.assert_close(logits(fb), adapted, rtol=0, atol=0)
    # deleting an adapter that is not active changes nothing of the active one (frozen by hand here)
    fb.add_adapter(lora(target_modules=["key"]), adapter_name="other")
    fb.set_adapter("default")
    frozen = [p.requires_grad_(False) for n, p in fb.named_parameters() if ".default." in n]
    fb.delete_adapter("other")
    assert fb.active_adapters() == ["default"]
    assert frozen and not any(p.requires_grad for p in frozen)
    torch.testing.assert_close(logits(fb), adapted, rtol=0, atol=0)


@pytest.mark.parametrize("trainable", [False, True])
def test_a_second_classifier_adapter_loads_with_its_head(trainable, tmp_path):
    """Loading a second adapter that saves its head (modules_to_save) makes it active with its head, as its
    LoRA layers are: PEFT left every head off, and the model ran the new adapter's layers with the model's own
    head (neither adapter's outputs). is_trainable is kept; set_adapter switches back."""
    hf, fb, first, second = two_classifier_adapters(tmp_path)
    fb.load_adapter(tmp_path / "first")
    fb.load_adapter(tmp_path / "second", adapter_name="other", is_trainable=trainable)
    assert fb.active_adapters() == ["other"]
    assert_rule(logits(fb), second, logits)
    others = [p for n, p in fb.named_parameters() if ".other." in n]
    assert any("modules_to_save" in n for n, _ in fb.named_parameters() if ".other." in n)
    assert all(p.requires_grad == trainable for p in others)
    fb.set_adapter("default")
    assert_rule(logits(fb), first, logits)


def test_load_adapter_of_another_model_size_leaves_no_adapter_behind(tmp_path):
    """An adapter saved on a wider model: the size mismatch is raised and the adapter injected for it is
    removed again (it stayed, randomly initialised and active, and loading the right adapter under the same
    name said "already exists")."""
    hf, fb = pair(tmp_path)
    before = logits(fb)
    torch.manual_seed(0)
    wide = transformers.BertForSequenceClassification(transformers.BertConfig(**dict(TINY, hidden_size=48)))
    peft.get_peft_model(wide, lora(target_modules=["query"])).save_pretrained(tmp_path / "wide")
    with pytest.raises(RuntimeError, match="size mismatch"):
        fb.load_adapter(tmp_path / "wide")
    assert not fb._hf_peft_config_loaded and "peft_config" not in fb.__dict__
    assert not any("lora_" in n for n, _ in fb.named_parameters())
    torch.testing.assert_close(logits(fb), before, rtol=0, atol=0)
    theirs = saved_adapter(hf, tmp_path / "adapter")
    fb.load_adapter(tmp_path / "adapter")
    assert_rule(logits(fb), theirs, logits)


def test_from_pretrained_an_adapter_folder_with_int8_says_which_linears_the_adapter_keeps(tmp_path):
    """from_pretrained(adapter folder, quantization="int8") loads the adapter, then quantizes: calibration
    measures the model with its adapter, and model.quantization says that the query/key/value projection it
    wraps runs as modules in fp32 (quantized first, the report said int8 there while the wrapped modules ran
    fp32). The adapter applies: each token's output has cosine >= MIN_COSINE_QUANTIZED (0.999) to the fp32
    model with the same adapter, which is transformers' outputs by the parity rule."""
    from fastbert.core.tolerances import MIN_COSINE_QUANTIZED
    from fastbert.quant.int8 import int8_available

    if not int8_available():
        pytest.skip("torch without oneDNN int8 ops")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(TINY["vocab_size"] - 5)]
    hf, _ = pair(tmp_path)
    (tmp_path / "base" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    base = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "base").eval()
    theirs = saved_adapter(base, tmp_path / "adapter", task_type="SEQ_CLS")
    fp32 = fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "adapter")
    int8 = fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "adapter", quantization="int8")
    assert int8.active_adapters() == ["default"]
    decisions = {d.name: d for d in int8.quantization.layers}
    for i in range(TINY["num_hidden_layers"]):
        qkv = decisions[f"encoder.layer.{i}.attention.self.qkv"]
        assert qkv.precision == "fp32" and "wrapped" in qkv.reason, qkv
    assert int8.quantization.reduced > 0  # the linears the adapter leaves alone are int8
    inputs = batch()

    def hidden(model):
        with torch.no_grad():
            return model.bert(**inputs).last_hidden_state[inputs["attention_mask"].bool()]

    assert_rule(logits(fp32), theirs, logits)
    cosine = torch.nn.functional.cosine_similarity(hidden(int8), hidden(fp32), dim=-1)
    assert cosine.min() >= MIN_COSINE_QUANTIZED, cosine
    plain = fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "base")
    assert (hidden(fp32) - hidden(plain)).abs().max() > 1e-2, (
        "the adapter changes nothing: the test could not fail"
    )
    assert (hidden(int8) - hidden(plain)).abs().max() > 1e-2


def test_an_adapter_added_to_an_int8_model_applies_and_the_attention_says_what_runs(tmp_path):
    """quantize, then add_adapter on query/value: PEFT wraps them, so the self-attention runs them as modules
    in fp32 and its repr says so (it said "qkv quantization=int8 (...)", a copy no longer used); the adapter
    applies: each token's output has cosine >= MIN_COSINE_QUANTIZED (0.999) to the fp32 model with the same
    adapter, and differs from the int8 model without it."""
    from fastbert.core.tolerances import MIN_COSINE_QUANTIZED
    from fastbert.quant import quantize
    from fastbert.quant.int8 import int8_available

    if not int8_available():
        pytest.skip("torch without oneDNN int8 ops")
    _, fp32 = pair(tmp_path, "BertModel")
    inputs = batch()
    calibration = [dict(input_ids=inputs["input_ids"], attention_mask=torch.ones_like(inputs["input_ids"]))]
    int8 = quantize(copy.deepcopy(fp32), "int8", calibration=calibration, min_cosine=0.0, mean_cosine=0.0)
    attention = int8.encoder.layer[0].attention.self
    assert attention.extra_repr().startswith("qkv quantization=int8 (")

    def hidden(model):
        with torch.no_grad():
            return model(**inputs).last_hidden_state[inputs["attention_mask"].bool()]

    plain = hidden(int8)
    for model in (fp32, int8):
        torch.manual_seed(1)
        model.add_adapter(lora(target_modules=["query", "value"]))
    int8.load_state_dict({k: v for k, v in fp32.state_dict().items() if "lora_" in k}, strict=False)
    assert attention.extra_repr() == (
        "qkv quantization=fp32 (int8 copy not used: query/key/value are wrapped, replaced or hooked and run as "
        "modules)"
    )
    ours = hidden(int8)
    cosine = torch.nn.functional.cosine_similarity(ours, hidden(fp32), dim=-1)
    assert cosine.min() >= MIN_COSINE_QUANTIZED, cosine
    assert (ours - plain).abs().max() > 1e-2, "the adapter changes nothing: the test could not fail"


def test_with_no_active_adapter_save_pretrained_says_to_set_one(tmp_path):
    """PEFT leaves no adapter active when the active one is deleted and the others are on other layers:
    get_adapter_state_dict() and save_pretrained raised IndexError; now a ValueError naming set_adapter,
    before anything is written."""
    model = fastbert.BertModel(fastbert.BertConfig(**TINY))
    model.add_adapter(lora(target_modules=["key"]))
    model.add_adapter(lora(target_modules=["query"]), adapter_name="other")
    model.delete_adapter("other")
    assert model.active_adapters() == []
    with pytest.raises(ValueError, match=r"get_adapter_state_dict\(\): no adapter is active.*adapter_name"):
        model.get_adapter_state_dict()
    assert model.get_adapter_state_dict("default")
    with pytest.raises(ValueError, match=r"save_pretrained: no adapter is active.*set_adapter"):
        model.save_pretrained(tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())
    model.set_adapter("default")
    model.save_pretrained(tmp_path / "out")
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_enable_peft_hotswap_makes_auto_hotswap_a_loaded_name(tmp_path, caplog):
    """transformers 5's enable_peft_hotswap: afterwards load_adapter's default hotswap="auto" replaces an
    adapter loaded under the same name (fastbert had no such method: AttributeError); called after the first
    adapter it raises (check_compiled="error"), warns ("warn") or says nothing ("ignore"), as transformers."""
    import logging

    hf, fb = pair(tmp_path)
    first = saved_adapter(copy.deepcopy(hf), tmp_path / "first")
    torch.manual_seed(2)
    second = peft.get_peft_model(copy.deepcopy(hf), lora(target_modules=["query", "value"])).eval()
    second.save_pretrained(tmp_path / "second")
    fb.enable_peft_hotswap(target_rank=8)
    fb.load_adapter(tmp_path / "first")  # the first load under the name: injected
    assert_rule(logits(fb), first, logits)
    fb.load_adapter(tmp_path / "second")  # "auto": hotswapped
    assert list(fb.peft_config) == ["default"]
    assert_rule(logits(fb), second, logits)
    with pytest.raises(ValueError, match="Adapter with name default already exists"):
        fb.load_adapter(tmp_path / "first", hotswap=False)
    # without it, "auto" loads under a new name only
    _, other = pair(tmp_path / "other")
    other.load_adapter(tmp_path / "first")
    with pytest.raises(ValueError, match="Adapter with name default already exists"):
        other.load_adapter(tmp_path / "second")
    with pytest.raises(RuntimeError, match="Call `enable_peft_hotswap` before loading the first adapter"):
        other.enable_peft_hotswap()
    with caplog.at_level(logging.WARNING, logger="fastbert.adapters"):
        other.enable_peft_hotswap(check_compiled="warn")
    assert "before loading the first adapter" in caplog.text
    with pytest.raises(ValueError, match="check_compiles should be one of"):
        other.enable_peft_hotswap(check_compiled="nope")


@pytest.mark.parametrize("target", ["Wqkv", "Wo"])
def test_int8_quantization_of_a_modernbert_with_an_adapter(target):
    """ModernBERT with a LoRA on an encoder linear: quantize (as from_pretrained(adapter folder,
    quantization="int8") does after loading the adapter) keeps the wrapped linears in fp32 and says so; it
    refused the model as "not laid out that way (its encoder layers were replaced...)". The adapter applies:
    cosine >= MIN_COSINE_QUANTIZED (0.999) per token to the fp32 model with the same adapter."""
    from model_helpers import tiny_family_config

    from fastbert.core.tolerances import MIN_COSINE_QUANTIZED
    from fastbert.quant import quantize
    from fastbert.quant.int8 import int8_available

    if not int8_available():
        pytest.skip("torch without oneDNN int8 ops")
    torch.manual_seed(0)
    fp32 = fastbert.AutoModel.from_config(tiny_family_config("modernbert")).eval()
    ids = torch.randint(5, 90, (3, 8), generator=torch.Generator().manual_seed(3))
    plain = fp32(input_ids=ids).last_hidden_state.detach()
    torch.manual_seed(1)
    fp32.add_adapter(lora(target_modules=[target]))
    int8 = quantize(
        copy.deepcopy(fp32), "int8", calibration=[dict(input_ids=ids, attention_mask=torch.ones_like(ids))],
        min_cosine=0.0, mean_cosine=0.0,
    )  # fmt: skip
    decisions = {d.name: d for d in int8.quantization.layers}
    for i in range(2):
        kept = decisions[f"layers.{i}.attn.{target}"]
        assert kept.precision == "fp32" and "runs as a module" in kept.reason, kept
    assert int8.quantization.reduced > 0
    with torch.no_grad():
        ours, theirs = int8(input_ids=ids).last_hidden_state, fp32(input_ids=ids).last_hidden_state
    cosine = torch.nn.functional.cosine_similarity(ours.flatten(0, 1), theirs.flatten(0, 1), dim=-1)
    assert cosine.min() >= MIN_COSINE_QUANTIZED, cosine
    assert (ours - plain).abs().max() > 1e-2, "the adapter changes nothing: the test could not fail"
