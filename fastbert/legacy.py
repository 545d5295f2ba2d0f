"""Legacy BERT checkpoints: transformers' TF 2 (``tf_model.h5``), Flax (``flax_model.msgpack``) and
Google's original TF1 checkpoints (``bert_model.ckpt.index`` + ``.data-*`` shards), read without
TensorFlow or JAX.

* ``tf_model.h5`` is read with h5py, ``flax_model.msgpack`` with msgpack (the ``[legacy]`` extra).
* TF1 checkpoints are TensorFlow tensor bundles: the ``.index`` file is a LevelDB-style SSTable whose
  values are ``BundleHeaderProto`` / ``BundleEntryProto`` protobufs (decoded here by hand), and the
  ``.data-NNNNN-of-NNNNN`` shards hold the raw tensor bytes. Only the standard library and torch are used;
  block and tensor checksums (masked CRC-32C) are verified as TensorFlow does.

Every checkpoint comes back as the state dict that transformers' PyTorch class of the same head would
hold (``bert.``-prefixed base model, ``[out, in]`` linear weights, ``weight``/``bias`` LayerNorms, no tied
decoder weight, no optimizer slots). ``fastbert convert SRC DST`` writes it as a safetensors folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
from collections.abc import Iterator
from typing import Any

import torch

__all__ = [
    "find_legacy_checkpoint",
    "load_legacy_checkpoint",
    "convert",
    "add_cli_arguments",
    "cli_main",
    "TF1_INDEX_NAMES",
    "TF2_WEIGHTS_NAME",
    "FLAX_WEIGHTS_NAME",
]

TF2_WEIGHTS_NAME = "tf_model.h5"
TF2_WEIGHTS_INDEX_NAME = "tf_model.h5.index.json"
FLAX_WEIGHTS_NAME = "flax_model.msgpack"
FLAX_WEIGHTS_INDEX_NAME = "flax_model.msgpack.index.json"
# transformers 4 looked for ``model.ckpt.index``; Google's releases ship ``bert_model.ckpt.index``.
TF1_INDEX_NAMES = ("model.ckpt.index", "bert_model.ckpt.index")

EXTRA_HINT = "pip install 'fastbert-triton[legacy]'"

# Files a converted folder needs besides the weights and config (copied when present).
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


class LegacyStateDict(dict):
    """A state dict (name -> tensor) that also knows where each tensor came from.

    ``sources[name]`` is ``"<file>: <name in the checkpoint>"``, for error messages that name the file
    and the tensor (e.g. a shape that does not fit the config).
    """

    def __init__(self) -> None:
        super().__init__()
        self.sources: dict[str, str] = {}
        self.kind: str | None = None


def _require(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(
            f"reading {what} needs the {module} package, which is not installed: {EXTRA_HINT}"
        ) from None


# =============================================================================================== finding
def _step_of(name: str) -> int:
    m = re.search(r"ckpt-(\d+)\.index$", name)
    return int(m.group(1)) if m else -1


def _tf1_index_candidates(files: list[str]) -> list[str]:
    """TF1 index files among ``files``: transformers' and Google's names first, then any other
    ``*.ckpt*.index`` (a fine-tuning output such as ``model.ckpt-1000.index``, the highest step first)."""
    found = [n for n in TF1_INDEX_NAMES if n in files]
    others = [f for f in files if f.endswith(".index") and ".ckpt" in f and f not in found and "/" not in f]
    return found + sorted(others, key=_step_of, reverse=True)


def tf1_shard_names(index_name: str, num_shards: int) -> list[str]:
    prefix = index_name[: -len(".index")]
    return [f"{prefix}.data-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def _shard_files_from_index_json(index_file: str) -> list[str]:
    try:
        with open(index_file, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        return sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise OSError(
            f"{index_file}: not a valid sharded-checkpoint index ({type(e).__name__}: {e})"
        ) from None


def find_legacy_checkpoint(
    path_or_id: str,
    *,
    from_tf: bool = False,
    from_flax: bool = False,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    subfolder: str = "",
) -> tuple[str, list[str]] | None:
    """The legacy checkpoint of a folder, hub id or file, in transformers 4's order of preference.

    Returns ``('tf1', [index, shard, ...])``, ``('tf2', [h5, ...])``, ``('flax', [msgpack, ...])`` or None.
    ``from_tf`` restricts the search to TF checkpoints (TF1 index, then ``tf_model.h5``), ``from_flax``
    to Flax; with neither, TF1, then TF 2, then Flax. ``path_or_id`` may also be the checkpoint file itself
    (``.h5``, ``.msgpack``, a TF1 ``.index`` file or its prefix, such as ``.../bert_model.ckpt``).
    """
    from .hub import list_files, resolve_file

    path = str(path_or_id)
    want_tf = from_tf or not from_flax
    want_flax = from_flax or not from_tf

    # --- a file (or a TF1 prefix) given directly
    if os.path.isfile(path) or os.path.isfile(path + ".index"):
        if os.path.isfile(path + ".index") and not os.path.isfile(path):
            path = path + ".index"
        if path.endswith(".index") and want_tf:
            header = read_tf1_header(path)
            shards = [
                os.path.join(os.path.dirname(path), n)
                for n in tf1_shard_names(os.path.basename(path), header["num_shards"])
            ]
            return "tf1", [path, *shards]
        if path.endswith(".h5") and want_tf:
            return "tf2", [path]
        if path.endswith(".msgpack") and want_flax:
            return "flax", [path]
        return None

    hub_kwargs = dict(
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        subfolder=subfolder,
    )
    listing = list_files(
        path, revision=revision, token=token, local_files_only=local_files_only, subfolder=subfolder
    )

    def present(name: str) -> str | None:
        if listing is not None and name not in listing:
            return None
        return resolve_file(path, name, required=False, **hub_kwargs)

    def resolve_required(name: str) -> str:
        if os.path.isdir(path):  # a missing local shard is reported by the reader, with the tensors in it
            return os.path.join(path, subfolder, name)
        return resolve_file(path, name, required=True, **hub_kwargs)

    if want_tf:
        candidates = _tf1_index_candidates(listing) if listing is not None else list(TF1_INDEX_NAMES)
        for name in candidates:
            index = present(name)
            if index is not None:
                header = read_tf1_header(index)
                return "tf1", [
                    index,
                    *(resolve_required(n) for n in tf1_shard_names(name, header["num_shards"])),
                ]
        h5 = present(TF2_WEIGHTS_NAME)
        if h5 is not None:
            return "tf2", [h5]
        index = present(TF2_WEIGHTS_INDEX_NAME)
        if index is not None:
            return "tf2", [resolve_required(n) for n in _shard_files_from_index_json(index)]
    if want_flax:
        msgpack_file = present(FLAX_WEIGHTS_NAME)
        if msgpack_file is not None:
            return "flax", [msgpack_file]
        index = present(FLAX_WEIGHTS_INDEX_NAME)
        if index is not None:
            return "flax", [resolve_required(n) for n in _shard_files_from_index_json(index)]
    return None


# =============================================================================================== loading
def load_legacy_checkpoint(
    kind: str, files: list[str], *, verify_checksums: bool | None = None
) -> LegacyStateDict:
    """Read a legacy checkpoint into transformers' PyTorch state-dict names (see the module docstring).

    ``kind`` is ``'tf1'``, ``'tf2'`` or ``'flax'`` as returned by :func:`find_legacy_checkpoint`. Corrupt,
    truncated or missing files raise ``OSError`` naming the file (and the tensor, where one is concerned);
    a tensor whose stored size does not match its shape raises ``ValueError``.

    ``verify_checksums`` (TF1 only; default: on unless ``FASTBERT_VERIFY_CHECKSUMS=0``) checks every tensor's
    CRC-32C as TensorFlow does (pure Python + torch: roughly 15 s per GB of weights on one idle core).
    """
    if verify_checksums is None:
        verify_checksums = os.environ.get("FASTBERT_VERIFY_CHECKSUMS", "1").lower() not in (
            "0",
            "false",
            "no",
        )
    files = [str(f) for f in files]
    if not files:
        raise ValueError("load_legacy_checkpoint: no files given")
    if kind == "tf2":
        raw = _read_tf2(files)
    elif kind == "flax":
        raw = _read_flax(files)
    elif kind == "tf1":
        raw = _read_tf1(files, verify_checksums=verify_checksums)
    else:
        raise ValueError(f"unknown legacy checkpoint kind {kind!r}: expected 'tf1', 'tf2' or 'flax'")
    out = LegacyStateDict()
    out.kind = kind
    for pt_name, tensor, source in raw:
        if pt_name in out:
            raise ValueError(f"{source}: maps to {pt_name}, which {out.sources[pt_name]} already provides")
        out[pt_name] = tensor
        out.sources[pt_name] = source
    return out


# ------------------------------------------------------------------------------------------ name mapping
_BASE_SEGMENTS = {"embeddings", "encoder", "pooler"}
_HEAD_ROOTS = {"bert", "cls", "classifier", "qa_outputs"}


def _finish_name(parts: list[str]) -> str:
    if parts and parts[0] in _BASE_SEGMENTS:
        parts = ["bert", *parts]
    return ".".join(parts)


def _as_linear(tensor: torch.Tensor, name: str, source: str) -> torch.Tensor:
    if tensor.dim() != 2:
        raise ValueError(
            f"{source}: kernel {name} has shape {list(tensor.shape)}, expected a 2-D [in, out] matrix"
        )
    return tensor.t().contiguous()


def _map_keras_or_flax(parts: list[str], tensor: torch.Tensor, source: str) -> tuple[str, torch.Tensor]:
    """TF 2 (after model-name removal) and Flax names: kernel/gamma/beta/scale/embedding(s)."""
    parts = list(parts)
    last = parts[-1]
    if last == "kernel":
        parts[-1] = "weight"
        tensor = _as_linear(tensor, "/".join(parts), source)
    elif last in ("gamma", "scale", "embeddings", "embedding"):
        parts[-1] = "weight"
    elif last == "beta":
        parts[-1] = "bias"
    return _finish_name(parts), tensor


_TF1_SKIP = {
    "adam_m",
    "adam_v",
    "Adam",
    "Adam_1",
    "AdamWeightDecayOptimizer",
    "AdamWeightDecayOptimizer_1",
    "lamb_m",
    "lamb_v",
    "Momentum",
    "global_step",
    "beta1_power",
    "beta2_power",
    "loss_scale",
    "good_steps",
    "current_loss_scale",
    "_CHECKPOINTABLE_OBJECT_GRAPH",
}


def tf1_is_skipped(name: str) -> bool:
    """Optimizer slots, ``global_step`` and bookkeeping variables that a model does not hold."""
    return any(p in _TF1_SKIP for p in name.split("/"))


def _map_tf1(name: str, tensor: torch.Tensor, source: str) -> tuple[str, torch.Tensor]:
    """google-research/bert variable names, as transformers 4's ``load_tf_weights_in_bert`` maps them
    (plus the fine-tuning heads of run_classifier.py / run_squad.py)."""
    parts = name.split("/")
    if parts in (["output_weights"], ["output_bias"]):  # run_classifier.py
        parts = ["classifier", parts[0]]
    elif parts[:2] == ["cls", "squad"]:  # run_squad.py
        parts = ["qa_outputs", *parts[2:]]
    out: list[str] = []
    for p in parts:
        m = re.fullmatch(r"([A-Za-z]+)_(\d+)", p)
        if m and m.group(1) == "layer":
            out += [m.group(1), m.group(2)]
        else:
            out.append(p)
    last = out[-1]
    if last == "kernel":
        out[-1] = "weight"
        tensor = _as_linear(tensor, name, source)
    elif last in ("gamma", "output_weights"):
        out[-1] = "weight"
    elif last in ("beta", "output_bias"):
        out[-1] = "bias"
    elif last.endswith("_embeddings"):
        out.append("weight")
    return _finish_name(out), tensor


# ------------------------------------------------------------------------------------------ TF 2 (h5)
def _h5_attr_list(obj, name: str) -> list[str] | None:
    """A Keras string-list attribute (``layer_names`` / ``weight_names``), possibly chunked into
    ``name0``, ``name1``... when it is too large for one HDF5 attribute."""
    if name in obj.attrs:
        values = list(obj.attrs[name])
    elif f"{name}0" in obj.attrs:
        values, i = [], 0
        while f"{name}{i}" in obj.attrs:
            values += list(obj.attrs[f"{name}{i}"])
            i += 1
    else:
        return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _keras_name(weight_name: str, drop_model_level: bool) -> list[str]:
    """transformers 4's ``convert_tf_weight_name_to_pt_weight_name``, minus the last-segment rename."""
    name = weight_name.replace(":0", "")
    name = re.sub(r"/[^/]*___([^/]*)/", r"/\1/", "/" + name + "/").strip("/")  # mlm___cls -> cls
    name = name.replace("_._", "/")  # layer_._0 -> layer/0
    parts = [p for p in name.split("/") if p]
    if drop_model_level and len(parts) > 1:
        parts = parts[1:]  # the Keras model name: tf_bert_for_pre_training, tf_bert_model_1, ...
    elif not drop_model_level:
        # No grouping (a walk over the datasets): start at the first known root segment.
        for i, p in enumerate(parts):
            if p in _HEAD_ROOTS or p in _BASE_SEGMENTS:
                parts = parts[i:]
                break
    return parts


def _h5_tensor(dataset, path: str, label: str) -> torch.Tensor:
    try:
        array = dataset[()]
    except Exception as e:  # h5py raises OSError/KeyError/ValueError... on a damaged file
        raise OSError(f"{path}: cannot read tensor {label} ({type(e).__name__}: {e})") from None
    import numpy as np

    array = np.ascontiguousarray(array)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{path}: tensor {label} has unsupported dtype {array.dtype}")
    return torch.from_numpy(array.copy())


def _read_tf2(files: list[str]) -> Iterator[tuple[str, torch.Tensor, str]]:
    h5py = _require("h5py", "a TF 2 checkpoint (tf_model.h5)")
    results = []
    for path in files:
        if not os.path.isfile(path):
            raise OSError(f"{path}: file not found (part of the TF 2 checkpoint)")
        try:
            f = h5py.File(path, "r")
        except Exception as e:
            raise OSError(f"{path}: not a readable HDF5 (tf_model.h5) file: {e}") from None
        with f:
            try:
                entries = _tf2_entries(f, h5py)
            except (OSError, ValueError):
                raise
            except Exception as e:
                raise OSError(f"{path}: damaged HDF5 (tf_model.h5) file ({type(e).__name__}: {e})") from None
            if not entries:
                raise OSError(f"{path}: no weights found: is it a transformers TF 2 (Keras) checkpoint?")
            seen: set[str] = set()
            for group_name, weight_name, dataset, parts in entries:
                label = f"{group_name}/{weight_name}" if group_name else weight_name
                source = f"{path}: {label}"
                tensor = _h5_tensor(dataset, path, label)
                pt_name, tensor = _map_keras_or_flax(parts, tensor, source)
                if pt_name in seen:
                    continue
                seen.add(pt_name)
                results.append((pt_name, tensor, source))
    return results


def _tf2_entries(f, h5py) -> list[tuple[str, str, Any, list[str]]]:
    """(group, weight name, dataset, name parts) for each weight, base-model copies before the duplicated
    embedding copies that the MLM head group stores."""
    root = f
    layer_names = _h5_attr_list(root, "layer_names")
    if layer_names is None and "model_weights" in f and isinstance(f["model_weights"], h5py.Group):
        root = f["model_weights"]  # a whole-model save (model.save), not save_weights
        layer_names = _h5_attr_list(root, "layer_names")
    entries = []
    if layer_names is None:  # no Keras attributes: walk every dataset
        found = []
        root.visititems(lambda n, o: found.append((n, o)) if isinstance(o, h5py.Dataset) else None)
        for name, ds in found:
            entries.append(("", name, ds, _keras_name(name, drop_model_level=False)))
    else:
        for layer in layer_names:
            if layer not in root:
                raise OSError(f"{f.filename}: layer {layer!r} is listed but not stored (truncated file?)")
            obj = root[layer]
            if isinstance(obj, h5py.Dataset):  # sharded layout: datasets named by weight, no model level
                entries.append(("", layer, obj, _keras_name(layer, drop_model_level=False)))
                continue
            weight_names = _h5_attr_list(obj, "weight_names") or []
            for weight_name in weight_names:
                if weight_name not in obj:
                    raise OSError(
                        f"{f.filename}: tensor {layer}/{weight_name} is listed but not stored (truncated file?)"
                    )
                entries.append(
                    (layer, weight_name, obj[weight_name], _keras_name(weight_name, drop_model_level=True))
                )

    # The embeddings' own group first, so a head group's duplicated copy is the one dropped.
    def rank(entry):
        group, _, _, parts = entry
        own = bool(group) and bool(parts) and _keras_name(group + "/x", drop_model_level=False)[0] == parts[0]
        return 0 if own or not group else 1

    return sorted(entries, key=rank)


# ------------------------------------------------------------------------------------------ Flax (msgpack)
_FLAX_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}


class _FlaxArray:
    __slots__ = ("shape", "dtype", "data")

    def __init__(self, shape, dtype, data):
        self.shape, self.dtype, self.data = shape, dtype, data


def _flax_ext_hook(code: int, data: bytes):
    import msgpack

    if code in (1, 3):  # ndarray, numpy scalar: (shape, dtype name, raw bytes)
        shape, dtype, raw = msgpack.unpackb(data, raw=False)
        return _FlaxArray(tuple(shape), dtype, raw)
    if code == 2:  # native complex
        return _FlaxArray((), "complex", data)
    return msgpack.ExtType(code, data)


def _tensor_from_bytes(raw, dtype: torch.dtype, shape, source: str, byteswap: bool = False) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"{source}: invalid shape {list(shape)}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    numel = math.prod(shape)
    if len(raw) != numel * itemsize:
        raise ValueError(
            f"{source}: holds {len(raw)} bytes, but shape {list(shape)} of {str(dtype).removeprefix('torch.')} "
            f"needs {numel * itemsize}"
        )
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    buf = raw if isinstance(raw, bytearray) else bytearray(raw)
    t = torch.frombuffer(buf, dtype=torch.uint8)
    if byteswap and itemsize > 1:
        t = t.view(-1, itemsize).flip(-1).contiguous().view(-1)
    return t.view(dtype).reshape(shape)


def _read_flax(files: list[str]) -> list[tuple[str, torch.Tensor, str]]:
    msgpack = _require("msgpack", "a Flax checkpoint (flax_model.msgpack)")
    results = []
    for path in files:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise OSError(f"{path}: file not found (part of the Flax checkpoint)") from None
        try:
            tree = msgpack.unpackb(raw, ext_hook=_flax_ext_hook, raw=False, strict_map_key=False)
        except Exception as e:
            raise OSError(
                f"{path}: not a valid Flax msgpack file (truncated or corrupt: {type(e).__name__}: {e})"
            ) from None
        del raw
        if not isinstance(tree, dict) or not tree:
            raise OSError(f"{path}: not a Flax checkpoint (expected a nested map of arrays)")
        if set(tree) == {"params"} and isinstance(tree["params"], dict):
            tree = tree["params"]
        for parts, leaf in _flax_leaves(tree, []):
            label = "/".join(parts)
            source = f"{path}: {label}"
            tensor = _flax_tensor(leaf, source)
            pt_name, tensor = _map_keras_or_flax(parts, tensor, source)
            results.append((pt_name, tensor, source))
    return results


def _flax_leaves(tree: dict, prefix: list[str]) -> Iterator[tuple[list[str], Any]]:
    for key, value in tree.items():
        parts = [*prefix, str(key)]
        if isinstance(value, dict) and "__msgpack_chunked_array__" not in value:
            yield from _flax_leaves(value, parts)
        else:
            yield parts, value


def _flax_tensor(leaf, source: str) -> torch.Tensor:
    if isinstance(leaf, dict):  # flax's chunked array (arrays over 2 GiB): {'shape': {...}, 'chunks': {...}}
        try:
            shape = [leaf["shape"][str(i)] for i in range(len(leaf["shape"]))]
            chunks = [leaf["chunks"][str(i)] for i in range(len(leaf["chunks"]))]
            flat = torch.cat([_flax_tensor(c, source).reshape(-1) for c in chunks])
            return flat.reshape(shape)
        except (KeyError, TypeError, RuntimeError) as e:
            raise ValueError(f"{source}: damaged chunked array ({type(e).__name__}: {e})") from None
    if not isinstance(leaf, _FlaxArray):
        raise ValueError(f"{source}: expected an array, found {type(leaf).__name__}")
    dtype = _FLAX_DTYPES.get(leaf.dtype)
    if dtype is None:
        raise ValueError(f"{source}: unsupported dtype {leaf.dtype!r}")
    return _tensor_from_bytes(leaf.data, dtype, leaf.shape, source)


# ------------------------------------------------------------------------------------------ TF1 (bundle)
def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc_table()


def _crc_update_py(reg: int, data) -> int:
    t = _CRC32C_TABLE
    for b in data:
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def _gf2_apply(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_apply(mat, mat[i]) for i in range(32)]


def _zeros_operator(nbytes: int) -> list[int]:
    """The 32x32 GF(2) matrix (as 32 column ints) of feeding ``nbytes`` zero bytes to a CRC register."""
    one = [_crc_update_py(1 << i, b"\0") for i in range(32)]
    result = [1 << i for i in range(32)]  # identity
    power = one
    while nbytes:
        if nbytes & 1:
            result = [_gf2_apply(power, result[i]) for i in range(32)]
        nbytes >>= 1
        if nbytes:
            power = _gf2_square(power)
    return result


def _slice_tables() -> list[list[int]]:
    tables = [_CRC32C_TABLE]
    for _ in range(3):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ _CRC32C_TABLE[prev[i] & 0xFF] for i in range(256)])
    return tables


_CRC32C_SLICES: list[torch.Tensor] | None = None


def crc32c(data) -> int:
    """CRC-32C (Castagnoli) of ``data``.

    Large buffers are split into equal chunks whose CRCs are computed together with torch, four bytes
    at a time (slicing-by-4 tables), then combined with the GF(2) operator of "append ``chunk`` zero
    bytes", so checking a BERT-base checkpoint costs seconds, not minutes, in Python.
    """
    global _CRC32C_SLICES
    n = len(data)
    if n < 1 << 15:
        return _crc_update_py(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    if _CRC32C_SLICES is None:
        _CRC32C_SLICES = [torch.tensor(t, dtype=torch.int64) for t in _slice_tables()]
    t0, t1, t2, t3 = _CRC32C_SLICES
    chunk = max(256, 1 << int(math.log2(math.sqrt(n) / 2)))  # a multiple of 4
    count = n // chunk
    buf = data if isinstance(data, bytearray) else bytearray(data)
    words = torch.frombuffer(buf, dtype=torch.uint8)[: count * chunk].view(count, chunk)
    words = words.view(torch.int32) if sys.byteorder == "little" else None
    reg = torch.zeros(count, dtype=torch.int64)
    if words is not None:
        for j in range(chunk // 4):
            reg = reg ^ (words[:, j].to(torch.int64) & 0xFFFFFFFF)
            reg = t3[reg & 0xFF] ^ t2[(reg >> 8) & 0xFF] ^ t1[(reg >> 16) & 0xFF] ^ t0[reg >> 24]
    else:  # pragma: no cover - big-endian hosts: a byte at a time
        cols = torch.frombuffer(buf, dtype=torch.uint8)[: count * chunk].view(count, chunk)
        for j in range(chunk):
            reg = t0[(reg ^ cols[:, j]) & 0xFF] ^ (reg >> 8)
    op = _zeros_operator(chunk)
    b0, b1, b2, b3 = ([_gf2_apply(op, b << (8 * k)) for b in range(256)] for k in range(4))
    r = 0xFFFFFFFF
    for z in reg.tolist():
        r = b0[r & 0xFF] ^ b1[(r >> 8) & 0xFF] ^ b2[(r >> 16) & 0xFF] ^ b3[r >> 24] ^ z
    r = _crc_update_py(r, memoryview(buf)[count * chunk :])
    return r ^ 0xFFFFFFFF


def _masked_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _unmask_crc(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


class _Corrupt(Exception):
    pass


def _varint(buf, pos: int, limit: int | None = None) -> tuple[int, int]:
    limit = len(buf) if limit is None else limit
    result = shift = 0
    while True:
        if pos >= limit:
            raise _Corrupt("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("varint too long")


def _proto_fields(buf) -> dict[int, list]:
    """Decode a protobuf message into {field number: [values]} (varints as int, fixed as int, bytes)."""
    fields: dict[int, list] = {}
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise _Corrupt("truncated fixed64")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise _Corrupt("truncated length-delimited field")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > n:
                raise _Corrupt("truncated fixed32")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        if number == 0:
            raise _Corrupt("protobuf field number 0")
        fields.setdefault(number, []).append(value)
    return fields


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48


def _snappy_decompress(src: bytes) -> bytes:
    length, pos = _varint(src, 0)
    out = bytearray()
    n = len(src)
    while pos < n:
        tag = src[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            size = tag >> 2
            if size >= 60:
                extra = size - 59
                size = int.from_bytes(src[pos : pos + extra], "little")
                pos += extra
            size += 1
            if pos + size > n:
                raise _Corrupt("truncated snappy literal")
            out += src[pos : pos + size]
            pos += size
            continue
        if kind == 1:
            size = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | src[pos]
            pos += 1
        elif kind == 2:
            size = (tag >> 2) + 1
            offset = int.from_bytes(src[pos : pos + 2], "little")
            pos += 2
        else:
            size = (tag >> 2) + 1
            offset = int.from_bytes(src[pos : pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise _Corrupt("bad snappy copy offset")
        for _ in range(size):
            out.append(out[-offset])
    if len(out) != length:
        raise _Corrupt("snappy length mismatch")
    return bytes(out)


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if offset < 0 or end + 5 > len(data):
        raise _Corrupt(f"block at {offset}+{size} runs past the end of the file ({len(data)} bytes)")
    contents = data[offset:end]
    ctype = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    actual = _masked_crc(crc32c(data[offset : end + 1]))
    if stored != actual:
        raise _Corrupt(f"checksum mismatch in the block at offset {offset}")
    if ctype == 0:
        return contents
    if ctype == 1:
        return _snappy_decompress(contents)
    raise _Corrupt(f"unknown block compression {ctype}")


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt("block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise _Corrupt("bad restart count")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos, limit)
        non_shared, pos = _varint(block, pos, limit)
        value_len, pos = _varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise _Corrupt("bad block entry")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        yield key, block[pos : pos + value_len]
        pos += value_len


def _read_sstable(path: str) -> list[tuple[bytes, bytes]]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise OSError(f"{path}: file not found (TF1 checkpoint index)") from None
    try:
        if len(data) < _FOOTER_SIZE:
            raise _Corrupt(f"only {len(data)} bytes, shorter than the 48-byte table footer")
        footer = data[-_FOOTER_SIZE:]
        (magic,) = struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)
        if magic != _TABLE_MAGIC:
            raise _Corrupt(
                "no table magic number at the end (truncated, or not a TensorFlow checkpoint index)"
            )
        pos = 0
        _meta_off, pos = _varint(footer, pos)
        _meta_size, pos = _varint(footer, pos)
        index_off, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
        index_block = _read_block(data, index_off, index_size)
        entries = []
        for _, handle in _block_entries(index_block):
            off, p = _varint(handle, 0)
            size, _ = _varint(handle, p)
            entries.extend(_block_entries(_read_block(data, off, size)))
        return entries
    except _Corrupt as e:
        raise OSError(f"{path}: corrupt TensorFlow checkpoint index: {e}") from None


def _parse_header(value: bytes, path: str) -> dict[str, int]:
    try:
        f = _proto_fields(value)
    except _Corrupt as e:
        raise OSError(f"{path}: corrupt BundleHeaderProto: {e}") from None
    num_shards = f.get(1, [1])[-1]
    endianness = f.get(2, [0])[-1]
    if num_shards < 1:
        raise OSError(f"{path}: BundleHeaderProto says {num_shards} shards")
    if endianness not in (0, 1):
        raise OSError(f"{path}: BundleHeaderProto has unknown endianness {endianness}")
    return {"num_shards": num_shards, "endianness": endianness}


def read_tf1_header(index_path: str) -> dict[str, int]:
    """``{'num_shards': n, 'endianness': 0|1}`` of a TF1 checkpoint index."""
    for key, value in _read_sstable(index_path):
        if key == b"":
            return _parse_header(value, index_path)
    raise OSError(f"{index_path}: no BundleHeaderProto (the empty key): not a TensorFlow checkpoint index")


_TF_DTYPES = {
    1: torch.float32,
    2: torch.float64,
    3: torch.int32,
    4: torch.uint8,
    5: torch.int16,
    6: torch.int8,
    9: torch.int64,
    10: torch.bool,
    14: torch.bfloat16,
    17: torch.uint16,
    19: torch.float16,
    22: torch.uint32,
    23: torch.uint64,
}


def _parse_entry(value: bytes, name: str, path: str) -> dict[str, Any]:
    try:
        f = _proto_fields(value)
        shape: list[int] = []
        if 2 in f:
            shape_fields = _proto_fields(f[2][-1])
            if shape_fields.get(3, [0])[-1]:
                raise _Corrupt("unknown rank")
            for dim in shape_fields.get(2, []):
                shape.append(_int64(_proto_fields(dim).get(1, [0])[-1]))
        return {
            "dtype": f.get(1, [0])[-1],
            "shape": shape,
            "shard_id": f.get(3, [0])[-1],
            "offset": _int64(f.get(4, [0])[-1]),
            "size": _int64(f.get(5, [0])[-1]),
            "crc32c": f.get(6, [None])[-1],
            "sliced": 7 in f,
        }
    except _Corrupt as e:
        raise OSError(f"{path}: corrupt BundleEntryProto for tensor {name}: {e}") from None


def read_tf1_bundle(
    index_path: str,
    shard_paths: list[str] | None = None,
    *,
    verify_checksums: bool = True,
    skip=tf1_is_skipped,
) -> list[tuple[str, torch.Tensor]]:
    """All tensors of a TensorFlow tensor bundle as (TF variable name, tensor), in index order.

    ``skip(name)`` names tensors not to read (optimizer slots and ``global_step`` by default).
    """
    entries = _read_sstable(index_path)
    header = None
    tensors: list[tuple[str, dict[str, Any]]] = []
    for key, value in entries:
        if key == b"":
            header = _parse_header(value, index_path)
            continue
        if key[:1] == b"\0":  # slices of partitioned variables (see `sliced` below)
            continue
        try:
            name = key.decode("utf8")
        except UnicodeDecodeError:
            raise OSError(
                f"{index_path}: corrupt TensorFlow checkpoint index: undecodable tensor name {key!r}"
            ) from None
        if skip is not None and skip(name):
            continue
        tensors.append((name, _parse_entry(value, name, index_path)))
    if header is None:
        raise OSError(
            f"{index_path}: no BundleHeaderProto (the empty key): not a TensorFlow checkpoint index"
        )

    prefix_dir = os.path.dirname(index_path)
    expected = tf1_shard_names(os.path.basename(index_path), header["num_shards"])
    by_name = {os.path.basename(p): p for p in (shard_paths or [])}
    shards = [by_name.get(n, os.path.join(prefix_dir, n)) for n in expected]

    out = []
    handles: dict[int, Any] = {}
    try:
        for name, e in tensors:
            source = f"{index_path}: tensor {name}"
            if e["sliced"]:
                raise ValueError(
                    f"{source} is a partitioned variable (tensor slices), which is not supported"
                )
            dtype = _TF_DTYPES.get(e["dtype"] - 100 if e["dtype"] > 100 else e["dtype"])
            if dtype is None:
                raise ValueError(f"{source} has unsupported TensorFlow dtype enum {e['dtype']}")
            if not 0 <= e["shard_id"] < header["num_shards"]:
                raise OSError(
                    f"{source} points to shard {e['shard_id']} of a {header['num_shards']}-shard checkpoint"
                )
            shard = shards[e["shard_id"]]
            if e["shard_id"] not in handles:
                try:
                    handles[e["shard_id"]] = open(shard, "rb")
                except FileNotFoundError:
                    raise OSError(
                        f"{shard}: data shard not found (needed for tensor {name} of {index_path})"
                    ) from None
            fh = handles[e["shard_id"]]
            file_size = os.fstat(fh.fileno()).st_size
            if e["offset"] < 0 or e["size"] < 0 or e["offset"] + e["size"] > file_size:
                raise OSError(
                    f"{shard}: truncated data shard: tensor {name} needs bytes {e['offset']}..{e['offset'] + e['size']}, "
                    f"the file has {file_size}"
                )
            fh.seek(e["offset"])
            buf = bytearray(e["size"])
            if fh.readinto(buf) != e["size"]:
                raise OSError(f"{shard}: short read for tensor {name}")
            if verify_checksums and e["crc32c"] is not None and _masked_crc(crc32c(buf)) != e["crc32c"]:
                raise OSError(f"{shard}: checksum mismatch for tensor {name} (corrupt data shard)")
            tensor = _tensor_from_bytes(
                buf, dtype, e["shape"], f"{shard}: tensor {name}", byteswap=header["endianness"] == 1
            )
            out.append((name, tensor))
    finally:
        for fh in handles.values():
            fh.close()
    return out


def _read_tf1(files: list[str], *, verify_checksums: bool) -> list[tuple[str, torch.Tensor, str]]:
    index = files[0]
    if not index.endswith(".index") and os.path.isfile(index + ".index"):
        index += ".index"
    results = []
    for name, tensor in read_tf1_bundle(index, files[1:], verify_checksums=verify_checksums):
        source = f"{index}: {name}"
        pt_name, tensor = _map_tf1(name, tensor, source)
        results.append((pt_name, tensor, source))
    return results


# =============================================================================================== checks
def expected_shapes(config, state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...] | None]:
    """For each key of ``state_dict``, the shape the config implies (None: any shape, e.g. a classifier),
    or a missing entry when the config has no such parameter (a layer beyond ``num_hidden_layers``)."""
    V, H, P = config.vocab_size, config.hidden_size, config.max_position_embeddings
    T, F, L = config.type_vocab_size, config.intermediate_size, config.num_hidden_layers
    shapes: dict[str, tuple[int, ...] | None] = {
        "embeddings.word_embeddings.weight": (V, H),
        "embeddings.position_embeddings.weight": (P, H),
        "embeddings.token_type_embeddings.weight": (T, H),
        "embeddings.LayerNorm.weight": (H,),
        "embeddings.LayerNorm.bias": (H,),
        "pooler.dense.weight": (H, H),
        "pooler.dense.bias": (H,),
        "cls.predictions.bias": (V,),
        "cls.predictions.transform.dense.weight": (H, H),
        "cls.predictions.transform.dense.bias": (H,),
        "cls.predictions.transform.LayerNorm.weight": (H,),
        "cls.predictions.transform.LayerNorm.bias": (H,),
        "cls.predictions.decoder.weight": (V, H),
        "cls.predictions.decoder.bias": (V,),
        "cls.seq_relationship.weight": (2, H),
        "cls.seq_relationship.bias": (2,),
        "qa_outputs.weight": (2, H),
        "qa_outputs.bias": (2,),
        "classifier.weight": None,
        "classifier.bias": None,
    }
    layer = {
        "attention.self.query.weight": (H, H),
        "attention.self.query.bias": (H,),
        "attention.self.key.weight": (H, H),
        "attention.self.key.bias": (H,),
        "attention.self.value.weight": (H, H),
        "attention.self.value.bias": (H,),
        "attention.output.dense.weight": (H, H),
        "attention.output.dense.bias": (H,),
        "attention.output.LayerNorm.weight": (H,),
        "attention.output.LayerNorm.bias": (H,),
        "intermediate.dense.weight": (F, H),
        "intermediate.dense.bias": (F,),
        "output.dense.weight": (H, F),
        "output.dense.bias": (H,),
        "output.LayerNorm.weight": (H,),
        "output.LayerNorm.bias": (H,),
    }
    out: dict[str, tuple[int, ...] | None] = {}
    for key in state_dict:
        k = key.removeprefix("bert.")
        m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", k)
        if m:
            if int(m.group(1)) < L and m.group(2) in layer:
                out[key] = layer[m.group(2)]
        elif k in shapes:
            out[key] = shapes[k]
    return out


def check_shapes(config, state_dict: LegacyStateDict | dict[str, torch.Tensor], where: str = "") -> None:
    """Raise ``ValueError`` naming the file and tensor whose shape does not fit ``config``."""
    sources = getattr(state_dict, "sources", {})
    shapes = expected_shapes(config, state_dict)
    for key, want in shapes.items():
        got = tuple(state_dict[key].shape)
        if want is not None and got != want:
            src = sources.get(key, where or key)
            raise ValueError(
                f"{src}: shape {list(got)} does not fit the config ({key} should be {list(want)}: "
                f"vocab_size={config.vocab_size}, hidden_size={config.hidden_size}, "
                f"intermediate_size={config.intermediate_size}, max_position_embeddings={config.max_position_embeddings}, "
                f"type_vocab_size={config.type_vocab_size})"
            )
    for key in ("classifier.weight", "classifier.bias"):
        if key in state_dict:
            t = state_dict[key]
            bad = (
                (t.dim() != 2 or t.shape[1] != config.hidden_size) if key.endswith("weight") else t.dim() != 1
            )
            if bad:
                raise ValueError(
                    f"{sources.get(key, key)}: shape {list(t.shape)} does not fit hidden_size={config.hidden_size}"
                )


# =============================================================================================== convert
_BASE_KEYS = (
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
)
_HEAD_KEYS = {
    "mlm": (
        "cls.predictions.bias",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias",
    ),
    "nsp": ("cls.seq_relationship.weight", "cls.seq_relationship.bias"),
    "classifier": ("classifier.weight", "classifier.bias"),
    "qa": ("qa_outputs.weight", "qa_outputs.bias"),
}
_CLASSIFIER_ARCHS = ("BertForSequenceClassification", "BertForTokenClassification", "BertForMultipleChoice")
ARCHITECTURES = (
    "BertModel",
    "BertForPreTraining",
    "BertLMHeadModel",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    *_CLASSIFIER_ARCHS,
    "BertForQuestionAnswering",
)


def infer_architecture(state_dict: dict[str, torch.Tensor], config=None) -> str:
    """The PyTorch class whose heads ``state_dict`` holds. A config naming a consistent class (including
    its TF/Flax twin, such as ``TFBertForTokenClassification``) decides between look-alikes."""
    has = {head: any(k in state_dict for k in keys) for head, keys in _HEAD_KEYS.items()}
    if has["mlm"] and has["nsp"]:
        candidates = ["BertForPreTraining"]
    elif has["mlm"]:
        candidates = ["BertForMaskedLM", "BertLMHeadModel"]
    elif has["nsp"]:
        candidates = ["BertForNextSentencePrediction"]
    elif has["qa"]:
        candidates = ["BertForQuestionAnswering"]
    elif has["classifier"]:
        candidates = list(_CLASSIFIER_ARCHS)
    else:
        candidates = ["BertModel"]
    declared = []
    for arch in getattr(config, "architectures", None) or []:
        arch = re.sub(r"^(TF|Flax)", "", str(arch))
        declared.append(arch)
    for arch in declared:
        if arch in candidates:
            return arch
    if candidates[0] == "BertForMaskedLM" and getattr(config, "is_decoder", False):
        return "BertLMHeadModel"
    return candidates[0]


def _required_keys(arch: str, config) -> list[str]:
    base = [f"bert.{k}" for k in _BASE_KEYS]
    for i in range(config.num_hidden_layers):
        base += [f"bert.encoder.layer.{i}.{n}" for n in _LAYER_PARAM_NAMES]
    heads = {
        "BertForPreTraining": ("mlm", "nsp"),
        "BertForMaskedLM": ("mlm",),
        "BertLMHeadModel": ("mlm",),
        "BertForNextSentencePrediction": ("nsp",),
        "BertForQuestionAnswering": ("qa",),
        "BertForSequenceClassification": ("classifier",),
        "BertForTokenClassification": ("classifier",),
        "BertForMultipleChoice": ("classifier",),
    }.get(arch, ())
    for head in heads:
        base += list(_HEAD_KEYS[head])
    return base


_LAYER_PARAM_NAMES = (
    "attention.self.query.weight",
    "attention.self.query.bias",
    "attention.self.key.weight",
    "attention.self.key.bias",
    "attention.self.value.weight",
    "attention.self.value.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",
    "intermediate.dense.bias",
    "output.dense.weight",
    "output.dense.bias",
    "output.LayerNorm.weight",
    "output.LayerNorm.bias",
)


def _config_location(src: str, files: list[str]) -> str:
    if os.path.isfile(src) or os.path.isfile(src + ".index"):
        return os.path.dirname(os.path.abspath(src))
    return src


def convert(
    src: str,
    dst: str,
    *,
    from_tf: bool = False,
    from_flax: bool = False,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    subfolder: str = "",
    overwrite: bool = False,
    log=None,
) -> str:
    """Convert the legacy checkpoint at ``src`` into a transformers 5 folder ``dst``:
    ``model.safetensors`` + ``config.json`` (+ the tokenizer files found beside the checkpoint).

    Returns the architecture written into ``config.json``.
    """
    from safetensors.torch import save_file

    from .config import BertConfig

    log = log or (lambda msg: print(msg, file=sys.stderr))
    found = find_legacy_checkpoint(
        src,
        from_tf=from_tf,
        from_flax=from_flax,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        subfolder=subfolder,
    )
    if found is None:
        kinds = (
            "TF checkpoint (tf_model.h5 or *.ckpt.index)"
            if from_tf
            else (
                "Flax checkpoint (flax_model.msgpack)"
                if from_flax
                else "TF 2 (tf_model.h5), Flax (flax_model.msgpack) or Google TF1 (*.ckpt.index + data shards) checkpoint"
            )
        )
        raise OSError(f"{src} holds no {kinds}")
    kind, files = found
    out_model = os.path.join(dst, "model.safetensors")
    if os.path.isfile(dst):
        raise OSError(f"{dst} is a file; give a folder to write the converted model into")
    if os.path.exists(out_model) and not overwrite:
        raise OSError(f"{out_model} exists already (pass --overwrite to replace it)")

    state = load_legacy_checkpoint(kind, files)
    config_src = _config_location(src, files)
    config = BertConfig.from_pretrained(
        config_src,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        subfolder=subfolder if config_src == src else "",
    )
    check_shapes(config, state)

    arch = infer_architecture(state, config)
    known = set(expected_shapes(config, state))
    unexpected = sorted(k for k in state if k not in known)
    for k in unexpected:
        log(f"fastbert convert: skipping {state.sources.get(k, k)} (no {arch} parameter named {k})")
    missing = [k for k in _required_keys(arch, config) if k not in state]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"{files[0]}: the checkpoint lacks weights of a {arch}: {shown}")
    if "classifier.weight" in state:
        n = state["classifier.weight"].shape[0]
        if arch != "BertForMultipleChoice" and config.num_labels != n:
            config.num_labels = n

    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k in unexpected:
            continue
        if arch == "BertModel":
            k = k.removeprefix("bert.")
        out[k] = v.contiguous()
    config.architectures = [arch]
    dtypes = {v.dtype for v in out.values() if v.is_floating_point()}
    if len(dtypes) == 1:
        config.torch_dtype = dtypes.pop()

    os.makedirs(dst, exist_ok=True)
    save_file(out, out_model, metadata={"format": "pt"})
    config.save_pretrained(dst)
    _copy_tokenizer_files(
        src,
        dst,
        config_src,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        local_files_only=local_files_only,
        subfolder=subfolder,
    )
    log(f"fastbert convert: wrote {arch} ({len(out)} tensors, from {kind} {files[0]}) to {dst}")
    return arch


def _copy_tokenizer_files(src, dst, config_src, **hub_kwargs) -> None:
    from .hub import resolve_file

    subfolder = hub_kwargs.pop("subfolder", "")
    for name in TOKENIZER_FILES:
        try:
            path = resolve_file(
                config_src,
                name,
                required=False,
                subfolder=subfolder if config_src == src else "",
                **hub_kwargs,
            )
        except OSError:
            path = None
        if path is not None and not os.path.exists(os.path.join(dst, name)):
            shutil.copyfile(path, os.path.join(dst, name))


# =============================================================================================== CLI
def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src", metavar="SRC", help="folder, hub id or file of a TF 2, Flax or Google TF1 checkpoint"
    )
    parser.add_argument("dst", metavar="DST", help="folder to write model.safetensors + config.json into")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--from-tf", action="store_true", help="read a TF checkpoint (TF1 index or tf_model.h5)"
    )
    group.add_argument("--from-flax", action="store_true", help="read a Flax checkpoint (flax_model.msgpack)")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.add_argument("--subfolder", default="", help="subfolder of SRC that holds the checkpoint")
    parser.add_argument("--local-files-only", action="store_true", help="do not reach the hub")
    parser.add_argument("--overwrite", action="store_true", help="replace DST/model.safetensors if it exists")


def cli_main(args) -> int:
    try:
        convert(
            args.src,
            args.dst,
            from_tf=getattr(args, "from_tf", False),
            from_flax=getattr(args, "from_flax", False),
            revision=getattr(args, "revision", None),
            subfolder=getattr(args, "subfolder", "") or "",
            local_files_only=getattr(args, "local_files_only", False),
            overwrite=getattr(args, "overwrite", False),
        )
    except ImportError as e:
        print(f"fastbert convert: error: {e}", file=sys.stderr)
        return 2
    return 0
