"""Fine-tuning as transformers users do it: transformers' ``Trainer`` on every head, the loss keyword
arguments, gradient checkpointing and ``enable_input_require_grads``.

Each Trainer run (dropout off, same seed, gradient accumulation 2, so that ``num_items_in_batch`` matters)
runs on fastbert's model and on transformers' model with the same weights; the losses of every micro-batch
and the weights after the run are judged by ``fastbert.core.tolerances`` against the same transformers run in
float64 (transformers' own fp32 run gives PyTorch's own error).
"""

from __future__ import annotations

import copy
import gc
import inspect
import warnings

import pytest
import torch

import fastbert
from fastbert.core.tolerances import judge
from tests.model_helpers import float64_loss, require_transformers

transformers = require_transformers()

CFG = dict(
    vocab_size=60,
    hidden_size=24,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=31,
    max_position_embeddings=32,
    type_vocab_size=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    num_labels=3,
)
BATCH, LENGTH, CHOICES, EXAMPLES = 2, 9, 2, 8

HEADS = [
    "BertForPreTraining",
    "BertLMHeadModel",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
]


def _examples(name: str) -> list[dict]:
    """Right-padded examples with the targets of each head; token labels ignore padding and some tokens."""
    g = torch.Generator().manual_seed(7)
    rows = []
    for i in range(EXAMPLES):
        shape = (CHOICES, LENGTH) if name == "BertForMultipleChoice" else (LENGTH,)
        ids = torch.randint(1, CFG["vocab_size"], shape, generator=g)
        n = 3 + (i * 5) % (LENGTH - 2)  # real tokens: 3..LENGTH
        mask = torch.zeros(shape, dtype=torch.long)
        mask[..., :n] = 1
        ids = ids * mask
        row = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        token_labels = torch.randint(0, CFG["vocab_size"], shape, generator=g).masked_fill(mask == 0, -100)
        token_labels[..., 0] = -100 if i % 2 else token_labels[..., 0]
        if name in ("BertForMaskedLM", "BertLMHeadModel"):
            row["labels"] = token_labels
        elif name == "BertForPreTraining":
            row["labels"] = token_labels
            row["next_sentence_label"] = torch.tensor(i % 2)
        elif name == "BertForTokenClassification":
            row["labels"] = token_labels.clamp(max=CFG["num_labels"] - 1).masked_fill(token_labels < 0, -100)
        elif name == "BertForQuestionAnswering":
            row["start_positions"] = torch.tensor(i % n)
            row["end_positions"] = torch.tensor((i + 2) % n)
        elif name == "BertForMultipleChoice":
            row["labels"] = torch.tensor(i % CHOICES)
        elif name == "BertForNextSentencePrediction":
            row["labels"] = torch.tensor(i % 2)
        else:
            row["labels"] = torch.tensor(i % CFG["num_labels"])
        rows.append(row)
    return rows


@pytest.fixture(autouse=True)
def _frozen_heap():
    """accelerate runs gc.collect() after every training run: objects from before the test are moved out of
    the collector's way, so that it costs milliseconds instead of a large part of the test's time."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


class _Recording(transformers.Trainer):
    """A Trainer that keeps the loss of every micro-batch (as ``training_step`` returns it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.losses: list[torch.Tensor] = []

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        self.losses.append(loss.detach().clone())
        return loss


def _train(model, name: str, tmp_path, tag: str, resume_from_checkpoint=None, **extra_args):
    settings = dict(
        output_dir=str(tmp_path / tag),
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=2,
        max_steps=2,
        learning_rate=5e-3,
        lr_scheduler_type="constant",
        seed=0,
        data_seed=0,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        optim="adamw_torch",
    )
    args = transformers.TrainingArguments(**{**settings, **extra_args})
    trainer = _Recording(
        model=model,
        args=args,
        train_dataset=_examples(name),
        data_collator=transformers.default_data_collator,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def _models(name: str):
    cfg = dict(CFG, is_decoder=name == "BertLMHeadModel")
    if name == "BertForQuestionAnswering":
        cfg["num_labels"] = 2  # start and end logits
    torch.manual_seed(0)
    hf = getattr(transformers, name)(transformers.BertConfig(**cfg))
    hf64 = copy.deepcopy(hf).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb = getattr(fastbert, name)(fastbert.BertConfig(**cfg))
    missing, unexpected = fb.load_state_dict(hf.state_dict(), strict=False)
    assert not unexpected and not [k for k in missing if "position_ids" not in k]
    return hf, hf64, fb


def _judge_runs(fb_trainer, hf_trainer, ref_trainer, fb, hf, hf64, name, before):
    assert len(fb_trainer.losses) == len(hf_trainer.losses) == 4  # 2 steps x 2 micro-batches
    for i, (ours, theirs, ref) in enumerate(zip(fb_trainer.losses, hf_trainer.losses, ref_trainer.losses)):
        v = judge(ours, theirs, ref, torch.float32)
        assert v.ok, v.message(f"{name} loss of micro-batch {i}")
    # the weights after training are one output, judged as one: Adam divides each gradient by its own scale,
    # so fp32 noise moves a weight by up to the learning rate whatever its magnitude (the key bias, whose
    # gradient is zero in exact arithmetic, moves by torch's own noise), and one tensor's torch error is one
    # draw of that noise: per tensor, a correct run was 9 times torch's own error on a (0.08) weight matrix
    theirs, ref, ours = hf.state_dict(), hf64.state_dict(), fb.state_dict()
    keys = [k for k in ref if not (k.endswith("position_ids") or k.endswith("token_type_ids"))]
    assert len(keys) > 20
    flat = lambda state: torch.cat([state[k].detach().double().flatten() for k in keys])
    v = judge(flat(ours), flat(theirs), flat(ref), torch.float32)
    assert v.ok, v.message(f"{name} weights after training")
    # the run changed the weights (a test that cannot fail is a defect)
    assert not torch.equal(ours[_PROBE], before)


_PROBE = "bert.encoder.layer.0.output.dense.weight"


@pytest.mark.parametrize("name", HEADS)
def test_trainer_same_losses_and_weights_as_transformers(name, tmp_path):
    hf, hf64, fb = _models(name)
    assert fb.accepts_loss_kwargs is True
    before = fb.state_dict()[_PROBE].clone()
    fb_run = _train(fb, name, tmp_path, "fb")
    hf_run = _train(hf, name, tmp_path, "hf")
    ref_run = _train(hf64, name, tmp_path, "ref")
    _judge_runs(fb_run, hf_run, ref_run, fb, hf, hf64, name, before)


def test_trainer_with_gradient_checkpointing_packed(tmp_path):
    """Trainer's activation (gradient) checkpointing on the causal LM (the padding-free path: its labels ignore padding):
    the same losses and weights as the run without it (recomputing on the CPU is deterministic)."""
    name = "BertLMHeadModel"
    _, _, fb = _models(name)
    fb_checkpointed = copy.deepcopy(fb)
    plain = _train(fb, name, tmp_path, "plain")
    # transformers renamed TrainingArguments.gradient_checkpointing to activation_checkpointing (after 5.17)
    params = inspect.signature(transformers.TrainingArguments.__init__).parameters
    flag = "activation_checkpointing" if "activation_checkpointing" in params else "gradient_checkpointing"
    checkpointed = _train(fb_checkpointed, name, tmp_path, "checkpointed", **{flag: True})
    assert fb_checkpointed.is_gradient_checkpointing and fb_checkpointed._require_grads_hooks
    assert not fb.is_gradient_checkpointing
    assert torch.equal(torch.stack(plain.losses), torch.stack(checkpointed.losses))
    ours, theirs = fb_checkpointed.state_dict(), fb.state_dict()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_trainer_resumes_from_a_transformers_checkpoint_of_a_tied_head(tmp_path):
    """A drop-in swap mid-training: fastbert's masked LM resumes transformers' Trainer checkpoint, which has no
    tied decoder weight (the Trainer then reads ``_keys_to_ignore_on_save``, an AttributeError before), and
    trains the second step as transformers' uninterrupted run does."""
    name = "BertForMaskedLM"
    hf, hf64, fb = _models(name)
    hf_run = _train(hf, name, tmp_path, "hf", save_strategy="steps", save_steps=1)
    ref_run = _train(hf64, name, tmp_path, "ref")
    fb_run = _train(fb, name, tmp_path, "fb", resume_from_checkpoint=str(tmp_path / "hf" / "checkpoint-1"))
    assert fb.get_output_embeddings().weight is fb.get_input_embeddings().weight
    assert len(fb_run.losses) == 2  # the second step's micro-batches
    for i, (ours, theirs, ref) in enumerate(zip(fb_run.losses, hf_run.losses[2:], ref_run.losses[2:])):
        v = judge(ours, theirs, ref, torch.float32)
        assert v.ok, v.message(f"loss of resumed micro-batch {i}")


@pytest.mark.parametrize("name", ["BertForSequenceClassification", "BertForTokenClassification"])
def test_trainer_with_neftune_noise(name, tmp_path):
    """``TrainingArguments(neftune_noise_alpha=...)``: the Trainer hooks the input embeddings, and its hook reads
    their (B, L, H) output (the noise scales with L); on the packed path the hook saw (T, H) and raised an
    IndexError. The same noise draws, hence transformers' losses and weights."""
    hf, hf64, fb = _models(name)
    before = fb.state_dict()[_PROBE].clone()
    runs = [
        _train(m, name, tmp_path, tag, neftune_noise_alpha=5.0)
        for m, tag in ((fb, "fb"), (hf, "hf"), (hf64, "ref"))
    ]
    _judge_runs(*runs, fb, hf, hf64, name, before)
    assert not fb.get_input_embeddings()._forward_hooks  # the Trainer removed its hook after training


def test_trainer_in_bf16_mixed_precision(tmp_path):
    """``TrainingArguments(bf16=True)``: accelerate converts the forward's outputs to fp32 by rebuilding them as
    ``type(out)({name: value})``, which transformers' ModelOutput reads as its fields (fastbert's took the dict
    as its loss: the Trainer's ``loss *= ...`` raised a TypeError). Losses as transformers' bf16 run's."""
    name = "BertForSequenceClassification"
    hf, hf64, fb = _models(name)
    out = fb(input_ids=torch.tensor([[5, 6, 7]]), labels=torch.tensor([1]))
    rebuilt = type(out)(dict(out))
    assert (
        list(rebuilt.keys()) == ["loss", "logits"] and rebuilt.loss is out.loss and rebuilt[1] is out.logits
    )
    fb_run = _train(fb, name, tmp_path, "fb", bf16=True)
    hf_run = _train(hf, name, tmp_path, "hf", bf16=True)
    ref_run = _train(hf64, name, tmp_path, "ref")
    assert len(fb_run.losses) == 4
    for i, (ours, theirs, ref) in enumerate(zip(fb_run.losses, hf_run.losses, ref_run.losses)):
        v = judge(ours, theirs, ref, torch.bfloat16)
        assert v.ok, v.message(f"bf16 loss of micro-batch {i}")


# --------------------------------------------------------------------------------------------- loss kwargs
def _lm_pair():
    hf, hf64, fb = _models("BertLMHeadModel")
    return hf.eval(), hf64.eval(), fb.eval()


def test_causal_lm_num_items_in_batch_and_shift_labels():
    hf, hf64, fb = _lm_pair()
    rows = _examples("BertLMHeadModel")[:3]
    batch = transformers.default_data_collator(rows)
    labels = batch.pop("labels")
    shift = torch.randint(0, CFG["vocab_size"], labels.shape).masked_fill(batch["attention_mask"] == 0, -100)
    cases = [
        dict(labels=labels),
        dict(labels=labels, num_items_in_batch=torch.tensor(40)),
        dict(labels=labels, num_items_in_batch=17),
        dict(labels=labels, shift_labels=shift),
        dict(labels=labels, shift_labels=shift, num_items_in_batch=torch.tensor(11)),
        dict(labels=labels.masked_fill(labels == -100, 5), ignore_index=5),
    ]
    for case in cases:
        ours = fb(**batch, **case).loss
        theirs = hf(**batch, **case)
        # in float64 from the float64 logits: transformers' ForCausalLMLoss casts them to float32
        ref = float64_loss("causal-lm", theirs, hf64(**batch, **case), **case)
        v = judge(ours, theirs.loss, ref, torch.float32)
        assert v.ok, v.message(f"loss with {sorted(case)}")
    # num_items_in_batch scales the summed loss: a different count gives a different loss
    a = fb(**batch, labels=labels, num_items_in_batch=10).loss
    b = fb(**batch, labels=labels, num_items_in_batch=20).loss
    torch.testing.assert_close(a, 2 * b)


def test_left_padded_causal_lm_loss_reaching_padding_runs_padded():
    """Left padding with labels on real tokens only: the shifted label of the last pad is a real token, so
    that pad's logits count in transformers' loss; fastbert must not pack them away. The leading pads attend
    no key at all (causal + padding): transformers' eager and sdpa paths disagree there (by ~1e-3), fastbert
    follows eager, so eager is the comparison."""
    hf, hf64, fb = _lm_pair()
    hf.set_attn_implementation("eager")
    hf64.set_attn_implementation("eager")
    ids = torch.randint(1, CFG["vocab_size"], (2, 7))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    labels = ids.masked_fill(mask == 0, -100)
    losses = [m(ids, attention_mask=mask, labels=labels).loss for m in (fb, hf, hf64)]
    v = judge(*losses, torch.float32)
    assert v.ok, v.message("left-padded causal loss")
    packed = fb(ids[1:], attention_mask=mask[1:], labels=labels[1:]).loss  # no padding: nothing to check
    assert torch.isfinite(packed)


@pytest.mark.parametrize("name", ["BertForMaskedLM", "BertForSequenceClassification", "BertModel"])
def test_other_classes_take_num_items_in_batch_like_transformers(name):
    """transformers' non-causal BERT heads ignore num_items_in_batch (their losses are means): the same here."""
    torch.manual_seed(0)
    model = getattr(fastbert, name)(fastbert.BertConfig(**CFG)).eval()
    ids = torch.randint(1, CFG["vocab_size"], (2, 5))
    kwargs = {"labels": torch.tensor([0, 2])} if name == "BertForSequenceClassification" else {}
    if name == "BertForMaskedLM":
        kwargs = {"labels": ids}
    a = model(ids, **kwargs)
    b = model(ids, num_items_in_batch=torch.tensor(3), **kwargs)
    assert torch.equal(a[0], b[0])
    with pytest.raises(TypeError, match="unexpected keyword"):
        model(ids, not_an_argument=1)


def test_causal_lm_logits_to_keep():
    """``logits_to_keep`` (the last k positions, or the listed ones) keeps transformers' logits there, by the
    rule against transformers in float64."""
    hf, hf64, fb = _lm_pair()
    ids = torch.randint(1, CFG["vocab_size"], (2, 6))
    with torch.no_grad():
        for keep in (1, 2, torch.tensor([0, 3])):
            ours = fb(ids, logits_to_keep=keep).logits
            assert ours.shape == (2, 1 if isinstance(keep, int) and keep == 1 else 2, CFG["vocab_size"]), keep
            v = judge(
                ours,
                hf(ids, logits_to_keep=keep).logits,
                hf64(ids, logits_to_keep=keep).logits,
                torch.float32,
            )
            assert v.ok, v.message(f"logits_to_keep={keep}")


def test_causal_lm_loss_with_logits_to_keep():
    """With ``logits_to_keep``, transformers' loss reads labels of the kept positions against the kept logits:
    the same loss here, padded or not; full-length labels are refused with one ValueError naming the shape."""
    hf, hf64, fb = _lm_pair()
    ids = torch.randint(1, CFG["vocab_size"], (2, 6))
    labels = torch.randint(1, CFG["vocab_size"], (2, 6))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    with torch.no_grad():
        for keep, kept in ((2, labels[:, -2:]), (torch.tensor([0, 3]), labels[:, [0, 3]])):
            for extra in ({}, {"attention_mask": mask}):
                args = dict(extra, labels=kept, logits_to_keep=keep)
                losses = [m(ids, **args).loss for m in (fb, hf, hf64)]
                v = judge(*losses, torch.float32)
                assert v.ok, v.message(f"loss with logits_to_keep={keep} {sorted(extra)}")
        with pytest.raises(ValueError, match=r"labels has shape \(2, 6\), expected \(2, 2\)"):
            fb(ids, labels=labels, logits_to_keep=2)


def test_causal_lm_labels_flattened_or_with_trailing_one_are_refused():
    """transformers' causal loss shifts the labels along their last dimension before flattening them: a
    flattened (B * L,) tensor is shifted across rows there (the last token of a row predicts the next row's
    first), a (B, L, 1) one leaves no label (NaN). Read as (B, L), as the other token heads read them, they gave
    another loss silently; they are refused with a ValueError naming the shape."""
    hf, hf64, fb = _lm_pair()
    ids = torch.randint(1, CFG["vocab_size"], (2, 6))
    labels = torch.randint(1, CFG["vocab_size"], (2, 6))
    for bad in (labels.reshape(-1), labels[..., None]):
        with pytest.raises(ValueError, match=r"labels has shape .*, expected \(2, 6\)"):
            fb(ids, labels=bad)
    with torch.no_grad():  # (B, L) labels: transformers' loss
        v = judge(*(m(ids, labels=labels).loss for m in (fb, hf, hf64)), torch.float32)
    assert v.ok, v.message("causal loss")


# --------------------------------------------------------------------------------------------- checkpointing
def _grads(model, ids, mask, labels):
    model.zero_grad()
    loss = model(ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    return loss.detach(), {
        n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_same_gradients_padded_and_packed(reentrant):
    torch.manual_seed(0)
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**CFG)).train()
    ids = torch.randint(1, CFG["vocab_size"], (3, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    packed_labels = ids.masked_fill(mask == 0, -100)  # labels ignore padding: the packed path
    padded_labels = ids.clone()  # labels on padding: the padded path
    for labels in (packed_labels, padded_labels):
        loss0, g0 = _grads(model, ids, mask, labels)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        assert model.is_gradient_checkpointing
        calls = []
        checkpoint_func = model.bert.encoder.layer[0]._gradient_checkpointing_func

        def counting(*args, _calls=calls, _func=checkpoint_func, **kwargs):
            _calls.append(1)
            return _func(*args, **kwargs)

        model.bert.encoder.layer[0]._gradient_checkpointing_func = counting
        loss1, g1 = _grads(model, ids, mask, labels)
        assert calls, "the checkpointed path did not run"
        model.gradient_checkpointing_disable()
        assert not model.is_gradient_checkpointing
        assert torch.equal(loss0, loss1)
        assert g0.keys() == g1.keys() and len(g0) > 10
        for n in g0:
            torch.testing.assert_close(g1[n], g0[n], rtol=0, atol=0, msg=n)


def test_gradient_checkpointing_every_n_layers_and_cache():
    torch.manual_seed(0)
    model = fastbert.BertLMHeadModel(fastbert.BertConfig(**CFG, is_decoder=True)).train()
    model.activation_checkpointing_enable(every_n_layers=2)
    flags = [layer.gradient_checkpointing for layer in model.bert.encoder.layer]
    assert flags == [True, False]
    ids = torch.randint(1, CFG["vocab_size"], (2, 5))
    with pytest.warns(UserWarning, match="use_cache"):
        out = model(ids, use_cache=True)
    assert out.past_key_values is None
    out.logits.sum().backward()


def test_enable_input_require_grads_reaches_frozen_embeddings_output():
    torch.manual_seed(0)
    model = fastbert.BertForSequenceClassification(fastbert.BertConfig(**CFG)).train()
    for p in model.parameters():
        p.requires_grad_(False)
    model.classifier.weight.requires_grad_(True)
    seen = []
    model.bert.embeddings.register_forward_hook(lambda m, a, o: seen.append(o.requires_grad))
    ids = torch.randint(1, CFG["vocab_size"], (2, 5))
    model(ids)
    model.enable_input_require_grads()
    model(ids)
    model.disable_input_require_grads()
    model(ids)
    assert seen == [False, True, False]


def test_gradient_checkpointing_saves_memory_packed():
    """What checkpointing saves on the packed path: the tensors autograd keeps for the backward pass."""
    torch.manual_seed(0)
    cfg = dict(CFG, num_hidden_layers=4, hidden_size=48, intermediate_size=96)
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**cfg)).train()
    ids = torch.randint(1, CFG["vocab_size"], (4, 24))
    mask = torch.ones_like(ids)
    mask[:, 12:] = 0
    labels = ids.masked_fill(mask == 0, -100)

    def saved_bytes():
        total = []

        def pack(t):
            total.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(ids, attention_mask=mask, labels=labels).loss.backward()
        return sum(total)

    plain = saved_bytes()
    model.gradient_checkpointing_enable()
    checkpointed = saved_bytes()
    assert checkpointed < plain / 2, (plain, checkpointed)
