"""transformers' Flax checkpoints, ``flax_model.msgpack`` and its shards, read with msgpack.

``flax.serialization.to_bytes`` writes a nested map (``bert`` / ``cls`` / ``classifier`` / ``qa_outputs``,
or the base model's ``embeddings`` / ``encoder`` / ``pooler`` at the top, sometimes under ``params``)
whose leaves are msgpack extension type 1: (shape, dtype name, raw bytes). Arrays over 2 GiB are stored
as ``{"__msgpack_chunked_array__", "shape", "chunks"}`` maps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .common import read_file, require, tensor_from_bytes
from .names import map_keras_or_flax

FLAX_WEIGHTS_NAME = "flax_model.msgpack"
FLAX_WEIGHTS_INDEX_NAME = "flax_model.msgpack.index.json"


# numpy's names of the dtypes Flax arrays come in; torch has a dtype of each name
_FLAX_DTYPES = (
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "bool",
)


class _FlaxArray:
    __slots__ = ("shape", "dtype", "data")

    def __init__(self, shape, dtype, data):
        self.shape, self.dtype, self.data = shape, dtype, data


def _flax_ext_hook(code: int, data: bytes):
    import msgpack

    if code in (1, 3):  # ndarray, numpy scalar: (shape, dtype name, raw bytes)
        shape, dtype, raw = msgpack.unpackb(data, raw=False)
        if not isinstance(raw, bytes):  # read_flax reports it as a damaged file, naming it
            raise ValueError(f"array data is a {type(raw).__name__}, not bytes")
        return _FlaxArray(tuple(shape), dtype, raw)
    if code == 2:  # native complex
        return _FlaxArray((), "complex", data)
    return msgpack.ExtType(code, data)


def read_flax(files: list[str]) -> list[tuple[str, torch.Tensor, str]]:
    """(PyTorch name, tensor, source) of each array of a Flax checkpoint (one ``.msgpack`` file or its shards)."""
    msgpack = require("msgpack", "a Flax checkpoint (flax_model.msgpack)")
    results = []
    for path in files:
        raw = read_file(path, "part of the Flax checkpoint")
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
            pt_name, tensor = map_keras_or_flax(parts, tensor, source)
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
            # flax chunks only arrays over 2 GiB: no chunk is a damaged map (torch.cat's bare error)
            if not chunks:
                raise ValueError(f"{source}: damaged chunked array (it holds no chunks)")
            flat = torch.cat([_flax_tensor(c, source).reshape(-1) for c in chunks])
            return flat.reshape(shape)
        except (KeyError, TypeError, RuntimeError) as e:
            raise ValueError(f"{source}: damaged chunked array ({type(e).__name__}: {e})") from None
    if not isinstance(leaf, _FlaxArray):
        raise ValueError(f"{source}: expected an array, found {type(leaf).__name__}")
    if leaf.dtype not in _FLAX_DTYPES:
        raise ValueError(f"{source}: unsupported dtype {leaf.dtype!r}")
    return tensor_from_bytes(leaf.data, getattr(torch, leaf.dtype), leaf.shape, source)
