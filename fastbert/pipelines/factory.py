"""``pipeline(task, model=...)``: builds a task pipeline on a folder, a hub id or a loaded model."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

from fastbert.hub import HubOptions

from .base import Pipeline, _max_input_tokens, read_json_file, resolve_device, resolve_dtype
from .registry import (
    DEFAULT_MODEL_TASKS,
    TASKS,
    architectures,
    check_task,
    is_known_architecture,
    task_class,
    task_of_architecture,
)
from .sentence_embedding import (
    load_dense,
    modules_after_pooling,
    pooling_folder,
    pooling_modes_from_config,
    sentence_config,
    transformer_folder,
)


def _is_sentence_transformers_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "modules.json"))


def _infer_task(model: Any, hub: HubOptions | None = None) -> str:
    if isinstance(model, str):
        if _is_sentence_transformers_folder(model):
            return "sentence-embedding"
        from fastbert import registry
        from fastbert.hub import looks_local, resolve_file

        # a hub id of a sentence-transformers repository, as its local folder (an older one has no
        # config.json at the top, only in modules.json's 0_Transformer)
        if not looks_local(model) and resolve_file(model, "modules.json", hub, required=False):
            return "sentence-embedding"
        archs = registry.load_config(model, hub).architectures or []
    else:
        archs = [type(model).__name__]
    for arch in archs:
        task = task_of_architecture(arch)
        if task is not None:
            return task
    raise ValueError(f"cannot tell the task of {model!r} (architectures {archs}): pass task=")


def _check_architecture(task: str, archs: list[str] | None, where: str) -> None:
    accepted = architectures(task)
    if accepted is None or not archs:
        return
    known = [a for a in archs if is_known_architecture(a)]
    if known and not any(a in accepted for a in known):
        raise ValueError(
            f"{where} is a {known[0]} (architectures in config.json), which has no head for {task}: "
            f"{task} needs a {' or '.join(accepted)} checkpoint"
        )


def _model_subfolder(path: str, hub: HubOptions) -> str:
    """The subfolder of a sentence-transformers folder (or hub id) that holds its transformer (modules.json's
    first module's path: ``0_Transformer`` in older folders), ``""`` for the top or another model."""
    from fastbert.hub import resolve_file

    return transformer_folder(read_json_file(resolve_file(path, "modules.json", hub=hub, required=False)))


def _pooling_config(path: str | None, hub: HubOptions, subfolder: str = "") -> dict[str, Any]:
    """The ``SentenceEmbeddingPipeline`` arguments a sentence-transformers folder sets (pooling, normalize,
    max_length (its max_seq_length), dense, do_lower_case, include_prompt; prompts, default_prompt_name
    and truncate_dim from config_sentence_transformers.json); empty elsewhere. ``subfolder``: the
    transformer's (:func:`_model_subfolder`), where its ``sentence_bert_config.json`` (:func:`sentence_config`) is."""
    if not path:
        return {}
    from fastbert.hub import resolve_file

    def find(name: str) -> str | None:
        return resolve_file(path, name, hub=hub, required=False)

    modules = read_json_file(find("modules.json"))
    if not modules:
        return {}
    pooling_dir = pooling_folder(modules)
    pooling_config = read_json_file(find(f"{pooling_dir}/config.json") if pooling_dir else None) or {}
    modes = pooling_modes_from_config(pooling_config)
    dense_folders, normalize = modules_after_pooling(modules, find)
    st_config = sentence_config(subfolder, find)
    max_len = st_config.get("max_seq_length")
    model_config = read_json_file(find("config_sentence_transformers.json")) or {}
    return {
        "pooling": modes,
        "normalize": normalize,
        "max_length": int(max_len) if max_len else None,
        "dense": load_dense(dense_folders, find),
        "do_lower_case": bool(st_config.get("do_lower_case", False)),
        "include_prompt": bool(pooling_config.get("include_prompt", True)),
        "prompts": model_config.get("prompts") or {},
        "default_prompt_name": model_config.get("default_prompt_name"),
        "truncate_dim": model_config.get("truncate_dim"),
    }


def _model_path(model: Any) -> str | None:
    for obj in (model, getattr(model, "config", None)):
        for attr in ("name_or_path", "_name_or_path"):
            p = getattr(obj, attr, None)
            if isinstance(p, str) and p:
                return p
    return None


#: from_pretrained's two names of one argument
_SAME_AS = {"torch_dtype": ("dtype",), "dtype": ("torch_dtype",)}


def pipeline(
    task: str | None = None,
    model: Any = None,
    tokenizer: Any = None,
    device: Any = None,
    torch_dtype: Any = None,
    attn_implementation: str | None = None,
    batch_size: int | None = None,
    *,
    dtype: Any = None,
    device_map: Any = None,
    progress: bool | None = None,
    model_kwargs: dict[str, Any] | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    use_fast: bool = True,
    trust_remote_code: bool | None = None,
    framework: str | None = None,
    config: Any = None,
    modelcard: Any = None,
    **kwargs: Any,
) -> Pipeline:
    """Build the pipeline of ``task`` on ``model`` (a local folder, a hub id or a loaded model).

    ``device``: an int is an accelerator's ordinal as in transformers 4.57 (``0`` is ``cuda:0`` where CUDA
    is, else ``mps:0`` where MPS is, else the CPU; ``-1`` the CPU), or a string / torch.device; None keeps a
    loaded model where it is and puts a loaded-here one on the CPU, as transformers does.
    ``torch_dtype`` (or ``dtype``): a torch dtype or its name (``"float16"``, ``"bf16"``...).
    ``attn_implementation``: ``"eager"``, ``"sdpa"`` or ``"triton"``. ``batch_size``: rows per forward
    (default 32). ``progress``: a tqdm bar (default: when stderr is a terminal and the inputs are more
    than one batch). Other keyword arguments are the task's defaults (``top_k``, ``aggregation_strategy``...);
    for ``sentence-embedding``, ``pooling=`` and ``normalize=`` override the folder's pooling config.
    As transformers 4.57 (and 5.25): ``config=`` (a folder, a hub id or a config object) is accepted and
    the model is loaded with its folder's own config (transformers reads ``config`` to pick the model class
    only); ``framework`` may only be ``"pt"``; ``modelcard`` is accepted and unused.
    """
    del modelcard  # transformers keeps it for save_pretrained only
    if config is not None and not (
        isinstance(config, (str, os.PathLike)) or callable(getattr(config, "to_dict", None))
    ):
        raise TypeError(f"config must be a folder, a hub id or a config object, not {type(config).__name__}")
    if framework is not None and framework != "pt":
        raise ValueError(f"framework={framework!r}: fastbert runs PyTorch models only (framework='pt')")
    if task is None:
        if model is None:
            raise ValueError("pipeline needs a task, a model, or both")
        task = _infer_task(model, HubOptions(revision=revision, token=token))
    task = check_task(task)
    spec = TASKS[task]
    given = {"torch_dtype": torch_dtype, "dtype": dtype, "device_map": device_map}
    for name, value in given.items():
        inner = next((k for k in (name, *_SAME_AS.get(name, ())) if k in (model_kwargs or {})), None)
        if value is not None and inner is not None:
            # as transformers: which of the two would be used is not the caller's choice
            raise ValueError(
                f"You cannot use both `pipeline(... {name}=..., model_kwargs={{{inner!r}: ...}})` as those "
                "arguments might conflict, use only one."
            )
    if dtype is not None:  # dtype is transformers' name, torch_dtype the older one: of both, dtype is kept
        torch_dtype = dtype
    torch_dtype = resolve_dtype(torch_dtype)
    if device is None and device_map is not None and device_map != "auto":
        from fastbert.devices import parse_device
        from fastbert.loading import parse_device_map

        if isinstance(device_map, dict) or device_map in ("balanced", "balanced_low_0", "sequential"):
            # one device for the whole model, as from_pretrained reads them ({"": "cpu"}, a strategy)
            device = parse_device_map(device_map)
        else:
            # a device_map ordinal is CUDA's, as from_pretrained(device_map=0) (no CPU fallback, unlike device=0)
            device = parse_device(device_map, "device_map")

    hub = HubOptions(revision=revision, token=token)
    subfolder = ""  # the transformer's, in a sentence-transformers folder (_model_subfolder)
    if model is None:
        if task not in DEFAULT_MODEL_TASKS:
            raise ValueError(
                f"{task} needs a model: pass model= a local folder or a hub id of a {architectures(task)[0]}"
            )
        from fastbert.hub import embedded_model_path

        model = embedded_model_path()

    import torch

    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isfile(path):
            raise OSError(f"model {path} is a file: pass the folder that holds the model")
        from fastbert import auto, registry

        # a hub id that cannot be had (offline, unreachable, unknown) fails here, through huggingface_hub;
        # a model_type fastbert does not have, with the list of those it has
        if task == "sentence-embedding" and "subfolder" not in (model_kwargs or {}):
            # an older sentence-transformers folder keeps the transformer in modules.json's 0_Transformer
            # (config, weights, tokenizer), as SentenceTransformer loads it ("has no config.json" here)
            subfolder = _model_subfolder(path, hub)
        model_hub = dataclasses.replace(hub, subfolder=subfolder)
        config = registry.load_config(path, hub=model_hub)
        _check_architecture(task, config.architectures, repr(path))
        load_kwargs = {**model_hub.as_kwargs(), **(model_kwargs or {})}
        if torch_dtype is not None:
            load_kwargs.setdefault("torch_dtype", torch_dtype)
        if attn_implementation is not None:
            load_kwargs.setdefault("attn_implementation", attn_implementation)
        if trust_remote_code is not None:  # the Auto class refuses a checkpoint's own code (auto_map)
            load_kwargs.setdefault("trust_remote_code", trust_remote_code)
        if device is None and device_map == "auto":
            device = 0 if torch.cuda.is_available() else -1
        target = resolve_device(device)
        if load_kwargs.get("quantization") is not None and target.type != "cpu":
            # int8 / fp8 on a GPU calibrate there (and fp8 checks the GPU's capability before the weights)
            load_kwargs.setdefault("device_map", str(target))
        loaded = getattr(auto, spec["auto"]).from_pretrained(path, config=config, **load_kwargs)
        if device is None and "device_map" in (model_kwargs or {}):
            # model_kwargs' device_map placed it, as transformers' pipeline keeps it (moving it to the CPU
            # undid a device_map="cuda")
            target = resolve_device(None, loaded)
        else:
            loaded = _to_device(loaded, target)
    elif isinstance(model, torch.nn.Module):
        path = _model_path(model)
        loaded = model
        name = type(model).__name__
        if (
            type(model).__module__.startswith("sentence_transformers.")
            or getattr(model, "config", None) is None
        ):
            # a sentence-transformers object (its forward takes a dict of features; sentence-transformers 6 gives
            # it its backbone's config), or another module with no config: the first call failed in its forward,
            # "missing 1 required positional argument", naming neither the model nor the fix
            raise ValueError(
                f"the model given is a {name}, not a model loaded with from_pretrained (fastbert's or "
                "transformers', which the pipeline calls with input_ids): for a sentence-transformers model "
                "pass its folder or hub id as model= (the pipeline reads its pooling), or call its encode"
            )
        accepted = architectures(task)
        if accepted and is_known_architecture(name) and name not in accepted:
            raise ValueError(
                f"the model given is a {name}, which has no head for {task}: {task} needs a "
                f"{' or '.join(accepted)}"
            )
        if attn_implementation is not None and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn_implementation)
        if torch_dtype is not None and torch_dtype != "auto":
            loaded = loaded.to(torch_dtype)
        target = resolve_device(device, loaded)
        if device is not None:
            loaded = _to_device(loaded, target)
    else:
        raise ValueError(f"model must be a folder, a hub id or a loaded model, not {type(model).__name__}")
    loaded.eval()

    if tokenizer is None:
        if path is None:
            raise ValueError(
                "the model given has no name_or_path to load its tokenizer from: pass tokenizer="
            )
        tokenizer = path
    tokenizer_kwargs: dict[str, Any] = {"subfolder": subfolder} if subfolder and tokenizer == path else {}
    if isinstance(tokenizer, tuple) and len(tokenizer) == 2 and isinstance(tokenizer[1], dict):
        # transformers 4's (tokenizer name, its from_pretrained kwargs)
        tokenizer, tokenizer_kwargs = tokenizer[0], dict(tokenizer[1])
    if isinstance(tokenizer, (str, os.PathLike)):
        from fastbert.tokenization.auto import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            os.fspath(tokenizer), **{**hub.as_kwargs(), **tokenizer_kwargs}
        )
    elif not callable(tokenizer) or tokenizer_kwargs:
        raise TypeError(
            "tokenizer must be a tokenizer, a folder or hub id of one, or (folder or hub id, {from_pretrained "
            f"kwargs}}), not {type(tokenizer).__name__}"
        )

    extra: dict[str, Any] = {}
    folder_max_length = False  # max_length from the folder's sentence_bert_config: the model's own limit
    if task == "sentence-embedding":
        folder = _pooling_config(path, hub, subfolder)
        max_len = folder.pop("max_length", None)
        extra.update(folder)
        extra["pooling"] = kwargs.pop("pooling", None) or folder.get("pooling")
        norm = kwargs.pop("normalize", None)
        extra["normalize"] = folder.get("normalize") if norm is None else norm
        # as SentenceTransformer(prompts=, default_prompt_name=, truncate_dim=): over the folder's
        extra["prompts"] = {**folder.get("prompts", {}), **(kwargs.pop("prompts", None) or {})}
        for key in ("default_prompt_name", "truncate_dim"):
            given = kwargs.pop(key, None)
            if given is not None:
                extra[key] = given
        if max_len and "max_length" not in kwargs:
            # above the position table (sentence-transformers loads such a folder and encodes what fits):
            # the table's length is the most the model can take
            positions = _max_input_tokens(loaded)
            extra["max_length"] = min(max_len, positions) if positions else max_len
            folder_max_length = True
    if "max_length" in kwargs:
        extra["max_length"] = kwargs.pop("max_length")
    pipe = task_class(task)(
        model=loaded,
        tokenizer=tokenizer,
        device=target,
        batch_size=batch_size,
        progress=progress,
        task=task,
        **extra,
        **kwargs,
    )
    if folder_max_length:  # messages say "the model's maximum", not max_length=N
        pipe._max_length_given = False
    return pipe


#: the attribute :func:`_to_device` sets on an error raised by the move of a model to its device
_DEVICE_ATTR = "_fastbert_device"


def _to_device(model: Any, target: Any) -> Any:
    """``model.to(target)``; an error raised there (torch's own, of its own type and message: CUDA out of
    memory, a device torch cannot use) is marked with the device, so that :func:`device_move_error` tells
    it from an error of loading the model (a checkpoint of another shape, a corrupt file)."""
    try:
        return model.to(target)
    except Exception as e:
        with contextlib.suppress(AttributeError, TypeError):
            setattr(e, _DEVICE_ATTR, target)
        raise


def device_move_error(error: BaseException) -> Any:
    """The device whose move of the model raised ``error`` (:func:`_to_device`), None for another error."""
    return getattr(error, _DEVICE_ATTR, None)
