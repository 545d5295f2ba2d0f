"""Seeded cases of transformers' ``PreTrainedModel`` API over every family and head class, fastbert against
transformers on the same weights (a tiny random model built by transformers, saved to a temporary folder and
loaded by fastbert): parameter and state-dict names in order, ``num_parameters``, the structural attributes,
input/output embeddings (get, set, tied and untied), ``resize_token_embeddings`` (larger, smaller,
``pad_to_multiple_of``, ``mean_resizing``: the same rows for the same seed, the same outputs after),
gradient checkpointing (the same gradients, reentrant or not), ``enable_input_require_grads``, ``train()`` /
``eval()``, ``half()`` / ``to(dtype)`` then forward, ``generate`` on the causal-LM heads (the same tokens for the
same seed, with and without the cache), and transformers 4's helpers that transformers 5 dropped
(``get_extended_attention_mask``, ``invert_attention_mask``, ``get_head_mask``, ``estimate_tokens``,
``floating_point_ops``) against a port of transformers 4's code.

Where transformers 5 departs from transformers 4 (the spec; README, compatibility), the transformers 4 value is
expected: RoBERTa's embeddings register ``position_embeddings`` second (transformers 5: last), XLM-R's and
CamemBERT's head classes register the encoder before the head (transformers 5: after, which also names a tied
decoder weight ``lm_head.decoder.weight`` and counts it in ``num_parameters(exclude_embeddings=True)``), and
an untied RoBERTa-like LM head's ``bias`` follows its resized decoder's (transformers 4's ``_tie_weights``;
transformers 5 leaves it at the old size). MPNet: transformers has no gradient checkpointing; fastbert's is
checked against transformers' gradients without it.
"""

from __future__ import annotations

import copy
import random
import warnings

import pytest
import torch
from model_helpers import assert_gradients_meet_the_rule, assert_rule, require_transformers

from fastbert import registry
from fastbert.core.tolerances import assert_close

transformers = require_transformers()

#: CPU models only, no CUDA path (181 cases, minutes of CPU): CI runs it; the GPU check's tier leaves it out
pytestmark = pytest.mark.cpu_only
transformers.utils.logging.disable_progress_bar()

HF_CONFIG = {
    "bert": "BertConfig",
    "roberta": "RobertaConfig",
    "xlm-roberta": "XLMRobertaConfig",
    "camembert": "CamembertConfig",
    "distilbert": "DistilBertConfig",
    "electra": "ElectraConfig",
    "mpnet": "MPNetConfig",
    "modernbert": "ModernBertConfig",
}
ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")
VOCAB = 41
FAMILIES = registry.supported_model_types()
ALL = sorted((mt, task) for mt in FAMILIES for task in registry.family(mt).classes)
LM_TASKS = ("masked-lm", "causal-lm", "pretraining")
LM = [(mt, task) for mt, task in ALL if task in LM_TASKS]
#: the classes with output embeddings (an LM decoder; not ELECTRA's discriminator)
DECODERS = [(mt, task) for mt, task in LM if (mt, task) != ("electra", "pretraining")]


def tiny_config(model_type: str, task: str, rng: random.Random, **overrides) -> dict:
    """transformers' keyword arguments of a tiny config drawn from ``rng`` (no dropout: forwards compare)."""
    heads = rng.choice((1, 2))
    hidden = heads * rng.choice((4, 6))
    inter = rng.choice((9, 13))
    if model_type == "distilbert":
        cfg = dict(
            dim=hidden, n_layers=2, n_heads=heads, hidden_dim=inter, dropout=0.0, attention_dropout=0.0
        )
        cfg.update(seq_classif_dropout=0.0, qa_dropout=0.0)
        cfg.update(pad_token_id=rng.choice((0, 3)), sinusoidal_pos_embds=rng.random() < 0.3)
    elif model_type == "modernbert":
        cfg = dict(
            hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads, intermediate_size=inter
        )
        cfg.update(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
        cfg.update(local_attention=4, global_attn_every_n_layers=2, decoder_bias=rng.random() < 0.7)
    else:
        cfg = dict(
            hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads, intermediate_size=inter
        )
        cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        if model_type in ROBERTA_LIKE:
            cfg["pad_token_id"] = rng.choice((1, 3))
        elif model_type != "mpnet":
            cfg["pad_token_id"] = rng.choice((0, 3))
        if model_type == "electra":
            cfg["embedding_size"] = hidden + rng.choice((-1, 0, 3))
    cfg.update(vocab_size=VOCAB, max_position_embeddings=24)
    if task == "causal-lm":
        cfg["is_decoder"] = True
    return {**cfg, **overrides}


def pad_id(model_type: str, cfg: dict) -> int:
    return 1 if model_type == "mpnet" else cfg.get("pad_token_id", 0)


_PAIRS: dict = {}


def make_pair(tmp_path_factory, model_type: str, task: str, seed: int, **overrides):
    """(transformers model, fastbert model, config kwargs) for one case, both in eval mode; fresh copies of one
    saved model per case (built once per worker)."""
    key = (model_type, task, seed, tuple(sorted(overrides.items())))
    if key not in _PAIRS:
        rng = random.Random(f"{model_type}/{task}/{seed}")
        cfg = tiny_config(model_type, task, rng, **overrides)
        torch.manual_seed(seed)
        name = registry.family(model_type).classes[task]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf = getattr(transformers, name)(getattr(transformers, HF_CONFIG[model_type])(**cfg))
            with torch.no_grad():  # LayerNorms and biases off their init, so that a wrong wiring shows
                for n, p in hf.named_parameters():
                    if "norm" in n.lower() or n.endswith("bias"):
                        p.add_(torch.randn_like(p) * 0.1)
            if cfg.get("sinusoidal_pos_embds"):  # a fixed table, as transformers 4 (5.25 leaves it trainable)
                hf.get_position_embeddings().weight.requires_grad_(False)
            folder = tmp_path_factory.mktemp("api")
            hf.save_pretrained(folder)
            fb = registry.model_class(model_type, task).from_pretrained(folder)
        _PAIRS[key] = (hf.eval(), fb.eval(), cfg)
    hf, fb, cfg = _PAIRS[key]
    return copy.deepcopy(hf), copy.deepcopy(fb), cfg


def batch(model_type: str, task: str, cfg: dict, seed: int, vocab: int = VOCAB, labels: bool = True) -> dict:
    """A right-padded batch (one row shorter) with the head's labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (2, 6), generator=g)
    ids[0, -1] = vocab - 1  # the last row of the vocabulary (a new one after a resize)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    ids = ids.masked_fill(mask == 0, pad_id(model_type, cfg))
    out = dict(input_ids=ids, attention_mask=mask)
    if task == "multiple-choice":
        out = {k: v[:, None].expand(2, 2, 6).contiguous() for k, v in out.items()}
        # the second choice's real tokens differ: with two equal choices the loss's gradient is zero in exact
        # arithmetic (softmax 0.5 / 0.5), and a gradient check compared rounding noise with rounding noise
        second = out["input_ids"][:, 1]
        out["input_ids"][:, 1] = torch.where(mask == 1, (second - 4 + 1) % (vocab - 4) + 4, second)
    if not labels:
        return out
    if task in ("masked-lm", "causal-lm") or (task == "pretraining" and model_type == "bert"):
        out["labels"] = ids.masked_fill(mask == 0, -100)
        if task == "pretraining":
            out["next_sentence_label"] = torch.tensor([0, 1])
    elif task == "pretraining":  # ELECTRA's discriminator: replaced or not
        out["labels"] = torch.randint(0, 2, ids.shape, generator=g)
    elif task == "token-classification":
        out["labels"] = torch.randint(0, 2, ids.shape, generator=g).masked_fill(mask == 0, -100)
    elif task == "question-answering":
        out["start_positions"], out["end_positions"] = torch.tensor([1, 2]), torch.tensor([3, 3])
    elif task != "base":
        out["labels"] = torch.tensor([0, 1])
    return out


def scalar(output, mask: torch.Tensor) -> torch.Tensor:
    """The loss, or (base models) the sum of the real tokens' states."""
    if getattr(output, "loss", None) is not None:
        return output.loss
    return (output[0] * mask[..., None]).sum()


def real_tokens(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token outputs on the real tokens only (padding's are not compared)."""
    if x.shape[: mask.dim()] != mask.shape:
        return x
    return x * mask.to(x.dtype).view(*mask.shape, *([1] * (x.dim() - mask.dim())))


# --------------------------------------------------------------------------------------------- transformers 4
def transformers4_names(model_type: str, names: list[str]) -> list[str]:
    """transformers 5's parameter / state-dict order put back to transformers 4's (module docstring)."""
    names = list(names)
    if model_type in ROBERTA_LIKE:
        for name in [n for n in names if n.endswith("embeddings.position_embeddings.weight")]:
            names.remove(name)
            names.insert(names.index(name.replace("position_", "word_")) + 1, name)
        if model_type != "roberta":  # the encoder first, then the head
            names = [n for n in names if n.startswith("roberta.")] + [
                n for n in names if not n.startswith("roberta.")
            ]
    return names


def transformers4_named_parameters(model_type: str, hf) -> list[str]:
    """The names ``named_parameters()`` gives in transformers 4: its order, each tensor under its first name."""
    every = dict(hf.named_parameters(remove_duplicate=False))
    seen, names = set(), []
    for name in transformers4_names(model_type, list(every)):
        if id(every[name]) not in seen:
            seen.add(id(every[name]))
            names.append(name)
    return names


def transformers4_num_parameters(model_type: str, hf, exclude_embeddings: bool) -> int:
    """transformers 4's ``num_parameters``: embedding weights recognised by their module's name."""
    if not exclude_embeddings:
        return hf.num_parameters()
    embeddings = {f"{n}.weight" for n, m in hf.named_modules() if isinstance(m, torch.nn.Embedding)}
    params = dict(hf.named_parameters(remove_duplicate=False))
    names = transformers4_named_parameters(model_type, hf)
    return sum(params[n].numel() for n in names if n not in embeddings)


def t4_extended_attention_mask(attention_mask, input_shape, is_decoder, dtype):
    """transformers 4.57's ``ModuleUtilsMixin.get_extended_attention_mask``."""
    if attention_mask.dim() == 3:
        extended = attention_mask[:, None, :, :]
    elif is_decoder:
        batch_size, seq_length = input_shape
        seq_ids = torch.arange(seq_length)
        causal = seq_ids[None, None, :].repeat(batch_size, seq_length, 1) <= seq_ids[None, :, None]
        causal = causal.to(attention_mask.dtype)
        if causal.shape[1] < attention_mask.shape[1]:
            prefix = attention_mask.shape[1] - causal.shape[1]
            causal = torch.cat([torch.ones((batch_size, seq_length, prefix), dtype=causal.dtype), causal], -1)
        extended = causal[:, None, :, :] * attention_mask[:, None, None, :]
    else:
        extended = attention_mask[:, None, None, :]
    extended = extended.to(dtype=dtype)
    return (1.0 - extended) * torch.finfo(dtype).min


# --------------------------------------------------------------------------------------------- structure
@pytest.mark.parametrize(("model_type", "task"), ALL)
def test_structure_as_transformers(tmp_path_factory, model_type, task):
    tied = random.Random(f"tie/{model_type}/{task}").random() < 0.6
    hf, fb, _ = make_pair(tmp_path_factory, model_type, task, 0, tie_word_embeddings=tied)
    assert [n for n, _ in fb.named_parameters()] == transformers4_named_parameters(model_type, hf)
    assert list(fb.state_dict()) == transformers4_names(model_type, list(hf.state_dict()))
    for kw in ({}, dict(exclude_embeddings=True)):
        assert fb.num_parameters(**kw) == transformers4_num_parameters(
            model_type, hf, kw.get("exclude_embeddings", False)
        ), kw
    assert fb.num_parameters(only_trainable=True) == hf.num_parameters(only_trainable=True)
    fb.get_input_embeddings().weight.requires_grad_(False)
    hf.get_input_embeddings().weight.requires_grad_(False)
    assert fb.num_parameters(only_trainable=True) == hf.num_parameters(only_trainable=True)
    for name in ("main_input_name", "base_model_prefix", "dtype", "device"):
        assert getattr(fb, name) == getattr(hf, name), name
    assert type(fb.base_model).__name__ == type(hf.base_model).__name__
    assert fb.base_model is getattr(fb, fb.base_model_prefix, fb)
    assert fb.can_generate() == hf.can_generate() == (task == "causal-lm")
    assert fb.supports_gradient_checkpointing is True
    assert fb.supports_gradient_checkpointing == hf.supports_gradient_checkpointing or model_type == "mpnet"
    assert fb.config.vocab_size == hf.config.vocab_size
    assert fb.config.tie_word_embeddings == hf.config.tie_word_embeddings == tied
    assert bool(getattr(fb.config, "is_decoder", False)) == bool(getattr(hf.config, "is_decoder", False))
    # input / output embeddings: type, size, padding row, tying
    ours, theirs = fb.get_input_embeddings(), hf.get_input_embeddings()
    assert type(ours) is type(theirs) is torch.nn.Embedding
    assert (ours.num_embeddings, ours.embedding_dim, ours.padding_idx) == (
        theirs.num_embeddings,
        theirs.embedding_dim,
        theirs.padding_idx,
    )
    out_ours, out_theirs = fb.get_output_embeddings(), hf.get_output_embeddings()
    assert (out_ours is None) == (out_theirs is None)
    if out_theirs is not None:
        assert type(out_ours) is type(out_theirs)
        assert out_ours.weight.shape == out_theirs.weight.shape
        assert (out_ours.bias is None) == (out_theirs.bias is None)
        assert (out_ours.weight is ours.weight) == (out_theirs.weight is theirs.weight) == tied
        fb.tie_weights()  # tying again changes nothing, untied stays untied
        assert (fb.get_output_embeddings().weight is fb.get_input_embeddings().weight) == tied
    # memory, flops (transformers 4's Trainer reads model.floating_point_ops; 5's computes the same)
    assert fb.get_memory_footprint(return_buffers=False) == hf.get_memory_footprint(return_buffers=False)
    inputs = batch(model_type, task, fb.config.to_dict(), 0, labels=False)
    tokens = inputs["input_ids"].numel()
    assert fb.estimate_tokens(inputs) == tokens and fb.estimate_tokens({"labels": inputs["input_ids"]}) == 0
    assert fb.floating_point_ops(inputs) == 6 * tokens * fb.num_parameters(exclude_embeddings=True)
    assert fb.floating_point_ops(inputs, exclude_embeddings=False) == 6 * tokens * fb.num_parameters()
    # train() / eval() reach every module
    for model in (fb.train(), hf.train()):
        assert all(m.training for m in model.modules())
    for model in (fb.eval(), hf.eval()):
        assert not any(m.training for m in model.modules())


# --------------------------------------------------------------------------------------------- resizing
RESIZES = [
    dict(new_num_tokens=VOCAB + 9),
    dict(new_num_tokens=VOCAB - 6),
    dict(new_num_tokens=VOCAB + 2, pad_to_multiple_of=8),
    dict(new_num_tokens=None, pad_to_multiple_of=16),
    dict(new_num_tokens=VOCAB + 5, mean_resizing=False),
    dict(new_num_tokens=VOCAB - 3, mean_resizing=False),
    dict(new_num_tokens=VOCAB),
]
RESIZE_CASES = [(mt, task, tied) for mt, task in LM for tied in (True, False)] + [
    (mt, task, True) for mt, task in ALL if task in ("base", "sequence-classification") and mt != "bert"
]


@pytest.mark.parametrize(("model_type", "task", "tied"), RESIZE_CASES)
def test_resize_token_embeddings_as_transformers(tmp_path_factory, model_type, task, tied):
    rng = random.Random(f"resize/{model_type}/{task}/{tied}")
    for args in rng.sample(RESIZES, 3):
        hf, fb, cfg = make_pair(tmp_path_factory, model_type, task, 1, tie_word_embeddings=tied)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(5)
            theirs = hf.resize_token_embeddings(**args)
        torch.manual_seed(5)
        ours = fb.resize_token_embeddings(**args)
        assert ours is fb.get_input_embeddings()
        assert torch.equal(ours.weight, theirs.weight), args  # same rows kept, same rows drawn
        assert (ours.num_embeddings, ours.padding_idx) == (theirs.num_embeddings, theirs.padding_idx)
        assert fb.config.vocab_size == hf.config.vocab_size == ours.weight.shape[0], args
        head, their_head = fb.get_output_embeddings(), hf.get_output_embeddings()
        if their_head is not None:
            assert (head.weight is ours.weight) == (their_head.weight is theirs.weight) == tied
            assert torch.equal(head.weight, their_head.weight), args
            assert head.out_features == their_head.out_features == ours.weight.shape[0]
            if their_head.bias is not None:
                assert torch.equal(head.bias, their_head.bias), args
        # the state dicts: same names, shapes and values (an untied RoBERTa-like head's ``bias``: transformers
        # 4's, the resized decoder's; transformers 5 leaves the old one)
        mine, ref = fb.state_dict(), hf.state_dict()
        assert set(mine) == set(ref)
        for key in ref:
            if model_type in ROBERTA_LIKE and not tied and key == "lm_head.bias":
                assert fb.lm_head.bias is fb.lm_head.decoder.bias
                continue
            assert mine[key].shape == ref[key].shape and torch.equal(mine[key], ref[key]), (args, key)
        inputs = batch(model_type, task, cfg, 2, vocab=ours.weight.shape[0], labels=False)
        mask = inputs["attention_mask"]
        with torch.no_grad():
            ours = real_tokens(fb(**inputs)[0], mask)
        assert_rule(
            ours, hf, lambda m, inputs=inputs, mask=mask: real_tokens(m(**inputs)[0], mask), what=str(args)
        )


@pytest.mark.parametrize(("model_type", "task"), DECODERS)
def test_set_input_and_output_embeddings(tmp_path_factory, model_type, task):
    hf, fb, cfg = make_pair(tmp_path_factory, model_type, task, 3, tie_word_embeddings=False)
    width_in = fb.get_input_embeddings().embedding_dim
    head = fb.get_output_embeddings()
    torch.manual_seed(9)
    new_in = torch.nn.Embedding(VOCAB, width_in, padding_idx=fb.get_input_embeddings().padding_idx)
    new_out = torch.nn.Linear(head.in_features, VOCAB + 4, bias=head.bias is not None)
    for model in (hf, fb):
        model.set_input_embeddings(copy.deepcopy(new_in))
        model.set_output_embeddings(copy.deepcopy(new_out))
    assert torch.equal(fb.get_input_embeddings().weight, new_in.weight)
    assert torch.equal(fb.get_output_embeddings().weight, new_out.weight)
    assert type(fb.get_output_embeddings()) is torch.nn.Linear
    ours, theirs = fb.state_dict(), hf.state_dict()
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if model_type in ROBERTA_LIKE and key == "lm_head.bias":  # transformers 4 ties it on tie_weights
            assert fb.lm_head.bias is fb.lm_head.decoder.bias
            continue
        assert torch.equal(ours[key], value), key
    inputs = batch(model_type, task, cfg, 4, labels=False)
    mask = inputs["attention_mask"]
    with torch.no_grad():
        ours = real_tokens(fb(**inputs)[0], mask)
    assert ours.shape[-1] == VOCAB + 4
    assert_rule(ours, hf, lambda m: real_tokens(m(**inputs)[0], mask))


def test_set_larger_input_embeddings_takes_the_new_ids(tmp_path_factory):
    hf, fb, cfg = make_pair(tmp_path_factory, "bert", "base", 3)
    torch.manual_seed(9)
    new_in = torch.nn.Embedding(VOCAB + 4, fb.get_input_embeddings().embedding_dim)
    for model in (hf, fb):
        model.set_input_embeddings(copy.deepcopy(new_in))
    inputs = batch("bert", "base", cfg, 4, vocab=VOCAB + 4, labels=False)
    assert inputs["input_ids"].max() >= VOCAB  # ids only the new table has
    mask = inputs["attention_mask"]
    with torch.no_grad():
        ours = real_tokens(fb(**inputs)[0], mask)
    assert_rule(ours, hf, lambda m: real_tokens(m(**inputs)[0], mask))


# --------------------------------------------------------------------------------------------- training
GC_CASES = [
    (mt, task, reentrant)
    for mt in FAMILIES
    for task in random.Random(f"gc/{mt}").sample(sorted(registry.family(mt).classes), 2)
    for reentrant in (False, True)
]


@pytest.mark.parametrize(("model_type", "task", "reentrant"), GC_CASES)
def test_gradient_checkpointing_same_gradients(tmp_path_factory, model_type, task, reentrant):
    hf, fb, cfg = make_pair(tmp_path_factory, model_type, task, 4)
    inputs = batch(model_type, task, cfg, 5)
    mask = inputs["attention_mask"]
    kwargs = {"use_reentrant": reentrant}
    if model_type != "mpnet":  # transformers' MPNet has none: its gradients without it are the reference
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    fb.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    assert fb.is_gradient_checkpointing
    assert fb.is_gradient_checkpointing == hf.is_gradient_checkpointing or model_type == "mpnet"
    hf.train(), fb.train()
    hf64 = copy.deepcopy(hf).to(torch.float64)  # the rule's reference: transformers in float64
    inputs64 = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    theirs, ref = scalar(hf(**inputs), mask), scalar(hf64(**inputs64), mask)
    ours = scalar(fb(**inputs), mask)
    assert_close(ours, theirs, ref, torch.float32, what="loss")
    for out in (theirs, ref, ours):
        out.backward()
    # each module's gradients as one output: a key bias's is zero in exact arithmetic (transformers' fp32 and
    # float64 give 0 or 1e-24, fastbert's summation order 1e-13), judged at its weight's scale
    ours_names = dict(fb.named_parameters())  # a tied weight under transformers 5's other name: not judged
    assert assert_gradients_meet_the_rule(fb, hf, hf64, keep=ours_names.__contains__) > 10
    fb.gradient_checkpointing_disable()
    assert not fb.is_gradient_checkpointing


@pytest.mark.parametrize("model_type", FAMILIES)
def test_enable_input_require_grads_with_frozen_embeddings(tmp_path_factory, model_type):
    task = "sequence-classification"
    hf, fb, cfg = make_pair(tmp_path_factory, model_type, task, 6)
    inputs = batch(model_type, task, cfg, 7)
    for model in (hf, fb):
        model.train()
        model.get_input_embeddings().weight.requires_grad_(False)
        model.enable_input_require_grads()
        if model is fb or model_type != "mpnet":
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        scalar(model(**inputs), inputs["attention_mask"]).backward()
    ours = {n for n, p in fb.named_parameters() if p.grad is not None}
    assert ours == {n for n, p in hf.named_parameters() if p.grad is not None}
    assert "embeddings" not in " ".join(n for n in ours if "word_embeddings" in n or "tok_embeddings" in n)
    fb.disable_input_require_grads()
    fb.gradient_checkpointing_disable()
    with torch.no_grad():
        assert not fb.get_input_embeddings()(inputs["input_ids"]).requires_grad


DTYPE_CASES = [
    (mt, random.Random(f"dtype/{mt}").choice(sorted(registry.family(mt).classes))) for mt in FAMILIES
]


@pytest.mark.parametrize(("model_type", "task"), DTYPE_CASES)
def test_half_and_to_dtype_then_forward(tmp_path_factory, model_type, task):
    for dtype, tol in ((torch.float16, 2e-2), (torch.bfloat16, 1e-1), (torch.float64, 1e-6)):
        hf, fb, cfg = make_pair(tmp_path_factory, model_type, task, 8)
        inputs = batch(model_type, task, cfg, 9, labels=False)
        mask = inputs["attention_mask"]
        assert (fb.half() if dtype == torch.float16 else fb.to(dtype)) is fb
        hf.to(dtype)
        assert fb.dtype == hf.dtype == dtype
        assert all(p.dtype == dtype for p in fb.parameters())
        with torch.no_grad():
            ours, theirs = fb(**inputs)[0], hf(**inputs)[0]
            ref = hf.double()(**inputs)[0]
        assert ours.dtype == theirs.dtype
        err = (real_tokens(ours.double(), mask) - real_tokens(ref, mask)).abs().max().item()
        their_err = (real_tokens(theirs.double(), mask) - real_tokens(ref, mask)).abs().max().item()
        assert err <= max(3 * their_err, tol), (dtype, err, their_err)


# --------------------------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("model_type", FAMILIES)
def test_transformers4_mask_helpers(tmp_path_factory, model_type):
    _, fb, _ = make_pair(tmp_path_factory, model_type, "base", 0)
    g = torch.Generator().manual_seed(len(model_type))
    mask = (torch.rand(3, 5, generator=g) < 0.7).long()
    mask[:, 0] = 1
    for dtype in (torch.float32, torch.float16):
        for is_decoder in (False, True):
            fb.config.is_decoder = is_decoder
            ours = fb.get_extended_attention_mask(mask, (3, 5), dtype=dtype)
            assert torch.equal(ours, t4_extended_attention_mask(mask, (3, 5), is_decoder, dtype))
            cached = fb.get_extended_attention_mask(mask, (3, 2), dtype=dtype)  # 3 tokens in a cache
            assert torch.equal(cached, t4_extended_attention_mask(mask, (3, 2), is_decoder, dtype))
        fb.config.is_decoder = False
        square = (torch.rand(3, 5, 5, generator=g) < 0.5).long()
        assert torch.equal(
            fb.get_extended_attention_mask(square, (3, 5), dtype=dtype),
            t4_extended_attention_mask(square, (3, 5), False, dtype),
        )
    assert fb.get_extended_attention_mask(mask, (3, 5)).dtype == fb.dtype
    # invert_attention_mask: the model's dtype, (B, 1, 1, Lk) or (B, 1, Lq, Lk)
    for m in (mask, (torch.rand(3, 4, 5, generator=g) < 0.5).long()):
        expected = t4_extended_attention_mask(m, m.shape[:2], False, torch.float32)
        assert torch.equal(fb.invert_attention_mask(m), expected)
    causal = fb.create_extended_attention_mask_for_decoder((3, 5), mask)
    assert torch.equal(
        (1.0 - causal.float()) * torch.finfo(torch.float32).min,
        t4_extended_attention_mask(mask, (3, 5), True, torch.float32),
    )
    # get_head_mask: None → one None per layer; (heads,) / (layers, heads) → 5-D in the model's dtype
    layers, heads = 2, fb.config.num_attention_heads
    assert fb.get_head_mask(None, layers) == [None, None]
    one = torch.ones(heads, dtype=torch.long)
    assert fb.get_head_mask(one, layers).shape == (layers, 1, heads, 1, 1)
    per_layer = torch.rand(layers, heads, generator=g)
    five = fb.get_head_mask(per_layer, layers)
    assert five.dtype == fb.dtype and torch.equal(five[:, 0, :, 0, 0], per_layer)
    assert fb.get_head_mask(per_layer, layers, is_attention_chunked=True).shape == (layers, 1, heads, 1, 1, 1)


# --------------------------------------------------------------------------------------------- generate
GENERATE = [
    dict(max_new_tokens=5),
    dict(max_length=10),
    dict(max_new_tokens=5, do_sample=True),
    dict(max_new_tokens=5, do_sample=True, top_k=5, temperature=0.7, top_p=0.9),
    dict(max_new_tokens=6, eos_token_id=7, pad_token_id=3),
    dict(max_new_tokens=4, do_sample=True, num_return_sequences=2, top_k=0),
    dict(max_new_tokens=5, eos_token_id=[5, 6, 7, 8, 9, 10, 11, 12], do_sample=True, top_k=10),
]
CAUSAL = [mt for mt, task in LM if task == "causal-lm"]


@pytest.mark.parametrize("model_type", CAUSAL)
@pytest.mark.parametrize("tied", [True, False])
def test_generate_same_tokens_as_transformers(tmp_path_factory, model_type, tied):
    hf, fb, cfg = make_pair(tmp_path_factory, model_type, "causal-lm", 10, tie_word_embeddings=tied)
    assert fb.can_generate() and hf.can_generate()
    rng = random.Random(f"generate/{model_type}/{tied}")
    pad = pad_id(model_type, cfg)
    for case in rng.sample(range(len(GENERATE)), 4):
        g = torch.Generator().manual_seed(case)
        ids = torch.randint(4, VOCAB, (3, 5), generator=g)
        mask = torch.ones_like(ids)
        mask[1, :2] = 0  # left padding
        mask[2, :1] = 0
        ids = ids.masked_fill(mask == 0, pad)
        results = []
        for use_cache in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.manual_seed(11)
                theirs = hf.generate(ids, attention_mask=mask, use_cache=use_cache, **GENERATE[case])
            torch.manual_seed(11)
            ours = fb.generate(ids, attention_mask=mask, use_cache=use_cache, **GENERATE[case])
            assert ours.dtype == torch.long
            assert torch.equal(ours, theirs), (case, use_cache, ours, theirs)
            results.append(ours)
        assert torch.equal(*results)
    # no attention mask: transformers infers it from the pad id (not an eos id)
    ids = torch.randint(4, VOCAB, (2, 5), generator=torch.Generator().manual_seed(1))
    ids[1, :2] = pad
    for kw in (dict(max_new_tokens=4, pad_token_id=pad), dict(max_new_tokens=3)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = hf.generate(ids, **kw)
        assert torch.equal(fb.generate(ids, **kw), theirs), kw
    with pytest.raises(ValueError, match="num_beams=2"):  # beam search: not implemented (README)
        fb.generate(ids, num_beams=2)
