"""transformers' TF 2 (Keras) checkpoints, ``tf_model.h5`` and its shards, read with h5py.

A Keras ``save_weights`` file lists its layer groups in the ``layer_names`` attribute and each group's
weights in ``weight_names``; a weight path is group / Keras model name / real path, ending in ``:0``
(``bert/tf_bert_for_pre_training/bert/encoder/layer_._0/attention/self/query/kernel:0``). The MLM head
group stores a second copy of the embeddings, which is dropped. Sharded files name their datasets by
weight, with no model level; files without Keras attributes are walked dataset by dataset.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from .common import Corrupt, require
from .names import BASE_SEGMENTS, HEAD_ROOTS, map_keras_or_flax

TF2_WEIGHTS_NAME = "tf_model.h5"
TF2_WEIGHTS_INDEX_NAME = "tf_model.h5.index.json"


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


def _keras_name(weight_name: str, drop_model_level: bool, find_root: bool = True) -> list[str]:
    """transformers 4's ``convert_tf_weight_name_to_pt_weight_name``, minus the last-segment rename.

    ``find_root=False`` (with ``drop_model_level=False``) keeps a name that is already the real path, as
    the sharded layout stores it: searching it for a known segment cut other families' names in two
    (DistilBERT's ``distilbert/embeddings/...`` became ``embeddings...`` beside ``distilbert/transformer/...``).
    """
    name = weight_name.replace(":0", "")
    name = re.sub(r"/[^/]*___([^/]*)/", r"/\1/", "/" + name + "/").strip("/")  # mlm___cls -> cls
    name = name.replace("_._", "/")  # layer_._0 -> layer/0
    parts = [p for p in name.split("/") if p]
    if drop_model_level and len(parts) > 1:
        parts = parts[1:]  # the Keras model name: tf_bert_for_pre_training, tf_bert_model_1, ...
    elif not drop_model_level and find_root:
        # No grouping (a walk over the datasets): start at the first known root segment.
        for i, p in enumerate(parts):
            if p in HEAD_ROOTS or p in BASE_SEGMENTS:
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


def read_tf2(files: list[str]) -> list[tuple[str, torch.Tensor, str]]:
    """(PyTorch name, tensor, source) of each weight of a TF 2 checkpoint (one ``.h5`` file or its shards)."""
    h5py = require("h5py", "a TF 2 checkpoint (tf_model.h5)")
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
            except Corrupt as e:
                raise OSError(f"{path}: {e}") from None
            except Exception as e:  # h5py's own errors (OSError, KeyError, UnicodeError...) name no file
                raise OSError(f"{path}: damaged HDF5 (tf_model.h5) file ({type(e).__name__}: {e})") from None
            if not entries:
                raise OSError(f"{path}: no weights found: is it a transformers TF 2 (Keras) checkpoint?")
            seen: set[str] = set()
            for group_name, weight_name, dataset, parts in entries:
                label = f"{group_name}/{weight_name}" if group_name else weight_name
                source = f"{path}: {label}"
                tensor = _h5_tensor(dataset, path, label)
                pt_name, tensor = map_keras_or_flax(parts, tensor, source)
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
                raise Corrupt(f"layer {layer!r} is listed but not stored (truncated file?)")
            obj = root[layer]
            if isinstance(obj, h5py.Dataset):  # sharded layout: datasets named by weight, no model level
                entries.append(("", layer, obj, _keras_name(layer, drop_model_level=False, find_root=False)))
                continue
            weight_names = _h5_attr_list(obj, "weight_names") or []
            for weight_name in weight_names:
                if weight_name not in obj:
                    raise Corrupt(f"tensor {layer}/{weight_name} is listed but not stored (truncated file?)")
                entries.append(
                    (layer, weight_name, obj[weight_name], _keras_name(weight_name, drop_model_level=True))
                )

    # The embeddings' own group first, so a head group's duplicated copy is the one dropped.
    def rank(entry):
        group, _, _, parts = entry
        own = bool(group) and bool(parts) and _keras_name(group + "/x", drop_model_level=False)[0] == parts[0]
        return 0 if own or not group else 1

    return sorted(entries, key=rank)
