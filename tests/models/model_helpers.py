"""Shared by the model tests."""

import torch

from fastbert.modeling import MODEL_CLASSES

CLASSES = list(MODEL_CLASSES)  # the nine BERT classes


@torch.no_grad()
def perturb_norms_and_biases(model: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Noise on every LayerNorm and bias (initialised to 1/0), so that a wrong wiring shows in the outputs."""
    for name, p in model.named_parameters():
        if "LayerNorm" in name or name.endswith("bias"):
            p.add_(torch.randn_like(p) * scale)
    return model
