"""Which legacy checkpoint a folder, hub id or file holds, and reading it with the module of its format."""

from __future__ import annotations

import os
import re

from .. import hub as hub_files
from ..hub import HubOptions
from .common import LegacyStateDict
from .flax_msgpack import FLAX_WEIGHTS_INDEX_NAME, FLAX_WEIGHTS_NAME, read_flax
from .tf1_bundle import TF1_INDEX_NAMES, read_tf1, read_tf1_header, tf1_shard_names
from .tf2_h5 import TF2_WEIGHTS_INDEX_NAME, TF2_WEIGHTS_NAME, read_tf2

# the formats of one weights file, or shards listed by an index (.index.json)
_ONE_FILE_FORMATS = {
    "tf2": (TF2_WEIGHTS_NAME, TF2_WEIGHTS_INDEX_NAME),
    "flax": (FLAX_WEIGHTS_NAME, FLAX_WEIGHTS_INDEX_NAME),
}


def _step_of(name: str) -> int:
    m = re.search(r"ckpt-(\d+)\.index$", name)
    return int(m.group(1)) if m else -1


def _tf1_index_candidates(files: list[str]) -> list[str]:
    """TF1 index files among ``files``: transformers' and Google's names first, then any other
    ``*.ckpt*.index`` (a fine-tuning output such as ``model.ckpt-1000.index``, the highest step first)."""
    found = [n for n in TF1_INDEX_NAMES if n in files]
    others = [f for f in files if f.endswith(".index") and ".ckpt" in f and f not in found and "/" not in f]
    return found + sorted(others, key=_step_of, reverse=True)


def _cached_files(repo_id: str, hub: HubOptions) -> list[str]:
    """The files of a hub repository's snapshot in the local cache (of ``hub.subfolder`` in it), as a local
    folder is listed; [] when none is cached. Nothing is fetched."""
    from huggingface_hub import snapshot_download

    try:
        snapshot = snapshot_download(
            repo_id, revision=hub.revision, cache_dir=hub.cache_dir, token=hub.token, local_files_only=True
        )
    except Exception:  # not cached (or not a repository id): the known names alone are tried
        return []
    root = os.path.join(snapshot, hub.subfolder)
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def _shard_files_from_index_json(index_file: str) -> list[str]:
    from ..loading import (
        read_weight_map,  # the one check of an index (a shard never a path out of the folder)
    )

    return sorted(set(read_weight_map(index_file).values()))


def _tf1_files(index: str) -> list[str]:
    """A TF1 index file and the data shards beside it that its header names."""
    header = read_tf1_header(index)
    folder = os.path.dirname(index)
    return [
        index,
        *(os.path.join(folder, n) for n in tf1_shard_names(os.path.basename(index), header["num_shards"])),
    ]


def _find_in_file(path: str, want_tf: bool, want_flax: bool) -> tuple[str, list[str]] | None:
    if os.path.isfile(path + ".index") and not os.path.isfile(path):  # a TF1 prefix: .../bert_model.ckpt
        path = path + ".index"
    if path.endswith(".index") and want_tf:
        return "tf1", _tf1_files(path)
    if path.endswith(".h5") and want_tf:
        return "tf2", [path]
    if path.endswith(".msgpack") and want_flax:
        return "flax", [path]
    return None


def find_legacy_checkpoint(
    path_or_id: str | os.PathLike,
    *,
    from_tf: bool = False,
    from_flax: bool = False,
    hub: HubOptions | None = None,
) -> tuple[str, list[str]] | None:
    """The legacy checkpoint of a folder, hub id or file, in transformers 4's order of preference.

    Returns ``('tf1', [index, shard, ...])``, ``('tf2', [h5, ...])``, ``('flax', [msgpack, ...])`` or None.
    ``from_tf`` restricts the search to TF checkpoints (TF1 index, then ``tf_model.h5``), ``from_flax``
    to Flax; with neither, TF1, then TF 2, then Flax. ``path_or_id`` may also be the checkpoint file itself
    (``.h5``, ``.msgpack``, a TF1 ``.index`` file or its prefix, such as ``.../bert_model.ckpt``).
    ``hub`` says where and how to fetch from the Hugging Face hub.
    """
    hub = hub or HubOptions()
    path = str(path_or_id)
    want_tf = from_tf or not from_flax
    want_flax = from_flax or not from_tf
    if os.path.isfile(path) or os.path.isfile(path + ".index"):
        return _find_in_file(path, want_tf, want_flax)

    listing = hub_files.list_files(path, hub)

    def present(name: str) -> str | None:
        if listing is not None and name not in listing:
            return None
        return hub_files.resolve_file(path, name, hub=hub, required=False)

    def resolve_required(name: str) -> str:
        if os.path.isdir(path):  # a missing local shard is reported by the reader, with the tensors in it
            return os.path.join(path, hub.subfolder, name)
        return hub_files.resolve_file(path, name, hub=hub, required=True)

    if want_tf:
        # no listing (offline, local_files_only): the index files the cached snapshot holds, as a local
        # folder's listing finds them (a training run's model.ckpt-<step>.index), then the known names
        if listing is None:
            cached = _cached_files(path, hub)
            candidates = _tf1_index_candidates(cached) + [n for n in TF1_INDEX_NAMES if n not in cached]
        else:
            candidates = _tf1_index_candidates(listing)
        for name in candidates:
            index = present(name)
            if index is not None:
                header = read_tf1_header(index)
                return "tf1", [index, *map(resolve_required, tf1_shard_names(name, header["num_shards"]))]
    for kind in (["tf2"] if want_tf else []) + (["flax"] if want_flax else []):
        weights_name, index_name = _ONE_FILE_FORMATS[kind]
        weights = present(weights_name)
        if weights is not None:
            return kind, [weights]
        index = present(index_name)
        if index is not None:
            return kind, [resolve_required(n) for n in _shard_files_from_index_json(index)]
    return None


def load_legacy_checkpoint(
    kind: str, files: list[str], *, verify_checksums: bool | None = None
) -> LegacyStateDict:
    """Read a legacy checkpoint into transformers' PyTorch state-dict names.

    ``kind`` is ``'tf1'``, ``'tf2'`` or ``'flax'`` as returned by :func:`find_legacy_checkpoint`. Corrupt,
    truncated or missing files raise ``OSError`` naming the file (and the tensor, where one is concerned);
    a tensor whose stored size does not match its shape raises ``ValueError``; a missing package of the
    ``[legacy]`` extra raises ``ImportError`` saying how to install it.

    ``verify_checksums`` (TF1 only; default: on unless ``FASTBERT_VERIFY_CHECKSUMS=0``) checks every tensor's
    masked CRC-32C as TensorFlow does; the index's block checksums are always checked.
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
        raw = read_tf2(files)
    elif kind == "flax":
        raw = read_flax(files)
    elif kind == "tf1":
        raw = read_tf1(files, verify_checksums=verify_checksums)
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
