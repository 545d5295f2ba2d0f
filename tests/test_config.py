"""BertConfig: transformers' fields and defaults, JSON round trips, unknown keys kept."""

import json
import os

import pytest
import torch
from model_helpers import TINY

import fastbert

if os.environ.get("FASTBERT_ALLOW_NO_TRANSFORMERS") == "1":  # else a missing test extra fails the run
    transformers = pytest.importorskip("transformers")
else:
    import transformers

FIELDS = [
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "is_decoder",
    "add_cross_attention",
    "use_cache",
    "classifier_dropout",
    "num_labels",
    "id2label",
    "label2id",
    "problem_type",
    "architectures",
    "tie_word_embeddings",
    "output_hidden_states",
    "return_dict",
    "chunk_size_feed_forward",
]


def test_defaults_equal_transformers():
    ours, theirs = fastbert.BertConfig(), transformers.BertConfig()
    for field in FIELDS:
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.position_embedding_type == "absolute"


def test_json_round_trip_and_unknown_keys(tmp_path):
    config = fastbert.BertConfig(hidden_size=48, num_attention_heads=4, num_labels=3, my_custom_key=[1, 2])
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["model_type"] == "bert" and data["my_custom_key"] == [1, 2]
    assert data["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    again = fastbert.BertConfig.from_pretrained(tmp_path)
    assert again == config and again.my_custom_key == [1, 2] and again.num_labels == 3
    assert again.id2label[2] == "LABEL_2" and again.label2id["LABEL_1"] == 1
    # transformers reads ours, we read transformers'
    theirs = transformers.BertConfig.from_pretrained(tmp_path)
    assert theirs.hidden_size == 48 and theirs.num_labels == 3
    theirs.save_pretrained(tmp_path / "t")
    assert fastbert.BertConfig.from_pretrained(tmp_path / "t").to_dict()["hidden_size"] == 48


def test_transformers_4_config_fields_bert_leaves_unset(tmp_path):
    """PretrainedConfig fields of transformers 4 that code reads (TorchScript exporters, pipelines,
    tokenizer lookups) read as 4.57 has them (values written out here, 5 dropped them); config.json carries
    only those a file or the caller set, and a set one round-trips."""
    config = fastbert.BertConfig()
    unset = dict(
        torchscript=False, tokenizer_class=None, finetuning_task=None, task_specific_params=None,
        prefix=None, sep_token_id=None, decoder_start_token_id=None,
    )  # fmt: skip
    assert {k: getattr(config, k) for k in unset} == unset
    assert not set(unset) & set(config.to_dict())
    config = fastbert.BertConfig.from_dict({"tokenizer_class": "BertTokenizer"}, torchscript=True)
    assert config.tokenizer_class == "BertTokenizer" and config.torchscript is True
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["tokenizer_class"] == "BertTokenizer" and data["torchscript"] is True
    assert "finetuning_task" not in data
    again = fastbert.BertConfig.from_pretrained(tmp_path)
    assert again.tokenizer_class == "BertTokenizer" and again.torchscript is True
    assert fastbert.BertConfig().torchscript is False  # set on an instance, not the class
    # transformers 4: a config made for TorchScript returns tuples (use_return_dict = return_dict and not
    # torchscript); fastbert returned dataclasses
    assert again.use_return_dict is False and fastbert.BertConfig().use_return_dict is True
    model = fastbert.BertModel(fastbert.BertConfig(**TINY, torchscript=True)).eval()
    out = model(torch.tensor([[5, 6, 7]]))
    assert isinstance(out, tuple) and out[0].shape == (1, 3, TINY["hidden_size"])
    assert not isinstance(model(torch.tensor([[5, 6, 7]]), return_dict=True), tuple)


def test_config_without_model_type_and_google_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 4}))
    assert fastbert.BertConfig.from_pretrained(tmp_path).hidden_size == 64
    google = tmp_path / "google"
    google.mkdir()
    (google / "bert_config.json").write_text(
        json.dumps(
            {
                "attention_probs_dropout_prob": 0.1,
                "hidden_act": "gelu",
                "hidden_dropout_prob": 0.1,
                "hidden_size": 32,
                "initializer_range": 0.02,
                "intermediate_size": 37,
                "max_position_embeddings": 64,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "type_vocab_size": 2,
                "vocab_size": 99,
            }
        )
    )
    config = fastbert.BertConfig.from_pretrained(google)
    assert config.layer_norm_eps == 1e-12 and config.vocab_size == 99


def test_other_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="gpt2"):
        fastbert.BertConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(OSError, match="not valid JSON"):
        fastbert.BertConfig.from_pretrained(tmp_path)


def test_num_labels_setter_and_label_maps():
    config = fastbert.BertConfig(id2label={"0": "NEG", "1": "POS"})
    assert config.num_labels == 2 and config.label2id == {"NEG": 0, "POS": 1}
    config.num_labels = 4
    assert list(config.id2label.values()) == ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]
    # as transformers: num_labels wins over a shorter id2label, with a warning, and the labels are renamed
    with pytest.warns(UserWarning, match="num_labels=3"):
        config = fastbert.BertConfig(num_labels=3, id2label={0: "a"})
    assert config.num_labels == 3 and config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    with pytest.raises(ValueError, match="problem_type"):
        fastbert.BertConfig(problem_type="ranking")


@pytest.mark.parametrize(
    "labels, field",
    [
        (dict(id2label={"neg": "NEG"}), "id2label"),
        (dict(label2id={"NEG": "zero"}), "label2id"),
        (dict(label2id={"NEG": None}), "label2id"),
        (dict(id2label={0: "NEG"}, label2id=["NEG"]), "label2id"),
    ],
)
def test_bad_label_maps_are_refused_naming_the_field(tmp_path, labels, field):
    # label ids that are not integers: an error naming the field and the file (was "invalid literal for int()",
    # an AttributeError for a list, a TypeError for null)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **labels}))
    with pytest.raises((ValueError, TypeError), match=f"config.json: config field {field}"):
        fastbert.BertConfig.from_pretrained(tmp_path)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, fastbert; fastbert.BertConfig; print('triton' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_documented_submodules_after_a_plain_import():
    # README: `fastbert.hub.embedded_model_path()` and `fastbert.quant.refresh(model)` after `import fastbert`;
    # `import fastbert` alone still imports neither triton nor transformers
    import subprocess
    import sys

    code = (
        "import sys, fastbert; light = ('triton' in sys.modules, 'transformers' in sys.modules); "
        "print(*light, callable(fastbert.hub.embedded_model_path), callable(fastbert.quant.refresh))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True", "True"]


def test_from_pretrained_attn_implementation_keyword(tmp_path):
    # transformers: AutoConfig/BertConfig.from_pretrained(path, attn_implementation="eager") sets the config's
    # backend (not an unused keyword); fastbert returned it unused and the config kept the default
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 48}))
    for cls in (fastbert.BertConfig, fastbert.AutoConfig, transformers.BertConfig, transformers.AutoConfig):
        config, unused = cls.from_pretrained(tmp_path, attn_implementation="eager", return_unused_kwargs=True)
        assert (config._attn_implementation, unused) == ("eager", {}), cls
    model = fastbert.AutoModel.from_config(
        fastbert.AutoConfig.from_pretrained(tmp_path, attn_implementation="eager")
    )
    assert model.config._attn_implementation == "eager"


def test_from_pretrained_download_keywords_are_not_unused(tmp_path):
    # transformers consumes its download / telemetry keywords (AutoConfig also code_revision): a caller that
    # passes the unused keywords on to a model's __init__ (return_unused_kwargs=True) must not get them back
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    kw = dict(
        force_download=False, proxies=None, trust_remote_code=False, _from_pipeline="x", _from_auto=True
    )
    for lib in (fastbert, transformers):
        _, unused = lib.BertConfig.from_pretrained(tmp_path, return_unused_kwargs=True, my_arg=1, **kw)
        assert unused == {"my_arg": 1}, lib
        _, unused = lib.AutoConfig.from_pretrained(
            tmp_path, return_unused_kwargs=True, code_revision="v1", **kw
        )
        assert unused == {}, lib


def _transformers_before(major: int, minor: int) -> bool:
    return tuple(int(p) for p in transformers.__version__.split(".")[:2]) < (major, minor)


def test_config_json_private_attn_implementation_is_not_read(tmp_path):
    # transformers 5.25 ignores a config.json's "_attn_implementation" (hub configs saved with
    # flash_attention_2); fastbert read it and refused to build the model ("flash_attention_2 is a transformers
    # backend"). transformers 5.17 (the GPU machine's) still read it: the premise holds from 5.25.
    config = transformers.BertConfig(**TINY)
    transformers.BertModel(config).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "_attn_implementation": "flash_attention_2"}))
    theirs = transformers.BertConfig.from_pretrained(tmp_path)._attn_implementation
    assert theirs is None or _transformers_before(5, 25), theirs
    assert fastbert.BertConfig.from_pretrained(tmp_path)._attn_implementation is None
    model = fastbert.BertModel.from_pretrained(tmp_path).eval()  # the device's default backend
    assert model.config._attn_implementation is None
    assert model(torch.tensor([[5, 6, 7]])).last_hidden_state.shape == (1, 3, TINY["hidden_size"])
    assert fastbert.BertConfig.from_dict(data, attn_implementation="eager")._attn_implementation == "eager"


def test_label2id_without_id2label_is_rebuilt(tmp_path):
    # transformers (4 and 5): without id2label, num_labels (default 2) names the labels and label2id follows
    # them; fastbert kept the given label2id beside LABEL_0/LABEL_1 (3 names for 2 labels, saved back)
    given = {"neg": 0, "neu": 1, "pos": 2}
    for lib in (transformers, fastbert):
        config = lib.BertConfig(label2id=given)
        assert config.num_labels == 2 and config.id2label == {0: "LABEL_0", 1: "LABEL_1"}, lib
        assert config.label2id == {"LABEL_0": 0, "LABEL_1": 1}, lib
        three = lib.BertConfig(label2id=given, num_labels=3)
        assert three.label2id == {f"LABEL_{i}": i for i in range(3)}, lib
    # with id2label, the given label2id is kept, as transformers keeps it
    config = fastbert.BertConfig(id2label={"0": "a", "1": "b"}, label2id={"a": "0", "b": 1})
    assert config.id2label == {0: "a", 1: "b"} and config.label2id == {"a": 0, "b": 1}


def test_single_label_classification_needs_two_labels(tmp_path):
    # transformers 5 refuses the config (4 took it, and cross-entropy over one class is 0: a head that never
    # trains); fastbert took it. Set later by attribute, it is taken, as transformers takes it
    for lib in (transformers, fastbert):
        with pytest.raises(ValueError, match="num_labels > 1"):
            lib.BertConfig(problem_type="single_label_classification", num_labels=1)
        config = lib.BertConfig(problem_type="single_label_classification")
        config.num_labels = 1
        assert config.num_labels == 1
    (tmp_path / "config.json").write_text(
        json.dumps(
            {"model_type": "bert", "problem_type": "single_label_classification", "id2label": {"0": "a"}}
        )
    )
    with pytest.raises(ValueError, match="config.json: .*num_labels > 1"):
        fastbert.BertConfig.from_pretrained(tmp_path)
    assert fastbert.BertConfig(problem_type="regression", num_labels=1).num_labels == 1


def test_modernbert_bert_dropout_names_are_kept_unread(tmp_path):
    # transformers' ModernBERT has no attention_probs_dropout_prob / hidden_dropout_prob: given, they are kept
    # as unused attributes and written back, and attention drops out with attention_dropout (default 0). fastbert
    # took attention_probs_dropout_prob as attention_dropout (trained with that dropout) and dropped both
    given = dict(attention_probs_dropout_prob=0.3, hidden_dropout_prob=0.2)
    for lib in (transformers, fastbert):
        config = lib.ModernBertConfig(**given)
        assert config.attention_dropout == 0.0, lib
        data = config.to_diff_dict()
        assert {k: data.get(k) for k in given} == given and data["attention_dropout"] == 0.0, lib
        config.save_pretrained(tmp_path / lib.__name__)
        again = fastbert.ModernBertConfig.from_pretrained(tmp_path / lib.__name__)
        assert again.attention_dropout == 0.0 and {k: again.to_dict()[k] for k in given} == given, lib
    config = fastbert.ModernBertConfig(attention_dropout=0.25)
    assert config.attention_probs_dropout_prob == 0.25  # what the engine reads
    assert "attention_probs_dropout_prob" not in config.to_dict()


def test_distilbert_unmapped_bert_names_are_kept_unread(tmp_path):
    # transformers' DistilBertConfig maps hidden_size / num_attention_heads / num_hidden_layers to dim / n_heads /
    # n_layers (BERT's name wins when both are given), and keeps intermediate_size, hidden_act and BERT's dropouts
    # as unused attributes: its model is built from hidden_dim, activation, dropout, attention_dropout. fastbert
    # took them as aliases (an FFN of 64 with ReLU where transformers builds 3072 with GELU)
    given = dict(
        intermediate_size=64, hidden_act="relu", hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.2
    )
    for lib in (transformers, fastbert):
        config = lib.DistilBertConfig(**given, dim=32, hidden_size=64, n_heads=4)
        fields = ("hidden_dim", "activation", "dropout", "attention_dropout", "dim", "n_heads")
        assert tuple(getattr(config, k) for k in fields) == (3072, "gelu", 0.1, 0.1, 64, 4), lib
        data = config.to_diff_dict()
        assert {k: data[k] for k in given} == given and "hidden_size" not in data, lib
        config.save_pretrained(tmp_path / lib.__name__)
        again = fastbert.DistilBertConfig.from_pretrained(tmp_path / lib.__name__)
        assert (again.hidden_dim, again.activation, again.dim) == (3072, "gelu", 64), lib
        assert {k: again.to_dict()[k] for k in given} == given, lib
    tiny = dict(vocab_size=99, dim=36, n_layers=1, n_heads=3, max_position_embeddings=40)
    model = fastbert.DistilBertModel(fastbert.DistilBertConfig(**tiny, intermediate_size=16))
    assert model.transformer.layer[0].ffn.lin1.out_features == 3072


def test_distilbert_from_pretrained_unmapped_bert_names_are_unused(tmp_path):
    # transformers: from_pretrained keywords set the config's fields only; DistilBertConfig has no hidden_act or
    # intermediate_size (returned unused; the model class refuses them). fastbert set activation / hidden_dim:
    # DistilBertModel.from_pretrained(path, hidden_act="relu") ran GELU-trained weights under ReLU
    config = transformers.DistilBertConfig(vocab_size=99, dim=32, n_heads=4, n_layers=1, hidden_dim=37)
    transformers.DistilBertModel(config).save_pretrained(tmp_path)
    for lib in (transformers, fastbert):
        config, unused = lib.DistilBertConfig.from_pretrained(
            tmp_path, return_unused_kwargs=True, hidden_act="relu", intermediate_size=16, hidden_size=64
        )
        assert unused == {"hidden_act": "relu", "intermediate_size": 16}, lib
        assert (config.activation, config.hidden_dim, config.dim) == ("gelu", 37, 64), lib
        with pytest.raises(TypeError, match="hidden_act"):
            lib.DistilBertModel.from_pretrained(tmp_path, hidden_act="relu")
    assert fastbert.DistilBertModel.from_pretrained(tmp_path, activation="relu").config.activation == "relu"


FAMILY_CONFIGS = [
    "BertConfig",
    "RobertaConfig",
    "ElectraConfig",
    "DistilBertConfig",
    "MPNetConfig",
    "ModernBertConfig",
]


@pytest.mark.parametrize("name", FAMILY_CONFIGS)
def test_transformers_version_kept_as_read_and_written_back(tmp_path, name):
    """config.transformers_version is the version the config.json read names, as transformers' (it was
    dropped): save_pretrained writes it back (transformers writes its own version there; fastbert, which runs
    without transformers, writes the one it read), and transformers reads it back; a config built in code has
    None, as transformers 5's, and writes none."""
    theirs_class, ours_class = getattr(transformers, name), getattr(fastbert, name)
    theirs_class().save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["transformers_version"] = "4.30.0"
    (tmp_path / "config.json").write_text(json.dumps(data))
    ours = ours_class.from_pretrained(tmp_path)
    assert (
        ours.transformers_version == theirs_class.from_pretrained(tmp_path).transformers_version == "4.30.0"
    )
    assert ours.to_dict()["transformers_version"] == "4.30.0"
    assert "transformers_version" in json.loads(ours.to_json_string(use_diff=True))
    ours.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["transformers_version"] == "4.30.0"
    assert theirs_class.from_pretrained(tmp_path / "again").transformers_version == "4.30.0"
    assert ours_class.from_pretrained(tmp_path / "again") == ours

    built = ours_class()
    assert built.transformers_version is None and theirs_class().transformers_version is None
    assert "transformers_version" not in built.to_dict()
    with pytest.raises(TypeError, match="transformers_version"):
        ours_class(transformers_version=4.3)


@pytest.mark.parametrize("name", FAMILY_CONFIGS)
def test_in_and_iteration_name_the_fields_as_transformers(name):
    """``"field" in config`` (transformers 5's PretrainedConfig iterates over its fields): it raised TypeError
    (not iterable). The family's own field names, extra keys given; not a name the config lacks, nor
    transformers' alias of a field (DistilBERT's hidden_size)."""
    ours = getattr(fastbert, name)(my_extra_key=3)
    theirs = getattr(transformers, name)(my_extra_key=3)
    public = {k for k in theirs if not k.startswith("_")} - {"transformers_version"}
    assert public <= set(ours)
    for key in ("my_extra_key", "vocab_size", "num_labels_missing", "not_a_field", "hidden_size", "dim"):
        assert (key in ours) == (key in theirs), key
    assert "model_type" not in ours and list(ours) == list(dict.fromkeys(ours))
