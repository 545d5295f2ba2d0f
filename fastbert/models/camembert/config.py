"""CamembertConfig: transformers' ``CamembertConfig`` (``model_type`` ``camembert``), fields and defaults."""

from __future__ import annotations

from ..roberta.config import ROBERTA_DEFAULTS, RobertaConfig


class CamembertConfig(RobertaConfig):
    """Configuration of a CamemBERT model: RoBERTa's fields; transformers' defaults (vocab_size 30522)."""

    model_type = "camembert"
    family_name = "CamemBERT"
    _family_defaults = {**ROBERTA_DEFAULTS, "vocab_size": 30522}
