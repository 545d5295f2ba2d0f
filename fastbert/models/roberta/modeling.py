"""RoBERTa (and, under their names, XLM-RoBERTa and CamemBERT) on the shared engine.

The encoder is BERT's, module for module and name for name (``roberta.encoder.layer.0.attention.self.query``);
what differs is the family's recipe:

- positions: ``padding_idx + 1 + cumsum(non-pad)`` over the padded ``input_ids`` (transformers'
  ``create_position_ids_from_input_ids``), computed before the batch is packed, so left padding gives the
  same positions as right padding; with ``inputs_embeds`` the positions are ``padding_idx + 1 ...`` (every
  token real, as transformers assumes). The longest input is ``max_position_embeddings - padding_idx - 1``.
- the position table has ``padding_idx`` (its row is zero at initialisation, as transformers').
- heads with transformers' names: ``lm_head`` (dense + GELU + ``layer_norm`` + tied decoder), the
  sequence-classification head without a pooler (``classifier.dense`` + tanh + ``classifier.out_proj``
  on ``<s>``), multiple choice on the pooler, ``RobertaForCausalLM`` a decoder like ``BertLMHeadModel``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ...core.ops import OpTable
from ..bert import modeling as bert
from ..engine import BertInputs, BertModel, BertPreTrainedModel, Encoded
from ..heads import _classifier_dropout
from ..layers import BertEmbeddings, _Module, dense_act, embedding
from .config import RobertaConfig


class RobertaEmbeddings(BertEmbeddings):
    """BERT's embeddings with a ``padding_idx`` on the position table (transformers' names)."""

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.position_embeddings = embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=self.padding_idx
        )


def position_ids_from_input_ids(
    input_ids: torch.Tensor, padding_idx: int, past_length: int = 0
) -> torch.Tensor:
    """(B, L) ids -> (B, L) positions: ``padding_idx`` on padding, ``padding_idx + 1 + (number of real
    tokens up to here) + past_length`` on real tokens (fairseq's ``make_positions``, as transformers)."""
    mask = input_ids.ne(padding_idx).int()
    return ((torch.cumsum(mask, dim=1).type_as(mask) + past_length) * mask).long() + padding_idx


def positions_needed(input_ids: torch.Tensor, padding_idx: int, past_length: int = 0) -> int:
    """How many positions after ``padding_idx`` :func:`position_ids_from_input_ids` takes: the longest row of
    real tokens plus ``past_length`` (padding takes position ``padding_idx``, not one of its own, so a batch
    padded past the length limit runs, as in transformers, when its real rows fit). A host read."""
    return int(input_ids.ne(padding_idx).sum(-1).max()) + past_length


class RobertaLMHead(_Module):
    """transformers' ``RobertaLMHead``: dense + GELU (erf) + ``layer_norm`` + ``decoder`` (tied)."""

    ties_decoder_bias = True

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        if getattr(config, "tie_word_embeddings", True):  # untied: the decoder's own bias (as BERT's head)
            self.decoder.bias = self.bias

    def forward(self, features: torch.Tensor, ops: OpTable) -> torch.Tensor:
        return self.decoder(dense_act(ops, self.dense, features, "gelu", self.layer_norm))


class RobertaClassificationHead(_Module):
    """transformers' ``RobertaClassificationHead``: on ``<s>``, dropout, dense, tanh, dropout, out_proj."""

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = _classifier_dropout(config)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        """(B, H) states of the first position -> (B, num_labels)."""
        x = torch.tanh(self.dense(self.dropout(first)))
        return self.out_proj(self.dropout(x))


class RobertaPreTrainedModel(BertPreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"

    def _lm_head(self) -> nn.Module | None:
        return getattr(self, "lm_head", None)


class RobertaModel(RobertaPreTrainedModel, BertModel):
    """The bare RoBERTa encoder (transformers' ``RobertaModel``), with an optional pooler."""

    embeddings_class = RobertaEmbeddings

    @classmethod
    def length_limit(cls, cfg) -> tuple[int, str]:
        if cfg.pad_token_id is None:  # no positions of its own (see _default_position_ids): the table's size
            n = cfg.max_position_embeddings
            return n, f"max_position_embeddings ({n})"
        n = cfg.max_position_embeddings - cfg.pad_token_id - 1
        return n, (
            f"the model's limit of {n} tokens (max_position_embeddings {cfg.max_position_embeddings} - "
            f"padding_idx {cfg.pad_token_id} - 1)"
        )

    def _positions_needed(self, inputs: BertInputs, past_length: int) -> int:
        # padding takes position padding_idx, not one of its own: a batch padded past the limit runs (as in
        # transformers) when its longest row of real tokens fits
        pad = self.config.pad_token_id
        if inputs.input_ids is None or pad is None:
            return super()._positions_needed(inputs, past_length)
        return positions_needed(inputs.input_ids, pad, past_length)

    def _default_position_ids(
        self, inputs: BertInputs, batch: int, seqlen: int, past_length: int
    ) -> torch.Tensor:
        pad = self.config.pad_token_id
        if pad is None:  # transformers fails too (a TypeError): its positions start after the padding id
            raise ValueError(
                f"{type(self).__name__} computes its positions from pad_token_id (padding_idx + 1 + ...), but "
                "config.pad_token_id is null: set pad_token_id in the config (1 in RoBERTa, XLM-RoBERTa and "
                "CamemBERT) or pass position_ids"
            )
        if inputs.input_ids is not None:
            return position_ids_from_input_ids(inputs.input_ids, pad, past_length)
        # inputs_embeds: every position is taken as real (transformers cannot tell padding there)
        device = inputs.inputs_embeds.device
        return torch.arange(pad + 1, seqlen + pad + 1, dtype=torch.long, device=device).expand(batch, seqlen)


RobertaPreTrainedModel.base_model_class = RobertaModel


class RobertaForCausalLM(RobertaPreTrainedModel, bert.BertLMHeadModel):
    """RoBERTa as a causal language model (``is_decoder=True``), as ``BertLMHeadModel``."""

    _tied_weights_keys = {
        "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)  # not the BERT head's own modules
        if not config.is_decoder:
            warnings.warn(
                f"{type(self).__name__} is meant to be used with is_decoder=True in the config", stacklevel=2
            )
        self._new_base(config, add_pooling_layer=False)
        self.lm_head = RobertaLMHead(config)
        self.post_init()


class RobertaForMaskedLM(RobertaPreTrainedModel, bert.BertForMaskedLM):
    _tied_weights_keys = RobertaForCausalLM._tied_weights_keys

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)  # not the BERT head's own modules
        if config.is_decoder:
            warnings.warn(
                f"{type(self).__name__} wants bi-directional attention: set is_decoder=False", stacklevel=2
            )
        self._new_base(config, add_pooling_layer=False)
        self.lm_head = RobertaLMHead(config)
        self.post_init()


class RobertaForSequenceClassification(RobertaPreTrainedModel, bert.BertForSequenceClassification):
    """The classification head on ``<s>`` (no pooler): ``classifier.dense`` + tanh + ``classifier.out_proj``."""

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)  # not the BERT head's own modules
        self.num_labels = config.num_labels
        self._new_base(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.post_init()

    def head(self, enc: Encoded, **targets):
        # position 0 (zeros where it is padding on the packed paths, as BERT's pooler), packed or padded
        return self.classifier(enc.first_token())


class RobertaForMultipleChoice(RobertaPreTrainedModel, bert.BertForMultipleChoice):
    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)  # not the BERT head's own modules
        self._new_base(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)  # transformers': not classifier_dropout
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        token_type_ids=None,
        attention_mask=None,
        labels=None,
        position_ids=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """transformers' argument order of RoBERTa's multiple-choice head (token types before the mask)."""
        return self._run(BertInputs.of(locals()), return_dict, labels=labels)


class RobertaForTokenClassification(RobertaPreTrainedModel, bert.BertForTokenClassification):
    pass


class RobertaForQuestionAnswering(RobertaPreTrainedModel, bert.BertForQuestionAnswering):
    pass


MODEL_CLASSES: dict[str, type[RobertaPreTrainedModel]] = {
    cls.__name__: cls
    for cls in (
        RobertaModel,
        RobertaForCausalLM,
        RobertaForMaskedLM,
        RobertaForSequenceClassification,
        RobertaForMultipleChoice,
        RobertaForTokenClassification,
        RobertaForQuestionAnswering,
    )
}
