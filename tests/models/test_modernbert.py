"""ModernBERT on the shared engine, against transformers' own classes.

Tiny random models saved by transformers in both config forms (the hub's ``global_attn_every_n_layers`` /
``global_rope_theta`` / ``local_rope_theta``, and transformers 5's ``layer_types`` / ``rope_parameters``), with a
window (``local_attention`` 6: ``|i - j| <= 3``) smaller than every sequence, global attention every 2nd or
3rd layer. Parity by ``fastbert.core.tolerances`` against transformers in float64 with its ``sdpa`` attention (its
``eager`` attention turns padded float64 batches into NaN: the float64 mask minimum is cast to -inf for its fp32
softmax, a fully masked padded row gives NaN and 0 * NaN reaches every row in the next layer).
"""

import json
import warnings

import pytest
import torch
from model_helpers import (
    FIRST_TOKEN_HEADS,
    assert_gradients_meet_the_rule,
    assert_rule,
    float64_loss,
    in_float64,
    judge_all,
    require_interpreter,
    require_transformers,
)

import fastbert
from fastbert import registry
from fastbert.core.tolerances import assert_close
from fastbert.models.modernbert.config import FULL, SLIDING

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=3,
    num_attention_heads=2,
    max_position_embeddings=64,
    local_attention=6,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    cls_token_id=1,
    sep_token_id=2,
)
#: the hub form, written into config.json as real checkpoints carry it (global every 2nd layer, no biases)
HUB = dict(global_attn_every_n_layers=2, global_rope_theta=500.0, local_rope_theta=50.0)
#: the current form: global every 3rd layer, biases everywhere, mean pooling
CURRENT = dict(
    num_hidden_layers=4,
    layer_types=[FULL, SLIDING, SLIDING, FULL],
    rope_parameters={
        FULL: {"rope_type": "default", "rope_theta": 1000.0},
        SLIDING: {"rope_type": "default", "rope_theta": 80.0},
    },
    norm_bias=True,
    attention_bias=True,
    mlp_bias=True,
    classifier_bias=True,
    classifier_pooling="mean",
)
TASKS = list(registry.family("modernbert").classes)
PAD = 0


def perturb(model: torch.nn.Module) -> torch.nn.Module:
    """Noise on every norm weight and bias (initialised to 1 / 0), so a wrong wiring shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def to_hub_form(folder) -> None:
    """Rewrite a saved config.json in the form of the hub's checkpoints."""
    path = folder / "config.json"
    data = json.loads(path.read_text())
    del data["layer_types"], data["rope_parameters"]
    data.update(HUB, layer_norm_eps=1e-5, position_embedding_type="absolute")
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache = {}

    def get(task, form="hub"):
        if (task, form) not in cache:
            torch.manual_seed(0)
            labels = 2 if task == "question-answering" else 3
            extra = {**HUB} if form == "hub" else {**CURRENT}
            config = transformers.ModernBertConfig(**{**TINY, **extra}, num_labels=labels)
            config._attn_implementation = "sdpa"
            hf = perturb(getattr(transformers, registry.family("modernbert").classes[task])(config).eval())
            folder = tmp_path_factory.mktemp(f"modernbert-{task}-{form}")
            hf.save_pretrained(folder)
            if form == "hub":
                to_hub_form(folder)
            cache[task, form] = folder, hf
        return cache[task, form]

    return get


def batch(task, lengths=(11, 7, 9), labels=True):
    g = torch.Generator().manual_seed(6)
    n = max(lengths)
    shape = (len(lengths), 2, n) if task == "multiple-choice" else (len(lengths), n)
    lengths = torch.tensor(lengths)
    if task == "multiple-choice":
        lengths = lengths[:, None].expand(-1, 2)
    real = torch.arange(n) < lengths[..., None]
    ids = torch.where(real, torch.randint(3, 99, shape, generator=g), torch.full(shape, PAD))
    out = {"input_ids": ids, "attention_mask": real.long()}
    if labels:
        if task == "masked-lm":
            out["labels"] = torch.where(real, torch.randint(0, 99, shape, generator=g), -100)
        elif task == "token-classification":
            out["labels"] = torch.where(real, torch.randint(0, 3, shape, generator=g), -100)
        elif task in FIRST_TOKEN_HEADS:
            out["labels"] = torch.tensor([0, 1, 1][: len(lengths)])
        elif task == "question-answering":
            out["start_positions"], out["end_positions"] = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    return out


def test_config_forms_read_as_transformers_reads_them(saved):
    """Both forms give transformers' layer types and thetas; the written config reloads in transformers."""
    for form in ("hub", "current"):
        folder, hf = saved("base", form)
        config = fastbert.AutoConfig.from_pretrained(folder)
        assert type(config) is fastbert.ModernBertConfig
        theirs = transformers.AutoConfig.from_pretrained(folder)
        assert config.layer_types == theirs.layer_types == hf.config.layer_types
        assert config.rope_parameters == theirs.rope_parameters
        assert config.sliding_window == theirs.sliding_window == 3
        written = config.to_dict()
        again = transformers.ModernBertConfig.from_dict(written)
        for key, value in theirs.to_dict().items():
            if key not in ("transformers_version", "_name_or_path", "id2label"):
                assert written.get(key) == value, key
        assert again.layer_types == theirs.layer_types and again.rope_parameters == theirs.rope_parameters
    assert fastbert.ModernBertConfig(**HUB, num_hidden_layers=4).layer_types == [FULL, SLIDING] * 2
    with pytest.raises(ValueError, match="rope_type 'linear'"):
        fastbert.ModernBertModel(
            fastbert.ModernBertConfig(**TINY, rope_scaling={"rope_type": "linear", "factor": 2.0})
        )
    with pytest.raises(ValueError, match="rope_parameters must map the layer types"):
        fastbert.ModernBertConfig(**TINY, rope_parameters={"rope_type": "default", "rope_theta": 1.0})
    with pytest.raises(ValueError, match="layer_types must list one type per layer"):
        fastbert.ModernBertModel(fastbert.ModernBertConfig(**TINY, layer_types=[FULL]))


def copy_folder(folder, dst, **config_changes):
    """A copy of a saved model folder with config.json changed (a value None: the key removed)."""
    dst.mkdir(exist_ok=True)
    for path in folder.iterdir():
        (dst / path.name).write_bytes(path.read_bytes())
    data = json.loads((dst / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    (dst / "config.json").write_text(json.dumps(data))
    return dst


def test_bert_hidden_act_is_not_the_mlp_activation(saved, tmp_path):
    """A config.json with BERT's ``hidden_act`` and no ``hidden_activation``: transformers (4.57 and 5.25)
    keeps ``hidden_act`` as an unused attribute and its MLP runs ``hidden_activation``'s default, gelu; so
    does fastbert, and it writes ``hidden_act`` back as transformers does."""
    folder = copy_folder(
        saved("base", "current")[0], tmp_path / "m", hidden_activation=None, hidden_act="silu"
    )
    hf = transformers.AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    assert hf.config.hidden_activation == "gelu"
    model = fastbert.AutoModel.from_pretrained(folder, attn_implementation="sdpa")
    assert model.config.hidden_activation == "gelu"
    assert model.config.to_dict()["hidden_act"] == "silu" == hf.config.to_dict()["hidden_act"]
    judge_all(model, hf, batch("base", labels=False), "base", "sdpa")
    # a name transformers' ModernBERT never reads is not refused either; hidden_activation is checked
    fastbert.ModernBertModel(fastbert.ModernBertConfig(**TINY, hidden_act="not-an-activation"))
    with pytest.raises(ValueError, match="hidden_activation"):
        fastbert.ModernBertModel(fastbert.ModernBertConfig(**TINY, hidden_activation="not-an-activation"))


def test_a_rope_theta_field_is_kept_unread_as_transformers(saved, tmp_path):
    """A config.json with a flat ``rope_theta`` (the field of most RoPE models): transformers' ModernBERT keeps
    it as an unused attribute (its thetas are in ``rope_parameters``) and writes it back; fastbert's forward
    failed on it (``'float' object is not callable``: the field hid the config's theta method)."""
    folder = copy_folder(saved("base", "current")[0], tmp_path / "m", rope_theta=5.0)
    hf = transformers.AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    model = fastbert.AutoModel.from_pretrained(folder)
    assert model.config.rope_theta == 5.0 == hf.config.rope_theta
    assert model.config.rope_parameters == hf.config.rope_parameters
    judge_all(model, hf, batch("base", labels=False), "base", "sdpa")
    assert model.config.to_dict()["rope_theta"] == 5.0 == hf.config.to_dict()["rope_theta"]


def test_a_null_local_rope_theta_is_the_global_one_as_transformers4(saved, tmp_path):
    """A hub-form config.json with ``"local_rope_theta": null``: transformers 4's ModernBertAttention gives the
    local layers ``global_rope_theta`` then (``if config.local_rope_theta is not None``); fastbert gave them
    10,000 (transformers 5.25 cannot build this config, so the reference is the folder with the global theta
    written in)."""
    folder = saved("base", "hub")[0]
    null = copy_folder(folder, tmp_path / "null")
    data = json.loads((null / "config.json").read_text())
    data["local_rope_theta"] = None
    (null / "config.json").write_text(json.dumps(data))
    config = fastbert.AutoConfig.from_pretrained(null)
    assert config.rope_theta_of(SLIDING) == HUB["global_rope_theta"] == config.rope_theta_of(FULL)
    same = copy_folder(folder, tmp_path / "same", local_rope_theta=HUB["global_rope_theta"])
    hf = transformers.AutoModel.from_pretrained(same, attn_implementation="sdpa").eval()
    judge_all(fastbert.AutoModel.from_pretrained(null), hf, batch("base", labels=False), "base", "sdpa")
    # a config without the field keeps transformers' default local theta
    assert fastbert.ModernBertConfig(global_rope_theta=500.0).rope_theta_of(SLIDING) == 10_000.0
    assert fastbert.ModernBertConfig(local_rope_theta=None).rope_theta_of(SLIDING) == 160_000.0


@pytest.mark.parametrize("field", ["attention_dropout", "embedding_dropout", "mlp_dropout"])
def test_a_bad_dropout_is_refused_by_its_name(field):
    """A dropout out of [0, 1] or not a number is refused naming the field given; the refusal named BERT's
    derived ``hidden_dropout_prob`` (their largest, which ModernBERT has not) or failed in ``max`` with
    "'>' not supported between instances of 'str' and 'float'"."""
    with pytest.raises(ValueError, match=rf"config field {field} is a dropout probability.*got 1.5"):
        fastbert.ModernBertModel(fastbert.ModernBertConfig(**TINY, **{field: 1.5}))
    for value in ("0.1", None, True):
        with pytest.raises(TypeError, match=rf"config field {field} must be a number, got"):
            fastbert.ModernBertConfig(**TINY, **{field: value})


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("norm_eps", "1e-5", "norm_eps must be a number, got str '1e-5'"),
        ("norm_eps", None, "norm_eps must be a number, got NoneType None"),
        ("initializer_cutoff_factor", "2", "initializer_cutoff_factor must be a number or null, got str"),
        ("sparse_pred_ignore_index", None, "sparse_pred_ignore_index must be an integer, got NoneType"),
        ("layer_types", FULL, r"layer_types must list one type per layer \(3; .*\), got 'full_attention'"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_by_its_name(field, value, said):
    """ModernBERT's own fields of the wrong type (transformers 5's strict config refuses each) are refused
    naming the field; they failed later with "'<' not supported between instances of 'float' and 'str'",
    "bad operand type for unary -: 'str'", "'bool' object has no attribute 'to'" (in a sparse masked-LM
    forward), or a ``layer_types`` string read as its letters ("layer_types holds 'f'")."""
    with pytest.raises((TypeError, ValueError), match="config field " + said):
        config = fastbert.ModernBertConfig(**TINY, **{field: value})
        fastbert.ModernBertForMaskedLM(config)


def test_reference_compile_as_transformers4_takes_it(saved, tmp_path):
    """``from_pretrained(path, reference_compile=False)``, transformers 4's way to switch off its compiled
    layers (a ModernBertConfig field there, None by default): accepted and kept (fastbert compiles nothing),
    never written to config.json, as transformers drops it; fastbert refused it as "neither a field of
    ModernBertConfig nor an argument"."""
    folder, hf = saved("masked-lm", "hub")
    model = fastbert.ModernBertForMaskedLM.from_pretrained(folder, reference_compile=False)
    assert model.config.reference_compile is False
    assert fastbert.ModernBertConfig(**TINY).reference_compile is None
    judge_all(model, hf, batch("masked-lm"), "masked-lm", "sdpa")
    model.save_pretrained(tmp_path)
    assert "reference_compile" not in json.loads((tmp_path / "config.json").read_text())


def test_an_unsupported_classifier_activation_is_refused_by_its_name():
    """The refusal of a ``classifier_activation`` fastbert has not names that field (it said ``hidden_act``, a
    field transformers' ModernBERT does not read)."""
    with pytest.raises(ValueError) as refused:
        fastbert.ModernBertModel(fastbert.ModernBertConfig(**TINY, classifier_activation="relu6"))
    assert (
        "config field classifier_activation: unsupported activation 'relu6' (classifier_activation)"
        in str(refused.value)
    )
    assert "hidden_act" not in str(refused.value)


@pytest.mark.parametrize("form", ["hub", "current"])
def test_fewer_layers_than_the_checkpoint_as_transformers(saved, form, tmp_path):
    """``from_pretrained(path, num_hidden_layers=2)`` and ``config.num_hidden_layers = 2`` before building (a
    checkpoint truncated for distillation or pruning): transformers builds the first two layers with the first
    two of ``layer_types`` (derived from the file's layer count in the hub form), and so does fastbert. The
    saved config lists the two layers' types, so transformers reloads it; more layers than ``layer_types``
    lists are refused by name (transformers: an IndexError)."""
    folder, _ = saved("masked-lm", form)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(
        folder, num_hidden_layers=2, attn_implementation="sdpa"
    )
    model = fastbert.AutoModelForMaskedLM.from_pretrained(folder, num_hidden_layers=2)
    assert len(model.model.layers) == len(hf.model.layers) == 2
    assert [layer.attention_type for layer in model.model.layers] == hf.config.layer_types[:2]
    inputs = batch("masked-lm")
    judge_all(model, hf.eval(), inputs, "masked-lm", "sdpa")
    config = fastbert.AutoConfig.from_pretrained(folder)
    config.num_hidden_layers = 2
    built = fastbert.AutoModelForMaskedLM.from_config(config)
    assert [layer.attention_type for layer in built.model.layers] == hf.config.layer_types[:2]
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["layer_types"] == hf.config.layer_types[:2]
    again = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    judge_all(fastbert.AutoModelForMaskedLM.from_pretrained(tmp_path), again, inputs, "masked-lm", "sdpa")
    with pytest.raises(ValueError, match="layer_types must list one type per layer"):
        fastbert.AutoModelForMaskedLM.from_pretrained(
            folder, num_hidden_layers=len(hf.config.layer_types) + 1
        )


def test_head_dim_in_the_config(saved, tmp_path):
    """``head_dim`` in config.json or a keyword (transformers' ModernBERT RoPE reads it): accepted, kept and
    written back when it is hidden_size / num_attention_heads (16 here), or 0 / null (transformers: the width);
    another value is refused by name when the model is built (transformers' forward fails on the shapes). The
    BERT families keep it unread, as transformers' BERT does."""
    folder = copy_folder(saved("base", "current")[0], tmp_path / "m", head_dim=16)
    hf = transformers.AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    model = fastbert.AutoModel.from_pretrained(folder)
    assert model.config.head_dim == 16 and model.config.to_dict()["head_dim"] == 16
    judge_all(model, hf, batch("base", labels=False), "base", "sdpa")
    model.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["head_dim"] == 16
    assert fastbert.ModernBertConfig(head_dim=64).head_dim == 64  # the default width: 768 / 12
    for fine in (16, 0, None):
        fastbert.ModernBertConfig(**TINY, head_dim=fine).validate()
    with pytest.raises(ValueError, match="head_dim is 8, not hidden_size / num_attention_heads = 16"):
        fastbert.ModernBertModel(fastbert.ModernBertConfig(**TINY, head_dim=8))
    with pytest.raises(ValueError, match="head_dim is 8"):
        fastbert.AutoModel.from_pretrained(folder, head_dim=8)
    bert = fastbert.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=37, head_dim=7)  # fmt: skip
    torch.manual_seed(0)
    ours = fastbert.BertModel(bert).eval()
    theirs = transformers.BertModel(transformers.BertConfig(**bert.to_dict())).eval()
    theirs.load_state_dict(ours.state_dict())
    ids = torch.randint(0, 99, (2, 7))
    with torch.no_grad():
        got = ours(input_ids=ids).last_hidden_state
    assert_rule(got, theirs, lambda m: m(input_ids=ids).last_hidden_state)
    assert ours.config.to_dict()["head_dim"] == 7 == theirs.config.head_dim


@pytest.mark.parametrize("form", ["hub", "current"])
@pytest.mark.parametrize("task", TASKS)
def test_fp32_parity_with_transformers(saved, task, form):
    folder, hf = saved(task, form)
    for backend in ("eager", "sdpa"):
        model = registry.model_class("modernbert", task).from_pretrained(folder, attn_implementation=backend)
        assert type(model).__name__ == type(hf).__name__
        assert set(model.state_dict()) == set(hf.state_dict())
        # the QA loss reads padded positions' logits too: a padded query whose whole window is padding has
        # no key, and transformers' own backends differ there (eager: uniform weights, sdpa: every key), so
        # its batch keeps every padded position within the window of a real token
        lengths = (11, 9, 9) if task == "question-answering" else (11, 7, 9)
        judge_all(model, hf, batch(task, lengths), task, backend)


def test_is_decoder_in_the_config_leaves_attention_bidirectional(tmp_path):
    """transformers' ModernBERT attends both ways whatever ``is_decoder`` says (it has no decoder); fastbert's
    engine made a config with ``is_decoder: true`` causal (0.017 off transformers)."""
    torch.manual_seed(0)
    config = transformers.ModernBertConfig(**TINY, **HUB, is_decoder=True)
    config._attn_implementation = "sdpa"
    hf = perturb(transformers.ModernBertForMaskedLM(config).eval())
    hf.save_pretrained(tmp_path)
    for backend in ("eager", "sdpa"):
        model = fastbert.ModernBertForMaskedLM.from_pretrained(tmp_path, attn_implementation=backend)
        assert model.config.is_decoder
        judge_all(model, hf, batch("masked-lm"), "masked-lm", backend)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_hidden_states_attentions_and_a_batch_without_padding(saved, backend):
    """Every hidden state (the last one after final_norm, as transformers), a batch without padding (packed
    anyway on sdpa), and eager's attention probabilities with the window."""
    folder, hf = saved("base", "current")
    model = fastbert.ModernBertModel.from_pretrained(folder, attn_implementation=backend)
    inputs = batch("base", lengths=(13, 13), labels=False)
    with torch.no_grad():
        ours = model(**inputs, output_hidden_states=True)
        theirs = hf(**inputs, output_hidden_states=True)
        ref = hf.to(torch.float64)(**inputs, output_hidden_states=True)
        hf.to(torch.float32)
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 5
    for i, (a, b, c) in enumerate(zip(ours.hidden_states, theirs.hidden_states, ref.hidden_states)):
        assert_close(a, b, c, torch.float32, what=f"{backend} hidden_states[{i}]")
    assert_close(ours.last_hidden_state, theirs.last_hidden_state, ref.last_hidden_state, torch.float32)
    if backend == "eager":
        probs = model(**inputs, output_attentions=True).attentions
        i = torch.arange(13)
        outside = (i[None, :] - i[:, None]).abs() > 3
        assert probs[1][..., outside].abs().max() == 0  # a sliding layer: nothing outside the window
        assert probs[0][..., outside].abs().max() > 0  # a global one


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_position_ids_read_at_the_real_tokens_only(saved, backend):
    """position_ids built from the mask (``cumsum(mask) - 1``, any value at the padding) count up along the
    real tokens only, left or right padded: transformers runs them (its RoPE of the real tokens never reads
    the padding's), and so does fastbert; positions that skip padding between real tokens stay refused."""
    folder, hf = saved("base", "current")
    model = fastbert.ModernBertModel.from_pretrained(folder, attn_implementation=backend)
    right = batch("base", labels=False)
    left = {k: v.flip(-1) for k, v in right.items()}
    for inputs, fill in ((left, 1), (right, 0)):
        mask = inputs["attention_mask"]
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, fill)
        judge_all(model, hf, inputs, "base", backend, extra={"position_ids": positions})
    holes = torch.tensor([[1, 1, 0, 1, 1]])
    with pytest.raises(ValueError, match="position_ids must count up by one"):
        model(
            input_ids=torch.ones(1, 5, dtype=torch.long),
            attention_mask=holes,
            position_ids=holes.cumsum(-1) - 1,
        )


def test_triton_under_the_interpreter(saved):
    require_interpreter()
    for form in ("hub", "current"):
        folder, hf = saved("base", form)
        model = fastbert.ModernBertModel.from_pretrained(folder, attn_implementation="triton")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback: the kernels ran with RoPE and the window
            judge_all(model, hf, batch("base", labels=False), "base", "triton")


def test_save_reload_in_transformers_and_from_transformers(saved, tmp_path):
    for form in ("hub", "current"):
        folder, hf = saved("sequence-classification", form)
        model = fastbert.AutoModelForSequenceClassification.from_pretrained(folder)
        assert type(model) is fastbert.ModernBertForSequenceClassification
        model.save_pretrained(tmp_path / form)
        again = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / form).eval()
        assert type(again) is transformers.ModernBertForSequenceClassification
        inputs = batch("sequence-classification", labels=False)
        with torch.no_grad():
            torch.testing.assert_close(again(**inputs).logits, hf(**inputs).logits, rtol=0, atol=0)
        fast = fastbert.from_transformers(again)  # the same storage
        assert (
            fast.model.layers[0].attn.Wqkv.weight.data_ptr()
            == again.model.layers[0].attn.Wqkv.weight.data_ptr()
        )
        judge_all(fast, again, inputs, "sequence-classification", "sdpa")
    masked = fastbert.ModernBertForMaskedLM.from_pretrained(saved("masked-lm")[0])
    assert masked.decoder.weight is masked.model.embeddings.tok_embeddings.weight  # tied
    masked.save_pretrained(tmp_path / "mlm")
    reloaded = transformers.ModernBertForMaskedLM.from_pretrained(tmp_path / "mlm").eval()
    inputs = batch("masked-lm", labels=False)
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(**inputs).logits, saved("masked-lm")[1](**inputs).logits, rtol=0, atol=0
        )


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda m: setattr(m.head, "act", torch.nn.ReLU()), "head.act is ReLU()"),
        (
            lambda m: setattr(m.model.layers[1].mlp, "act", torch.nn.SiLU()),
            "model.layers.1.mlp.act is SiLU()",
        ),
        (lambda m: setattr(m.config, "classifier_activation", "silu"), "classifier_activation 'silu'"),
    ],
)
def test_accelerate_leaves_an_activation_module_the_config_does_not_say(saved, edit, said):
    """ModernBERT's activation modules (``mlp.act``, ``head.act``) set by hand, or the config's activation
    edited after building: fastbert, built from the config, computed the config's activation (logits 0.6 off
    with the head's ReLU, no warning); now the model is left as it is with one warning naming the module."""
    import copy

    from model_helpers import accelerate_warnings

    folder, hf = saved("sequence-classification", "current")
    inputs = batch("sequence-classification", labels=False)
    model = copy.deepcopy(hf)
    edit(model)
    with torch.no_grad():
        before = model(**inputs).logits
    out, caught = accelerate_warnings(model)
    assert out is model and len(caught) == 1 and said in str(caught[0].message), [
        str(w.message) for w in caught
    ]
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, before)
    unedited, caught = accelerate_warnings(copy.deepcopy(hf))
    assert type(unedited) is fastbert.ModernBertForSequenceClassification and not caught


TF4_KEYWORDS = ("sliding_window_mask", "indices", "cu_seqlens", "max_seqlen", "batch_size", "seq_len")


@pytest.mark.parametrize("task", TASKS)
def test_transformers4_forward_keywords(saved, task):
    """transformers 4.57's ModernBERT keywords (``sliding_window_mask``, ``indices``, ``cu_seqlens``,
    ``max_seqlen``, ``batch_size``, ``seq_len``) as its era's code passes them, None: accepted, as transformers
    5.25 accepts (and ignores) them, with its outputs; ``batch_size`` / ``seq_len`` equal to the input's shape
    (multiple choice: flattened, as 4.57 passes them to its encoder) too; any other value is refused by name."""
    folder, hf = saved(task, "current")
    model = getattr(fastbert, registry.family("modernbert").classes[task]).from_pretrained(folder)
    inputs = batch(task, (11, 9, 9) if task == "question-answering" else (11, 7, 9))
    judge_all(model, hf, inputs, task, "sdpa", extra=dict.fromkeys(TF4_KEYWORDS))
    rows, length = inputs["input_ids"].reshape(-1, inputs["input_ids"].shape[-1]).shape
    with torch.no_grad():
        plain = model(**inputs)
        same = model(**inputs, batch_size=rows, seq_len=length)
        embeds = model.get_input_embeddings()(inputs["input_ids"])
        model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], batch_size=rows, seq_len=length)
    for name in plain:
        torch.testing.assert_close(same[name], plain[name], rtol=0, atol=0)
    refused = {
        "batch_size": rows + 1,
        "seq_len": length - 1,
        "sliding_window_mask": inputs["attention_mask"],
        "indices": torch.arange(3),
        "cu_seqlens": torch.tensor([0, 11, 18, 27], dtype=torch.int32),
        "max_seqlen": 11,
    }
    assert set(refused) == set(TF4_KEYWORDS)
    for name, value in refused.items():
        with pytest.raises(ValueError, match=f"^{name}"):
            model(**inputs, **{name: value})


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_bad_input(saved, backend):
    model = fastbert.ModernBertModel.from_pretrained(saved("base")[0], attn_implementation=backend)
    with pytest.raises(ValueError, match=r"input_ids holds 99, outside \[0, 99\)"):
        model(input_ids=torch.tensor([[1, 2, 99]]))
    with pytest.raises(ValueError, match="input_ids holds -1"):
        model(input_ids=torch.tensor([[1, -1]]))
    # consecutive positions from a negative start run, as transformers' RoPE computes them (offsets only)
    ids = torch.tensor([[1, 5, 7]])
    shifted = model(input_ids=ids, position_ids=torch.tensor([[-1, 0, 1]])).last_hidden_state
    torch.testing.assert_close(shifted, model(input_ids=ids).last_hidden_state, rtol=0, atol=0)
    with pytest.raises(ValueError, match="position_ids must count up by one"):
        model(input_ids=torch.ones(1, 3, dtype=torch.long), position_ids=torch.tensor([[0, 2, 1]]))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4))


def test_8192_tokens():
    """ModernBERT's context: 8,192 tokens run (packed, a window of 128 on the local layers); longer inputs run
    too, as transformers' RoPE computes any position (test_longer_than_max_position_embeddings)."""
    config = fastbert.ModernBertConfig(
        vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
        layer_types=[SLIDING, FULL],
    )  # fmt: skip
    torch.manual_seed(0)
    model = fastbert.ModernBertModel(config).eval()
    ids = torch.randint(3, 50, (1, 8192))
    with torch.no_grad():
        out = model(input_ids=ids).last_hidden_state
    assert out.shape == (1, 8192, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_left_padding(saved, backend):
    """Left padding: transformers' positions count the padding, fastbert's packed ones restart at each sequence;
    RoPE and the window see only offsets, so the real tokens' outputs agree."""
    folder, hf = saved("masked-lm", "hub")
    model = fastbert.ModernBertForMaskedLM.from_pretrained(folder, attn_implementation=backend)
    inputs = batch("masked-lm", labels=False)
    inputs = {k: v.flip(-1) for k, v in inputs.items()}
    judge_all(model, hf, inputs, "masked-lm", backend)


def test_sparse_prediction(saved, tmp_path):
    """``sparse_prediction``: logits and loss of the labelled tokens only, as transformers."""
    folder, hf = saved("masked-lm", "current")
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "sparse_prediction": True}))
    for name in ("model.safetensors",):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    model = fastbert.ModernBertForMaskedLM.from_pretrained(tmp_path)
    theirs = transformers.ModernBertForMaskedLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    inputs = batch("masked-lm")
    inputs["labels"][:, ::2] = -100
    with torch.no_grad():
        ours, ref = model(**inputs), theirs(**inputs)
        ref64 = theirs.to(torch.float64)(**inputs)
    assert ours.logits.shape == ref.logits.shape == (int((inputs["labels"] != -100).sum()), 99)
    assert_close(ours.logits, ref.logits, ref64.logits, torch.float32, what="logits")
    want = float64_loss("masked-lm", ref, ref64, inputs["labels"], theirs.sparse_pred_ignore_index)
    assert_close(ours.loss, ref.loss, want, torch.float32, what="loss")


def test_sparse_prediction_set_on_the_transformers_model_goes_along(saved):
    """transformers' masked LM reads ``sparse_prediction`` / ``sparse_pred_ignore_index`` from the model (copied
    from the config when built): set there by hand, fastbert.from_transformers (and accelerate) follows them;
    a config edited after building changes neither model. fastbert read the config instead: dense logits
    (3, 11, 99) where transformers gave the labelled tokens' only, and the other way round."""
    import copy

    folder, hf = saved("masked-lm", "current")
    inputs = batch("masked-lm")
    inputs["labels"][:, ::2] = -100
    inputs["labels"][0, 1] = 5
    for edit in (
        lambda m: setattr(m, "sparse_prediction", True),
        lambda m: setattr(m, "sparse_prediction", True) or setattr(m, "sparse_pred_ignore_index", 5),
        lambda m: setattr(m.config, "sparse_prediction", True),
    ):
        theirs = copy.deepcopy(hf)
        edit(theirs)
        ours = fastbert.from_transformers(copy.deepcopy(theirs))
        with torch.no_grad():
            got, want = ours(**inputs), theirs(**inputs)
            ref = copy.deepcopy(theirs).double()(**inputs)
        assert got.logits.shape == want.logits.shape
        # the real tokens' rows (padded positions differ: zeros on fastbert's packed path)
        keep = inputs["attention_mask"].bool()
        if want.logits.dim() == 2:  # sparse: the rows of the labels other than the ignored index
            keep = keep.flatten()[inputs["labels"].flatten() != theirs.sparse_pred_ignore_index]
        assert_close(got.logits[keep], want.logits[keep], ref.logits[keep], torch.float32, what="logits")
        sparse = theirs.sparse_pred_ignore_index if want.logits.dim() == 2 else None
        want64 = float64_loss("masked-lm", want, ref, inputs["labels"], sparse)
        assert_close(got.loss, want.loss, want64, torch.float32, what="loss")


def test_training_gradients_match_transformers(saved):
    """A training step on the packed sdpa path (no dropout in these configs): loss and every gradient."""
    folder, hf = saved("token-classification", "current")
    model = fastbert.ModernBertForTokenClassification.from_pretrained(
        folder, attn_implementation="sdpa"
    ).train()
    theirs = transformers.ModernBertForTokenClassification.from_pretrained(folder, attn_implementation="sdpa")
    ref = transformers.ModernBertForTokenClassification.from_pretrained(folder, attn_implementation="sdpa")
    ref = ref.to(torch.float64).train()
    theirs.train()
    assert_backward_meets_the_rule(model, theirs, ref, batch("token-classification"))


def assert_backward_meets_the_rule(ours, theirs, ref, inputs):
    """One backward of each model on ``inputs``: every gradient of ours against ``ref``'s (float64) within
    the parity rule of theirs (transformers, fp32)."""
    for m in (ours, theirs, ref):
        m(**inputs).loss.backward()
    assert assert_gradients_meet_the_rule(ours, theirs, ref) == len(list(theirs.parameters()))


def test_lora_on_wqkv_and_wo_matches_transformers(saved):
    """PEFT LoRA on transformers' target names (``Wqkv``, ``Wo``): the wrapped linears run as modules."""
    peft = pytest.importorskip("peft")
    import copy

    folder, hf = saved("sequence-classification", "hub")
    fb = fastbert.ModernBertForSequenceClassification.from_pretrained(folder)
    lora = dict(r=4, lora_alpha=8, target_modules=["Wqkv", "Wo"], task_type="SEQ_CLS", lora_dropout=0.0)
    ph = peft.get_peft_model(copy.deepcopy(hf), peft.LoraConfig(**lora))
    pf = peft.get_peft_model(fb, peft.LoraConfig(**lora))
    lh = {n: p for n, p in ph.named_parameters() if "lora_" in n}
    lf = {n: p for n, p in pf.named_parameters() if "lora_" in n}
    assert lh.keys() == lf.keys() and len(lf) == 2 * 3 * 3  # A and B of Wqkv, attn.Wo, mlp.Wo in 3 layers
    with torch.no_grad():
        for n in lh:  # LoRA B starts at zero: give both the same non-zero adapters
            v = torch.randn(lh[n].shape, generator=torch.Generator().manual_seed(len(n))) * 0.1
            lh[n].copy_(v)
            lf[n].copy_(v)
    p64 = copy.deepcopy(ph).double()
    inputs = batch("sequence-classification")
    oh, of, o64 = ph(**inputs), pf(**inputs), p64(**inputs)
    assert_close(of.logits, oh.logits, o64.logits, torch.float32, what="LoRA logits")
    for out in (oh, of, o64):
        out.loss.backward()
    assert assert_gradients_meet_the_rule(pf, ph, p64, keep=lambda name: "lora_" in name) == len(lf)


def test_training_with_dropout_runs_padded_and_checkpointed(saved, tmp_path):
    """Attention dropout keeps the batch padded (the packed window / RoPE path has none); with every dropout
    at 0 in train mode and gradient checkpointing on, the loss is transformers' (eval: the same numbers)."""
    folder, _ = saved("masked-lm", "current")
    model = fastbert.ModernBertForMaskedLM.from_pretrained(folder, attention_dropout=0.5, mlp_dropout=0.1)
    assert (
        model.config.attention_dropout == 0.5
        and type(model.model.layers[0].attn.out_drop) is torch.nn.Dropout
    )
    model.train()
    out = model(**batch("masked-lm"))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.model.layers[1].attn.Wqkv.weight.grad.abs().sum() > 0
    plain = fastbert.ModernBertForMaskedLM.from_pretrained(folder).train()
    plain.gradient_checkpointing_enable()
    inputs = batch("masked-lm")
    loss = plain(**inputs).loss
    loss.backward()
    with torch.no_grad():
        ref = plain.eval()(**inputs).loss
    torch.testing.assert_close(loss, ref)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_window_left_out_when_it_holds_every_key(saved, backend):
    """A batch whose sequences fit inside half the window + 1 runs the sliding layers as plain attention:
    the same outputs as transformers' windowed ones."""
    folder, hf = saved("base", "hub")
    model = fastbert.ModernBertModel.from_pretrained(folder, attn_implementation=backend)
    ops = fastbert.core.ops.get_ops(backend)
    for lengths, window in (((4, 3, 2), 0), ((5, 3, 2), 6)):
        inputs = batch("base", lengths, labels=False)
        checked = model.validate(fastbert.models.engine.BertInputs(**inputs))
        ctx = model._context(fastbert.models.engine.BertInputs(**inputs), checked, ops, ops.packs, 0, False)
        assert ctx.spec_for(SLIDING).window == window and ctx.spec_for(FULL).window == 0
        judge_all(model, hf, inputs, "base", backend)


def test_eager_padding_whose_window_is_all_padding_matches_transformers_eager(saved):
    """A padded query far past its sequence's end (its whole sliding window padding: e.g. ColBERT's [MASK]
    query expansion with attention_mask 0) has no key; transformers' eager mask adds the fp32 minimum to every
    key of that row, which absorbs the scores: uniform weights over all keys. fastbert's eager computes the
    same, at every position, padding included (in fp32: transformers' float64 eager gives NaN there, its fp32
    softmax turning the float64 minimum into -inf, and its sdpa gives such a row zeros)."""
    folder, _ = saved("base", "hub")
    hf = transformers.ModernBertModel.from_pretrained(folder, attn_implementation="eager").eval()
    model = fastbert.ModernBertModel.from_pretrained(folder, attn_implementation="eager")
    inputs = batch("base", lengths=(4, 16, 9), labels=False)
    half = model.config.local_attention // 2
    assert inputs["attention_mask"][0, 4 + half :].sum() == 0 and inputs["input_ids"].shape[1] > 4 + half + 1
    with torch.no_grad():
        ours = model(**inputs).last_hidden_state
        theirs = hf(**inputs).last_hidden_state
        ours64 = model.to(torch.float64)(**inputs).last_hidden_state
    assert torch.isfinite(ours64).all()
    # the reference: fastbert's eager in float64 (transformers' gives NaN here), itself near transformers'
    torch.testing.assert_close(ours64.float(), theirs, rtol=1e-4, atol=1e-4)
    assert_close(ours, theirs, ours64, torch.float32, what="every position, padding included")


@pytest.mark.parametrize("task", ["masked-lm", "question-answering", "token-classification"])
def test_num_items_in_batch_as_transformers(saved, task):
    """The Trainer's ``num_items_in_batch`` (gradient accumulation): transformers' ModernBERT masked-LM and QA
    losses are sums divided by it (``ForMaskedLMLoss``, ``ForQuestionAnsweringLoss``); its token
    classification keeps the mean. fastbert takes it where transformers does and nowhere else."""
    folder, hf = saved(task, "current")
    model = getattr(fastbert, registry.family("modernbert").classes[task]).from_pretrained(folder)
    inputs = batch(task)
    with torch.no_grad():
        want_mean, got_mean = hf(**inputs).loss, model(**inputs).loss
        # the level, by the parity rule: QA runs padded, where transformers' sdpa gives the rows that see no
        # key other numbers than its eager (which fastbert follows) and its float64 eager NaN; there
        # transformers' eager is torch's own output and fastbert's float64 eager the reference
        if task == "question-answering":
            theirs = type(hf).from_pretrained(folder, attn_implementation="eager").eval()(**inputs).loss
            eager64 = type(model).from_pretrained(folder, attn_implementation="eager").double().eval()
            ref = eager64(**inputs).loss
        else:  # in float64 from the float64 logits: transformers' loss functions cast them to float32
            theirs, ref = (
                want_mean,
                float64_loss(task, hf(**inputs), in_float64(hf, **inputs), inputs["labels"]),
            )
        assert_close(got_mean, theirs, ref, torch.float32, what=f"{task} loss")
        # the scaling by num_items_in_batch: to the bit of a ratio
        for n in (torch.tensor(40), 7):
            want = hf(**inputs, num_items_in_batch=n).loss
            got = model(**inputs, num_items_in_batch=n).loss
            torch.testing.assert_close(got / got_mean, want / want_mean, rtol=1e-5, atol=0)
    if task != "token-classification":
        mean = model(**inputs).loss
        summed = model(**inputs, num_items_in_batch=40).loss
        assert abs(float(summed) - float(mean)) > 1e-3  # the argument changes the loss here


def test_gradients_through_queries_that_see_no_key(saved):
    """QA on the padded sdpa path (its loss reads padded positions): row 1's padded queries 8..10 see, in
    the local layers' window of 6, only padding. torch's fused CPU SDPA computes such rows' forward as
    transformers' eager softmax does but weights their gradient by 1 instead of 1/L; fastbert routes them
    through the math backend, and every gradient meets the rule against transformers' eager."""
    folder, _ = saved("question-answering", "current")
    ours = fastbert.ModernBertForQuestionAnswering.from_pretrained(folder, attn_implementation="sdpa").train()
    theirs = transformers.ModernBertForQuestionAnswering.from_pretrained(folder, attn_implementation="eager")
    # the float64 reference is fastbert's eager (equal to transformers' eager in fp32): transformers' own
    # float64 eager gives NaN gradients on such rows
    ref = fastbert.ModernBertForQuestionAnswering.from_pretrained(folder, attn_implementation="eager")
    theirs.train()
    ref = ref.to(torch.float64).train()
    inputs = batch("question-answering")
    assert not bool(inputs["attention_mask"][1, 7:].any())  # the padded queries the window leaves keyless
    assert_backward_meets_the_rule(ours, theirs, ref, inputs)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_longer_than_max_position_embeddings(saved, backend):
    """transformers' RoPE computes any position: an input longer than max_position_embeddings (64 here), or
    explicit position ids past it, give transformers' outputs (the RoPE table grows to a power of two)."""
    folder, hf = saved("base", "current")
    model = fastbert.ModernBertModel.from_pretrained(folder, attn_implementation=backend).eval()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 99, (2, 90), generator=g)
    mask = torch.ones(2, 90, dtype=torch.long)
    mask[1, 70:] = 0
    with torch.no_grad():
        for extra in ({"attention_mask": mask}, {"position_ids": torch.arange(100, 190)[None]}):
            got = model(input_ids=ids, **extra).last_hidden_state
            want = hf(input_ids=ids, **extra).last_hidden_state
            keep = mask.bool() if "attention_mask" in extra else None
            ref = in_float64(hf, input_ids=ids, **extra).last_hidden_state
            assert_close(got, want, ref, torch.float32, keep, what=str(list(extra)))
