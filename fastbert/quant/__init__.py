"""Reduced precision as a load-time transform of a loaded fastbert model (no new file format).

```python
model = fastbert.BertModel.from_pretrained(path, quantization="int8")    # or:
model = fastbert.quantize(fastbert.BertModel.from_pretrained(path), "int8", tokenizer=tok)
st = fastbert.accelerate(SentenceTransformer(path), quantization="int8")
```

int8 (:mod:`fastbert.quant.int8`): every encoder linear that the op table runs (QKV, attention output,
intermediate, output) gets an int8 copy of its weight, per output channel, and quantizes its input per
token at run time; int32 sums by oneDNN. Quality is kept by measurement on a small built-in calibration
set (``calibration.txt``, 128 sentences): per linear, the SmoothQuant migration strength with the lowest
error (none, 0.5 or 0.8); then, while the calibration embeddings' cosine to fp32 is under the target,
the linear with the highest error goes back to fp32. The decision is recorded on the model
(``model.quantization``) and shown in its repr, one line per linear.

The fp32 parameters are not changed: ``save_pretrained`` writes the fp32 checkpoint, and loading it
gives an fp32 model until ``quantization=`` is asked again. Heads (pooler, classifier, MLM head) and
cross-attention stay in fp32. Inference only: with gradients, under ``torch.compile``, off the CPU or in
another dtype the linears compute with the fp32 weights (the last two with one warning).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .int8 import Int8Linear, int8_available, quantize_tokens, quantize_weight, split_smoothing, weight_qmax

__all__ = ["QUANTIZATIONS", "QuantizationReport", "QuantizedLinear", "check_quantization", "quantize"]

#: the ``quantization=`` values: None / "none" keep the model as it is
QUANTIZATIONS = ("int8",)

_ALPHAS = (None, 0.5, 0.8)
_OUTLIERS = (0, 16)  # input channels (largest calibration |x|) computed apart in fp32
_CALIBRATION_FILE = os.path.join(os.path.dirname(__file__), "calibration.txt")
_SAMPLE_ROWS = 1024  # calibration tokens kept per linear to measure its error


def check_quantization(quantization: Any) -> str | None:
    """The quantization name (None for none); ValueError naming the supported values otherwise."""
    if quantization is None or quantization == "none":
        return None
    if isinstance(quantization, str) and quantization.lower() in QUANTIZATIONS:
        return quantization.lower()
    raise ValueError(
        f"unknown quantization {quantization!r}: supported are {', '.join(map(repr, QUANTIZATIONS))} or None"
    )


def calibration_sentences() -> list[str]:
    """The built-in calibration set: 128 sentences from Python's docstrings (tools/make_sentence_corpus.py)."""
    with open(_CALIBRATION_FILE, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


@dataclass
class LayerDecision:
    name: str
    precision: str  # "int8" or "fp32"
    error: float  # relative error of the int8 linear on the calibration tokens
    alpha: float | None  # SmoothQuant strength (None: no migration)
    reason: str = ""


@dataclass
class QuantizationReport:
    """What :func:`quantize` decided, per linear, and the calibration embeddings' cosine to fp32."""

    method: str
    weight_qmax: int
    layers: list[LayerDecision] = field(default_factory=list)
    min_cosine: float = float("nan")
    mean_cosine: float = float("nan")

    def __repr__(self) -> str:
        n8 = sum(d.precision == "int8" for d in self.layers)
        return (
            f"QuantizationReport({self.method}: {n8}/{len(self.layers)} linears int8, the rest fp32; "
            f"calibration cosine to fp32 min {self.min_cosine:.5f} mean {self.mean_cosine:.5f}; "
            "a load-time transform: the checkpoint stays fp32)"
        )


class QuantizedLinear(nn.Linear):
    """An ``nn.Linear`` on the same parameters (same state dict) whose repr says its precision; its weight
    carries the int8 copy (``weight.fastbert_linear``) that the op table calls."""

    def __init__(self, linear: nn.Linear, decision: LayerDecision):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.decision = decision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hook = getattr(self.weight, "fastbert_linear", None)
        return hook(x, self.weight, self.bias) if hook is not None else F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        hook = getattr(self.weight, "fastbert_linear", None)
        what = repr(hook) if hook is not None else f"fp32 ({self.decision.reason})"
        return f"{super().extra_repr()}, quantization={what}"


class _Recorder:
    """A calibration pass's linear: runs fp32, keeps the input's per-channel max |x| and sample rows."""

    def __init__(self):
        self.absmax: torch.Tensor | None = None
        self.rows: list[torch.Tensor] = []
        self.kept = 0

    def __call__(self, x, weight, bias=None):
        x2 = x.detach().reshape(-1, x.shape[-1]).float()
        m = x2.abs().amax(dim=0)
        self.absmax = m if self.absmax is None else torch.maximum(self.absmax, m)
        if self.kept < _SAMPLE_ROWS:
            take = x2[:: max(1, x2.shape[0] // 256)][: _SAMPLE_ROWS - self.kept]
            self.rows.append(take.clone())
            self.kept += take.shape[0]
        return F.linear(x, weight, bias)


class _Slot:
    """One encoder projection the op table runs: a linear whose weight carries the transform
    (``weight.fastbert_linear``), or the fused query/key/value projection of a self-attention, whose
    transform rides on the module (``qkv_linear``, see ``BertSelfAttention.forward``)."""

    def __init__(self, name: str, parent: nn.Module, attr: str | None, linear: nn.Linear | None = None):
        self.name, self.parent, self.attr, self.linear = name, parent, attr, linear

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.linear is not None:
            return self.linear.weight, self.linear.bias
        return self.parent.fused_qkv()  # (3n, H) view of the one storage, (3n,)

    def set(self, hook) -> None:
        if self.linear is not None:
            self.linear.weight.fastbert_linear = hook
        else:
            self.parent.__dict__["qkv_linear"] = hook

    def clear(self) -> None:
        if self.linear is not None:
            self.linear.weight.__dict__.pop("fastbert_linear", None)
        else:
            self.parent.__dict__.pop("qkv_linear", None)


def _encoder_linears(base: nn.Module) -> tuple[list[_Slot], list[str]]:
    """The encoder projections the op table runs (fused QKV, attention output, intermediate, output), and
    the names of those that stay fp32 because they do not run through the table."""
    out, skipped = [], []
    for i, layer in enumerate(base.encoder.layer):
        att = layer.attention.self
        prefix = f"encoder.layer.{i}."
        if att.fused_qkv() is not None:
            out.append(_Slot(f"{prefix}{_rel(layer, att)}.qkv", att, None))
        else:  # PEFT-wrapped or replaced query/key/value run as their own modules
            skipped.append(f"{prefix}{_rel(layer, att)}.qkv")
        for parent in (layer.attention.output, layer.intermediate, layer.output):
            linear = getattr(parent, "dense", None)
            if isinstance(linear, nn.Linear):
                out.append(_Slot(f"{prefix}{_rel(layer, parent)}.dense", parent, "dense", linear))
    return out, skipped


def _rel(root: nn.Module, child: nn.Module) -> str:
    for name, m in root.named_modules():
        if m is child:
            return name
    return "?"


def _calibration_batches(model, tokenizer, calibration, batch_size: int = 32, max_length: int = 128):
    if calibration is not None and not isinstance(calibration, (list, tuple)):
        raise TypeError("calibration must be a list of sentences or of tokenized batches (dicts of tensors)")
    if calibration and isinstance(calibration[0], dict):
        return [dict(b) for b in calibration]
    sentences = list(calibration) if calibration else calibration_sentences()
    if tokenizer is None:
        tokenizer = _tokenizer_of(model)
    # no longer than the model's positions (position_embedding_type "absolute" has max_position_embeddings)
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", max_length) or max_length)
    batches = []
    for i in range(0, len(sentences), batch_size):
        enc = tokenizer(
            sentences[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batches.append({k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc})
    return batches


def _tokenizer_of(model):
    path = getattr(model.config, "_name_or_path", None) or getattr(model.config, "name_or_path", None)
    if path and os.path.isdir(str(path)):
        try:
            from ..auto import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError):
            pass
    raise ValueError(
        "int8 quantization calibrates on text and found no tokenizer for this model: pass tokenizer= "
        "(or calibration= a list of tokenized batches)"
    )


def _embed(base, batches) -> torch.Tensor:
    """Mean-pooled last hidden states of every calibration sentence, (n, H) fp32."""
    out = []
    with torch.no_grad():
        for b in batches:
            h = base(**b).last_hidden_state.float()
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


def _linear_error(rows: torch.Tensor, weight, smooth, qmax: int, outliers) -> float:
    """Relative error ``||y_int8 - y|| / ||y||`` of the int8 formula on the sample rows (no bias)."""
    w = weight.detach().float()
    y = rows @ w.T
    w_side, x_side = split_smoothing(w, smooth, outliers)
    qw, w_scale = quantize_weight(w, w_side, qmax)
    qx, x_scale = quantize_tokens(rows, x_side)
    yq = ((qx.float() - 128) @ qw.float().T) * w_scale * x_scale
    if outliers is not None:
        yq = yq + rows[:, outliers] @ w[:, outliers].T
    return (torch.linalg.vector_norm(yq - y) / torch.linalg.vector_norm(y).clamp_min(1e-12)).item()


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
        quantization: "int8" (None / "none": nothing to do). Anything else: ValueError.
        tokenizer: tokenizes the calibration sentences; default: the tokenizer in the model's folder.
        calibration: sentences, or tokenized batches (dicts with ``input_ids``/``attention_mask``), to
            calibrate on instead of the built-in set.
        min_cosine, mean_cosine: the calibration embeddings' cosine to fp32 the model must keep; linears
            go back to fp32, highest error first, until it does.
    """
    method = check_quantization(quantization)
    if method is None:
        return model
    from ..modeling import BertModel, BertPreTrainedModel

    if not isinstance(model, BertPreTrainedModel):
        raise TypeError(
            f"quantize takes a fastbert model (fastbert.accelerate converts others), got {type(model).__name__}"
        )
    if not int8_available():
        raise RuntimeError(
            "int8 quantization needs torch built with oneDNN (torch.ops.onednn.qlinear_pointwise)"
        )
    if getattr(model, "quantization", None) is not None:
        raise ValueError("this model is quantized already (model.quantization); load it again to change it")
    dtypes = {p.dtype for p in model.parameters()}
    devices = {p.device.type for p in model.parameters()}
    if dtypes != {torch.float32} or devices != {"cpu"}:
        raise ValueError(
            f"int8 quantization takes an fp32 model on the CPU, this one is {sorted(map(str, dtypes))} on "
            f"{sorted(devices)}: quantize first, or load with torch_dtype=torch.float32"
        )
    base = model if isinstance(model, BertModel) else getattr(model, model.base_model_prefix)
    if base.config.model_type in ("distilbert", "mpnet"):  # their own attention names (q_lin, attn.q ...)
        raise ValueError(
            f"int8 quantization covers the families with BERT's layer names (encoder.layer.N.attention.self ...); "
            f"{type(base).__name__} ({base.config.model_type}) is not covered yet"
        )
    if base.config.add_cross_attention:
        warnings.warn("int8: the cross-attention linears have no int8 path and stay fp32", stacklevel=2)
    batches = _calibration_batches(model, tokenizer, calibration)
    slots, skipped = _encoder_linears(base)
    qmax = weight_qmax()
    was_training, impl = model.training, base.config._attn_implementation
    model.eval()
    base.set_attn_implementation("sdpa")  # the table whose linear calls the int8 copy
    try:
        recorders = {}
        for slot in slots:
            slot.set(recorders.setdefault(slot.name, _Recorder()))
        reference = _embed(base, batches)
        for slot in slots:
            slot.clear()

        decisions, hooks = {}, {}
        for slot in slots:
            rec, (weight, _) = recorders[slot.name], slot.weights()
            rows = torch.cat(rec.rows)
            order = torch.argsort(rec.absmax, descending=True)
            candidates = []
            for a in _ALPHAS:
                for k in _OUTLIERS:
                    outl = order[:k].sort().values if k else None
                    e = _linear_error(rows, weight, _smooth(rec.absmax, weight, a), qmax, outl)
                    candidates.append((e, a, outl))
            err, alpha, outl = min(candidates, key=lambda t: t[0])
            decisions[slot.name] = LayerDecision(slot.name, "int8", err, alpha)
            hooks[slot.name] = Int8Linear(
                weight, _smooth(rec.absmax, weight, alpha), alpha or 0.0, qmax, err, outl
            )
            slot.set(hooks[slot.name])
        del recorders

        by_error = sorted(decisions, key=lambda n: decisions[n].error, reverse=True)
        by_name = {slot.name: slot for slot in slots}
        while True:
            cos = F.cosine_similarity(_embed(base, batches), reference, dim=-1)
            lo, mean = cos.min().item(), cos.mean().item()
            if (lo >= min_cosine and mean >= mean_cosine) or not by_error:
                break
            worst = by_error.pop(0)
            by_name[worst].clear()
            d = decisions[worst]
            d.precision, d.reason = (
                "fp32",
                f"kept: int8 error {d.error:.1e} was the highest when the calibration cosine was {lo:.4f}",
            )
    except BaseException:
        for slot in slots:
            slot.clear()
        raise
    finally:
        base.config._attn_implementation = impl
        model.train(was_training)
    for name in skipped:
        decisions[name] = LayerDecision(
            name, "fp32", float("nan"), None, "kept: query/key/value are wrapped or replaced (run as modules)"
        )
    names = [slot.name for slot in slots] + skipped
    report = QuantizationReport(method, qmax, [decisions[n] for n in names], lo, mean)
    for slot in slots:
        if slot.linear is not None:
            setattr(slot.parent, slot.attr, QuantizedLinear(slot.linear, decisions[slot.name]))
    model.quantization = report
    if base is not model:
        base.quantization = report
    if math.isnan(lo):  # pragma: no cover - an empty calibration set
        raise ValueError("the calibration set is empty")
    return model
