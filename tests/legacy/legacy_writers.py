"""Writers of each legacy format, from a PyTorch state dict: the inverse of fastbert.legacy's readers.

The fixture folder holds one BertForPreTraining in every format; these write the other heads and
layouts: Keras h5 with h5py, Flax msgpack, and TensorFlow tensor bundles (SSTable + protobufs by hand,
checksums by google-crc32c, snappy blocks by cramjam).
"""

from __future__ import annotations

import struct

import cramjam
import torch

from fastbert.legacy.sstable import masked_crc32c


def is_linear(pt_name: str, tensor: torch.Tensor) -> bool:
    return (
        tensor.dim() == 2
        and pt_name.endswith(".weight")
        and "embeddings" not in pt_name
        and "LayerNorm" not in pt_name
    )


def _join_layer_numbers(parts: list[str], template: str) -> list[str]:
    """``[..., "layer", "3", ...]`` as ``[..., template.format(3), ...]``."""
    out, i = [], 0
    while i < len(parts):
        if parts[i] == "layer" and i + 1 < len(parts) and parts[i + 1].isdigit():
            out.append(template.format(parts[i + 1]))
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def keras_path(pt_name: str) -> tuple[str, str]:
    """(Keras layer group, weight path below the model name) of a PyTorch name, as TFBert* writes them."""
    parts = pt_name.split(".")
    if parts[0] == "cls" and parts[1] == "predictions":
        group, parts = "mlm___cls", ["mlm___cls", *parts[1:]]
    elif parts[0] == "cls":
        group, parts = "nsp___cls", ["nsp___cls", *parts[1:]]
    else:
        group = parts[0]
    out = _join_layer_numbers(parts, "layer_._{}")
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
        array = (t.t() if is_linear(name, t) else t).contiguous().numpy()
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
        if is_linear(name, t):
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


# --- TensorFlow tensor bundles: SSTable + protobufs, the inverse of fastbert.legacy.tf1_bundle
def encode_varint(n: int) -> bytes:
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
    return encode_varint(number << 3 | wire) + payload


def _pb_varint(number: int, value: int) -> bytes:
    return _field(number, 0, encode_varint(value)) if value else b""


def _pb_bytes(number: int, value: bytes) -> bytes:
    return _field(number, 2, encode_varint(len(value)) + value)


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
        out += (
            encode_varint(shared)
            + encode_varint(len(key) - shared)
            + encode_varint(len(value))
            + key[shared:]
            + value
        )
        prev = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _write_block(f, contents: bytes, snappy: bool = False) -> bytes:
    """Write block + trailer; returns its BlockHandle encoding."""
    offset = f.tell()
    kind = b"\1" if snappy else b"\0"
    stored = bytes(cramjam.snappy.compress_raw(contents)) if snappy else contents
    f.write(stored + kind)
    f.write(struct.pack("<I", masked_crc32c(stored + kind)))
    return encode_varint(offset) + encode_varint(len(stored))


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
    write_tf1_index(prefix + ".index", table, entries_per_block=entries_per_block, snappy=snappy)
    return [prefix + ".index", *shard_files]


def write_tf1_index(
    path, table: list[tuple[bytes, bytes]], *, entries_per_block: int = 5, snappy: bool = False
) -> None:
    """The SSTable of a bundle's index: (key, serialized proto) in key order, the header's empty key first."""
    with open(path, "wb") as f:
        index_entries = []
        for start in range(0, len(table), entries_per_block):
            chunk = table[start : start + entries_per_block]
            index_entries.append((chunk[-1][0], _write_block(f, _block(chunk), snappy)))
        meta = _write_block(f, _block([]))
        index = _write_block(f, _block(index_entries, restart_interval=1))
        footer = (meta + index).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
        f.write(footer)


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
        tf = _join_layer_numbers(parts, "layer_{}")
        last = tf[-1]
        if parts[0] == "cls" and parts[1] in ("seq_relationship",) or name == "cls.predictions.bias":
            tf[-1] = "output_weights" if last == "weight" else "output_bias"
        elif "LayerNorm" in tf and last in ("weight", "bias"):
            tf[-1] = "gamma" if last == "weight" else "beta"
        elif last == "weight" and tf[-2].endswith("_embeddings"):
            tf = tf[:-1]
        elif is_linear(name, t):
            tf[-1], t = "kernel", t.t()
        out["/".join(tf)] = t.contiguous()
    return out
