"""transformers' TF 2 checkpoints (``tf_model.h5``): Keras layouts, heads, damaged files."""

from __future__ import annotations

import json
import re

import h5py
import pytest
from legacy_helpers import (
    FIXTURES,
    assert_converted_like,
    assert_same_weights,
    convert,
    copy_config,
    corrupt,
    with_head,
)
from legacy_writers import write_tf2_h5

from fastbert import legacy
from fastbert.config import BertConfig


def test_tf2_sequence_classification(tmp_path, reference, config, inputs, transformers):
    """Keras model name with a ``_1`` suffix, no ``top_level_model_weights``, empty dropout groups."""
    state = with_head(reference, "classifier", n=3)
    folder = tmp_path / "tf2_cls"
    folder.mkdir()
    write_tf2_h5(
        folder / "tf_model.h5",
        state,
        model_name="tf_bert_for_sequence_classification_1",
        top_level_group=False,
        dropout_groups=1,
    )
    copy_config(folder, config, architectures=["TFBertForSequenceClassification"], num_labels=3)
    found = legacy.find_legacy_checkpoint(str(folder))
    assert found[0] == "tf2"
    assert_same_weights(legacy.load_legacy_checkpoint(*found), state)

    dst = tmp_path / "converted"
    assert convert(folder, dst) == "BertForSequenceClassification"
    assert BertConfig.from_pretrained(dst).num_labels == 3
    cls_config = BertConfig.from_pretrained(folder)
    assert_converted_like(
        transformers, dst, "BertForSequenceClassification", cls_config, state, inputs, ["logits"]
    )


def test_tf2_masked_lm_and_sharded_layout(tmp_path, reference):
    mlm = {k: v for k, v in reference.items() if not k.startswith("cls.seq_relationship")}
    write_tf2_h5(tmp_path / "mlm.h5", mlm, model_name="tf_bert_for_masked_lm")
    state = legacy.load_legacy_checkpoint("tf2", [str(tmp_path / "mlm.h5")])
    assert_same_weights(state, mlm)
    assert legacy.infer_architecture(state) == "BertForMaskedLM"

    write_tf2_h5(tmp_path / "sharded.h5", reference, sharded_layout=True)
    assert_same_weights(legacy.load_legacy_checkpoint("tf2", [str(tmp_path / "sharded.h5")]), reference)


def test_tf2_token_classification_declared_in_config(tmp_path, reference, config):
    state = with_head(reference, "classifier", n=5)
    folder = tmp_path / "tok"
    folder.mkdir()
    write_tf2_h5(folder / "tf_model.h5", state, model_name="tf_bert_for_token_classification")
    copy_config(folder, config, architectures=["TFBertForTokenClassification"])
    dst = tmp_path / "converted"
    assert convert(folder, dst) == "BertForTokenClassification"
    saved = BertConfig.from_pretrained(dst)
    assert saved.architectures == ["BertForTokenClassification"] and saved.num_labels == 5


def test_tf2_token_classification_told_by_its_missing_pooler(
    tmp_path, reference, config, inputs, transformers
):
    """TFBertForTokenClassification stores no pooler: with no class in config.json, the checkpoint is a
    BertForTokenClassification (as a BertForSequenceClassification, transformers ran a random pooler)."""
    state = {k: v for k, v in with_head(reference, "classifier", n=5).items() if ".pooler." not in k}
    folder = tmp_path / "tok"
    folder.mkdir()
    write_tf2_h5(folder / "tf_model.h5", state, model_name="tf_bert_for_token_classification")
    copy_config(folder, config, architectures=None, num_labels=5)
    dst = tmp_path / "converted"
    assert convert(folder, dst) == "BertForTokenClassification"
    cls_config = BertConfig.from_pretrained(dst)
    assert_converted_like(
        transformers, dst, "BertForTokenClassification", cls_config, state, inputs, ["logits"]
    )


@pytest.mark.parametrize("cut", [0, 100, 4000, 100_000])
def test_truncated_h5(tmp_path, cut):
    bad = corrupt(FIXTURES / "tf_model.h5", tmp_path / "tf_model.h5", truncate=cut)
    with pytest.raises(OSError, match="tf_model.h5"):
        legacy.load_legacy_checkpoint("tf2", [str(bad)])


@pytest.mark.parametrize("flip", [3970, 6676, 6696, 6705, 138838])
def test_damaged_h5_metadata_names_the_file(tmp_path, flip):
    """A damaged byte in the Keras attributes (``layer_names`` / ``weight_names``, kept in HDF5's global heap):
    h5py's own OSError ("Can't synchronously read data (bad heap index ...)") came through as it was, naming
    no file."""
    bad = corrupt(FIXTURES / "tf_model.h5", tmp_path / "tf_model.h5", flip=flip)
    with pytest.raises(OSError, match=re.escape(str(bad))):
        legacy.load_legacy_checkpoint("tf2", [str(bad)])


@pytest.mark.parametrize("attr", ["layer_names", "weight_names"])
def test_undecodable_keras_names_name_the_file(tmp_path, attr):
    """A layer or weight name that is not UTF-8: h5py's UnicodeEncodeError, naming no file, came through."""
    path = tmp_path / "tf_model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"bert\xff" if attr == "layer_names" else b"bert"]
        f.create_group("bert").attrs["weight_names"] = [b"tf_bert_model/bert/x\xff:0"]
    with pytest.raises(OSError, match=f"{re.escape(str(path))}: damaged HDF5"):
        legacy.load_legacy_checkpoint("tf2", [str(path)])


def test_h5_without_keras_weights(tmp_path):
    with h5py.File(tmp_path / "tf_model.h5", "w") as f:
        f.attrs["layer_names"] = [b"bert"]
    with pytest.raises(OSError, match="tf_model.h5"):
        legacy.load_legacy_checkpoint("tf2", [str(tmp_path / "tf_model.h5")])


def test_sharded_layout_of_another_family(tmp_path):
    """transformers' sharded TF layout names datasets by their real path (``distilbert/embeddings/...``,
    ``distilbert/transformer/layer_._0/...``): every name keeps its ``distilbert`` root. The embeddings were
    cut to ``embeddings...`` (a known segment searched for) beside ``distilbert.transformer...``, so
    ``from_pretrained`` left them random and reported them as missing and unexpected."""
    import torch

    import fastbert

    config = fastbert.DistilBertConfig(
        vocab_size=50, dim=32, n_layers=2, n_heads=2, hidden_dim=37, max_position_embeddings=64
    )
    torch.manual_seed(0)
    model = fastbert.DistilBertForMaskedLM(config).eval()
    state = {k: v for k, v in model.state_dict().items() if k != "vocab_projector.weight"}
    with h5py.File(tmp_path / "tf_model-00001-of-00001.h5", "w") as f:
        names = []
        for key, value in state.items():
            parts = re.sub(r"/layer/(\d+)/", r"/layer_._\1/", key.replace(".", "/")).split("/")
            if "norm" in parts[-2].lower():
                parts[-1] = {"weight": "gamma", "bias": "beta"}[parts[-1]]
            elif parts[-2] == "position_embeddings":
                parts[-1] = "embeddings"
            elif value.dim() == 2 and parts[-2] != "word_embeddings":
                parts[-1], value = "kernel", value.t()
            name = "/".join(parts) + ":0"
            f.create_dataset(name, data=value.contiguous().numpy())
            names.append(name.encode())
        f.attrs["layer_names"] = names
    (tmp_path / "tf_model.h5.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {"x": "tf_model-00001-of-00001.h5"}})
    )
    config.save_pretrained(tmp_path)
    again, info = fastbert.DistilBertForMaskedLM.from_pretrained(
        tmp_path, from_tf=True, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits)


@pytest.mark.parametrize(
    "weight_map, said",
    [
        ({"x": "../outside.h5"}, "points outside the model directory"),
        ({"x": "/etc/passwd"}, "points outside the model directory"),
        ({"x": 3}, "weight_map is not a name -> file mapping"),
    ],
)
def test_a_sharded_index_is_checked_as_the_pytorch_ones(tmp_path, weight_map, said):
    """A TF 2 index is checked by the same rule as a PyTorch / safetensors one: a shard is a file of the
    model's folder (``../outside.h5`` was read from beside it) and the weight_map maps names to files (a
    number was an uncaught TypeError)."""
    import fastbert

    fastbert.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "tf_model.h5.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    with pytest.raises(OSError, match=said):
        fastbert.BertModel.from_pretrained(tmp_path / "m", from_tf=True)
