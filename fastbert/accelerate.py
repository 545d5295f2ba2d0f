"""``fastbert.accelerate``: put fastbert under the code people already have.

It takes a sentence-transformers ``SentenceTransformer`` or ``CrossEncoder``, or a transformers model of a
family fastbert has (``fastbert.registry``: BERT, RoBERTa, XLM-RoBERTa, CamemBERT ...), and swaps
every such backbone for the fastbert model of the same class built
by :func:`fastbert.from_transformers` on the same weights. The swap goes through the public attribute
that holds the backbone (sentence-transformers' ``Transformer`` module keeps it in ``model``, older
versions in ``auto_model``; a ``CrossEncoder`` of sentence-transformers < 6 in ``model``): no class or
function of another library is patched, so tokenisation, prompts, truncation, pooling, normalisation,
``similarity``, ``rank``, device moves and ``save`` keep running their own code.

What fastbert cannot compute exactly as transformers does (another architecture, a subclass with its own
code, relative position embeddings, pruned heads, adapters, quantised or offloaded weights, hooks) is left
as it is, with one warning that says why (``strict=True``: a
``ValueError`` instead). Never silently different numbers.

The caller's padding is removed once inside fastbert's forward (the ``sdpa`` and ``triton`` backends pack
the real tokens once per forward). Per-token outputs are zero at padded positions; every pooling of
sentence-transformers (mean, max, cls, weighted mean, last token) weights or masks them by the attention
mask, and ``encode(output_value="token_embeddings")`` cuts them off, so sentence embeddings are the
transformers ones up to float rounding. Two readers of those positions exist: a sentence-transformers
``Transformer`` with ColBERT query expansion that leaves the expansion tokens unattended
(``query_expansion={..., "attend": False}``, a ``MultiVectorEncoder``'s default), where MaxSim scores the
encoder's outputs at positions whose attention mask is 0, and a tokenizer that pads on the left in front of
a head that classifies position 0 (a ``CrossEncoder``'s), which is padding in the shorter rows. Such a
backbone runs fastbert's ``eager`` backend, padded as transformers computes it (an explicit packing backend
is refused for it, with the reason).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import torch
from torch import nn

from . import FunctionModule
from .config import check_attn_implementation

__all__ = ["AccelerateWarning", "accelerate"]

#: the backends ``attn_implementation`` may name (None: fastbert's default for the device)
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class AccelerateWarning(UserWarning):
    """``fastbert.accelerate`` left a model (or part of it) as it was, and says why."""


def accelerate(
    obj: Any,
    attn_implementation: str | None = None,
    dtype: torch.dtype | str | None = None,
    cuda_graphs: bool | dict[str, Any] | None = None,
    strict: bool = False,
    quantization: str | None = None,
) -> Any:
    """Replace every backbone of ``obj`` by fastbert's, on the same weights.

    Args:
        obj: a ``SentenceTransformer``, a ``CrossEncoder`` (or any ``nn.Module`` holding transformers
            models as public submodules), or a transformers model of a class fastbert has
            (``fastbert.registry``).
        attn_implementation: fastbert backend, ``"eager"``, ``"sdpa"`` or ``"triton"``; None picks
            ``triton`` on CUDA and ``sdpa`` elsewhere.
        dtype: cast to this dtype (``torch.float32``, ``torch.float16``, ``torch.bfloat16``, a name of one as
            ``from_pretrained(torch_dtype=)`` takes it, in any case: ``"bf16"``, ``"float32"``, or ``"auto"``:
            bf16 on a CPU with native bf16 (avx512_bf16/AMX), fp32 on other CPUs, said once) after the
            swap: the whole object for sentence-transformers (as ``model.to(dtype)``), the fastbert model
            otherwise. The cast makes new storage in that dtype, as ``.to`` does. None keeps the dtype.
        cuda_graphs: None (the default) leaves each fastbert backbone's default: CUDA-graph replay of
            batches up to 64 x 512 on the triton backend on CUDA (``fastbert.core.cuda_graphs``). True (or a dict
            of ``BertPreTrainedModel.cuda_graphs`` arguments such as ``{"max_batch": 8, "max_seqlen": 128}``)
            installs a runner with those limits now, and needs the model on a CUDA device. False: off.
        strict: raise ``ValueError`` instead of warning when a backbone cannot be accelerated.
        quantization: ``"int8"`` quantizes each fastbert backbone after the swap (:func:`fastbert.quantize`,
            calibrated with the tokenizer of the module holding it, else ``obj.tokenizer``); needs fp32 on
            the CPU, takes fp32, fp16 or bf16 on CUDA (``torch._int_mm``). ``"fp8"``: e4m3 through
            ``torch._scaled_mm``, CUDA compute capability 8.9+ only. None: off.

    Returns:
        The same ``SentenceTransformer`` / ``CrossEncoder`` object with its backbones swapped, or, for a
        transformers model, the fastbert model of the same class. A model that cannot be accelerated is
        returned unchanged, after one :class:`AccelerateWarning` saying why.
    """
    from .loading import parse_dtype
    from .quant import check_quantization
    from .quant.dtypes import auto_dtype, warn_if_emulated

    try:  # the spellings from_pretrained(torch_dtype=) takes ("bf16", "BFloat16", "torch.float32", "auto")
        dtype = parse_dtype(dtype)
    except ValueError:
        raise ValueError(_dtype_refusal(dtype)) from None
    quantization = check_quantization(quantization)
    if dtype == "auto":
        device = _device_of(obj)
        # the CPU's int8 linears take fp32 models: "auto" with int8 there is fp32, whatever bf16 the CPU has
        dtype = torch.float32 if quantization is not None and device.type == "cpu" else auto_dtype(device)
    _check_options(attn_implementation, dtype, cuda_graphs, strict)
    warn_if_emulated(dtype, _device_of(obj))

    tokenizer = getattr(obj, "tokenizer", None)
    if quantization is not None:  # everything the quantizer refuses, refused before the swap changes obj
        from .quant import check_quantization_device

        device = _device_of(obj)
        check_quantization_device(
            quantization,
            device,
            dtype if dtype is not None else _dtype_of(obj),
            to_fp32="pass dtype=torch.float32 to accelerate (it converts the weights)",
        )
        _check_quantized_already(obj, quantization)
        if tokenizer is None and getattr(obj, "config", None) is not None:
            from .quant import _tokenizer_of

            tokenizer = _tokenizer_of(obj)  # a transformers model: its folder's tokenizer, else a ValueError
        _check_calibration_tokenizers(obj, tokenizer, quantization)
    out = _accelerate(obj, attn_implementation, dtype, cuda_graphs, strict)
    if quantization is not None:
        from .model_api import quantization_of
        from .models.engine import BertPreTrainedModel
        from .quant import quantize

        for model, holder_tokenizer in _quantization_targets(out, tokenizer):
            for m in model.modules():  # a head model and its base model: once
                if isinstance(m, BertPreTrainedModel) and quantization_of(m) is None:
                    quantize(m, quantization, tokenizer=holder_tokenizer)
    return out


def _quantization_targets(out, tokenizer):
    """(fastbert backbone, the tokenizer that calibrates it): each backbone with the tokenizer of the module
    that holds it (a sentence-transformers ``Transformer``; a ``Router`` holds several, each with its own
    tokenizer and vocabulary), else ``tokenizer`` (the object's)."""
    from .models.engine import BertPreTrainedModel

    if isinstance(out, BertPreTrainedModel):
        return [(out, tokenizer)]
    targets = []
    for parent, _, model in _fastbert_slots(out):
        own = getattr(parent, "tokenizer", None)
        targets.append((model, own if own is not None else tokenizer))
    return targets


def _check_quantized_already(obj, quantization: str) -> None:
    """A fastbert model in ``obj`` quantized another way already (``model.quantization``) is refused, as
    :func:`fastbert.quantize` refuses it, before anything changes; one quantized the way asked is kept as it
    is (accelerating again leaves it quantized)."""
    if not isinstance(obj, nn.Module):
        return
    for m in obj.modules():
        report = m.__dict__.get("quantization")  # what fastbert.quantize left on a model it quantized
        if report is not None and report.method != quantization:
            raise ValueError(
                f"quantization={quantization!r}: {type(m).__name__} in this object is quantized with "
                f"{report.method} already (its .quantization); load it again to quantize it otherwise "
                "(nothing was changed)"
            )


def _check_calibration_tokenizers(obj, tokenizer, quantization: str = "int8") -> None:
    """Each tokenizer that will calibrate a backbone pads a batch of two sentences, before the swap changes
    ``obj``: one that cannot (no pad token) failed in the calibration, after the swap, leaving ``obj``
    accelerated but not quantized."""
    holders = list(_backbone_slots(obj)) if isinstance(obj, nn.Module) else []
    tokenizers = {
        id(t): t
        for t in [getattr(p, "tokenizer", None) for p, _, _ in holders] + [tokenizer]
        if t is not None
    }
    from .quant import _calibration_batches

    for tok in tokenizers.values():
        try:
            _calibration_batches(None, tok, ["a", "a b"])  # the calibration's own tokenizer call
        except Exception as e:
            raise ValueError(
                f"{quantization} calibration pads batches of sentences, and the tokenizer {type(tok).__name__} "
                "cannot: "
                f"{e} (nothing was changed)"
            ) from e


def _dtype_of(obj) -> torch.dtype:
    """The dtype of ``obj``'s first floating-point parameter (fp32 without one)."""
    if isinstance(obj, nn.Module):
        for p in obj.parameters():
            if p.is_floating_point():
                return p.dtype
    return torch.float32


def _device_of(obj) -> torch.device:
    p = next(obj.parameters(), None) if isinstance(obj, nn.Module) else None
    return p.device if p is not None else torch.device("cpu")


def _accelerate(obj, attn_implementation, dtype, cuda_graphs, strict):
    from .models.engine import BertPreTrainedModel

    if isinstance(obj, BertPreTrainedModel):  # already fastbert: apply the options only
        _configure(obj, attn_implementation, cuda_graphs)
        return obj.to(dtype) if dtype is not None else obj
    if not isinstance(obj, nn.Module):
        hint = ""
        if isinstance(getattr(obj, "model", None), nn.Module):  # a transformers pipeline holds its model
            hint = (
                f": for a {type(obj).__name__}, build fastbert.pipeline(...) instead (or accelerate its .model "
                "and pass the result to fastbert.pipeline)"
            )
        raise TypeError(
            "accelerate takes a SentenceTransformer, a CrossEncoder or a transformers model of a family fastbert has, "
            f"got {type(obj).__name__}{hint}"
        )

    if isinstance(getattr(obj, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
        _refuse(
            f"{type(obj).__name__} is a torch.compile'd model, left as it is: accelerate the model it compiles "
            "(obj._orig_mod) and compile the result",
            strict,
        )
        return obj
    if _is_transformers_model(obj) and not _is_container(obj):
        _check_cuda_graphs_device(obj, cuda_graphs)
        fast, reason = _try_convert(obj, attn_implementation)
        if fast is None:
            _refuse(f"{type(obj).__name__} is left as it is: {reason}", strict)
            return obj
        _configure(fast, None, cuda_graphs)
        return fast.to(dtype) if dtype is not None else fast

    slots = list(_backbone_slots(obj))
    if not slots:
        accelerated = list(_fastbert_slots(obj))
        if accelerated:  # accelerated before: apply the options only
            _reconfigure(obj, accelerated, attn_implementation, cuda_graphs, strict)
            return obj.to(dtype) if dtype is not None else obj
        _refuse(
            f"{type(obj).__name__} holds no transformers model as a submodule (a model loaded with "
            "backend='onnx' or 'openvino', or one without a transformer), so nothing was accelerated",
            strict,
        )
        return obj
    # backbones an earlier call swapped (the others were refused then): the options apply to them as well
    previous = list(_fastbert_slots(obj))
    for _, _, child in slots + previous:
        _check_cuda_graphs_device(child, cuda_graphs)
    # every backbone is converted before any is swapped: a refusal under strict changes nothing
    swaps, refused = [], []
    converted: dict[int, tuple] = {}  # one transformers model held by two parents (a tied encoder): once
    for parent, name, child in slots:
        backend, reason = _backend_for(parent, attn_implementation, child)
        fast = None
        if reason is None:
            if (id(child), backend) not in converted:
                converted[id(child), backend] = _try_convert(child, backend)
            fast, reason = converted[id(child), backend]
        if fast is None:
            refused.append(f"{_path(obj, parent, name)} ({type(child).__name__}): {reason}")
        else:
            swaps.append((parent, name, fast))
    if refused and strict:
        raise ValueError("fastbert.accelerate cannot accelerate " + "; ".join(refused))
    if previous:
        _reconfigure(obj, previous, attn_implementation, cuda_graphs, strict)
    for parent, name, fast in swaps:
        setattr(parent, name, fast)
        _configure(fast, None, cuda_graphs)
        _refresh_unpadding(parent)
    if refused:
        head = (
            f"accelerated {len(swaps)} backbone(s) of {type(obj).__name__} and left the others as they were"
            if swaps
            else f"{type(obj).__name__} keeps its {len(previous)} fastbert backbone(s) and the others as they were"
            if previous
            else f"{type(obj).__name__} is left as it is"
        )
        _refuse(f"{head}: " + "; ".join(refused), strict=False)
    if dtype is not None and (swaps or previous):
        obj.to(dtype)
    return obj


# --------------------------------------------------------------------------------------------- checks
def _dtype_refusal(dtype) -> str:
    return (
        "dtype must be one of torch.float32, torch.float16, torch.bfloat16 (or a name of one, in any case: "
        f"'float32'/'fp32', 'float16'/'fp16'/'half', 'bfloat16'/'bf16'), 'auto' or None, got {dtype!r}"
    )


def _check_options(attn_implementation, dtype, cuda_graphs, strict) -> None:
    """Bad options: a clear exception before anything is changed."""
    check_attn_implementation(attn_implementation)
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(_dtype_refusal(dtype))
    if cuda_graphs is not None and not isinstance(cuda_graphs, (bool, dict)):
        raise TypeError(
            f"cuda_graphs must be None, a bool or a dict of cuda_graphs() arguments, got {type(cuda_graphs).__name__}"
        )
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {type(strict).__name__}")


def _check_cuda_graphs_device(model: nn.Module, cuda_graphs) -> None:
    if cuda_graphs is True or isinstance(cuda_graphs, dict):  # {}: a runner with the defaults
        p = next(model.parameters(), None)
        if p is None or p.device.type != "cuda":
            device = p.device if p is not None else "no parameters"
            raise ValueError(f"cuda_graphs needs the model on a CUDA device, it is on {device}")


def _transformers():
    """The transformers module when it is imported (a transformers model cannot exist otherwise)."""
    return sys.modules.get("transformers")


def _is_transformers_model(module: nn.Module) -> bool:
    tf = _transformers()
    return tf is not None and isinstance(module, tf.PreTrainedModel)


#: transformers models that only hold other models and call them through their forward: their encoder /
#: decoder are accelerated in place, as the backbones of a sentence-transformers object
_CONTAINERS = ("EncoderDecoderModel",)


def _is_container(model: nn.Module) -> bool:
    tf = _transformers()
    return any(
        isinstance(model, cls)
        for cls in (getattr(tf, name, None) for name in _CONTAINERS)
        if isinstance(cls, type)
    )


def _unsupported_reason(model: nn.Module) -> str | None:
    """Why fastbert cannot stand in for this transformers model with the same numbers; None when it can."""
    from . import registry

    tf = _transformers()
    name = type(model).__name__
    known = registry.class_names()
    hf_class = getattr(tf, name, None) if tf is not None else None
    if name not in known or hf_class is None:
        base = next((c.__name__ for c in type(model).__mro__ if c.__name__ in known), None)
        if base is not None:
            return f"it subclasses transformers' {base} with code of its own"
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type not in registry.FAMILIES:
            return (
                f"{name} (model_type {model_type!r}) is not a model type fastbert supports; supported model "
                f"types: {', '.join(registry.supported_model_types())}"
            )
        inner = [
            child_name
            for child_name, child in model.named_children()
            if type(child).__name__ in known and type(child).__module__.startswith("transformers.")
        ]
        hint = (
            f" (accelerate its encoder instead: model.{inner[0]} = fastbert.accelerate(model.{inner[0]}))"
            if inner
            else ""
        )
        return f"{name} is not one of the classes fastbert has for model_type {model_type!r}{hint}"
    if type(model) is not hf_class:
        return f"it subclasses transformers' {name} with code of its own"
    config = model.config
    position = getattr(config, "position_embedding_type", "absolute")
    if position != "absolute":
        return f"position_embedding_type={position!r}: fastbert's packed and Triton paths cover absolute positions only"
    for path, module in model.named_modules():
        query = next((getattr(module, q) for q, _, _ in registry.HF_QKV_NAMES if hasattr(module, q)), None)
        if isinstance(query, nn.Linear) and query.out_features != config.hidden_size:
            return f"{path} has pruned attention heads ({query.out_features} of {config.hidden_size} outputs)"
    if getattr(model, "_hf_peft_config_loaded", False) or getattr(model, "peft_config", None):
        return "it has adapters (PEFT) loaded"
    if getattr(model, "hf_quantizer", None) is not None or getattr(config, "quantization_config", None):
        return "its weights are quantised"
    dtypes = {p.dtype for p in model.parameters()}
    devices = {p.device for p in model.parameters()}
    if len(dtypes) > 1 or not dtypes <= set(_DTYPES):
        return f"its parameters are {sorted(map(str, dtypes))}, not all one of float32/float16/bfloat16"
    if len(devices) > 1 or any(d.type == "meta" for d in devices):
        return f"its parameters are on {sorted(map(str, devices))}, not on one device (offloaded or sharded)"
    for path, module in model.named_modules():
        where = path or "the model"
        if hasattr(module, "_hf_hook"):
            return f"{where} has an accelerate hook (device_map offloading)"
        if _foreign_hooks(module):
            return f"{where} has forward hooks, which fastbert's modules would not run"
        owner = type(module).__module__
        if owner.startswith(("torch.ao.", "torch.nn.quantized")) or hasattr(module, "_packed_params"):
            return f"its weights are quantised ({where} is a {owner}.{type(module).__name__})"
        if not (owner.startswith("transformers.") or owner.startswith("torch.")):
            return f"{where} is a {type(module).__name__} from {owner}, not transformers' own module"
    return None


#: ModernBERT's activation modules (``act`` on transformers' side): the attribute of fastbert's module at the
#: same path that names the activation it computes -> the config field it came from
_NAMED_ACTIVATIONS = {"hidden_activation": "hidden_activation", "activation": "classifier_activation"}

#: transformers' modules whose ``activation`` module fastbert computes from the config: class -> the config
#: field that names it, or ``=name`` for the one transformers fixes (ELECTRA's generator and classifier: GELU)
_ACTIVATION_MODULES = {
    "FFN": "activation",  # DistilBERT's feed-forward
    "DistilBertForMaskedLM": "activation",
    "ElectraDiscriminatorPredictions": "hidden_act",
    "ElectraGeneratorPredictions": "=gelu",
    "ElectraClassificationHead": "=gelu",
}


def _activation_module(name):
    """transformers' activation module of a config's activation name (None without transformers, or for a
    name it does not have)."""
    try:
        from transformers.activations import ACT2FN

        return ACT2FN[name] if isinstance(name, str) else None
    except (ImportError, KeyError):
        return None


def _same_activation(act: nn.Module, want: nn.Module) -> bool:
    return type(act) is type(want) and getattr(act, "approximate", None) == getattr(want, "approximate", None)


def _settings_differ(hf_model: nn.Module, fast: nn.Module) -> str | None:
    """A module setting the config does not say, which fastbert (built from the config) would not follow:
    a LayerNorm's ``eps``, a BERT-family layer's activation module, DistilBERT's and ELECTRA's ``activation``
    modules, ModernBERT's MLP and head activation modules (None when they agree)."""
    ours = dict(fast.named_modules())
    config = hf_model.config
    act_name = getattr(config, "hidden_act", None)
    want = _activation_module(act_name)
    for path, module in hf_model.named_modules():
        mine = ours.get(path)
        if isinstance(module, nn.LayerNorm) and isinstance(mine, nn.LayerNorm) and mine.eps != module.eps:
            return f"{path or 'the model'}.eps is {module.eps}, not the config's {mine.eps}, which fastbert computes"
        for attr in ("intermediate_act_fn", "transform_act_fn"):
            act = getattr(module, attr, None)
            if want is None or act is None:
                continue
            if not _same_activation(act, want):
                return f"{path}.{attr} is {act!r}, not the config's hidden_act {act_name!r}, which fastbert computes"
        # DistilBERT's and ELECTRA's ``activation`` modules: fastbert computes the config's (or the fixed GELU)
        field = _ACTIVATION_MODULES.get(type(module).__name__)
        act = getattr(module, "activation", None)
        if field is not None and isinstance(act, nn.Module):
            name = field[1:] if field.startswith("=") else getattr(config, field, None)
            expected = _activation_module(name)
            if expected is not None and not _same_activation(act, expected):
                said = (
                    f"transformers' {name!r}" if field.startswith("=") else f"the config's {field} {name!r}"
                )
                return f"{path or 'the model'}.activation is {act!r}, not {said}, which fastbert computes"
        # ModernBERT's MLP and head: fastbert's modules run the activation they name (from the config), not
        # transformers' ``act`` module, which may have been swapped by hand or the config edited after building
        act = getattr(module, "act", None)
        for attr, field in _NAMED_ACTIVATIONS.items():
            name = getattr(mine, attr, None)
            if not isinstance(act, nn.Module) or not isinstance(name, str):
                continue
            theirs = _activation_module(name)
            if theirs is not None and not _same_activation(act, theirs):
                return f"{path}.act is {act!r}, not the config's {field} {name!r}, which fastbert computes"
    return None


def _carry_dropout(hf_model: nn.Module, fast: nn.Module) -> str | None:
    """Dropout set on transformers' modules by hand (``p=0``, or an ``nn.Identity`` in its place, to fine-tune
    without dropout), which the config does not say: put on fastbert's dropout at the same path, which
    fastbert's modules, built from the config, would otherwise apply in training at the config's rate. None,
    or why fastbert cannot follow one: it decides from the config whether a dropout runs at all, so one the
    config leaves at 0 cannot be turned on."""
    theirs, ours = dict(hf_model.named_modules()), dict(fast.named_modules())
    for path, module in theirs.items():
        mine = ours.get(path)
        if (
            isinstance(module, nn.Dropout)
            and module.p > 0
            and not (isinstance(mine, nn.Dropout) and mine.p > 0)
        ):
            return (
                f"{path}.p is {module.p}, a dropout the config does not have, which fastbert would not apply"
            )
    for path, mine in ours.items():
        if not isinstance(mine, nn.Dropout):
            continue
        module = theirs.get(path)
        if isinstance(module, nn.Dropout):
            mine.p = module.p
        elif isinstance(module, nn.Identity):
            mine.p = 0.0
        elif module is not None and mine.p > 0:  # none there (another transformers' layout): the config's
            return f"{path} is {module!r}, not the dropout of the config, which fastbert applies in training"
    return None


def _foreign_hooks(module: nn.Module) -> list:
    """Forward hooks other than transformers' own output recording (transformers 5 leaves those on the
    layers after a call with ``output_hidden_states``; fastbert returns hidden states itself)."""
    hooks = [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
    return [h for h in hooks if not str(getattr(h, "__module__", None)).startswith("transformers.")]


def _refuse(reason: str, strict: bool) -> None:
    if strict:
        raise ValueError(f"fastbert.accelerate: {reason}")
    # the warning points at the caller's line: the first frame outside the fastbert package
    package = os.path.dirname(__file__) + os.sep
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"fastbert.accelerate: {reason}", AccelerateWarning, stacklevel=level)


#: heads that classify the state at position 0 (transformers' ``[:, 0]``): a padding position in the shorter rows
#: of a left-padded batch
_FIRST_TOKEN_HEADS = ("ForSequenceClassification", "ForMultipleChoice", "ForNextSentencePrediction")


def _reads_position_zero(holder: nn.Module, model: nn.Module) -> bool:
    """Whether what ``holder`` reads of ``model`` is computed from the state at position 0: a classification
    head on the first token (ModernBERT's ``classifier_pooling="mean"`` masks instead), or the pooler's output
    (a sentence-transformers ``Transformer`` whose ``modality_config`` reads ``pooler_output``)."""
    if type(model).__name__.endswith(_FIRST_TOKEN_HEADS):
        return getattr(getattr(model, "config", None), "classifier_pooling", "cls") != "mean"
    return "pooler_output" in repr(getattr(holder, "modality_config", None))


def _reads_masked_positions(holder: nn.Module, model: nn.Module | None = None) -> str | None:
    """Why the module holding a backbone reads the backbone's outputs where the attention mask is 0 (None when
    it does not). sentence-transformers >= 6.3's ``Transformer`` with ColBERT query expansion and
    ``attend=False`` swaps the pad positions of a query for the expansion token, leaves their attention mask
    at 0, and ``MultiVectorMask`` makes MaxSim score the encoder's outputs there: transformers computes them
    (those queries attend to the real tokens), fastbert's packing backends leave them zero. A tokenizer that
    pads on the left (``padding_side="left"``) in front of a head that classifies position 0 (a
    ``CrossEncoder``'s): transformers classifies the pad token's state in the shorter rows, fastbert's packing
    backends a zero state."""
    expansion = getattr(holder, "query_expansion", None)
    if isinstance(expansion, dict) and not expansion.get("attend", False):
        return (
            "its query_expansion (attend=False) scores the encoder's outputs at the expansion positions, "
            "whose attention_mask is 0"
        )
    tokenizer = getattr(holder, "tokenizer", None)
    if (
        model is not None
        and getattr(tokenizer, "padding_side", "right") == "left"
        and _reads_position_zero(holder, model)
    ):
        return (
            f"its tokenizer pads on the left (padding_side='left') and {type(model).__name__} reads the state at "
            "position 0, a padding position (attention_mask 0) in the shorter rows of a batch"
        )
    return None


def _backend_for(
    holder: nn.Module, attn_implementation: str | None, model: nn.Module | None = None
) -> tuple[str | None, str | None]:
    """(the backend of the backbone ``model`` held by ``holder``, None), or (None, why it cannot be accelerated):
    ``eager`` (padded, as transformers) where the holder reads the outputs at positions with attention mask 0,
    which the packing backends (sdpa, triton) leave zero."""
    why = _reads_masked_positions(holder, model)
    if why is None:
        return attn_implementation, None
    if attn_implementation not in (None, "eager"):
        return None, (
            f"{why}; attn_implementation={attn_implementation!r} packs the real tokens and leaves those "
            "positions zero (None or 'eager' computes them as transformers, padded)"
        )
    return "eager", None


def _reconfigure(obj, accelerated, attn_implementation, cuda_graphs, strict) -> None:
    """accelerate on an object accelerated before: the options on every fastbert backbone, with the backend
    that ``_backend_for`` asks for (a query expansion set after the first call included)."""
    for _, _, model in accelerated:  # cuda_graphs off CUDA: refused before any backbone changes
        _check_cuda_graphs_device(model, cuda_graphs)
    backends, refused = [], []
    for parent, name, model in accelerated:
        backend, reason = _backend_for(parent, attn_implementation, model)
        if reason is not None:
            refused.append(f"{_path(obj, parent, name)} ({type(model).__name__}): {reason}")
            backend = "eager"
        backends.append(backend)
    if refused and strict:
        raise ValueError("fastbert.accelerate cannot accelerate " + "; ".join(refused))
    from .models.engine import BertPreTrainedModel

    for (_, _, model), backend in zip(accelerated, backends):
        for m in model.modules():  # the head model and its base model, as before
            if isinstance(m, BertPreTrainedModel):
                _configure(m, backend, cuda_graphs)
    if refused:
        _refuse("kept the eager backend: " + "; ".join(refused), strict=False)


# --------------------------------------------------------------------------------------------- the swap
def _fastbert_slots(root: nn.Module):
    """(parent, attribute, model) for every fastbert model held as a submodule of ``root``, outermost first."""
    from .models.engine import BertPreTrainedModel

    stack = [root]
    while stack:
        parent = stack.pop()
        for name, child in parent.named_children():
            if isinstance(child, BertPreTrainedModel):
                yield parent, name, child
            else:
                stack.append(child)


def _backbone_slots(root: nn.Module):
    """(parent, attribute, model) for every transformers model held as a public submodule of ``root``,
    outermost first (a model inside a transformers model is part of it)."""
    from .models.engine import BertPreTrainedModel

    stack = [root]
    while stack:
        parent = stack.pop()
        for name, child in parent._modules.items():  # every slot: one model held twice is seen twice
            if child is None or name.startswith("_") or isinstance(child, BertPreTrainedModel):
                continue
            if _is_transformers_model(child):
                yield parent, name, child
            else:
                stack.append(child)


def _path(root: nn.Module, parent: nn.Module, name: str) -> str:
    for path, module in root.named_modules():
        if module is parent:
            return f"{path}.{name}" if path else name
    return name


def _try_convert(hf_model: nn.Module, attn_implementation: str | None):
    """(the fastbert model, None), or (None, why not)."""
    reason = _unsupported_reason(hf_model)
    if reason is not None:
        return None, reason
    import fastbert

    # read before converting: the conversion may turn the transformers model's q/k/v into views
    frozen = {name for name, p in hf_model.named_parameters() if not p.requires_grad}
    try:
        fast = fastbert.from_transformers(hf_model, attn_implementation=attn_implementation)
    except (ValueError, TypeError, AttributeError) as error:  # e.g. an activation fastbert does not have
        return None, str(error)
    differs = _settings_differ(hf_model, fast) or _carry_dropout(hf_model, fast)
    if differs is not None:
        return None, differs
    for name, p in fast.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return fast, None


def _configure(model: nn.Module, attn_implementation: str | None, cuda_graphs) -> None:
    _check_cuda_graphs_device(model, cuda_graphs)  # before anything changes
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    if cuda_graphs is True or isinstance(cuda_graphs, dict):  # {}: a runner with the defaults
        model.cuda_graphs(**(cuda_graphs if isinstance(cuda_graphs, dict) else {}))
    elif cuda_graphs is False:
        model.cuda_graphs(enabled=False)


def _refresh_unpadding(parent: nn.Module) -> None:
    """sentence-transformers >= 5.2's ``Transformer`` decides once whether to flatten a batch into one
    sequence for a flash-attention transformers model; assigning its public ``unpad_inputs`` property
    decides again for the new backbone (fastbert takes padded batches and unpads them itself)."""
    if isinstance(getattr(type(parent), "unpad_inputs", None), property):
        parent.unpad_inputs = parent.unpad_inputs


sys.modules[__name__].__class__ = FunctionModule  # fastbert.accelerate(...) calls accelerate()
