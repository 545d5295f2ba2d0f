"""``AutoConfig``, ``AutoModel*`` (transformers' auto classes) and ``from_transformers``
(a loaded transformers model → fastbert, sharing its weights). ``AutoTokenizer`` lives with the
tokenizers (:mod:`fastbert.tokenization.auto`), which import no torch.

The family comes from config.json's ``model_type`` through :mod:`fastbert.registry` (a config
without ``model_type`` is BERT's); an ``AutoModelFor*`` class builds that family's class for its task (a
checkpoint saved from ``BertForPreTraining`` loads in ``AutoModelForMaskedLM`` as ``BertForMaskedLM``).
A ``model_type`` fastbert does not have is refused with one ``ValueError`` that names it and lists the
supported ones, unless the user's own classes are registered for it (``AutoConfig.register``,
``AutoModel*.register``, as transformers').
"""

from __future__ import annotations

import os
from typing import Any

from . import registry
from .config import BertConfig


class AutoConfig:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(
            "AutoConfig is built with AutoConfig.from_pretrained(...) or AutoConfig.for_model(model_type)"
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> BertConfig:
        kwargs.pop("code_revision", None)  # transformers' AutoConfig consumes it (remote code, not run here)
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        loaded = registry.load_config(pretrained_model_name_or_path, **kwargs)
        # (config, unused keywords) with return_unused_kwargs=True
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        _refuse_remote_code(pretrained_model_name_or_path, config, ("AutoConfig",), trust_remote_code)
        # as transformers' AutoConfig (not the config classes): where it was read from, which a model built on it
        # keeps (the pipelines load its tokenizer from there)
        config.name_or_path = pretrained_model_name_or_path
        return loaded

    @classmethod
    def for_model(cls, model_type: str, *args: Any, **kwargs: Any) -> BertConfig:
        """The config class of ``model_type`` built from ``args`` / ``kwargs``; ``model_type`` is required, as in
        transformers (it defaulted to "bert")."""
        return registry.config_class(model_type)(*args, **kwargs)

    @staticmethod
    def register(model_type: str, config: type, exist_ok: bool = False) -> None:
        """Registers the config class of a ``model_type`` of the user's (a fastbert config subclass), as
        transformers' ``AutoConfig.register``: a config.json of that ``model_type`` then loads in it. A
        ``model_type`` fastbert has is refused unless ``exist_ok=True``."""
        registry.check_config_class(f"AutoConfig.register({model_type!r}, {config!r})", "load", config)
        if config.model_type != model_type:  # transformers' words
            raise ValueError(
                "The config you are passing has a `model_type` attribute that is not consistent with the model type "
                f"you passed (config has {config.model_type} and you passed {model_type}. Fix one of those so they "
                "match!"
            )
        if model_type in registry.FAMILIES and not exist_ok:
            raise ValueError(f"'{model_type}' is already used by a Transformers config, pick another name.")
        registry.REGISTERED_CONFIGS[model_type] = config


def _refuse_remote_code(
    where: Any, config: Any, auto_classes: tuple[str, ...], trust_remote_code: Any
) -> None:
    """A ValueError when ``trust_remote_code`` is true and the config's ``auto_map`` names the checkpoint's own
    code for one of ``auto_classes``: transformers then runs that code (its own config or model class, in the
    folder or repo), which fastbert does not: the family's built-in class in its place would compute something
    else. Without trust_remote_code transformers builds the built-in class too: so does fastbert."""
    remote = getattr(config, "auto_map", None)
    if not trust_remote_code or not isinstance(remote, dict):
        return
    for name in auto_classes:
        if name in remote:
            what = "config" if name == "AutoConfig" else "class"
            raise ValueError(
                f"{where}: config.json's auto_map names {remote[name]!r} for {name}, and trust_remote_code=True "
                "asks for that code, which fastbert does not run: load the model with transformers, or leave "
                f"trust_remote_code unset to load fastbert's {config.model_type} {what} (as transformers does "
                "without it)"
            )


class _AutoModel:
    task: str = "base"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(f"{type(self).__name__} is built with from_pretrained(...) or from_config(config)")

    @classmethod
    def _class_for(cls, config: BertConfig):
        """The class of the config's family for this Auto class; a family without one is refused in
        transformers' words, naming the config classes that have one."""
        registered = registry.REGISTERED_MODELS.get((type(config), cls.task))
        if registered is not None:
            return registered
        if config.model_type in registry.REGISTERED_CONFIGS and config.model_type not in registry.FAMILIES:
            raise ValueError(
                f"Unrecognized configuration class {type(config)} for this kind of AutoModel: {cls.__name__}.\n"
                f"Model type should be one of {cls._having()} (no model class is registered for "
                f"{type(config).__name__} with {cls.__name__}.register)"
            )
        family = registry.family(config.model_type)
        task = cls._task_of(family)
        if task not in family.classes:
            raise ValueError(
                f"Unrecognized configuration class {type(config)} for this kind of AutoModel: {cls.__name__}.\n"
                f"Model type should be one of {cls._having()} (model_type {config.model_type!r} has no {task} "
                f"class: it has {', '.join(family.classes.values())})"
            )
        return family.model_class(task)

    @classmethod
    def _having(cls) -> str:
        """The config classes this Auto class builds from (its refusal names them, as transformers')."""
        having = [f.config.split(":")[1] for f in registry.FAMILIES.values() if cls._task_of(f) in f.classes]
        having += [c.__name__ for c, task in registry.REGISTERED_MODELS if task == cls.task]
        return ", ".join(having)

    @classmethod
    def register(cls, config_class: type, model_class: type, exist_ok: bool = False) -> None:
        """Registers the user's model class (a fastbert model subclass) for configs of ``config_class``, as
        transformers' ``AutoModel*.register``: ``from_config`` / ``from_pretrained`` then build it. A config
        class fastbert has, whose family has a class for this Auto class, is refused unless ``exist_ok=True``."""
        from .models.engine import BertPreTrainedModel

        registry.check_config_class(
            f"{cls.__name__}.register({config_class!r}, ...)", "build from", config_class
        )
        if not (isinstance(model_class, type) and issubclass(model_class, BertPreTrainedModel)):
            raise ValueError(
                f"{cls.__name__}.register(..., {model_class!r}): fastbert's Auto classes build fastbert models, a "
                "subclass of one of fastbert's model classes"
            )
        if model_class.config_class.__name__ != config_class.__name__:  # transformers' check and words
            raise ValueError(
                "The model class you are passing has a `config_class` attribute that is not consistent with the "
                f"config class you passed (model has {model_class.config_class} and you passed {config_class}. Fix "
                "one of those so they match!"
            )
        taken = any(
            f.config_class() is config_class and cls._task_of(f) in f.classes
            for f in registry.FAMILIES.values()
        )
        if taken and not exist_ok:
            raise ValueError(f"'{config_class}' is already used by a Transformers model.")
        registry.REGISTERED_MODELS[config_class, cls.task] = model_class

    @classmethod
    def _task_of(cls, family: registry.Family) -> str:
        """The family's task this Auto class builds (AutoModelForPreTraining: a masked LM in some families)."""
        return family.auto_pretraining if cls.task == "pretraining" else cls.task

    @classmethod
    def from_config(cls, config: BertConfig, **kwargs: Any):
        """A freshly initialised model of the config's family for this task. As transformers, ``dtype`` (or
        its old name ``torch_dtype``) builds it in that dtype, else in the config's own ``dtype`` when it names
        one (a config read from a float16 checkpoint builds a float16 model); ``attn_implementation`` picks
        the backend."""
        import torch

        from .loading import parse_dtype

        # as transformers, in its words (a dict was an AttributeError)
        if not isinstance(config, BertConfig):
            raise ValueError(
                f"Unrecognized configuration class {type(config)} for this kind of AutoModel: {cls.__name__}. "
                "fastbert builds from a fastbert config: fastbert.AutoConfig.from_pretrained(path) or "
                "fastbert.AutoConfig.for_model(model_type, **fields)"
            )
        kwargs.pop("code_revision", None)
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        where = getattr(config, "name_or_path", "") or type(config).__name__
        _refuse_remote_code(where, config, (cls.__name__,), trust_remote_code)
        attn = kwargs.pop("attn_implementation", None)
        dtype, torch_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
        dtype = parse_dtype(dtype if dtype is not None else torch_dtype)  # both given: dtype, as transformers
        if dtype is None or dtype == "auto":
            dtype = getattr(config, "torch_dtype", None)
        model = cls._class_for(config)(config, **kwargs)
        if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
            model.to(dtype)
        if attn is not None:
            model.set_attn_implementation(attn)
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        from .hub import HubOptions, config_source

        config = kwargs.pop("config", None)
        hub = kwargs.pop("hub", None) or HubOptions.pop_from(kwargs)
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        if not isinstance(config, (BertConfig, str, os.PathLike, type(None))) and hasattr(config, "to_dict"):
            # a transformers config (the model classes take one): its fields, in the class of its model type, and
            # its backend, as the model classes keep it (to_dict leaves it out)
            theirs, config = config, registry.config_from_dict(config.to_dict())
            config._attn_implementation = getattr(theirs, "_attn_implementation", None)
        given = isinstance(config, BertConfig)
        if not given:
            # a checkpoint file given directly (Google's bert_model.ckpt, a tf_model.h5) has its config beside
            # it, as the model classes' from_pretrained reads it (the file itself was read as config.json)
            source, config_hub = str(pretrained_model_name_or_path), hub
            if config is None:  # an adapter's folder: the config of the base model it names
                from .adapters import find_adapter

                source, config_hub = config_source(find_adapter(source, hub)[1], hub)
            config = registry.load_config(config or source, hub=config_hub)
        # a config read here is read as transformers' AutoConfig reads it: its own config class runs too
        keys = (cls.__name__,) if given else (cls.__name__, "AutoConfig")
        _refuse_remote_code(pretrained_model_name_or_path, config, keys, trust_remote_code)
        return cls._class_for(config).from_pretrained(
            pretrained_model_name_or_path, *args, config=config, hub=hub, **kwargs
        )


def _auto(name: str, task: str) -> type[_AutoModel]:
    return type(
        name, (_AutoModel,), {"task": task, "__doc__": f"Builds the {task} class of the config's family."}
    )


AutoModel = _auto("AutoModel", "base")
AutoModelForPreTraining = _auto("AutoModelForPreTraining", "pretraining")
AutoModelForCausalLM = _auto("AutoModelForCausalLM", "causal-lm")
AutoModelForMaskedLM = _auto("AutoModelForMaskedLM", "masked-lm")
AutoModelForNextSentencePrediction = _auto("AutoModelForNextSentencePrediction", "next-sentence-prediction")
AutoModelForSequenceClassification = _auto("AutoModelForSequenceClassification", "sequence-classification")
AutoModelForMultipleChoice = _auto("AutoModelForMultipleChoice", "multiple-choice")
AutoModelForTokenClassification = _auto("AutoModelForTokenClassification", "token-classification")
AutoModelForQuestionAnswering = _auto("AutoModelForQuestionAnswering", "question-answering")


# --------------------------------------------------------------------------------------------- transformers
def from_transformers(hf_model: Any, attn_implementation: str | None = None):
    """A fastbert model over the weights of a loaded transformers model of a family fastbert has (see
    :mod:`fastbert.registry`): the same class, config, dtype
    and device, and **the same storage** — every fastbert parameter holds the transformers parameter's
    tensor. Self-attention's query/key/value weights (and biases) are first laid out in one contiguous
    storage, built once from transformers' three, and both models' query/key/value parameters become
    views of it (public attribute assignment on transformers' side), so the projection runs as one GEMM,
    there is one copy of every weight, and an in-place edit of either model edits both.
    Moving or converting one model (``.to(dtype)``, ``.cuda()``) gives it new tensors and leaves the
    other as it was."""
    import torch
    from torch import nn

    from .config import check_attn_implementation

    name = type(hf_model).__name__
    model_class = registry.class_by_name(name)
    if isinstance(getattr(hf_model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
        raise ValueError(
            f"{name} is a torch.compile'd model: convert the model it compiles (its ._orig_mod) and compile "
            "the fastbert model"
        )
    if model_class is None or not isinstance(hf_model, nn.Module):
        raise ValueError(
            f"{name} is not one of the classes fastbert converts: {', '.join(sorted(registry.class_names()))}"
        )
    hf_modules = dict(hf_model.named_modules())
    # refused before anything is shared: sharing query/key/value replaces the transformers model's parameters
    if getattr(hf_model, "_hf_peft_config_loaded", False) or getattr(hf_model, "peft_config", None):
        raise ValueError(
            f"converting {name}: it has PEFT adapters injected, which fastbert would not run (merge them first: "
            "merge_and_unload())"
        )
    edited = _config_edited(hf_model)
    if edited is not None:
        raise ValueError(f"converting {name}: its config was edited after it was built: {edited}")
    meta = [n for n, p in hf_model.named_parameters() if p.is_meta]
    if meta:
        raise ValueError(
            f"converting {name}: its weights are not loaded (on the meta device: offloaded by accelerate's "
            f"device_map / cpu_offload, or never loaded): {meta[:3]}{' ...' if len(meta) > 3 else ''}"
        )
    for path, module in hf_modules.items():
        names = next((n for n in registry.HF_QKV_NAMES if hasattr(module, n[0])), ())
        lins = [getattr(module, n, None) for n in names]
        wrapped = next((n for n, lin in zip(names, lins) if type(lin) is not nn.Linear), None)
        if wrapped is not None and all(isinstance(lin, nn.Module) for lin in lins):  # a PEFT layer, a wrapper
            raise ValueError(
                f"converting {name}: {path}.{wrapped} is a {_qualified(getattr(module, wrapped))}, not the "
                "nn.Linear whose weights fastbert shares"
            )
    cfg = hf_model.config.to_dict()
    config = registry.config_from_dict(cfg)
    config._attn_implementation = check_attn_implementation(attn_implementation)
    # where the weights came from: the tokenizer quantization calibrates with, a model card's base model
    config.name_or_path = getattr(hf_model.config, "_name_or_path", "") or ""
    param = next(hf_model.parameters())
    base_class = registry.task_of_class(name) == "base"
    args = (False,) if base_class and getattr(hf_model, "pooler", None) is None else ()
    with torch.device("meta"):
        model = model_class(config, *args)

    missing, reshaped = [], []
    for path, module in model.named_modules():
        hf_module = hf_modules.get(path)
        if getattr(module, "is_cross_attention", True) is False:
            names = next((n for n in registry.HF_QKV_NAMES if hasattr(hf_module, n[0])), None)
            if names is not None:
                _share_qkv(module, hf_module, names)
                continue
        for pname, p in list(module._parameters.items()):
            if p is None or not p.is_meta:  # shared already (query/key/value, tied weights)
                continue
            hf_param = getattr(hf_module, pname, None) if hf_module is not None else None
            if not isinstance(hf_param, nn.Parameter) or hf_param.shape != p.shape:
                missing.append(f"{path}.{pname}" if path else pname)
                if isinstance(hf_param, nn.Parameter):  # a config edited after building (num_labels)
                    reshaped.append(
                        f"{missing[-1]} is {tuple(hf_param.shape)}, the config says {tuple(p.shape)}"
                    )
                continue
            # the same storage under a parameter of our own: in-place edits are shared, while a move or
            # a conversion of one model (``.to()``, ``.half()``) leaves the other as it was. detach(), not
            # .data: the version counter is shared too, so an in-place edit through transformers' parameter
            # counts as one for the copies that follow fastbert's (prepacked CPU weights, int8), which
            # would otherwise see it only where their 64-element sample does
            setattr(module, pname, nn.Parameter(hf_param.detach(), requires_grad=hf_param.requires_grad))
    missing += [n for n, p in model.named_parameters() if p.is_meta and n not in missing]
    if reshaped:
        raise ValueError(
            f"converting {name}: weights of other shapes than the transformers model's config says (was the "
            f"config edited after the model was built?): {'; '.join(reshaped)}"
        )
    kind = getattr(config, "position_embedding_type", None)
    if missing and all("distance_embedding" in n for n in missing):
        # transformers 5 builds no distance table: its model ran with absolute positions whatever the config says
        raise ValueError(
            f"converting {name}: its config says position_embedding_type={kind!r}, but the transformers model has "
            f"no distance_embedding weights ({len(missing)} missing): transformers 5 ignores relative positions and "
            "runs the model with absolute ones, which fastbert does not do for this config (it follows transformers "
            "4's relative formula). A model trained by transformers 5 under this config was trained with absolute "
            "positions: set position_embedding_type='absolute' in its config"
        )
    if missing:
        raise ValueError(f"converting {name}: weights missing from the transformers model: {missing}")
    for module in model.modules():  # non-persistent buffers: rebuilt on the device
        for bname, buf in list(module._buffers.items()):
            if buf is not None and buf.is_meta:
                if bname == "position_ids":
                    new = torch.arange(buf.shape[-1], device=param.device).expand(1, -1)
                else:
                    new = torch.zeros(buf.shape, dtype=buf.dtype, device=param.device)
                module._buffers[bname] = new
    model.tie_weights()
    # tying follows the config: a transformers model whose tied weight was replaced by hand (a decoder of its
    # own under tie_word_embeddings=True) computes with another tensor than fastbert's tied one would
    theirs = dict(hf_model.named_parameters(remove_duplicate=False))
    untied = [
        n
        for n, p in model.named_parameters(remove_duplicate=False)
        if n in theirs and p.data_ptr() != theirs[n].data_ptr()
    ]
    if untied:
        raise ValueError(
            f"converting {name}: the transformers model's {untied} hold tensors of their own, while its config "
            f"(tie_word_embeddings={getattr(config, 'tie_word_embeddings', True)}) ties them, as fastbert does"
        )
    model._mark_initialised()
    model.train(hf_model.training)
    # a part put in eval mode alone (``model.train(); model.bert.eval()``) stays so
    for path, module in model.named_modules():
        if path in hf_modules:
            module.training = hf_modules[path].training
    _carry_checkpointing(hf_model, hf_modules, model)
    hf_generation = getattr(hf_model, "generation_config", None)
    if model.can_generate() and hf_generation is not None:  # the transformers model's settings go along
        model.generation_config = hf_generation
    # settings transformers' forward reads from the model, copied from the config when it was built (ModernBERT's
    # masked LM): the model's go along, set by hand or not (a config edited after building changes neither)
    for setting in ("sparse_prediction", "sparse_pred_ignore_index"):
        if hasattr(model, setting) and hasattr(hf_model, setting):
            setattr(model, setting, getattr(hf_model, setting))
    return model


def _carry_checkpointing(hf_model: Any, hf_modules: dict, model: Any) -> None:
    """The transformers model's training setup goes along: activation checkpointing on the same layers, with
    its checkpoint function (``gradient_checkpointing_kwargs``, offloading), and the input embeddings' hook of
    ``enable_input_require_grads`` (set by ``gradient_checkpointing_enable`` or by hand)."""
    import functools

    from .model_api import _checkpoint_lifting_context_tensors

    layers = [(path, m) for path, m in model.named_modules() if hasattr(m, "gradient_checkpointing")]
    on = [
        path for path, _ in layers if getattr(hf_modules.get(path), "gradient_checkpointing", False) is True
    ]
    if on:
        func = getattr(hf_modules[on[0]], "_gradient_checkpointing_func", None)
        if callable(func):
            kwargs = func.keywords if isinstance(func, functools.partial) else {}
            if kwargs.get("use_reentrant", True):  # as fastbert's own: context tensors passed explicitly
                func = functools.partial(_checkpoint_lifting_context_tensors, func)
        else:
            from torch.utils.checkpoint import checkpoint

            func = functools.partial(checkpoint, use_reentrant=False)  # transformers 5's default
        for path, module in layers:
            module._gradient_checkpointing_func = func
            module.gradient_checkpointing = path in on
    if getattr(hf_model, "_require_grads_hooks", None) or getattr(hf_model, "_require_grads_hook", None):
        model.enable_input_require_grads()


def _qualified(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _share_qkv(ours: Any, hf_self: Any, names: tuple[str, str, str] = registry.HF_QKV_NAMES[0]) -> None:
    """One contiguous storage for query/key/value's weights (and one for their biases), built from
    transformers' three (named ``names``); both models' parameters become views of it (fastbert's
    attention reads them as ``query``/``key``/``value``)."""
    import torch
    from torch import nn

    lins = tuple(getattr(hf_self, n) for n in names)
    n = lins[0].out_features
    for kind in ("weight", "bias"):
        with torch.no_grad():
            fused = torch.cat([getattr(lin, kind) for lin in lins])
        for i, (name, lin) in enumerate(zip(("query", "key", "value"), lins)):
            view = fused[i * n : (i + 1) * n]
            # each parameter keeps its own flag (BitFit trains the biases of frozen weights)
            requires_grad = getattr(lin, kind).requires_grad
            setattr(lin, kind, nn.Parameter(view, requires_grad=requires_grad))
            setattr(getattr(ours, name), kind, nn.Parameter(view, requires_grad=requires_grad))


#: transformers' embeddings that count positions from their own ``padding_idx`` (fastbert: the config's
#: ``pad_token_id``)
_POSITIONS_FROM_PADDING = ("RobertaEmbeddings", "XLMRobertaEmbeddings", "CamembertEmbeddings")


def _config_edited(hf_model: Any) -> str | None:
    """What a transformers model's modules were built with that its config no longer says (the config edited
    after building; transformers' modules keep their own values, fastbert builds from the config): the
    attention heads and head size, RoBERTa's position padding index. None when they agree."""
    config = hf_model.config
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None)
    width = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    head_size = width // heads if isinstance(width, int) and isinstance(heads, int) and heads > 0 else None
    pad = getattr(config, "pad_token_id", None)
    for path, module in hf_model.named_modules():
        for attr in ("num_attention_heads", "n_heads"):
            value = getattr(module, attr, None)
            if isinstance(value, int) and heads is not None and value != heads:
                return f"{path}.{attr} is {value}, not the config's {heads} heads, which fastbert computes"
        for attr in ("attention_head_size", "head_dim"):
            value = getattr(module, attr, None)
            if isinstance(value, int) and head_size is not None and value != head_size:
                return f"{path}.{attr} is {value}, not the config's {head_size}, which fastbert computes"
        if type(module).__name__ in _POSITIONS_FROM_PADDING and getattr(module, "padding_idx", pad) != pad:
            return (
                f"{path}.padding_idx is {module.padding_idx}, not the config's pad_token_id {pad}, from which "
                "fastbert counts the positions"
            )
    return None
