"""transformers' Flax checkpoints (``flax_model.msgpack``): heads, base model, dtypes, damaged files."""

from __future__ import annotations

import re

import msgpack
import pytest
import torch
from legacy_helpers import (
    FIXTURES,
    assert_converted_like,
    assert_same_outputs,
    assert_same_weights,
    convert,
    copy_config,
    corrupt,
    with_head,
)
from legacy_writers import write_flax_msgpack
from safetensors.torch import load_file

from fastbert import legacy


def test_flax_question_answering(tmp_path, reference, config, inputs, transformers):
    state = with_head(reference, "qa_outputs")
    folder = tmp_path / "flax_qa"
    folder.mkdir()
    write_flax_msgpack(folder / "flax_model.msgpack", state)
    copy_config(folder, config, architectures=["FlaxBertForQuestionAnswering"])
    found = legacy.find_legacy_checkpoint(str(folder))
    assert found[0] == "flax"
    assert_same_weights(legacy.load_legacy_checkpoint(*found), state)

    dst = tmp_path / "converted"
    assert convert(folder, dst) == "BertForQuestionAnswering"
    assert_converted_like(
        transformers, dst, "BertForQuestionAnswering", config, state, inputs, ["start_logits", "end_logits"]
    )


def test_flax_base_model_keeps_no_prefix(tmp_path, reference, config):
    """FlaxBertModel stores embeddings/encoder/pooler at the top level, with no ``bert`` level: the names
    keep none, and the loader puts them under the model's own prefix (``bert.``, or ``roberta.`` for a
    FlaxRobertaModel, which a fixed ``bert.`` left unloaded)."""
    base = {k: v for k, v in reference.items() if k.startswith("bert.")}
    write_flax_msgpack(tmp_path / "flax_model.msgpack", base, base_only=True)
    state = legacy.load_legacy_checkpoint("flax", [str(tmp_path / "flax_model.msgpack")])
    assert_same_weights(state, {k.removeprefix("bert."): v for k, v in base.items()})
    copy_config(tmp_path, config, architectures=["FlaxBertModel"])
    dst = tmp_path / "converted"
    assert convert(tmp_path, dst) == "BertModel"
    saved = load_file(dst / "model.safetensors")  # as transformers writes a BertModel: no prefix
    assert sorted(saved) == sorted(k.removeprefix("bert.") for k in base)


def test_flax_bfloat16(tmp_path, reference):
    half = {k: v.to(torch.bfloat16) for k, v in reference.items()}
    write_flax_msgpack(tmp_path / "bf16.msgpack", half)
    assert_same_weights(legacy.load_legacy_checkpoint("flax", [str(tmp_path / "bf16.msgpack")]), half)


def test_flax_untied_masked_lm_converts_for_transformers(tmp_path, reference, config, inputs, transformers):
    """With tie_word_embeddings=False, transformers 5 reads the decoder's own bias: the converted folder holds
    it (the Flax head's one bias), as fastbert's from_pretrained fills it; it was left to initialisation."""
    g = torch.Generator().manual_seed(7)
    state = {k: v for k, v in reference.items() if not k.startswith(("cls.seq", "bert.pooler"))}
    state["cls.predictions.decoder.weight"] = torch.randn(99, 32, generator=g) * 0.02
    folder = tmp_path / "untied"
    folder.mkdir()
    write_flax_msgpack(folder / "flax_model.msgpack", state)
    copy_config(folder, config, architectures=["FlaxBertForMaskedLM"], tie_word_embeddings=False)
    fields = {k: v for k, v in config.to_dict().items() if k not in ("torch_dtype", "architectures")}
    want = transformers.BertForMaskedLM(transformers.BertConfig(**{**fields, "tie_word_embeddings": False}))
    want.load_state_dict(
        {**state, "cls.predictions.decoder.bias": state["cls.predictions.bias"]}, strict=False
    )
    dst = tmp_path / "converted"
    assert convert(folder, dst) == "BertForMaskedLM"
    got = transformers.BertForMaskedLM.from_pretrained(dst).eval()
    with torch.no_grad():
        assert_same_outputs(got(**inputs), want.eval()(**inputs), ["logits"])


@pytest.mark.parametrize("cut", [0, 1, 50, 40_000, 86_535])
def test_truncated_msgpack(tmp_path, cut):
    bad = corrupt(FIXTURES / "flax_model.msgpack", tmp_path / "flax_model.msgpack", truncate=cut)
    with pytest.raises(OSError, match="flax_model.msgpack"):
        legacy.load_legacy_checkpoint("flax", [str(bad)])


def test_msgpack_garbage_and_wrong_sizes(tmp_path):
    (tmp_path / "garbage.msgpack").write_bytes(b"\xc1" * 64)
    with pytest.raises(OSError, match="garbage.msgpack"):
        legacy.load_legacy_checkpoint("flax", [str(tmp_path / "garbage.msgpack")])
    arr = msgpack.ExtType(1, msgpack.packb(([4, 4], "float32", b"\0" * 60), use_bin_type=True))
    (tmp_path / "short.msgpack").write_bytes(msgpack.packb({"bert": {"pooler": {"dense": {"kernel": arr}}}}))
    with pytest.raises(ValueError, match=r"short.msgpack: bert/pooler/dense/kernel"):
        legacy.load_legacy_checkpoint("flax", [str(tmp_path / "short.msgpack")])
    # a damaged shape (a string where a dimension was: one flipped bit of the fixture does this)
    arr = msgpack.ExtType(1, msgpack.packb((["", 4], "float32", b"\0" * 64), use_bin_type=True))
    (tmp_path / "shape.msgpack").write_bytes(msgpack.packb({"bert": {"pooler": {"dense": {"kernel": arr}}}}))
    with pytest.raises(ValueError, match=r"shape.msgpack: bert/pooler/dense/kernel: invalid shape"):
        legacy.load_legacy_checkpoint("flax", [str(tmp_path / "shape.msgpack")])


@pytest.mark.parametrize("data", [0, "abcd", [1.0]])
def test_array_data_that_is_not_bytes_names_the_file(tmp_path, data):
    """An array whose data field is an int, a str or a list (a damaged type byte): torch's TypeError ("object of
    type 'int' has no len()", "string argument without an encoding") came through, naming no file."""
    arr = msgpack.ExtType(1, msgpack.packb(([1], "float32", data), use_bin_type=True))
    path = tmp_path / "flax_model.msgpack"
    path.write_bytes(msgpack.packb({"bert": {"pooler": {"dense": {"bias": arr}}}}))
    with pytest.raises(OSError, match=f"{re.escape(str(path))}: not a valid Flax msgpack file"):
        legacy.load_legacy_checkpoint("flax", [str(path)])


def test_flax_base_layout_of_another_family_loads(tmp_path):
    """A FlaxRobertaModel-layout file (embeddings/encoder/pooler at the top) loads into RobertaModel and a
    RoBERTa head whole: its tensors go under ``roberta.``, not ``bert.`` (they were left random before)."""
    import fastbert

    config = fastbert.RobertaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    torch.manual_seed(0)
    model = fastbert.RobertaModel(config).eval()
    state = {f"bert.{k}": v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    write_flax_msgpack(tmp_path / "flax_model.msgpack", state, base_only=True)
    config.save_pretrained(tmp_path)
    again, info = fastbert.RobertaModel.from_pretrained(tmp_path, from_flax=True, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids = torch.randint(3, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).last_hidden_state, model(ids).last_hidden_state)
    head, info = fastbert.RobertaForMaskedLM.from_pretrained(
        tmp_path, from_flax=True, output_loading_info=True
    )
    assert not [k for k in info["missing_keys"] if k.startswith("roberta.")]


def _flax_array(t: torch.Tensor) -> msgpack.ExtType:
    return msgpack.ExtType(
        1, msgpack.packb((list(t.shape), "float32", t.numpy().tobytes()), use_bin_type=True)
    )


def test_chunked_arrays(tmp_path):
    """flax.serialization's layout of an array over 2 GiB ({"__msgpack_chunked_array__", "shape", "chunks"},
    each map keyed "0", "1", ...) reads as the array; one that holds no chunks (a damaged map: flax chunks no
    empty array) raised torch.cat's bare "expected a non-empty list of Tensors", naming no file or tensor."""
    t = torch.randn(10, 4)
    flat = t.reshape(-1)
    chunked = {
        "__msgpack_chunked_array__": True,
        "shape": {"0": 10, "1": 4},
        "chunks": {"0": _flax_array(flat[:24]), "1": _flax_array(flat[24:])},
    }
    path = tmp_path / "flax_model.msgpack"
    path.write_bytes(msgpack.packb({"bert": {"embeddings": {"word_embeddings": {"embedding": chunked}}}}))
    state = legacy.load_legacy_checkpoint("flax", [str(path)])
    assert torch.equal(state["bert.embeddings.word_embeddings.weight"], t)

    empty = {"__msgpack_chunked_array__": True, "shape": {"0": 10, "1": 4}, "chunks": {}}
    path.write_bytes(msgpack.packb({"bert": {"embeddings": {"word_embeddings": {"embedding": empty}}}}))
    said = f"{re.escape(str(path))}: bert/embeddings/word_embeddings/embedding: damaged chunked array"
    with pytest.raises(ValueError, match=said):
        legacy.load_legacy_checkpoint("flax", [str(path)])
