"""CamemBERT: RoBERTa's classes (``fastbert.models.roberta``) under transformers' ``Camembert*`` names and
``CamembertConfig``; the same module tree and parameter names (``roberta.encoder.layer.0 ...``)."""

from __future__ import annotations

from ..roberta import modeling as roberta
from .config import CamembertConfig


class CamembertPreTrainedModel(roberta.RobertaPreTrainedModel):
    config_class = CamembertConfig


class CamembertModel(CamembertPreTrainedModel, roberta.RobertaModel):
    """The bare CamemBERT encoder, with an optional pooler."""


CamembertPreTrainedModel.base_model_class = CamembertModel


class CamembertForCausalLM(CamembertPreTrainedModel, roberta.RobertaForCausalLM):
    pass


class CamembertForMaskedLM(CamembertPreTrainedModel, roberta.RobertaForMaskedLM):
    pass


class CamembertForSequenceClassification(CamembertPreTrainedModel, roberta.RobertaForSequenceClassification):
    pass


class CamembertForMultipleChoice(CamembertPreTrainedModel, roberta.RobertaForMultipleChoice):
    pass


class CamembertForTokenClassification(CamembertPreTrainedModel, roberta.RobertaForTokenClassification):
    pass


class CamembertForQuestionAnswering(CamembertPreTrainedModel, roberta.RobertaForQuestionAnswering):
    pass
