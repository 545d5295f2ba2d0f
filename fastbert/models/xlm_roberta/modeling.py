"""XLM-RoBERTa: RoBERTa's classes (``fastbert.models.roberta``) under transformers' ``XLMRoberta*`` names and
``XLMRobertaConfig``; the same module tree and parameter names (``roberta.encoder.layer.0 ...``)."""

from __future__ import annotations

from ..roberta import modeling as roberta
from .config import XLMRobertaConfig


class XLMRobertaPreTrainedModel(roberta.RobertaPreTrainedModel):
    config_class = XLMRobertaConfig


class XLMRobertaModel(XLMRobertaPreTrainedModel, roberta.RobertaModel):
    """The bare XLM-RoBERTa encoder, with an optional pooler."""


XLMRobertaPreTrainedModel.base_model_class = XLMRobertaModel


class XLMRobertaForCausalLM(XLMRobertaPreTrainedModel, roberta.RobertaForCausalLM):
    pass


class XLMRobertaForMaskedLM(XLMRobertaPreTrainedModel, roberta.RobertaForMaskedLM):
    pass


class XLMRobertaForSequenceClassification(
    XLMRobertaPreTrainedModel, roberta.RobertaForSequenceClassification
):
    pass


class XLMRobertaForMultipleChoice(XLMRobertaPreTrainedModel, roberta.RobertaForMultipleChoice):
    pass


class XLMRobertaForTokenClassification(XLMRobertaPreTrainedModel, roberta.RobertaForTokenClassification):
    pass


class XLMRobertaForQuestionAnswering(XLMRobertaPreTrainedModel, roberta.RobertaForQuestionAnswering):
    pass
