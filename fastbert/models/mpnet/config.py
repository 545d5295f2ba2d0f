"""MPNetConfig: transformers' ``MPNetConfig`` (``model_type`` ``mpnet``), fields and defaults."""

from __future__ import annotations

from typing import Any

from ...config import BertConfig


class MPNetConfig(BertConfig):
    """Configuration of an MPNet model, field for field as transformers' ``MPNetConfig``: RoBERTa-style
    positions after the padding index, no token types, and a relative position bias of
    ``relative_attention_num_buckets`` buckets shared by every layer."""

    model_type = "mpnet"
    compatible_model_types = ("mpnet",)
    family_name = "MPNet"
    #: transformers' MPNet heads drop out with ``hidden_dropout_prob`` (its config has no ``classifier_dropout``)
    heads_use_classifier_dropout = False
    _family_defaults: dict[str, Any] = {
        "vocab_size": 30527,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "relative_attention_num_buckets": 32,
    }

    def validate(self) -> None:
        super().validate()
        buckets = self.relative_attention_num_buckets
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 32:
            # transformers buckets offsets into 32 whatever the table size (compute_position_bias's default)
            raise ValueError(
                f"config field relative_attention_num_buckets must be an integer >= 32, got {buckets!r}"
            )
