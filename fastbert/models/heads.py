"""What every head class shares: the head protocol (``_BertHead``: head, loss, output on the shared
encoder's result) and the loss helpers, as transformers computes them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import BertConfig
from ..core.padding import _PACKED_OUTPUTS
from .engine import BertInputs, BertPreTrainedModel, Encoded


# --------------------------------------------------------------------------------------------- heads
def _labels_ignore_padding(labels: torch.Tensor | None, attention_mask: torch.Tensor | None) -> bool:
    """Per-token labels that ignore (-100) every padded position: the loss then needs no padded logits,
    and the forward may run on packed tokens. Otherwise it runs padded, so the loss equals transformers'."""
    if labels is None or attention_mask is None:
        return True
    if labels.shape != attention_mask.shape:
        return False
    return bool((labels[attention_mask == 0] == -100).all())


def refuse_packed_labels(head, labels: torch.Tensor | None, allow_pack: bool) -> None:
    """Per-token labels of a forward that may pack, inside :func:`~fastbert.core.padding.packed_outputs`
    (inference only): its logits would come back packed (real tokens, ...) against (batch, seqlen) labels.
    Refused by name before the forward runs (the loss failed on mismatched batch sizes after it)."""
    if labels is not None and allow_pack and _PACKED_OUTPUTS.get():
        raise ValueError(
            f"{type(head).__name__} got labels inside fastbert.core.padding.packed_outputs(), which is for "
            "inference: its per-token logits come back packed (real tokens, ...) and the loss reads (batch, "
            "seqlen) labels; compute the loss outside packed_outputs()"
        )


def loss_kwargs_of(head, kwargs: dict) -> dict:
    """The Trainer's loss keyword arguments (``num_items_in_batch``) that ``head`` uses, as its transformers
    class does (its ``loss_kwargs``), taken out of a forward's ``kwargs``; the others are dropped there."""
    return {k: kwargs.pop(k) for k in getattr(head, "loss_kwargs", ()) if k in kwargs}


def fixed_cross_entropy(source, target, num_items_in_batch=None, ignore_index: int = -100) -> torch.Tensor:
    """transformers' ``fixed_cross_entropy``: the mean, or with ``num_items_in_batch`` (the Trainer's count of
    labelled items over the accumulated batches) the sum divided by it."""
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = F.cross_entropy(source, target, ignore_index=ignore_index, reduction=reduction)
    if num_items_in_batch is not None:
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


def conform_targets(head, inputs: BertInputs, targets: dict) -> dict:
    """``targets`` as transformers' losses read them (through ``view(-1)``): flattened (B * L,) token labels
    of a per-token head as (B, L), and a trailing dimension of 1 dropped ((B, 1) next-sentence or
    classification labels, (B, L, 1) token labels), for the targets whose shape the head knows
    (:meth:`_BertHead.target_shapes`); any other shape is left for the head's check to refuse."""
    out = dict(targets)
    for name, shape in head.target_shapes(inputs).items():
        t = out.get(name)
        if not isinstance(t, torch.Tensor) or shape is None or tuple(t.shape) == tuple(shape):
            continue
        n = len(shape)
        flattened = t.dim() == 1 and t.numel() == math.prod(shape)
        trailing_ones = tuple(t.shape[:n]) == tuple(shape) and all(d == 1 for d in t.shape[n:])
        if flattened or trailing_ones:
            out[name] = t.reshape(shape)
    return out


def _check_shape(name: str, t: torch.Tensor | None, shape: tuple | None) -> None:
    """A target of the wrong shape: a ValueError before the forward runs."""
    if t is not None and shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}")


class _BertHead(BertPreTrainedModel):
    """A head on the shared encoder: each class says what its head computes, its loss and its output.

    ``per_token`` heads run on the packed tokens (and re-pad their logits once); the others read the
    pooled first token.
    """

    per_token = False

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
        return self._run(BertInputs.of(locals()), return_dict, labels=labels)

    def _run(self, inputs: BertInputs, return_dict: bool | None, **targets):
        targets = conform_targets(self, inputs, targets)
        self.check_targets(inputs, **targets)
        allow_pack = self.allow_pack(inputs, **targets)
        if self.per_token:
            refuse_packed_labels(self, targets.get("labels"), allow_pack)
        enc = self._base().encode(inputs, keep_packed=self.per_token, allow_pack=allow_pack)
        logits = self.head(enc, **targets)
        return self._return(self.output(self.loss(logits, **targets), logits, enc), return_dict)

    def target_shapes(self, inputs: BertInputs) -> dict[str, tuple | None]:
        """The shape of each target whose shape is fixed by the input's (None: unknown yet), as
        :func:`conform_targets` and :meth:`check_targets` read them; heads whose targets take other shapes
        (regression, multi-label, choices, positions) say none."""
        return {"labels": inputs.batch_shape(2 if self.per_token else 1)}

    def check_targets(self, inputs: BertInputs, **targets) -> None:
        for name, shape in self.target_shapes(inputs).items():
            _check_shape(name, targets.get(name), shape)

    def allow_pack(self, inputs: BertInputs, labels=None, **targets) -> bool:
        return not self.per_token or _labels_ignore_padding(labels, inputs.attention_mask)

    def head(self, enc: Encoded, **targets):
        """The logits of this head (from the encoder's result)."""
        raise NotImplementedError

    def loss(self, logits, **targets):
        """The loss against the targets; None when they are not given."""
        raise NotImplementedError

    def output(self, loss, logits, enc: Encoded):
        raise NotImplementedError


#: transformers' causal-LM loss keyword arguments (``ForCausalLMLoss``)
_CAUSAL_LOSS_KWARGS = ("num_items_in_batch", "shift_labels", "ignore_index")


def _shifted_labels(
    labels: torch.Tensor, shift_labels: torch.Tensor | None, ignore_index: int
) -> torch.Tensor:
    """The target of each position: ``shift_labels`` when given, else the next position's label."""
    if shift_labels is not None:
        return shift_labels
    return F.pad(labels, (0, 1), value=ignore_index)[..., 1:]


def _classifier_dropout(config: BertConfig) -> nn.Dropout:
    """The classification heads' dropout: ``classifier_dropout``, else ``hidden_dropout_prob`` (always that in
    a family whose transformers heads ignore ``classifier_dropout``: MPNet)."""
    p = config.classifier_dropout
    if p is None or not getattr(config, "heads_use_classifier_dropout", True):
        p = config.hidden_dropout_prob
    return nn.Dropout(p)


def head_dropout(config: BertConfig, field: str) -> nn.Dropout:
    """``nn.Dropout`` of a head's own dropout field (DistilBERT's ``qa_dropout`` / ``seq_classif_dropout``,
    ELECTRA's summary dropouts), read by that head only as in transformers; a value that is no probability is
    refused naming the field (torch's message named none, and let NaN or a string through to a later error)."""
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"config field {field} is a dropout probability: it must be in [0, 1], got {value!r}"
        )
    return nn.Dropout(value)


class NoTokenTypesHead:
    """The ``forward`` of a head that takes ``labels`` in a family without token types (MPNet, ModernBERT), in
    transformers' argument order (so positional calls mean the same); a BERT tokenizer's ``token_type_ids``
    keyword is dropped, as transformers does. Mixed in before the family's head class."""

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop("token_type_ids", None)
        loss_kwargs = loss_kwargs_of(self, kwargs)
        return self._run(BertInputs.of(locals()), return_dict, labels=labels, **loss_kwargs)


class NoTokenTypesQAHead:
    """:class:`NoTokenTypesHead` for the question-answering head (start and end positions as targets)."""

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop("token_type_ids", None)
        return self._run(
            BertInputs.of(locals()), return_dict, start_positions=start_positions, end_positions=end_positions
        )
