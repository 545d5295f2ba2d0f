"""Google's TF1 checkpoints (TensorFlow tensor bundles): names, heads, shards, data-shard checksums."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch
from legacy_helpers import (
    EXTRA_HINT,
    GOOGLE,
    INDEX,
    SHARD,
    assert_converted_like,
    assert_same_weights,
    convert,
    corrupt,
    with_head,
)
from legacy_writers import _field, _pb_bytes, encode_varint, google_names, write_tf1_bundle, write_tf1_index

from fastbert import legacy
from fastbert.config import BertConfig
from fastbert.legacy import protobuf
from fastbert.legacy.sstable import read_sstable


def test_google_bert_config(config):
    google = BertConfig.from_pretrained(GOOGLE)
    assert google.layer_norm_eps == 1e-12
    assert google.hidden_act == "gelu"
    for key in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    ):
        assert getattr(google, key) == getattr(config, key), key
    assert google.to_dict()["model_type"] == "bert"


def test_tf1_optimizer_slots_global_step_and_shards(tmp_path, reference):
    tf = google_names(reference)
    g = torch.Generator().manual_seed(7)
    slots = {}
    for name, t in tf.items():
        slots[f"{name}/adam_m"] = torch.randn(t.shape, generator=g)
        slots[f"{name}/adam_v"] = torch.rand(t.shape, generator=g)
    extra = {"global_step": torch.tensor(123456, dtype=torch.int64)}
    files = write_tf1_bundle(
        tmp_path / "bert_model.ckpt", tf | slots | extra, num_shards=3, entries_per_block=7
    )
    found = legacy.find_legacy_checkpoint(str(tmp_path))
    assert found == ("tf1", files)
    state = legacy.load_legacy_checkpoint(*found)
    assert_same_weights(state, reference)
    raw = dict(legacy.read_tf1_bundle(files[0], skip=None))
    assert raw["global_step"].item() == 123456 and f"{next(iter(tf))}/adam_m" in raw


def test_tf1_google_classifier_and_squad_heads(tmp_path, reference, config, inputs, transformers):
    """run_classifier.py's top-level ``output_weights``/``output_bias`` ([num_labels, hidden], not
    transposed) and run_squad.py's ``cls/squad/...``."""
    cls_state = with_head(reference, "classifier", n=2)
    (tmp_path / "cls").mkdir()
    files = write_tf1_bundle(tmp_path / "cls" / "model.ckpt", google_names(cls_state))
    assert_same_weights(legacy.load_legacy_checkpoint("tf1", files), cls_state)

    qa_state = with_head(reference, "qa_outputs")
    (tmp_path / "qa").mkdir()
    files = write_tf1_bundle(tmp_path / "qa" / "model.ckpt", google_names(qa_state))
    assert_same_weights(legacy.load_legacy_checkpoint("tf1", files), qa_state)

    shutil.copyfile(GOOGLE / "bert_config.json", tmp_path / "cls" / "bert_config.json")
    dst = tmp_path / "converted"
    assert convert(tmp_path / "cls", dst) == "BertForSequenceClassification"
    assert_converted_like(
        transformers, dst, "BertForSequenceClassification", config, cls_state, inputs, ["logits"]
    )


def test_tf1_float16_and_big_tensor_checksum(tmp_path):
    big = {"bert/embeddings/word_embeddings": torch.randn(300, 128).half(), "other/x": torch.arange(5.0)}
    files = write_tf1_bundle(tmp_path / "m.ckpt", big)
    state = legacy.load_legacy_checkpoint("tf1", files)
    assert torch.equal(
        state["bert.embeddings.word_embeddings.weight"], big["bert/embeddings/word_embeddings"]
    )
    assert "other.x" in state  # unknown variables come back under their own name, to be reported unexpected


def test_missing_tf1_shard(google_copy):
    (google_copy / SHARD).unlink()
    found = legacy.find_legacy_checkpoint(str(google_copy))
    with pytest.raises(OSError, match=f"{SHARD}: data shard not found .*tensor bert/"):
        legacy.load_legacy_checkpoint(*found)


def test_truncated_tf1_shard(google_copy):
    corrupt(GOOGLE / SHARD, google_copy / SHARD, truncate=50_000)
    with pytest.raises(OSError, match=f"{SHARD}: truncated data shard: tensor "):
        legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(google_copy)))


def test_corrupt_tf1_shard(google_copy):
    corrupt(GOOGLE / SHARD, google_copy / SHARD, flip=30_000)
    with pytest.raises(OSError, match=f"{SHARD}: checksum mismatch for tensor bert/"):
        legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(google_copy)))


def _tensor_ranges(index) -> dict[str, tuple[int, int]]:
    """(offset, size) of each tensor of the bundle, as its BundleEntryProto says."""
    ranges = {}
    for key, value in read_sstable(str(index)):
        if key:
            fields = protobuf.fields(value)
            ranges[key.decode()] = (fields.get(4, [0])[-1], fields[5][-1])
    return ranges


def test_every_corrupted_tensor_is_detected(google_copy):
    """A single changed byte anywhere in any tensor of the Google fixture (whose checksums TensorFlow
    wrote) fails its checksum, naming that tensor; the untouched fixture verifies."""
    ranges = _tensor_ranges(GOOGLE / INDEX)
    assert len(ranges) == 46
    for name, (offset, size) in ranges.items():
        for position in (offset, offset + size - 1):
            corrupt(GOOGLE / SHARD, google_copy / SHARD, flip=position)
            with pytest.raises(OSError, match=f"checksum mismatch for tensor {name} "):
                legacy.read_tf1_bundle(str(google_copy / INDEX))
    assert len(legacy.read_tf1_bundle(str(GOOGLE / INDEX))) == 46


def test_checksums_can_be_skipped(google_copy, monkeypatch):
    corrupt(GOOGLE / SHARD, google_copy / SHARD, flip=30_000)
    found = legacy.find_legacy_checkpoint(str(google_copy))
    assert len(legacy.load_legacy_checkpoint(*found, verify_checksums=False)) == 46
    monkeypatch.setenv("FASTBERT_VERIFY_CHECKSUMS", "0")
    assert len(legacy.load_legacy_checkpoint(*found)) == 46


def test_missing_crc32c_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "google_crc32c", None)
    with pytest.raises(ImportError, match=f"google-crc32c package, .*{EXTRA_HINT}"):
        legacy.load_legacy_checkpoint("tf1", [str(GOOGLE / INDEX)])


@pytest.mark.parametrize(
    "key, extra, said",
    [
        (b"", _pb_bytes(1, b"x"), "corrupt BundleHeaderProto: field 1 "),  # num_shards as a string
        (b"bert/pooler/dense/bias", _pb_bytes(1, b"x"), "tensor bert/pooler/dense/bias: field 1 "),  # dtype
        (
            b"bert/pooler/dense/bias",
            _field(2, 0, encode_varint(3)),
            "dense/bias: field 2 ",
        ),  # shape: a number
        (b"bert/pooler/dense/kernel", _pb_bytes(2, _field(2, 0, encode_varint(3))), "dense/kernel: field 2 "),
    ],
    ids=["num_shards", "dtype", "shape", "dim"],
)
def test_index_fields_of_the_wrong_wire_type(google_copy, key, extra, said):
    """A well-formed index whose protos hold a field of another wire type (the last value of a field wins in
    protobuf) is a corrupt index naming the file and the tensor, not a TypeError."""
    table = [(k, v + extra if k == key else v) for k, v in read_sstable(str(GOOGLE / INDEX))]
    write_tf1_index(google_copy / INDEX, table)
    with pytest.raises(OSError, match=f"{INDEX}: .*{said}"):
        legacy.load_legacy_checkpoint("tf1", [str(google_copy / INDEX)])


def test_google_electra_checkpoint_loads_its_discriminator_and_generator_heads(tmp_path):
    """google-research/electra's TF1 names: the discriminator's scorer is ``discriminator_predictions/dense_1``
    and the generator's bias ``generator_predictions/output_bias`` (transformers 4's load_tf_weights_in_electra:
    ``dense_prediction``, ``generator_lm_head.bias``); ``temperature`` is skipped. The scorer was read as
    ``dense_1``, an unexpected key, and ElectraForPreTraining ran a random one."""
    import fastbert

    config = fastbert.ElectraConfig(
        vocab_size=60, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=40,
    )  # fmt: skip
    torch.manual_seed(0)
    model = fastbert.ElectraForPreTraining(config).eval()
    state = {
        k: v for k, v in model.state_dict().items() if not k.endswith(("position_ids", "token_type_ids"))
    }
    tf = google_names(state, google_heads=False)
    tf["electra/embeddings_project/kernel"] = tf.pop("electra/embeddings_project/weight").t().contiguous()
    for end in ("kernel", "bias"):
        tf[f"discriminator_predictions/dense_1/{end}"] = tf.pop(
            f"discriminator_predictions/dense_prediction/{end}"
        )
    bias = torch.randn(60)
    extra = {"generator_predictions/output_bias": bias, "temperature": torch.tensor(1.0)}
    write_tf1_bundle(tmp_path / "model.ckpt", tf | extra)
    config.save_pretrained(tmp_path)
    state = legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(tmp_path)))
    assert torch.equal(state["generator_lm_head.bias"], bias) and "temperature" not in state
    again, info = fastbert.ElectraForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and info["unexpected_keys"] == {"generator_lm_head.bias"}
    ids = torch.randint(0, 60, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits)
