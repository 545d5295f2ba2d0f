"""config.json files with bad or surprising fields: a clear error naming the file and the field, or the
behaviour transformers has."""

import json
import warnings

import pytest
import torch

import fastbert

BASE = dict(
    model_type="bert", vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=20, max_position_embeddings=32,
)  # fmt: skip


def write(tmp_path, **fields):
    (tmp_path / "config.json").write_text(json.dumps({**BASE, **fields}))
    return tmp_path


@pytest.mark.parametrize(
    "fields, error, words, when",
    [
        ({"num_attention_heads": 0}, ValueError, ["num_attention_heads", "positive"], "build"),
        ({"hidden_size": "32"}, TypeError, ["hidden_size", "integer", "'32'"], "config"),
        ({"vocab_size": -1}, ValueError, ["vocab_size"], "build"),
        ({"intermediate_size": 2.5}, TypeError, ["intermediate_size"], "config"),
        ({"max_position_embeddings": True}, TypeError, ["max_position_embeddings"], "config"),
        ({"hidden_size": 15}, ValueError, ["not a multiple of num_attention_heads"], "build"),
        ({"position_embedding_type": "rotary"}, ValueError, ["position_embedding_type"], "config"),
        ({"problem_type": "ranking"}, ValueError, ["problem_type"], "config"),
    ],
)
def test_bad_fields_name_the_file_and_field(tmp_path, fields, error, words, when):
    """Types are refused when the config is read, values when a model is built (transformers 5's timing)."""
    write(tmp_path, **fields)
    with pytest.raises(error) as info:
        config = fastbert.BertConfig.from_pretrained(tmp_path)
        assert when == "build", "refused too late"
        fastbert.BertModel(config)
    text = str(info.value)
    assert "config.json" in text
    for w in words:
        assert w in text


def test_unknown_torch_dtype_is_ignored_with_a_warning(tmp_path):
    write(tmp_path, torch_dtype="float99")
    with pytest.warns(UserWarning, match="unknown torch_dtype 'float99' ignored"):
        config = fastbert.BertConfig.from_pretrained(tmp_path)
    assert config.torch_dtype is None
    fastbert.BertModel(config).save_pretrained(tmp_path / "saved")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the saved config is clean
        model = fastbert.BertModel.from_pretrained(tmp_path / "saved", torch_dtype="auto")
    assert model.dtype == torch.float32


def test_known_dtype_names(tmp_path):
    for name, dtype in (
        ("float16", torch.float16),
        ("bfloat16", torch.bfloat16),
        ("torch.float32", torch.float32),
    ):
        write(tmp_path, torch_dtype=name)
        assert fastbert.BertConfig.from_pretrained(tmp_path).torch_dtype == dtype


def test_num_labels_50_with_a_two_entry_id2label_loads_as_transformers(tmp_path):
    """Fine-tuned checkpoints of older tools: num_labels wins, id2label is regenerated (with a warning)."""
    write(tmp_path, num_labels=50, id2label={"0": "NEG", "1": "POS"}, label2id={"NEG": 0, "POS": 1})
    with pytest.warns(UserWarning, match="num_labels=50"):
        config = fastbert.BertConfig.from_pretrained(tmp_path)
    assert config.num_labels == 50 and config.id2label[49] == "LABEL_49" and config.label2id["LABEL_3"] == 3
    torch.manual_seed(0)
    model = fastbert.BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "saved")
    data = json.loads((tmp_path / "saved" / "config.json").read_text())
    data["id2label"] = {"0": "NEG", "1": "POS"}  # as the old tool wrote it, with a 50-row classifier
    data["num_labels"] = 50
    data.pop("label2id")
    (tmp_path / "saved" / "config.json").write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="num_labels=50"):
        again = fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "saved")
    assert again.classifier.weight.shape == (50, 16)
    torch.testing.assert_close(again.classifier.weight, model.classifier.weight)
    try:
        import transformers
    except ImportError:
        return
    hf = transformers.BertConfig.from_pretrained(tmp_path / "saved")
    assert hf.num_labels == again.config.num_labels == 50


def test_id2label_that_fits_the_head_wins_over_num_labels(tmp_path):
    """The other way round (config.json: num_labels 5, id2label of 3, a 3-row classifier): transformers 4 kept
    id2label and loads it, transformers 5 refuses it; fastbert follows the checkpoint's head and keeps the
    labels. Asking num_labels=5 explicitly is a size mismatch, as it is in transformers."""
    torch.manual_seed(0)
    labels = {0: "neg", 1: "neu", 2: "pos"}
    config = fastbert.BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        id2label=labels,
    )
    model = fastbert.BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["num_labels"] = 5
    (tmp_path / "config.json").write_text(json.dumps(data))
    for load in (fastbert.BertForSequenceClassification, fastbert.AutoModelForSequenceClassification):
        with pytest.warns(UserWarning, match="head has 3 outputs, as config.json's id2label"):
            again = load.from_pretrained(tmp_path)
        assert again.config.id2label == labels and again.config.label2id == {"neg": 0, "neu": 1, "pos": 2}
        torch.testing.assert_close(again.classifier.weight, model.classifier.weight)
    with pytest.raises(ValueError, match="size mismatch for classifier.weight"):
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)


def _saved_with_five_labels_said(folder, cls) -> None:
    """A tiny ``cls`` model with a 3-row classifier saved to ``folder``, its config.json then saying
    num_labels 5 beside the 3 labels of its id2label (a checkpoint in the wild)."""
    config = cls.config_class(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        num_labels=3,
    )
    cls(config).save_pretrained(folder)
    data = json.loads((folder / "config.json").read_text())
    data["num_labels"] = 5
    (folder / "config.json").write_text(json.dumps(data))


def test_id2label_given_to_from_pretrained_is_not_replaced_by_the_files_labels(tmp_path):
    """config.json: num_labels 5, id2label of 3, a 3-row classifier (DistilBERT). The caller's id2label of 2
    labels is what is asked, as its num_labels is: a size mismatch, as transformers (and as with a consistent
    config.json); it loaded the file's 3 labels instead, dropping the caller's names."""
    _saved_with_five_labels_said(tmp_path, fastbert.DistilBertForSequenceClassification)
    mine = {0: "no", 1: "yes"}
    with pytest.raises(ValueError, match="size mismatch for classifier.weight"):
        fastbert.DistilBertForSequenceClassification.from_pretrained(tmp_path, id2label=mine)
    again = fastbert.DistilBertForSequenceClassification.from_pretrained(
        tmp_path, id2label=mine, ignore_mismatched_sizes=True
    )
    assert again.config.id2label == mine and again.classifier.weight.shape == (2, 16)


def test_id2label_given_to_the_config_is_not_replaced_by_the_files_labels(tmp_path):
    """The same, with the labels given to AutoConfig.from_pretrained and the config passed on: the model
    kept config.json's 3 labels (the config still carried them as the fallback), not the caller's 2."""
    _saved_with_five_labels_said(tmp_path, fastbert.MPNetForSequenceClassification)
    for asked in (dict(id2label={0: "no", 1: "yes"}), dict(num_labels=2)):
        config = fastbert.AutoConfig.from_pretrained(tmp_path, **asked)
        assert config.num_labels == 2
        for load in (fastbert.MPNetForSequenceClassification, fastbert.AutoModelForSequenceClassification):
            with pytest.raises(ValueError, match="size mismatch for classifier.out_proj.weight"):
                load.from_pretrained(tmp_path, config=config)


def test_labels_set_on_the_config_are_not_replaced_by_the_files_labels(tmp_path):
    """The same, with the labels set on the config's attributes (``config.num_labels = 2``, or a new
    ``id2label``) before passing it on: the model kept config.json's 3 labels."""
    _saved_with_five_labels_said(tmp_path, fastbert.DistilBertForSequenceClassification)
    for name, value in (("num_labels", 2), ("id2label", {0: "no", 1: "yes"})):
        config = fastbert.AutoConfig.from_pretrained(tmp_path)
        setattr(config, name, value)
        with pytest.raises(ValueError, match="size mismatch for classifier.weight"):
            fastbert.AutoModelForSequenceClassification.from_pretrained(tmp_path, config=config)
    config = fastbert.AutoConfig.from_pretrained(tmp_path)  # untouched: the file's labels, as before
    with pytest.warns(UserWarning, match="head has 3 outputs, as config.json's id2label"):
        again = fastbert.AutoModelForSequenceClassification.from_pretrained(tmp_path, config=config)
    assert again.config.num_labels == 3


def test_a_head_that_fits_neither_num_labels_nor_id2label_is_a_mismatch_without_a_label_warning(tmp_path):
    """config.json: num_labels 5, id2label of 1, a 3-row classifier: the size mismatch, and no warning that
    the head has id2label's 1 output (it was said before the retry it described had failed)."""
    config = fastbert.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=20, num_labels=3)  # fmt: skip
    fastbert.BertForSequenceClassification(config).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data.update(num_labels=5, id2label={"0": "only"}, label2id={"only": 0})
    (tmp_path / "config.json").write_text(json.dumps(data))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="size mismatch for classifier.weight"):
            fastbert.BertForSequenceClassification.from_pretrained(tmp_path)
    assert not [w for w in said if "outputs, as config.json's id2label" in str(w.message)], [
        str(w.message) for w in said
    ]


@pytest.mark.parametrize(
    "read", [fastbert.BertConfig.from_pretrained, fastbert.AutoConfig.from_pretrained], ids=["Bert", "Auto"]
)
def test_not_json_and_not_an_object(tmp_path, read):
    """A config.json that is no JSON object is an OSError naming the file, read by the family's class or by
    AutoConfig (which reads the file itself to find the class): not a bare UnicodeDecodeError."""
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(OSError, match="config.json does not hold a JSON object"):
        read(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(OSError, match="config.json is not valid JSON"):
        read(tmp_path)
    (tmp_path / "config.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(OSError, match="config.json"):
        read(tmp_path)
