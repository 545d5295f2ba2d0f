"""The tasks of ``fastbert.pipeline``: names, aliases, the model classes that serve them.

Imports nothing heavy (no torch), so ``fastbert run`` checks its arguments before loading anything.
"""

from __future__ import annotations

import importlib
from typing import Any

# task -> pipeline class (module.Class in this package), the auto class that loads its model, the BERT architectures that serve it
# (None: any), and the architecture a folder of that task saves.
TASKS: dict[str, dict[str, Any]] = {
    "fill-mask": {
        "impl": "fill_mask.FillMaskPipeline",
        "auto": "AutoModelForMaskedLM",
        "architectures": ("BertForMaskedLM", "BertForPreTraining", "BertLMHeadModel"),
    },
    "feature-extraction": {
        "impl": "feature_extraction.FeatureExtractionPipeline",
        "auto": "AutoModel",
        "architectures": None,
    },
    "sentence-embedding": {
        "impl": "sentence_embedding.SentenceEmbeddingPipeline",
        "auto": "AutoModel",
        "architectures": None,
    },
    "text-classification": {
        "impl": "text_classification.TextClassificationPipeline",
        "auto": "AutoModelForSequenceClassification",
        "architectures": ("BertForSequenceClassification",),
    },
    "token-classification": {
        "impl": "token_classification.TokenClassificationPipeline",
        "auto": "AutoModelForTokenClassification",
        "architectures": ("BertForTokenClassification",),
    },
    "question-answering": {
        "impl": "question_answering.QuestionAnsweringPipeline",
        "auto": "AutoModelForQuestionAnswering",
        "architectures": ("BertForQuestionAnswering",),
    },
}

TASK_ALIASES = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "sentence-embeddings": "sentence-embedding",
    "embedding": "sentence-embedding",
    "embeddings": "sentence-embedding",
    "qa": "question-answering",
}

# The tasks that run on the MiniLM that ships offline when no model is given.
DEFAULT_MODEL_TASKS = ("feature-extraction", "sentence-embedding")

# Loaded model classes that serve each task (their own name; names not starting with "Bert" pass).
_MODEL_CLASSES = {
    "fill-mask": ("BertForMaskedLM",),
    "text-classification": ("BertForSequenceClassification",),
    "token-classification": ("BertForTokenClassification",),
    "question-answering": ("BertForQuestionAnswering",),
}

_ARCH_TASK = {
    "BertForMaskedLM": "fill-mask",
    "BertForPreTraining": "fill-mask",
    "BertForSequenceClassification": "text-classification",
    "BertForTokenClassification": "token-classification",
    "BertForQuestionAnswering": "question-answering",
    "BertModel": "feature-extraction",
}


def check_task(task: str) -> str:
    """The canonical name of a task (aliases resolved); a ValueError listing the tasks otherwise."""
    name = TASK_ALIASES.get(task, task)
    if name not in TASKS:
        listing = ", ".join(list(TASKS) + [f"{a} (= {t})" for a, t in TASK_ALIASES.items()])
        raise ValueError(f"unknown task {task!r}: fastbert's pipeline has {listing}")
    return name


def task_class(task: str) -> type:
    """The pipeline class of a (canonical) task name, imported on first use."""
    module, name = TASKS[task]["impl"].rsplit(".", 1)
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)
