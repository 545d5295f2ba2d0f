"""Output dataclasses with transformers' names and fields.

Like transformers' ``ModelOutput``: a dataclass that is also an ordered dict of its non-None fields,
so ``out.logits``, ``out["logits"]``, ``out[0]`` and ``out.to_tuple()`` all work.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import torch
import torch.utils._pytree as pytree


class ModelOutput(OrderedDict):
    """Base class of every output: attribute, key and index access to the fields that are set."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each output class is a pytree node (its fields that are set, in order), as transformers registers
        its outputs: ``DistributedDataParallel(static_graph=True)`` finds an output's tensors through pytree,
        and saw an unregistered output as one opaque leaf (the ranks' gradients were never averaged)."""
        super().__init_subclass__(**kwargs)
        pytree.register_pytree_node(
            cls,
            _flatten,
            partial(_unflatten, output_type=cls),
            serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
            flatten_with_keys_fn=_flatten_with_keys,
        )

    def __post_init__(self) -> None:
        class_fields = fields(self)
        first = getattr(self, class_fields[0].name)
        pairs = None
        if all(getattr(self, f.name) is None for f in class_fields[1:]):
            # built from its fields, as transformers' ModelOutput takes them: a mapping (accelerate's
            # convert_to_fp32, the Trainer's bf16 / fp16, rebuilds an output as type(out)({name: value})) or
            # (name, value) pairs (nn.DataParallel's gather: type(out)((k, v) for k in out))
            if isinstance(first, Mapping):
                pairs = list(first.items())
            elif isinstance(first, (list, tuple)) or hasattr(first, "__next__"):
                items = first if isinstance(first, (list, tuple)) else list(first)  # a generator is read once
                if items and all(
                    isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str) for e in items
                ):
                    pairs = [tuple(e) for e in items]
                elif items is not first:  # an iterator as the first field's value: kept as what it held
                    super().__setattr__(class_fields[0].name, items)
        if pairs is not None:
            super().__setattr__(class_fields[0].name, None)
            for name, value in pairs:
                super().__setattr__(name, value)
                if value is not None:
                    super().__setitem__(name, value)
            return
        for f in class_fields:
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return dict(self.items())[key]
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() and value is not None:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __reduce__(self):  # pickling keeps the dataclass fields
        return (self.__class__, tuple(getattr(self, f.name) for f in fields(self)))

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self[k] for k in self.keys())


def _flatten(output: ModelOutput) -> tuple[list[Any], list[str]]:
    return list(output.values()), list(output.keys())


def _flatten_with_keys(output: ModelOutput) -> tuple[list[tuple[Any, Any]], list[str]]:
    return [(pytree.MappingKey(k), v) for k, v in output.items()], list(output.keys())


def _unflatten(values: list[Any], context: list[str], output_type: type) -> ModelOutput:
    return output_type(**dict(zip(context, values)))


class _WithCache:
    """``cache``: transformers 5's name of ``past_key_values`` (read-only; not a field of its own), also as a key
    (``out["cache"]``, ``"cache" in out``, ``out.get("cache")``), as transformers 5's outputs answer it."""

    @property
    def cache(self) -> Any:
        return self.past_key_values

    def __getitem__(self, key: str | int | slice) -> Any:
        return super().__getitem__("past_key_values" if key == "cache" else key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__("past_key_values" if key == "cache" else key)

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get("past_key_values" if key == "cache" else key, default)


@dataclass
class BaseModelOutput(ModelOutput):
    """DistilBERT's (and ModernBERT's) bare encoder output in transformers."""

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    """MPNet's bare encoder output in transformers."""

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class BaseModelOutputWithPastAndCrossAttentions(_WithCache, ModelOutput):
    """ELECTRA's bare encoder output in transformers (no pooler)."""

    last_hidden_state: torch.Tensor | None = None
    past_key_values: tuple[tuple[torch.Tensor, ...], ...] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(_WithCache, ModelOutput):
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    past_key_values: tuple[tuple[torch.Tensor, ...], ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class CausalLMOutputWithCrossAttentions(_WithCache, ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: tuple[tuple[torch.Tensor, ...], ...] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
