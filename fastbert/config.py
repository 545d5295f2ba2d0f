"""BertConfig: reads and writes transformers' ``config.json`` with the same fields and defaults.

The other families' configs (``fastbert.models.<family>.config``) subclass it with their own
``model_type`` and defaults; ``fastbert.registry`` picks the class of a ``config.json``."""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from collections.abc import Iterator
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


# dtype names config.json may hold (transformers writes "float32", "float16", "bfloat16")
_DTYPE_NAMES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "float": torch.float32,
    "half": torch.float16,
}

try:  # transformers 5's strict configs raise huggingface_hub's error: ours is also one
    from huggingface_hub.errors import StrictDataclassFieldValidationError as _HubFieldError
except ImportError:  # pragma: no cover - an older huggingface_hub

    class _HubFieldError(Exception):
        pass


class ConfigFieldError(_HubFieldError, TypeError):
    """A config field of the wrong type, refused when the config is made (as transformers 5's strict
    configs refuse it: a ``TypeError`` and huggingface_hub's ``StrictDataclassFieldValidationError``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        Exception.__init__(self, message)  # not the hub class's (field, cause) signature
        self.field = field

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_INT, _NUMBER, _BOOL, _STR = "an integer", "a number", "a boolean (true/false)", "a string"

# the type of every field: checked when the config is made (transformers 5's timing)
_FIELD_TYPES: dict[str, tuple[str, bool]] = {  # field: (kind, None allowed)
    "vocab_size": (_INT, False),
    "hidden_size": (_INT, False),
    "num_hidden_layers": (_INT, False),
    "num_attention_heads": (_INT, False),
    "intermediate_size": (_INT, False),
    "max_position_embeddings": (_INT, False),
    "type_vocab_size": (_INT, False),
    "chunk_size_feed_forward": (_INT, False),
    "pad_token_id": (_INT, True),
    "bos_token_id": (_INT, True),
    "hidden_dropout_prob": (_NUMBER, False),
    "attention_probs_dropout_prob": (_NUMBER, False),
    "classifier_dropout": (_NUMBER, True),
    "initializer_range": (_NUMBER, False),
    "layer_norm_eps": (_NUMBER, False),
    "is_decoder": (_BOOL, False),
    "add_cross_attention": (_BOOL, False),
    "use_cache": (_BOOL, False),
    "tie_word_embeddings": (_BOOL, False),
    "output_hidden_states": (_BOOL, False),
    "output_attentions": (_BOOL, False),
    "return_dict": (_BOOL, False),
    "is_encoder_decoder": (_BOOL, False),
    "position_embedding_type": (_STR, False),
    "problem_type": (_STR, True),
}


def _is_kind(value: Any, kind: str) -> bool:
    if kind == _BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == _INT:
        return isinstance(value, int)
    if kind == _NUMBER:
        return isinstance(value, (int, float))
    return isinstance(value, str)


def _label_id(field: str, value: Any) -> int:
    """A label id of ``id2label``'s keys or ``label2id``'s values: an integer, or its text (JSON's keys are
    strings); a ValueError naming the field otherwise."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"config field {field} holds the label id {value!r}, which is not an integer"
        ) from None


def _field_type_error(field: str, expected: str, value: Any) -> ConfigFieldError:
    return ConfigFieldError(
        f"config field {field} must be {expected}, got {type(value).__name__} {value!r}", field
    )


# integer fields that must be positive (the model's shapes); num_hidden_layers may be 0
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
    "dtype": None,
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
    #: the ``model_type`` values whose config.json this class reads (the same architecture)
    compatible_model_types: tuple[str, ...] = ("bert",)
    #: the family's name in messages
    family_name = "BERT"
    #: defaults that differ from BERT's (a family's own, as its transformers config class has them)
    _family_defaults: dict[str, Any] = {}
    #: the folder or hub id it was loaded from ("" for a config built in code), as transformers' configs
    _name_or_path = ""
    # transformers 4's PretrainedConfig fields that code reads and BERT never sets: their defaults, as class
    # attributes, so that reading one works and to_dict / config.json carry only those a file or the user set
    torchscript = False
    tokenizer_class: str | None = None
    finetuning_task: str | None = None
    task_specific_params: dict | None = None
    prefix: str | None = None
    sep_token_id: int | None = None
    #: the transformers version named in the config.json read (None for a config built in code)
    transformers_version: str | None = None
    decoder_start_token_id: int | None = None
    #: the field that names the engine's activation (ModernBERT: ``hidden_activation``; its config keeps a
    #: ``hidden_act`` it is given as an extra attribute, as transformers does)
    _activation_field = "hidden_act"
    #: BERT's field -> this family's name of it, for refusals (DistilBERT's ``dim`` for ``hidden_size``)
    _field_names: dict[str, str] = {}

    def __init__(self, **kwargs: Any) -> None:
        kwargs = dict(kwargs)
        kwargs.pop("model_type", None)
        if "torch_dtype" in kwargs:  # transformers 4's name of ``dtype``
            torch_dtype = kwargs.pop("torch_dtype")
            if kwargs.get("dtype") is None:
                kwargs["dtype"] = torch_dtype
        attn_implementation = kwargs.pop("attn_implementation", None)
        # as transformers 5: a config.json's private fields are not read (only the attn_implementation keyword
        # chooses): a file saved with "_attn_implementation": "flash_attention_2" loads with the default backend
        for key in ("_attn_implementation", "_attn_implementation_internal"):
            kwargs.pop(key, None)
        for key, default in {**_BERT_DEFAULTS, **self._family_defaults, **_COMMON_DEFAULTS}.items():
            setattr(self, key, kwargs.pop(key, copy.deepcopy(default)))

        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        num_labels = kwargs.pop("num_labels", None)
        if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int)):
            raise _field_type_error("num_labels", _INT, num_labels)
        if id2label is not None and not isinstance(id2label, dict):
            raise _field_type_error("id2label", "a mapping of label ids to names", id2label)
        if id2label is not None and not (num_labels is not None and num_labels != len(id2label)):
            self.id2label = {_label_id("id2label", k): v for k, v in id2label.items()}
        else:
            if id2label is not None:  # as transformers 5: num_labels wins, the labels are regenerated
                warnings.warn(
                    f"config: num_labels={num_labels} does not match id2label with {len(id2label)} entries: "
                    f"keeping num_labels={num_labels} and naming the labels LABEL_0 ... LABEL_{num_labels - 1} "
                    f"(from_pretrained keeps id2label's labels when the checkpoint's head has {len(id2label)} "
                    "outputs, as transformers 4 did)",
                    stacklevel=2,
                )
                # the file's labels, for from_pretrained to take when the checkpoint's head has their count
                self._labels_in_file = {_label_id("id2label", k): v for k, v in id2label.items()}
                label2id = None
            self.id2label = {i: f"LABEL_{i}" for i in range(num_labels if num_labels is not None else 2)}
            if id2label is not None:
                # the labels that replaced the file's: labels set later are the ones asked, not the file's
                self._labels_in_file_replaced_by = dict(self.id2label)
        if label2id is not None:
            if not isinstance(label2id, dict):
                raise _field_type_error("label2id", "a mapping of label names to ids", label2id)
            label2id = {k: _label_id("label2id", v) for k, v in label2id.items()}
        if label2id is not None and id2label is not None:
            self.label2id = label2id
        else:  # as transformers (4 and 5): without id2label, num_labels names the labels and label2id is rebuilt
            self.label2id = {v: k for k, v in self.id2label.items()}

        self._check_types()
        if self.problem_type is not None and self.problem_type not in _PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {_PROBLEM_TYPES}, got {self.problem_type!r}")
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            # as transformers 5 (4 took it, and its cross-entropy over one class is 0: nothing trained)
            raise ValueError(
                'problem_type="single_label_classification" requires num_labels > 1: for binary classification '
                'use num_labels=2, or problem_type="regression" for a single-output regression head'
            )
        if self.position_embedding_type not in _POSITION_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {_POSITION_TYPES}, got {self.position_embedding_type!r}"
            )
        #: the backend (transformers' ``config._attn_implementation``); checked when a model is built
        self._attn_implementation: str | None = attn_implementation
        # the transformers version that wrote the file (transformers keeps it on the config): written back as
        # read, so a load/save round trip keeps it; a config built in code has None and writes none
        version = kwargs.pop("transformers_version", None)
        if version is not None:
            if not isinstance(version, str):
                raise _field_type_error("transformers_version", "a version string or null", version)
            self.transformers_version = version
        for key, value in kwargs.items():  # unknown keys are kept, as transformers does
            setattr(self, key, value)

    # ----------------------------------------------------------------- validation
    def _check_types(self) -> None:
        """Every field's type (ConfigFieldError, a TypeError, naming the field): at construction, as
        transformers 5's strict configs."""
        for field, (kind, nullable) in _FIELD_TYPES.items():
            value = getattr(self, field)
            if value is None and nullable:
                continue
            if not _is_kind(value, kind):
                raise _field_type_error(
                    self._field_names.get(field, field), kind + (" or null" if nullable else ""), value
                )
        act = getattr(self, self._activation_field)
        if not (isinstance(act, str) or callable(act)):
            name = self._field_names.get(self._activation_field, self._activation_field)
            raise _field_type_error(name, "an activation name", act)
        eos = self.eos_token_id
        if eos is not None and not _is_kind(eos, _INT):
            if not (isinstance(eos, list) and all(_is_kind(e, _INT) for e in eos)):
                raise _field_type_error("eos_token_id", "an integer, a list of integers or null", eos)
        if self.architectures is not None and not (
            isinstance(self.architectures, list) and all(isinstance(a, str) for a in self.architectures)
        ):
            raise _field_type_error("architectures", "a list of class names or null", self.architectures)

    def validate(self) -> None:
        """Every field's type and range, naming the field: what a model needs of its config. Called when a
        model is built (transformers' timing: ``BertConfig(hidden_size=37)`` is made, ``BertModel`` of it
        refused). Types: ConfigFieldError (a TypeError); values: ValueError."""
        self._check_types()
        where = f"{self._config_file}: " if getattr(self, "_config_file", None) else ""

        def bad(message: str) -> ValueError:
            return ValueError(f"{where}config field {message}")

        own = lambda field: self._field_names.get(field, field)  # noqa: E731 - the family's field names

        for field in _POSITIVE_INTS:
            value = getattr(self, field)
            if value < 1 and not (field == "num_hidden_layers" and value == 0):
                raise bad(f"{own(field)} must be positive, got {value}")
        if self.chunk_size_feed_forward < 0:
            raise bad(f"chunk_size_feed_forward must be 0 or more, got {self.chunk_size_feed_forward}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise bad(
                f"{own('hidden_size')} ({self.hidden_size}) is not a multiple of {own('num_attention_heads')} "
                f"({self.num_attention_heads})"
            )
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, field)
            if value is not None and not 0.0 <= value <= 1.0:  # NaN fails too
                raise bad(f"{own(field)} is a dropout probability: it must be in [0, 1], got {value}")
        eps = self.layer_norm_eps
        if not 0.0 < eps < 1.0:
            raise bad(
                f"layer_norm_eps must be a small positive number (0 < eps < 1; BERT uses 1e-12), got {eps}"
            )
        if not 0.0 <= self.initializer_range < math.inf:
            raise bad(f"initializer_range is a standard deviation: it must be finite and >= 0, got "
                      f"{self.initializer_range}")  # fmt: skip
        pad = self.pad_token_id
        if pad is not None and not 0 <= pad < self.vocab_size:
            raise bad(
                f"pad_token_id must be null or a token id in [0, vocab_size={self.vocab_size}), got {pad}"
            )
        for field in ("bos_token_id", "eos_token_id"):
            value = getattr(self, field)
            ids = value if isinstance(value, list) else [value]
            if any(i is not None and i < 0 for i in ids):
                raise bad(f"{field} must be null or a token id >= 0, got {value}")
        if self.num_labels < 1:
            raise bad(f"num_labels must be at least 1, got {self.num_labels}")
        from .core.layers_ref import activation  # lazy: importing config imports no op module

        try:
            activation(getattr(self, self._activation_field), own(self._activation_field))
        except ValueError as e:
            raise bad(f"{own(self._activation_field)}: {e}") from None
        check_attn_implementation(self._attn_implementation)

    # ----------------------------------------------------------------- dtype (transformers 5's name)
    @property
    def dtype(self) -> torch.dtype | str | None:
        """The weights' dtype (``"auto"`` or None: unspecified); ``torch_dtype`` is its old name."""
        return self.__dict__.get("dtype")

    @dtype.setter
    def dtype(self, value: Any) -> None:
        if isinstance(value, str) and value != "auto":
            name = value.removeprefix("torch.")
            if name in _DTYPE_NAMES:
                value = _DTYPE_NAMES[name]
            else:  # transformers ignores a dtype it does not know: so does fastbert, loudly
                warnings.warn(
                    f"config: unknown torch_dtype {value!r} ignored (known: {', '.join(sorted(_DTYPE_NAMES))})",
                    stacklevel=3,
                )
                value = None
        elif value is not None and value != "auto" and not isinstance(value, torch.dtype):
            raise _field_type_error("dtype", "a torch dtype, a dtype name or null", value)
        self.__dict__["dtype"] = value

    @property
    def torch_dtype(self) -> torch.dtype | str | None:
        return self.dtype

    @torch_dtype.setter
    def torch_dtype(self, value: Any) -> None:
        self.dtype = value

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
        """``head_dim`` as the config was given it (config.json or a keyword: kept and written back, as
        transformers keeps it), else the attention heads' width, ``hidden_size // num_attention_heads``. The
        BERT families' attention never reads a given one (as transformers'); ModernBERT's refuses one that
        differs (its :meth:`validate`)."""
        given = self.__dict__.get("head_dim")
        return given if given is not None else self.hidden_size // self.num_attention_heads

    @head_dim.setter
    def head_dim(self, value: Any) -> None:
        self.__dict__["head_dim"] = value

    # ----------------------------------------------------------------- serialisation
    #: transformers' ``attribute_map``: another name of a field -> the field (DistilBERT's ``hidden_size`` is
    #: ``dim``); fastbert's configs answer to both names
    attribute_map: dict[str, str] = {}

    @property
    def use_return_dict(self) -> bool:
        """Whether models return dataclasses: ``return_dict``, and not ``torchscript`` (transformers 4's rule:
        a config made for TorchScript gets tuples)."""
        return bool(self.return_dict) and not self.torchscript

    @property
    def name_or_path(self) -> str:
        """The folder or hub id the config (or its model) was loaded from (``_name_or_path``)."""
        return getattr(self, "_name_or_path", "")

    @name_or_path.setter
    def name_or_path(self, value: str) -> None:
        self._name_or_path = str(value)

    @property
    def per_layer_config(self) -> list[BertConfig]:
        """transformers 5's per-layer view of a config, which ``DynamicCache(config=model.config)`` and
        ``StaticCache(config=model.config, ...)`` read to lay out their layers: every layer has this config."""
        return [self] * self.num_hidden_layers

    @per_layer_config.setter
    def per_layer_config(self, value: Any) -> None:
        """A ``per_layer_config`` field of a config.json: kept and written back, as any unknown field."""
        self.__dict__["per_layer_config"] = value

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> BertConfig:
        """transformers' accessor of a composite model's text config: an encoder's config is its own text
        config (``Trainer.train`` reads special tokens through it)."""
        return self

    def update(self, config_dict: dict[str, Any]) -> None:
        """Set the fields of ``config_dict`` (as transformers' ``PretrainedConfig.update``)."""
        for key, value in config_dict.items():
            setattr(self, key, value)

    def update_from_string(self, update_str: str) -> None:
        """``"n_embd=10,resid_pdrop=0.2,use_cache=false"``: set existing fields, each parsed as the type of its
        current value (transformers' ``update_from_string``: bool, int, float or str fields only)."""
        pairs = dict(x.split("=", 1) for x in update_str.split(","))
        for key, text in pairs.items():
            if not hasattr(self, key):
                raise ValueError(f"key {key} isn't in the original config dict")
            old = getattr(self, key)
            value: Any = text
            if isinstance(old, bool):
                if text.lower() in ("true", "1", "y", "yes"):
                    value = True
                elif text.lower() in ("false", "0", "n", "no"):
                    value = False
                else:
                    raise ValueError(f"can't derive true or false from {text} (key {key})")
            elif isinstance(old, int):
                value = int(text)
            elif isinstance(old, float):
                value = float(text)
            elif not isinstance(old, str):
                raise TypeError(
                    f"You can only update int, float, bool or string values in the config, got {text} for key {key}"
                )
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """All fields, as transformers writes them into ``config.json``."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key.startswith("_"):
                continue
            if key == "dtype":
                if isinstance(value, torch.dtype):
                    value = str(value).removeprefix("torch.")
            out[key] = copy.deepcopy(value)
        out["id2label"] = {int(k): v for k, v in self.id2label.items()}  # JSON writes the keys as strings
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_diff_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the generic fields (``output_hidden_states``, ``return_dict``,
        ``architectures``, ``dtype``, labels ...) that hold their default, as transformers' ``to_diff_dict``:
        the model's own fields are always there."""
        full = self.to_dict()
        generic = {**_COMMON_DEFAULTS, "id2label": {0: "LABEL_0", 1: "LABEL_1"}}
        generic["label2id"] = {v: k for k, v in generic["id2label"].items()}
        own_defaults = type(self)().to_dict()
        return {
            key: value
            for key, value in full.items()
            if key not in generic or value != generic[key] or value != own_defaults.get(key, generic[key])
        }

    def to_json_string(self, use_diff: bool = True) -> str:
        """``config.json``'s text; ``use_diff`` (transformers' default): only what :meth:`to_diff_dict` keeps."""
        data = self.to_diff_dict() if use_diff else self.to_dict()
        if "id2label" in data:
            data["id2label"] = {str(k): v for k, v in data["id2label"].items()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike, use_diff: bool = True) -> None:
        from .output_files import open_output

        with open_output(path, "w") as f:  # beside it, renamed over it once complete
            f.write(self.to_json_string(use_diff=use_diff))

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory!r} is a file, not a folder")
        os.makedirs(save_directory, exist_ok=True)
        self.to_json_file(os.path.join(save_directory, CONFIG_NAME))

    @classmethod
    def from_dict(
        cls, config_dict: dict[str, Any], return_unused_kwargs: bool = False, **kwargs: Any
    ) -> BertConfig | tuple[BertConfig, dict[str, Any]]:
        """A config of ``config_dict`` (unknown keys kept); ``kwargs`` set the config's existing fields, as
        transformers: the others are returned with ``return_unused_kwargs`` and ignored otherwise."""
        attn = kwargs.pop("attn_implementation", None)
        config = cls(**config_dict) if attn is None else cls(**{**config_dict, "attn_implementation": attn})
        unused = config._apply_overrides(kwargs)
        return (config, unused) if return_unused_kwargs else config

    def _apply_overrides(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Set the fields named in ``kwargs`` that the config has; the rest, returned."""
        unused = {}
        for key, value in kwargs.items():
            if key == "attn_implementation":  # transformers' keyword of ``_attn_implementation``
                self._attn_implementation = value
            elif (
                key == "num_labels" or hasattr(self, key) or key in _BERT_DEFAULTS or key in _COMMON_DEFAULTS
            ):
                setattr(self, key, value)
                # the labels asked for: config.json's are no longer the ones to fall back on
                if key in ("num_labels", "id2label"):
                    self.__dict__.pop("_labels_in_file", None)
            else:
                unused[key] = value
        return unused

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
        # a class reads its own model_type too (a user's subclass registered with AutoConfig.register)
        if model_type is not None and model_type not in (cls.model_type, *cls.compatible_model_types):
            raise ValueError(
                f"{path} describes a {model_type!r} model, not a {cls.family_name} model "
                "(fastbert.AutoConfig picks the class of any model_type fastbert supports)"
            )
        try:
            config = cls(**data)
        except ConfigFieldError as e:  # a bad field: say which file holds it
            raise ConfigFieldError(f"{path}: {e}", e.field) from None
        except (TypeError, ValueError) as e:
            raise type(e)(f"{path}: {e}") from None
        config._config_file = str(path)  # named by validate() when a model is built
        return config

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
        from .hub import HubOptions, token_or_legacy

        token = token_or_legacy(token, kwargs)  # removes use_auth_token from kwargs whatever ``hub`` is
        if hub is None:
            hub = HubOptions(revision, cache_dir, local_files_only, token, subfolder)
        config = cls.from_json_file(find_config_file(pretrained_model_name_or_path, hub))
        for key in _DOWNLOAD_KWARGS:  # transformers' download and telemetry keywords: consumed, never unused
            kwargs.pop(key, None)
        # as transformers: keywords that are config fields override the file; the others are returned with
        # return_unused_kwargs, and ignored otherwise
        unused = config._apply_overrides(kwargs)
        return (config, unused) if return_unused_kwargs else config

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __iter__(self) -> Iterator[str]:
        """The names of the fields the config holds, as transformers 5's ``PretrainedConfig.__iter__`` (the
        keys of its ``config.json``, ``model_type`` aside), so that ``"field" in config`` asks whether it has
        one (a field of the family, an extra key given or read)."""
        return iter([key for key in self.to_dict() if key != "model_type"])

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


#: keywords of transformers' config ``from_pretrained`` about fetching the file, which it consumes: not config
#: fields, and not in what ``return_unused_kwargs`` returns
_DOWNLOAD_KWARGS = ("force_download", "proxies", "trust_remote_code", "_from_pipeline", "_from_auto")


def find_config_file(pretrained_model_name_or_path: str | os.PathLike, hub: Any) -> str:
    """The ``config.json`` (or Google's ``bert_config.json``) of a file, a folder or a hub id; OSError when
    there is none (saying whether the hub could be asked)."""
    from .hub import folder_looked_in, hub_unavailable, resolve_file, weight_files

    path = str(pretrained_model_name_or_path)
    if os.path.isfile(path):
        return path
    config_file = resolve_file(path, CONFIG_NAME, hub, required=False)
    if config_file is None:
        config_file = resolve_file(path, GOOGLE_CONFIG_NAME, hub, required=False)
    if config_file is None:
        if os.path.isdir(path):
            where = folder_looked_in(path, hub)
            weights = weight_files(where)
            if weights:  # the weights are there: the config that gives their shapes is not
                raise OSError(
                    f"{where} has no {CONFIG_NAME} (nor Google's {GOOGLE_CONFIG_NAME}), which the weights beside "
                    f"it ({weights[0]}) need: add it, or pass config= (a config object or a config.json path)"
                )
            raise OSError(
                f"{where} has no {CONFIG_NAME} (nor Google's {GOOGLE_CONFIG_NAME}): is it a model folder?"
            )
        why = hub_unavailable(hub) or "no such model, or not cached"
        raise OSError(
            f"{path!r} is not a local folder, and no {CONFIG_NAME} could be had for it from the Hugging Face "
            f"hub ({why}): pass a local folder that holds the model"
        )
    return config_file


def read_config_json(config_file: str) -> dict[str, Any]:
    """A config.json's object (OSError when it is not valid JSON or not a JSON object)."""
    try:
        with open(config_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OSError(f"{config_file} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise OSError(f"{config_file} does not hold a JSON object")
    return data
