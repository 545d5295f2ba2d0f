"""DistilBertConfig: transformers' ``DistilBertConfig`` (``model_type`` ``distilbert``), fields and defaults.

DistilBERT names its fields its own way (``dim``, ``n_layers``, ``n_heads``, ``hidden_dim``, ``dropout``,
``attention_dropout``, ``activation``); the shared engine reads BERT's names. The config keeps one value
per field: DistilBERT's names are aliases of BERT's (as transformers' ``attribute_map`` makes
``hidden_size`` an alias of ``dim``), and ``config.json`` is written with DistilBERT's names. Given to the
config, the BERT names transformers' ``attribute_map`` lacks (``intermediate_size``, ``hidden_act``,
``hidden_dropout_prob``, ``attention_probs_dropout_prob``) are kept unread and written back, as transformers
keeps them as unused attributes: ``hidden_dim`` / ``activation`` / the dropouts come from DistilBERT's names.
"""

from __future__ import annotations

import copy
from typing import Any

from ...config import BertConfig

#: DistilBERT's field -> the BERT field the engine reads
ALIASES = {
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size",
    "dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
    "activation": "hidden_act",
}

#: BERT's fields a DistilBERT config.json does not have (the engine's fixed values for DistilBERT)
_NOT_DISTILBERT = ("type_vocab_size", "layer_norm_eps", "position_embedding_type", "classifier_dropout")


class DistilBertConfig(BertConfig):
    """Configuration of a DistilBERT model, field for field as transformers' ``DistilBertConfig``
    (LayerNorm eps 1e-12, no token types; ``sinusoidal_pos_embds`` initialises the position table)."""

    model_type = "distilbert"
    compatible_model_types = ("distilbert",)
    family_name = "DistilBERT"
    #: transformers' DistilBertConfig.attribute_map (fastbert answers to every name of ``ALIASES``)
    attribute_map = {"hidden_size": "dim", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"}
    _field_names = {bert_name: name for name, bert_name in ALIASES.items()}
    _family_defaults: dict[str, Any] = {
        "num_hidden_layers": 6,
        "type_vocab_size": 1,
        "sinusoidal_pos_embds": False,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
    }

    def __init__(self, **kwargs: Any) -> None:
        #: BERT's names transformers' DistilBertConfig does not map: given, kept unread and written back
        unmapped = {}
        for name, bert_name in ALIASES.items():
            if bert_name in self.attribute_map:  # either name sets the field; BERT's wins, as transformers
                if name in kwargs:
                    kwargs.setdefault(bert_name, kwargs.pop(name))
                continue
            if bert_name in kwargs:
                unmapped[bert_name] = kwargs.pop(bert_name)
            if name in kwargs:
                kwargs[bert_name] = kwargs.pop(name)
        #: the BERT-only fields the input had: written back as they came (transformers keeps them as extra keys)
        given = {k for k in _NOT_DISTILBERT if k in kwargs}
        super().__init__(**kwargs)
        self._given_bert = given
        self._unmapped_bert = unmapped

    def _apply_overrides(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # as transformers: BERT's names its DistilBertConfig does not map are no fields of it (returned unused:
        # from_pretrained(path, hidden_act="relu") set activation here, and is a TypeError of the model there)
        unmapped = {k: v for k, v in kwargs.items() if k in ALIASES.values() and k not in self.attribute_map}
        unused = super()._apply_overrides({k: v for k, v in kwargs.items() if k not in unmapped})
        return {**unused, **unmapped}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name, bert_name in ALIASES.items():
            out[name] = out.pop(bert_name)
        given = getattr(self, "_given_bert", set())
        for name in _NOT_DISTILBERT:
            if name not in given:
                out.pop(name, None)
        out.update(copy.deepcopy(getattr(self, "_unmapped_bert", {})))
        return dict(sorted(out.items()))


def _alias(bert_name: str) -> property:
    def get(self):
        return getattr(self, bert_name)

    def set_(self, value):
        setattr(self, bert_name, value)

    return property(get, set_, doc=f"DistilBERT's name of ``{bert_name}``")


for _name, _bert_name in ALIASES.items():
    setattr(DistilBertConfig, _name, _alias(_bert_name))
