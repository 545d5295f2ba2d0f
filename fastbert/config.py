"""BertConfig: reads and writes transformers' ``config.json`` with the same fields and defaults."""

from __future__ import annotations

import copy
import json
import os
import warnings
from typing import Any

import torch

CONFIG_NAME = "config.json"

#: the values of ``attn_implementation`` (transformers' name for the choice): fastbert's three backends
BACKENDS = ("eager", "sdpa", "triton")

_TRANSFORMERS_ONLY = ("flash_attention_2", "flash_attention_3", "flex_attention")


def check_attn_implementation(name: str | None) -> str | None:
    """``name`` when it is one of :data:`BACKENDS` (or None: the device's default); ValueError otherwise."""
    if name is None:
        return None
    if name in _TRANSFORMERS_ONLY:
        raise ValueError(
            f"attn_implementation={name!r} is a transformers backend; fastbert has {BACKENDS} "
            "('triton' is its flash-style kernel path)"
        )
    if name not in BACKENDS:
        raise ValueError(f"attn_implementation must be one of {BACKENDS}, got {name!r}")
    return name


def default_attn_implementation(device: torch.device) -> str:
    """``triton`` on CUDA when its kernels are available, else ``sdpa``."""
    if device.type == "cuda":
        from .ops import triton_available

        if triton_available():
            return "triton"
    return "sdpa"


# dtype names config.json may hold (transformers writes "float32", "float16", "bfloat16")
_DTYPE_NAMES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "float": torch.float32,
    "half": torch.float16,
}

# integer fields that must be positive (the model's shapes)
_POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)

# Google's original checkpoints ship ``bert_config.json`` with only these keys.
GOOGLE_CONFIG_NAME = "bert_config.json"

_BERT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "use_cache": True,
    "classifier_dropout": None,
    "is_decoder": False,
    "add_cross_attention": False,
    "bos_token_id": None,
    "eos_token_id": None,
    "tie_word_embeddings": True,
}

# Fields of transformers' PretrainedConfig that BERT users read or set.
_COMMON_DEFAULTS: dict[str, Any] = {
    "architectures": None,
    "problem_type": None,
    "output_hidden_states": False,
    "output_attentions": False,
    "return_dict": True,
    "torch_dtype": None,
    "chunk_size_feed_forward": 0,
    "is_encoder_decoder": False,
}

_PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
_POSITION_TYPES = ("absolute", "relative_key", "relative_key_query")


class BertConfig:
    """Configuration of a BERT model, field for field as transformers' ``BertConfig``.

    Unknown keyword arguments are kept as attributes and written back by :meth:`to_dict`, so a
    ``config.json`` survives a load/save round trip. ``num_labels`` / ``id2label`` / ``label2id``
    follow transformers: ``num_labels`` defaults to 2, and setting it rebuilds ``id2label``.
    """

    model_type = "bert"

    def __init__(self, **kwargs: Any) -> None:
        kwargs = dict(kwargs)
        kwargs.pop("model_type", None)
        if "dtype" in kwargs and "torch_dtype" not in kwargs:
            kwargs["torch_dtype"] = kwargs.pop("dtype")
        else:
            kwargs.pop("dtype", None)
        for key, default in {**_BERT_DEFAULTS, **_COMMON_DEFAULTS}.items():
            setattr(self, key, kwargs.pop(key, copy.deepcopy(default)))

        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        num_labels = kwargs.pop("num_labels", None)
        if id2label is not None and not (num_labels is not None and num_labels != len(id2label)):
            self.id2label = {int(k): v for k, v in id2label.items()}
        else:
            if id2label is not None:  # as transformers: num_labels wins, the labels are regenerated
                warnings.warn(
                    f"config: num_labels={num_labels} does not match id2label with {len(id2label)} entries: "
                    f"keeping num_labels={num_labels} and naming the labels LABEL_0 ... LABEL_{num_labels - 1}",
                    stacklevel=2,
                )
                label2id = None
            self.id2label = {i: f"LABEL_{i}" for i in range(num_labels if num_labels is not None else 2)}
        if label2id is not None:
            self.label2id = {k: int(v) for k, v in label2id.items()}
        else:
            self.label2id = {v: k for k, v in self.id2label.items()}

        if self.problem_type is not None and self.problem_type not in _PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {_PROBLEM_TYPES}, got {self.problem_type!r}")
        if self.position_embedding_type not in _POSITION_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {_POSITION_TYPES}, got {self.position_embedding_type!r}"
            )
        for field in _POSITIVE_INTS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f"config field {field} must be an integer, got {type(value).__name__} {value!r}"
                )
            if value < 1 and not (field == "num_hidden_layers" and value == 0):
                raise ValueError(f"config field {field} must be positive, got {value}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if isinstance(self.torch_dtype, str) and self.torch_dtype != "auto":
            name = self.torch_dtype.removeprefix("torch.")
            if name in _DTYPE_NAMES:
                self.torch_dtype = _DTYPE_NAMES[name]
            else:  # transformers ignores a dtype it does not know: so does fastbert, loudly
                warnings.warn(
                    f"config: unknown torch_dtype {self.torch_dtype!r} ignored "
                    f"(known: {', '.join(sorted(_DTYPE_NAMES))})",
                    stacklevel=2,
                )
                self.torch_dtype = None
        self._attn_implementation: str | None = kwargs.pop("_attn_implementation", None)
        kwargs.pop("transformers_version", None)
        for key, value in kwargs.items():  # unknown keys are kept, as transformers does
            setattr(self, key, value)

    # ----------------------------------------------------------------- labels
    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if self.id2label is None or len(self.id2label) != value:
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """All fields, as transformers writes them into ``config.json``."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key.startswith("_"):
                continue
            if key == "torch_dtype":
                if isinstance(value, torch.dtype):
                    value = str(value).removeprefix("torch.")
            out[key] = copy.deepcopy(value)
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory!r} is a file, not a folder")
        os.makedirs(save_directory, exist_ok=True)
        self.to_json_file(os.path.join(save_directory, CONFIG_NAME))

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> BertConfig:
        return cls(**{**config_dict, **kwargs})

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BertConfig:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise OSError(f"{path} is not valid JSON: {e}") from e
        except UnicodeDecodeError as e:
            raise OSError(f"{path} is not UTF-8 text (a JSON file): {e}") from e
        if not isinstance(data, dict):
            raise OSError(f"{path} does not hold a JSON object")
        model_type = data.get("model_type")
        if model_type not in (None, "bert"):
            raise ValueError(f"{path} describes a {model_type!r} model, not a BERT model")
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:  # a bad field: say which file holds it
            raise type(e)(f"{path}: {e}") from None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        subfolder: str = "",
        hub: Any = None,
        return_unused_kwargs: bool = False,
        **kwargs: Any,
    ) -> BertConfig:
        """Load ``config.json`` (or Google's ``bert_config.json``) from a folder, a file or a hub id.

        ``hub`` (a :class:`fastbert.hub.HubOptions`) may replace the five hub keywords."""
        from .hub import HubOptions, hub_unavailable, resolve_file

        path = str(pretrained_model_name_or_path)
        if os.path.isfile(path):
            config_file = path
        else:
            if hub is None:
                hub = HubOptions(revision, cache_dir, local_files_only, token, subfolder)
            config_file = resolve_file(path, CONFIG_NAME, hub, required=False)
            if config_file is None:
                config_file = resolve_file(path, GOOGLE_CONFIG_NAME, hub, required=False)
            if config_file is None:
                if os.path.isdir(path):
                    raise OSError(
                        f"{path} has no {CONFIG_NAME} (nor Google's {GOOGLE_CONFIG_NAME}): is it a BERT model folder?"
                    )
                why = hub_unavailable(hub) or "no such model, or not cached"
                raise OSError(
                    f"{path!r} is not a local folder, and no {CONFIG_NAME} could be had for it from the Hugging Face "
                    f"hub ({why}): pass a local folder that holds the model"
                )
        config = cls.from_json_file(config_file)
        unused = {}
        for key, value in kwargs.items():
            if key in ("num_labels",):
                config.num_labels = value
            elif hasattr(config, key) or key in _BERT_DEFAULTS or key in _COMMON_DEFAULTS:
                setattr(config, key, value)
            else:
                unused[key] = value
                if not return_unused_kwargs:
                    setattr(config, key, value)
        return (config, unused) if return_unused_kwargs else config

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"BertConfig {self.to_json_string()}"
