"""ElectraConfig: transformers' ``ElectraConfig`` (``model_type`` ``electra``), fields and defaults."""

from __future__ import annotations

from typing import Any

from ...config import BertConfig

#: where transformers' ElectraConfig differs from BertConfig (its defaults are the small discriminator's)
ELECTRA_DEFAULTS: dict[str, Any] = {
    "embedding_size": 128,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "summary_type": "first",
    "summary_use_proj": True,
    "summary_activation": "gelu",
    "summary_last_dropout": 0.1,
}

#: the sequence summaries of the multiple-choice head (``cls_index`` without the ``cls_index`` argument, which
#: transformers' forward never passes, reads the last token, as there; ``attn`` is not implemented there either)
SUMMARY_TYPES = ("first", "last", "mean", "cls_index")


class ElectraConfig(BertConfig):
    """Configuration of an ELECTRA model, field for field as transformers' ``ElectraConfig``: the
    embeddings are ``embedding_size`` wide, projected to ``hidden_size`` (``embeddings_project``) when the
    two differ."""

    model_type = "electra"
    compatible_model_types = ("electra",)
    family_name = "ELECTRA"
    _family_defaults = ELECTRA_DEFAULTS

    def validate(self) -> None:
        super().validate()
        size = self.embedding_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"config field embedding_size must be a positive integer, got {size!r}")
        # summary_type is read by the multiple-choice head only (ElectraSequenceSummary checks it there, as
        # transformers: the other classes load a config whose summary_type that head cannot use)
