"""fastbert.from_transformers keeps the transformers model's training setup: train/eval mode, activation
checkpointing (which layers, the checkpoint function's kwargs) and the input embeddings' require-grads hook."""

from __future__ import annotations

import warnings

import pytest
import torch

import fastbert
from fastbert import registry
from tests.model_helpers import require_transformers, tiny_family_config

transformers = require_transformers()

FAMILIES = [
    "bert",
    "roberta",
    "electra",
    "distilbert",
    "modernbert",
]  # MPNet: transformers has no checkpointing


def _hf(model_type: str, task: str = "sequence-classification"):
    config = tiny_family_config(model_type, width=16).to_dict()
    keep = {
        k: v for k, v in config.items() if k not in ("model_type", "architectures", "transformers_version")
    }
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_config = transformers.AutoConfig.for_model(model_type, **keep)
        return getattr(transformers, registry.family(model_type).classes[task])(hf_config)


def _inputs():
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 9, 2, 0]])
    return dict(input_ids=ids, attention_mask=(ids != 0).long(), labels=torch.tensor([0, 1]))


def _counting(model) -> list:
    """Wrap each layer's checkpoint function (an attribute of fastbert's own layers) to count its calls."""
    calls = []
    for module in model.modules():
        func = getattr(module, "_gradient_checkpointing_func", None)
        if func is not None:

            def counted(*args, _func=func, **kwargs):
                calls.append(1)
                return _func(*args, **kwargs)

            module._gradient_checkpointing_func = counted
    return calls


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("model_type", FAMILIES)
def test_checkpointing_and_training_mode_go_along(model_type, reentrant):
    hf = _hf(model_type).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers 5.25: gradient_checkpointing_enable is deprecated
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    fb = fastbert.from_transformers(hf)
    assert fb.training and fb.is_gradient_checkpointing
    assert all(m.gradient_checkpointing for m in fb.modules() if hasattr(m, "gradient_checkpointing"))
    assert fb._require_grads_hooks  # transformers' gradient_checkpointing_enable sets the hook too
    calls = _counting(fb)
    fb.get_input_embeddings().weight.requires_grad_(False)  # the hook lets gradients through checkpoints
    loss = fb(**_inputs()).loss
    loss.backward()
    assert len(calls) == 2  # both layers recomputed
    grads = [n for n, p in fb.named_parameters() if p.grad is not None]
    assert any(".0." in n for n in grads) and not any("word_embeddings" in n for n in grads)

    fb.gradient_checkpointing_disable()
    assert not fb.is_gradient_checkpointing


def test_every_n_layers_eval_mode_and_no_checkpointing_go_along():
    hf = _hf("bert")
    hf.activation_checkpointing_enable(every_n_layers=2)
    hf.eval()
    fb = fastbert.from_transformers(hf)
    assert not fb.training
    flags = [m.gradient_checkpointing for m in fb.modules() if hasattr(m, "gradient_checkpointing")]
    assert flags == [True, False]

    plain = fastbert.from_transformers(_hf("bert").train())
    assert plain.training and not plain.is_gradient_checkpointing
    assert not getattr(plain, "_require_grads_hooks", None)

    hooked = _hf("bert")
    hooked.enable_input_require_grads()
    assert fastbert.from_transformers(hooked)._require_grads_hooks
