"""fastbert: a drop-in accelerated BERT for PyTorch.

Public names mirror Hugging Face transformers' BERT family. Imports are lazy: ``import fastbert``
imports neither triton nor transformers; each name is loaded from its module on first use.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    # configuration and tokenizers
    "BertConfig": "fastbert.config",
    "BertTokenizer": "fastbert.tokenization",
    "BertTokenizerFast": "fastbert.tokenization",
    "BertTokenizerLayer": "fastbert.tokenization.layer",
    **{
        f"{family}Tokenizer{fast}": "fastbert.tokenization"
        for family in ("Roberta", "XLMRoberta", "Camembert", "DistilBert", "Electra", "MPNet")
        for fast in ("", "Fast")
    },
    "BatchEncoding": "fastbert.encoding",
    # models
    "BertPreTrainedModel": "fastbert.modeling",
    "BertModel": "fastbert.modeling",
    "BertForPreTraining": "fastbert.modeling",
    "BertLMHeadModel": "fastbert.modeling",
    "BertForMaskedLM": "fastbert.modeling",
    "BertForNextSentencePrediction": "fastbert.modeling",
    "BertForSequenceClassification": "fastbert.modeling",
    "BertForMultipleChoice": "fastbert.modeling",
    "BertForTokenClassification": "fastbert.modeling",
    "BertForQuestionAnswering": "fastbert.modeling",
    # auto classes
    "AutoConfig": "fastbert.auto",
    "AutoTokenizer": "fastbert.auto",
    "AutoModel": "fastbert.auto",
    "AutoModelForPreTraining": "fastbert.auto",
    "AutoModelForCausalLM": "fastbert.auto",
    "AutoModelForMaskedLM": "fastbert.auto",
    "AutoModelForNextSentencePrediction": "fastbert.auto",
    "AutoModelForSequenceClassification": "fastbert.auto",
    "AutoModelForMultipleChoice": "fastbert.auto",
    "AutoModelForTokenClassification": "fastbert.auto",
    "AutoModelForQuestionAnswering": "fastbert.auto",
    # conversion, pipelines
    "from_transformers": "fastbert.auto",
    "accelerate": "fastbert.accelerate",
    "pipeline": "fastbert.pipelines",
    "embed": "fastbert.embed",
    # reduced precision (a load-time transform)
    "quantize": "fastbert.quant",
}

# modules that are also their main function: ``fastbert.embed(...)`` and ``fastbert.embed.read_output``
_FUNCTION_MODULES = ("accelerate", "embed")


class FunctionModule(types.ModuleType):
    """The class of a module named after its main function: calling the module calls the function, so the
    package attribute means the same thing whether the module or the function was looked up first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastbert' has no attribute {name!r}")
    value = importlib.import_module(module)
    if name not in _FUNCTION_MODULES:
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
