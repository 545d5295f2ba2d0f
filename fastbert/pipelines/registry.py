"""The tasks of ``fastbert.pipeline``: names, aliases, the model classes that serve them.

Imports nothing heavy (no torch), so ``fastbert run`` checks its arguments before loading anything.
"""

from __future__ import annotations

import importlib
from typing import Any

# task -> pipeline class (module.Class in this package), the auto class that loads its model, and the model
# tasks of ``fastbert.registry`` whose classes serve it (None: any); :func:`architectures` names them.
TASKS: dict[str, dict[str, Any]] = {
    "fill-mask": {
        "impl": "fill_mask.FillMaskPipeline",
        "auto": "AutoModelForMaskedLM",
        "architectures": ("masked-lm", "pretraining", "causal-lm"),
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
        "architectures": ("sequence-classification",),
    },
    "token-classification": {
        "impl": "token_classification.TokenClassificationPipeline",
        "auto": "AutoModelForTokenClassification",
        "architectures": ("token-classification",),
    },
    "question-answering": {
        "impl": "question_answering.QuestionAnsweringPipeline",
        "auto": "AutoModelForQuestionAnswering",
        "architectures": ("question-answering",),
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


def architectures(task: str) -> tuple[str, ...] | None:
    """The class names (every family's) that serve a pipeline task, in the task's order; None: any."""
    from fastbert import registry

    kinds = TASKS[task]["architectures"]
    if kinds is None:
        return None
    names = registry.class_names()
    found = tuple(n for kind in kinds for n, (_, t) in names.items() if t == kind)
    if task == "fill-mask":  # ELECTRA's pretraining class is its discriminator: no vocabulary head
        found = tuple(n for n in found if registry.fills_masks(n))
    return found


def task_of_architecture(name: str) -> str | None:
    """The pipeline task a checkpoint of class ``name`` serves by default (None: fastbert has no such class)."""
    from fastbert import registry

    task = _DEFAULT_TASK.get(registry.task_of_class(name))
    return None if task == "fill-mask" and not registry.fills_masks(name) else task


#: the pipeline task a checkpoint of each model task serves when none is given (a causal LM: none)
_DEFAULT_TASK = {
    "base": "feature-extraction",
    "masked-lm": "fill-mask",
    "pretraining": "fill-mask",
    "sequence-classification": "text-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
}


def is_known_architecture(name: str) -> bool:
    from fastbert import registry

    return registry.task_of_class(name) is not None


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
