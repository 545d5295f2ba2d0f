"""Under ``torch.autocast`` (what ``Trainer(bf16=True)`` / ``fp16=True`` runs, and what users wrap inference
in), fastbert computes what transformers computes: half-precision GEMMs and attention, the residual stream and
its LayerNorms in fp32 by type promotion. The add + LayerNorm cast the fp32 residual down to the GEMM's dtype
(about 100x transformers' error, bf16 outputs). The Triton kernels take one dtype: under autocast a triton
model runs the sdpa table, with one warning; so does a frozen triton model whose input embeddings a hook makes
require grad (``enable_input_require_grads``), which raised in the forward-only kernels."""

import copy
import warnings

import pytest
import torch
from model_helpers import (
    perturb_norms_and_biases,
    require_interpreter,
    require_transformers,
    tiny_family_config,
)

from fastbert import registry
from fastbert.core.tolerances import assert_close

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()

FAMILIES = ["bert", "roberta", "distilbert", "modernbert"]


def _pair(tmp_path, model_type):
    torch.manual_seed(0)
    fb = registry.model_class(model_type, "masked-lm")(tiny_family_config(model_type, width=48))
    perturb_norms_and_biases(fb).eval()
    fb.save_pretrained(tmp_path)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    return fb, hf


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 120, (3, 11), generator=g)
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 6:] = 0
    return dict(input_ids=ids, attention_mask=mask)


def _hidden(model, inputs, dtype=None):
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model(**inputs, output_hidden_states=True)
    return out.hidden_states[-1], out.logits


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("model_type", FAMILIES)
def test_autocast_keeps_transformers_dtypes_and_error(tmp_path, model_type, backend, dtype):
    fb, hf = _pair(tmp_path, model_type)
    fb.set_attn_implementation(backend)
    inputs = _inputs()
    mask = inputs["attention_mask"].bool()
    ref_hidden, ref_logits = _hidden(copy.deepcopy(hf).to(torch.float64), inputs)
    theirs_hidden, theirs_logits = _hidden(hf, inputs, dtype)
    ours_hidden, ours_logits = _hidden(fb, inputs, dtype)
    assert ours_hidden.dtype == theirs_hidden.dtype  # the residual stream: fp32, as transformers'
    assert ours_logits.dtype == theirs_logits.dtype
    assert_close(ours_hidden, theirs_hidden, ref_hidden, dtype, mask, what=f"{model_type} {backend} hidden")
    assert_close(ours_logits, theirs_logits, ref_logits, dtype, mask, what=f"{model_type} {backend} logits")


def test_autocast_and_input_grad_hooks_send_a_triton_model_to_sdpa(tmp_path):
    require_interpreter()
    fb, _ = _pair(tmp_path, "bert")
    inputs = _inputs()
    mask = inputs["attention_mask"].bool()
    fb.set_attn_implementation("sdpa")
    want_hidden, _ = _hidden(fb, inputs, torch.float16)
    fb.set_attn_implementation("triton")
    with pytest.warns(UserWarning, match="autocast"):
        got_hidden, _ = _hidden(fb, inputs, torch.float16)
    assert torch.equal(got_hidden[mask], want_hidden[mask])
    # a frozen model whose embeddings' output a hook makes require grad: the kernels are forward-only
    fb.requires_grad_(False)
    fb.enable_input_require_grads()
    with pytest.warns(UserWarning, match="gradients are required"):
        out = fb(**inputs).logits
    assert out.requires_grad
    out[mask].sum().backward()  # the backward runs (it raised in the forward)
    fb.disable_input_require_grads()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            fb(**inputs)  # no hook, no gradients: the kernels again, no warning
