"""TensorFlow / Flax variable names to the names of transformers' PyTorch BERT classes.

TF 2 (Keras, after the model-name level is removed) and Flax share one mapping; Google's TF1 names
(google-research/bert, with its ``run_classifier.py`` / ``run_squad.py`` heads) have their own.
Kernels are stored ``[in, out]`` and come back transposed to torch's ``[out, in]``.
"""

from __future__ import annotations

import re

import torch

BASE_SEGMENTS = {"embeddings", "encoder", "pooler"}
HEAD_ROOTS = {"bert", "cls", "classifier", "qa_outputs"}

# Optimizer slots and bookkeeping variables of TF1 checkpoints that a model does not hold.
TF1_SKIP = {
    "adam_m",
    "adam_v",
    "Adam",
    "Adam_1",
    "AdamWeightDecayOptimizer",
    "AdamWeightDecayOptimizer_1",
    "lamb_m",
    "lamb_v",
    "Momentum",
    "global_step",
    "temperature",  # google-research/electra's (transformers 4's load_tf_weights_in_electra skips it)
    "beta1_power",
    "beta2_power",
    "loss_scale",
    "good_steps",
    "current_loss_scale",
    "_CHECKPOINTABLE_OBJECT_GRAPH",
}


def tf1_is_skipped(name: str) -> bool:
    """Optimizer slots, ``global_step`` and bookkeeping variables that a model does not hold."""
    return any(p in TF1_SKIP for p in name.split("/"))


def _finish_name(parts: list[str]) -> str:
    """A base model's tensors (``embeddings.``, ``encoder.``, ``pooler.``) keep no prefix: the loader puts
    them under the model's own (``bert.``, ``roberta.``, ``electra.`` ...), as for a PyTorch base checkpoint."""
    return ".".join(parts)


def _as_linear(tensor: torch.Tensor, name: str, source: str) -> torch.Tensor:
    if tensor.dim() != 2:
        raise ValueError(
            f"{source}: kernel {name} has shape {list(tensor.shape)}, expected a 2-D [in, out] matrix"
        )
    return tensor.t().contiguous()


def map_keras_or_flax(parts: list[str], tensor: torch.Tensor, source: str) -> tuple[str, torch.Tensor]:
    """The PyTorch name and tensor of a TF 2 or Flax weight (``kernel``/``gamma``/``beta``/``scale``/
    ``embedding(s)``), given the parts of its name."""
    parts = list(parts)
    last = parts[-1]
    if last == "kernel":
        parts[-1] = "weight"
        tensor = _as_linear(tensor, "/".join(parts), source)
    elif last in ("gamma", "scale", "embeddings", "embedding"):
        parts[-1] = "weight"
    elif last == "beta":
        parts[-1] = "bias"
    return _finish_name(parts), tensor


def map_tf1(name: str, tensor: torch.Tensor, source: str) -> tuple[str, torch.Tensor]:
    """The PyTorch name and tensor of a google-research/bert variable, as transformers 4's
    ``load_tf_weights_in_bert`` maps them (plus the fine-tuning heads of run_classifier.py / run_squad.py), and
    of a google-research/electra one, as its ``load_tf_weights_in_electra`` (``dense_1`` is ``dense_prediction``)."""
    parts = name.split("/")
    if parts in (["output_weights"], ["output_bias"]):  # run_classifier.py
        parts = ["classifier", parts[0]]
    elif parts[:2] == ["cls", "squad"]:  # run_squad.py
        parts = ["qa_outputs", *parts[2:]]
    elif parts[:2] == ["discriminator_predictions", "dense_1"]:  # google-research/electra's scorer
        parts = ["discriminator_predictions", "dense_prediction", *parts[2:]]
    elif parts == ["generator_predictions", "output_bias"]:  # google-research/electra's generator
        parts = ["generator_lm_head", "bias"]
    out: list[str] = []
    for p in parts:
        m = re.fullmatch(r"([A-Za-z]+)_(\d+)", p)
        if m and m.group(1) == "layer":
            out += [m.group(1), m.group(2)]
        else:
            out.append(p)
    last = out[-1]
    if last == "kernel":
        out[-1] = "weight"
        tensor = _as_linear(tensor, name, source)
    elif last in ("gamma", "output_weights"):
        out[-1] = "weight"
    elif last in ("beta", "output_bias"):
        out[-1] = "bias"
    elif last.endswith("_embeddings"):
        out.append("weight")
    return _finish_name(out), tensor
