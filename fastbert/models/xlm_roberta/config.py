"""XLMRobertaConfig: transformers' ``XLMRobertaConfig`` (``model_type`` ``xlm-roberta``), fields and defaults."""

from __future__ import annotations

from ..roberta.config import ROBERTA_DEFAULTS, RobertaConfig


class XLMRobertaConfig(RobertaConfig):
    """Configuration of a XLM-RoBERTa model: RoBERTa's fields; transformers' defaults (vocab_size 30522)."""

    model_type = "xlm-roberta"
    family_name = "XLM-RoBERTa"
    _family_defaults = {**ROBERTA_DEFAULTS, "vocab_size": 30522}
