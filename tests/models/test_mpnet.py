"""MPNet on the shared engine, against transformers' own classes (which have only ``eager``).

Tiny random models saved by transformers and loaded by fastbert; parity by ``fastbert.core.tolerances``
(transformers' eager in float64 the reference, its fp32 output PyTorch's own error). The relative position
bias runs in every backend: padded in ``eager``, inside the packed attention in ``sdpa`` and ``triton``
(the Triton kernel under the interpreter on the CPU), also for a batch without padding and for offsets past
the bucket table's 128.
"""

import warnings

import pytest
import torch
from model_helpers import (
    FIRST_TOKEN_HEADS,
    assert_padding_past_the_limit_runs,
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
    hidden_size=36,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=200,
)
TASKS = list(registry.family("mpnet").classes)
PAD = 1


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache = {}

    def get(task):
        if task not in cache:
            torch.manual_seed(0)
            labels = 2 if task == "question-answering" else 3
            config = transformers.MPNetConfig(**TINY, num_labels=labels)
            hf = getattr(transformers, registry.family("mpnet").classes[task])(config).eval()
            perturb_norms_and_biases(hf)
            with torch.no_grad():  # a bias that matters: the initial one is small
                hf.base_model.encoder.relative_attention_bias.weight.normal_(0, 1)
            folder = tmp_path_factory.mktemp(f"mpnet-{task}")
            hf.save_pretrained(folder)
            cache[task] = folder, hf
        return cache[task]

    return get


def batch(task, side="right", labels=True, lengths=(11, 7, 9)):
    g = torch.Generator().manual_seed(6)
    n = max(lengths)
    shape = (len(lengths), 2, n) if task == "multiple-choice" else (len(lengths), n)
    lengths = torch.tensor(lengths)
    if task == "multiple-choice":
        lengths = lengths[:, None].expand(-1, 2)
    pos = torch.arange(n)
    real = pos < lengths[..., None] if side == "right" else pos >= n - lengths[..., None]
    ids = torch.where(real, torch.randint(3, 99, shape, generator=g), torch.full(shape, PAD))
    out = {"input_ids": ids, "attention_mask": real.long()}
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
        model = registry.model_class("mpnet", task).from_pretrained(folder, attn_implementation=backend)
        assert type(model).__name__ == type(hf).__name__
        assert set(model.state_dict()) == set(hf.state_dict())
        judge_all(model, hf, batch(task), task, backend)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_offsets_past_the_bucket_table_without_padding(saved, backend):
    """150 tokens (offsets up to 149: the clamped part of the table) in a batch without padding, which the
    packed backends pack anyway so that the bias runs in the varlen attention."""
    folder, hf = saved("base")
    model = fastbert.MPNetModel.from_pretrained(folder, attn_implementation=backend)
    judge_all(model, hf, batch("base", labels=False, lengths=(150, 150)), "base", backend)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_past_the_length_limit_runs_as_transformers(saved, side):
    """Padding takes position padding_idx (1), not one of its own: a batch padded past the limit whose real
    rows fit runs in transformers (a fixed padding="max_length", pad_to_multiple_of); fastbert refused it by
    its padded length. The limit still holds for the real tokens."""
    folder, hf = saved("token-classification")
    limit = TINY["max_position_embeddings"] - PAD - 1
    assert_padding_past_the_limit_runs(fastbert.MPNetForTokenClassification, folder, hf, limit, PAD, side)


def test_triton_under_the_interpreter_left_padded(saved):
    require_interpreter()
    for task in ("base", "masked-lm"):
        folder, hf = saved(task)
        model = registry.model_class("mpnet", task).from_pretrained(folder, attn_implementation="triton")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback: the kernel ran with the bias
            judge_all(model, hf, batch(task, "left", labels=False), task, "triton")


def test_training_with_attention_dropout_runs_padded(saved):
    """The packed bias path has no dropout: a training call stays padded and its gradients reach the bias."""
    folder, _ = saved("masked-lm")
    model = fastbert.MPNetForMaskedLM.from_pretrained(folder, attn_implementation="sdpa").train()
    out = model(**batch("masked-lm"))
    out.loss.backward()
    assert model.mpnet.encoder.relative_attention_bias.weight.grad.abs().sum() > 0


def test_save_reload_in_transformers_and_accelerate_a_sentence_transformer(saved, tmp_path):
    folder, hf = saved("sequence-classification")
    model = fastbert.AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(model) is fastbert.MPNetForSequenceClassification
    model.save_pretrained(tmp_path / "saved")
    again = transformers.MPNetForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    inputs = batch("sequence-classification", labels=False)
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, hf(**inputs).logits, rtol=0, atol=0)
    fast = fastbert.from_transformers(again)  # q/k/v shared as one storage, run as one GEMM
    attention = fast.mpnet.encoder.layer[0].attention.attn
    assert attention.q.weight.data_ptr() == again.mpnet.encoder.layer[0].attention.attn.q.weight.data_ptr()
    with torch.no_grad():
        assert attention.fused_qkv()[0].data_ptr() == attention.q.weight.data_ptr()

    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    # WordPiece, as MPNet's
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    config = transformers.MPNetConfig(**{**TINY, "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(4)
    perturb_norms_and_biases(transformers.MPNetModel(config)).save_pretrained(tmp_path / "st")
    tokenizer.save_pretrained(tmp_path / "st")

    def build():
        return SentenceTransformer(modules=[Transformer(str(tmp_path / "st")), Pooling(36)], device="cpu")

    sentences = ["a man is eating food.", "paris", "", "the quick brown fox jumps over the lazy dog again"]
    plain = build()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastbert.accelerate.AccelerateWarning)
        fast = fastbert.accelerate(build())
    assert type(fast[0].auto_model) is fastbert.MPNetModel
    ref = build().to(torch.float64).encode(sentences, convert_to_tensor=True)
    ours, theirs = (m.encode(sentences, convert_to_tensor=True) for m in (fast, plain))
    assert_close(ours, theirs, ref, torch.float32, what="sentence_embedding")


@pytest.mark.parametrize("task", ["sequence-classification", "token-classification", "multiple-choice"])
def test_heads_drop_out_with_hidden_dropout_not_classifier_dropout(task):
    """transformers' MPNet heads use hidden_dropout_prob (MPNetConfig has no classifier_dropout): a config
    that sets classifier_dropout=1.0 with every other dropout 0 computes in train mode what it computes in eval."""
    config = fastbert.MPNetConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=1.0,
    )
    torch.manual_seed(0)
    model = getattr(fastbert, registry.family("mpnet").classes[task])(config)
    ids = torch.randint(4, 99, (2, 2, 7) if task == "multiple-choice" else (2, 7))
    with torch.no_grad():
        train = model.train()(input_ids=ids).logits
        evaluated = model.eval()(input_ids=ids).logits
    torch.testing.assert_close(train, evaluated, rtol=0, atol=0)


def test_is_decoder_in_the_config_leaves_attention_bidirectional(tmp_path):
    """transformers 5's MPNet attends both ways whatever ``is_decoder`` says (it has no decoder); fastbert's
    engine made a config with ``is_decoder: true`` causal."""
    torch.manual_seed(0)
    hf = transformers.MPNetForMaskedLM(transformers.MPNetConfig(**TINY, is_decoder=True)).eval()
    perturb_norms_and_biases(hf)
    hf.save_pretrained(tmp_path)
    for backend in ("eager", "sdpa"):
        model = fastbert.MPNetForMaskedLM.from_pretrained(tmp_path, attn_implementation=backend)
        assert model.config.is_decoder
        judge_all(model, hf, batch("masked-lm"), "masked-lm", backend)
