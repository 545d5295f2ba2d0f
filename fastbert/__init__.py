"""fastbert: a drop-in accelerated BERT for PyTorch.

Public names mirror Hugging Face transformers' BERT family and the encoders on the same engine (RoBERTa,
XLM-RoBERTa, CamemBERT, DistilBERT, ELECTRA, MPNet, ModernBERT). Imports are lazy: ``import fastbert``
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
    "BertPreTrainedModel": "fastbert.models.engine",
    "BertModel": "fastbert.models.engine",
    "BertForPreTraining": "fastbert.models.bert.modeling",
    "BertLMHeadModel": "fastbert.models.bert.modeling",
    "BertForMaskedLM": "fastbert.models.bert.modeling",
    "BertForNextSentencePrediction": "fastbert.models.bert.modeling",
    "BertForSequenceClassification": "fastbert.models.bert.modeling",
    "BertForMultipleChoice": "fastbert.models.bert.modeling",
    "BertForTokenClassification": "fastbert.models.bert.modeling",
    "BertForQuestionAnswering": "fastbert.models.bert.modeling",
    # the RoBERTa family (fastbert.models: one package per family)
    "RobertaConfig": "fastbert.models.roberta.config",
    "RobertaPreTrainedModel": "fastbert.models.roberta.modeling",
    "RobertaModel": "fastbert.models.roberta.modeling",
    "RobertaForCausalLM": "fastbert.models.roberta.modeling",
    "RobertaForMaskedLM": "fastbert.models.roberta.modeling",
    "RobertaForSequenceClassification": "fastbert.models.roberta.modeling",
    "RobertaForMultipleChoice": "fastbert.models.roberta.modeling",
    "RobertaForTokenClassification": "fastbert.models.roberta.modeling",
    "RobertaForQuestionAnswering": "fastbert.models.roberta.modeling",
    "XLMRobertaConfig": "fastbert.models.xlm_roberta.config",
    "XLMRobertaPreTrainedModel": "fastbert.models.xlm_roberta.modeling",
    "XLMRobertaModel": "fastbert.models.xlm_roberta.modeling",
    "XLMRobertaForCausalLM": "fastbert.models.xlm_roberta.modeling",
    "XLMRobertaForMaskedLM": "fastbert.models.xlm_roberta.modeling",
    "XLMRobertaForSequenceClassification": "fastbert.models.xlm_roberta.modeling",
    "XLMRobertaForMultipleChoice": "fastbert.models.xlm_roberta.modeling",
    "XLMRobertaForTokenClassification": "fastbert.models.xlm_roberta.modeling",
    "XLMRobertaForQuestionAnswering": "fastbert.models.xlm_roberta.modeling",
    "CamembertConfig": "fastbert.models.camembert.config",
    "CamembertPreTrainedModel": "fastbert.models.camembert.modeling",
    "CamembertModel": "fastbert.models.camembert.modeling",
    "CamembertForCausalLM": "fastbert.models.camembert.modeling",
    "CamembertForMaskedLM": "fastbert.models.camembert.modeling",
    "CamembertForSequenceClassification": "fastbert.models.camembert.modeling",
    "CamembertForMultipleChoice": "fastbert.models.camembert.modeling",
    "CamembertForTokenClassification": "fastbert.models.camembert.modeling",
    "CamembertForQuestionAnswering": "fastbert.models.camembert.modeling",
    # DistilBERT
    "DistilBertConfig": "fastbert.models.distilbert.config",
    "DistilBertPreTrainedModel": "fastbert.models.distilbert.modeling",
    "DistilBertModel": "fastbert.models.distilbert.modeling",
    "DistilBertForMaskedLM": "fastbert.models.distilbert.modeling",
    "DistilBertForSequenceClassification": "fastbert.models.distilbert.modeling",
    "DistilBertForMultipleChoice": "fastbert.models.distilbert.modeling",
    "DistilBertForTokenClassification": "fastbert.models.distilbert.modeling",
    "DistilBertForQuestionAnswering": "fastbert.models.distilbert.modeling",
    # MPNet
    "MPNetConfig": "fastbert.models.mpnet.config",
    "MPNetPreTrainedModel": "fastbert.models.mpnet.modeling",
    "MPNetModel": "fastbert.models.mpnet.modeling",
    "MPNetForMaskedLM": "fastbert.models.mpnet.modeling",
    "MPNetForSequenceClassification": "fastbert.models.mpnet.modeling",
    "MPNetForMultipleChoice": "fastbert.models.mpnet.modeling",
    "MPNetForTokenClassification": "fastbert.models.mpnet.modeling",
    "MPNetForQuestionAnswering": "fastbert.models.mpnet.modeling",
    # ModernBERT
    "ModernBertConfig": "fastbert.models.modernbert.config",
    "ModernBertPreTrainedModel": "fastbert.models.modernbert.modeling",
    "ModernBertModel": "fastbert.models.modernbert.modeling",
    "ModernBertForMaskedLM": "fastbert.models.modernbert.modeling",
    "ModernBertForSequenceClassification": "fastbert.models.modernbert.modeling",
    "ModernBertForMultipleChoice": "fastbert.models.modernbert.modeling",
    "ModernBertForTokenClassification": "fastbert.models.modernbert.modeling",
    "ModernBertForQuestionAnswering": "fastbert.models.modernbert.modeling",
    # ELECTRA
    "ElectraConfig": "fastbert.models.electra.config",
    "ElectraPreTrainedModel": "fastbert.models.electra.modeling",
    "ElectraModel": "fastbert.models.electra.modeling",
    "ElectraForPreTraining": "fastbert.models.electra.modeling",
    "ElectraForCausalLM": "fastbert.models.electra.modeling",
    "ElectraForMaskedLM": "fastbert.models.electra.modeling",
    "ElectraForSequenceClassification": "fastbert.models.electra.modeling",
    "ElectraForMultipleChoice": "fastbert.models.electra.modeling",
    "ElectraForTokenClassification": "fastbert.models.electra.modeling",
    "ElectraForQuestionAnswering": "fastbert.models.electra.modeling",
    # auto classes
    "AutoConfig": "fastbert.auto",
    "AutoTokenizer": "fastbert.tokenization.auto",
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
# submodules the documentation calls through the package after a plain ``import fastbert``
# (``fastbert.hub.embedded_model_path()``, ``fastbert.quant.refresh(model)``), loaded on first use
_SUBMODULES = ("hub", "quant")


class FunctionModule(types.ModuleType):
    """The class of a module named after its main function: calling the module calls the function, so the
    package attribute means the same thing whether the module or the function was looked up first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"fastbert.{name}")
        globals()[name] = value
        return value
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
