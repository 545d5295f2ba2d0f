"""Legacy checkpoints (TF 2 h5, Flax msgpack, Google TF1 tensor bundles) read without TensorFlow or JAX.

The fixture folder holds one tiny BertForPreTraining in four formats (see fixtures/legacy-bert/LAYOUT.md).
The other heads and layouts are written here, from the PyTorch fixture, by small writers of each format
(Keras h5 with h5py, Flax msgpack, and a TensorFlow tensor-bundle writer: SSTable + protobufs by hand).
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fastbert import legacy
from fastbert.config import BertConfig
from fastbert.legacy.sstable import crc32c, masked_crc32c, snappy_decompress

FIXTURES = Path(__file__).parent / "fixtures" / "legacy-bert"
GOOGLE = FIXTURES / "google_ckpt"
ATOL = 1e-5


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "model.safetensors")


@pytest.fixture(scope="module")
def config() -> BertConfig:
    return BertConfig.from_pretrained(FIXTURES)


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "inputs.safetensors")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "expected_outputs.safetensors")


def assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert got[k].shape == want[k].shape, k
        assert torch.equal(got[k], want[k]), k


def with_head(reference, head: str, n: int = 3) -> dict[str, torch.Tensor]:
    """The fixture's base model plus a random head (``classifier`` with n labels, or ``qa_outputs``)."""
    g = torch.Generator().manual_seed(1234)
    state = {k: v for k, v in reference.items() if k.startswith("bert.")}
    if head == "qa_outputs":  # BertForQuestionAnswering has no pooler
        state = {k: v for k, v in state.items() if "pooler" not in k}
    rows = 2 if head == "qa_outputs" else n
    state[f"{head}.weight"] = torch.randn(rows, 32, generator=g) * 0.02
    state[f"{head}.bias"] = torch.randn(rows, generator=g) * 0.1
    return state


# ============================================================================ writers (test helpers)
def _is_linear(pt_name: str, tensor: torch.Tensor) -> bool:
    return (
        tensor.dim() == 2
        and pt_name.endswith(".weight")
        and "embeddings" not in pt_name
        and "LayerNorm" not in pt_name
    )


def keras_path(pt_name: str) -> tuple[str, str]:
    """(Keras layer group, weight path below the model name) of a PyTorch name, as TFBert* writes them."""
    parts = pt_name.split(".")
    if parts[0] == "cls" and parts[1] == "predictions":
        group, parts = "mlm___cls", ["mlm___cls", *parts[1:]]
    elif parts[0] == "cls":
        group, parts = "nsp___cls", ["nsp___cls", *parts[1:]]
    else:
        group = parts[0]
    out, i = [], 0
    while i < len(parts):
        if parts[i] == "layer" and i + 1 < len(parts) and parts[i + 1].isdigit():
            out.append(f"layer_._{parts[i + 1]}")
            i += 2
        else:
            out.append(parts[i])
            i += 1
    last = out[-1]
    if "LayerNorm" in out[-2:][0] and last in ("weight", "bias"):
        out[-1] = "gamma" if last == "weight" else "beta"
    elif last == "weight" and out[-2] in ("position_embeddings", "token_type_embeddings"):
        out[-1] = "embeddings"
    elif last == "weight" and out[-2] != "word_embeddings":
        out[-1] = "kernel"
    return group, "/".join(out) + ":0"


def write_tf2_h5(
    path,
    state: dict[str, torch.Tensor],
    *,
    model_name: str = "tf_bert_for_sequence_classification",
    top_level_group: bool = True,
    dropout_groups: int = 0,
    sharded_layout: bool = False,
) -> None:
    """A transformers TF 2 ``tf_model.h5`` (Keras ``save_weights`` layout) of a PyTorch state dict."""
    import h5py
    import numpy as np

    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, t in state.items():
        group, wpath = keras_path(name)
        array = (t.t() if _is_linear(name, t) else t).contiguous().numpy()
        groups.setdefault(group, []).append((wpath, array))
    if "mlm___cls" in groups:  # the MLM head group stores its own copy of the embeddings
        groups["mlm___cls"] += [(p, a) for p, a in groups["bert"] if "/embeddings/" in p]
    with h5py.File(path, "w") as f:
        if sharded_layout:  # transformers' sharded TF layout: datasets named by weight, no model level
            names = []
            for items in groups.values():
                for wpath, array in items:
                    if wpath not in f:
                        f.create_dataset(wpath, data=array)
                        names.append(wpath.encode())
            f.attrs["layer_names"] = names
            return
        layer_names = list(groups) + [f"dropout_{37 + i}" for i in range(dropout_groups)]
        if top_level_group:
            layer_names.append("top_level_model_weights")
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["layer_names"] = [n.encode() for n in layer_names]
        for layer in layer_names:
            g = f.create_group(layer)
            items = groups.get(layer, [])
            g.attrs["weight_names"] = (
                [f"{model_name}/{p}".encode() for p, _ in items] if items else np.array([], dtype=np.float64)
            )
            for wpath, array in items:
                g.create_dataset(f"{model_name}/{wpath}", data=array)


def flax_tree(state: dict[str, torch.Tensor], *, base_only: bool = False) -> dict:
    tree: dict = {}
    for name, t in state.items():
        parts = name.split(".")
        if base_only:
            assert parts[0] == "bert"
            parts = parts[1:]
        last = parts[-1]
        if _is_linear(name, t):
            parts[-1], t = "kernel", t.t()
        elif last == "weight" and "LayerNorm" in parts:
            parts[-1] = "scale"
        elif last == "weight" and parts[-2].endswith("embeddings"):
            parts[-1] = "embedding"
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = t.contiguous()
    return tree


def write_flax_msgpack(path, state: dict[str, torch.Tensor], *, base_only: bool = False) -> None:
    """``flax.serialization.to_bytes`` of the Flax params of a PyTorch state dict (ext type 1 arrays)."""
    import msgpack

    def default(obj):
        if isinstance(obj, torch.Tensor):
            raw = (
                obj.numpy().tobytes()
                if obj.dtype != torch.bfloat16
                else obj.view(torch.int16).numpy().tobytes()
            )
            dtype = str(obj.dtype).removeprefix("torch.")
            return msgpack.ExtType(1, msgpack.packb((list(obj.shape), dtype, raw), use_bin_type=True))
        raise TypeError(type(obj))

    with open(path, "wb") as f:
        f.write(msgpack.packb(flax_tree(state, base_only=base_only), default=default, use_bin_type=True))


# --- TensorFlow tensor bundle writer (the inverse of fastbert.legacy's reader)
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _pb_varint(number: int, value: int) -> bytes:
    return _field(number, 0, _varint(value)) if value else b""


def _pb_bytes(number: int, value: bytes) -> bytes:
    return _field(number, 2, _varint(len(value)) + value)


_TF_DTYPE = {
    torch.float32: 1,
    torch.float64: 2,
    torch.int32: 3,
    torch.int64: 9,
    torch.float16: 19,
    torch.bfloat16: 14,
}


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 4) -> bytes:
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        prev = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _snappy_literals(data: bytes) -> bytes:
    """Valid snappy that stores ``data`` as literals only (enough to exercise the reader's decoder)."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), 60):
        chunk = data[start : start + 60]
        out.append((len(chunk) - 1) << 2)
        out += chunk
    return bytes(out)


def _write_block(f, contents: bytes, snappy: bool = False) -> bytes:
    """Write block + trailer; returns its BlockHandle encoding."""
    offset = f.tell()
    kind = b"\1" if snappy else b"\0"
    stored = _snappy_literals(contents) if snappy else contents
    f.write(stored + kind)
    f.write(struct.pack("<I", masked_crc32c(stored + kind)))
    return _varint(offset) + _varint(len(stored))


def write_tf1_bundle(
    prefix,
    tensors: dict[str, torch.Tensor],
    *,
    num_shards: int = 1,
    entries_per_block: int = 5,
    snappy: bool = False,
) -> list[str]:
    """A TensorFlow V2 checkpoint (``prefix.index`` + ``prefix.data-*``) of {TF variable name: tensor}."""
    prefix = str(prefix)
    names = sorted(tensors)
    shard_files = [f"{prefix}.data-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]
    handles = [open(p, "wb") for p in shard_files]
    table: list[tuple[bytes, bytes]] = [(b"", _pb_varint(1, num_shards) + _pb_bytes(3, _pb_varint(1, 1)))]
    for i, name in enumerate(names):
        t = tensors[name].contiguous()
        shard = i % num_shards
        fh = handles[shard]
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        offset = fh.tell()
        fh.write(raw)
        shape = b"".join(_pb_bytes(2, _pb_varint(1, d)) for d in t.shape)
        entry = (
            _pb_varint(1, _TF_DTYPE[t.dtype])
            + _pb_bytes(2, shape)
            + _pb_varint(3, shard)
            + _pb_varint(4, offset)
            + _pb_varint(5, len(raw))
            + _field(6, 5, struct.pack("<I", masked_crc32c(raw)))
        )
        table.append((name.encode(), entry))
    for fh in handles:
        fh.close()
    with open(prefix + ".index", "wb") as f:
        index_entries = []
        for start in range(0, len(table), entries_per_block):
            chunk = table[start : start + entries_per_block]
            index_entries.append((chunk[-1][0], _write_block(f, _block(chunk), snappy)))
        meta = _write_block(f, _block([]))
        index = _write_block(f, _block(index_entries, restart_interval=1))
        footer = (meta + index).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
        f.write(footer)
    return [prefix + ".index", *shard_files]


def google_names(state: dict[str, torch.Tensor], *, google_heads: bool = True) -> dict[str, torch.Tensor]:
    """google-research/bert variable names of a PyTorch state dict (run_classifier / run_squad heads)."""
    out = {}
    for name, t in state.items():
        parts = name.split(".")
        if google_heads and parts[0] == "classifier":
            out[{"weight": "output_weights", "bias": "output_bias"}[parts[1]]] = t
            continue
        if google_heads and parts[0] == "qa_outputs":
            out["cls/squad/" + {"weight": "output_weights", "bias": "output_bias"}[parts[1]]] = t
            continue
        tf, i = [], 0
        while i < len(parts):
            if parts[i] == "layer" and parts[i + 1].isdigit():
                tf.append(f"layer_{parts[i + 1]}")
                i += 2
            else:
                tf.append(parts[i])
                i += 1
        last = tf[-1]
        if parts[0] == "cls" and parts[1] in ("seq_relationship",) or name == "cls.predictions.bias":
            tf[-1] = "output_weights" if last == "weight" else "output_bias"
        elif "LayerNorm" in tf and last in ("weight", "bias"):
            tf[-1] = "gamma" if last == "weight" else "beta"
        elif last == "weight" and tf[-2].endswith("_embeddings"):
            tf = tf[:-1]
        elif _is_linear(name, t):
            tf[-1], t = "kernel", t.t()
        out["/".join(tf)] = t.contiguous()
    return out


def copy_config(folder: Path, config: BertConfig, **changes) -> None:
    data = config.to_dict()
    if "num_labels" in changes:
        data.pop("id2label")
        data.pop("label2id")
    cfg = BertConfig.from_dict(data, **changes)
    cfg.save_pretrained(folder)


# ============================================================================ the four fixture formats
FORMATS = {
    "tf2": (FIXTURES, {}),
    "flax": (FIXTURES, {"from_flax": True}),
    "tf1": (GOOGLE, {}),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fixture_weights_equal_pytorch(fmt, reference):
    folder, kwargs = FORMATS[fmt]
    found = legacy.find_legacy_checkpoint(str(folder), **kwargs)
    assert found is not None and found[0] == fmt
    state = legacy.load_legacy_checkpoint(*found)
    assert_same_weights(state, reference)
    assert "cls.predictions.decoder.weight" not in state
    assert all(k.startswith(("bert.", "cls.")) for k in state)


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


def test_crc32c():
    assert crc32c(b"123456789") == 0xE3069283


def _link_all(src: Path, dst: Path, names) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copyfile(src / n, dst / n)


def test_preference_order(tmp_path):
    everything = tmp_path / "all"
    _link_all(FIXTURES, everything, ["tf_model.h5", "flax_model.msgpack", "config.json"])
    _link_all(GOOGLE, everything, ["bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001"])
    kind, files = legacy.find_legacy_checkpoint(str(everything))
    assert kind == "tf1" and [os.path.basename(f) for f in files] == [
        "bert_model.ckpt.index",
        "bert_model.ckpt.data-00000-of-00001",
    ]
    assert legacy.find_legacy_checkpoint(str(everything), from_tf=True)[0] == "tf1"
    assert legacy.find_legacy_checkpoint(str(everything), from_flax=True)[0] == "flax"

    no_tf1 = tmp_path / "h5_and_msgpack"
    _link_all(FIXTURES, no_tf1, ["tf_model.h5", "flax_model.msgpack"])
    assert legacy.find_legacy_checkpoint(str(no_tf1))[0] == "tf2"
    flax_only = tmp_path / "flax_only"
    _link_all(FIXTURES, flax_only, ["flax_model.msgpack"])
    assert legacy.find_legacy_checkpoint(str(flax_only))[0] == "flax"
    assert legacy.find_legacy_checkpoint(str(flax_only), from_tf=True) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert legacy.find_legacy_checkpoint(str(empty)) is None


def test_files_given_directly():
    assert legacy.find_legacy_checkpoint(str(FIXTURES / "tf_model.h5")) == (
        "tf2",
        [str(FIXTURES / "tf_model.h5")],
    )
    assert legacy.find_legacy_checkpoint(str(FIXTURES / "flax_model.msgpack"))[0] == "flax"
    for given in (GOOGLE / "bert_model.ckpt", GOOGLE / "bert_model.ckpt.index"):
        kind, files = legacy.find_legacy_checkpoint(str(given))
        assert kind == "tf1" and files[0] == str(GOOGLE / "bert_model.ckpt.index") and len(files) == 2


def test_fine_tuning_output_names(tmp_path, reference):
    """``model.ckpt-<step>.index`` (run_classifier's output): the latest step is chosen."""
    tf = google_names(reference)
    write_tf1_bundle(tmp_path / "model.ckpt-100", {k: torch.zeros_like(v) for k, v in tf.items()})
    write_tf1_bundle(tmp_path / "model.ckpt-2000", tf)
    kind, files = legacy.find_legacy_checkpoint(str(tmp_path))
    assert kind == "tf1" and os.path.basename(files[0]) == "model.ckpt-2000.index"
    assert_same_weights(legacy.load_legacy_checkpoint(kind, files), reference)


# ============================================================================ convert -> transformers 5
def _transformers():
    return pytest.importorskip("transformers")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_convert_loads_in_transformers(fmt, tmp_path, inputs, expected):
    transformers = _transformers()
    folder, kwargs = FORMATS[fmt]
    dst = tmp_path / "converted"
    arch = legacy.convert(str(folder), str(dst), log=lambda _: None, **kwargs)
    assert arch == "BertForPreTraining"
    assert sorted(os.listdir(dst)) == ["config.json", "model.safetensors"]
    assert_same_weights(load_file(dst / "model.safetensors"), load_file(FIXTURES / "model.safetensors"))
    model = transformers.BertForPreTraining.from_pretrained(dst, attn_implementation="eager").eval()
    assert model.config.architectures == ["BertForPreTraining"]
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    torch.testing.assert_close(out.prediction_logits, expected["prediction_logits"], atol=ATOL, rtol=0)
    torch.testing.assert_close(
        out.seq_relationship_logits, expected["seq_relationship_logits"], atol=ATOL, rtol=0
    )
    for i in range(3):
        torch.testing.assert_close(out.hidden_states[i], expected[f"hidden_states.{i}"], atol=ATOL, rtol=0)


def test_cli_convert(tmp_path, capsys):
    from fastbert.cli import main

    dst = tmp_path / "out"
    assert main(["convert", str(GOOGLE), str(dst)]) == 0
    assert (dst / "model.safetensors").is_file() and (dst / "config.json").is_file()
    assert main(["convert", str(GOOGLE), str(dst)]) == 2  # exists: refuses without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", "--overwrite", str(GOOGLE), str(dst)]) == 0
    assert main(["convert", "--from-flax", str(GOOGLE), str(tmp_path / "x")]) == 2
    assert "holds no a Flax checkpoint" not in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "does-not-exist"), str(tmp_path / "y")]) == 2


def _hf_logits(transformers, cls_name, config, state, inputs):
    model = getattr(transformers, cls_name)(
        transformers.BertConfig(
            **{k: v for k, v in config.to_dict().items() if k not in ("torch_dtype", "architectures")}
        )
    )
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    model.eval()
    with torch.no_grad():
        return model(**inputs)


# ============================================================================ other heads, other layouts
def test_tf2_sequence_classification(tmp_path, reference, config, inputs):
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

    transformers = _transformers()
    dst = tmp_path / "converted"
    assert legacy.convert(str(folder), str(dst), log=lambda _: None) == "BertForSequenceClassification"
    hf = transformers.BertForSequenceClassification.from_pretrained(dst).eval()
    assert hf.config.num_labels == 3
    with torch.no_grad():
        got = hf(**inputs).logits
    want = _hf_logits(
        transformers, "BertForSequenceClassification", BertConfig.from_pretrained(folder), state, inputs
    ).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


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
    assert legacy.convert(str(folder), str(dst), log=lambda _: None) == "BertForTokenClassification"
    saved = BertConfig.from_pretrained(dst)
    assert saved.architectures == ["BertForTokenClassification"] and saved.num_labels == 5


def test_flax_question_answering(tmp_path, reference, config, inputs):
    state = with_head(reference, "qa_outputs")
    folder = tmp_path / "flax_qa"
    folder.mkdir()
    write_flax_msgpack(folder / "flax_model.msgpack", state)
    copy_config(folder, config, architectures=["FlaxBertForQuestionAnswering"])
    found = legacy.find_legacy_checkpoint(str(folder))
    assert found[0] == "flax"
    assert_same_weights(legacy.load_legacy_checkpoint(*found), state)

    transformers = _transformers()
    dst = tmp_path / "converted"
    assert legacy.convert(str(folder), str(dst), log=lambda _: None) == "BertForQuestionAnswering"
    hf = transformers.BertForQuestionAnswering.from_pretrained(dst).eval()
    with torch.no_grad():
        got = hf(**inputs)
    want = _hf_logits(transformers, "BertForQuestionAnswering", config, state, inputs)
    torch.testing.assert_close(got.start_logits, want.start_logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.end_logits, want.end_logits, atol=ATOL, rtol=0)


def test_flax_base_model_gets_bert_prefix(tmp_path, reference, config):
    """FlaxBertModel stores embeddings/encoder/pooler at the top level, with no ``bert`` level."""
    base = {k: v for k, v in reference.items() if k.startswith("bert.")}
    write_flax_msgpack(tmp_path / "flax_model.msgpack", base, base_only=True)
    state = legacy.load_legacy_checkpoint("flax", [str(tmp_path / "flax_model.msgpack")])
    assert_same_weights(state, base)
    copy_config(tmp_path, config, architectures=["FlaxBertModel"])
    dst = tmp_path / "converted"
    assert legacy.convert(str(tmp_path), str(dst), log=lambda _: None) == "BertModel"
    saved = load_file(dst / "model.safetensors")  # as transformers writes a BertModel: no prefix
    assert sorted(saved) == sorted(k.removeprefix("bert.") for k in base)


def test_flax_bfloat16(tmp_path, reference):
    half = {k: v.to(torch.bfloat16) for k, v in reference.items()}
    write_flax_msgpack(tmp_path / "bf16.msgpack", half)
    assert_same_weights(legacy.load_legacy_checkpoint("flax", [str(tmp_path / "bf16.msgpack")]), half)


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


def test_tf1_google_classifier_and_squad_heads(tmp_path, reference, config, inputs):
    """run_classifier.py's top-level ``output_weights``/``output_bias`` ([num_labels, hidden], not
    transposed) and run_squad.py's ``cls/squad/...``."""
    cls_state = with_head(reference, "classifier", n=2)
    (tmp_path / "cls").mkdir()
    files = write_tf1_bundle(tmp_path / "cls" / "model.ckpt", google_names(cls_state))
    loaded = legacy.load_legacy_checkpoint("tf1", files)
    assert_same_weights(loaded, cls_state)

    qa_state = with_head(reference, "qa_outputs")
    (tmp_path / "qa").mkdir()
    files = write_tf1_bundle(tmp_path / "qa" / "model.ckpt", google_names(qa_state))
    assert_same_weights(legacy.load_legacy_checkpoint("tf1", files), qa_state)

    shutil.copyfile(GOOGLE / "bert_config.json", tmp_path / "cls" / "bert_config.json")
    transformers = _transformers()
    dst = tmp_path / "converted"
    assert (
        legacy.convert(str(tmp_path / "cls"), str(dst), log=lambda _: None) == "BertForSequenceClassification"
    )
    hf = transformers.BertForSequenceClassification.from_pretrained(dst).eval()
    with torch.no_grad():
        got = hf(**inputs).logits
    want = _hf_logits(transformers, "BertForSequenceClassification", config, cls_state, inputs).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_tf1_float16_and_big_tensor_checksum(tmp_path):
    big = {"bert/embeddings/word_embeddings": torch.randn(300, 128).half(), "other/x": torch.arange(5.0)}
    files = write_tf1_bundle(tmp_path / "m.ckpt", big)
    state = legacy.load_legacy_checkpoint("tf1", files)
    assert torch.equal(
        state["bert.embeddings.word_embeddings.weight"], big["bert/embeddings/word_embeddings"]
    )
    assert "other.x" in state  # unknown variables come back under their own name, to be reported unexpected


def test_tf1_snappy_blocks(tmp_path, reference):
    assert snappy_decompress(bytes([9, 0x08]) + b"abc" + bytes([0x09, 3])) == b"abcabcabc"
    files = write_tf1_bundle(tmp_path / "model.ckpt", google_names(reference), snappy=True)
    assert_same_weights(legacy.load_legacy_checkpoint("tf1", files), reference)


def _split(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    keys = sorted(state)
    return {k: state[k] for k in keys[::2]}, {k: state[k] for k in keys[1::2]}


def test_sharded_h5_and_msgpack(tmp_path, reference):
    """``tf_model.h5.index.json`` / ``flax_model.msgpack.index.json`` with their shards."""
    import json

    parts = _split(reference)
    tf2 = tmp_path / "tf2"
    tf2.mkdir()
    weight_map = {}
    for i, part in enumerate(parts):
        name = f"tf_model-{i + 1:05d}-of-00002.h5"
        write_tf2_h5(tf2 / name, part, sharded_layout=True)
        weight_map |= {keras_path(k)[1]: name for k in part}
    (tf2 / "tf_model.h5.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    found = legacy.find_legacy_checkpoint(str(tf2))
    assert found[0] == "tf2" and len(found[1]) == 2
    assert_same_weights(legacy.load_legacy_checkpoint(*found), reference)

    flax = tmp_path / "flax"
    flax.mkdir()
    weight_map = {}
    for i, part in enumerate(parts):
        name = f"flax_model-{i + 1:05d}-of-00002.msgpack"
        write_flax_msgpack(flax / name, part)
        weight_map |= {k.replace(".", "/"): name for k in part}
    (flax / "flax_model.msgpack.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    found = legacy.find_legacy_checkpoint(str(flax))
    assert found[0] == "flax" and len(found[1]) == 2
    assert_same_weights(legacy.load_legacy_checkpoint(*found), reference)


def test_hub_resolution(tmp_path, monkeypatch, reference):
    """A hub id: the listing decides, and every file (TF1 shards included) is fetched through resolve_file."""
    import fastbert.hub as hub

    repo = tmp_path / "hub" / "google" / "bert-tiny"
    tf = google_names(reference)
    repo.mkdir(parents=True)
    write_tf1_bundle(repo / "bert_model.ckpt", tf | {"global_step": torch.tensor(1)}, num_shards=2)
    shutil.copyfile(FIXTURES / "flax_model.msgpack", repo / "flax_model.msgpack")
    fetched = []

    def fake_list(path_or_id, **kwargs):
        assert path_or_id == "google/bert-tiny" and kwargs["revision"] == "v1"
        return sorted(os.listdir(repo))

    def fake_resolve(path_or_id, filename, *, hub, required=True):
        assert path_or_id == "google/bert-tiny" and hub.revision == "v1"
        fetched.append(filename)
        if (repo / filename).is_file():
            return str(repo / filename)
        if required:
            raise OSError(f"{path_or_id} has no file named {filename}")
        return None

    monkeypatch.setattr(hub, "list_files", fake_list)
    monkeypatch.setattr(hub, "resolve_file", fake_resolve)
    kind, files = legacy.find_legacy_checkpoint("google/bert-tiny", revision="v1")
    assert kind == "tf1" and fetched == [
        "bert_model.ckpt.index",
        "bert_model.ckpt.data-00000-of-00002",
        "bert_model.ckpt.data-00001-of-00002",
    ]
    assert_same_weights(legacy.load_legacy_checkpoint(kind, files), reference)
    assert legacy.find_legacy_checkpoint("google/bert-tiny", revision="v1", from_flax=True)[0] == "flax"

    (repo / "bert_model.ckpt.data-00001-of-00002").unlink()
    with pytest.raises(OSError, match="data-00001-of-00002"):
        legacy.find_legacy_checkpoint("google/bert-tiny", revision="v1")

    # Offline (no listing): the known names are tried in order.
    monkeypatch.setattr(hub, "list_files", lambda *a, **k: None)
    (repo / "bert_model.ckpt.index").unlink()
    assert legacy.find_legacy_checkpoint("google/bert-tiny", revision="v1")[0] == "flax"


# ============================================================================ bad input
def _corrupt(src: Path, dst: Path, *, truncate: int | None = None, flip: int | None = None) -> Path:
    data = bytearray(src.read_bytes())
    if truncate is not None:
        data = data[:truncate]
    if flip is not None:
        data[flip] ^= 0xFF
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("cut", [0, 100, 4000, 100_000])
def test_truncated_h5(tmp_path, cut):
    bad = _corrupt(FIXTURES / "tf_model.h5", tmp_path / "tf_model.h5", truncate=cut)
    with pytest.raises(OSError, match="tf_model.h5"):
        legacy.load_legacy_checkpoint("tf2", [str(bad)])


def test_h5_without_keras_weights(tmp_path):
    import h5py

    with h5py.File(tmp_path / "tf_model.h5", "w") as f:
        f.attrs["layer_names"] = [b"bert"]
    with pytest.raises(OSError, match="tf_model.h5"):
        legacy.load_legacy_checkpoint("tf2", [str(tmp_path / "tf_model.h5")])


@pytest.mark.parametrize("cut", [0, 1, 50, 40_000, 86_535])
def test_truncated_msgpack(tmp_path, cut):
    bad = _corrupt(FIXTURES / "flax_model.msgpack", tmp_path / "flax_model.msgpack", truncate=cut)
    with pytest.raises(OSError, match="flax_model.msgpack"):
        legacy.load_legacy_checkpoint("flax", [str(bad)])


def test_msgpack_garbage_and_wrong_sizes(tmp_path):
    import msgpack

    (tmp_path / "garbage.msgpack").write_bytes(b"\xc1" * 64)
    with pytest.raises(OSError, match="garbage.msgpack"):
        legacy.load_legacy_checkpoint("flax", [str(tmp_path / "garbage.msgpack")])
    arr = msgpack.ExtType(1, msgpack.packb(([4, 4], "float32", b"\0" * 60), use_bin_type=True))
    (tmp_path / "short.msgpack").write_bytes(msgpack.packb({"bert": {"pooler": {"dense": {"kernel": arr}}}}))
    with pytest.raises(ValueError, match=r"short.msgpack: bert/pooler/dense/kernel"):
        legacy.load_legacy_checkpoint("flax", [str(tmp_path / "short.msgpack")])


@pytest.fixture
def google_copy(tmp_path) -> Path:
    folder = tmp_path / "google"
    shutil.copytree(GOOGLE, folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


INDEX = "bert_model.ckpt.index"
SHARD = "bert_model.ckpt.data-00000-of-00001"


@pytest.mark.parametrize("cut", [0, 10, 47, 1000, 1858])
def test_truncated_tf1_index(google_copy, cut):
    _corrupt(GOOGLE / INDEX, google_copy / INDEX, truncate=cut)
    with pytest.raises(OSError, match=INDEX):
        legacy.load_legacy_checkpoint("tf1", [str(google_copy / INDEX)])


def test_corrupt_tf1_index(google_copy):
    _corrupt(GOOGLE / INDEX, google_copy / INDEX, flip=300)
    with pytest.raises(OSError, match=f"{INDEX}: corrupt TensorFlow checkpoint index: checksum"):
        legacy.load_legacy_checkpoint("tf1", [str(google_copy / INDEX)])


def test_missing_tf1_shard(google_copy):
    (google_copy / SHARD).unlink()
    found = legacy.find_legacy_checkpoint(str(google_copy))
    with pytest.raises(OSError, match=f"{SHARD}: data shard not found .*tensor bert/"):
        legacy.load_legacy_checkpoint(*found)


def test_truncated_tf1_shard(google_copy):
    _corrupt(GOOGLE / SHARD, google_copy / SHARD, truncate=50_000)
    with pytest.raises(OSError, match=f"{SHARD}: truncated data shard: tensor "):
        legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(google_copy)))


def test_corrupt_tf1_shard(google_copy):
    _corrupt(GOOGLE / SHARD, google_copy / SHARD, flip=30_000)
    with pytest.raises(OSError, match=f"{SHARD}: checksum mismatch for tensor bert/"):
        legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(google_copy)))


def test_checksums_can_be_skipped(google_copy, monkeypatch):
    _corrupt(GOOGLE / SHARD, google_copy / SHARD, flip=30_000)
    found = legacy.find_legacy_checkpoint(str(google_copy))
    assert len(legacy.load_legacy_checkpoint(*found, verify_checksums=False)) == 46
    monkeypatch.setenv("FASTBERT_VERIFY_CHECKSUMS", "0")
    assert len(legacy.load_legacy_checkpoint(*found)) == 46


def test_shapes_that_do_not_fit_the_config(google_copy, tmp_path):
    cfg = (google_copy / "bert_config.json").read_text().replace('"vocab_size": 99', '"vocab_size": 100')
    (google_copy / "bert_config.json").write_text(cfg)
    with pytest.raises(ValueError, match=rf"{INDEX}: bert/embeddings/word_embeddings: shape \[99, 32\]"):
        legacy.convert(str(google_copy), str(tmp_path / "out"), log=lambda _: None)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_partial_checkpoint_refused_by_convert(tmp_path, reference, config):
    partial = {k: v for k, v in reference.items() if "layer.1." not in k}
    write_tf2_h5(tmp_path / "tf_model.h5", partial, model_name="tf_bert_for_pre_training")
    copy_config(tmp_path, config)
    with pytest.raises(ValueError, match="lacks weights .*layer.1"):
        legacy.convert(str(tmp_path), str(tmp_path / "out"), log=lambda _: None)


def test_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(ImportError, match=r"pip install 'fastbert-triton\[legacy\]'"):
        legacy.load_legacy_checkpoint("tf2", [str(FIXTURES / "tf_model.h5")])
    with pytest.raises(ImportError, match=r"pip install 'fastbert-triton\[legacy\]'"):
        legacy.load_legacy_checkpoint("flax", [str(FIXTURES / "flax_model.msgpack")])
    # TF1 checkpoints need neither
    assert len(legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(GOOGLE)))) == 46


def test_import_without_transformers():
    import subprocess

    code = (
        "import sys; sys.modules['transformers'] = None; sys.modules['tensorflow'] = None; sys.modules['jax'] = None\n"
        "from fastbert import legacy\n"
        f"sd = legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint({str(GOOGLE)!r}))\n"
        "assert len(sd) == 46\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


# ============================================================================ end to end through fastbert
def _fastbert_modeling():
    try:
        import fastbert.modeling  # noqa: F401
    except Exception as e:  # pragma: no cover - while the model classes are being written
        pytest.skip(f"fastbert.modeling not importable: {e}")
    import fastbert

    return fastbert


def _only(tmp_path: Path, src: Path, names) -> Path:
    folder = tmp_path / "only"
    _link_all(src, folder, names)
    return folder


E2E = {
    "tf2": (FIXTURES, ["tf_model.h5", "config.json"], {}),
    "flax": (FIXTURES, ["flax_model.msgpack", "config.json"], {}),
    "tf1": (GOOGLE, [INDEX, SHARD, "bert_config.json"], {}),
    "tf2-from_tf": (
        FIXTURES,
        ["tf_model.h5", "flax_model.msgpack", "config.json", "model.safetensors"],
        {"from_tf": True},
    ),
    "flax-from_flax": (
        FIXTURES,
        ["tf_model.h5", "flax_model.msgpack", "config.json", "model.safetensors"],
        {"from_flax": True},
    ),
}


@pytest.mark.parametrize("case", sorted(E2E))
def test_fastbert_from_pretrained_pretraining(case, tmp_path, inputs, expected):
    fastbert = _fastbert_modeling()
    src, names, kwargs = E2E[case]
    folder = _only(tmp_path, src, names)
    model = fastbert.BertForPreTraining.from_pretrained(
        str(folder), attn_implementation="eager", **kwargs
    ).eval()
    reference = load_file(FIXTURES / "model.safetensors")
    own = model.state_dict()
    for k, v in reference.items():
        assert torch.equal(own[k], v), k
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    torch.testing.assert_close(out.prediction_logits, expected["prediction_logits"], atol=ATOL, rtol=0)
    torch.testing.assert_close(
        out.seq_relationship_logits, expected["seq_relationship_logits"], atol=ATOL, rtol=0
    )
    for i in range(3):
        torch.testing.assert_close(out.hidden_states[i], expected[f"hidden_states.{i}"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("case", ["tf2", "flax", "tf1"])
def test_fastbert_from_pretrained_base_model(case, tmp_path, inputs, expected):
    fastbert = _fastbert_modeling()
    src, names, kwargs = E2E[case]
    folder = _only(tmp_path, src, names)
    model = fastbert.BertModel.from_pretrained(str(folder), attn_implementation="eager", **kwargs).eval()
    with torch.no_grad():
        out = model(**inputs)
    torch.testing.assert_close(out.last_hidden_state, expected["last_hidden_state"], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.pooler_output, expected["pooler_output"], atol=ATOL, rtol=0)


def test_fastbert_from_pretrained_heads(tmp_path, reference, config, inputs):
    """TF 2 sequence classification, Flax QA, TF1 with optimizer slots into fastbert's classes."""
    fastbert = _fastbert_modeling()
    transformers = _transformers()

    cls_state = with_head(reference, "classifier", n=3)
    tf2 = tmp_path / "tf2"
    tf2.mkdir()
    write_tf2_h5(tf2 / "tf_model.h5", cls_state, model_name="tf_bert_for_sequence_classification_1")
    copy_config(tf2, config, num_labels=3)
    model = fastbert.BertForSequenceClassification.from_pretrained(
        str(tf2), attn_implementation="eager"
    ).eval()
    want = _hf_logits(
        transformers, "BertForSequenceClassification", BertConfig.from_pretrained(tf2), cls_state, inputs
    )
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, want.logits, atol=ATOL, rtol=0)

    qa_state = with_head(reference, "qa_outputs")
    fl = tmp_path / "flax"
    fl.mkdir()
    write_flax_msgpack(fl / "flax_model.msgpack", qa_state)
    copy_config(fl, config)
    model = fastbert.BertForQuestionAnswering.from_pretrained(str(fl), attn_implementation="eager").eval()
    want = _hf_logits(transformers, "BertForQuestionAnswering", config, qa_state, inputs)
    with torch.no_grad():
        got = model(**inputs)
    torch.testing.assert_close(got.start_logits, want.start_logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.end_logits, want.end_logits, atol=ATOL, rtol=0)

    tf1 = tmp_path / "tf1"
    tf1.mkdir()
    tf = google_names(reference)
    slots = {f"{k}/adam_m": torch.zeros_like(v) for k, v in tf.items()}
    write_tf1_bundle(tf1 / "bert_model.ckpt", tf | slots | {"global_step": torch.tensor(5)}, num_shards=2)
    shutil.copyfile(GOOGLE / "bert_config.json", tf1 / "bert_config.json")
    model = fastbert.BertForMaskedLM.from_pretrained(str(tf1), attn_implementation="eager")
    assert torch.equal(
        model.cls.predictions.decoder.weight, reference["bert.embeddings.word_embeddings.weight"]
    )
    assert torch.equal(model.cls.predictions.bias, reference["cls.predictions.bias"])


def test_fastbert_from_pretrained_bad_files(tmp_path):
    fastbert = _fastbert_modeling()
    h5 = _only(tmp_path / "h5", FIXTURES, ["config.json"])
    _corrupt(FIXTURES / "tf_model.h5", h5 / "tf_model.h5", truncate=4000)
    with pytest.raises(OSError, match="tf_model.h5"):
        fastbert.BertForPreTraining.from_pretrained(str(h5))
    google = _only(tmp_path / "tf1", GOOGLE, [INDEX, "bert_config.json"])
    with pytest.raises(OSError, match=f"{SHARD}: data shard not found"):
        fastbert.BertForPreTraining.from_pretrained(str(google))
    big = _only(tmp_path / "vocab", GOOGLE, [INDEX, SHARD])
    (big / "bert_config.json").write_text(
        (GOOGLE / "bert_config.json").read_text().replace('"vocab_size": 99', '"vocab_size": 100')
    )
    with pytest.raises(ValueError, match="word_embeddings"):
        fastbert.BertForPreTraining.from_pretrained(str(big))
