"""BertConfig: reads and writes transformers' ``config.json`` with the same fields and defaults."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import torch

CONFIG_NAME = "config.json"

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
        if id2label is not None:
            self.id2label = {int(k): v for k, v in id2label.items()}
            if num_labels is not None and num_labels != len(self.id2label):
                raise ValueError(
                    f"num_labels={num_labels} does not match id2label with {len(self.id2label)} entries"
                )
        else:
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
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if isinstance(self.torch_dtype, str) and self.torch_dtype != "auto":
            self.torch_dtype = getattr(torch, self.torch_dtype)
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
        if not isinstance(data, dict):
            raise OSError(f"{path} does not hold a JSON object")
        model_type = data.get("model_type")
        if model_type not in (None, "bert"):
            raise ValueError(f"{path} describes a {model_type!r} model, not a BERT model")
        return cls(**data)

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
        return_unused_kwargs: bool = False,
        **kwargs: Any,
    ) -> BertConfig:
        """Load ``config.json`` (or Google's ``bert_config.json``) from a folder, a file or a hub id."""
        from .hub import resolve_file

        path = str(pretrained_model_name_or_path)
        if os.path.isfile(path):
            config_file = path
        else:
            hub_kwargs = dict(
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                subfolder=subfolder,
            )
            config_file = resolve_file(path, CONFIG_NAME, required=False, **hub_kwargs)
            if config_file is None:
                config_file = resolve_file(path, GOOGLE_CONFIG_NAME, required=False, **hub_kwargs)
            if config_file is None:
                if os.path.isdir(path):
                    raise OSError(
                        f"{path} has no {CONFIG_NAME} (nor Google's {GOOGLE_CONFIG_NAME}): is it a BERT model folder?"
                    )
                raise OSError(
                    f"{path!r} is not a local folder, and no {CONFIG_NAME} could be had for it from the Hugging Face "
                    "hub (offline, not cached, or no such model): pass a local folder that holds the model"
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
