"""Parity with transformers for all nine classes, on tiny random configs with odd sizes, by the one rule
(fastbert.core.tolerances) on valid tokens.

fp32: fastbert (eager and sdpa) and transformers fp32 against transformers run in float64: fastbert's error
within a small multiple of transformers' own (plus a floor).
bf16: fastbert's error against transformers fp32 is bounded by a small multiple of transformers' own
bf16 error against its fp32 (plus a floor).
"""

import pytest
import torch
from model_helpers import CLASSES, float64_loss, in_float64, perturb_norms_and_biases, require_transformers

import fastbert
from fastbert.core.tolerances import assert_close

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()

CFG = dict(
    vocab_size=99,
    hidden_size=36,
    num_hidden_layers=3,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=3,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)


def hf_model(name, **overrides):
    cfg = dict(CFG, **overrides)
    if name == "BertLMHeadModel":
        cfg.setdefault("is_decoder", True)
    config = transformers.BertConfig(**cfg)
    config._attn_implementation = "eager"
    torch.manual_seed(1)
    model = getattr(transformers, name)(config).eval()
    return perturb_norms_and_biases(model)


def batch(name, b=3, seq=11):
    g = torch.Generator().manual_seed(3)
    shape = (b, 2, seq) if name == "BertForMultipleChoice" else (b, seq)
    ids = torch.randint(1, CFG["vocab_size"], shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., 7:] = 0  # padded
    mask[2, ..., 1:] = 0  # length 1
    tt = torch.randint(0, CFG["type_vocab_size"], shape, generator=g)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)


def outputs_of(out):
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def valid(t, mask):
    """Entries of t on valid tokens when t is per token, else all of t."""
    if t.dim() >= mask.dim() and tuple(t.shape[: mask.dim()]) == tuple(mask.shape):
        return t[mask.bool()]
    return t


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("name", CLASSES)
def test_fp32_parity_with_transformers(name, backend):
    hf = hf_model(name)
    fb = fastbert.from_transformers(hf, attn_implementation=backend)
    inputs = batch(name)
    with torch.no_grad():
        ref = hf(**inputs, output_hidden_states=True)
        out = fb(**inputs, output_hidden_states=True)
    exact = in_float64(hf, **inputs, output_hidden_states=True)
    ref_t, out_t, exact_t = outputs_of(ref), outputs_of(out), outputs_of(exact)
    for t in (ref_t, exact_t):
        t.pop("past_key_values", None), t.pop("cache", None)
    out_t.pop("past_key_values", None)
    assert set(out_t) == set(ref_t), (out_t.keys(), ref_t.keys())
    mask = inputs["attention_mask"].reshape(-1, inputs["attention_mask"].shape[-1])
    for key in ref_t:
        a, b = out_t[key], ref_t[key]
        assert a.shape == b.shape, key
        m = mask if a.shape[:2] == mask.shape else inputs["attention_mask"]
        assert_close(valid(a, m), valid(b, m), valid(exact_t[key], m), torch.float32, what=key)
    assert len(out.hidden_states) == CFG["num_hidden_layers"] + 1
    for i, (hs_a, hs_b, hs_r) in enumerate(zip(out.hidden_states, ref.hidden_states, exact.hidden_states)):
        assert_close(
            valid(hs_a, mask), valid(hs_b, mask), valid(hs_r, mask), torch.float32, what=f"hidden {i}"
        )


@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM", "BertForSequenceClassification"])
def test_bf16_error_within_transformers_own(name):
    hf = hf_model(name)
    inputs = batch(name)
    mask = inputs["attention_mask"]
    with torch.no_grad():
        ref32 = outputs_of(hf(**inputs))
        hf16 = outputs_of(hf.to(torch.bfloat16)(**inputs))
        hf.float()
        fb = fastbert.from_transformers(hf, attn_implementation="sdpa").to(torch.bfloat16)
        out16 = outputs_of(fb(**inputs))
    for key in ref32:
        assert out16[key].dtype == torch.bfloat16
        assert_close(
            valid(out16[key], mask), valid(hf16[key], mask), valid(ref32[key], mask), torch.bfloat16, what=key
        )


@pytest.mark.parametrize("name", CLASSES)
def test_labels_and_loss(name):
    hf = hf_model(name)
    fb = fastbert.from_transformers(hf, attn_implementation="sdpa")
    inputs = batch(name)
    b, seq = 3, inputs["input_ids"].shape[-1]
    g = torch.Generator().manual_seed(5)
    labels = {
        "BertModel": {},
        "BertForPreTraining": dict(
            labels=torch.randint(0, 99, (b, seq), generator=g), next_sentence_label=torch.tensor([0, 1, 1])
        ),
        "BertLMHeadModel": dict(labels=torch.randint(0, 99, (b, seq), generator=g)),
        "BertForMaskedLM": dict(
            labels=torch.where(
                torch.rand(b, seq, generator=g) < 0.5, -100, torch.randint(0, 99, (b, seq), generator=g)
            )
        ),
        "BertForNextSentencePrediction": dict(labels=torch.tensor([1, 0, 1])),
        "BertForSequenceClassification": dict(labels=torch.tensor([1, 0, 1])),
        "BertForMultipleChoice": dict(labels=torch.tensor([1, 0, 1])),
        "BertForTokenClassification": dict(labels=torch.randint(0, 2, (b, seq), generator=g)),
        "BertForQuestionAnswering": dict(
            start_positions=torch.tensor([1, 3, 40]), end_positions=torch.tensor([2, 5, 0])
        ),
    }[name]
    if not labels:
        pytest.skip("BertModel takes no labels")
    if "labels" in labels and labels["labels"].dim() == 2:  # no loss on padding, as a collator would do
        labels["labels"] = labels["labels"].masked_fill(inputs["attention_mask"] == 0, -100)
    with torch.no_grad():
        ref = hf(**inputs, **labels)
        out = fb(**inputs, **labels)
    # BertLMHeadModel's loss is transformers' ForCausalLMLoss, which casts the logits to float32: the float64
    # reference loss is computed from the float64 logits (the others' losses take the float64 logits as they are)
    task = "causal-lm" if name == "BertLMHeadModel" else None
    exact = float64_loss(task, ref, in_float64(hf, **inputs, **labels), labels.get("labels"))
    assert_close(out.loss, ref.loss, exact, torch.float32, what="loss")
    assert out[0] is out.loss  # tuple order as transformers: loss first


@pytest.mark.parametrize(
    "problem", ["regression", "single_label_classification", "multi_label_classification", None]
)
def test_sequence_classification_problem_types(problem):
    num_labels = 1 if problem == "regression" else 3
    hf = hf_model("BertForSequenceClassification", num_labels=num_labels, problem_type=problem)
    fb = fastbert.from_transformers(hf, attn_implementation="sdpa")
    inputs = batch("BertForSequenceClassification")
    if problem == "regression":
        labels = torch.randn(3)
    elif problem == "multi_label_classification":
        labels = torch.randint(0, 2, (3, 3)).float()
    else:
        labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        ref = hf(**inputs, labels=labels)
        out = fb(**inputs, labels=labels)
    assert_close(out.loss, ref.loss, in_float64(hf, **inputs, labels=labels).loss, torch.float32, what="loss")
    assert fb.config.problem_type == hf.config.problem_type


def test_return_dict_false_gives_tuples():
    hf = hf_model("BertForMaskedLM")
    fb = fastbert.from_transformers(hf)
    inputs = batch("BertForMaskedLM")
    with torch.no_grad():
        out = fb(**inputs, return_dict=False)
        ref = hf(**inputs, return_dict=False)
    assert isinstance(out, tuple) and len(out) == len(ref) == 1
    m = inputs["attention_mask"].bool()
    assert_close(out[0][m], ref[0][m], in_float64(hf, **inputs, return_dict=False)[0][m], torch.float32)


def test_output_attentions_eager_and_fallback():
    hf = hf_model("BertModel")
    inputs = batch("BertModel")
    with torch.no_grad():
        ref = hf(**inputs, output_attentions=True)
        fb = fastbert.from_transformers(hf, attn_implementation="eager")
        out = fb(**inputs, output_attentions=True)
        assert len(out.attentions) == CFG["num_hidden_layers"]
        ref64 = in_float64(hf, **inputs, output_attentions=True)
        for a, b, r in zip(out.attentions, ref.attentions, ref64.attentions):
            assert_close(a[0], b[0], r[0], torch.float32, what="attentions")  # unpadded row
        fb_sdpa = fastbert.from_transformers(hf, attn_implementation="sdpa")
        with pytest.warns(UserWarning, match="output_attentions") as record:
            out2 = fb_sdpa(**inputs, output_attentions=True)
    torch.testing.assert_close(out2.attentions[0], out.attentions[0])
    # said at this line (it pointed into torch's Module.__call__)
    assert [w.filename for w in record if "output_attentions" in str(w.message)] == [__file__]


def test_base_model_without_pooler():
    config = transformers.BertConfig(**CFG)
    hf = transformers.BertModel(config, add_pooling_layer=False).eval()
    fb = fastbert.from_transformers(hf)
    assert fb.pooler is None
    inputs = batch("BertModel")
    with torch.no_grad():
        out = fb(**inputs)
    assert out.pooler_output is None and "pooler_output" not in out


def test_causal_decoder_with_cache_matches_full_pass():
    hf = hf_model("BertLMHeadModel")
    fb = fastbert.from_transformers(hf, attn_implementation="sdpa")
    ids = torch.randint(1, 99, (2, 9))
    with torch.no_grad():
        full = fb(input_ids=ids, use_cache=False).logits
        theirs = hf(input_ids=ids, use_cache=False).logits
        ref = in_float64(hf, input_ids=ids, use_cache=False).logits
        assert_close(full, theirs, ref, torch.float32, what="full pass")
        first = fb(input_ids=ids[:, :6], use_cache=True)
        step = fb(input_ids=ids[:, 6:], past_key_values=first.past_key_values, use_cache=True)
    assert_close(step.logits, theirs[:, 6:], ref[:, 6:], torch.float32, what="cached steps")
    assert len(step.past_key_values) == CFG["num_hidden_layers"]
    assert step.past_key_values[0][0].shape == (2, 3, 9, 12)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_cross_attention_decoder(backend):
    hf = hf_model("BertLMHeadModel", add_cross_attention=True)
    fb = fastbert.from_transformers(hf, attn_implementation=backend)
    inputs = batch("BertLMHeadModel")
    enc = torch.randn(3, 5, CFG["hidden_size"])
    enc_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    with torch.no_grad():
        ref = hf(**inputs, encoder_hidden_states=enc, encoder_attention_mask=enc_mask, use_cache=False)
        out = fb(**inputs, encoder_hidden_states=enc, encoder_attention_mask=enc_mask, use_cache=False)
    m = inputs["attention_mask"].bool()
    kw = dict(encoder_hidden_states=enc, encoder_attention_mask=enc_mask, use_cache=False)
    assert_close(out.logits[m], ref.logits[m], in_float64(hf, **inputs, **kw).logits[m], torch.float32)


def test_left_padding_same_positions_as_padded_reference():
    """Left-padded input, packed by sdpa, equals the padded eager pass with the same positions."""
    hf = hf_model("BertModel")
    eager = fastbert.from_transformers(hf, attn_implementation="eager")
    sdpa = fastbert.from_transformers(hf, attn_implementation="sdpa")
    ids = torch.randint(1, 99, (2, 8))
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        a = eager(input_ids=ids, attention_mask=mask).last_hidden_state
        b = sdpa(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = in_float64(hf, input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.bool()
    assert_close(b[m], a[m], ref[m], torch.float32, what="left-padded sdpa")  # eager: the padded reference
    assert b[0, :3].abs().max() == 0  # padded positions are zero


def test_fully_padded_row_is_finite():
    hf = hf_model("BertForMaskedLM")
    for backend in ("eager", "sdpa"):
        fb = fastbert.from_transformers(hf, attn_implementation=backend)
        ids = torch.randint(1, 99, (2, 6))
        mask = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]])
        with torch.no_grad():
            out = fb(input_ids=ids, attention_mask=mask)
        assert torch.isfinite(out.logits).all(), backend


def test_gradients_reach_query_key_value_in_eval_mode():
    """The fused QKV GEMM keeps autograd: gradients reach the query, key and value parameters."""
    hf = hf_model("BertModel")
    fb = fastbert.from_transformers(hf, attn_implementation="sdpa").eval()
    inputs = batch("BertModel")
    with torch.inference_mode():
        fb(**inputs)  # a forward under inference mode first changes nothing
    out = fb(**inputs).last_hidden_state
    out[inputs["attention_mask"].bool()].sum().backward()
    attn = fb.encoder.layer[0].attention.self
    for lin in (attn.query, attn.key, attn.value):
        assert lin.weight.grad is not None and lin.weight.grad.abs().max() > 0
    # the key bias cancels in the softmax: its gradient is zero
    assert attn.query.bias.grad.abs().max() > 0 and attn.value.bias.grad.abs().max() > 0


def test_query_key_value_keep_their_own_requires_grad():
    """BitFit (weights frozen, biases trained): each of query/key/value's parameters keeps its flag, on both
    models, and the biases get gradients (the fused layout took the query weight's flag for all six)."""
    hf = hf_model("BertModel")
    for name, p in hf.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    fb = fastbert.from_transformers(hf, attn_implementation="sdpa")
    for model in (hf, fb):
        flags = {n: p.requires_grad for n, p in model.named_parameters()}
        assert flags == {n: n.endswith("bias") for n in flags}
    inputs = batch("BertModel")
    fb(**inputs).last_hidden_state[inputs["attention_mask"].bool()].sum().backward()
    attn = fb.encoder.layer[0].attention.self
    assert attn.query.weight.grad is None and attn.query.bias.grad.abs().max() > 0
    assert attn.value.bias.grad.abs().max() > 0


def test_a_part_in_eval_mode_stays_in_eval_mode():
    """``model.train(); model.bert.eval()`` (no dropout in the backbone): each module keeps its mode, so the
    converted backbone computes transformers' numbers while the head's dropout still runs (the whole model
    was put in training mode)."""
    hf = hf_model("BertForSequenceClassification").train()
    hf.bert.eval()
    fb = fastbert.from_transformers(hf, attn_implementation="sdpa")
    assert {n: m.training for n, m in fb.named_modules()} == {
        n: dict(hf.named_modules())[n].training for n, _ in fb.named_modules()
    }
    inputs = batch("BertModel")
    mask = inputs["attention_mask"].bool()
    with torch.no_grad():
        ours, theirs = fb.bert(**inputs).last_hidden_state, hf.bert(**inputs).last_hidden_state
    ref = in_float64(hf.bert, **inputs).last_hidden_state  # the backbone in eval mode: no dropout
    assert_close(ours, theirs, ref, torch.float32, mask, what="backbone in eval mode")


def test_model_built_in_inference_mode():
    hf = hf_model("BertModel")
    inputs = batch("BertModel")
    exact = in_float64(hf, **inputs).last_hidden_state  # before: the conversion below shares hf's tensors
    with torch.inference_mode():
        fb = fastbert.from_transformers(hf, attn_implementation="sdpa")
        out = fb(**inputs).last_hidden_state
        ref = hf(**inputs).last_hidden_state
    m = inputs["attention_mask"].bool()
    assert_close(out[m], ref[m], exact[m], torch.float32)
