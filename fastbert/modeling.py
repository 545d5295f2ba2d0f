"""The BERT classes and the shared engine, under the module name they have always had.

The code lives in :mod:`fastbert.models`: the shared layers (``models/layers.py``), the base class and
the packed driver (``models/engine.py``), the head protocol (``models/heads.py``) and one package per
family (``models/bert``, ``models/roberta`` ...). This module re-exports BERT's names so that
``from fastbert.modeling import BertModel, MODEL_CLASSES`` keeps working.
"""

from __future__ import annotations

from .models.bert.modeling import (
    MODEL_CLASSES,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertLMHeadModel,
    BertLMPredictionHead,
    BertOnlyMLMHead,
    BertOnlyNSPHead,
    BertPredictionHeadTransform,
    BertPreTrainingHeads,
)
from .models.engine import BertInputs, BertModel, BertPreTrainedModel, Encoded
from .models.layers import (
    BertAttention,
    BertEmbeddings,
    BertEncoder,
    BertIntermediate,
    BertOutput,
    BertPooler,
    BertSelfAttention,
    BertSelfOutput,
    LayerContext,
)

__all__ = [
    "MODEL_CLASSES",
    "BertAttention",
    "BertEmbeddings",
    "BertEncoder",
    "BertForMaskedLM",
    "BertForMultipleChoice",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertInputs",
    "BertIntermediate",
    "BertLMHeadModel",
    "BertLMPredictionHead",
    "BertModel",
    "BertOnlyMLMHead",
    "BertOnlyNSPHead",
    "BertOutput",
    "BertPooler",
    "BertPreTrainedModel",
    "BertPredictionHeadTransform",
    "BertPreTrainingHeads",
    "BertSelfAttention",
    "BertSelfOutput",
    "Encoded",
    "LayerContext",
]
