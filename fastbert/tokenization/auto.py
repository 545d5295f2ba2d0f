"""Which tokenizer class a folder needs, as transformers' ``AutoTokenizer`` decides it: tokenizer_config.json's
``tokenizer_class`` first, then config.json's ``model_type``, then the model of tokenizer.json (WordPiece → BERT,
byte-level BPE → RoBERTa, Unigram → XLM-RoBERTa); a folder that says nothing is BERT's.

``fastbert.AutoTokenizer`` is here too: it imports no torch (a tokenizer alone needs none).
"""

from __future__ import annotations

import json
import os
from typing import Any

from .. import hub, registry
from .base import TokenizerBase
from .bert import BertTokenizer
from .bert_variants import DistilBertTokenizer, ElectraTokenizer, MPNetTokenizer
from .files import (
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    _find_file,
    _read_json_object,
    _read_text,
)
from .modernbert import ModernBertTokenizer
from .roberta import MERGES_FILE, CamembertTokenizer, RobertaTokenizer, XLMRobertaTokenizer

# tokenizer_config.json's tokenizer_class (without "Fast") → class
TOKENIZER_CLASSES: dict[str, type[TokenizerBase]] = {
    "BertTokenizer": BertTokenizer,
    "DistilBertTokenizer": DistilBertTokenizer,
    "ElectraTokenizer": ElectraTokenizer,
    "MPNetTokenizer": MPNetTokenizer,
    "RobertaTokenizer": RobertaTokenizer,
    "XLMRobertaTokenizer": XLMRobertaTokenizer,
    "CamembertTokenizer": CamembertTokenizer,
    "ModernBertTokenizer": ModernBertTokenizer,
}
# tokenizer_config.json's tokenizer_class of transformers' generic fast tokenizer (4's name, then 5's): the
# tokenizer.json's own pipeline
GENERIC_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")
# config.json's model_type → class, as the registry names each family's tokenizer (DistilBERT: transformers
# 4's class, whose output the model takes; ModernBERT's hub folders say PreTrainedTokenizerFast: the model
# type decides)
MODEL_TYPE_TOKENIZERS: dict[str, type[TokenizerBase]] = {
    model_type: TOKENIZER_CLASSES[family.tokenizer] for model_type, family in registry.FAMILIES.items()
}


def _options(kwargs: dict[str, Any]) -> hub.HubOptions:
    """The hub options of ``kwargs`` without taking them out (the class's from_pretrained reads them again)."""
    copy = dict(kwargs)
    token = copy.pop("use_auth_token", None)
    options = hub.HubOptions.pop_from(copy)
    if options.token is None and token is not None:
        options = hub.HubOptions(**{**options.__dict__, "token": token})
    return options


def _read_field(path: str, name: str, field: str, options: hub.HubOptions) -> Any:
    """A field of a JSON file of the folder; None when the file is missing or unreadable (the class's own loading
    then names what is wrong with it)."""
    try:
        found = _find_file(path, name, options)
        return None if found is None else _read_json_object(found).get(field)
    except (OSError, ValueError):
        return None


def _has_file(path: str, name: str, options: hub.HubOptions) -> bool:
    try:
        return _find_file(path, name, options) is not None
    except OSError:
        return False


def _class_from_tokenizer_json(path: str, options: hub.HubOptions) -> type[TokenizerBase] | None:
    """The family a tokenizer.json's model and pre-tokenizer point to (None without a file or a match)."""
    try:
        found = _find_file(path, TOKENIZER_FILE, options)
        data = None if found is None else json.loads(_read_text(found))
    except (OSError, ValueError, RecursionError):
        return None  # the class's own loading names what is wrong with the file
    model = data.get("model") if isinstance(data, dict) else None
    kind = model.get("type") if isinstance(model, dict) else None
    if kind == "WordPiece":
        return BertTokenizer
    if kind == "Unigram":
        return XLMRobertaTokenizer
    if kind == "BPE" and "ByteLevel" in json.dumps(data.get("pre_tokenizer")):
        return RobertaTokenizer
    return None


def _registered_class(name: Any) -> type[TokenizerBase] | None:
    """The user's tokenizer class (``AutoTokenizer.register``) a tokenizer_config.json's ``tokenizer_class``
    names, with or without "Fast" (transformers 5 looks the registered names up before its own)."""
    if not isinstance(name, str):
        return None
    found = registry.REGISTERED_TOKENIZER_NAMES
    return found.get(name) or found.get(name.removesuffix("Fast")) or found.get(f"{name}Fast")


def _registered_for_model_type(model_type: Any) -> type[TokenizerBase] | None:
    """The tokenizer class registered for the config class of config.json's ``model_type`` (the user's, or a
    family's replaced with ``exist_ok=True``)."""
    if not registry.REGISTERED_TOKENIZERS or not isinstance(model_type, str):
        return None
    if model_type not in registry.REGISTERED_CONFIGS and model_type not in registry.FAMILIES:
        return None
    return registry.REGISTERED_TOKENIZERS.get(registry.config_class(model_type))


def tokenizer_class_for(path: str | os.PathLike, **kwargs: Any) -> type[TokenizerBase]:
    """The fastbert tokenizer class of a folder or hub id (``kwargs``: the hub options of ``from_pretrained``).

    A ``tokenizer_class`` or ``model_type`` fastbert has no tokenizer for falls back to what the files are (a
    ``tokenizer.json``'s pipeline, which gives transformers' fast tokenizer's ids, a WordPiece ``vocab.txt``);
    ``ValueError`` names them, with the ones fastbert has, when the files do not say either.
    """
    path = str(path)
    options = _options(kwargs)
    name = _read_field(path, TOKENIZER_CONFIG_FILE, "tokenizer_class", options)
    registered = _registered_class(name)
    if registered is not None:
        return registered
    if isinstance(name, str) and name.removesuffix("Fast") in TOKENIZER_CLASSES:
        return TOKENIZER_CLASSES[name.removesuffix("Fast")]
    model_type = _read_field(path, "config.json", "model_type", options)
    registered = _registered_for_model_type(model_type)
    if registered is not None:
        return registered
    if isinstance(model_type, str) and model_type in MODEL_TYPE_TOKENIZERS:
        return MODEL_TYPE_TOKENIZERS[model_type]
    guessed = _class_from_tokenizer_json(path, options)
    if name in GENERIC_TOKENIZER_CLASSES and guessed is RobertaTokenizer:
        # transformers' generic fast tokenizer uses the file's whole pipeline, as ModernBertTokenizer does (a
        # ModernBERT tokenizer saved alone, without its config.json, says only this)
        return ModernBertTokenizer
    if guessed is not None:
        return guessed
    if _has_file(path, VOCAB_FILE, options):
        return BertTokenizer  # a WordPiece vocab.txt
    said = [f"tokenizer_class {name!r}" if isinstance(name, str) else None]
    said.append(f"model_type {model_type!r}" if isinstance(model_type, str) else None)
    said = [s for s in said if s]
    if not said and _has_file(path, MERGES_FILE, options):
        return RobertaTokenizer  # RoBERTa's slow files: vocab.json + merges.txt
    if said:
        raise ValueError(
            f"{path}: fastbert has no tokenizer for {' / '.join(said)}; it has "
            f"{', '.join(TOKENIZER_CLASSES)} (model types {', '.join(MODEL_TYPE_TOKENIZERS)})"
        )
    return BertTokenizer


def _refuse_remote_code(path: str, options: hub.HubOptions) -> None:
    """A ValueError when the folder names its own tokenizer code for ``AutoTokenizer`` (tokenizer_config.json's
    ``auto_map``, else config.json's when tokenizer_config.json names no ``tokenizer_class``), which
    transformers runs under trust_remote_code=True and fastbert does not: the class fastbert picks in its place
    may split text otherwise."""
    auto_map = _read_field(path, TOKENIZER_CONFIG_FILE, "auto_map", options)
    where = TOKENIZER_CONFIG_FILE
    if isinstance(auto_map, dict):
        auto_map = auto_map.get("AutoTokenizer")
    if auto_map is None and _read_field(path, TOKENIZER_CONFIG_FILE, "tokenizer_class", options) is None:
        auto_map = _read_field(path, "config.json", "auto_map", options)
        where = "config.json"
        auto_map = auto_map.get("AutoTokenizer") if isinstance(auto_map, dict) else None
    if auto_map is not None:  # [slow class, fast class] (transformers 4's), or a list alone (older files)
        raise ValueError(
            f"{path}: {where}'s auto_map names {auto_map!r} for AutoTokenizer, and trust_remote_code=True asks "
            "for that code, which fastbert does not run: load the tokenizer with transformers, or leave "
            "trust_remote_code unset to load fastbert's (as transformers does without it)"
        )


def _generic_normalizer_settings(path: str, options: hub.HubOptions) -> dict[str, Any]:
    """A folder saved by transformers' generic fast tokenizer (``tokenizer_class`` ``PreTrainedTokenizerFast`` /
    ``TokenizersBackend``) is tokenized with its tokenizer.json's normalizer as it is, whatever
    tokenizer_config.json's ``do_lower_case`` says: the settings of the file's BertNormalizer, which
    ``BertTokenizer`` would otherwise replace by transformers' BERT defaults (lower-casing a cased file). Empty for
    any other folder or normalizer."""
    if _read_field(path, TOKENIZER_CONFIG_FILE, "tokenizer_class", options) not in GENERIC_TOKENIZER_CLASSES:
        return {}
    normalizer = _read_field(path, TOKENIZER_FILE, "normalizer", options)
    if not isinstance(normalizer, dict) or normalizer.get("type") != "BertNormalizer":
        return {}
    return {
        "do_lower_case": bool(normalizer.get("lowercase", True)),
        "strip_accents": normalizer.get("strip_accents"),
        "tokenize_chinese_chars": bool(normalizer.get("handle_chinese_chars", True)),
    }


def from_pretrained(path: str | os.PathLike, *args: Any, **kwargs: Any) -> TokenizerBase:
    """The tokenizer of a folder or hub id, of the class :func:`tokenizer_class_for` picks."""
    kwargs.pop("use_fast", None)
    if kwargs.pop("trust_remote_code", None):
        _refuse_remote_code(str(path), _options(kwargs))
    cls = tokenizer_class_for(path, **kwargs)
    if issubclass(cls, BertTokenizer):
        kwargs = {**_generic_normalizer_settings(str(path), _options(kwargs)), **kwargs}
    return cls.from_pretrained(path, *args, **kwargs)


class AutoTokenizer:
    """transformers' ``AutoTokenizer``: ``AutoTokenizer.from_pretrained(path_or_hub_id)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("AutoTokenizer is built with AutoTokenizer.from_pretrained(path_or_hub_id)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """The folder's tokenizer class (tokenizer_config.json's ``tokenizer_class``, else config.json's
        ``model_type``, else tokenizer.json's model) loaded from it: BERT, DistilBERT, ELECTRA, MPNet, RoBERTa,
        XLM-RoBERTa, CamemBERT, ModernBERT."""
        return from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @staticmethod
    def register(
        config_class: type,
        tokenizer_class: type | None = None,
        slow_tokenizer_class: type | None = None,
        fast_tokenizer_class: type | None = None,
        exist_ok: bool = False,
    ) -> None:
        """Registers the user's tokenizer class (a fastbert tokenizer subclass) for configs of ``config_class``,
        as transformers' ``AutoTokenizer.register``: a folder whose config.json has that config's
        ``model_type``, or whose tokenizer_config.json names the class, then loads in it. fastbert has one
        class per tokenizer: transformers 4's ``slow_tokenizer_class`` / ``fast_tokenizer_class`` are taken as
        it (the fast one where both are given). A config class fastbert has is refused unless ``exist_ok=True``.
        """
        if tokenizer_class is None:
            tokenizer_class = (
                fast_tokenizer_class if fast_tokenizer_class is not None else slow_tokenizer_class
            )
        if tokenizer_class is None:  # transformers' words
            raise ValueError("You need to pass a `tokenizer_class`")
        registry.check_config_class(f"AutoTokenizer.register({config_class!r}, ...)", "take", config_class)
        given = [c for c in (tokenizer_class, slow_tokenizer_class, fast_tokenizer_class) if c is not None]
        for candidate in given:
            if not (isinstance(candidate, type) and issubclass(candidate, TokenizerBase)):
                raise ValueError(
                    f"AutoTokenizer.register(..., {candidate!r}): fastbert's AutoTokenizer loads fastbert "
                    "tokenizers, a subclass of one of fastbert's tokenizer classes"
                )
        taken = any(f.config_class() is config_class for f in registry.FAMILIES.values())
        if taken and not exist_ok:  # transformers' words
            raise ValueError(f"'{config_class}' is already used by a Transformers model.")
        for candidate in given:
            registry.REGISTERED_TOKENIZER_NAMES[candidate.__name__] = tokenizer_class
        registry.REGISTERED_TOKENIZERS[config_class] = tokenizer_class
