"""Seeded random parity cases: every family and head class against transformers, on odd configs and odd inputs.

Each case is one (family, class, seed): a tiny random config drawn from the seed (hidden sizes not multiples of
16, one layer, one or three heads, odd intermediate sizes, the activations the config allows, LayerNorm eps,
one token type, a nonzero pad id, untied decoders, chunked feed-forward, classifier dropout, ELECTRA's
embedding_size ...), built by transformers (eager attention), its LayerNorms and biases perturbed, saved to a
temporary folder and loaded by fastbert. Then a few input kinds drawn from the seed (batch 1, lengths 1 and the
longest input, right / left padding, padding in the middle, a fully padded row, no attention mask, bool and
float masks, no token types, ``inputs_embeds``, ``position_ids``) with labels (-100 among them), hidden states,
attentions and ``return_dict=False`` drawn too, in eval mode, on ``eager`` and ``sdpa`` (``triton`` for a few
small cases: the interpreter is slow).

Every output field is compared: names (in order), shapes, dtypes, and values by ``fastbert.core.tolerances`` --
transformers in float64 the reference, its fp32 output PyTorch's own error -- on the valid tokens. The one
documented difference is left out: on the packed backends a head that reads position 0 sees zeros there when
position 0 is padding (README, "Model families"), so those rows (and that loss) are judged on ``eager`` only.
"""

from __future__ import annotations

import random
import warnings

import pytest
import torch
from model_helpers import INTERPRET, float64_loss, perturb_norms_and_biases, require_transformers

from fastbert import registry
from fastbert.core.tolerances import assert_close

transformers = require_transformers()

#: CPU models (the triton cases skip on a GPU machine: test_family_gpu.py runs the families' kernels on CUDA):
#: CI runs it; the GPU check's tier leaves it out
pytestmark = pytest.mark.cpu_only

PREFIX = {
    "bert": "Bert",
    "roberta": "Roberta",
    "xlm-roberta": "XLMRoberta",
    "camembert": "Camembert",
    "distilbert": "DistilBert",
    "electra": "Electra",
    "mpnet": "MPNet",
    "modernbert": "ModernBert",
}
ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")
#: the longest input is max_position_embeddings - padding_idx - 1 (positions after the padding index)
OFFSET_POSITIONS = ROBERTA_LIKE + ("mpnet",)
#: families with token types
TYPED = ("bert", "electra") + ROBERTA_LIKE
VOCAB = 67
ACTS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "silu", "gelu_fast", "quick_gelu")
#: heads that read the first token (on the packed backends a padded first position reads zeros: documented)
FIRST_TOKEN = ("sequence-classification", "multiple-choice", "next-sentence-prediction", "pretraining")


# --------------------------------------------------------------------------------------------- configs
def draw_config(model_type: str, task: str, rng: random.Random) -> dict:
    """transformers' config keyword arguments of one seeded random case."""
    heads = rng.choice((1, 3, 2))
    head_dim = rng.choice((6, 10, 4)) if model_type != "modernbert" else rng.choice((6, 10, 4))
    hidden = heads * head_dim  # 4 ... 30: not multiples of 16 (but for 4 * 1 ...)
    layers = rng.choice((1, 2))
    inter = rng.choice((37, 23, 15))
    positions = rng.choice((24, 33))
    labels = 2 if task == "question-answering" else rng.choice((1, 2, 3))
    if task not in ("sequence-classification", "token-classification", "question-answering"):
        labels = 2
    if model_type == "distilbert":
        cfg = dict(
            vocab_size=VOCAB,
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=inter,
            max_position_embeddings=positions,
            activation=rng.choice(("gelu", "relu")),
            sinusoidal_pos_embds=rng.random() < 0.3,
            pad_token_id=rng.choice((0, 3)),
            seq_classif_dropout=0.2,
            qa_dropout=0.1,
        )
    elif model_type == "modernbert":
        cfg = dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=inter,
            max_position_embeddings=positions,
            hidden_activation=rng.choice(("gelu", "gelu_pytorch_tanh", "silu", "relu")),
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            cls_token_id=1,
            sep_token_id=2,
            local_attention=rng.choice((4, 6, 8)),
            global_attn_every_n_layers=rng.choice((1, 2)),
            norm_eps=rng.choice((1e-5, 1e-3)),
            norm_bias=rng.random() < 0.5,
            attention_bias=rng.random() < 0.5,
            mlp_bias=rng.random() < 0.5,
            classifier_bias=rng.random() < 0.5,
            decoder_bias=rng.random() < 0.7,
            classifier_pooling=rng.choice(("cls", "mean")),
            classifier_activation=rng.choice(("gelu", "silu")),
        )
    else:
        cfg = dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=inter,
            max_position_embeddings=positions,
            hidden_act=rng.choice(ACTS),
            layer_norm_eps=rng.choice((1e-12, 1e-5, 1e-3)),
            chunk_size_feed_forward=rng.choice((0, 0, 1)),  # transformers: a divisor of the length
            classifier_dropout=rng.choice((None, 0.3)),
        )
        if model_type != "mpnet":
            cfg["type_vocab_size"] = rng.choice((1, 2, 3))
            cfg["pad_token_id"] = (
                rng.choice((0, 1, 3)) if model_type not in ROBERTA_LIKE else rng.choice((1, 3))
            )
        if model_type == "electra":
            cfg["embedding_size"] = rng.choice((hidden, hidden + 3, max(2, hidden - 5)))
            cfg["summary_type"] = rng.choice(("first", "first", "mean", "last"))
            cfg["summary_use_proj"] = rng.random() < 0.5
            cfg["summary_activation"] = rng.choice(("gelu", "tanh"))
    if rng.random() < 0.3:
        cfg["tie_word_embeddings"] = False
    if task == "causal-lm":
        cfg["is_decoder"] = True
    if task == "sequence-classification":
        if labels == 1:
            cfg["problem_type"] = rng.choice((None, "regression"))
        else:
            cfg["problem_type"] = rng.choice(
                (None, "single_label_classification", "multi_label_classification", "regression")
            )
    cfg["num_labels"] = labels
    return cfg


def max_length(model_type: str, cfg: dict) -> int:
    n = cfg["max_position_embeddings"]
    if model_type in ROBERTA_LIKE:
        return n - cfg["pad_token_id"] - 1
    if model_type == "mpnet":
        return n - 2
    return n


def pad_id(model_type: str, cfg: dict) -> int:
    return 1 if model_type == "mpnet" else cfg.get("pad_token_id", 0)


# --------------------------------------------------------------------------------------------- inputs
KINDS = (
    "right",
    "left",
    "middle",
    "fully-padded-row",
    "no-mask",
    "bool-mask",
    "float-mask",
    "no-token-types",
    "inputs-embeds",
    "position-ids",
    "longest",
    "batch1-len1",
)


def draw_inputs(model_type, task, cfg, kind, rng: random.Random, hf) -> dict:
    """One input kind of the case: ids, mask, token types, positions or embeddings, and labels."""
    g = torch.Generator().manual_seed(rng.randrange(1 << 30))
    pad = pad_id(model_type, cfg)
    longest = max_length(model_type, cfg)
    b, seq = rng.choice((2, 3)), rng.choice((5, 7, 9))
    if kind == "longest":
        b, seq = 1, longest
    elif kind == "batch1-len1":
        b, seq = 1, 1
    choices = 2 if task == "multiple-choice" else None
    rows = b * (choices or 1)
    lengths = [rng.randint(1, seq) for _ in range(rows)]
    lengths[0] = seq  # the longest row has the batch's length
    real = torch.zeros(rows, seq, dtype=torch.bool)
    for r, n in enumerate(lengths):
        if kind == "left":
            real[r, seq - n :] = True
        elif kind == "middle" and n < seq and seq > 2:
            keep = sorted(rng.sample(range(seq), n))
            real[r, keep] = True
        else:
            real[r, :n] = True
    if kind == "middle":  # at least one hole inside a row
        real[-1] = True
        real[-1, seq // 2] = seq < 2
    if kind == "fully-padded-row" and rows > 1:
        real[-1] = False
    ids = torch.randint(4, VOCAB, (rows, seq), generator=g)
    ids = torch.where(real, ids, torch.full_like(ids, pad))
    out: dict = {}
    mask = real.long()
    if kind == "bool-mask":
        out["attention_mask"] = real
    elif kind == "float-mask":
        out["attention_mask"] = real.float()
    elif model_type == "modernbert" and task == "multiple-choice":
        out["attention_mask"] = mask  # transformers' ModernBertForMultipleChoice fails without one (mean)
    elif kind == "no-mask":
        pass
    elif kind not in ("longest", "batch1-len1") or rng.random() < 0.5:
        out["attention_mask"] = mask
    if model_type in TYPED and kind != "no-token-types" and rng.random() < 0.8:
        out["token_type_ids"] = torch.randint(0, cfg["type_vocab_size"], (rows, seq), generator=g)
    if kind == "inputs-embeds":
        width = cfg.get("embedding_size", cfg.get("hidden_size", cfg.get("dim")))
        out["inputs_embeds"] = torch.randn(rows, seq, width, generator=g)
    else:
        out["input_ids"] = ids
    if kind == "position-ids" and not (model_type == "distilbert" and task == "multiple-choice"):
        # (transformers' DistilBertForMultipleChoice does not flatten position_ids: it fails on them)
        if model_type == "modernbert":  # fastbert takes consecutive rows only (RoPE sees offsets)
            start = torch.randint(0, cfg["max_position_embeddings"] - seq + 1, (rows, 1), generator=g)
            out["position_ids"] = start + torch.arange(seq)
        else:
            low = 2 if model_type in OFFSET_POSITIONS else 0
            out["position_ids"] = torch.randint(low, cfg["max_position_embeddings"], (rows, seq), generator=g)
    if choices:
        out = {k: v.view(b, choices, *v.shape[1:]) for k, v in out.items()}
    add_labels(out, model_type, task, cfg, real.view(b, choices, seq) if choices else real, rng, g)
    return out


def add_labels(out, model_type, task, cfg, real, rng, g):
    if rng.random() < 0.25:
        return
    shape = real.shape
    b = shape[0]
    ignore_padding = rng.random() < 0.6

    def token_labels(top):
        labels = torch.randint(0, top, shape, generator=g)
        drop = torch.rand(shape, generator=g) < 0.3
        if ignore_padding:
            drop |= ~real
        return torch.where(drop, torch.full_like(labels, -100), labels)

    if task in ("masked-lm", "causal-lm"):
        out["labels"] = token_labels(VOCAB)
    elif task == "pretraining":
        if model_type == "electra":
            out["labels"] = torch.randint(0, 2, shape, generator=g)
        else:
            out["labels"] = token_labels(VOCAB)
            out["next_sentence_label"] = torch.randint(0, 2, (b,), generator=g)
    elif task == "next-sentence-prediction":
        out["labels"] = torch.randint(0, 2, (b,), generator=g)
    elif task == "token-classification":
        out["labels"] = token_labels(cfg["num_labels"])
    elif task == "multiple-choice":
        out["labels"] = torch.randint(0, shape[1], (b,), generator=g)
    elif task == "question-answering":
        top = shape[-1] + 3  # some outside the input: clamped and ignored, as transformers
        out["start_positions"] = torch.randint(0, top, (b,), generator=g)
        out["end_positions"] = torch.randint(0, top, (b,), generator=g)
    elif task == "sequence-classification":
        n, problem = cfg["num_labels"], cfg.get("problem_type")
        if problem is None:
            problem = "regression" if n == 1 else "single_label_classification"
        if problem == "regression":
            out["labels"] = torch.randn((b,) if n == 1 else (b, n), generator=g)
        elif problem == "multi_label_classification":
            out["labels"] = torch.randint(0, 2, (b, n), generator=g).float()
        else:
            out["labels"] = torch.randint(0, n, (b,), generator=g)


# --------------------------------------------------------------------------------------------- comparing
def _valid_mask(inputs: dict) -> torch.Tensor | None:
    mask = inputs.get("attention_mask")
    if mask is None:
        return None
    return mask.reshape(-1, mask.shape[-1]).bool()


def compare(ours, theirs, ref, inputs, task, backend, what):
    """Names, shapes, dtypes and values of every field (tuples: element by element)."""
    names = transformers_fields(theirs)
    assert list(ours.keys()) == names, f"{what}: fields {list(ours.keys())} != transformers' {names}"
    mask = _valid_mask(inputs)
    packed = backend != "eager"
    first_padded = mask is not None and not bool(mask[:, 0].all())
    for name in names:
        a, t, r = ours[name], theirs[name], ref[name]
        if name in ("hidden_states", "attentions"):
            assert isinstance(a, tuple) and len(a) == len(t), f"{what} {name}: {len(a)} != {len(t)}"
            for i, (x, y, z) in enumerate(zip(a, t, r)):
                where = None
                if mask is not None:
                    where = mask if name == "hidden_states" else mask[:, None, :, None].expand(y.shape)
                check(x, y, z, where, f"{what} {name}[{i}]")
            continue
        where = None
        if name == "loss":
            if packed and first_padded and task in FIRST_TOKEN:
                continue  # a padded first position reads zeros on the packed backends (documented)
        elif mask is not None and t.dim() >= 2 and tuple(t.shape[:2]) == tuple(mask.shape):
            where = mask  # per token
        elif name == "pooler_output" or (
            name in ("logits", "seq_relationship_logits") and task in FIRST_TOKEN
        ):
            if packed and mask is not None:
                where = mask[:, 0].view(t.shape[:-1]) if t.dim() == 2 and task != "multiple-choice" else None
                if task == "multiple-choice":
                    where = mask[:, 0].view(t.shape)
        check(a, t, r, where, f"{what} {name}")


def transformers_fields(out) -> list[str]:
    """transformers' field names, less the empty ``cross_attentions`` tuple transformers 5 returns with
    ``output_attentions`` for a model without cross-attention (transformers 4, the spec, gives None)."""
    return [k for k in out.keys() if not (k == "cross_attentions" and out[k] == ())]


def check(a, t, r, where, what):
    assert isinstance(a, torch.Tensor), f"{what}: {type(a).__name__}, transformers gives a tensor"
    assert a.shape == t.shape, f"{what}: shape {tuple(a.shape)} != transformers' {tuple(t.shape)}"
    assert a.dtype == t.dtype, f"{what}: dtype {a.dtype} != transformers' {t.dtype}"
    if where is None:
        where = torch.ones(t.shape, dtype=torch.bool)
    else:  # per row or per token: over the trailing dimensions too
        where = where.reshape(where.shape + (1,) * (t.dim() - where.dim())).expand(t.shape)
    # NaN where transformers' has NaN (a loss whose every target is ignored); values where both are finite
    # (transformers' float64 reference may be NaN where its fp32 output is not: a fully masked row)
    assert bool((torch.isfinite(a) == torch.isfinite(t))[where].all()), (
        f"{what}: NaN / inf unlike transformers'"
    )
    judged = where & torch.isfinite(r) & torch.isfinite(t)
    if judged.any():  # none where transformers' is NaN throughout (a loss with every target ignored)
        assert_close(a, t, r, torch.float32, judged, what=what)


def as_named(out, names):
    """A ``return_dict=False`` tuple as (name -> value) by transformers' field order."""
    assert isinstance(out, tuple), f"return_dict=False gave {type(out).__name__}"
    assert len(out) == len(names), f"tuple of {len(out)} != transformers' {len(names)} ({names})"
    return dict(zip(names, out))


# --------------------------------------------------------------------------------------------- cases
def build_cases():
    cases = []
    for model_type in PREFIX:
        for task in registry.family(model_type).classes:
            for seed in (0, 1):
                cases.append((model_type, task, seed))
    return cases


CASES = build_cases()


def run_case(
    model_type, task, seed, tmp_path, backends=("eager", "sdpa"), kinds=None, overrides=None, attentions=None
):
    """One case: the seed's config (``overrides`` on top), transformers' model saved and loaded by fastbert on
    ``backends``, then the seed's input kinds (or ``kinds``); ``attentions``: force output_attentions on / off
    (off lets the packed backends run: with it every backend runs attention eagerly)."""
    rng = random.Random(f"{model_type}/{task}/{seed}")
    cfg = {**draw_config(model_type, task, rng), **(overrides or {})}
    config = getattr(transformers, PREFIX[model_type] + "Config")(**cfg)
    class_name = registry.family(model_type).classes[task]
    torch.manual_seed(seed)
    hf = getattr(transformers, class_name)._from_config(config, attn_implementation="eager").eval()
    perturb_norms_and_biases(hf)
    hf.save_pretrained(tmp_path)
    hf64 = getattr(transformers, class_name).from_pretrained(tmp_path, attn_implementation="eager")
    hf64 = hf64.to(torch.float64).eval()
    cls = registry.model_class(model_type, task)
    models = {b: cls.from_pretrained(tmp_path, attn_implementation=b).eval() for b in backends}
    if kinds is None:
        start = rng.randrange(len(KINDS))
        kinds = [KINDS[(start + 5 * j) % len(KINDS)] for j in range(3)]
    for kind in kinds:
        inputs = draw_inputs(model_type, task, cfg, kind, rng, hf)
        extra = {}
        if rng.random() < 0.5:
            extra["output_hidden_states"] = True
        if rng.random() < 0.2 if attentions is None else attentions:  # (runs eagerly on every backend)
            extra["output_attentions"] = True
        if task == "causal-lm":
            extra["use_cache"] = False
        return_dict = rng.random() < 0.75
        inputs64 = {
            k: v.double() if v.is_floating_point() and k != "attention_mask" else v for k, v in inputs.items()
        }
        with torch.no_grad():
            theirs = hf(**inputs, **extra)
            ref = hf64(**inputs64, **extra)
            if "loss" in ref:  # in float64 (transformers' LM and token-classification losses are fp32)
                ref["loss"] = float64_loss(task, theirs, ref, inputs.get("labels"))
            for backend, model in models.items():
                what = f"{model_type} {task} seed {seed} {kind} {backend}"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    ours = model(**inputs, **extra, return_dict=return_dict)
                if backend == "triton" and not extra.get("output_attentions"):  # the kernels ran
                    assert not [w for w in caught if "fastbert" in str(w.message)], [
                        str(w.message) for w in caught
                    ]
                if not return_dict:
                    ours = as_named(ours, transformers_fields(theirs))
                compare(ours, theirs, ref, inputs, task, backend, what)


@pytest.mark.parametrize("model_type,task,seed", CASES)
def test_random_case(model_type, task, seed, tmp_path):
    run_case(model_type, task, seed, tmp_path)


#: differences these cases found, kept with the inputs that showed them (model_type, task, seed, options)
REGRESSIONS = [
    # tie_word_embeddings=False: transformers' decoder has a bias of its own (checkpoints hold two tensors);
    # fastbert tied the two and loaded either one
    ("bert", "masked-lm", 1, dict(overrides=dict(tie_word_embeddings=False), kinds=["right"])),
    ("roberta", "causal-lm", 0, dict(overrides=dict(tie_word_embeddings=False), kinds=["left"])),
    ("bert", "pretraining", 0, dict(overrides=dict(tie_word_embeddings=False), kinds=["right"])),
    # ELECTRA's multiple-choice summary "mean" / "last" reads padded positions: packed, they were zeros
    (
        "electra",
        "multiple-choice",
        1,
        dict(overrides=dict(summary_type="mean"), kinds=["right"], attentions=False),
    ),
    (
        "electra",
        "multiple-choice",
        0,
        dict(overrides=dict(summary_type="last"), kinds=["right"], attentions=False),
    ),
    # summary_type "cls_index" (no cls_index argument: the last token, as transformers) was refused at load
    (
        "electra",
        "multiple-choice",
        0,
        dict(overrides=dict(summary_type="cls_index"), kinds=["right"], attentions=False),
    ),
    # padding between real tokens: MPNet's relative bias and ModernBERT's RoPE / window saw packed offsets
    ("mpnet", "base", 0, dict(kinds=["middle"], attentions=False)),
    ("mpnet", "token-classification", 1, dict(kinds=["middle"], attentions=False)),
    ("modernbert", "base", 0, dict(overrides=dict(local_attention=4), kinds=["middle"], attentions=False)),
    ("modernbert", "masked-lm", 1, dict(kinds=["middle"], attentions=False)),
]


@pytest.mark.parametrize("model_type,task,seed,options", REGRESSIONS)
def test_found_difference(model_type, task, seed, options, tmp_path):
    run_case(model_type, task, seed, tmp_path, **options)


#: the triton backend on a few small cases (slow under the interpreter)
TRITON = [
    ("bert", "sequence-classification", 0, ["right", "left"]),
    ("xlm-roberta", "masked-lm", 1, ["left"]),
    ("mpnet", "masked-lm", 0, ["right", "middle"]),
    ("modernbert", "token-classification", 1, ["left", "middle"]),
]


@pytest.mark.skipif(not INTERPRET and not torch.cuda.is_available(), reason="needs the Triton interpreter")
@pytest.mark.parametrize("model_type,task,seed,kinds", TRITON)
def test_triton_case(model_type, task, seed, kinds, tmp_path):
    if not INTERPRET:
        pytest.skip(
            "the triton backend on CPU models needs TRITON_INTERPRET=1 (a GPU runs test_family_gpu.py)"
        )
    run_case(model_type, task, seed, tmp_path, backends=("triton",), kinds=kinds, attentions=False)


def test_untied_decoder_bias_of_a_checkpoint_with_one_bias(tmp_path):
    """tie_word_embeddings=False: a checkpoint with both biases loads each (transformers 5 saves two tensors);
    one with ``cls.predictions.bias`` alone (transformers 4 tied the two and saved one) gives the decoder that
    bias, as transformers 4 computes."""
    import os

    from safetensors.torch import load_file, save_file

    import fastbert

    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=12, num_hidden_layers=1, num_attention_heads=2, intermediate_size=13,
        tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = perturb_norms_and_biases(transformers.BertForMaskedLM(config).eval())
    hf.save_pretrained(tmp_path)
    model = fastbert.BertForMaskedLM.from_pretrained(tmp_path)
    head = model.cls.predictions
    assert head.decoder.bias is not head.bias
    torch.testing.assert_close(head.decoder.bias, hf.cls.predictions.decoder.bias, rtol=0, atol=0)
    torch.testing.assert_close(head.bias, hf.cls.predictions.bias, rtol=0, atol=0)
    path = os.path.join(tmp_path, "model.safetensors")
    state = load_file(path)
    del state["cls.predictions.decoder.bias"]
    save_file(state, path, metadata={"format": "pt"})
    model, info = fastbert.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    head = model.cls.predictions
    assert not info["missing_keys"]
    torch.testing.assert_close(head.decoder.bias, state["cls.predictions.bias"], rtol=0, atol=0)
