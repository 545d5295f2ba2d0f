"""RobertaConfig: transformers' ``RobertaConfig`` (``model_type`` ``roberta``), fields and defaults."""

from __future__ import annotations

from typing import Any

from ...config import BertConfig

#: where transformers' RobertaConfig differs from BertConfig
ROBERTA_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50265,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

#: the model types of the RoBERTa architecture (one module tree, one position policy)
ROBERTA_MODEL_TYPES = ("roberta", "xlm-roberta", "camembert")


class RobertaConfig(BertConfig):
    """Configuration of a RoBERTa model, field for field as transformers' ``RobertaConfig``.

    RoBERTa's positions start after the padding id: the longest input is ``max_position_embeddings -
    pad_token_id - 1`` tokens (512 for ``roberta-base``'s 514 positions)."""

    model_type = "roberta"
    compatible_model_types = ROBERTA_MODEL_TYPES
    family_name = "RoBERTa"
    _family_defaults = ROBERTA_DEFAULTS

    def validate(self) -> None:
        super().validate()
        pad, positions = self.pad_token_id, self.max_position_embeddings
        if pad is not None and pad >= positions:  # torch's bare AssertionError from nn.Embedding otherwise
            where = f"{self._config_file}: " if getattr(self, "_config_file", None) else ""
            raise ValueError(
                f"{where}config field pad_token_id ({pad}) must be below max_position_embeddings ({positions}): "
                "the position table's padding row is pad_token_id (positions start after it)"
            )
