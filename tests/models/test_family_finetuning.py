"""Fine-tuning every family as a transformers user does: PEFT LoRA on transformers' target module names
(RoBERTa/XLM-R/CamemBERT/ELECTRA ``query``/``value``, DistilBERT ``q_lin``/``v_lin``, MPNet ``q``/``v``) gives
transformers' logits and LoRA gradients under the tolerance rule (float64 reference), and transformers'
``Trainer`` gives transformers' losses (both judged against a float64 run); on every family the adapter
fastbert's PeftModel saves, and its ``merge_and_unload`` saved, load into transformers' model to the same
logits."""

import copy
import tempfile

import pytest
import torch
from model_helpers import assert_gradients_meet_the_rule, require_transformers, trainer_loss

import fastbert
from fastbert.core.tolerances import assert_close

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()
peft = pytest.importorskip("peft")  # the test extra

SIZES = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
FAMILIES = {
    "Roberta": (dict(SIZES, **NO_DROPOUT, pad_token_id=1, max_position_embeddings=66), ["query", "value"]),
    "XLMRoberta": (dict(SIZES, **NO_DROPOUT, pad_token_id=1, max_position_embeddings=66), ["query", "value"]),
    "Camembert": (dict(SIZES, **NO_DROPOUT, pad_token_id=1, max_position_embeddings=66), ["query", "value"]),
    "Electra": (dict(SIZES, **NO_DROPOUT, embedding_size=24, max_position_embeddings=64), ["query", "value"]),
    "DistilBert": (
        dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
        | dict(dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0),
        ["q_lin", "v_lin"],
    ),
    "MPNet": (dict(SIZES, **NO_DROPOUT, pad_token_id=1, max_position_embeddings=66), ["q", "v"]),
}


def _batch():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 99, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 1  # the pad id of the families that have one
    return dict(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0]))


def _pair(family, tmp_path):
    kwargs, _ = FAMILIES[family]
    name = f"{family}ForSequenceClassification"
    config = getattr(transformers, f"{family}Config")(**kwargs, num_labels=2)
    torch.manual_seed(0)
    hf = getattr(transformers, name)(config).eval()
    hf.save_pretrained(tmp_path)
    return hf, getattr(fastbert, name).from_pretrained(tmp_path).eval()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_lora_on_transformers_names_matches_transformers(family, tmp_path):
    hf, fb = _pair(family, tmp_path)
    lora = dict(r=4, lora_alpha=8, target_modules=FAMILIES[family][1], task_type="SEQ_CLS", lora_dropout=0.0)
    ph, pf = (
        peft.get_peft_model(hf, peft.LoraConfig(**lora)),
        peft.get_peft_model(fb, peft.LoraConfig(**lora)),
    )
    lh = {n: p for n, p in ph.named_parameters() if "lora_" in n}
    lf = {n: p for n, p in pf.named_parameters() if "lora_" in n}
    assert lh.keys() == lf.keys() and len(lf) == 2 * 2 * 2  # A and B of two targets in two layers
    with torch.no_grad():
        for n in lh:  # LoRA B starts at zero: give both the same non-zero adapters
            v = torch.randn(lh[n].shape, generator=torch.Generator().manual_seed(len(n))) * 0.1
            lh[n].copy_(v)
            lf[n].copy_(v)
    p64 = copy.deepcopy(ph).double()
    batch = _batch()
    oh, of, o64 = ph(**batch), pf(**batch), p64(**batch)
    assert_close(of.logits, oh.logits, o64.logits, torch.float32, what=f"{family} LoRA logits")
    for out in (oh, of, o64):
        out.loss.backward()
    lora = lambda name: "lora_" in name
    assert assert_gradients_meet_the_rule(pf, ph, p64, keep=lora, what=f"{family} gradients") == len(lf)


@pytest.mark.parametrize("family", ["XLMRoberta", "DistilBert", "MPNet"])
def test_trainer_gives_transformers_losses(family, tmp_path):
    hf, fb = _pair(family, tmp_path / "model")
    b = _batch()
    rows = [{k: v[i] for k, v in b.items()} for i in range(3)]
    losses = []
    for model in (hf.train(), fb.train(), copy.deepcopy(hf).double().train()):  # the last: the reference
        losses.append(trainer_loss(model, rows, tempfile.mkdtemp(dir=tmp_path)))
    hf_loss, fb_loss, ref_loss = map(torch.tensor, losses)
    assert_close(fb_loss, hf_loss, ref_loss, torch.float32, what=f"{family} Trainer loss")


#: per registered family, transformers' LoRA target names for its attention
ADAPTER_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "mpnet": ["q", "v"],
    "modernbert": ["Wqkv", "Wo"],
}


@pytest.mark.parametrize("model_type", list(ADAPTER_TARGETS))
def test_adapter_and_merged_model_load_into_transformers(model_type, tmp_path):
    """The transformers user's round trip on every family: the adapter fastbert's PeftModel saves has the
    keys transformers' PeftModel saves and loads into transformers' model to its logits (and transformers'
    adapter into fastbert's model), and ``merge_and_unload`` + ``save_pretrained`` gives a folder
    transformers loads to the adapted logits (all judged by the rule, a float64 transformers the reference)."""
    import safetensors.torch
    from model_helpers import perturb_norms_and_biases, tiny_family_config

    torch.manual_seed(0)
    fb = fastbert.AutoModelForSequenceClassification.from_config(tiny_family_config(model_type, num_labels=2))
    perturb_norms_and_biases(fb).eval()
    fb.save_pretrained(tmp_path / "base")
    config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=ADAPTER_TARGETS[model_type], task_type="SEQ_CLS",
        init_lora_weights=False,  # non-zero B: the adapter changes the logits
    )  # fmt: skip
    torch.manual_seed(1)
    ours = peft.get_peft_model(fb, copy.deepcopy(config)).eval()
    ours.save_pretrained(tmp_path / "ours")
    batch = {k: v for k, v in _batch().items() if k != "labels"}

    def logits(model):
        return model(**batch).logits

    def hf_base():
        return transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "base").eval()

    with torch.no_grad():
        adapted = logits(ours)
        assert (adapted - logits(fb.__class__.from_pretrained(tmp_path / "base").eval())).abs().max() > 1e-3
        theirs = peft.PeftModel.from_pretrained(hf_base(), tmp_path / "ours").eval()
        ref = peft.PeftModel.from_pretrained(hf_base().double(), tmp_path / "ours").eval()
        assert_close(
            adapted, logits(theirs), logits(ref), torch.float32, what=f"{model_type} fastbert adapter"
        )
    theirs.save_pretrained(tmp_path / "theirs")
    keys = [
        safetensors.torch.load_file(tmp_path / p / "adapter_model.safetensors") for p in ("ours", "theirs")
    ]
    assert sorted(keys[0]) == sorted(keys[1]) and any("lora_A" in k for k in keys[0])
    back = peft.PeftModel.from_pretrained(
        fb.__class__.from_pretrained(tmp_path / "base").eval(), tmp_path / "theirs"
    )
    with torch.no_grad():
        assert_close(
            logits(back.eval()), logits(theirs), logits(ref), torch.float32, what="transformers adapter"
        )
        ours.merge_and_unload().save_pretrained(tmp_path / "merged")
        merged = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
        assert not any("lora_" in n for n, _ in merged.named_parameters())
        assert_close(
            adapted, logits(merged), logits(ref), torch.float32, what=f"{model_type} merged, reloaded"
        )
