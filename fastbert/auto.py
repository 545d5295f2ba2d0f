"""``AutoConfig``, ``AutoTokenizer`` and ``AutoModel*``: transformers' auto classes for the BERT family.

An ``AutoModelFor*`` class builds the class named in config.json's ``architectures`` when that class
serves its task, and falls back to the task's BERT class otherwise (a checkpoint saved from
``BertForPreTraining`` loads in ``AutoModelForMaskedLM`` as ``BertForMaskedLM``, a config without
``architectures`` or with a foreign name such as ``AntiBERTy`` loads as the class asked for).
"""

from __future__ import annotations

import os
from typing import Any

from .config import BertConfig


class AutoConfig:
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> BertConfig:
        return BertConfig.from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def for_model(cls, model_type: str = "bert", **kwargs: Any) -> BertConfig:
        if model_type != "bert":
            raise ValueError(f"fastbert only has BERT models, not {model_type!r}")
        return BertConfig(**kwargs)


class AutoTokenizer:
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        from .tokenization import BertTokenizerFast

        kwargs.pop("use_fast", None)
        kwargs.pop("trust_remote_code", None)
        return BertTokenizerFast.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


class _AutoModel:
    default: str = "BertModel"
    accepts: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(f"{type(self).__name__} is built with from_pretrained(...) or from_config(config)")

    @classmethod
    def _class_for(cls, config: BertConfig):
        from .modeling import MODEL_CLASSES

        for name in config.architectures or ():
            if name in cls.accepts:
                return MODEL_CLASSES[name]
        return MODEL_CLASSES[cls.default]

    @classmethod
    def from_config(cls, config: BertConfig, **kwargs: Any):
        attn = kwargs.pop("attn_implementation", None)
        model = cls._class_for(config)(config, **kwargs)
        if attn is not None:
            model.set_attn_implementation(attn)
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        config = kwargs.pop("config", None)
        if not isinstance(config, BertConfig):
            hub = {
                k: kwargs[k]
                for k in ("revision", "cache_dir", "local_files_only", "token", "subfolder")
                if k in kwargs
            }
            config = BertConfig.from_pretrained(config or pretrained_model_name_or_path, **hub)
        return cls._class_for(config).from_pretrained(
            pretrained_model_name_or_path, *args, config=config, **kwargs
        )


def _auto(name: str, default: str, accepts: tuple[str, ...]) -> type[_AutoModel]:
    return type(
        name, (_AutoModel,), {"default": default, "accepts": accepts, "__doc__": f"Builds {default}."}
    )


AutoModel = _auto("AutoModel", "BertModel", ("BertModel",))
AutoModelForPreTraining = _auto("AutoModelForPreTraining", "BertForPreTraining", ("BertForPreTraining",))
AutoModelForCausalLM = _auto("AutoModelForCausalLM", "BertLMHeadModel", ("BertLMHeadModel",))
AutoModelForMaskedLM = _auto("AutoModelForMaskedLM", "BertForMaskedLM", ("BertForMaskedLM",))
AutoModelForNextSentencePrediction = _auto(
    "AutoModelForNextSentencePrediction", "BertForNextSentencePrediction", ("BertForNextSentencePrediction",)
)
AutoModelForSequenceClassification = _auto(
    "AutoModelForSequenceClassification", "BertForSequenceClassification", ("BertForSequenceClassification",)
)
AutoModelForMultipleChoice = _auto(
    "AutoModelForMultipleChoice", "BertForMultipleChoice", ("BertForMultipleChoice",)
)
AutoModelForTokenClassification = _auto(
    "AutoModelForTokenClassification", "BertForTokenClassification", ("BertForTokenClassification",)
)
AutoModelForQuestionAnswering = _auto(
    "AutoModelForQuestionAnswering", "BertForQuestionAnswering", ("BertForQuestionAnswering",)
)
