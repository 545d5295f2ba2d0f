"""RoBERTa, XLM-RoBERTa and CamemBERT on the shared engine, against transformers' own classes.

Every class of the three families is a tiny random model saved by transformers to a temporary folder and
loaded by fastbert. Parity follows ``fastbert.core.tolerances``: the reference is transformers' model in float64,
PyTorch's own error is transformers' fp32 output, on right- and left-padded batches of odd lengths (RoBERTa's
positions come from the padded ids, so left padding is a real case).

Heads that read position 0 (the pooler, the classification head on ``<s>``) see zeros there on the packed
backends when position 0 is padding (fastbert's rule for BERT's pooler too: transformers classifies the
pad token's state there); those rows are judged on ``eager`` only.
"""

import copy
import warnings

import pytest
import torch
from model_helpers import assert_padding_past_the_limit_runs, require_interpreter, require_transformers

import fastbert
from fastbert import registry
from fastbert.core.tolerances import assert_close

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()

PREFIX = {"roberta": "Roberta", "xlm-roberta": "XLMRoberta", "camembert": "Camembert"}
TINY = dict(
    vocab_size=99,
    hidden_size=36,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=40,
    type_vocab_size=1,
)
PAD = 1
#: every RoBERTa class; XLM-RoBERTa and CamemBERT are the same classes under other names: three of each
CASES = [("roberta", task) for task in registry.family("roberta").classes] + [
    (mt, task)
    for mt in ("xlm-roberta", "camembert")
    for task in ("base", "masked-lm", "sequence-classification")
]
FIRST_TOKEN_HEADS = ("sequence-classification", "multiple-choice")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(model_type, task) -> (folder, the transformers model), built on first use."""
    cache = {}

    def get(model_type, task):
        if (model_type, task) not in cache:
            torch.manual_seed(0)
            config = getattr(transformers, PREFIX[model_type] + "Config")(
                **TINY, is_decoder=task == "causal-lm", num_labels=2 if task == "question-answering" else 3
            )
            hf = getattr(transformers, registry.family(model_type).classes[task])(config).eval()
            with torch.no_grad():  # LayerNorms 1/0 and zero biases would hide a wrong wiring
                for p in hf.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
            folder = tmp_path_factory.mktemp(f"{model_type}-{task}")
            hf.save_pretrained(folder)
            cache[model_type, task] = folder, hf
        return cache[model_type, task]

    return get


def batch(task, side, labels=False):
    """Odd lengths 11, 7, 9 (multiple choice: 2 choices each), padded on ``side`` with the pad id."""
    g = torch.Generator().manual_seed(3)
    shape = (3, 2, 11) if task == "multiple-choice" else (3, 11)
    lengths = torch.tensor([11, 7, 9])
    if task == "multiple-choice":
        lengths = lengths[:, None].expand(3, 2).clone()
        lengths[0, 1] = 5
    pos = torch.arange(11)
    real = pos < lengths[..., None] if side == "right" else pos >= 11 - lengths[..., None]
    ids = torch.where(real, torch.randint(3, 99, shape, generator=g), torch.full(shape, PAD))
    out = {"input_ids": ids, "attention_mask": real.long()}
    if labels:
        if task in ("masked-lm", "token-classification", "causal-lm"):
            top = 99 if task != "token-classification" else 3
            out["labels"] = torch.where(real, torch.randint(0, top, shape, generator=g), -100)
        elif task == "sequence-classification":
            out["labels"] = torch.tensor([0, 2, 1])
        elif task == "multiple-choice":
            out["labels"] = torch.tensor([1, 0, 1])
        elif task == "question-answering":
            out["start_positions"], out["end_positions"] = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    return out


def compared(out):
    """The outputs to judge: (name, tensor) of every logits / hidden state field."""
    keys = ("last_hidden_state", "pooler_output", "logits", "start_logits", "end_logits", "loss")
    return [(k, out[k]) for k in keys if k in out and out[k] is not None]


def positions_that_count(name, value, inputs, task, backend):
    mask = inputs["attention_mask"].bool()
    first_real = mask[..., 0]
    if name == "loss":
        return None
    if name == "pooler_output" or task in FIRST_TOKEN_HEADS:
        return None if backend == "eager" else first_real
    return mask


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("model_type,task", CASES)
def test_fp32_parity_with_transformers(saved, model_type, task, side):
    folder, hf = saved(model_type, task)
    inputs = batch(task, side, labels=side == "right")
    extra = {"use_cache": False} if task == "causal-lm" else {}
    with torch.no_grad():
        theirs = hf(**inputs, **extra)
        ref = hf.to(torch.float64)(**inputs, **extra)
        hf.to(torch.float32)
    cls = registry.model_class(model_type, task)
    for backend in ("eager", "sdpa"):
        model = cls.from_pretrained(folder, attn_implementation=backend)
        assert type(model).__name__ == type(hf).__name__
        with torch.no_grad():
            ours = model(**inputs, **extra)
        for name, value in compared(theirs):
            mask = positions_that_count(name, value, inputs, task, backend)
            assert_close(ours[name], value, ref[name], torch.float32, mask, what=f"{backend} {name}")


@pytest.mark.parametrize("model_type", list(PREFIX))
def test_state_dict_keys_are_transformers(saved, model_type):
    for task in registry.family(model_type).classes:
        folder, hf = saved(model_type, task)
        model = registry.model_class(model_type, task).from_pretrained(folder)
        assert set(model.state_dict()) == set(hf.state_dict()), task
        assert model.config.model_type == model_type


def test_left_padding_gives_the_positions_of_the_unpadded_sequences(saved):
    """A left-padded row equals the same tokens alone (positions restart after the padding)."""
    folder, _ = saved("xlm-roberta", "base")
    model = fastbert.XLMRobertaModel.from_pretrained(folder)
    inputs = batch("base", "left")
    model64 = copy.deepcopy(model).to(torch.float64)  # the rule's reference
    with torch.no_grad():
        out = model(**inputs).last_hidden_state
        for row in range(3):
            real = inputs["attention_mask"][row].bool()
            ids = inputs["input_ids"][row][real][None]
            alone, ref = (m(input_ids=ids).last_hidden_state[0] for m in (model, model64))
            assert_close(out[row][real], alone, ref, torch.float32, what=f"row {row}")


def test_inputs_embeds_positions_as_transformers(saved):
    folder, hf = saved("roberta", "base")
    model = fastbert.RobertaModel.from_pretrained(folder)
    embeds = torch.randn(2, 9, 36)
    with torch.no_grad():
        theirs = hf(inputs_embeds=embeds).last_hidden_state
        ref = hf.to(torch.float64)(inputs_embeds=embeds.double()).last_hidden_state
        hf.to(torch.float32)
        for backend in ("eager", "sdpa"):
            model.set_attn_implementation(backend)
            assert_close(model(inputs_embeds=embeds).last_hidden_state, theirs, ref, torch.float32)


def test_length_limit_is_positions_after_the_padding_index(saved):
    folder, _ = saved("roberta", "base")
    model = fastbert.RobertaModel.from_pretrained(folder)
    limit = TINY["max_position_embeddings"] - PAD - 1
    with torch.no_grad():
        assert model(input_ids=torch.full((1, limit), 5)).last_hidden_state.shape == (1, limit, 36)
        with pytest.raises(
            ValueError, match=r"limit of 38 tokens \(max_position_embeddings 40 - padding_idx 1"
        ):
            model(input_ids=torch.full((1, limit + 1), 5))


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_past_the_length_limit_runs_as_transformers(saved, side):
    """Padding takes position padding_idx, not one of its own: a batch padded past the limit whose real rows fit
    runs in transformers (a fixed padding="max_length", pad_to_multiple_of); fastbert refused it by its padded
    length. The limit still holds for the real tokens."""
    folder, hf = saved("roberta", "token-classification")
    limit = TINY["max_position_embeddings"] - PAD - 1
    assert_padding_past_the_limit_runs(fastbert.RobertaForTokenClassification, folder, hf, limit, PAD, side)


def test_triton_backend_under_the_interpreter(saved):
    require_interpreter()
    for task in ("base", "masked-lm"):
        folder, hf = saved("xlm-roberta", task)
        model = registry.model_class("xlm-roberta", task).from_pretrained(
            folder, attn_implementation="triton"
        )
        inputs = batch(task, "left")
        mask = inputs["attention_mask"].bool()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback: the kernels ran
            ours = model(**inputs)
            theirs = hf(**inputs)
            ref = hf.to(torch.float64)(**inputs)
            hf.to(torch.float32)
        name = "logits" if task == "masked-lm" else "last_hidden_state"
        assert_close(ours[name], theirs[name], ref[name], torch.float32, mask, what=f"triton {name}")


@pytest.mark.parametrize("task", ["masked-lm", "sequence-classification"])
def test_save_pretrained_reloads_in_transformers(saved, tmp_path, task):
    folder, hf = saved("camembert", task)
    model = registry.model_class("camembert", task).from_pretrained(folder)
    model.save_pretrained(tmp_path)
    again = getattr(transformers, type(hf).__name__).from_pretrained(tmp_path).eval()
    assert again.config.model_type == "camembert"
    inputs = batch(task, "right")
    with torch.no_grad():
        for name, value in compared(hf(**inputs)):
            torch.testing.assert_close(again(**inputs)[name], value, rtol=0, atol=0)


def test_auto_classes_pick_the_family(saved):
    folder, _ = saved("xlm-roberta", "masked-lm")
    assert type(fastbert.AutoConfig.from_pretrained(folder)).__name__ == "XLMRobertaConfig"
    assert type(fastbert.AutoModelForMaskedLM.from_pretrained(folder)) is fastbert.XLMRobertaForMaskedLM
    assert type(fastbert.AutoModel.from_pretrained(folder)) is fastbert.XLMRobertaModel
    folder, _ = saved("roberta", "sequence-classification")
    model = fastbert.AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(model) is fastbert.RobertaForSequenceClassification
    # transformers' AutoModelForPreTraining maps the RoBERTa family (and DistilBERT, MPNet) to the masked LM
    assert type(fastbert.AutoModelForPreTraining.from_pretrained(folder)) is fastbert.RobertaForMaskedLM
    assert type(transformers.AutoModelForPreTraining.from_pretrained(folder)).__name__ == "RobertaForMaskedLM"
    for model_type in ("xlm-roberta", "camembert", "distilbert", "mpnet"):
        config = fastbert.AutoConfig.for_model(model_type, **TINY)
        built = fastbert.AutoModelForPreTraining.from_config(config)
        assert type(built) is registry.model_class(model_type, "masked-lm"), model_type
    with pytest.raises(ValueError, match="has no pretraining class"):  # as transformers: none for ModernBERT
        fastbert.AutoModelForPreTraining.from_config(fastbert.AutoConfig.for_model("modernbert", **TINY))
    config = fastbert.AutoConfig.for_model("camembert", **TINY)
    assert type(fastbert.AutoModel.from_config(config)) is fastbert.CamembertModel


def test_for_model_needs_a_model_type_as_transformers():
    """``AutoConfig.for_model()`` without a model type is transformers' TypeError (fastbert built a BERT config)."""
    for lib in (transformers, fastbert):
        with pytest.raises(TypeError, match="model_type"):
            lib.AutoConfig.for_model()
    assert type(fastbert.AutoConfig.for_model("bert", **TINY)) is fastbert.BertConfig


def test_other_model_type_is_named_with_the_supported_ones(tmp_path):
    transformers.AlbertConfig(vocab_size=99, hidden_size=32, num_attention_heads=2).save_pretrained(tmp_path)
    for load in (fastbert.AutoConfig.from_pretrained, fastbert.AutoModel.from_pretrained):
        with pytest.raises(ValueError, match="model_type 'albert' is not supported by fastbert") as e:
            load(tmp_path)
        assert "bert, camembert, distilbert, electra, modernbert, mpnet, roberta, xlm-roberta" in str(e.value)


@pytest.mark.parametrize("model_type", list(PREFIX))
def test_from_transformers_shares_weights(saved, model_type):
    _, hf = saved(model_type, "question-answering")
    fast = fastbert.from_transformers(hf)
    assert type(fast).__name__ == type(hf).__name__
    assert (
        fast.roberta.embeddings.word_embeddings.weight.data_ptr()
        == hf.roberta.embeddings.word_embeddings.weight.data_ptr()
    )
    inputs = batch("question-answering", "right")
    with torch.no_grad():
        ours, theirs = fast(**inputs), hf(**inputs)
        ref = hf.to(torch.float64)(**inputs)
        hf.to(torch.float32)
    for name in ("start_logits", "end_logits"):
        assert_close(ours[name], theirs[name], ref[name], torch.float32, inputs["attention_mask"].bool())


def test_generate_greedy_left_padded_as_transformers(saved):
    """Incremental decoding: positions of the cached steps continue after the padding, as transformers'."""
    folder, hf = saved("roberta", "causal-lm")
    model = fastbert.RobertaForCausalLM.from_pretrained(folder)
    inputs = batch("causal-lm", "left")
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=PAD)
    ours = model.generate(**inputs, **kwargs)
    assert torch.equal(ours, hf.generate(**inputs, **kwargs))


def test_untied_head_resized_saves_a_decoder_bias_transformers_loads(tmp_path):
    """tie_word_embeddings=False and resize_token_embeddings: the head's two biases are one tensor (as
    transformers 4 tied them); save_pretrained wrote it once, as ``lm_head.bias``, and transformers 5 (which ties
    nothing when untied) loaded ``lm_head.decoder.bias`` as missing, zeros: other logits."""
    torch.manual_seed(0)
    config = fastbert.RobertaConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64, tie_word_embeddings=False,
    )  # fmt: skip
    model = fastbert.RobertaForMaskedLM(config).eval()
    model.resize_token_embeddings(120)
    with torch.no_grad():
        model.lm_head.decoder.bias.normal_()
    model.save_pretrained(tmp_path)
    hf, info = transformers.RobertaForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    torch.testing.assert_close(hf.lm_head.decoder.bias, model.lm_head.decoder.bias, rtol=0, atol=0)
    again = fastbert.RobertaForMaskedLM.from_pretrained(tmp_path)
    torch.testing.assert_close(again.lm_head.decoder.bias, model.lm_head.decoder.bias, rtol=0, atol=0)


def test_null_pad_token_id_needs_position_ids_said_in_a_value_error():
    """RoBERTa's positions start after ``pad_token_id``: without one, transformers runs only with explicit
    ``position_ids`` (a TypeError otherwise); fastbert raised a TypeError from its length limit even then."""
    config = fastbert.RobertaConfig(**{**TINY, "pad_token_id": None})
    model = fastbert.RobertaModel(config).eval()
    ids = torch.tensor([[0, 5, 6, 2]])
    with torch.no_grad():
        out = model(input_ids=ids, position_ids=torch.tensor([[2, 3, 4, 5]])).last_hidden_state
        assert out.shape == (1, 4, 36)
        for inputs in ({"input_ids": ids}, {"inputs_embeds": torch.randn(1, 4, 36)}):
            with pytest.raises(ValueError, match="config.pad_token_id is null: .* or pass position_ids"):
                model(**inputs)


@pytest.mark.parametrize("positions,pad", [(1, 1), (4, 5)])
def test_pad_token_id_outside_the_position_table_is_a_value_error(positions, pad):
    """The position table's padding row is ``pad_token_id``: one past its end was torch's bare AssertionError
    ("Padding_idx must be within num_embeddings", transformers' too), naming no config field."""
    config = fastbert.XLMRobertaConfig(**{**TINY, "max_position_embeddings": positions, "pad_token_id": pad})
    with pytest.raises(ValueError, match=rf"pad_token_id \({pad}\) must be below max_position_embeddings"):
        fastbert.XLMRobertaModel(config)
