"""DistilBERT on the shared engine, against transformers' own classes.

Tiny random models saved by transformers and loaded by fastbert; parity by ``fastbert.core.tolerances``
(transformers in float64 the reference, its fp32 output PyTorch's own error) on padded batches of odd
lengths, with the heads' losses; the config's own field names survive a round trip through transformers.
"""

import json
import warnings

import pytest
import torch
from model_helpers import (
    FIRST_TOKEN_HEADS,
    INTERPRET,
    judge_all,
    minilm_folder,
    perturb_norms_and_biases,
    require_transformers,
)

import fastbert
from fastbert import registry
from fastbert.core.tolerances import assert_close

transformers = require_transformers()

TINY = dict(vocab_size=99, dim=36, n_layers=2, n_heads=3, hidden_dim=37, max_position_embeddings=40)
TASKS = list(registry.family("distilbert").classes)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache = {}

    def get(task, **overrides):
        key = (task, tuple(sorted(overrides.items())))
        if key not in cache:
            torch.manual_seed(0)
            labels = 2 if task == "question-answering" else 3
            config = transformers.DistilBertConfig(**{**TINY, **overrides}, num_labels=labels)
            hf = getattr(transformers, registry.family("distilbert").classes[task])(config).eval()
            perturb_norms_and_biases(hf)
            folder = tmp_path_factory.mktemp(f"distilbert-{task}")
            hf.save_pretrained(folder)
            cache[key] = folder, hf
        return cache[key]

    return get


def batch(task, side="right", labels=True):
    g = torch.Generator().manual_seed(5)
    shape = (3, 2, 11) if task == "multiple-choice" else (3, 11)
    lengths = torch.tensor([11, 7, 9])
    if task == "multiple-choice":
        lengths = lengths[:, None].expand(3, 2)
    pos = torch.arange(11)
    real = pos < lengths[..., None] if side == "right" else pos >= 11 - lengths[..., None]
    out = {"input_ids": torch.randint(1, 99, shape, generator=g) * real, "attention_mask": real.long()}
    if labels:
        if task == "masked-lm":
            out["labels"] = torch.where(real, torch.randint(0, 99, shape, generator=g), -100)
        elif task == "token-classification":
            out["labels"] = torch.where(real, torch.randint(0, 3, shape, generator=g), -100)
        elif task in FIRST_TOKEN_HEADS:
            out["labels"] = torch.tensor([0, 1, 1])
        elif task == "question-answering":
            out["start_positions"], out["end_positions"] = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    return out


@pytest.mark.parametrize("task", TASKS)
def test_fp32_parity_with_transformers(saved, task):
    folder, hf = saved(task)
    for backend in ("eager", "sdpa"):
        model = registry.model_class("distilbert", task).from_pretrained(folder, attn_implementation=backend)
        assert type(model).__name__ == type(hf).__name__
        assert set(model.state_dict()) == set(hf.state_dict())
        judge_all(model, hf, batch(task), task, backend)


def test_left_padding_and_triton_under_the_interpreter(saved):
    folder, hf = saved("masked-lm")
    backends = ["sdpa"] + (["triton"] if INTERPRET else [])  # a CPU model: the kernels under the interpreter
    for backend in backends:
        model = fastbert.DistilBertForMaskedLM.from_pretrained(folder, attn_implementation=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback: the backend ran (no token-type table on either)
            judge_all(model, hf, batch("masked-lm", "left", labels=False), "masked-lm", backend)


def test_config_keeps_distilbert_names_both_ways(saved, tmp_path):
    folder, hf = saved("base")
    config = fastbert.AutoConfig.from_pretrained(folder)
    assert type(config) is fastbert.DistilBertConfig
    assert (config.dim, config.n_layers, config.hidden_size, config.num_hidden_layers) == (36, 2, 36, 2)
    config.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["dim"] == 36 and "hidden_size" not in written and "type_vocab_size" not in written
    theirs = transformers.DistilBertConfig.from_pretrained(tmp_path)
    assert (theirs.dim, theirs.n_heads, theirs.hidden_dim, theirs.activation) == (36, 3, 37, "gelu")


def test_config_writes_back_the_bert_fields_a_file_had(tmp_path):
    # BERT's fields DistilBERT lacks are written only when given (as transformers keeps a config.json's extra
    # keys); fastbert dropped them on save, so a config.json lost its keys in a load/save round trip
    given = dict(
        layer_norm_eps=1e-5, type_vocab_size=2, position_embedding_type="absolute", classifier_dropout=0.3
    )
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "distilbert", "dim": 36, "n_heads": 3, **given})
    )
    for lib in (fastbert, transformers):
        lib.DistilBertConfig.from_pretrained(tmp_path).save_pretrained(tmp_path / lib.__name__)
        written = json.loads((tmp_path / lib.__name__ / "config.json").read_text())
        assert {k: written.get(k) for k in given} == given, lib
    assert not {"layer_norm_eps", "type_vocab_size"} & set(fastbert.DistilBertConfig().to_dict())


def test_sinusoidal_position_table_as_transformers():
    config = dict(TINY, sinusoidal_pos_embds=True)
    ours = fastbert.DistilBertModel(fastbert.DistilBertConfig(**config))
    theirs = transformers.DistilBertModel(transformers.DistilBertConfig(**config))
    table = ours.embeddings.position_embeddings.weight
    torch.testing.assert_close(table, theirs.embeddings.position_embeddings.weight, rtol=0, atol=0)


@pytest.mark.parametrize("task", ["base", "masked-lm", "sequence-classification"])
def test_sinusoidal_position_table_is_fixed_not_trained(saved, tmp_path, task):
    """With sinusoidal_pos_embds the position table is a fixed table (transformers 4's DistilBERT sets its
    requires_grad to False; transformers 5.25 leaves it trainable): an optimizer step leaves it as it is while
    the word embeddings learn, it stays a parameter that save_pretrained writes and from_pretrained reads back
    (frozen again). A learned table (the default) stays trainable. (It was trainable.)"""
    from safetensors.torch import load_file

    folder, _ = saved(task, sinusoidal_pos_embds=True)
    model_class = getattr(fastbert, registry.family("distilbert").classes[task])
    model = model_class.from_pretrained(folder).train()
    for m in (model, model_class(fastbert.DistilBertConfig(**TINY, sinusoidal_pos_embds=True))):
        table = m.get_position_embeddings().weight
        assert not table.requires_grad
        assert any(n.endswith("embeddings.position_embeddings.weight") for n, _ in m.named_parameters())
    table = model.get_position_embeddings().weight
    before, words = table.detach().clone(), model.get_input_embeddings().weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    out = model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    first = out.last_hidden_state if task == "base" else out.logits
    first.float().square().sum().backward()
    optimizer.step()
    assert table.grad is None
    torch.testing.assert_close(table.detach(), before, rtol=0, atol=0)
    assert not torch.equal(model.get_input_embeddings().weight.detach(), words)

    model.save_pretrained(tmp_path)
    written = load_file(tmp_path / "model.safetensors")
    key = next(k for k in written if k.endswith("embeddings.position_embeddings.weight"))
    torch.testing.assert_close(written[key], before, rtol=0, atol=0)
    back = model_class.from_pretrained(tmp_path).get_position_embeddings().weight
    assert not back.requires_grad
    torch.testing.assert_close(back.detach(), before, rtol=0, atol=0)

    learned = model_class(fastbert.DistilBertConfig(**TINY)).get_position_embeddings().weight
    assert learned.requires_grad


def test_sinusoidal_position_table_initialised_at_load_as_transformers(saved, tmp_path):
    """A position table that loading initialises (missing from the checkpoint, or re-initialised for a longer
    max_position_embeddings by ignore_mismatched_sizes) is the sinusoidal table, as transformers' (it was a
    normal draw: loading initialises the table's own module, not its Embeddings)."""
    from safetensors.torch import load_file, save_file

    folder, _ = saved("base", sinusoidal_pos_embds=True)
    kwargs = dict(max_position_embeddings=64, ignore_mismatched_sizes=True)
    ours = fastbert.DistilBertModel.from_pretrained(folder, **kwargs).embeddings.position_embeddings.weight
    theirs = transformers.DistilBertModel.from_pretrained(
        folder, **kwargs
    ).embeddings.position_embeddings.weight
    assert ours.shape == (64, 36)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)

    state = load_file(folder / "model.safetensors")
    del state["embeddings.position_embeddings.weight"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    ours = fastbert.DistilBertModel.from_pretrained(tmp_path).embeddings.position_embeddings.weight
    theirs = transformers.DistilBertModel.from_pretrained(tmp_path).embeddings.position_embeddings.weight
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("activation", "swishy", "config field activation: unsupported activation 'swishy' (activation)"),
        ("activation", 3, "config field activation must be an activation name"),
        ("dim", 35, "config field dim (35) is not a multiple of n_heads (3)"),
        ("dim", "36", "config field dim must be an integer"),
        ("n_layers", -1, "config field n_layers must be positive"),
        ("dropout", 2.0, "config field dropout is a dropout probability"),
    ],
)
def test_bad_config_fields_are_named_as_distilbert_names_them(field, value, needle):
    """A DistilBERT config's refusals name DistilBERT's fields (``activation``, ``dim``, ``n_heads``...), the
    names in its config.json, not the BERT names the engine reads (they said ``hidden_act``)."""
    with pytest.raises((ValueError, TypeError)) as caught:
        fastbert.DistilBertModel(fastbert.DistilBertConfig(**{**TINY, field: value}))
    assert needle in str(caught.value)
    assert "hidden_act" not in str(caught.value) and "hidden_size" not in str(caught.value)


@pytest.mark.parametrize("task", ["base", "masked-lm"])
def test_resize_position_embeddings_as_transformers(saved, task):
    """transformers' DistilBERT ``get_position_embeddings`` / ``resize_position_embeddings`` (bare model and
    heads): the first rows kept, ``config.max_position_embeddings`` set, the same table as transformers'
    when shrinking; longer inputs then run (transformers' ``position_ids`` buffer kept its old length, so
    there they fail). With ``sinusoidal_pos_embds`` the table is the sinusoids again (transformers 5.25's
    resize raises AttributeError there)."""
    folder, hf = saved(task)
    model = fastbert.AutoModel.from_pretrained(folder) if task == "base" else None
    model = model or fastbert.AutoModelForMaskedLM.from_pretrained(folder)
    old = model.get_position_embeddings().weight.detach().clone()
    assert torch.equal(old, hf.get_position_embeddings().weight)
    model.resize_position_embeddings(53)
    table = model.get_position_embeddings().weight
    assert table.shape == (53, 36) and torch.equal(table[:40], old) and table.requires_grad
    assert model.config.max_position_embeddings == 53
    model.eval()(input_ids=torch.randint(1, 99, (2, 50)))
    model.resize_position_embeddings(17)
    assert torch.equal(model.get_position_embeddings().weight, old[:17])
    with pytest.raises(ValueError, match="must be at least 1"):
        model.resize_position_embeddings(0)
    sin_folder, _ = saved("masked-lm", sinusoidal_pos_embds=True)
    sin = fastbert.AutoModelForMaskedLM.from_pretrained(sin_folder)
    sin.resize_position_embeddings(61)
    from fastbert.models.distilbert.modeling import sinusoidal_table

    assert torch.allclose(sin.get_position_embeddings().weight, sinusoidal_table(61, 36))


def test_save_reload_in_transformers_and_from_transformers_shares_one_qkv_storage(saved, tmp_path):
    folder, hf = saved("question-answering")
    model = fastbert.AutoModelForQuestionAnswering.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    again = transformers.DistilBertForQuestionAnswering.from_pretrained(tmp_path).eval()
    inputs = batch("question-answering", labels=False)
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).start_logits, hf(**inputs).start_logits, rtol=0, atol=0)
    fast = fastbert.from_transformers(again)
    attention = fast.distilbert.transformer.layer[0].attention
    hf_attention = again.distilbert.transformer.layer[0].attention
    assert attention.q_lin.weight.data_ptr() == hf_attention.q_lin.weight.data_ptr()
    with torch.no_grad():
        assert attention.fused_qkv()[0].data_ptr() == attention.q_lin.weight.data_ptr()  # one GEMM, no copy
    judge_all(fast, again, inputs, "question-answering", "sdpa")


def test_accelerate_sentence_transformer_on_distilbert(tmp_path):
    """A SentenceTransformer over DistilBERT (as msmarco-distilbert), with the MiniLM's WordPiece tokenizer."""
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    config = transformers.DistilBertConfig(**{**TINY, "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(3)
    perturb_norms_and_biases(transformers.DistilBertModel(config)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    def build():
        return SentenceTransformer(
            modules=[Transformer(str(tmp_path), max_seq_length=40), Pooling(36)], device="cpu"
        )

    sentences = [
        "a man is eating food.",
        "paris",
        "",
        "the quick brown fox jumps over the lazy dog again and again",
    ]
    plain = build()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastbert.accelerate.AccelerateWarning)
        fast = fastbert.accelerate(build())
    assert type(fast[0].auto_model) is fastbert.DistilBertModel
    ref = build().to(torch.float64).encode(sentences, convert_to_tensor=True)
    ours, theirs = (m.encode(sentences, convert_to_tensor=True) for m in (fast, plain))
    assert_close(ours, theirs, ref, torch.float32, what="sentence_embedding")


@pytest.mark.parametrize("value", [2.0, -0.1, float("nan"), "0.1"])
def test_bad_head_dropouts_are_refused_by_their_names(value):
    """DistilBERT's ``qa_dropout`` / ``seq_classif_dropout`` and ELECTRA's summary dropouts, read by their heads
    only: a value that is no probability is refused naming the field (torch's message named none; NaN was
    taken, a string failed in a comparison)."""
    for cls, field in (
        (fastbert.DistilBertForQuestionAnswering, "qa_dropout"),
        (fastbert.DistilBertForSequenceClassification, "seq_classif_dropout"),
        (fastbert.DistilBertForMultipleChoice, "seq_classif_dropout"),
    ):
        with pytest.raises(ValueError, match=f"config field {field} is a dropout probability"):
            cls(fastbert.DistilBertConfig(**{**TINY, field: value}))
    electra = dict(
        vocab_size=99, embedding_size=24, hidden_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    for field in ("summary_first_dropout", "summary_last_dropout"):
        with pytest.raises(ValueError, match=f"config field {field} is a dropout probability"):
            fastbert.ElectraForMultipleChoice(fastbert.ElectraConfig(**electra, **{field: value}))
    fastbert.ElectraForMultipleChoice(fastbert.ElectraConfig(**electra, summary_first_dropout=None))


def test_is_decoder_in_the_config_leaves_attention_bidirectional(saved):
    """transformers' DistilBERT attends both ways whatever ``is_decoder`` says (it has no decoder); fastbert's
    engine made a config with ``is_decoder: true`` causal."""
    folder, hf = saved("masked-lm", is_decoder=True)
    for backend in ("eager", "sdpa"):
        model = fastbert.DistilBertForMaskedLM.from_pretrained(folder, attn_implementation=backend)
        assert model.config.is_decoder
        judge_all(model, hf, batch("masked-lm"), "masked-lm", backend)
