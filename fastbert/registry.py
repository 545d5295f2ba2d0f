"""``model_type`` → the family's config class and model classes: the one place that knows which families
fastbert has. The Auto classes, ``from_transformers``, ``accelerate``, ``fastbert check`` and the pipelines
look families up here; nothing else keys on ``"bert"``.

Each family names its classes per task (transformers' auto-class mapping: ``base`` is ``AutoModel``,
``masked-lm`` is ``AutoModelForMaskedLM`` ...); the classes are imported on first use, so this module
imports no model code.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

#: the tasks of the Auto classes, in transformers' order
TASKS = (
    "base",
    "pretraining",
    "causal-lm",
    "masked-lm",
    "next-sentence-prediction",
    "sequence-classification",
    "multiple-choice",
    "token-classification",
    "question-answering",
)

#: transformers' names of the query/key/value projections of the families' attention modules: BERT's
#: family (and ELECTRA, ModernBERT's fused ``Wqkv`` aside), DistilBERT's, MPNet's
HF_QKV_NAMES = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"), ("q", "k", "v"))


@dataclass(frozen=True)
class Family:
    """One ``model_type``: where its config and classes live, and its class name per task."""

    model_type: str
    config: str  # "module:ClassName"
    module: str  # the module that defines every model class of the family
    classes: dict[str, str] = field(default_factory=dict)  # task -> class name
    #: the ``pretraining`` class has a masked-LM head (BERT's; not ELECTRA's discriminator)
    fill_mask_pretraining: bool = True
    #: the task whose class ``AutoModelForPreTraining`` builds: transformers maps the families without a
    #: ``ForPreTraining`` class (RoBERTa's, DistilBERT, MPNet) to their masked LM; ModernBERT has neither
    auto_pretraining: str = "pretraining"
    #: the family's tokenizer class in :mod:`fastbert.tokenization` (``AutoTokenizer`` by ``model_type``)
    tokenizer: str = "BertTokenizer"

    def config_class(self) -> type:
        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)

    def model_class(self, task: str) -> type:
        """The family's class for ``task``; ValueError naming the family's tasks when it has none."""
        name = self.classes.get(task)
        if name is None:
            raise ValueError(
                f"model_type {self.model_type!r} has no {task} class in fastbert (it has: "
                f"{', '.join(f'{t} ({n})' for t, n in self.classes.items())})"
            )
        return getattr(importlib.import_module(self.module), name)


def _family(
    model_type: str,
    config: str,
    module: str,
    prefix: str,
    tasks: tuple[str, ...],
    fill_mask_pretraining: bool = True,
    auto_pretraining: str = "pretraining",
    **names: str,
) -> Family:
    """A family whose class names are ``prefix`` + transformers' suffix of each task."""
    suffix = {
        "base": "Model",
        "pretraining": "ForPreTraining",
        "causal-lm": "ForCausalLM",
        "masked-lm": "ForMaskedLM",
        "next-sentence-prediction": "ForNextSentencePrediction",
        "sequence-classification": "ForSequenceClassification",
        "multiple-choice": "ForMultipleChoice",
        "token-classification": "ForTokenClassification",
        "question-answering": "ForQuestionAnswering",
    }
    classes = {t: names.get(t.replace("-", "_"), prefix + suffix[t]) for t in tasks}
    return Family(
        model_type, config, module, classes, fill_mask_pretraining, auto_pretraining, prefix + "Tokenizer"
    )


#: the tasks of an encoder family without pre-training or causal-LM classes (MPNet, ModernBERT, DistilBERT)
_ENCODER_TASKS = (
    "base",
    "masked-lm",
    "sequence-classification",
    "multiple-choice",
    "token-classification",
    "question-answering",
)
_ROBERTA_TASKS = (
    "base",
    "causal-lm",
    "masked-lm",
    "sequence-classification",
    "multiple-choice",
    "token-classification",
    "question-answering",
)

FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        _family(
            "bert",
            "fastbert.config:BertConfig",
            "fastbert.models.bert.modeling",
            "Bert",
            TASKS,
            causal_lm="BertLMHeadModel",
        ),
        _family(
            "mpnet",
            "fastbert.models.mpnet.config:MPNetConfig",
            "fastbert.models.mpnet.modeling",
            "MPNet",
            _ENCODER_TASKS,
            auto_pretraining="masked-lm",
        ),
        _family(
            "modernbert",
            "fastbert.models.modernbert.config:ModernBertConfig",
            "fastbert.models.modernbert.modeling",
            "ModernBert",
            _ENCODER_TASKS,
        ),
        _family(
            "roberta",
            "fastbert.models.roberta.config:RobertaConfig",
            "fastbert.models.roberta.modeling",
            "Roberta",
            _ROBERTA_TASKS,
            auto_pretraining="masked-lm",
        ),
        _family(
            "distilbert",
            "fastbert.models.distilbert.config:DistilBertConfig",
            "fastbert.models.distilbert.modeling",
            "DistilBert",
            _ENCODER_TASKS,
            auto_pretraining="masked-lm",
        ),
        _family(
            "electra",
            "fastbert.models.electra.config:ElectraConfig",
            "fastbert.models.electra.modeling",
            "Electra",
            tuple(t for t in TASKS if t != "next-sentence-prediction"),
            fill_mask_pretraining=False,  # ElectraForPreTraining is the discriminator: no MLM head
        ),
        _family(
            "xlm-roberta",
            "fastbert.models.xlm_roberta.config:XLMRobertaConfig",
            "fastbert.models.xlm_roberta.modeling",
            "XLMRoberta",
            _ROBERTA_TASKS,
            auto_pretraining="masked-lm",
        ),
        _family(
            "camembert",
            "fastbert.models.camembert.config:CamembertConfig",
            "fastbert.models.camembert.modeling",
            "Camembert",
            _ROBERTA_TASKS,
            auto_pretraining="masked-lm",
        ),
    )
}


#: the classes a user registered with ``AutoConfig.register`` / ``AutoModel*.register`` (transformers' custom
#: classes), looked up before the families: ``model_type`` -> config class, (config class, the Auto class's task)
#: -> model class
REGISTERED_CONFIGS: dict[str, type] = {}
REGISTERED_MODELS: dict[tuple[type, str], type] = {}
#: ``AutoTokenizer.register``: config class -> the user's tokenizer class; and every registered tokenizer class by
#: its name (tokenizer_config.json's ``tokenizer_class``)
REGISTERED_TOKENIZERS: dict[type, type] = {}
REGISTERED_TOKENIZER_NAMES: dict[str, type] = {}


def check_config_class(call: str, verb: str, config_class: Any) -> None:
    """A ValueError naming ``call`` unless ``config_class`` is a fastbert config class (what the Auto classes'
    ``register`` take: transformers' own are refused)."""
    from .config import BertConfig

    if not (isinstance(config_class, type) and issubclass(config_class, BertConfig)):
        raise ValueError(
            f"{call}: fastbert's Auto classes {verb} fastbert configs, a subclass of fastbert.BertConfig (or of "
            "another family's config class)"
        )


def supported_model_types() -> list[str]:
    return sorted(FAMILIES)


def family(model_type: str | None) -> Family:
    """The family of ``model_type`` (None: BERT, as a config.json without ``model_type`` is read); a
    ValueError naming it and listing the supported ones otherwise."""
    if model_type is None:
        model_type = "bert"
    found = FAMILIES.get(model_type)
    if found is None:
        raise ValueError(
            f"model_type {model_type!r} is not supported by fastbert; supported model types: "
            f"{', '.join(supported_model_types())} (transformers' own Auto classes load the others)"
        )
    return found


def config_class(model_type: str | None) -> type:
    registered = REGISTERED_CONFIGS.get("bert" if model_type is None else model_type)
    return registered if registered is not None else family(model_type).config_class()


def model_class(model_type: str | None, task: str) -> type:
    return family(model_type).model_class(task)


def class_names() -> dict[str, tuple[str, str]]:
    """Every model class name fastbert has → (model_type, task)."""
    return {name: (f.model_type, task) for f in FAMILIES.values() for task, name in f.classes.items()}


def class_by_name(name: str) -> type | None:
    """The fastbert class named ``name`` (transformers' class name), None when fastbert has none."""
    found = class_names().get(name)
    return None if found is None else model_class(*found)


def fills_masks(name: str) -> bool:
    """Whether the class ``name`` has a masked-LM head (masked / causal LM, BERT's pretraining heads)."""
    found = class_names().get(name)
    if found is None:
        return False
    model_type, task = found
    return task in ("masked-lm", "causal-lm") or (
        task == "pretraining" and FAMILIES[model_type].fill_mask_pretraining
    )


def task_of_class(name: str) -> str | None:
    """The task of a class name (``RobertaForMaskedLM`` → ``masked-lm``), None when unknown."""
    found = class_names().get(name)
    return None if found is None else found[1]


def max_input_tokens(config: Any) -> int | None:
    """The longest input (special tokens included) the config's position table takes, by its family's own
    rule (the base model's ``length_limit``: ``max_position_embeddings``, less the padding offset in the
    families whose positions start after the padding index: a RoBERTa of 514 positions takes 512 tokens, as
    TEI computes); None without a table."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    found = FAMILIES.get(getattr(config, "model_type", None))
    return positions if found is None else found.model_class("base").length_limit(config)[0]


def model_type_of(data: dict[str, Any], name_or_path: str | os.PathLike | None = None) -> str | None:
    """The ``model_type`` a config.json's object names. Checkpoints in the wild often have none: then the
    family of its first ``architectures`` class fastbert knows (``RobertaForMaskedLM`` -> ``roberta``), else
    transformers 4's rule, the longest ``model_type`` found in the name or path (``.../distilbert-base-uncased``
    -> ``distilbert``; one of transformers' that fastbert lacks, ``.../albert-base-v2``: ValueError); None (read
    as BERT) when neither says."""
    model_type = data.get("model_type")
    if isinstance(model_type, str):
        return model_type
    names = class_names()
    for name in data.get("architectures") or ():
        if isinstance(name, str) and name in names:
            return names[name][0]
    where = os.fspath(name_or_path) if name_or_path is not None else ""
    for pattern in sorted((*FAMILIES, *_OTHER_MODEL_TYPES), key=len, reverse=True):
        if pattern in where:
            if pattern not in FAMILIES:
                raise ValueError(
                    f"{where}: config.json has no model_type, and its name reads as transformers' {pattern!r} "
                    "model (transformers 4's rule: the longest model type in the name), which fastbert does not "
                    f"support; supported model types: {', '.join(supported_model_types())} (add model_type to "
                    "config.json if the checkpoint is one of these)"
                )
            return pattern
    return None


#: transformers' model types that hold a supported one in their name (``albert`` holds ``bert``): transformers 4
#: reads a config.json without model_type as the longest model type in its path, so ``.../albert-base-v2`` is
#: ALBERT there, not BERT. Not ``ibert`` / ``hubert``: words of other names (``antiberty``, a user ``hubert``),
#: and models whose config.json has always had a model_type
_OTHER_MODEL_TYPES = (
    "albert",
    "bert-generation",
    "convbert",
    "deberta",
    "deberta-v2",
    "flaubert",
    "megatron-bert",
    "mobilebert",
    "modernbert-decoder",
    "nomic_bert",
    "rembert",
    "roberta-prelayernorm",
    "roc_bert",
    "squeezebert",
    "visual_bert",
    "wav2vec2-bert",
    "xlm-roberta-xl",
)


def load_config(pretrained_model_name_or_path: str | os.PathLike, hub: Any = None, **kwargs: Any):
    """The config of a folder, file or hub id, as the class of its ``model_type`` (:func:`model_type_of`)."""
    from .config import find_config_file, read_config_json
    from .hub import HubOptions

    if hub is None:
        hub = HubOptions.pop_from(kwargs)
    config_file = find_config_file(pretrained_model_name_or_path, hub)
    cls = config_class(model_type_of(read_config_json(config_file), pretrained_model_name_or_path))
    return cls.from_pretrained(config_file, hub=hub, **kwargs)


def config_from_dict(data: dict[str, Any]):
    """A config of the class of ``data``'s model type (:func:`model_type_of`; ValueError for an unsupported
    one)."""
    return config_class(model_type_of(data)).from_dict(
        {k: v for k, v in data.items() if not k.startswith("_")}
    )
