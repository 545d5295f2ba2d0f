"""``fastbert.core.padding.packed_outputs()`` on every family's classes: inside it a forward that packed its
padded batch returns its per-token outputs packed (the rows' real tokens one after the other) and its
per-sequence outputs (pooler, sequence classification, multiple choice) as outside it. Each class runs on a
batch of unequal lengths, padded on the right and on the left, inside and outside ``packed_outputs()``; the
packed outputs must be the padded ones at the real tokens, the others the padded ones, within the parity rule
of ``fastbert.core.tolerances`` (the same model's padded forward as the reference, fp32).

Before the fix every head that reads the first token (RoBERTa / XLM-RoBERTa / CamemBERT / MPNet / DistilBERT /
ELECTRA / ModernBERT sequence classification and multiple choice) indexed the packed (tokens, hidden) states as
(batch, seqlen, hidden): 'mat1 and mat2 shapes cannot be multiplied'.
"""

import pytest
import torch
from model_helpers import tiny_family_config

from fastbert import registry
from fastbert.core.padding import packed_outputs
from fastbert.core.tolerances import assert_close

#: CPU models only: the packed forward of the sdpa backend
pytestmark = pytest.mark.cpu_only

#: every class of every family, with the config overrides that change what a head reads
CASES = [(mt, task, {}) for mt in registry.supported_model_types() for task in registry.family(mt).classes]
CASES += [
    ("modernbert", "sequence-classification", {"classifier_pooling": "mean"}),
    ("modernbert", "multiple-choice", {"classifier_pooling": "mean"}),
    ("modernbert", "masked-lm", {"sparse_prediction": True}),
    ("electra", "multiple-choice", {"summary_type": "mean"}),
    ("electra", "multiple-choice", {"summary_type": "last"}),
]
#: the families with a causal-LM class
CAUSAL = [mt for mt in registry.supported_model_types() if "causal-lm" in registry.family(mt).classes]


def build(model_type, task, overrides):
    torch.manual_seed(0)
    labels = 2 if task == "question-answering" else 3
    config = tiny_family_config(
        model_type, width=32, num_labels=labels, is_decoder=task == "causal-lm", **overrides
    )
    model = registry.model_class(model_type, task)(config).eval()
    with torch.no_grad():  # LayerNorms 1/0 and zero biases would hide a wrong wiring
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def batch(model, task, side):
    """Lengths 11, 4, 7 (multiple choice: 2 choices each, one of 2 tokens), padded on ``side``."""
    g = torch.Generator().manual_seed(3)
    shape = (3, 2, 11) if task == "multiple-choice" else (3, 11)
    lengths = torch.tensor([11, 4, 7])
    if task == "multiple-choice":
        lengths = lengths[:, None].expand(3, 2).clone()
        lengths[0, 1] = 2
    pos = torch.arange(11)
    real = pos < lengths[..., None] if side == "right" else pos >= 11 - lengths[..., None]
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    ids = torch.where(real, torch.randint(3, 120, shape, generator=g), torch.full(shape, pad))
    return {"input_ids": ids, "attention_mask": real.long()}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize(
    "model_type,task,overrides",
    CASES,
    ids=["-".join([mt, task, *map(str, o.values())]) for mt, task, o in CASES],
)
def test_packed_outputs_match_the_padded_forward(model_type, task, overrides, side):
    model = build(model_type, task, overrides)
    inputs = batch(model, task, side)
    extra = {"use_cache": False} if task == "causal-lm" else {}
    with torch.no_grad():
        padded = model(**inputs, **extra)
        with packed_outputs():
            packed = model(**inputs, **extra)
    real = inputs["attention_mask"].bool()
    assert list(packed.keys()) == list(padded.keys())
    for name, ref in padded.items():
        if not isinstance(ref, torch.Tensor):
            continue
        got = packed[name]
        if got.shape != ref.shape:  # per-token: the real tokens of the padded output, row after row
            ref = ref[real]
        assert_close(
            got, None, ref, torch.float32, what=f"{type(model).__name__} {name} under packed_outputs"
        )


@pytest.mark.parametrize("keep", [1, 3, torch.tensor([0, 5])], ids=["last", "last-3", "positions"])
@pytest.mark.parametrize("model_type", CAUSAL)
def test_packed_outputs_keep_the_logits_of_logits_to_keep_padded(model_type, keep):
    """A causal LM's ``logits_to_keep`` picks positions of the padded layout: its logits are (batch, kept,
    vocab) inside packed_outputs() as outside (they indexed the packed states as padded: 'mat1 and mat2
    shapes cannot be multiplied'), and so is what ``generate`` reads."""
    model = build(model_type, "causal-lm", {})
    inputs = batch(model, "causal-lm", "right")
    with torch.no_grad():
        padded = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        with packed_outputs():
            packed = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    assert_close(packed, None, padded, torch.float32, what=f"{type(model).__name__} logits_to_keep={keep}")


#: heads whose loss reads per-token logits
PER_TOKEN_LOSS = ("pretraining", "causal-lm", "masked-lm", "token-classification")


def targets(model_type, task, real):
    """Targets of ``task`` for a batch whose real tokens are ``real`` (per-token labels -100 on padding)."""
    g = torch.Generator().manual_seed(1)
    if task in PER_TOKEN_LOSS:
        top = (
            2
            if (task == "pretraining" and model_type == "electra")
            else 3
            if task == "token-classification"
            else 100
        )
        out = {"labels": torch.where(real, torch.randint(0, top, real.shape, generator=g), -100)}
        if task == "pretraining" and model_type == "bert":
            out["next_sentence_label"] = torch.tensor([0, 1, 0])
        return out
    if task == "question-answering":
        return {"start_positions": torch.tensor([1, 2, 3]), "end_positions": torch.tensor([4, 3, 5])}
    return {"labels": torch.tensor([0, 1, 2] if task == "sequence-classification" else [1, 0, 1])}


@pytest.mark.parametrize(
    "model_type,task,overrides",
    [c for c in CASES if c[1] != "base"],
    ids=["-".join([mt, task, *map(str, o.values())]) for mt, task, o in CASES if task != "base"],
)
def test_labels_inside_packed_outputs(model_type, task, overrides):
    """packed_outputs() is for inference: a head whose loss reads its per-token logits refuses labels there
    by name, before the forward (the loss met packed logits and failed on 'Expected input batch_size (22) to
    match target batch_size (33)', or an IndexError); the others give the padded forward's loss."""
    model = build(model_type, task, overrides)
    inputs = batch(model, task, "right")
    inputs.update(targets(model_type, task, inputs["attention_mask"].bool()))
    extra = {"use_cache": False} if task == "causal-lm" else {}
    with torch.no_grad():
        padded = model(**inputs, **extra)
        with packed_outputs():
            if task in PER_TOKEN_LOSS:
                with pytest.raises(
                    ValueError, match=rf"{type(model).__name__} got labels inside .*packed_outputs"
                ):
                    model(**inputs, **extra)
                return
            packed = model(**inputs, **extra)
    assert_close(packed.loss, None, padded.loss, torch.float32, what=f"{type(model).__name__} loss")
