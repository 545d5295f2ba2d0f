"""Reduced precision as a load-time transform of a loaded fastbert model (no new file format).

```python
model = fastbert.BertModel.from_pretrained(path, quantization="int8")    # or:
model = fastbert.quantize(fastbert.BertModel.from_pretrained(path), "int8", tokenizer=tok)
st = fastbert.accelerate(SentenceTransformer(path), quantization="int8")
gpu = fastbert.BertModel.from_pretrained(path, torch_dtype=torch.bfloat16, device_map="cuda",
                                         quantization="fp8")             # sm_89+: torch._scaled_mm
```

int8 on the CPU (:mod:`fastbert.quant.int8`): every encoder linear that the op table runs (QKV, attention
output, intermediate, output; ModernBERT's ``Wqkv``, ``Wo``, ``mlp.Wi``, ``mlp.Wo``) gets an int8 copy of its weight, per output channel, and quantizes its input
per token at run time; int32 sums by oneDNN. On CUDA (:mod:`fastbert.quant.gpu`) "int8" is the same
scheme through ``torch._int_mm`` (8-bit weights and activations, a zero point per token), and "fp8" the e4m3 one through ``torch._scaled_mm``
(GPUs of compute capability 8.9 or newer; refused elsewhere, naming the device's capability). Quality is
kept by measurement on a small built-in calibration set (``calibration.txt``, 128 sentences): per linear,
the SmoothQuant migration strength and outlier split with the lowest error, and for int8 the weights'
rounding by GPTQ (:mod:`fastbert.quant.gptq`: each rounding error carried onto the input channels not
rounded yet, from the calibration inputs' Gram matrix; kept where it lowers the error); then, while the calibration
embeddings' cosine to the unquantized model is under the target, the linear with the highest error goes
back to the model's dtype. The decision is recorded on the model (``model.quantization``; its ``active``:
calibration left some linear reduced) and each linear's repr says what computes it now. The model does not carry
transformers' ``is_quantized`` (weights stored quantized, not trainable): its weights stay trainable, and
``transformers.Trainer`` takes it.

The parameters are not changed and stay the truth: ``save_pretrained`` writes the checkpoint the model was
loaded from (in its dtype), and loading it gives an unquantized model until ``quantization=`` is asked
again; :func:`dequantize` (``model.dequantize()``, as transformers) gives the unquantized model back. The reduced copy of a linear belongs to its module (:class:`QuantizedLinear`; the fused
query/key/value projection's to its self-attention) and is made again from the current weight when that
changed (:class:`fastbert.quant.int8.WeightWatch`: another tensor, an in-place edit, and on the CPU an edit
through ``.data`` seen at a sample of the weight's elements); :func:`refresh` makes every copy again for an
edit that check cannot see. ``copy.deepcopy``, pickle and ``torch.save(model)`` work: the copies are made
again at the first call. Heads (pooler, classifier, MLM head) and cross-attention keep the model's dtype.
Every op table (``eager``, ``sdpa``, ``triton``; ``output_attentions=True`` included) runs the copies.
Inference only: with gradients, under ``torch.compile``, or on another device or dtype the linears compute
with the model's own weights, with one warning per reason per model.
"""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.ops import fusable_linear
from ..core.weight_watch import DTYPE_NAMES as _DTYPE_NAMES
from .int8 import Int8Linear, int8_available, int8_schemes, reference_int8_linear
from .notes import Notes, warn_at_caller

__all__ = [
    "QUANTIZATIONS",
    "QuantizationReport",
    "QuantizedLinear",
    "calibration_tokenizer",
    "check_quantization",
    "check_quantization_device",
    "dequantize",
    "flag_refusal",
    "quantize",
    "refresh",
]

#: the ``quantization=`` values, in any case ("INT8" is "int8"): None / "none" keep the model as it is
QUANTIZATIONS = ("int8", "fp8")

_ALPHAS = (None, 0.5, 0.8)
_OUTLIERS = (0, 16)  # input channels (largest calibration |x|) computed apart, unquantized
_CALIBRATION_FILE = os.path.join(os.path.dirname(__file__), "calibration.txt")
_SAMPLE_ROWS = 1024  # calibration tokens kept per linear to measure its error


def check_quantization(quantization: Any) -> str | None:
    """The quantization name, lower case (None for None or "none", in any case); ValueError naming the
    supported values otherwise."""
    if quantization is None:
        return None
    if isinstance(quantization, str) and quantization.lower() == "none":
        return None
    if isinstance(quantization, str) and quantization.lower() in QUANTIZATIONS:
        return quantization.lower()
    raise ValueError(
        f"unknown quantization {quantization!r}: supported are {', '.join(map(repr, QUANTIZATIONS))} or None"
    )


def _device_rule(method: str | None, device: torch.device, dtype: Any) -> tuple[str, str | None] | None:
    """The rule ``method`` breaks on ``device`` with weights of ``dtype`` (a ``torch.dtype``; anything else
    is not known yet and not checked), as (rule, the device's reason), or None: ("device", None): int8 off
    the CPU and CUDA; ("dtype", None): int8 on the CPU from other than fp32 weights; ("gpu", why): fp8 where
    ``torch._scaled_mm`` cannot run it, int8 on CUDA without ``torch._int_mm``. The API
    (:func:`check_quantization_device`) and the command lines (:func:`flag_refusal`) word it each in their
    own terms."""
    from .gpu import fp8_refusal, int_mm_refusal

    if method == "int8":
        if device.type not in ("cpu", "cuda"):
            return "device", None
        if device.type == "cpu":
            fp32 = not isinstance(dtype, torch.dtype) or dtype == torch.float32
            return None if fp32 else ("dtype", None)
        why = int_mm_refusal(device)
    elif method == "fp8":
        why = fp8_refusal(device)
    else:
        return None
    return None if why is None else ("gpu", why)


def check_quantization_device(
    quantization: str | None,
    device: torch.device | str | None,
    dtype: Any = None,
    to_fp32: str = "load it in float32 (leave torch_dtype / dtype unset, or pass torch.float32)",
) -> None:
    """Refuse, before anything loads, a quantization the device cannot run (:func:`_device_rule`): "fp8"
    needs a CUDA GPU of compute capability 8.9 or newer (the error names the device and its capability);
    "int8" runs on the CPU, from fp32 weights (``dtype``: the dtype the model will have; ``to_fp32``: how
    the caller's user gets fp32 weights), or on CUDA through ``torch._int_mm``."""
    device = torch.device(device if device is not None else "cpu")
    broken = _device_rule(quantization, device, dtype)
    if broken is None:
        return
    rule, why = broken
    if rule == "device":
        raise ValueError(
            f"quantization='int8' runs on the CPU (oneDNN) or on CUDA (torch._int_mm), not on the "
            f"{device.type} device"
        )
    if rule == "dtype":
        raise ValueError(
            f"quantization='int8' computes from fp32 weights on the CPU, and this model would be {dtype}: "
            f"{to_fp32}, or leave quantization unset to run {dtype}"
        )
    hint = " (load with device_map='cuda', or quantize after .to('cuda'))" if device.type == "cpu" else ""
    raise ValueError(f"quantization={quantization!r}: {why}{hint}")


def flag_refusal(
    quantization: str | None,
    dtype: Any,
    device: torch.device,
    checkpoint_dtype: Any = None,
    device_flag: str = "--device",
) -> str | None:
    """Why ``--quantization`` cannot run with ``--dtype`` on ``device``, in the command line's flags (None
    when it can; ``fastbert serve``, ``run`` and ``embed`` check it before the model loads; the rules:
    :func:`_device_rule`). ``checkpoint_dtype``: the checkpoint's dtype (its config's), what ``--dtype auto``
    loads; ``device_flag``: the command's flag that names the device."""
    method = check_quantization(quantization)
    auto = dtype == "auto"
    broken = _device_rule(method, device, checkpoint_dtype if auto else dtype)
    if broken is None:
        return None
    rule, why = broken
    if rule == "device":
        return f"--quantization int8 runs on the CPU (oneDNN) or on CUDA (torch._int_mm), not on {device}"
    if rule == "dtype":
        name = str(checkpoint_dtype if auto else dtype).removeprefix("torch.")
        said = f"--dtype auto is this checkpoint's {name}" if auto else f"--dtype is {name}"
        return (
            f"--quantization int8 on the CPU computes from float32 weights, and {said}: leave "
            f"--dtype unset (or pass float32) with it, or leave --quantization unset to run {name}"
        )
    hint = f" ({device_flag} names a GPU, e.g. {device_flag} cuda:0)" if device.type == "cpu" else ""
    return f"--quantization {method} on {device}: {why}{hint}"


def calibration_sentences() -> list[str]:
    """The built-in calibration set: 128 sentences from Python's docstrings (tools/make_sentence_corpus.py)."""
    with open(_CALIBRATION_FILE, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


@dataclass
class LayerDecision:
    name: str
    precision: str  # the method ("int8", "fp8"), or the model's dtype it kept ("fp32", "bf16", "fp16")
    error: float  # relative error of the quantized linear on the calibration tokens
    alpha: float | None  # SmoothQuant strength (None: no migration)
    reason: str = ""

    def describe(self) -> str:
        """The precision, and why where there is a reason (``fp32 (kept: ...)``): a kept linear's repr."""
        return f"{self.precision} ({self.reason})" if self.reason else self.precision


@dataclass
class QuantizationReport:
    """What :func:`quantize` decided, per linear, and the calibration embeddings' cosine to fp32."""

    method: str
    weight_qmax: int  # the largest quantized weight magnitude (127 for int8, 448 for fp8 e4m3)
    layers: list[LayerDecision] = field(default_factory=list)
    min_cosine: float = float("nan")
    mean_cosine: float = float("nan")
    kernel: str = "onednn"  # what computes the quantized GEMMs: onednn, torch._int_mm, torch._scaled_mm
    dtype: str = "fp32"  # the model's dtype: the reference of the cosines and the kept linears' precision
    device: str = "cpu"

    @property
    def reduced(self) -> int:
        """How many linears run the reduced method."""
        return sum(d.precision == self.method for d in self.layers)

    @property
    def active(self) -> bool:
        """True when calibration left some linear in the reduced method (it may keep them all); the
        decision, not what runs now (after ``.half()``: each linear's repr says that)."""
        return self.reduced > 0

    def remove(self, model: nn.Module) -> nn.Module:
        """Undo this quantization on ``model``, the model it was made for (:func:`dequantize`): how a model's
        ``dequantize()`` reaches it, without the model classes importing this package."""
        return dequantize(model)

    def __repr__(self) -> str:
        n = self.reduced
        via = "" if self.kernel == "onednn" else f" via {self.kernel} on {self.device}"
        return (
            f"QuantizationReport({self.method}{via}: {n}/{len(self.layers)} linears {self.method}, the rest "
            f"{self.dtype}; calibration cosine to {self.dtype} min {self.min_cosine:.5f} mean "
            f"{self.mean_cosine:.5f}; a load-time transform: the checkpoint stays {self.dtype})"
        )


class QuantizedLinear(nn.Linear):
    """An ``nn.Linear`` on the same parameters (same state dict) that owns the reduced copy of its weight
    (``qlinear``: an :class:`~fastbert.quant.int8.Int8Linear` or a CUDA linear; None where calibration kept
    the model's dtype) and says in its repr what computes it now.

    The op tables see the weight only: it carries a pointer to the copy (``weight.fastbert_linear``), put
    back on whatever tensor becomes the weight (``module.weight = ...``, ``load_state_dict(assign=True)``,
    ``to_empty``, ``.to()``, a deep copy or an unpickled model). The copy follows the weight's values
    (:class:`fastbert.quant.int8.WeightWatch`); :func:`refresh` makes it again by hand.
    """

    def __init__(self, linear: nn.Linear, decision: LayerDecision, qlinear: Any = None):
        nn.Module.__init__(self)
        self.training = linear.training  # an eval model's linear stays in eval mode (a new module trains)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.decision = decision
        self.qlinear = qlinear  # before the weight: registering it attaches the pointer
        self.weight = linear.weight
        self.bias = linear.bias

    def attach(self) -> None:
        """Point the current weight at this module's copy (or at none when the linear kept its dtype)."""
        weight, hook = self._parameters.get("weight"), self.__dict__.get("qlinear")
        if weight is None:
            return
        if hook is None:
            weight.__dict__.pop("fastbert_linear", None)
        elif weight.__dict__.get("fastbert_linear") is not hook:
            weight.fastbert_linear = hook

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        """``nn.Module.register_parameter`` (also reached by ``module.weight = p`` and
        ``load_state_dict(assign=True)``); a new weight gets the pointer to the copy."""
        super().register_parameter(name, param)
        if name == "weight":
            self.attach()

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)  # .to(), .half(), to_empty(): the weight may be a new Parameter
        self.attach()
        return out

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)  # assign=True / swapped tensors: a new weight
        self.attach()

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)  # copy.deepcopy, pickle: the copied weight may lack the pointer
        self.attach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hook = self.__dict__.get("qlinear")
        return hook(x, self.weight, self.bias) if hook is not None else F.linear(x, self.weight, self.bias)

    def running(self) -> str:
        """What computes this linear now: the copy's description, or the weights' dtype and why."""
        hook, decision, weight = self.__dict__.get("qlinear"), self.decision, self.weight
        if hook is None:
            return decision.describe()
        if hook.inactive(weight) is None and weight.__dict__.get("fastbert_linear") is not hook:
            dtype = _DTYPE_NAMES.get(weight.dtype, str(weight.dtype))
            return f"{dtype} ({hook.method} copy not on the current weight: fastbert.quant.refresh(model) puts it back)"
        return hook.running(weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, quantization={self.running()}"


def refresh(model: nn.Module) -> nn.Module:
    """Make every reduced copy of ``model`` again from its current weights at its next call, and point
    the weights at the copies again; returns ``model``.

    The copies follow their weights by themselves (:class:`fastbert.quant.int8.WeightWatch`): another
    tensor, an in-place edit, and on the CPU an edit through ``.data`` (``p.data.copy_``, PEFT's
    ``merge_and_unload``) seen at a sample of the weight's elements. Call this after an edit that check
    cannot see: an edit through ``.data`` on CUDA, or one that leaves every sampled element as it was.
    The calibration's decisions (which linears, their smoothing and outlier channels) are kept, and its
    GPTQ rounding for a weight that holds exactly the values calibrated on (others are rounded to
    nearest): to calibrate again, load the model again with ``quantization=``. The prepacked CPU copies of
    the model's other linears (:mod:`fastbert.core.prepack`: the ones calibration kept, the heads; every
    linear of a model not quantized) follow their weights by the same check: they are dropped too, and made
    again at their next call.
    """
    from ..core import prepack

    prepack.forget(model.parameters())
    for m in model.modules():
        if isinstance(m, QuantizedLinear):
            m.attach()
            if m.qlinear is not None:
                m.qlinear.invalidate()
        hook = m.__dict__.get("qkv_linear")
        if hook is not None and hasattr(hook, "invalidate"):
            hook.invalidate()
    return model


def dequantize(model: nn.Module) -> nn.Module:
    """Remove the quantization of ``model`` in place and return it, as transformers' ``model.dequantize()``
    (which fastbert's models call): every :class:`QuantizedLinear` becomes a plain ``nn.Linear`` on the same
    parameters, the fused query/key/value projections drop their copies, and ``model.quantization`` is gone.
    Nothing is computed back: the parameters stayed the model's dtype. ValueError, as transformers', for a
    model that is not quantized."""
    from ..model_api import quantization_of

    if quantization_of(model) is None:
        raise ValueError("You need to first quantize your model in order to dequantize it")
    plain: dict[int, nn.Linear] = {}  # a module shared by several layers stays one module
    for parent in list(model.modules()):
        parent.__dict__.pop("quantization", None)
        parent.__dict__.pop("qkv_linear", None)
        parent.__dict__.pop("qkv_kept", None)
        for name, child in parent.named_children():
            if isinstance(child, QuantizedLinear):
                linear = plain.get(id(child))
                if linear is None:
                    child.weight.__dict__.pop("fastbert_linear", None)
                    linear = nn.Linear(child.in_features, child.out_features, bias=False, device="meta")
                    linear.weight, linear.bias = child.weight, child.bias
                    plain[id(child)] = linear.train(child.training)
                setattr(parent, name, linear)
    return model


class _Recorder:
    """A calibration pass's linear: runs in the model's dtype, keeps the input's per-channel max |x|, sample
    rows and (for int8's GPTQ rounding) the Gram matrix ``X^T X`` of all its calibration inputs in fp32:
    K x K per linear while calibration runs (BERT-base: 0.5 GB in all, BERT-large: 1.9 GB)."""

    def __init__(self, gram: bool = False):
        self.absmax: torch.Tensor | None = None
        self.rows: list[torch.Tensor] = []
        self.kept = 0
        self.gram: torch.Tensor | None = None
        self.keep_gram = gram

    def __call__(self, x, weight, bias=None):
        x2 = x.detach().reshape(-1, x.shape[-1]).float()
        m = x2.abs().amax(dim=0)
        self.absmax = m if self.absmax is None else torch.maximum(self.absmax, m)
        if self.keep_gram:
            g = x2.T @ x2
            self.gram = g if self.gram is None else self.gram.add_(g)
        if self.kept < _SAMPLE_ROWS:
            take = x2[:: max(1, x2.shape[0] // 256)][: _SAMPLE_ROWS - self.kept]
            self.rows.append(take.clone())
            self.kept += take.shape[0]
        return F.linear(x, weight, bias)


class _Slot:
    """One encoder projection the op table runs: a linear (its weight carries the transform during
    calibration, ``weight.fastbert_linear``; then the :class:`QuantizedLinear` that replaces it owns it), or
    the fused query/key/value projection of a self-attention, whose transform rides on the module
    (``qkv_linear``, see ``BertSelfAttention.forward``)."""

    def __init__(self, name: str, parent: nn.Module, attr: str | None, linear: nn.Linear | None = None):
        self.name, self.parent, self.attr, self.linear = name, parent, attr, linear
        self.hook = None  # the reduced copy it keeps (None: the model's dtype)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.linear is not None:
            return self.linear.weight, self.linear.bias
        return self.parent.fused_qkv()  # (3n, H) view of the one storage, (3n,)

    def set(self, hook) -> None:
        self.hook = hook
        if self.linear is not None:
            self.linear.weight.fastbert_linear = hook
        else:
            self.parent.__dict__["qkv_linear"] = hook

    def clear(self) -> None:
        self.hook = None
        if self.linear is not None:
            self.linear.weight.__dict__.pop("fastbert_linear", None)
        else:
            self.parent.__dict__.pop("qkv_linear", None)


def _path(root: nn.Module, path: str):
    for part in path.split("."):
        root = getattr(root, part, None)
        if root is None:
            return None
    return root


def _base_linear(module: Any) -> Any:
    """The linear inside a PEFT adapter layer (``get_base_layer``), else ``module`` itself."""
    get_base_layer = getattr(module, "get_base_layer", None)
    return get_base_layer() if callable(get_base_layer) else module


def _family_layout(base: nn.Module, method: str = "int8") -> tuple[str, str | None, tuple[str, ...]]:
    """The base model's ``linear_layout`` (its family's: the layer list, self-attention's module, the linears
    the op table runs after it); ValueError naming the model when its encoder is not laid out that way (a
    model whose layers were replaced by hand; ``method``: the quantization asked, for the message)."""
    model_type = base.config.model_type
    layers_path, att_path, linear_paths = getattr(base, "linear_layout", ("", None, ()))
    layers = _path(base, layers_path) if layers_path else None

    def laid_out(layer) -> bool:
        if att_path is not None:  # fastbert's self-attention (one fused query/key/value projection), by its
            # class: a wrapper that forwards attributes (PEFT's ModulesToSaveWrapper) is not laid out that way
            return callable(getattr(type(_path(layer, att_path)), "fused_qkv", None))
        # a linear wrapped by PEFT (LoRA) is laid out as built: it runs as a module and stays in the model's
        # dtype (_encoder_linears says so); only a linear replaced by something else is not
        return all(isinstance(_base_linear(_path(layer, p)), nn.Linear) for p in linear_paths)

    if layers is None or not all(laid_out(m) for m in layers):
        raise ValueError(
            f"{method} quantization covers BERT's family (RoBERTa, XLM-R, CamemBERT, ELECTRA), DistilBERT, MPNet "
            f"and ModernBERT as they are built; {type(base).__name__} ({model_type}) is not laid out that way "
            "(its encoder layers were replaced or it is another architecture)"
        )
    return layers_path, att_path, linear_paths


def _encoder_linears(base: nn.Module) -> tuple[list[_Slot], dict[str, str]]:
    """The encoder projections the op table runs (fused QKV, attention output, intermediate, output, under
    each family's names), and {name: reason} of those that stay in the model's dtype because they do not
    run through the table but as modules (wrapped, replaced or hooked: the table leaves them to their own
    code, which a quantized copy would drop)."""
    layers_path, att_path, linear_paths = _family_layout(base)
    out, skipped = [], {}
    for i, layer in enumerate(_path(base, layers_path)):
        prefix = f"{layers_path}.{i}."
        if att_path is not None:
            att = _path(layer, att_path)
            if att.fused_qkv() is not None:
                out.append(_Slot(f"{prefix}{att_path}.qkv", att, None))
            else:  # PEFT-wrapped or replaced query/key/value run as their own modules
                skipped[f"{prefix}{att_path}.qkv"] = (
                    "kept: query/key/value are wrapped or replaced (run as modules)"
                )
        for path in linear_paths:
            parent_path, _, attr = path.rpartition(".")
            parent = _path(layer, parent_path)
            linear = getattr(parent, attr, None)
            if linear is None:
                continue
            if fusable_linear(linear):
                out.append(_Slot(prefix + path, parent, attr, linear))
            else:  # its hooks, its subclass's forward or its adapter run, on the model's own weights
                skipped[prefix + path] = (
                    f"kept: {type(linear).__name__} with hooks or code of its own (runs as a module)"
                )
    return out, skipped


#: the keys of a tokenized calibration batch the encoder takes
_BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def _described(value: Any) -> str:
    """A calibration item for an error: its type and a short repr (a dict shows each value's type)."""
    if isinstance(value, Mapping):
        types = {k: type(v).__name__ for k, v in value.items()}
        return f"{type(value).__name__} of {types}"
    return f"{type(value).__name__} {reprlib.repr(value)}"


def _calibration_batches(
    model, tokenizer, calibration, batch_size: int = 32, max_length: int = 128, method: str = "int8"
):
    if calibration is not None and not isinstance(calibration, (list, tuple)):
        raise TypeError("calibration must be a list of sentences or of tokenized batches (dicts of tensors)")
    if calibration is not None and len(calibration) == 0:
        raise ValueError(
            "calibration is empty: pass sentences or tokenized batches, or leave it None for the built-in set"
        )
    if calibration and isinstance(calibration[0], Mapping):  # dicts, tokenizers' BatchEncoding
        for i, b in enumerate(calibration):
            # checked here: a batch of lists (tokenized without return_tensors="pt"), without input_ids, or a
            # sentence among the batches failed in the forward, in words that did not name calibration
            ids = b.get("input_ids") if isinstance(b, Mapping) else None
            if not isinstance(ids, torch.Tensor) or not all(
                isinstance(b[k], torch.Tensor) for k in _BATCH_KEYS if k in b
            ):
                raise TypeError(
                    "calibration's tokenized batches must be dicts of tensors with input_ids (tokenize with "
                    f"return_tensors='pt'); calibration[{i}] is {_described(b)}"
                )
        # the model's inputs; what else a tokenizer returns (special_tokens_mask, offset_mapping, length) stays
        return [{k: b[k] for k in _BATCH_KEYS if k in b} for b in calibration]
    for i, s in enumerate(calibration or ()):
        if not isinstance(s, (str, list, tuple)):  # list / tuple: a pre-tokenized sentence or a text pair
            raise TypeError(
                "calibration must be a list of sentences (str) or of tokenized batches (dicts of tensors); "
                f"calibration[{i}] is {_described(s)}"
            )
    sentences = list(calibration) if calibration else calibration_sentences()
    if tokenizer is None:
        tokenizer = _tokenizer_of(model, method)
    batches = []
    for i in range(0, len(sentences), batch_size):
        enc = tokenizer(
            sentences[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batches.append({k: enc[k] for k in _BATCH_KEYS if k in enc})
    return batches


_NO_TOKENIZER = (
    "{method} quantization calibrates on text and found no tokenizer for {what}{why}: pass tokenizer= (or "
    "calibration= a list of tokenized batches) to fastbert.quantize"
)


def calibration_tokenizer(
    path: str, hub_kwargs: dict | None = None, *, from_pretrained: bool = False, method: str = "int8"
):
    """The tokenizer that calibrates the model of ``path``: a local folder or a hub id (``hub_kwargs``: the
    hub options of ``from_pretrained``, revision, cache_dir, local_files_only, token, subfolder; with a
    subfolder, the tokenizer is looked for there, then at the top). ValueError saying what to do when there
    is none; ``from_pretrained=True`` words it for that call, which runs this before reading any weight
    (``method``: the quantization asked, for the message)."""
    from ..tokenization import auto

    hub_kwargs = {k: v for k, v in (hub_kwargs or {}).items() if v is not None}
    tries = [hub_kwargs]
    if hub_kwargs.get("subfolder"):
        tries.append({k: v for k, v in hub_kwargs.items() if k != "subfolder"})
    error = None
    for kwargs in tries:
        try:
            return auto.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError) as e:  # no tokenizer files, not cached offline, not a repo id
            error = e
    why = f" ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})" if error else ""
    if from_pretrained:
        raise ValueError(
            f"quantization={method!r} calibrates on text and found no tokenizer at {str(path)!r}{why}: load "
            f"the model without quantization=, then call fastbert.quantize(model, {method!r}, tokenizer=...) "
            "(or calibration= a list of tokenized batches)"
        )
    raise ValueError(_NO_TOKENIZER.format(method=method, what=repr(str(path)), why=why))


def _tokenizer_of(model, method: str = "int8"):
    """The tokenizer of the folder or hub id ``model`` was loaded from (a fastbert or transformers model,
    ``config._name_or_path``); a ValueError saying what to pass when there is none (``method``: the
    quantization asked, for the message)."""
    config = getattr(model, "config", None)
    path = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    if not path:
        raise ValueError(
            _NO_TOKENIZER.format(
                method=method, what="this model", why=" (it was not loaded from a folder or hub id)"
            )
        )
    return calibration_tokenizer(str(path), method=method)


def _embed(base, batches) -> torch.Tensor:
    """Mean-pooled last hidden states of every calibration sentence, (n, H) fp32."""
    out = []
    device = next(base.parameters()).device
    with torch.no_grad():
        for b in batches:
            b = {k: v.to(device) for k, v in b.items()}
            h = base(**b, return_dict=True).last_hidden_state.float()  # whatever config.return_dict says
            m = (
                b["attention_mask"].to(h.dtype)[..., None]
                if "attention_mask" in b
                else torch.ones_like(h[..., :1])
            )
            out.append((h * m).sum(1) / m.sum(1).clamp_min(1))
    return torch.cat(out)


def _smooth(absmax: torch.Tensor, weight: torch.Tensor, alpha: float | None) -> torch.Tensor | None:
    if alpha is None:
        return None
    w_max = weight.detach().float().abs().amax(dim=0).clamp_min(1e-5)  # (K,)
    s = absmax.clamp_min(1e-5).pow(alpha) / w_max.pow(1 - alpha)
    return s.clamp_min(1e-5)


def _linear_error(
    rows: torch.Tensor, y: torch.Tensor, weight, smooth, scheme, outliers, method: str, codes=None
) -> float:
    """Relative error ``||y_q - y|| / ||y||`` of the quantized formula on the sample rows (no bias):
    oneDNN's int8 (``method="int8"``), or the CUDA GEMMs' (``"fp8"``, ``"int8-mm"``). ``y``: the rows'
    unquantized outputs ``rows @ weight.T``, computed once for all of a linear's candidates. ``codes``:
    the int8 weight's codes where not rounded to nearest."""
    w = weight.detach().float()
    if method != "int8":
        from .gpu import emulate

        yq = emulate(method.removesuffix("-mm"), rows, w, smooth, outliers, codes)
    else:
        yq = reference_int8_linear(
            rows, w, None, smooth, scheme, outliers, compute_dtype=torch.float32, codes=codes
        )
    return (torch.linalg.vector_norm(yq - y) / torch.linalg.vector_norm(y).clamp_min(1e-12)).item()


def _gptq_codes(rec: _Recorder, weight, smooth, outliers, qmax: int):
    """GPTQ's codes (:mod:`fastbert.quant.gptq`) for one int8 candidate from the recorded Gram matrix, or
    None where it has none."""
    from .gptq import compensated_codes, input_gram
    from .int8 import split_smoothing, weight_grid

    if rec.gram is None:
        return None
    w = weight.detach().float().cpu()
    w_side, x_side = split_smoothing(
        w, None if smooth is None else smooth.cpu(), None if outliers is None else outliers.cpu()
    )
    grid, scale = weight_grid(w, w_side, qmax)
    return compensated_codes(grid, scale, input_gram(rec.gram.cpu(), x_side), qmax)


def quantize(
    model: nn.Module,
    quantization: str | None = "int8",
    *,
    tokenizer: Any = None,
    calibration: list | None = None,
    min_cosine: float = 0.997,
    mean_cosine: float = 0.9992,
) -> nn.Module:
    """Quantize a loaded fastbert model in place (and return it); see the module docstring.

    Args:
        quantization: "int8" (oneDNN on the CPU for an fp32 model; ``torch._int_mm`` on CUDA) or "fp8"
            (``torch._scaled_mm``, CUDA compute capability 8.9+). None / "none": nothing to do. Anything
            else: ValueError; "fp8" where it cannot run: ValueError naming the device's capability.
        tokenizer: tokenizes the calibration sentences; default: the tokenizer in the model's folder.
        calibration: sentences, or tokenized batches (dicts with ``input_ids``/``attention_mask``), to
            calibrate on instead of the built-in set.
        min_cosine, mean_cosine: the calibration embeddings' cosine to the unquantized model that the
            quantized one must keep; linears go back to the model's dtype, highest error first, until it
            does.
    """
    return _quantize(
        model, quantization, None, tokenizer=tokenizer, calibration=calibration, min_cosine=min_cosine,
        mean_cosine=mean_cosine,
    )  # fmt: skip


#: kernel -> (what computes the GEMMs, the formula calibration measures)
_KERNELS = {
    "onednn": ("onednn", "int8"),
    "int_mm": ("torch._int_mm", "int8-mm"),
    "scaled_mm": ("torch._scaled_mm", "fp8"),
}


def _pick_kernel(method: str, device: torch.device) -> str:
    if method == "fp8":
        check_quantization_device(method, device)
        return "scaled_mm"
    if device.type == "cpu":
        return "onednn"
    check_quantization_device(method, device)  # int8 off the CPU and CUDA, CUDA without torch._int_mm
    return "int_mm"


def _cosine_target(name: str, value: Any) -> float:
    """``min_cosine`` / ``mean_cosine`` as a float: calibration compares them only after it has run (seconds
    to minutes), so a value that is not a number (or NaN, or one outside [-1, 1], which no cosine reaches or
    every cosine does) is refused first."""
    try:
        number = None if isinstance(value, (str, bytes, bool)) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise TypeError(f"{name} must be a number (a cosine to keep, such as 0.997), got {value!r}")
    if math.isnan(number):
        raise ValueError(f"{name} is NaN, which no cosine reaches: pass a number such as 0.997")
    if not -1.0 <= number <= 1.0:
        raise ValueError(
            f"{name}={number} is outside [-1, 1], where every cosine lies: pass a cosine such as 0.997"
        )
    return number


def _quantize(
    model: nn.Module,
    quantization: str | None,
    kernel: str | None,
    *,
    tokenizer: Any = None,
    calibration: list | None = None,
    min_cosine: float = 0.997,
    mean_cosine: float = 0.9992,
) -> nn.Module:
    """:func:`quantize` with the GEMM chosen: None picks it by device; "int_mm" / "scaled_mm" force the
    CUDA calls wherever the model is (torch 2.13 also runs them on the CPU: the tests check the whole
    path there, without a GPU)."""
    method = check_quantization(quantization)
    if method is None:
        return model
    min_cosine, mean_cosine = (
        _cosine_target("min_cosine", min_cosine),
        _cosine_target("mean_cosine", mean_cosine),
    )
    if tokenizer is not None and not callable(tokenizer):
        hint = (
            ": load it with fastbert.AutoTokenizer.from_pretrained(...)" if isinstance(tokenizer, str) else ""
        )
        raise TypeError(
            f"tokenizer must be a tokenizer (it is called on the calibration sentences), got "
            f"{type(tokenizer).__name__} {reprlib.repr(tokenizer)}{hint}"
        )
    from ..model_api import TransformersModelAPI, quantization_of  # the mixin of every fastbert model class

    if not isinstance(model, TransformersModelAPI):
        raise TypeError(
            f"quantize takes a fastbert model (fastbert.accelerate converts others), got {type(model).__name__}"
        )
    if quantization_of(model) is not None:
        # its base model quantized by itself (quantize(model.bert)) too: calibrating again replaced that
        raise ValueError("this model is quantized already (model.quantization); load it again to change it")
    dtypes = {p.dtype for p in model.parameters()}
    devices = {p.device for p in model.parameters()}
    device = next(iter(devices))
    if kernel is None:
        kernel = _pick_kernel(method, device)
    kernel_name, formula = _KERNELS[kernel]
    if kernel == "onednn":
        if not int8_available():
            raise RuntimeError(
                "int8 quantization needs torch built with oneDNN (torch.ops.onednn.qlinear_pointwise)"
            )
        if dtypes != {torch.float32} or len(devices) != 1:
            raise ValueError(
                f"int8 quantization takes an fp32 model on the CPU, this one is {sorted(map(str, dtypes))} on "
                f"{sorted({d.type for d in devices})}: cast it with model.float() before quantizing, or load "
                "it with torch_dtype=torch.float32"
            )
        schemes = int8_schemes()
        qmax = max(sc.qmax for sc in schemes)
    else:
        if len(dtypes) != 1 or len(devices) != 1 or next(iter(dtypes)) not in _DTYPE_NAMES:
            raise ValueError(
                f"{method} quantization takes a model in one of fp32/fp16/bf16 on one device, this one is "
                f"{sorted(map(str, dtypes))} on {sorted(map(str, devices))}"
            )
        qmax, schemes = (448 if method == "fp8" else 127), (None,)
    dtype_name = _DTYPE_NAMES[next(iter(dtypes))]
    base = model.base_model
    _family_layout(base, method)  # a family without a layout here: refused before anything runs
    if base.config.add_cross_attention:
        # at the user's line, whichever entry point quantizes (from_pretrained, accelerate, quantize)
        warn_at_caller(f"{method}: the cross-attention linears have no {method} path and stay {dtype_name}")
    # no longer than the family's longest input (RoBERTa's: max_position_embeddings - padding_idx - 1)
    batches = _calibration_batches(
        model, tokenizer, calibration, max_length=min(128, base._length_limit()[0]), method=method
    )
    slots, skipped = _encoder_linears(base)
    # a weight (or a self-attention) that several layers share is calibrated and quantized once, by its
    # first slot; the others (aliases) take that slot's copy and decision
    first: dict[int, _Slot] = {}
    aliases: list[tuple[_Slot, _Slot]] = []
    for slot in slots:
        key = id(slot.linear.weight) if slot.linear is not None else id(slot.parent)
        if key in first:
            aliases.append((slot, first[key]))
        else:
            first[key] = slot
    all_slots, slots = slots, list(first.values())
    notes = Notes()  # the model's warnings: each reason once, whichever linear meets it
    was_training, impl = model.training, base.config._attn_implementation
    model.eval()
    base.set_attn_implementation("sdpa")  # the table whose linear calls the quantized copy
    decisions = {}
    try:
        recorders = {}
        gram = method == "int8"  # GPTQ rounding: int8's grid (fp8's is not uniform)
        for slot in slots:
            slot.set(recorders.setdefault(slot.name, _Recorder(gram)))
        reference = _embed(base, batches)
        for slot in slots:
            slot.clear()
        if not torch.isfinite(reference).all():
            raise ValueError(
                f"{method} calibration: the model's own outputs on the calibration set are not finite (NaN "
                "or inf): nothing to compare the quantized model with (check the weights and the inputs)"
            )
        # rows with no token (an all-zero attention mask) embed to zero in both models: no evidence
        valid = reference.abs().amax(dim=-1) > 0
        if not valid.any():
            raise ValueError(
                f"{method} calibration: every calibration row is masked out (no token to measure)"
            )

        for slot in slots:
            rec, (weight, _) = recorders[slot.name], slot.weights()
            if kernel != "onednn":
                from .gpu import shape_refusal

                why = shape_refusal(method, weight)
                if why is not None:
                    decisions[slot.name] = LayerDecision(
                        slot.name, dtype_name, float("nan"), None, f"kept: {why}"
                    )
                    continue
            rows = torch.cat(rec.rows)
            y = rows @ weight.detach().float().T
            order = torch.argsort(rec.absmax, descending=True)
            candidates = []
            for a in _ALPHAS:
                smooth = _smooth(rec.absmax, weight, a)
                for k in _OUTLIERS:
                    outl = order[:k].sort().values if k else None
                    for scheme in schemes:
                        e = _linear_error(rows, y, weight, smooth, scheme, outl, formula)
                        candidates.append((e, a, smooth, outl, scheme))
            err, alpha, smooth, outl, scheme = min(candidates, key=lambda t: t[0])
            codes = None
            if method == "int8":  # the chosen candidate's weights rounded by GPTQ, kept where they do better
                qm = scheme.qmax if scheme is not None else qmax
                codes = _gptq_codes(rec, weight, smooth, outl, qm)
                if codes is not None:
                    e = _linear_error(rows, y, weight, smooth, scheme, outl, formula, codes.to(rows.device))
                    err, codes = (e, codes) if e < err else (err, None)
            decisions[slot.name] = LayerDecision(slot.name, method, err, alpha)
            if kernel == "onednn":
                hook = Int8Linear(weight, smooth, alpha or 0.0, scheme, err, outl, notes=notes, codes=codes)
            else:
                from .gpu import LINEARS

                extra = {"codes": codes} if method == "int8" else {}
                hook = LINEARS[method](weight, smooth, alpha or 0.0, err, outl, notes=notes, **extra)
            slot.set(hook)
        del recorders

        quantized = [n for n in decisions if decisions[n].precision == method]
        by_error = sorted(quantized, key=lambda n: decisions[n].error, reverse=True)
        by_name = {slot.name: slot for slot in slots}
        while True:
            # in float64: a float32 cosine rounds to 1.0 once the error is under about 3e-4 of the vector, so
            # min_cosine=1.0 ("nothing may change") would keep an int8 linear whose error is that small
            cos = F.cosine_similarity(
                _embed(base, batches)[valid].double(), reference[valid].double(), dim=-1
            )
            lo, mean = cos.min().item(), cos.mean().item()
            if (lo >= min_cosine and mean >= mean_cosine) or not by_error:
                break
            worst = by_error.pop(0)
            by_name[worst].clear()
            d = decisions[worst]
            d.precision, d.reason = (
                dtype_name,
                f"kept: {method} error {d.error:.1e} was the highest when the calibration cosine was {lo:.4f}",
            )
    except BaseException:
        for slot in slots:
            slot.clear()
        raise
    finally:
        base.config._attn_implementation = impl
        model.train(was_training)
    for name, why in skipped.items():
        decisions[name] = LayerDecision(name, dtype_name, float("nan"), None, why)
    for alias, slot in aliases:
        d = decisions[slot.name]
        decisions[alias.name] = LayerDecision(
            alias.name, d.precision, d.error, d.alpha, d.reason or f"shares the weight of {slot.name}"
        )
    names = [slot.name for slot in all_slots] + list(skipped)
    report = QuantizationReport(
        method, qmax, [decisions[n] for n in names], lo, mean, kernel_name, dtype_name, str(device)
    )
    wrapped: dict[int, QuantizedLinear] = {}  # a module shared by several layers stays one module
    for slot in slots:
        if slot.linear is not None:  # the module owns its copy from now on (the weight points at it)
            q = wrapped[id(slot.linear)] = QuantizedLinear(slot.linear, decisions[slot.name], slot.hook)
            setattr(slot.parent, slot.attr, q)
        elif slot.hook is None:
            # a fused QKV that keeps the model's dtype: its self-attention's repr says why
            slot.parent.__dict__["qkv_kept"] = decisions[slot.name].describe()
    for alias, slot in aliases:
        if alias.linear is not None:
            q = wrapped.get(id(alias.linear))
            if q is None:  # another module on the same weight: its own wrapper, the same copy
                q = wrapped[id(alias.linear)] = QuantizedLinear(
                    alias.linear, decisions[alias.name], slot.hook
                )
            setattr(alias.parent, alias.attr, q)
    for m in {model, base}:
        # not transformers' ``is_quantized``: that flag says the weights are stored quantized and cannot be
        # trained (Trainer refuses such a model, even to evaluate it); here they stay the model's dtype
        m.quantization = report
    if math.isnan(lo):  # pragma: no cover - an empty calibration set
        raise ValueError("the calibration set is empty")
    if slots and not report.active:
        warn_at_caller(
            f"quantization={method!r}: calibration kept all {len(report.layers)} linears in {dtype_name} (each "
            f"{method} linear cost more than min cosine {min_cosine} / mean {mean_cosine} to {dtype_name} "
            f"allows): {method} gives nothing on this model, which runs in {dtype_name}"
        )
    return model
