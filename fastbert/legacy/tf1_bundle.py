"""Google's original TF1 checkpoints: TensorFlow tensor bundles, read without TensorFlow.

``<prefix>.index`` is an SSTable (see :mod:`.sstable`) whose empty key holds a ``BundleHeaderProto``
(number of shards, endianness) and whose other keys are variable names with a ``BundleEntryProto``
each (dtype, shape, shard, offset, size, masked CRC-32C). ``<prefix>.data-NNNNN-of-NNNNN`` shards hold
the raw tensor bytes; every tensor's checksum is verified unless told not to.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from . import protobuf
from .common import Corrupt, tensor_from_bytes
from .names import map_tf1, tf1_is_skipped
from .sstable import masked_crc32c, read_sstable

# transformers 4 looked for ``model.ckpt.index``; Google's releases ship ``bert_model.ckpt.index``.
TF1_INDEX_NAMES = ("model.ckpt.index", "bert_model.ckpt.index")

# TensorFlow's DataType enum (reference types, +100, read as their value type)
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


def tf1_shard_names(index_name: str, num_shards: int) -> list[str]:
    """The data shard file names that belong to the index file ``index_name``."""
    prefix = index_name[: -len(".index")]
    return [f"{prefix}.data-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def _parse_header(value: bytes, path: str) -> dict[str, int]:
    try:
        f = protobuf.fields(value)
        num_shards = protobuf.last(f, 1, int, 1)
        endianness = protobuf.last(f, 2, int, 0)
    except Corrupt as e:
        raise OSError(f"{path}: corrupt BundleHeaderProto: {e}") from None
    if num_shards < 1:
        raise OSError(f"{path}: BundleHeaderProto says {num_shards} shards")
    if endianness not in (0, 1):
        raise OSError(f"{path}: BundleHeaderProto has unknown endianness {endianness}")
    return {"num_shards": num_shards, "endianness": endianness}


def _no_header(index_path: str) -> OSError:
    return OSError(f"{index_path}: no BundleHeaderProto (the empty key): not a TensorFlow checkpoint index")


def read_tf1_header(index_path: str) -> dict[str, int]:
    """``{'num_shards': n, 'endianness': 0|1}`` of a TF1 checkpoint index."""
    for key, value in read_sstable(index_path):
        if key == b"":
            return _parse_header(value, index_path)
    raise _no_header(index_path)


def _parse_entry(value: bytes, name: str, path: str) -> dict[str, Any]:
    try:
        f = protobuf.fields(value)
        shape: list[int] = []
        if 2 in f:
            shape_fields = protobuf.fields(protobuf.last(f, 2, bytes))
            if protobuf.last(shape_fields, 3, int, 0):
                raise Corrupt("unknown rank")
            for dim in protobuf.repeated(shape_fields, 2, bytes):
                shape.append(protobuf.int64(protobuf.last(protobuf.fields(dim), 1, int, 0)))
        return {
            "dtype": protobuf.last(f, 1, int, 0),
            "shape": shape,
            "shard_id": protobuf.last(f, 3, int, 0),
            "offset": protobuf.int64(protobuf.last(f, 4, int, 0)),
            "size": protobuf.int64(protobuf.last(f, 5, int, 0)),
            "crc32c": protobuf.last(f, 6, int, None),
            "sliced": 7 in f,
        }
    except Corrupt as e:
        raise OSError(f"{path}: corrupt BundleEntryProto for tensor {name}: {e}") from None


def read_tf1_bundle(
    index_path: str,
    shard_paths: list[str] | None = None,
    *,
    verify_checksums: bool = True,
    skip=tf1_is_skipped,
) -> list[tuple[str, torch.Tensor]]:
    """All tensors of a TensorFlow tensor bundle as (TF variable name, tensor), in index order.

    ``shard_paths`` are the data shards (by default, beside the index); ``skip(name)`` names tensors not
    to read (optimizer slots and ``global_step`` by default).
    """
    header = None
    tensors: list[tuple[str, dict[str, Any]]] = []
    for key, value in read_sstable(index_path):
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
        raise _no_header(index_path)

    expected = tf1_shard_names(os.path.basename(index_path), header["num_shards"])
    by_name = {os.path.basename(p): p for p in (shard_paths or [])}
    shards = [by_name.get(n, os.path.join(os.path.dirname(index_path), n)) for n in expected]

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
            raw = fh.read(e["size"])
            if len(raw) != e["size"]:
                raise OSError(f"{shard}: short read for tensor {name}")
            if verify_checksums and e["crc32c"] is not None and masked_crc32c(raw) != e["crc32c"]:
                raise OSError(f"{shard}: checksum mismatch for tensor {name} (corrupt data shard)")
            tensor = tensor_from_bytes(
                raw, dtype, e["shape"], f"{shard}: tensor {name}", byteswap=header["endianness"] == 1
            )
            out.append((name, tensor))
    finally:
        for fh in handles.values():
            fh.close()
    return out


def read_tf1(files: list[str], *, verify_checksums: bool = True) -> list[tuple[str, torch.Tensor, str]]:
    """(PyTorch name, tensor, source) of each model tensor of a TF1 checkpoint: ``files`` is the index
    (or its prefix) followed by its data shards."""
    index = files[0]
    if not index.endswith(".index") and os.path.isfile(index + ".index"):
        index += ".index"
    results = []
    for name, tensor in read_tf1_bundle(index, files[1:], verify_checksums=verify_checksums):
        source = f"{index}: {name}"
        pt_name, tensor = map_tf1(name, tensor, source)
        results.append((pt_name, tensor, source))
    return results
