"""Every family on a CUDA GPU (skipped without one): the Triton backend in fp16 and bf16 against fastbert's
fp32 eager forward (the reference of the rule) with PyTorch's own error in the same dtype (the sdpa
backend), on a right-padded batch of odd lengths; and CUDA graphs serving RoBERTa (positions from the
padded ids) and MPNet (the relative bias, padded inside a graph) equal to the same model without graphs."""

from __future__ import annotations

import copy

import pytest
import torch
from model_helpers import tiny_family_config

from fastbert import registry
from fastbert.core.tolerances import assert_close

CUDA = torch.cuda.is_available()
pytestmark = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")

FAMILIES = [t for t in registry.supported_model_types() if t != "bert"]  # BERT: test_triton_backend.py
LENGTHS = (37, 19, 30)


def base_model(model_type: str):
    torch.manual_seed(0)
    model = registry.model_class(model_type, "base")(tiny_family_config(model_type)).eval()
    with torch.no_grad():  # norms and biases that matter (initialised to ones / zeros)
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.cuda()


def padded_batch(pad_id: int):
    n = max(LENGTHS)
    ids = torch.randint(3, 120, (len(LENGTHS), n), device="cuda")  # never the padding id (1 or 0)
    mask = (torch.arange(n, device="cuda")[None, :] < torch.tensor(LENGTHS, device="cuda")[:, None]).long()
    return ids.masked_fill(mask == 0, pad_id), mask


@pytest.mark.parametrize("graphs", [True, False], ids=["graphs", "eager"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("model_type", FAMILIES)
def test_family_triton_on_cuda(model_type, dtype, graphs):
    """Both paths of the triton backend: the default CUDA graphs (where the family's encode takes them) and
    the packed eager forward."""
    model = base_model(model_type)
    if not graphs:
        model.cuda_graphs(enabled=False)
    ids, mask = padded_batch(model.config.pad_token_id)
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    plain = copy.deepcopy(model).to(dtype)
    plain.set_attn_implementation("sdpa")
    model.to(dtype).set_attn_implementation("triton")
    with torch.no_grad():
        ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        torch_out = plain(input_ids=ids, attention_mask=mask).last_hidden_state
        ours = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.bool()
    assert_close(ours, torch_out, ref, dtype, mask=m, what=f"{model_type} triton {dtype}")
    assert (ours[~m] == 0).all()


@pytest.mark.parametrize("model_type", ["roberta", "mpnet"])
def test_family_cuda_graphs(model_type):
    model = base_model(model_type).half()
    model.set_attn_implementation("triton")
    plain = copy.deepcopy(model)
    plain.cuda_graphs(enabled=False)  # graphs are on by default
    model.cuda_graphs(max_batch=4, max_seqlen=64)
    ids, mask = padded_batch(model.config.pad_token_id)
    reference = copy.deepcopy(model).float()
    reference.cuda_graphs(enabled=False)
    reference.set_attn_implementation("eager")
    with torch.no_grad():
        graphed = model(input_ids=ids, attention_mask=mask).last_hidden_state
        again = model(input_ids=ids, attention_mask=mask).last_hidden_state
        ungraphed = plain(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(graphed, again)
    m = mask.bool()
    assert_close(graphed, ungraphed, ref, torch.float16, mask=m, what=f"{model_type} graphed")
