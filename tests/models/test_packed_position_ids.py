"""Padding-free packed rows (transformers' ``DataCollatorWithFlattening``): position ids that restart within a
row, given without ``attention_mask``, mark sequences that attend only within themselves in transformers 5
(``masking_utils.find_packed_sequence_indices``), in the families whose masks it builds from the position ids
(BERT, RoBERTa and its subclasses, ELECTRA). fastbert attended across the whole row, as transformers 4 did:
numbers 1e-2 away from transformers 5's, with no warning. Each check is against transformers itself."""

import copy
import functools
import warnings

import pytest
import torch
from model_helpers import INTERPRET, TINY, assert_gradients_meet_the_rule, float64_loss, require_transformers

import fastbert
from fastbert.core import padding
from fastbert.core.tolerances import assert_close

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()

#: two rows of packed sequences (lengths 5, 3, 7, 1 and 7, 9): the positions restart at each
ROWS = ((5, 3, 7, 1), (7, 9))
BACKENDS = ["eager", "sdpa"] + (["triton"] if INTERPRET else [])


@functools.cache
def _transformers_reads_packed_rows(decoder: bool) -> bool:
    """Whether the installed transformers splits restarting positions without a mask (5.25 does, in encoders
    and decoders; 5.17 only in some decoders, not BERT's): probed on a tiny BERT."""
    cfg = transformers.BertConfig(**TINY, is_decoder=decoder, hidden_dropout_prob=0.0)
    torch.manual_seed(0)
    model = (transformers.BertLMHeadModel if decoder else transformers.BertModel)(cfg).eval()
    ids = torch.randint(3, TINY["vocab_size"], (1, 8))
    pos = _positions(((4, 4),))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = model(input_ids=ids, position_ids=pos, use_cache=False)[0]
        across = model(input_ids=ids, position_ids=pos, attention_mask=torch.ones_like(ids), use_cache=False)[
            0
        ]
    return not torch.allclose(split, across)


def _needs_transformers_reading(decoder: bool = False) -> None:
    if not _transformers_reads_packed_rows(decoder):
        pytest.skip(
            f"transformers {transformers.__version__} attends across a row of restarting positions in BERT's "
            f"{'decoder' if decoder else 'encoder'} (later versions read the packed sequences, which fastbert follows)"
        )


def _positions(rows=ROWS) -> torch.Tensor:
    return torch.stack([torch.cat([torch.arange(n) for n in lengths]) for lengths in rows])


def _save(tmp_path, name, **cfg):
    torch.manual_seed(0)
    cls = getattr(transformers, name)
    cls(cls.config_class(**dict(TINY, pad_token_id=1, **cfg))).save_pretrained(tmp_path)


def _load(tmp_path, name, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_backend = "sdpa" if backend == "triton" else backend
        if name.startswith("MPNet"):
            hf_backend = "eager"  # transformers' MPNet has no sdpa
        theirs = getattr(transformers, name).from_pretrained(tmp_path, attn_implementation=hf_backend).eval()
        ours = getattr(fastbert, name).from_pretrained(tmp_path, attn_implementation=backend).eval()
    return theirs, ours


def _compare(ours, theirs, kw, mask):
    """Every output transformers gives (fastbert has no empty ``cross_attentions``) within the parity rule."""
    with torch.no_grad():
        want = theirs(**kw)
        got = ours(**kw)
        ref = theirs.double()(
            **{
                k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                for k, v in kw.items()
            }
        )
        theirs.float()
    for key in want.keys():
        if key not in got.keys():
            continue
        w, g, r = want[key], got[key], ref[key]
        if not isinstance(w, tuple):
            w, g, r = (w,), (g,), (r,)
        assert len(g) == len(w), key
        for i, (a, b, c) in enumerate(zip(g, w, r)):
            assert a.shape == b.shape, (key, i, a.shape, b.shape)
            valid = mask if a.dim() == 3 and a.shape[:2] == mask.shape else None
            assert_close(a, b, c, torch.float32, valid, what=f"{key}[{i}]")
    return got


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "name", ["BertModel", "RobertaModel", "ElectraModel", "BertForMaskedLM", "BertForSequenceClassification"]
)
def test_restarting_positions_without_a_mask_attend_within_each_sequence(tmp_path, name, backend):
    _needs_transformers_reading()
    _save(tmp_path, name)
    theirs, ours = _load(tmp_path, name, backend)
    pos = _positions()
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], pos.shape)
    kw = dict(input_ids=ids, position_ids=pos, token_type_ids=torch.randint(0, 2, pos.shape))
    kw["output_hidden_states"] = True
    kw["output_attentions"] = backend == "eager"  # (B, heads, L, L), the sequences' blocks on the diagonal
    if name == "BertForMaskedLM":
        kw["labels"] = torch.where(torch.rand(pos.shape) < 0.3, ids, -100)
    got = _compare(ours, theirs, kw, torch.ones(pos.shape, dtype=torch.bool))
    # the case the old code got wrong: attending across the row (what a mask of ones asks for) differs
    with torch.no_grad():
        across = ours(**kw, attention_mask=torch.ones_like(ids))
    assert (got.hidden_states[-1] - across.hidden_states[-1]).abs().max() > 1e-2
    if kw["output_attentions"]:
        probs = got.attentions[0][0, :, 5:8]  # row 0's second sequence: keys 5..7 only
        assert probs[..., :5].abs().max() == 0 and probs[..., 8:].abs().max() == 0
        torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_positions_that_jump_forward_start_a_sequence_too(tmp_path, backend):
    """transformers 5 starts a sequence wherever a position is not the one before plus 1, forward jumps too
    (a chunk of a document packed at its own offset: 0..4, then 20..23): not only where positions restart."""
    _needs_transformers_reading()
    _save(tmp_path, "BertModel")
    theirs, ours = _load(tmp_path, "BertModel", backend)
    pos = torch.tensor([[0, 1, 2, 3, 4, 20, 21, 22, 23, 0, 1, 2], [5, 6, 7, 8, 9, 10, 0, 1, 2, 30, 31, 32]])
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], pos.shape)
    got = _compare(
        ours, theirs, dict(input_ids=ids, position_ids=pos), torch.ones(pos.shape, dtype=torch.bool)
    )
    with torch.no_grad():
        across = ours(input_ids=ids, position_ids=pos, attention_mask=torch.ones_like(ids))
    assert (got.last_hidden_state - across.last_hidden_state).abs().max() > 1e-2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("use_cache", [False, True])
def test_causal_lm_splits_the_row_only_without_a_cache(tmp_path, backend, use_cache):
    """transformers 5 reads the packed sequences only when no cache is kept: with ``use_cache=True`` its decoder
    makes one and attends causally across the row."""
    _needs_transformers_reading(decoder=True)
    _save(tmp_path, "BertLMHeadModel", is_decoder=True)
    theirs, ours = _load(tmp_path, "BertLMHeadModel", backend)
    pos = _positions()
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], pos.shape)
    _compare(
        ours, theirs, dict(input_ids=ids, position_ids=pos, use_cache=use_cache), torch.ones_like(ids).bool()
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_embeds_and_one_row_of_positions_for_the_batch(tmp_path, backend):
    """``position_ids`` of shape (1, L), as transformers broadcasts it, and ``inputs_embeds`` instead of ids."""
    _needs_transformers_reading()
    _save(tmp_path, "BertModel")
    theirs, ours = _load(tmp_path, "BertModel", backend)
    pos = _positions()[:1]
    torch.manual_seed(1)
    embeds = torch.randn(2, pos.shape[1], TINY["hidden_size"])
    _compare(ours, theirs, dict(inputs_embeds=embeds, position_ids=pos), torch.ones(2, pos.shape[1]).bool())


def test_the_packed_rows_train(tmp_path):
    """Gradients reach every sequence's tokens through the split and the join, as transformers' do."""
    _needs_transformers_reading()
    _save(tmp_path, "BertForMaskedLM", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    theirs, ours = _load(tmp_path, "BertForMaskedLM", "sdpa")
    pos = _positions()
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], pos.shape)
    ref = copy.deepcopy(theirs).double()  # the parity rule's reference: transformers in float64
    for model in (theirs, ours, ref):
        model.train()
        model(input_ids=ids, position_ids=pos, labels=ids).loss.backward()
    assert assert_gradients_meet_the_rule(ours, theirs, ref) == len(list(theirs.parameters()))


def test_positions_that_count_up_cost_no_extra_host_read(tmp_path):
    """Explicit positions that do not restart (an offset, or one sequence per row) change nothing, and the
    check rides on the forward's one host read; a mask given with restarting positions attends across the
    row, as in transformers 5 (it reads the packed sequences only without a mask)."""
    _save(tmp_path, "BertModel")
    theirs, ours = _load(tmp_path, "BertModel", "sdpa")
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], (2, 9))
    pos = (torch.arange(9) + 3)[None]
    with torch.no_grad(), padding.count_host_reads() as reads:
        ours(input_ids=ids, position_ids=pos)
    assert reads.count == 1
    _compare(ours, theirs, dict(input_ids=ids, position_ids=pos), torch.ones(2, 9).bool())
    restarting = _positions(((4, 5), (9,)))
    mask = torch.ones_like(ids)
    _compare(ours, theirs, dict(input_ids=ids, position_ids=restarting, attention_mask=mask), mask.bool())


@pytest.mark.parametrize("name", ["DistilBertModel", "MPNetModel"])
def test_families_whose_masks_ignore_positions_attend_across(tmp_path, name):
    """transformers 5 builds DistilBERT's and MPNet's masks without the position ids: the row is one sequence.
    (DistilBERT's forward takes no position ids there: only fastbert's flag is checked.)"""
    if name == "DistilBertModel":
        assert not fastbert.DistilBertModel.splits_restarting_positions
        return
    torch.manual_seed(0)
    cfg = {k: v for k, v in TINY.items() if k != "type_vocab_size"}
    transformers.MPNetModel(transformers.MPNetConfig(**cfg)).save_pretrained(tmp_path)
    theirs, ours = _load(tmp_path, name, "sdpa")
    pos = _positions()
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], pos.shape)
    _compare(ours, theirs, dict(input_ids=ids, position_ids=pos + 2), torch.ones_like(ids).bool())


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_cross_attention_of_each_sequence_reads_its_rows_encoder_states(tmp_path, backend):
    """A decoder with cross-attention: each packed sequence attends to its row's encoder states and mask."""
    _needs_transformers_reading(decoder=True)
    _save(tmp_path, "BertLMHeadModel", is_decoder=True, add_cross_attention=True)
    theirs, ours = _load(tmp_path, "BertLMHeadModel", backend)
    pos = _positions()
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], pos.shape)
    enc = torch.randn(2, 6, TINY["hidden_size"])
    enc_mask = torch.ones(2, 6, dtype=torch.long)
    enc_mask[1, 4:] = 0
    kw = dict(input_ids=ids, position_ids=pos, use_cache=False, encoder_hidden_states=enc)
    kw.update(encoder_attention_mask=enc_mask, output_attentions=backend == "eager")
    _compare(ours, theirs, kw, torch.ones_like(ids).bool())


def test_data_collator_with_flattening_batches_give_transformers_loss(tmp_path):
    """transformers' own ``DataCollatorWithFlattening`` (ids, labels, restarting positions in one row, no mask)
    on the causal LM: the loss transformers 5 gives."""
    _needs_transformers_reading(decoder=True)
    _save(tmp_path, "BertLMHeadModel", is_decoder=True)
    theirs, ours = _load(tmp_path, "BertLMHeadModel", "sdpa")
    torch.manual_seed(1)
    features = [{"input_ids": torch.randint(3, TINY["vocab_size"], (n,)).tolist()} for n in (5, 9, 3)]
    batch = transformers.DataCollatorWithFlattening()(features)
    assert "attention_mask" not in batch and batch["position_ids"].shape == (1, 17)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want, got = theirs(**batch, use_cache=False), ours(**batch, use_cache=False).loss
        # in float64 from the float64 logits: transformers' ForCausalLMLoss casts them to float32
        ref = float64_loss(
            "causal-lm", want, copy.deepcopy(theirs).double()(**batch, use_cache=False), batch["labels"]
        )
        want = want.loss
        across = ours(**batch, use_cache=False, attention_mask=torch.ones_like(batch["input_ids"])).loss
    assert_close(got, want, ref, torch.float32, what="loss")
    assert abs(across - want) > 1e-4


def _flattened_trainer_loss(model, features, collator, output_dir) -> list[float]:
    """transformers' ``Trainer`` over ``features`` (three a step, two steps, CPU, seeded, nothing saved) with
    ``collator``: the logged loss of each step."""
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=3,
        max_steps=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        logging_steps=1,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=features, data_collator=collator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("name", ["BertForMaskedLM", "BertForTokenClassification"])
@pytest.mark.parametrize("extra", [{}, {"return_flash_attn_kwargs": True, "return_seq_idx": True}])
def test_trainer_with_data_collator_with_flattening_gives_transformers_losses(tmp_path, name, extra):
    """The Trainer on ``DataCollatorWithFlattening``'s batches (one row, restarting positions, no mask): each
    step's loss is transformers 5's. With ``return_flash_attn_kwargs`` / ``return_seq_idx`` the batch also holds
    ``cu_seq_lens_q/k``, ``max_length_q/k`` and ``seq_idx``, which transformers' forward takes (its sdpa ignores
    them); fastbert refused them as unknown keywords."""
    _needs_transformers_reading()
    cfg = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if name == "BertForTokenClassification":
        cfg["num_labels"] = 3
    _save(tmp_path / "model", name, **cfg)
    theirs, ours = _load(tmp_path / "model", name, "sdpa")
    torch.manual_seed(2)
    features = []
    for n in (5, 9, 3, 7, 4, 6):
        feature = {"input_ids": torch.randint(3, TINY["vocab_size"], (n,)).tolist()}
        if name == "BertForTokenClassification":
            feature["labels"] = torch.randint(0, 3, (n,)).tolist()
        features.append(feature)
    collator = transformers.DataCollatorWithFlattening(**extra)
    exact = copy.deepcopy(theirs).double()  # the parity rule's reference: transformers in float64
    want = _flattened_trainer_loss(theirs, features, collator, tmp_path / "theirs")
    got = _flattened_trainer_loss(ours, features, collator, tmp_path / "ours")
    ref = _flattened_trainer_loss(exact, features, collator, tmp_path / "ref")
    assert len(got) == len(want) == len(ref) == 2
    assert_close(*map(torch.tensor, (got, want, ref)), torch.float32, what="Trainer losses")


def test_sequence_kwargs_that_disagree_with_the_attention_are_refused(tmp_path):
    """``cu_seq_lens_q/k``, ``max_length_q/k`` and ``seq_idx`` must mark the sequences the call attends within
    (fastbert follows the position ids, as transformers' eager and sdpa masks; its flash attention would follow
    ``cu_seq_lens``): the collator's agree; others, or any with an attention_mask (one sequence a row), are a
    ValueError naming the argument."""
    _save(tmp_path, "BertModel")
    ours = fastbert.BertModel.from_pretrained(tmp_path).eval()
    batch = transformers.DataCollatorWithFlattening(return_flash_attn_kwargs=True, return_seq_idx=True)(
        [{"input_ids": list(range(5, 5 + n))} for n in (4, 6, 2)]
    )
    del batch["labels"]  # the bare encoder takes none
    with torch.no_grad():
        ours(**batch)  # the collator's own: accepted
        wrong = dict(batch, cu_seq_lens_q=torch.tensor([0, 4, 12], dtype=torch.int32))
        with pytest.raises(ValueError, match="cu_seq_lens_q"):
            ours(**wrong)
        with pytest.raises(ValueError, match="max_length_k"):
            ours(**dict(batch, max_length_k=5))
        with pytest.raises(ValueError, match="seq_idx"):
            ours(**dict(batch, seq_idx=torch.zeros_like(batch["seq_idx"])))
        with pytest.raises(ValueError, match="cu_seq_lens_q"):
            ours(**batch, attention_mask=torch.ones_like(batch["input_ids"]))
    # a family whose mask transformers 5 builds without the positions attends across the row: refused too
    torch.manual_seed(0)
    cfg = {k: v for k, v in TINY.items() if k != "type_vocab_size"}
    transformers.MPNetModel(transformers.MPNetConfig(**cfg)).save_pretrained(tmp_path / "mpnet")
    mpnet = fastbert.MPNetModel.from_pretrained(tmp_path / "mpnet").eval()
    with torch.no_grad(), pytest.raises(ValueError, match="MPNetModel attends across each row"):
        mpnet(**dict(batch, position_ids=batch["position_ids"] + 2))


def _head_case(case: str):
    """(class name, config, inputs) of one head on the packed rows of ``ROWS``."""
    pos = _positions()
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], pos.shape)
    if case == "token-classification":
        labels = torch.randint(0, 3, pos.shape)
        return (
            "BertForTokenClassification",
            {"num_labels": 3},
            dict(input_ids=ids, position_ids=pos, labels=labels),
        )
    if case == "question-answering":
        spans = dict(start_positions=torch.tensor([3, 10]), end_positions=torch.tensor([4, 12]))
        return "BertForQuestionAnswering", {}, dict(input_ids=ids, position_ids=pos, **spans)
    if case.startswith("multiple-choice"):
        choices = torch.randint(3, TINY["vocab_size"], (2, 3, pos.shape[1]))
        # transformers views (B, C, L) positions as (B * C, L) and broadcasts a (1, L) row over the choices
        row = pos[:1] if case == "multiple-choice-one-row" else pos[:1].expand(2, 3, -1).contiguous()
        kw = dict(input_ids=choices, position_ids=row, labels=torch.tensor([0, 2]))
        return "BertForMultipleChoice", {}, kw
    if case == "pretraining":  # the pooler reads each row's first sequence (NSP)
        kw = dict(input_ids=ids, position_ids=pos, token_type_ids=torch.randint(0, 2, pos.shape))
        return "BertForPreTraining", {}, dict(kw, labels=ids, next_sentence_label=torch.tensor([0, 1]))
    if case == "electra-discriminator":
        kw = dict(input_ids=ids, position_ids=pos, labels=torch.randint(0, 2, pos.shape))
        return "ElectraForPreTraining", {}, kw
    if case == "roberta-causal-lm":  # labels: no cache (use_cache left to the config's True), the row splits
        return (
            "RobertaForCausalLM",
            {"is_decoder": True},
            dict(input_ids=ids, position_ids=pos + 2, labels=ids),
        )
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "token-classification",
        "question-answering",
        "multiple-choice",
        "multiple-choice-one-row",
        "pretraining",
        "electra-discriminator",
        "roberta-causal-lm",
    ],
)
def test_every_head_reads_the_packed_sequences(tmp_path, case):
    """Each head class on restarting positions without a mask: logits and loss as transformers 5's (per-token
    heads in the row's layout; the pooled heads on each row's first sequence; the causal LM, given labels,
    keeps no cache and so splits the row as transformers does); and the same as a tuple (``return_dict=False``)."""
    _needs_transformers_reading(decoder=case == "roberta-causal-lm")
    name, cfg, kw = _head_case(case)
    _save(tmp_path, name, **cfg)
    theirs, ours = _load(tmp_path, name, "sdpa")
    rows = kw["input_ids"].reshape(-1, kw["input_ids"].shape[-1]).shape
    got = _compare(ours, theirs, kw, torch.ones(rows, dtype=torch.bool))
    assert got.loss is not None
    with torch.no_grad():
        as_tuple = ours(**kw, return_dict=False)
        across = ours(**kw, attention_mask=torch.ones(kw["input_ids"].shape, dtype=torch.long))
    assert len(as_tuple) == len(got.to_tuple())
    for a, b in zip(as_tuple, got.to_tuple()):
        torch.testing.assert_close(a, b)
    # attending across the row (what a mask of ones asks for) gives other logits (ELECTRA's are small)
    assert (across.to_tuple()[1] - got.to_tuple()[1]).abs().max() > 1e-5


def test_gradient_checkpointing_trains_the_packed_rows_as_transformers(tmp_path):
    """A decoder in training mode with gradient checkpointing and no labels: transformers 5 turns the config's
    ``use_cache`` off before it builds the mask, so the row splits; fastbert's logits, hidden states, attention
    weights and gradients are transformers', also for positions of dtype int32 given as one (1, L) row."""
    _needs_transformers_reading(decoder=True)
    _save(
        tmp_path,
        "RobertaForCausalLM",
        is_decoder=True,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    theirs, ours = _load(tmp_path, "RobertaForCausalLM", "eager")
    pos = (_positions(((5, 3, 7, 1),)) + 2).to(torch.int32)
    torch.manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], (2, pos.shape[1]))
    outs = []
    for model in (theirs, ours, copy.deepcopy(theirs).double()):  # the last: the parity rule's reference
        model.train()
        model.gradient_checkpointing_enable()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model(input_ids=ids, position_ids=pos, output_hidden_states=True, output_attentions=True)
        (out.logits.square().mean() + out.hidden_states[1].square().mean()).backward()
        grad = model.get_input_embeddings().weight.grad
        outs.append((out.logits, out.hidden_states, out.attentions, grad))
    (lt, ht, at, gt), (lo, ho, ao, go), (lr, hr, ar, gr) = outs
    assert_close(lo, lt, lr, torch.float32, what="logits")
    for i, (a, b, c) in enumerate(zip(ho + ao, ht + at, hr + ar, strict=True)):
        assert_close(a, b, c, torch.float32, what=f"hidden state or attention {i}")
    assert_close(go, gt, gr, torch.float32, what="input embeddings' gradient")
    assert ao[0][:, :, 5:8, :5].abs().max() == 0  # the second sequence sees none of the first
