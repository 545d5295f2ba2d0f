"""query/key/value as transformers' modules: PEFT's LoRA wraps them (same outputs as on transformers' model,
and trains), a module replaced or hooked by hand is honoured, merge_and_unload gives back plain modules and
the fused GEMM, and the fused weight never goes stale (in-place edits, load_state_dict, optimizer steps,
``.to()``)."""

import copy
import types

import pytest
import torch
from model_helpers import TINY, assert_rule, perturb_norms_and_biases, require_transformers

import fastbert
from fastbert.core.tolerances import assert_close

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()
peft = pytest.importorskip("peft")  # the test extra

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# head: the PEFT task type (None: a plain PeftModel)
HEADS = {
    "BertForSequenceClassification": "SEQ_CLS",
    "BertForTokenClassification": "TOKEN_CLS",
    "BertForMaskedLM": None,
}


def pair(name, tmp_path):
    """transformers' model and fastbert's loaded from the same folder (dropout off)."""
    torch.manual_seed(0)
    hf = getattr(transformers, name)(transformers.BertConfig(**TINY, **NO_DROPOUT))
    perturb_norms_and_biases(hf).eval()
    hf.save_pretrained(tmp_path)
    return hf, getattr(fastbert, name).from_pretrained(tmp_path)


def batch():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 99, (3, 8), generator=g)
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return dict(input_ids=ids, attention_mask=mask)


def logits(model, inputs):
    out = model(**inputs).logits
    return out[inputs["attention_mask"].bool()] if out.dim() == 3 else out  # valid tokens


def lora(model, task_type):
    config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"], task_type=task_type,
        init_lora_weights=False,  # non-zero B: the adapter changes the outputs from the start
    )  # fmt: skip
    return peft.get_peft_model(model, config)


def self_attention(model, layer=0):
    base = getattr(model, "bert", model)
    return base.encoder.layer[layer].attention.self


@pytest.mark.parametrize("name", list(HEADS))
def test_lora_on_query_value_matches_transformers(name, tmp_path):
    hf, fb = pair(name, tmp_path)
    inputs = batch()
    with torch.no_grad():
        before = logits(fb, inputs)
    torch.manual_seed(1)
    hf_peft = lora(hf, HEADS[name])
    torch.manual_seed(1)
    fb_peft = lora(fb, HEADS[name])
    # the same trainable parameters, by name
    trainable = {n for n, p in fb_peft.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in hf_peft.named_parameters() if p.requires_grad}
    assert any(".attention.self.query.lora_A." in n for n in trainable)
    assert not any(".attention.self.key." in n for n in trainable)
    assert isinstance(self_attention(fb).query, peft.tuners.lora.LoraLayer)
    assert self_attention(fb).fused_qkv() is None  # wrapped: the modules run themselves
    # the same adapter weights (copied: nothing depends on the order of random draws)
    adapters = {k: v for k, v in hf_peft.state_dict().items() if "lora_" in k or "modules_to_save" in k}
    result = fb_peft.load_state_dict(adapters, strict=False)
    assert not result.unexpected_keys
    for backend in ("eager", "sdpa"):
        fb.set_attn_implementation(backend)
        with torch.no_grad():
            ours = logits(fb_peft, inputs)
        assert_rule(ours, hf_peft, lambda m: logits(m, inputs), what=backend)
        assert (ours - before).abs().max() > 1e-3, "the adapter changes nothing: the test could not fail"


@pytest.mark.parametrize("name", ["BertForSequenceClassification", "BertForMaskedLM"])
def test_lora_training_updates_only_adapters_and_matches_transformers(name, tmp_path):
    hf, fb = pair(name, tmp_path)
    inputs = batch()
    labels = (
        torch.tensor([0, 1, 1]) if name == "BertForSequenceClassification" else inputs["input_ids"].clone()
    )
    models = {}
    for key, model in (("hf", hf), ("fb", fb)):
        torch.manual_seed(1)
        models[key] = lora(model, HEADS[name])
    adapters = {k: v for k, v in models["hf"].state_dict().items() if "lora_" in k or "modules_to_save" in k}
    models["fb"].load_state_dict(adapters, strict=False)
    models["ref"] = copy.deepcopy(models["hf"]).to(torch.float64)  # the rule's reference, trained alike
    start = {n: p.detach().clone() for n, p in models["fb"].named_parameters()}
    with torch.no_grad():
        out_before = logits(models["fb"], inputs)
    losses = {}
    for key, model in models.items():
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        losses[key] = []
        for _ in range(3):
            loss = model(**inputs, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses[key].append(loss.item())
        model.eval()
    assert_close(*(torch.tensor(losses[k], dtype=torch.float64) for k in ("fb", "hf", "ref")), torch.float32)
    assert losses["fb"][-1] < losses["fb"][0]
    changed = {n for n, p in models["fb"].named_parameters() if not torch.equal(p.detach(), start[n])}
    assert changed and all("lora_" in n or "modules_to_save" in n for n in changed), sorted(changed)
    assert any(".query.lora_" in n for n in changed) and any(".value.lora_" in n for n in changed)
    with torch.no_grad():
        out_after = logits(models["fb"], inputs)
        assert_close(out_after, logits(models["hf"], inputs), logits(models["ref"], inputs), torch.float32)
    assert (out_after - out_before).abs().max() > 1e-3


def test_trainable_tokens_wrapping_the_word_embeddings_match_transformers(tmp_path):
    """LoRA with ``trainable_token_indices`` (PEFT's way to train added tokens) replaces the word embeddings by
    a wrapper without ``num_embeddings`` / ``embedding_dim``: the forward read them (AttributeError); it runs,
    on ids and on ``inputs_embeds``, with transformers' loss, and gradients reach the tokens' delta."""
    hf, fb = pair("BertForMaskedLM", tmp_path)
    inputs = batch()
    inputs["input_ids"][0, :2] = torch.tensor([5, 7])  # the trained tokens occur
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    config = peft.LoraConfig(r=2, target_modules=["query"], trainable_token_indices=[5, 7])
    models = {key: peft.get_peft_model(m, copy.deepcopy(config)) for key, m in (("hf", hf), ("fb", fb))}
    for model in models.values():  # the same non-zero deltas, so that the wrapper changes the outputs
        for name, p in model.named_parameters():
            if "trainable_tokens_delta" in name:
                p.data.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    assert not isinstance(fb.get_input_embeddings(), torch.nn.Embedding)
    with torch.no_grad():
        ours = models["fb"](**inputs, labels=labels).loss
    assert_rule(ours, models["hf"], lambda m: m(**inputs, labels=labels).loss, what="loss")
    embeds = fb.get_input_embeddings()(inputs["input_ids"])
    out = models["fb"](inputs_embeds=embeds, attention_mask=inputs["attention_mask"], labels=labels)
    out.loss.backward()
    deltas = [p.grad for n, p in models["fb"].named_parameters() if "trainable_tokens_delta" in n]
    assert deltas and all(g is not None and g.abs().max() > 0 for g in deltas)


def test_generate_with_trainable_tokens():
    """``generate`` reads the vocabulary size from the table's weight, as the forward does: PEFT's trainable
    tokens wrapper has no ``num_embeddings`` (AttributeError before). Greedy: each new token is the argmax of
    the wrapped model's own logits."""
    config = fastbert.BertConfig(**TINY, is_decoder=True)
    torch.manual_seed(0)
    model = fastbert.BertLMHeadModel(config).eval()
    wrapped = peft.get_peft_model(
        model, peft.TrainableTokensConfig(token_indices=[3, 4], target_modules=["word_embeddings"])
    )
    ids = torch.tensor([[5, 6, 7]])
    out = model.generate(ids, max_new_tokens=2, eos_token_id=2, pad_token_id=0)
    with torch.no_grad():
        first = wrapped(input_ids=ids).logits[0, -1].argmax()
    assert out.shape == (1, 5) and out[0, 3] == first


def test_merge_and_unload_gives_plain_modules_and_the_fused_gemm(tmp_path):
    hf, fb = pair("BertForSequenceClassification", tmp_path)
    inputs = batch()
    torch.manual_seed(1)
    wrapped = lora(fb, "SEQ_CLS")
    with torch.no_grad():
        adapted = logits(wrapped, inputs)  # merging adds no more error than fp32 itself has (the rule)
        ref = logits(copy.deepcopy(wrapped).to(torch.float64), inputs)
    merged = wrapped.merge_and_unload()
    att = self_attention(merged)
    assert type(att.query) is torch.nn.Linear and type(att.value) is torch.nn.Linear
    with torch.no_grad():
        weight, bias = att.fused_qkv()
        assert weight.data_ptr() == att.query.weight.data_ptr()  # a view of the storage: no copy
        assert_close(logits(merged, inputs), adapted, ref, torch.float32)
    names = {n for n, _ in merged.named_parameters()}
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert not any("lora" in n for n in names)


@pytest.mark.parametrize("model_type", ["bert", "modernbert"])
def test_saved_adapter_names_the_base_model_as_transformers(model_type, tmp_path):
    """The adapter_config.json a PeftModel writes names the folder the base model was loaded from
    (``base_model_name_or_path``, which ``AutoPeftModel*.from_pretrained`` loads), as for transformers' model:
    PEFT reads ``model.__dict__["name_or_path"]``, an instance attribute as transformers sets it (fastbert's
    property left it null, and AutoPeftModel then looked for a hub model named "None")."""
    import json

    from model_helpers import tiny_family_config

    fastbert.AutoModelForSequenceClassification.from_config(tiny_family_config(model_type)).save_pretrained(
        tmp_path / "base"
    )
    written = {}
    for lib in (transformers, fastbert):
        model = lib.AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
        target = "Wqkv" if model_type == "modernbert" else "query"
        peft_model = peft.get_peft_model(
            model, peft.LoraConfig(r=2, target_modules=[target], task_type="SEQ_CLS")
        )
        peft_model.save_pretrained(tmp_path / lib.__name__)
        config = json.loads((tmp_path / lib.__name__ / "adapter_config.json").read_text())
        written[lib.__name__] = config["base_model_name_or_path"]
    assert written["fastbert"] == written["transformers"] == str(tmp_path / "base")
    auto = peft.AutoPeftModelForSequenceClassification.from_pretrained(tmp_path / "fastbert")
    assert auto.base_model.model.name_or_path == str(tmp_path / "base")


class Scaled(torch.nn.Module):
    """A hand-made replacement of a projection."""

    def __init__(self, inner, factor):
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x):
        return self.inner(x) * self.factor


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_a_module_replaced_or_hooked_by_hand_is_honoured(backend, tmp_path):
    hf, fb = pair("BertModel", tmp_path)
    fb.set_attn_implementation(backend)
    inputs = batch()
    mask = inputs["attention_mask"].bool()

    def hidden(model):
        with torch.no_grad():
            return model(**inputs).last_hidden_state[mask]

    def ours_against_theirs():
        ours = hidden(fb)
        assert_rule(ours, hf, hidden)
        return ours

    plain = hidden(fb)
    for model in (hf, fb):
        att = self_attention(model)
        att.value = Scaled(att.value, 1.5)
    assert self_attention(fb).fused_qkv() is None
    ours = ours_against_theirs()
    assert (ours - plain).abs().max() > 1e-3
    for model in (hf, fb):  # back to the plain module: the fused GEMM again, same outputs as before
        att = self_attention(model)
        att.value = att.value.inner
    assert self_attention(fb).fused_qkv() is not None
    torch.testing.assert_close(hidden(fb), plain, atol=0, rtol=0)
    # a forward hook on key (transformers runs it: so must fastbert); sharper scores show in the outputs
    handles = [
        self_attention(m, 1).key.register_forward_hook(lambda mod, args, out: out * 30.0) for m in (hf, fb)
    ]
    assert self_attention(fb, 1).fused_qkv() is None
    ours = ours_against_theirs()
    assert (ours - plain).abs().max() > 1e-3
    for h in handles:
        h.remove()
    # a forward of the instance's own (what accelerate's hooks install)
    for m in (hf, fb):
        q = self_attention(m).query
        q.forward = types.MethodType(
            lambda lin, x: torch.nn.functional.linear(x, lin.weight * 30.0, lin.bias), q
        )
    assert self_attention(fb).fused_qkv() is None
    ours = ours_against_theirs()
    assert (ours - plain).abs().max() > 1e-3


def test_fused_weight_never_goes_stale(tmp_path):
    """After each kind of change, fastbert's outputs equal transformers' on fastbert's own state dict."""
    hf, fb = pair("BertModel", tmp_path)
    inputs = batch()
    mask = inputs["attention_mask"].bool()
    att = self_attention(fb)

    def check(what, dtype=torch.float32):
        hf.load_state_dict(fb.state_dict())
        hf.to(dtype)
        with torch.no_grad():
            ours = fb(**inputs).last_hidden_state[mask]
        assert_rule(ours, hf, lambda m: m(**inputs).last_hidden_state[mask], dtype, what)
        return ours

    first = check("loaded")
    with torch.no_grad():
        att.key.weight.mul_(2.0)  # in place on the parameter
        att.value.bias.data += 0.5  # through .data: no version counter moves
    assert (check("in-place edits") - first).abs().max() > 1e-3
    torch.manual_seed(5)
    fresh = fastbert.BertModel(fastbert.BertConfig(**TINY, **NO_DROPOUT)).state_dict()
    fb.load_state_dict(fresh)
    check("load_state_dict")
    fb.load_state_dict({k: v.clone() * 1.1 for k, v in fresh.items()}, assign=True)
    check("load_state_dict(assign=True)")
    with torch.no_grad():
        weight, _ = att.fused_qkv()
    assert weight.data_ptr() == att.query.weight.data_ptr()  # the layout is fused again after assign
    opt = torch.optim.SGD(fb.parameters(), lr=0.5)
    fb.train()
    fb(**inputs).last_hidden_state.square().mean().backward()
    opt.step()
    fb.eval()
    check("an optimizer step")
    fb.to(torch.float64)
    assert att.key.weight.data_ptr() == att.query.weight.data_ptr() + att.query.weight.numel() * 8
    check(".to(float64)", torch.float64)
    fb.to(torch.float32)
    hf.to(torch.float32)
    att.query.weight = torch.nn.Parameter(att.query.weight.detach().clone() + 0.01)  # the layout broken
    with torch.no_grad():
        weight, _ = att.fused_qkv()
    assert weight.data_ptr() != att.query.weight.data_ptr()  # concatenated for this call
    check("a parameter replaced by hand")
    twin = copy.deepcopy(fb)  # a copy gets its own storage, fused again
    twin_att = self_attention(twin)
    with torch.no_grad():
        assert twin_att.fused_qkv()[0].data_ptr() == twin_att.query.weight.data_ptr()
        assert twin_att.query.weight.data_ptr() != att.query.weight.data_ptr()
        mine = fb(**inputs).last_hidden_state[mask]
        torch.testing.assert_close(twin(**inputs).last_hidden_state[mask], mine, rtol=0, atol=0)
        twin_att.value.weight.mul_(3.0)  # the copy's edit is the copy's alone
        assert (twin(**inputs).last_hidden_state[mask] - mine).abs().max() > 1e-3
        torch.testing.assert_close(fb(**inputs).last_hidden_state[mask], mine, rtol=0, atol=0)


#: per family, LoRA on every linear the op tables fuse (and on the masked-LM head's transform)
FAMILY_TARGETS = {
    "bert": ["dense"],
    "roberta": ["dense"],
    "electra": ["dense"],
    "distilbert": ["out_lin", "lin1", "lin2", "vocab_transform"],
    "mpnet": ["o", "dense"],
    "modernbert": ["Wqkv", "Wi", "Wo", "dense"],
}


@pytest.mark.parametrize("model_type", list(FAMILY_TARGETS))
def test_lora_on_the_fused_linears_matches_transformers(model_type, tmp_path):
    """LoRA on the linears whose GEMM the op table fuses with what follows (attention output + add + norm,
    intermediate + GELU, the head's transform + GELU + norm): the adapter applies (the module runs itself),
    as in transformers."""
    from model_helpers import tiny_family_config

    torch.manual_seed(0)
    config = tiny_family_config(model_type)
    fb = fastbert.AutoModelForMaskedLM.from_config(config)
    perturb_norms_and_biases(fb).eval()
    fb.save_pretrained(tmp_path)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    inputs = batch()
    if model_type in ("distilbert", "modernbert"):
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}
    with torch.no_grad():
        before = logits(fb, inputs)
    targets = FAMILY_TARGETS[model_type]
    config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, init_lora_weights=False
    )
    hf_peft, fb_peft = peft.get_peft_model(hf, config), peft.get_peft_model(fb, copy.deepcopy(config))
    adapters = {k: v for k, v in hf_peft.state_dict().items() if "lora_" in k}
    assert fb_peft.load_state_dict(adapters, strict=False).unexpected_keys == []
    wrapped = {
        n.rsplit(".", 1)[-1] for n, m in fb_peft.named_modules() if isinstance(m, peft.tuners.lora.LoraLayer)
    }
    assert wrapped == set(targets)
    for backend in ("eager", "sdpa"):
        fb.set_attn_implementation(backend)
        with torch.no_grad():
            ours = logits(fb_peft, inputs)
        assert_rule(ours, hf_peft, lambda m: logits(m, inputs), what=f"{model_type} {backend}")
        assert (ours - before).abs().max() > 1e-3, "the adapter changes nothing: the test could not fail"
