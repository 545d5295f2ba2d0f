"""fastbert.core.workspace: the CPU linears' reused output buffers. A buffer is handed out again only when no
tensor uses its memory any more; inside a model the outputs are bit-identical to plain allocations, with
every family, hidden states kept, and the buffers' pages touched once per forward."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_family_config

import fastbert
from fastbert.core import ops, workspace
from fastbert.core.workspace import Workspace

pytestmark = pytest.mark.skipif(workspace._ALONE is None, reason="this torch has no storage use count")


def test_a_buffer_is_reused_only_when_nothing_uses_it():
    ws = Workspace(max_buffers=2)
    a = ws.take((4, 8), torch.float32)
    a.fill_(1.0)
    q, k = a.view(4, 2, 4).unbind(1)  # views keep the buffer busy after the first view is gone
    del a
    b = ws.take((4, 8), torch.float32)
    assert b.untyped_storage().data_ptr() != q.untyped_storage().data_ptr()
    assert torch.equal(q, torch.ones(4, 4))  # untouched
    del q, k
    c = ws.take((2, 8), torch.float32)  # the first buffer is free again: reused (best fit, 32 >= 16)
    assert c.untyped_storage().data_ptr() == ws.buffers[0].untyped_storage().data_ptr()
    assert ws.take((4, 8), torch.float32) is None  # both busy, no third buffer: the caller allocates
    del b, c
    assert len(ws.buffers) == 2
    assert ws.take((4, 8), torch.float16) is None  # another dtype needs its own buffer (the limit holds)


def test_best_fit_and_no_scope():
    ws = Workspace()
    big, small = ws.take((100,), torch.float32), ws.take((10,), torch.float32)
    del big, small
    held = ws.take((8,), torch.float32)
    assert held.numel() == 8
    assert ws.buffers[1].numel() == 10 and _is_busy(ws.buffers[1]) and not _is_busy(ws.buffers[0])
    assert workspace.take((8,), torch.float32) is None  # no scope: plain allocations
    with workspace.scope():
        outer = workspace._ACTIVE.get()
        with workspace.scope():
            assert workspace._ACTIVE.get() is not outer
        assert workspace._ACTIVE.get() is outer
    assert workspace._ACTIVE.get() is None


def _is_busy(buf):
    return workspace._storage_uses(buf) != workspace._ALONE


FAMILIES = ["bert", "roberta", "distilbert", "electra", "mpnet", "modernbert"]


@pytest.mark.parametrize("family", FAMILIES)
def test_model_outputs_identical_with_and_without_the_workspace(family, monkeypatch):
    """Every family on the sdpa table, padded rows, every hidden state kept: the same bits with the
    workspace on (threshold lowered so the tiny model's linears use it) as with plain allocations."""
    from fastbert import registry

    torch.manual_seed(0)
    config = tiny_family_config(family)
    model = fastbert.AutoModel.from_config(config, attn_implementation="sdpa").eval()
    ids = torch.randint(5, config.vocab_size, (3, 13))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    used = []
    take = workspace.Workspace.take

    def counting_take(self, shape, dtype):
        out = take(self, shape, dtype)
        used.append(out is not None)
        return out

    monkeypatch.setattr(workspace.Workspace, "take", counting_take)
    outs = {}
    for name, threshold in (("off", 1 << 62), ("on", 1)):
        monkeypatch.setattr(ops, "_WORKSPACE_MIN_NUMEL", threshold)
        with torch.no_grad():
            outs[name] = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert any(used), "no linear wrote into the workspace"
    assert torch.equal(outs["on"].last_hidden_state, outs["off"].last_hidden_state)
    for a, b in zip(outs["on"].hidden_states, outs["off"].hidden_states, strict=True):
        assert torch.equal(a, b)  # hidden states kept by the caller were not overwritten by later layers
    assert registry.config_class(config.model_type) is type(config)


def test_grad_and_other_devices_allocate_as_usual(monkeypatch):
    monkeypatch.setattr(ops, "_WORKSPACE_MIN_NUMEL", 1)
    w = torch.randn(8, 4, requires_grad=True)
    x = torch.randn(3, 4)
    with workspace.scope():
        y = ops._sdpa_linear(x, w)  # autograd records it: no buffer
        ws = workspace._ACTIVE.get()
        assert not ws.buffers and y.requires_grad
        with torch.no_grad():
            z = ops._sdpa_linear(x, w)
        assert len(ws.buffers) == 1 and z.untyped_storage().data_ptr() == ws.buffers[0].data_ptr()
        torch.testing.assert_close(z, x @ w.detach().T, rtol=0, atol=0)


def test_every_layer_reuses_the_first_layers_buffers(monkeypatch):
    """The point of it: however many layers, one forward allocates a handful of buffers (BERT's layer: QKV,
    attention output, intermediate) and every large linear of every layer writes into one of them, so their
    pages are touched once per forward instead of once a layer (page faults measured in
    benchmarks/results/cpu-amd-epyc/precision/workspace.md)."""
    torch.manual_seed(0)
    config = fastbert.BertConfig(
        vocab_size=500, hidden_size=96, num_hidden_layers=6, num_attention_heads=4, intermediate_size=384
    )
    model = fastbert.BertModel(config, add_pooling_layer=False).eval()
    ids = torch.randint(5, 500, (8, 40))  # 320 tokens
    monkeypatch.setattr(ops, "_WORKSPACE_MIN_NUMEL", 320 * 96)  # every encoder linear's output qualifies
    # the GEMM that writes into the workspace (MKL's, F.linear's), also on a CPU with AVX-512, where the
    # fp32 linears of this size go through oneDNN, which allocates its own output
    monkeypatch.setattr(ops, "_ONEDNN_LINEAR", None)
    spaces, taken = [], []
    take = workspace.Workspace.take

    def recording_take(self, shape, dtype):
        if not spaces or spaces[-1] is not self:
            spaces.append(self)
        out = take(self, shape, dtype)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(workspace.Workspace, "take", recording_take)
    with torch.no_grad():
        model(input_ids=ids)
        model(input_ids=ids)
    assert len(taken) == 2 * 6 * 4 and all(taken)  # QKV, attention output, intermediate, output: all reused
    assert len(spaces) == 2 and all(len(ws.buffers) <= 3 for ws in spaces), [len(w.buffers) for w in spaces]
    assert workspace._ACTIVE.get() is None  # the scope ended with the forward
