"""``from_pretrained`` / ``save_pretrained`` for the model classes (which this module never imports: the
class to build is the one ``from_pretrained`` is called on).

Weights come from a local folder or a hub id (``huggingface_hub``): ``model.safetensors`` first, then a
sharded ``model.safetensors.index.json``, then ``pytorch_model.bin`` (and its index), loaded with
``weights_only=True``; then, with no PyTorch weights, TF 2 / Flax / Google TF1 checkpoints
(``fastbert.legacy``). Keys are renamed as transformers does: legacy ``gamma``/``beta``, the ``bert.``
prefix added or stripped between base and head models. Missing and unexpected keys are reported like
transformers; heads that are not in the checkpoint are initialised with ``initializer_range``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from typing import Any

import torch
from torch import nn

from .config import BertConfig, check_attn_implementation
from .hub import (
    HubOptions,
    config_source,
    folder_looked_in,
    hub_unavailable,
    push_folder,
    resolve_file,
    token_or_legacy,
    weight_file_variant,
    weight_files,
)
from .output_files import output_name

logger = logging.getLogger("fastbert")

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"


def add_variant(weights_name: str, variant: str | None = None) -> str:
    """transformers' ``_add_variant``: ``model.safetensors`` with variant ``fp16`` is ``model.fp16.safetensors``
    (``model.safetensors.index.json`` → ``model.safetensors.index.fp16.json``)."""
    if variant:
        path, ext = weights_name.rsplit(".", 1)
        weights_name = f"{path}.{variant}.{ext}"
    return weights_name


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
    "double": torch.float64,
}


def parse_dtype(dtype: Any) -> torch.dtype | str | None:
    """A floating-point torch dtype from a dtype, a name in any case ("float16", "bf16", "BF16",
    "torch.float16") or "auto" (the one parser of ``from_pretrained(torch_dtype=)`` and
    ``accelerate(dtype=)``); ValueError for anything else, an integer dtype included."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(
                f"dtype {dtype} is not a floating-point dtype: the weights load as float32, float16 or "
                "bfloat16 (int8 weights are quantization='int8', from float32)"
            )
        return dtype
    if isinstance(dtype, str):
        name = dtype.lower().removeprefix("torch.")
        if name == "auto":
            return "auto"
        if name in _DTYPES:
            return _DTYPES[name]
    raise ValueError(
        f"unknown dtype {dtype!r}: use a torch dtype, 'auto', or one of float32, float16 (fp16), bfloat16 (bf16)"
    )


def parse_device_map(device_map: Any) -> torch.device | None:
    """transformers' ``device_map`` for a model that fits one device: "auto", "cpu", "cuda", "cuda:1", an int,
    a torch.device, or a dict that maps every module to one device."""
    if device_map is None:
        return None
    if isinstance(device_map, dict):
        devices = set(device_map.values())
        if len(devices) != 1:
            raise ValueError(
                "fastbert places the whole model on one device: device_map must map every module to the same device"
            )
        device_map = devices.pop()
    if device_map == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device_map, int):
        return torch.device("cuda", device_map)
    if device_map in ("balanced", "balanced_low_0", "sequential"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device_map)
    if device.type == "meta":  # the weights would be read and dropped (transformers refuses it too)
        raise ValueError(
            "device_map='meta' loads no weights: build the model on the meta device with "
            "torch.device('meta') and from_config instead"
        )
    return device


# --------------------------------------------------------------------------------------------- reading files
def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """Tensors of one checkpoint file (safetensors or a torch pickle), with a clear error when corrupt."""
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise OSError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except Exception as e:  # pickle errors, zip errors, EOF: all mean a damaged or foreign file
        raise OSError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {e}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OSError(f"{path} does not hold a state dict of tensors")
    return state


def _load_sharded(index_file: str, path_or_id: str, hub: HubOptions) -> dict[str, torch.Tensor]:
    """The tensors of the shards a sharded checkpoint's index names, as transformers 5 reads them: what the
    shards hold is loaded; a tensor the index lists that no shard holds is not an error (a weight of the model
    is then reported missing and initialised, as transformers 5); a shard file that is not in a local folder is
    a ``FileNotFoundError`` naming it, one of a hub id :func:`resolve_file`'s error (not in the cache, not in
    the repository)."""
    weight_map = read_weight_map(index_file)
    state: dict[str, torch.Tensor] = {}
    for shard_path in _shard_files(index_file, path_or_id, hub, weight_map):
        state.update(load_state_dict_file(shard_path))
    absent = sorted(set(weight_map) - set(state))
    if absent:  # transformers 5 says nothing of them; the model's own are reported missing by loading
        logger.warning(
            "%s lists %d tensor(s) that none of its shards holds: %s%s",
            index_file,
            len(absent),
            absent[:5],
            " ..." if len(absent) > 5 else "",
        )
    return state


def _shard_files(
    index_file: str, path_or_id: str, hub: HubOptions, weight_map: dict[str, str] | None = None
) -> list[str]:
    """The local paths of the shards a sharded checkpoint's index names (a hub id's fetched): a shard file that
    is not in a local folder is a ``FileNotFoundError`` naming it, one of a hub id :func:`resolve_file`'s
    error (not in the cache, not in the repository)."""
    weight_map = read_weight_map(index_file) if weight_map is None else weight_map
    local = os.path.isdir(path_or_id)
    paths = []
    for shard in sorted(set(weight_map.values())):
        # of a hub id, resolve_file's own error: a shard not in the cache (offline) or not in the repository
        shard_path = resolve_file(path_or_id, shard, hub, required=not local)
        if shard_path is None:
            raise FileNotFoundError(
                f"{os.path.join(os.path.dirname(index_file), shard)}: shard {shard} listed in "
                f"{os.path.basename(index_file)} is missing (no such file)"
            )
        paths.append(shard_path)
    return paths


def _pytorch_weights_file(
    path_or_id: str, hub: HubOptions, use_safetensors: bool | None, variant: str | None
) -> tuple[str, bool] | None:
    """(the local path, whether it is a sharded index) of the PyTorch checkpoint ``from_pretrained`` reads,
    by transformers 4's order of preference (a hub id's fetched); None when there is none."""
    candidates = []
    if use_safetensors is not False:
        candidates += [(SAFE_WEIGHTS_NAME, False), (SAFE_WEIGHTS_INDEX_NAME, True)]
    if use_safetensors is not True:
        candidates += [(WEIGHTS_NAME, False), (WEIGHTS_INDEX_NAME, True)]
    for name, sharded in candidates:
        path = resolve_file(path_or_id, add_variant(name, variant), hub, required=False)
        if path is not None:
            return path, sharded
    return None


def fetch_weight_files(
    path_or_id: str, hub: HubOptions, *, use_safetensors: bool | None = None, variant: str | None = None
) -> list[str]:
    """The local paths of the checkpoint files :func:`find_and_load_weights` reads, without reading them: a
    hub id's are fetched into the hub cache (only those, not the rest of the repository), so that the cache
    snapshot's folder loads as a local one. The PyTorch weights (an index with its shards), else a legacy
    (TF / Flax) checkpoint's files; ``[]`` when there are none (loading the folder then says so)."""
    found = _pytorch_weights_file(path_or_id, hub, use_safetensors, variant)
    if found is not None:
        path, sharded = found
        return [path, *_shard_files(path, path_or_id, hub)] if sharded else [path]
    from . import legacy

    legacy_found = legacy.find_legacy_checkpoint(path_or_id, hub=hub)
    return list(legacy_found[1]) if legacy_found is not None else []


_SAFETENSORS_FLOATS = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}


def saved_weights_dtype(folder: str) -> torch.dtype | None:
    """The one floating dtype of a local folder's safetensors weights (``model.safetensors`` or the shards its
    index names), read from their headers, not their tensors: what ``torch_dtype="auto"`` loads where
    config.json names no dtype. None where that is not known without loading (no such files, ``.bin``
    weights, several floating dtypes: loading decides)."""
    single = os.path.join(folder, SAFE_WEIGHTS_NAME)
    index = os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME)
    try:
        if os.path.isfile(single):
            files = [single]
        elif os.path.isfile(index):
            files = [os.path.join(folder, n) for n in sorted(set(read_weight_map(index).values()))]
        else:
            return None
        found = set()
        for name in files:
            with open(name, "rb") as f:
                size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(size))
            found |= {
                _SAFETENSORS_FLOATS.get(v.get("dtype")) for k, v in header.items() if k != "__metadata__"
            }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def read_weight_map(index_file: str) -> dict[str, str]:
    """A sharded checkpoint's index (PyTorch, safetensors, TF 2 h5, Flax): its ``weight_map`` (tensor name ->
    shard file), checked: an ``OSError`` naming the index when it is not one, or when a shard is a path out of
    the model's folder."""
    try:
        with open(index_file, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise OSError(f"{index_file} is not a valid checkpoint index: {e}") from e
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise OSError(
            f"{index_file} is not a valid checkpoint index: its weight_map is not a name -> file mapping"
        )
    # an index naming no shard would load a model of random weights (transformers 5.25: an IndexError)
    if not weight_map:
        raise OSError(
            f"{index_file} is not a valid checkpoint index: its weight_map is empty (it names no shard)"
        )
    for shard in set(weight_map.values()):
        # as transformers 5: a shard is a file of the model's folder, never a path out of it
        if os.path.isabs(shard) or ".." in shard.replace("\\", "/").split("/"):
            raise OSError(f"{index_file} lists shard {shard!r}, which points outside the model directory")
    return weight_map


def find_and_load_weights(
    path_or_id: str,
    hub: HubOptions,
    *,
    use_safetensors: bool | None = None,
    from_tf: bool = False,
    from_flax: bool = False,
    variant: str | None = None,
) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, by transformers 4's order of preference (with ``from_tf``/``from_flax``,
    those formats first, then PyTorch weights when the folder has none of them, as transformers 4).
    ``variant`` ("fp16", ...) reads ``model.<variant>.safetensors`` and the like, as transformers."""

    def pytorch_weights():
        found = _pytorch_weights_file(path_or_id, hub, use_safetensors, variant)
        if found is None:
            return None
        path, sharded = found
        return _load_sharded(path, path_or_id, hub) if sharded else load_state_dict_file(path)

    if not (from_tf or from_flax):
        state = pytorch_weights()
        if state is not None:
            return state
    where = folder_looked_in(path_or_id, hub)
    if variant:  # transformers reads no TF/Flax variant: name the files that were looked for
        names = [add_variant(n, variant) for n in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME,
                                                   WEIGHTS_INDEX_NAME)]  # fmt: skip
        if use_safetensors is True:
            names = names[:2]
        elif use_safetensors is False:
            names = names[2:]
        raise OSError(
            f"{where} has no weights of variant {variant!r}: no file named {', '.join(names)}"
            + _variant_hint(where, variant)
        )
    from . import legacy  # the readers import their optional packages ([legacy]) only when used

    # as transformers: use_safetensors=True reads safetensors only (a TF / Flax checkpoint loads with its flag)
    only_safetensors = use_safetensors is True and not (from_tf or from_flax)
    found = (
        None
        if only_safetensors
        else legacy.find_legacy_checkpoint(path_or_id, from_tf=from_tf, from_flax=from_flax, hub=hub)
    )
    if found is not None:
        kind, files = found
        return legacy.load_legacy_checkpoint(kind, files)
    if from_tf or from_flax:
        state = pytorch_weights()
        if state is not None:
            return state
    reason = None if os.path.isdir(path_or_id) else hub_unavailable(hub)
    if from_tf != from_flax and (os.path.isdir(path_or_id) or reason is not None):
        # the folder (or a hub id's local cache: nothing is downloaded for this) holds the other kind: the flag
        # that loads it (transformers 4: "there is a file for Flax weights. Use `from_flax=True`"), not "holds
        # no model weights"
        other = legacy.find_legacy_checkpoint(path_or_id, hub=hub)
        if other is not None:
            asked, wanted = ("from_tf", "TensorFlow") if from_tf else ("from_flax", "Flax")
            flag = "from_flax" if other[0] == "flax" else "from_tf"
            cached = "" if reason is None else " in the local cache"
            raise OSError(
                f"{where} holds no {wanted} checkpoint or PyTorch weights ({asked}=True), but holds "
                f"{os.path.basename(other[1][0])}{cached}: pass {flag}=True to load it"
            )
    if reason is not None:  # a hub id whose weights are not cached: "holds no weights" would mislead
        raise OSError(
            f"{path_or_id!r} is not a local folder, and its weights are not in the local cache ({reason}): "
            "pass a local folder that holds the model"
        )
    if use_safetensors is not None and os.path.isdir(path_or_id):
        wanted = (
            (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)
            if use_safetensors
            else (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
        )
        other = (
            (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
            if use_safetensors
            else (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)
        )
        held = [n for n in other if os.path.isfile(os.path.join(where, n))]
        if held:
            raise OSError(
                f"{where} has no {' or '.join(wanted)} (use_safetensors={use_safetensors}), but holds "
                f"{held[0]}: pass use_safetensors={not use_safetensors} (or None) to load it"
            )
        other_kind = legacy.find_legacy_checkpoint(path_or_id, hub=hub) if only_safetensors else None
        if other_kind is not None:
            flag = "from_flax" if other_kind[0] == "flax" else "from_tf"
            raise OSError(
                f"{where} has no {' or '.join(wanted)} (use_safetensors=True), but holds "
                f"{os.path.basename(other_kind[1][0])}: pass {flag}=True (or use_safetensors=None) to load it"
            )
    raise OSError(
        f"{where} holds no model weights: expected {SAFE_WEIGHTS_NAME}, {WEIGHTS_NAME} (or their sharded "
        "index), tf_model.h5, flax_model.msgpack or a Google bert_model.ckpt" + _variant_hint(where, None)
    )


def _variant_hint(folder: str, variant: str | None) -> str:
    """Where a local folder has no PyTorch weights of ``variant`` but has those of another (or of none): the
    sentence that names one and the ``variant`` that loads it ("" otherwise)."""
    other = sorted(  # an index before its shards
        (
            name
            for name in weight_files(folder)
            if name.endswith((".safetensors", ".bin", ".json")) and weight_file_variant(name) != variant
        ),
        key=lambda name: "-of-" in name,
    )
    if not other:
        return ""
    return f"; it holds {other[0]}: pass variant={weight_file_variant(other[0])!r} to load it"


class CheckpointShapeError(RuntimeError, ValueError):
    """A checkpoint tensor of another shape than the model's: the ``RuntimeError`` transformers raises, and a
    ``ValueError`` (what fastbert raised before, and what its CLI reports in one line)."""


# --------------------------------------------------------------------------------------------- key mapping
def rename_legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old checkpoints name LayerNorm parameters gamma/beta."""
    out = {}
    for key, value in state.items():
        if key.endswith(".gamma"):
            key = key[: -len(".gamma")] + ".weight"
        elif key.endswith(".beta"):
            key = key[: -len(".beta")] + ".bias"
        out[key] = value
    return out


def adapt_prefix(state: dict[str, torch.Tensor], model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """Add or strip the ``bert.`` prefix so a base checkpoint loads in a head model and the reverse, key by key
    as transformers 5: a name is renamed only when the renamed one is the model's; the others (a head's own
    tensors in the base model, a tensor the model has not) keep their names, and are reported as unexpected.
    (Decided once for the whole checkpoint, one stray ``bert.`` name in a base checkpoint left every tensor of a
    head model unloaded.)"""
    model_keys = set(model.state_dict().keys())
    dot = prefix + "."
    out = {}
    for key, value in state.items():
        if key.startswith(dot) and key[len(dot) :] in model_keys:
            new = key[len(dot) :]
        elif dot + key in model_keys:
            new = dot + key
        else:
            new = key
        if new != key and new in state:  # the checkpoint also holds the name itself: that tensor is loaded
            new = key
        out[new] = value
    return out


def load_into_model(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    ignore_mismatched_sizes: bool = False,
    source: str = "",
) -> dict[str, Any]:
    """Copy a checkpoint into ``model``; returns transformers 5's loading info: ``missing_keys`` and
    ``unexpected_keys`` (sets of names), ``mismatched_keys`` (a set of (name, checkpoint shape, model
    shape)), ``error_msgs`` (a list). A tensor of the wrong shape raises RuntimeError (as transformers)
    unless ``ignore_mismatched_sizes``: then it is left to initialisation and listed as mismatched."""
    sources = getattr(state, "sources", {})  # legacy readers say which file and tensor each key came from
    state = rename_legacy_keys(state)
    state = adapt_prefix(state, model, model.base_model_prefix)
    prefix = model.base_model_prefix + "."

    def origin(key: str) -> str:
        src = sources.get(key) or sources.get(prefix + key) or sources.get(key.removeprefix(prefix))
        return f" (from {src})" if src else ""

    expected = model.state_dict()
    tied = dict(getattr(model, "_tied_weights_keys", {}) or {})
    ties_embeddings = getattr(getattr(model, "config", None), "tie_word_embeddings", True)
    missing: set[str] = set()
    mismatched: set[tuple[str, torch.Size, torch.Size]] = set()
    loaded = set()
    errors = []
    for key, param in expected.items():
        if key not in state:
            missing.add(key)
            continue
        value = state[key]
        if value.shape != param.shape:
            mismatched.add((key, value.shape, param.shape))
            errors.append(
                f"size mismatch for {key}{origin(key)}: the checkpoint has shape {tuple(value.shape)}, the "
                f"model (from its config) expects {tuple(param.shape)}"
            )
            continue
        loaded.add(key)
    # a tied tensor is filled by its target (transformers: "already filled by another key"): missing only when
    # the target is missing too, or when the tie is off (an untied decoder weight; an untied decoder bias is
    # filled from the head's bias, as transformers 4 shared the two). A target of another shape that
    # ignore_mismatched_sizes re-initialises (a new vocab_size) is reported as mismatched, and the key tied to
    # it shares that tensor: not missing either, as transformers reports it
    mismatched_names = {k for k, _, _ in mismatched}
    for key in [k for k in missing if k in tied]:
        if tied[key] in loaded and (ties_embeddings or key.endswith("bias")):
            missing.discard(key)
        elif tied[key] in mismatched_names and ties_embeddings:
            missing.discard(key)
    # and the other way (transformers 5): with the tie on, a target the checkpoint lacks takes the value of
    # the key tied to it (a checkpoint holding cls.predictions.decoder.bias but not cls.predictions.bias:
    # tie_weights() makes the decoder share the target afterwards, which would drop the loaded value)
    fill_from: dict[str, str] = {}
    for key, target in tied.items():
        if (
            ties_embeddings
            and target in missing
            and key in loaded
            and state[key].shape == expected[target].shape
        ):
            missing.discard(target)
            fill_from[target] = key
    if errors and not ignore_mismatched_sizes:
        raise CheckpointShapeError(
            f"Error(s) in loading state_dict for {type(model).__name__} from {source or 'the checkpoint'}:\n\t"
            + "\n\t".join(errors)
            + "\n\tpass ignore_mismatched_sizes=True to re-initialise these tensors"
        )
    unexpected = {
        k for k in state if k not in expected and not k.endswith(("position_ids", "token_type_ids"))
    }
    with torch.no_grad():  # the state dict's tensors are views of the parameters: copying fills them
        for name in loaded:
            expected[name].copy_(state[name])
        for target, key in fill_from.items():
            expected[target].copy_(state[key])
    return {
        "missing_keys": missing,
        "unexpected_keys": unexpected,
        "mismatched_keys": mismatched,
        "error_msgs": [],
    }


# --------------------------------------------------------------------------------------------- the mixin
class PreTrainedMixin:
    """``from_pretrained`` / ``save_pretrained`` for the BERT classes (mixed into BertPreTrainedModel)."""

    base_model_prefix = "bert"

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        config: BertConfig | str | None = None,
        torch_dtype: Any = None,
        dtype: Any = None,
        device_map: Any = None,
        attn_implementation: str | None = None,
        output_loading_info: bool = False,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        subfolder: str = "",
        hub: HubOptions | None = None,
        use_safetensors: bool | None = None,
        from_tf: bool = False,
        from_flax: bool = False,
        ignore_mismatched_sizes: bool = False,
        state_dict: dict[str, torch.Tensor] | None = None,
        low_cpu_mem_usage: bool | None = None,
        trust_remote_code: bool | None = None,
        quantization: str | None = None,
        variant: str | None = None,
        key_mapping: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        """Load a model from a folder or hub id, like transformers' ``from_pretrained``.

        ``hub`` (a :class:`fastbert.hub.HubOptions`) may replace the five hub keywords (revision,
        cache_dir, local_files_only, token, subfolder). ``quantization="int8"`` (or ``"fp8"`` on CUDA
        sm_89+): quantize after loading (:func:`fastbert.quantize`, calibrated with the tokenizer of the
        folder or hub id, looked up with the same hub options before any weight is read; the checkpoint is
        not changed). ``key_mapping`` ({regex: replacement}) renames the checkpoint's tensors before they are
        matched to the model, as transformers 5: every pattern in turn, on its first match in each name."""
        from .quant import check_quantization

        quantization = check_quantization(quantization)  # a bad value fails before anything loads
        key_mapping = _check_key_mapping(key_mapping)
        if pretrained_model_name_or_path is None and (config is None or state_dict is None):
            # as transformers: None loads from config= and state_dict= alone ("None" was looked up on the hub)
            raise ValueError(
                f"{cls.__name__}.from_pretrained(None) needs both config= and state_dict=: there is no folder or "
                "hub id to read the missing one from"
            )
        path = str(pretrained_model_name_or_path)
        token = token_or_legacy(token, kwargs)  # transformers 4's use_auth_token, removed from kwargs
        if hub is None:
            hub = HubOptions(revision, cache_dir, local_files_only, token, subfolder)
        # as transformers: a folder or hub id holding an adapter (adapter_config.json) loads the base model it
        # names (or its own, beside it), then the adapter into it
        adapter_name = kwargs.pop("adapter_name", None) or "default"
        adapter_kwargs = kwargs.pop("adapter_kwargs", None) or {}
        adapter = None
        if state_dict is None and pretrained_model_name_or_path is not None:
            from .adapters import find_adapter

            adapter, path = find_adapter(path, hub)
        for key in _LOADING_ONLY_KWARGS:  # transformers' download / placement options: nothing to configure
            kwargs.pop(key, None)
        _pop_unsupported(cls, kwargs)
        config_class = getattr(cls, "config_class", BertConfig)
        if config is None:
            location, config_hub = config_source(path, hub)  # a file's config beside it, not in a subfolder
            config = config_class.from_pretrained(location, hub=config_hub)
        elif isinstance(config, (str, os.PathLike)):
            config = config_class.from_pretrained(config, hub=hub)
        else:  # a copy, of the config's own class when it is of this family (XLMRobertaConfig for Roberta*)
            own = type(config) if isinstance(config, config_class) else config_class
            given = config
            config = own.from_dict(config.to_dict(), _attn_implementation=config._attn_implementation)
            # read by AutoModel* from the folder's config.json; labels set on the config since are the ones asked
            said = given.__dict__
            if "_labels_in_file" in said and given.id2label == said.get("_labels_in_file_replaced_by"):
                config._labels_in_file = given._labels_in_file
                config._labels_in_file_replaced_by = dict(config.id2label)
        # as transformers: a keyword that is not a config field but an argument of the class
        # (``BertModel.from_pretrained(path, add_pooling_layer=False)``) goes to the model, the rest to the config
        model_args = _model_args(cls, config, model_args, kwargs)
        # the labels the caller gives (num_labels, id2label) are the ones asked for: no retry with the file's
        asked = "num_labels" in kwargs or "id2label" in kwargs
        labels_in_file = None if asked else config.__dict__.get("_labels_in_file")
        # config overrides, as transformers (the config's rule: DistilBERT's takes no unmapped BERT name)
        for key in config._apply_overrides(kwargs):
            # transformers passes it to the class, which refuses it: a typo never reaches the config
            raise TypeError(
                f"{cls.__name__}.from_pretrained() got an unexpected keyword argument {key!r}: neither a "
                f"field of {type(config).__name__} nor an argument of {cls.__name__}"
            )
        if attn_implementation is None:  # the config's own choice (BertConfig(attn_implementation=...))
            attn_implementation = config._attn_implementation
        config._attn_implementation = check_attn_implementation(attn_implementation)
        pruned = getattr(config, "pruned_heads", None)
        if pruned:  # transformers 4's prune_heads: its smaller attention matrices fit no fastbert layer
            raise ValueError(
                f"{path}: config.json has pruned_heads {dict(pruned)} (saved after transformers 4's "
                "prune_heads): fastbert has no pruned attention heads; load it with transformers 4"
            )

        # both given: ``dtype`` wins, as transformers (``torch_dtype`` is its deprecated name)
        torch_dtype = parse_dtype(dtype if dtype is not None else torch_dtype)
        device = parse_device_map(device_map)
        if device is not None and device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device_map={device_map!r} asks for CUDA, but torch.cuda.is_available() is False"
            )
        from .quant import calibration_tokenizer, check_quantization_device

        # fp8 where it cannot run, int8 on the CPU in another dtype than fp32, a quantization without a
        # tokenizer to calibrate with: refused before the weights are read
        known_dtype = config.torch_dtype if torch_dtype == "auto" else torch_dtype
        check_quantization_device(quantization, device, known_dtype)
        quant_tokenizer = None
        if quantization is not None:
            quant_tokenizer = calibration_tokenizer(
                path, hub.as_kwargs(), from_pretrained=True, method=quantization
            )

        if state_dict is None:
            state_dict = find_and_load_weights(
                path,
                hub,
                use_safetensors=use_safetensors,
                from_tf=from_tf,
                from_flax=from_flax,
                variant=variant,
            )
        if key_mapping:
            state_dict = apply_key_mapping(state_dict, key_mapping)
        if torch_dtype == "auto":
            torch_dtype = config.torch_dtype if isinstance(config.torch_dtype, torch.dtype) else None
            if torch_dtype is None:
                torch_dtype = next(
                    (v.dtype for v in state_dict.values() if v.is_floating_point()), torch.float32
                )
                # config.json named no dtype: the weights' is known now, before the model is built
                check_quantization_device(quantization, device, torch_dtype)
        torch_dtype = torch_dtype or torch.float32
        from .quant.dtypes import warn_if_emulated

        warn_if_emulated(torch_dtype, device)

        model = cls._build(config, model_args, torch_dtype, device)
        try:
            info = load_into_model(
                model, state_dict, ignore_mismatched_sizes=ignore_mismatched_sizes, source=path
            )
        except CheckpointShapeError as mismatch:
            # config.json's num_labels and id2label disagree and the head fits neither num_labels: the head
            # has id2label's count (transformers 4 kept id2label): those labels, if the checkpoint fits them
            if labels_in_file is None:
                raise
            said = config.id2label, config.label2id
            config.id2label = dict(labels_in_file)
            config.label2id = {v: k for k, v in labels_in_file.items()}
            try:
                model = cls._build(config, model_args, torch_dtype, device)
                info = load_into_model(
                    model, state_dict, ignore_mismatched_sizes=ignore_mismatched_sizes, source=path
                )
            except CheckpointShapeError:  # the head fits id2label's count neither: the mismatch as declared
                config.id2label, config.label2id = said
                raise mismatch from None
            warnings.warn(
                f"{path}: the checkpoint's head has {len(labels_in_file)} outputs, as config.json's id2label: "
                f"loading it with those labels ({', '.join(map(str, labels_in_file.values()))}), as transformers 4",
                stacklevel=2,
            )
        del state_dict
        model.tie_weights()
        # weights the checkpoint did not have (or had with another shape) are freshly initialised
        uninitialised = info["missing_keys"] | {k for k, _, _ in info["mismatched_keys"]}
        _init_missing(model, uninitialised)
        model._mark_initialised()  # init_weights() after loading initialises only modules added later
        if uninitialised:
            logger.warning(
                "Some weights of %s were not initialized from the checkpoint at %s and are newly initialized: %s\n"
                "You should probably TRAIN this model on a down-stream task to be able to use it for predictions "
                "and inference.",
                cls.__name__,
                path,
                sorted(uninitialised),
            )
        kind = getattr(config, "position_embedding_type", None)
        tables = [n for n, _ in model.named_parameters() if n.endswith("distance_embedding.weight")]
        if kind in ("relative_key", "relative_key_query") and tables and set(tables) <= uninitialised:
            # what transformers 5 writes for such a config: it builds no distance table and runs absolute positions
            logger.warning(
                "%s: config.json says position_embedding_type=%r but the checkpoint has no distance_embedding "
                "weights: they are random. transformers 5 ignores relative positions and runs such a model with "
                "absolute ones (a model it trained learned those); to get its numbers, load with "
                "position_embedding_type='absolute'",
                path,
                kind,
            )
        if info["unexpected_keys"]:
            logger.warning(
                "Some weights of the checkpoint at %s were not used when initializing %s: %s",
                path,
                cls.__name__,
                sorted(info["unexpected_keys"]),
            )
        model.config.torch_dtype = torch_dtype
        model.config._name_or_path = path
        model.name_or_path = path  # transformers sets the config's before building the model
        model._read_generation_config(*config_source(path, hub))
        model.eval()
        if adapter is not None:
            given = {k: v for k, v in hub.as_kwargs().items() if v not in (None, "", False)}
            model.load_adapter(adapter, adapter_name=adapter_name, adapter_kwargs=adapter_kwargs, **given)
        if quantization is not None:
            # after the adapter: calibrated with it, the linears it wraps kept (and said so)
            from .quant import quantize

            quantize(model, quantization, tokenizer=quant_tokenizer)
        return (model, info) if output_loading_info else model

    def _read_generation_config(self, path: str, hub: HubOptions) -> None:
        """A model that generates reads the checkpoint's ``generation_config.json`` here (GenerationMixin)."""

    @classmethod
    def _build(cls, config, model_args, dtype, device):
        """The model with uninitialised storage on the target device (no time spent on random init)."""
        with torch.device("meta"):
            model = cls(config, *model_args)
        target = device or torch.device("cpu")

        def storage(t: torch.Tensor) -> torch.Tensor:
            # what to_empty(device=target).to(dtype) gives, in one allocation; to_empty's empty_like on a meta
            # tensor imports sympy (about 0.6 s on a 2-core machine)
            return torch.empty(t.shape, dtype=dtype if t.is_floating_point() else t.dtype, device=target)

        model = model._apply(storage)
        # non-persistent buffers are not in checkpoints: rebuild them
        for module in model.modules():
            if hasattr(module, "position_ids") and isinstance(module.position_ids, torch.Tensor):
                n = module.position_ids.shape[-1]
                module.position_ids.copy_(torch.arange(n, device=module.position_ids.device).expand(1, -1))
                module.token_type_ids.zero_()
        return model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None,
        *,
        save_function: Any = None,
        safe_serialization: bool = True,
        max_shard_size: int | str | None = "5GB",
        variant: str | None = None,
        push_to_hub: bool = False,
        save_peft_format: bool = True,
        save_original_format: bool = True,
        distributed_checkpoint: bool = False,
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) that transformers loads.

        As transformers: ``max_shard_size`` (bytes or "10MB"; default "5GB", transformers 4's) splits bigger
        weights into ``model-00001-of-0000N.safetensors`` shards with a ``model.safetensors.index.json`` (and
        removes the shards of an earlier save that this one does not rewrite); ``variant`` names the files
        ``model.<variant>.safetensors``; ``save_function`` (transformers 4's, e.g. ``accelerator.save``; default
        ``torch.save``) writes each ``.bin`` file (``safe_serialization=False``; safetensors files are written by
        safetensors, as transformers 4); ``is_main_process=False`` (the other processes of a distributed run)
        writes nothing. ``push_to_hub=True`` then uploads the folder with huggingface_hub (``repo_id``, default
        the folder's name; ``commit_message``, ``private``, ``token``, ``create_pr``, ``revision``).

        transformers 5's ``save_peft_format`` and ``save_original_format`` are taken, and change nothing (as in
        transformers for a model without PEFT adapters or converted weights: the files are the same);
        ``distributed_checkpoint=True`` is refused, as transformers refuses it for a model that is not FSDP- or
        TP-sharded. (transformers 5 ignores ``safe_serialization=False``; fastbert writes the ``.bin`` as 4.)

        With PEFT adapters loaded (``load_adapter`` / ``add_adapter``), as transformers: only the active adapter
        is written, ``adapter_model.safetensors`` (``.bin`` with ``safe_serialization=False``) and
        ``adapter_config.json``, its keys prefixed with ``base_model.model.`` as a PeftModel's
        (``save_peft_format=True``, the default); no config.json, no base weights."""
        del save_original_format  # no converted weights: nothing to change
        if distributed_checkpoint:
            raise ValueError(
                "save_pretrained(distributed_checkpoint=True) writes an FSDP- or TP-sharded model's checkpoint: "
                f"fastbert's {type(self).__name__} is not sharded; save it with distributed_checkpoint=False"
            )
        hub_args = {k: kwargs.pop(k) for k in PUSH_KEYS if k in kwargs}
        if kwargs:
            raise TypeError(f"save_pretrained() got unexpected keyword arguments {sorted(kwargs)}")
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory!r} is a file, not a folder")
        max_shard_size = _check_max_shard_size(max_shard_size)  # before config.json is written over a save
        os.makedirs(save_directory, exist_ok=True)
        if not is_main_process:
            return
        if getattr(self, "_hf_peft_config_loaded", False):
            from .adapters import save_adapter

            save_adapter(self, save_directory, state_dict, safe_serialization, save_peft_format)
            if push_to_hub:
                push_folder(save_directory, **hub_args)
            return
        config = type(self.config).from_dict(self.config.to_dict())
        config.architectures = [type(self).__name__]
        config.torch_dtype = self.dtype
        config.save_pretrained(save_directory)
        state = dict(state_dict if state_dict is not None else self.state_dict())  # the caller's dict is kept
        # tied tensors are written once, as transformers does (only when they are tied). With
        # tie_word_embeddings False transformers 5 ties nothing when it loads: a tensor shared under two names
        # (an MLM head's two biases after set_output_embeddings / resize_token_embeddings) is written under
        # both, else transformers 5 loads that key as missing (a zero decoder bias)
        tie = getattr(self.config, "tie_word_embeddings", True)
        for key, target in (getattr(self, "_tied_weights_keys", {}) or {}).items():
            if key in state and target in state and _same_tensor(state[key], state[target]):
                if tie:
                    del state[key]
                else:
                    state[key] = state[key].clone()  # safetensors refuses shared memory
        # a tensor that is a view of a larger storage (query/key/value, fused for one GEMM) is written as its
        # own tensor, as transformers' separate parameters are: the same shards, and no shared memory on disk
        state = {k: _own_storage(v.detach().cpu()) for k, v in state.items()}
        write_weights(
            state,
            save_directory,
            safe_serialization=safe_serialization,
            max_shard_size=max_shard_size,
            variant=variant,
            total_parameters=sum(p.numel() for p in self.parameters()),
            save_function=save_function,
        )
        if push_to_hub:
            push_folder(save_directory, **hub_args)


#: save_pretrained's keywords that push_to_hub=True passes to the upload
PUSH_KEYS = ("repo_id", "commit_message", "commit_description", "private", "token", "create_pr", "revision")


def push_saved(save_directory: str | os.PathLike, kwargs: dict[str, Any]) -> Any:
    """Upload a saved folder (:func:`fastbert.hub.push_folder`) with the upload keywords among ``kwargs`` (a
    ``save_pretrained`` call's): for savers that write more files after the model's own (a generation config,
    a pipeline's tokenizer) and push once all are written."""
    return push_folder(save_directory, **{k: v for k, v in kwargs.items() if k in PUSH_KEYS})


def _check_max_shard_size(max_shard_size: Any) -> int | str | None:
    """``max_shard_size`` as transformers takes it (None, bytes, or a size such as "10MB"; bytes as a float
    with a whole value, ``1e9``, as an int); another value is refused before anything is written
    (huggingface_hub refused it only once the config was saved)."""
    if isinstance(max_shard_size, float) and max_shard_size.is_integer():  # transformers takes 1e9 as bytes
        return int(max_shard_size)
    if max_shard_size is None or (isinstance(max_shard_size, int) and not isinstance(max_shard_size, bool)):
        return max_shard_size
    if not isinstance(max_shard_size, str):
        raise TypeError(
            f"max_shard_size must be a number of bytes or a size such as '5GB', got {max_shard_size!r}"
        )
    from huggingface_hub.serialization._base import parse_size_to_int

    parse_size_to_int(max_shard_size)  # its ValueError names the unit it does not know
    return max_shard_size


def write_weights(
    state: dict[str, torch.Tensor],
    save_directory: str | os.PathLike,
    *,
    safe_serialization: bool = True,
    max_shard_size: int | str | None = "5GB",
    variant: str | None = None,
    total_parameters: int | None = None,
    save_function: Any = None,
) -> list[str]:
    """Write ``state`` as transformers' ``save_pretrained`` does (one file, or shards of at most
    ``max_shard_size`` and an index, named with ``variant``; a ``.bin`` file by ``save_function(shard, path)``
    when given); returns the names of the files written."""
    import re

    from huggingface_hub import split_torch_state_dict_into_shards

    weights_name = add_variant(SAFE_WEIGHTS_NAME if safe_serialization else WEIGHTS_NAME, variant)
    pattern = weights_name.replace(".bin", "{suffix}.bin").replace(".safetensors", "{suffix}.safetensors")
    split = split_torch_state_dict_into_shards(
        state,
        filename_pattern=pattern,
        max_shard_size=max_shard_size if max_shard_size is not None else 2**62,
    )
    # shards of an earlier save that this one does not rewrite would be read with the new index: removed once
    # the new index is written (before, an interrupted save left the earlier index naming removed shards).
    # Only this save's own names: transformers' pattern (any "<stem>*-NNNNN-of-NNNNN") also removed the shards
    # of a variant saved beside (model.fp16-00001-of-00002.safetensors by a save without variant)
    stem = weights_name.replace(".bin", "").replace(".safetensors", "")
    shard_name = re.compile(re.escape(stem) + r"-\d{5}-of-\d{5}")
    stale = [
        path
        for filename in os.listdir(save_directory)
        if filename.startswith(stem)
        and os.path.isfile(path := os.path.join(save_directory, filename))
        and filename not in split.filename_to_tensors
        and shard_name.fullmatch(filename.replace(".bin", "").replace(".safetensors", "")) is not None
    ]
    written = list(split.filename_to_tensors)
    index_name = None
    if split.is_sharded:
        index_name = add_variant(
            SAFE_WEIGHTS_INDEX_NAME if safe_serialization else WEIGHTS_INDEX_NAME, variant
        )
        written.append(index_name)
    # each file is written beside its target, and all are renamed over their targets once the last one is
    # complete (the shards, then the index): a save interrupted half way leaves the earlier files. (Renamed one
    # by one as written, an interrupted save over an earlier one with as many shards left some new shards
    # among the earlier ones under the earlier index, a mix that loaded silently.)
    try:
        with contextlib.ExitStack() as renames:
            if index_name is not None:
                metadata = dict(split.metadata)
                if total_parameters is not None:
                    metadata["total_parameters"] = total_parameters
                index = {"metadata": metadata, "weight_map": split.tensor_to_filename}
                index_path = renames.enter_context(output_name(os.path.join(save_directory, index_name)))
                with open(index_path, "w", encoding="utf-8") as f:
                    f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
            for filename, names in split.filename_to_tensors.items():
                shard = {name: state[name] for name in names}
                path = renames.enter_context(output_name(os.path.join(save_directory, filename)))
                if safe_serialization:
                    from safetensors.torch import save_file

                    save_file(shard, path, metadata={"format": "pt"})
                elif save_function is not None:
                    save_function(shard, path)
                    if not os.path.getsize(path):  # accelerator.save off the main process
                        raise _NothingWritten
                else:
                    with open(path, "wb") as f:
                        torch.save(shard, f)
    except _NothingWritten:  # this process saves nothing: the earlier files stay, as transformers 4
        return []
    for path in stale:
        os.remove(path)
    _remove_shadowing_weights(str(save_directory), written[-1], variant, written)
    return written


class _NothingWritten(Exception):
    """A ``save_function`` wrote nothing (``accelerator.save`` on a process that does not save)."""


def _remove_shadowing_weights(folder: str, saved: str, variant: str | None, written: list[str]) -> None:
    """Weight files of an earlier save that loading prefers to ``saved`` (the file or index just written),
    removed with the shards their index names: after a single model.safetensors, a sharded save (or one
    with ``safe_serialization=False``) left it there, and ``from_pretrained`` (transformers' too) loaded the
    earlier weights from the folder, silently."""
    order = [add_variant(n, variant) for n in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME,
                                               WEIGHTS_INDEX_NAME)]  # fmt: skip
    for name in order[: order.index(saved)]:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if name.endswith(".json"):
            try:
                shards = set(read_weight_map(path).values())
            except OSError:  # not an index: its shards are not known, the file itself goes
                shards = set()
            for shard in shards:
                shard_path = os.path.join(folder, shard)
                if os.path.basename(shard) == shard and shard not in written and os.path.isfile(shard_path):
                    os.remove(shard_path)
        os.remove(path)


#: ``from_pretrained`` keywords of transformers about downloading and placing weights, which say nothing about
#: the model: accepted and not kept (they are no config fields; transformers never writes them to config.json)
_LOADING_ONLY_KWARGS = (
    "force_download",
    "resume_download",
    "proxies",
    "mirror",
    "offload_folder",
    "offload_state_dict",
    "offload_buffers",
    "max_memory",
    "_fast_init",
    "_from_auto",
    "_from_pipeline",
    "_commit_hash",
    "weights_only",
    "disable_mmap",
    "user_agent",
    "tqdm_class",
)

#: transformers 5 ``from_pretrained`` keywords of features fastbert has not (quantizers, tensor parallelism,
#: GGUF, hub kernels, module fusion): their default, which changes nothing in
#: transformers either, is accepted (code that forwards them as None runs); any other value is refused by name
_UNSUPPORTED_KWARGS = {
    "quantization_config": (None,),
    "gguf_file": (None,),
    "tp_plan": (None,),
    "tp_size": (None,),
    "device_mesh": (None,),
    "distributed_config": (None,),
    "use_kernels": (None, False),
    "kernel_config": (None,),
    "kernels_mode": (None,),
    "allow_all_kernels": (False,),
    "fusion_config": (None,),
}


def _pop_unsupported(cls: type, kwargs: dict[str, Any]) -> None:
    """Remove the keywords of :data:`_UNSUPPORTED_KWARGS` from ``kwargs``; TypeError for one not at its default."""
    for key, defaults in _UNSUPPORTED_KWARGS.items():
        if key not in kwargs:
            continue
        value = kwargs.pop(key)
        at_default = any(
            value is d or (type(value) is type(d) and value == d) or (d is None and value == {})
            for d in defaults
        )
        if not at_default:
            hint = (
                "fastbert quantizes with quantization='int8' or 'fp8'; "
                if key == "quantization_config"
                else ""
            )
            raise TypeError(
                f"{cls.__name__}.from_pretrained(): {key}={value!r} asks for a transformers feature fastbert does "
                f"not have (only {key}={defaults[0]!r} is accepted): {hint}load the model with transformers"
            )


def _check_key_mapping(key_mapping: Any) -> list[tuple[re.Pattern, str]] | None:
    """``from_pretrained(key_mapping=)`` checked and compiled: [(pattern, replacement)], in the dict's order."""
    if key_mapping is None:
        return None
    if not isinstance(key_mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in key_mapping.items()
    ):
        raise TypeError(
            f"key_mapping must be a dict of regex pattern -> replacement strings, not {key_mapping!r}"
        )
    compiled = []
    for pattern, replacement in key_mapping.items():
        try:
            compiled.append((re.compile(pattern), replacement))
        except re.error as e:
            raise ValueError(f"key_mapping pattern {pattern!r} is not a regular expression: {e}") from None
    return compiled


def apply_key_mapping(state: dict[str, torch.Tensor], key_mapping: list) -> dict[str, torch.Tensor]:
    """The checkpoint's names renamed by ``key_mapping``: each pattern in order replaces its first match (so the
    renamings chain), as transformers 5's ``WeightRenaming``; two names renamed to one is an error."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for pattern, replacement in key_mapping:
            new = pattern.sub(replacement, new, count=1)
        if new in out:
            raise ValueError(f"key_mapping renames two checkpoint tensors to {new!r}")
        out[new] = value
    return out


def _model_args(cls: type, config: Any, model_args: tuple, kwargs: dict[str, Any]) -> tuple:
    """``model_args`` with the keywords of ``kwargs`` that are arguments of ``cls.__init__`` and not config
    fields (popped from ``kwargs``), as positional arguments after the config."""
    import inspect

    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C-level __init__
        return model_args
    init_kwargs = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k in params and k not in ("self", "config") and not hasattr(config, k)
    }
    if not init_kwargs:
        return model_args
    bound = inspect.signature(cls.__init__).bind(None, config, *model_args, **init_kwargs)
    if bound.kwargs:  # keyword-only arguments: _build passes positional ones only
        raise TypeError(f"{cls.__name__}.from_pretrained cannot pass {sorted(bound.kwargs)} to the model")
    return tuple(bound.args[2:])


def _own_storage(t: torch.Tensor) -> torch.Tensor:
    """``t`` contiguous and alone in its storage (a copy only when it is a view of a larger one)."""
    t = t.contiguous()
    if t.untyped_storage().nbytes() != t.numel() * t.element_size() or t.storage_offset() != 0:
        t = t.clone()
    return t


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same storage, shape and strides: one tensor under two names."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def _init_missing(model: nn.Module, missing: set[str]) -> None:
    """Initialise the parameters the checkpoint did not give, as transformers does (the model's
    ``_init_weights`` on their module: normal(0, initializer_range) for weights, LayerNorm 1/0, biases 0),
    keeping what was loaded into the same module. The model was built with uninitialised storage: every
    missing parameter is written here, and one that ``_init_weights`` would leave unwritten is an error,
    never uninitialised memory."""
    if not missing:
        return
    # a tied key shares its target's tensor: the target's initialisation covers it (transformers ties after
    # initialising), and initialising it as its own module (the MLM decoder as a Linear) would undo the
    # target's (the word embeddings' zero padding row)
    tied = getattr(model, "_tied_weights_keys", {}) or {}
    params = dict(model.named_parameters(remove_duplicate=False))
    missing = {
        k for k in missing if not (k in tied and tied[k] in params and params.get(k) is params[tied[k]])
    }
    for name, module in model.named_modules():
        own = {p: f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False)}
        if not any(k in missing for k in own.values()):
            continue
        # keep what was loaded: re-init, then restore loaded tensors of the same module
        saved = {
            p: t.detach().clone() for p, t in module.named_parameters(recurse=False) if own[p] not in missing
        }
        for t in (t for p, t in module.named_parameters(recurse=False) if own[p] in missing):
            with torch.no_grad():
                t.fill_(float("nan"))  # what _init_weights leaves unwritten shows as NaN below
        model._init_weights(module)
        with torch.no_grad():
            for p, t in module.named_parameters(recurse=False):
                if p in saved:
                    t.copy_(saved[p])
                elif t.is_floating_point() and torch.isnan(t).any():
                    raise RuntimeError(
                        f"{type(model).__name__}._init_weights does not initialise {own[p]} "
                        f"({type(module).__name__}): it would hold uninitialised memory"
                    )
    model.tie_weights()
