"""ELECTRA on the shared engine: BERT's layers (``electra.encoder.layer.0.attention.self.query`` ...) with
the family's own recipe:

- embeddings ``embedding_size`` wide (word, position, token type, LayerNorm), projected to ``hidden_size``
  by ``embeddings_project`` when the two differ (on the packed tokens, before the first layer); no pooler.
- heads with transformers' names: ``discriminator_predictions`` (``ElectraForPreTraining``: dense +
  ``hidden_act`` + ``dense_prediction``, a BCE loss over the attended tokens), ``generator_predictions`` +
  ``generator_lm_head`` (``ElectraForMaskedLM`` / ``ElectraForCausalLM``: dense to ``embedding_size`` + GELU +
  LayerNorm + the decoder tied to the word embeddings), the classification head on the first token
  (dense + GELU + ``out_proj``) and the multiple-choice ``sequence_summary``.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ... import outputs
from ...core.ops import OpTable, activation
from ..bert import modeling as bert
from ..engine import BertInputs, BertModel, BertPreTrainedModel, Encoded
from ..heads import _BertHead, _classifier_dropout, head_dropout
from ..layers import BertEmbeddings, BertEncoder, _Module, dense_act
from .config import SUMMARY_TYPES, ElectraConfig


@dataclass
class ElectraForPreTrainingOutput(outputs.ModelOutput):
    """transformers' ``ElectraForPreTrainingOutput``: ``logits`` (B, L), one score per token."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class ElectraEmbeddings(BertEmbeddings):
    """BERT's embeddings, ``embedding_size`` wide (transformers' names)."""

    def __init__(self, config: ElectraConfig):
        narrow = copy.copy(config)
        narrow.hidden_size = config.embedding_size  # every table and the LayerNorm are embedding_size wide
        super().__init__(narrow)


class ElectraDiscriminatorPredictions(_Module):
    """dense + ``hidden_act`` + ``dense_prediction``: one score per token, (..., 1)."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.hidden_act = config.hidden_act
        self.dense_prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor, ops: OpTable) -> torch.Tensor:
        return self.dense_prediction(dense_act(ops, self.dense, hidden_states, self.hidden_act))


class ElectraGeneratorPredictions(_Module):
    """dense (hidden_size -> embedding_size) + GELU + LayerNorm."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)

    def forward(self, hidden_states: torch.Tensor, ops: OpTable) -> torch.Tensor:
        return dense_act(ops, self.dense, hidden_states, "gelu", self.LayerNorm)


class ElectraClassificationHead(_Module):
    """On the first token: dropout, dense, GELU, dropout, out_proj (transformers' ``ElectraClassificationHead``)."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = activation("gelu")
        self.dropout = _classifier_dropout(config)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        """(B, H) states of the first position -> (B, num_labels)."""
        x = self.activation(self.dense(self.dropout(first)))
        return self.out_proj(self.dropout(x))


class ElectraSequenceSummary(_Module):
    """transformers' ``ElectraSequenceSummary`` for ``summary_type`` first / last / mean / cls_index (the
    last token, as there without a ``cls_index`` argument): the summary vector, an optional projection
    (``summary``), ``summary_activation`` and dropouts."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.summary_type = config.summary_type
        if self.summary_type == "attn":  # transformers' ElectraSequenceSummary raises this too
            raise NotImplementedError(
                "config field summary_type 'attn' is not implemented (in transformers neither): the "
                f"multiple-choice head takes one of {SUMMARY_TYPES}"
            )
        if self.summary_type not in SUMMARY_TYPES:
            raise ValueError(
                f"config field summary_type must be one of {SUMMARY_TYPES} for the multiple-choice head, got "
                f"{self.summary_type!r}"
            )
        self.summary = nn.Identity()
        if getattr(config, "summary_use_proj", False):
            to_labels = getattr(config, "summary_proj_to_labels", False) and config.num_labels > 0
            self.summary = nn.Linear(
                config.hidden_size, config.num_labels if to_labels else config.hidden_size
            )
        name = getattr(config, "summary_activation", None)
        self.activation = activation(name, "summary_activation") if name else nn.Identity()
        # absent, null or 0: none (transformers' Identity); a bad value refused by its name
        for field, attr in (
            ("summary_first_dropout", "first_dropout"),
            ("summary_last_dropout", "last_dropout"),
        ):
            none = getattr(config, field, None) in (None, 0)
            setattr(self, attr, nn.Identity() if none else head_dropout(config, field))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, H) -> (B, H or num_labels)."""
        if self.summary_type == "first":
            x = hidden_states[:, 0]
        elif self.summary_type in ("last", "cls_index"):
            x = hidden_states[:, -1]
        else:  # "mean" (__init__ refuses the others)
            x = hidden_states.mean(dim=1)
        return self.summarize(x)

    def summarize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H) summary vector (the first token's states, ...) -> (B, H or num_labels)."""
        return self.last_dropout(self.activation(self.summary(self.first_dropout(x))))


class ElectraPreTrainedModel(BertPreTrainedModel):
    config_class = ElectraConfig
    base_model_prefix = "electra"

    def get_output_embeddings(self) -> nn.Linear | None:
        return self._modules.get("generator_lm_head")

    def _lm_logits(self, hidden_states: torch.Tensor, ops: OpTable) -> torch.Tensor:
        return self.generator_lm_head(self.generator_predictions(hidden_states, ops))


class ElectraModel(ElectraPreTrainedModel, BertModel):
    """The bare ELECTRA encoder (transformers' ``ElectraModel``): no pooler; ``embeddings_project`` when
    ``embedding_size != hidden_size``."""

    output_class = outputs.BaseModelOutputWithPastAndCrossAttentions

    def __init__(self, config: ElectraConfig, add_pooling_layer: bool = False):
        BertPreTrainedModel.__init__(self, config)  # not BertModel's modules
        self.embeddings = ElectraEmbeddings(config)
        if config.embedding_size != config.hidden_size:
            self.embeddings_project = nn.Linear(config.embedding_size, config.hidden_size)
        self.encoder = BertEncoder(config)
        self.pooler = None  # ELECTRA has none (``add_pooling_layer`` is accepted for the shared heads)
        self.post_init()


ElectraPreTrainedModel.base_model_class = ElectraModel

_GENERATOR_TIED = {"generator_lm_head.weight": "electra.embeddings.word_embeddings.weight"}


class ElectraForPreTraining(ElectraPreTrainedModel, _BertHead):
    """The discriminator: one score per token (replaced or original)."""

    per_token = True

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self._new_base(config)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        inputs = BertInputs.of(locals())
        return self._run(inputs, return_dict, labels=labels, attention_mask=attention_mask)

    def allow_pack(self, inputs, labels=None, attention_mask=None) -> bool:
        return True  # the loss reads the attended positions only

    def head(self, enc: Encoded, **targets):
        return enc.per_token(self.discriminator_predictions).squeeze(-1)  # (B, L)

    def loss(self, logits, labels=None, attention_mask=None):
        """transformers': BCE with logits over the attended positions (all positions without a mask)."""
        if labels is None:
            return None
        if attention_mask is not None:
            active = attention_mask.view(-1, logits.shape[1]) == 1
            return F.binary_cross_entropy_with_logits(
                logits.view(-1, logits.shape[1])[active], labels[active].float()
            )
        return F.binary_cross_entropy_with_logits(logits.view(-1, logits.shape[1]), labels.float())

    def output(self, loss, logits, enc):
        return ElectraForPreTrainingOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class ElectraForMaskedLM(ElectraPreTrainedModel, bert.BertForMaskedLM):
    """The generator: ``generator_predictions`` + ``generator_lm_head`` (tied to the word embeddings)."""

    _tied_weights_keys = _GENERATOR_TIED

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self._new_base(config)
        self.generator_predictions = ElectraGeneratorPredictions(config)
        self.generator_lm_head = nn.Linear(config.embedding_size, config.vocab_size)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """transformers' argument order of the generator (no encoder states: ``labels`` sixth)."""
        return self._run(BertInputs.of(locals()), return_dict, labels=labels)


class ElectraForCausalLM(ElectraPreTrainedModel, bert.BertLMHeadModel):
    """The generator as a causal language model (``is_decoder=True``), as ``BertLMHeadModel``."""

    _tied_weights_keys = _GENERATOR_TIED

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        if not config.is_decoder:
            warnings.warn(
                "ElectraForCausalLM is meant to be used with is_decoder=True in the config", stacklevel=2
            )
        self._new_base(config)
        self.generator_predictions = ElectraGeneratorPredictions(config)
        self.generator_lm_head = nn.Linear(config.embedding_size, config.vocab_size)
        self.post_init()


class ElectraForSequenceClassification(ElectraPreTrainedModel, bert.BertForSequenceClassification):
    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self._new_base(config)
        self.classifier = ElectraClassificationHead(config)
        self.post_init()

    def head(self, enc: Encoded, **targets):
        # position 0 (zeros where it is padding on the packed paths, as BERT's pooler), packed or padded
        return self.classifier(enc.first_token())


class ElectraForMultipleChoice(ElectraPreTrainedModel, bert.BertForMultipleChoice):
    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self._new_base(config)
        self.sequence_summary = ElectraSequenceSummary(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def allow_pack(self, inputs, labels=None, num_choices=None):
        """``summary_type`` "mean" and "last" read padded positions too (transformers averages over every
        position, padding included, and "last" is padding on the right): padded, as transformers computes
        them. "first" reads position 0 (the packed rule of the first-token heads)."""
        return self.sequence_summary.summary_type == "first"

    def head(self, enc: Encoded, labels=None, num_choices=None):
        summary = self.sequence_summary
        if summary.summary_type == "first":  # position 0, packed or padded (as the first-token heads)
            return self.classifier(summary.summarize(enc.first_token())).view(-1, num_choices)
        return self.classifier(summary(enc.last_hidden_state)).view(-1, num_choices)


class ElectraForTokenClassification(ElectraPreTrainedModel, bert.BertForTokenClassification):
    pass


class ElectraForQuestionAnswering(ElectraPreTrainedModel, bert.BertForQuestionAnswering):
    pass
