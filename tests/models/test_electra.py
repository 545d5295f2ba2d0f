"""ELECTRA on the shared engine, against transformers' own classes.

Tiny random models (``embedding_size`` != ``hidden_size``, so ``embeddings_project`` runs) saved by
transformers and loaded by fastbert; parity by ``fastbert.core.tolerances`` (transformers in float64 the reference,
its fp32 output PyTorch's own error) on padded batches of odd lengths, with the heads' losses.
"""

import warnings

import pytest
import torch
from model_helpers import (
    assert_rule,
    judge_all,
    minilm_folder,
    perturb_norms_and_biases,
    require_interpreter,
    require_transformers,
)

import fastbert
from fastbert import registry
from fastbert.core.tolerances import assert_close

transformers = require_transformers()

TINY = dict(
    vocab_size=99,
    embedding_size=20,
    hidden_size=36,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=40,
)
TASKS = list(registry.family("electra").classes)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache = {}

    def get(task, **overrides):
        key = (task, tuple(sorted(overrides.items())))
        if key not in cache:
            torch.manual_seed(0)
            labels = 2 if task == "question-answering" else 3
            config = transformers.ElectraConfig(
                **{**TINY, **overrides}, is_decoder=task == "causal-lm", num_labels=labels
            )
            hf = getattr(transformers, registry.family("electra").classes[task])(config).eval()
            perturb_norms_and_biases(hf)
            folder = tmp_path_factory.mktemp(f"electra-{task}")
            hf.save_pretrained(folder)
            cache[key] = folder, hf
        return cache[key]

    return get


def batch(task, side="right", labels=True):
    g = torch.Generator().manual_seed(4)
    shape = (3, 2, 11) if task == "multiple-choice" else (3, 11)
    lengths = torch.tensor([11, 7, 9])
    if task == "multiple-choice":
        lengths = lengths[:, None].expand(3, 2)
    pos = torch.arange(11)
    real = pos < lengths[..., None] if side == "right" else pos >= 11 - lengths[..., None]
    out = {"input_ids": torch.randint(1, 99, shape, generator=g) * real, "attention_mask": real.long()}
    if labels:
        if task in ("masked-lm", "causal-lm"):
            out["labels"] = torch.where(real, torch.randint(0, 99, shape, generator=g), -100)
        elif task == "token-classification":
            out["labels"] = torch.where(real, torch.randint(0, 3, shape, generator=g), -100)
        elif task == "pretraining":
            out["labels"] = torch.randint(0, 2, shape, generator=g)  # padded positions count not (the mask)
        elif task in ("sequence-classification", "multiple-choice"):
            out["labels"] = torch.tensor([0, 1, 1])
        elif task == "question-answering":
            out["start_positions"], out["end_positions"] = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    return out


@pytest.mark.parametrize("task", TASKS)
def test_fp32_parity_with_transformers(saved, task):
    folder, hf = saved(task)
    extra = {"use_cache": False} if task == "causal-lm" else {}
    for backend in ("eager", "sdpa"):
        model = registry.model_class("electra", task).from_pretrained(folder, attn_implementation=backend)
        assert type(model).__name__ == type(hf).__name__
        assert set(model.state_dict()) == set(hf.state_dict())
        judge_all(model, hf, batch(task), task, backend, extra)


@pytest.mark.parametrize("side", ["left", "right"])
def test_same_width_has_no_projection_and_left_padding(saved, side):
    folder, hf = saved("base", embedding_size=36)
    assert not hasattr(hf, "embeddings_project")
    model = fastbert.ElectraModel.from_pretrained(folder)
    assert "embeddings_project" not in dict(model.named_children())
    judge_all(model, hf, batch("base", side, labels=False), "base", "sdpa")


def test_triton_backend_under_the_interpreter(saved):
    require_interpreter()
    folder, hf = saved("pretraining")
    model = fastbert.ElectraForPreTraining.from_pretrained(folder, attn_implementation="triton")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback: the kernels ran
        judge_all(model, hf, batch("pretraining", labels=False), "pretraining", "triton")


def test_save_pretrained_reloads_in_transformers_and_auto_classes(saved, tmp_path):
    folder, hf = saved("masked-lm")
    model = fastbert.AutoModelForMaskedLM.from_pretrained(folder)
    assert type(model) is fastbert.ElectraForMaskedLM
    assert model.generator_lm_head.weight is model.electra.embeddings.word_embeddings.weight
    model.save_pretrained(tmp_path)
    again = transformers.ElectraForMaskedLM.from_pretrained(tmp_path).eval()
    inputs = batch("masked-lm", labels=False)
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, hf(**inputs).logits, rtol=0, atol=0)
    folder, _ = saved("pretraining")
    assert type(fastbert.AutoModelForPreTraining.from_pretrained(folder)) is fastbert.ElectraForPreTraining
    with pytest.raises(ValueError, match="ElectraForPreTraining .* has no head for fill-mask"):
        fastbert.pipeline("fill-mask", model=str(folder))


def test_accelerate_cross_encoder_on_electra(tmp_path):
    """A CrossEncoder over ELECTRA (as the ms-marco ELECTRA rerankers), with the MiniLM's WordPiece tokenizer."""
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import CrossEncoder

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    config = transformers.ElectraConfig(**{**TINY, "vocab_size": tokenizer.vocab_size}, num_labels=1)
    torch.manual_seed(2)
    perturb_norms_and_biases(transformers.ElectraForSequenceClassification(config)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    pairs = [
        ("who lives in Berlin?", "Berlin has three million people."),
        ("a", "b c d e f g"),
        ("", "empty"),
    ]
    plain = CrossEncoder(str(tmp_path), device="cpu", max_length=40)
    ref = CrossEncoder(str(tmp_path), device="cpu", max_length=40).to(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastbert.accelerate.AccelerateWarning)
        fast = fastbert.accelerate(CrossEncoder(str(tmp_path), device="cpu", max_length=40))
    assert type(fast.model) is fastbert.ElectraForSequenceClassification
    ours, theirs = fast.predict(pairs, convert_to_tensor=True), plain.predict(pairs, convert_to_tensor=True)
    assert_close(ours, theirs, ref.predict(pairs, convert_to_tensor=True), torch.float32)


def test_summary_type_attn_is_refused_by_the_multiple_choice_head_only(tmp_path):
    """transformers' ElectraSequenceSummary raises NotImplementedError for summary_type "attn", which only its
    multiple-choice head builds: every other class loads such a config (fastbert refused it for every class)."""
    config = transformers.ElectraConfig(**TINY, summary_type="attn")
    torch.manual_seed(0)
    hf = transformers.ElectraForSequenceClassification(config).eval()
    hf.save_pretrained(tmp_path)
    ours = fastbert.ElectraForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = batch("sequence-classification", labels=False)
    with torch.no_grad():
        got = ours(**inputs).logits
    assert_rule(got, hf, lambda m: m(**inputs).logits, what="logits")
    with pytest.raises(NotImplementedError):
        transformers.ElectraForMultipleChoice(config)
    with pytest.raises(NotImplementedError, match="summary_type 'attn'"):
        fastbert.ElectraForMultipleChoice.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="summary_type must be one of"):
        fastbert.ElectraForMultipleChoice(fastbert.ElectraConfig(**TINY, summary_type="max"))


def test_a_bad_summary_activation_is_refused_by_its_name():
    """The multiple-choice head's ``summary_activation`` is named when it is not an activation (the error named
    ``hidden_act``, a field the config had right)."""
    with pytest.raises(ValueError, match=r"'bogus' \(summary_activation\)"):
        fastbert.ElectraForMultipleChoice(fastbert.ElectraConfig(**TINY, summary_activation="bogus"))
