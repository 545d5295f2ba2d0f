"""``fastbert.pipeline``: transformers' ``pipeline`` for the BERT tasks, without transformers.

```python
from fastbert import pipeline
fill = pipeline("fill-mask", model="google-bert/bert-base-uncased", torch_dtype=torch.float16, device=0)
fill("Plants create [MASK] through a process known as photosynthesis.")
```

Tasks: fill-mask, feature-extraction, sentence-embedding, text-classification (sentiment-analysis),
token-classification (ner), question-answering. Each returns what transformers' pipeline returns
for the same model and input. Inputs are sorted by length into batches (``batch_size``), results
come back in input order; generators are read a window at a time.
"""

from __future__ import annotations

import importlib
from typing import Any

from .cli import add_cli_arguments, cli_main
from .registry import TASK_ALIASES, check_task

__all__ = [
    "SUPPORTED_TASKS",
    "TASK_ALIASES",
    "Pipeline",
    "FillMaskPipeline",
    "FeatureExtractionPipeline",
    "SentenceEmbeddingPipeline",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "QuestionAnsweringPipeline",
    "pipeline",
    "check_task",
    "add_cli_arguments",
    "cli_main",
]

# imported on first use: ``fastbert run`` parses and checks its arguments without importing torch
_LAZY = {
    "Pipeline": "base",
    "FillMaskPipeline": "fill_mask",
    "FeatureExtractionPipeline": "feature_extraction",
    "SentenceEmbeddingPipeline": "sentence_embedding",
    "TextClassificationPipeline": "text_classification",
    "TokenClassificationPipeline": "token_classification",
    "QuestionAnsweringPipeline": "question_answering",
    "pipeline": "factory",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    elif name == "SUPPORTED_TASKS":  # task -> {"impl": its pipeline class, "auto": ..., "architectures": ...}
        from .registry import TASKS, task_class

        value = {task: {**spec, "impl": task_class(task)} for task, spec in TASKS.items()}
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
