"""Shared by the model tests."""

import torch

from fastbert.modeling import MODEL_CLASSES

CLASSES = list(MODEL_CLASSES)  # the nine BERT classes

#: a tiny config with odd sizes (transformers' field names)
TINY = dict(
    vocab_size=99,
    hidden_size=36,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=2,
)


@torch.no_grad()
def perturb_norms_and_biases(model: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Noise on every LayerNorm and bias (initialised to 1/0), so that a wrong wiring shows in the outputs."""
    for name, p in model.named_parameters():
        if "LayerNorm" in name or name.endswith("bias"):
            p.add_(torch.randn_like(p) * scale)
    return model


def require_transformers():
    """transformers, the test extra: a missing one fails the run (set FASTBERT_ALLOW_NO_TRANSFORMERS=1 to
    skip these tests instead, e.g. for a minimal install)."""
    import importlib
    import os

    import pytest

    if os.environ.get("FASTBERT_ALLOW_NO_TRANSFORMERS") == "1":
        return pytest.importorskip("transformers")
    return importlib.import_module("transformers")
