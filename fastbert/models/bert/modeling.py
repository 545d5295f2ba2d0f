"""BERT: its head modules and transformers' nine classes, on the shared engine (``fastbert.models.engine``).

Module and parameter names are transformers' (``bert.encoder.layer.0.attention.self.query.weight`` ...),
so checkpoints load and save unchanged.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ... import outputs
from ...config import BertConfig
from ...core.ops import OpTable, activation
from ...generation import GenerationMixin
from ..engine import BertInputs, BertModel, BertPreTrainedModel
from ..heads import (
    _CAUSAL_LOSS_KWARGS,
    _BertHead,
    _check_shape,
    _classifier_dropout,
    _shifted_labels,
    fixed_cross_entropy,
)
from ..layers import _Module, dense_act


class BertPredictionHeadTransform(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.hidden_act = config.hidden_act
        self.transform_act_fn = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, ops: OpTable):
        return dense_act(ops, self.dense, hidden_states, self.hidden_act, self.LayerNorm)


class BertLMPredictionHead(_Module):
    #: ``decoder.bias`` is ``self.bias`` (tied by ``tie_weights``; zeroed by ``_init_weights``) when the word
    #: embeddings are tied; with ``tie_word_embeddings=False`` the decoder keeps a bias of its own (as
    #: transformers 5, whose checkpoints then hold two different tensors)
    ties_decoder_bias = True

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        if getattr(config, "tie_word_embeddings", True):
            self.decoder.bias = self.bias

    def forward(self, hidden_states, ops: OpTable):
        return self.decoder(self.transform(hidden_states, ops))


class BertOnlyMLMHead(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output, ops: OpTable):
        return self.predictions(sequence_output, ops)


class BertOnlyNSPHead(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output):
        return self.seq_relationship(pooled_output)


class BertPreTrainingHeads(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output, pooled_output, ops: OpTable):
        return self.predictions(sequence_output, ops), self.seq_relationship(pooled_output)


class BertForPreTraining(_BertHead):
    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self._new_base(config)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        next_sentence_label=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return self._run(
            BertInputs.of(locals()), return_dict, labels=labels, next_sentence_label=next_sentence_label
        )

    def target_shapes(self, inputs):
        shape = inputs.batch_shape()
        return {"labels": shape, "next_sentence_label": shape and shape[:1]}

    def head(self, enc, **targets):
        return enc.per_token(self.cls.predictions), self.cls.seq_relationship(enc.pooled)

    def loss(self, logits, labels=None, next_sentence_label=None):
        if labels is None or next_sentence_label is None:
            return None
        prediction_scores, seq_relationship_score = logits
        return F.cross_entropy(
            prediction_scores.view(-1, self.config.vocab_size), labels.view(-1)
        ) + F.cross_entropy(seq_relationship_score.view(-1, 2), next_sentence_label.view(-1))

    def output(self, loss, logits, enc):
        return outputs.BertForPreTrainingOutput(
            loss=loss,
            prediction_logits=logits[0],
            seq_relationship_logits=logits[1],
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
        )


class BertLMHeadModel(GenerationMixin, _BertHead):
    """BERT as a causal language model (``is_decoder=True``), with cross-attention when configured;
    ``generate`` from ``fastbert.generation``."""

    _tied_weights_keys = BertForPreTraining._tied_weights_keys
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if not config.is_decoder:
            warnings.warn(
                "BertLMHeadModel is meant to be used with is_decoder=True in the config", stacklevel=2
            )
        self._new_base(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        labels=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        cache=None,
        logits_to_keep=0,
        **kwargs,
    ):
        """transformers' arguments; ``logits_to_keep`` (an int: the last n positions, 0 = all; or a tensor of
        positions) limits the head to those positions; the loss keyword arguments of transformers' causal-LM
        loss (``num_items_in_batch``, ``shift_labels``, ``ignore_index``) are taken from ``kwargs``."""
        loss_kwargs = {k: kwargs.pop(k) for k in _CAUSAL_LOSS_KWARGS if k in kwargs}
        inputs = BertInputs.of(locals())
        if labels is not None:
            inputs.use_cache = False
        return self._run(inputs, return_dict, labels=labels, logits_to_keep=logits_to_keep, **loss_kwargs)

    def target_shapes(self, inputs):
        """None: transformers' causal loss shifts the labels along their last dimension before flattening them,
        so a flattened (B * L,) or a (B, L, 1) tensor is not read as the (B, L) one; check_targets refuses it."""
        return {}

    def check_targets(self, inputs, labels=None, logits_to_keep=0, **targets):
        """``labels`` cover the positions the head keeps, as transformers' loss reads them against the kept
        logits: every position, or those ``logits_to_keep`` keeps."""
        shape = inputs.batch_shape(2)
        if shape is not None and not (isinstance(logits_to_keep, int) and logits_to_keep == 0):
            if isinstance(logits_to_keep, int):
                kept = len(range(shape[1])[-logits_to_keep:])
            else:
                kept = torch.arange(shape[1])[logits_to_keep.cpu()].shape[-1]
            shape = (shape[0], kept)
        _check_shape("labels", labels, shape)

    def allow_pack(self, inputs, labels=None, shift_labels=None, ignore_index=-100, **targets):
        """Packed only when no padded position's logits reach the loss (the labels are shifted here)."""
        if labels is None or inputs.attention_mask is None:
            return True
        targets_ = _shifted_labels(labels, shift_labels, ignore_index)
        if targets_.shape != inputs.attention_mask.shape:
            return False
        return bool((targets_[inputs.attention_mask == 0] == ignore_index).all())

    def head(self, enc, logits_to_keep=0, **targets):
        if isinstance(logits_to_keep, int) and logits_to_keep == 0:
            return enc.per_token(self._lm_logits)
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        # positions of the padded layout: (B, kept, V) under packed_outputs() too (their dim() tells them apart)
        return self._lm_logits(enc.padded_sequence[:, keep], enc.ops)

    def loss(
        self, logits, labels=None, shift_labels=None, num_items_in_batch=None, ignore_index=-100, **targets
    ):
        """transformers' ``ForCausalLMLoss``: token t predicts token t + 1 (or ``shift_labels``), in fp32; summed
        and divided by ``num_items_in_batch`` when it is given, else the mean over the labelled tokens."""
        if labels is None:
            return None
        targets_ = _shifted_labels(labels, shift_labels, ignore_index).reshape(-1).to(logits.device)
        logits = logits.float().view(-1, self.config.vocab_size)
        return fixed_cross_entropy(logits, targets_, num_items_in_batch, ignore_index)

    def output(self, loss, logits, enc):
        return outputs.CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=enc.past_key_values,
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
            cross_attentions=enc.cross_attentions,
        )


class BertForMaskedLM(_BertHead):
    _tied_weights_keys = BertForPreTraining._tied_weights_keys
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if config.is_decoder:
            warnings.warn(
                "BertForMaskedLM wants bi-directional attention: set is_decoder=False", stacklevel=2
            )
        self._new_base(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return self._run(BertInputs.of(locals()), return_dict, labels=labels)

    def head(self, enc, **targets):
        return enc.per_token(self._lm_logits)

    def loss(self, logits, labels=None):
        if labels is None:
            return None
        return F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.view(-1))

    def output(self, loss, logits, enc):
        return outputs.MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForNextSentencePrediction(_BertHead):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self._new_base(config)
        self.cls = BertOnlyNSPHead(config)
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
        if (
            "next_sentence_label" in kwargs
        ):  # transformers 4's deprecated name of ``labels`` (a FutureWarning)
            warnings.warn(
                "The `next_sentence_label` argument is deprecated and will be removed in a future version, use "
                "`labels` instead.",
                FutureWarning,
                stacklevel=2,
            )
            labels = kwargs.pop("next_sentence_label")
        return super().forward(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, labels,
            output_attentions, output_hidden_states, return_dict, **kwargs,
        )  # fmt: skip

    def head(self, enc, **targets):
        return self.cls(enc.pooled)

    def loss(self, logits, labels=None):
        return None if labels is None else F.cross_entropy(logits.view(-1, 2), labels.view(-1))

    def output(self, loss, logits, enc):
        return outputs.NextSentencePredictorOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForSequenceClassification(_BertHead):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._new_base(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def target_shapes(self, inputs):
        return {}  # regression / multi-label labels, per-choice labels, positions: checked by the head

    def check_targets(self, inputs, labels=None):
        batch = inputs.batch_shape(1)
        if labels is None or batch is None:
            return
        n = labels.shape[0] if labels.dim() else 1  # a 0-d label: one input's (transformers: labels.view(-1))
        if n != batch[0]:
            raise ValueError(f"labels has batch size {n}, the input has {batch[0]}")

    def head(self, enc, **targets):
        return self.classifier(self.dropout(enc.pooled))

    def loss(self, logits, labels=None):
        if labels is None:
            return None
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze())
            return F.mse_loss(logits, labels)
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        if tuple(labels.shape) != tuple(logits.shape):
            raise ValueError(
                f"multi-label labels must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}"
            )
        return F.binary_cross_entropy_with_logits(logits, labels)

    def output(self, loss, logits, enc):
        return outputs.SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForMultipleChoice(_BertHead):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self._new_base(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def _run(self, inputs: BertInputs, return_dict: bool | None, labels=None):
        ref = inputs.reference
        if ref is None or ref.dim() < (3 if inputs.input_ids is not None else 4):  # embeds: (B, C, L, H)
            raise ValueError(
                "BertForMultipleChoice takes input of shape (batch, num_choices, sequence_length)"
            )
        _check_shape("labels", labels, ref.shape[:1])
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds"):
            t = getattr(inputs, name)
            if t is not None:  # (batch, choices, ...) → (batch * choices, ...)
                tail = t.shape[-2:] if name == "inputs_embeds" else t.shape[-1:]  # as transformers' view
                setattr(inputs, name, t.reshape(-1, *tail))
        return super()._run(inputs, return_dict, labels=labels, num_choices=ref.shape[1])

    def target_shapes(self, inputs):
        return {}  # regression / multi-label labels, per-choice labels, positions: checked by the head

    def check_targets(self, inputs, labels=None, num_choices=None):
        pass  # checked against the unflattened batch in forward

    def allow_pack(self, inputs, labels=None, num_choices=None):
        return True

    def head(self, enc, labels=None, num_choices=None):
        return self.classifier(self.dropout(enc.pooled)).view(-1, num_choices)

    def loss(self, logits, labels=None, num_choices=None):
        return None if labels is None else F.cross_entropy(logits, labels)

    def output(self, loss, logits, enc):
        return outputs.MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForTokenClassification(_BertHead):
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._new_base(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def head(self, enc, **targets):
        return enc.per_token(lambda x, ops: self.classifier(self.dropout(x)))

    def loss(self, logits, labels=None):
        return None if labels is None else F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))

    def output(self, loss, logits, enc):
        return outputs.TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForQuestionAnswering(_BertHead):
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._new_base(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return self._run(
            BertInputs.of(locals()), return_dict, start_positions=start_positions, end_positions=end_positions
        )

    def target_shapes(self, inputs):
        return {}  # regression / multi-label labels, per-choice labels, positions: checked by the head

    def check_targets(self, inputs, start_positions=None, end_positions=None):
        pass

    def allow_pack(self, inputs, start_positions=None, end_positions=None):
        return start_positions is None and end_positions is None

    def head(self, enc, **targets):
        logits = enc.per_token(lambda x, ops: self.qa_outputs(x))
        start_logits, end_logits = logits.split(1, dim=-1)
        return start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()

    def loss(self, logits, start_positions=None, end_positions=None, num_items_in_batch=None):
        """transformers' QA loss; ``num_items_in_batch`` (ModernBERT's, through ``ForQuestionAnsweringLoss``)
        turns each mean into a sum divided by it."""
        if start_positions is None or end_positions is None:
            return None
        start_logits, end_logits = logits
        if start_positions.dim() > 1:
            start_positions = start_positions.squeeze(-1)
        if end_positions.dim() > 1:
            end_positions = end_positions.squeeze(-1)
        ignored_index = start_logits.size(1)  # positions outside the input are ignored, as transformers
        start_positions = start_positions.clamp(0, ignored_index)
        end_positions = end_positions.clamp(0, ignored_index)
        return (
            fixed_cross_entropy(start_logits, start_positions, num_items_in_batch, ignored_index)
            + fixed_cross_entropy(end_logits, end_positions, num_items_in_batch, ignored_index)
        ) / 2

    def output(self, loss, logits, enc):
        return outputs.QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=logits[0],
            end_logits=logits[1],
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
        )


MODEL_CLASSES: dict[str, type[BertPreTrainedModel]] = {
    cls.__name__: cls
    for cls in (
        BertModel,
        BertForPreTraining,
        BertLMHeadModel,
        BertForMaskedLM,
        BertForNextSentencePrediction,
        BertForSequenceClassification,
        BertForMultipleChoice,
        BertForTokenClassification,
        BertForQuestionAnswering,
    )
}
