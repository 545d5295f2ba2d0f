"""fastbert.kernels.embedding: word + position + type gather, add, LayerNorm against its reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from kernel_checks import DTYPES, check_against_reference, requires_cuda, run_both

V, P, TV = 50, 80, 2


def _tables(h, dtype, device):
    mk = lambda *s: torch.randn(*s, dtype=dtype, device=device)
    return mk(V, h), mk(P, h), mk(TV, h), 1 + 0.1 * mk(h), mk(h)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", [1, 7, 65])
@pytest.mark.parametrize("hidden", [36, 384])
@pytest.mark.parametrize("with_pos", [True, False])
@pytest.mark.parametrize("with_type", [True, False])
def test_embed_layernorm(dtype, t, hidden, with_pos, with_type, device):
    ids = torch.randint(0, V, (t,), device=device)
    pos = torch.randint(0, P, (t,), device=device) if with_pos else None
    tt = torch.randint(0, TV, (t,), device=device) if with_type else None
    out = run_both("embed_layernorm", ids, pos, tt, *_tables(hidden, dtype, device), 1e-12)
    check_against_reference(*out, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_tables_int32_ids(dtype, device):
    h = 36
    w, p, tw, lw, lb = _tables(h, dtype, device)
    lw = 1 + 0.1 * torch.randn(2 * h, dtype=dtype, device=device)[::2]  # strided LayerNorm weight
    w = torch.randn(V, 2 * h, dtype=dtype, device=device)[:, h:]  # row stride 2h
    p = torch.randn(h, P, dtype=dtype, device=device).t()  # transposed table
    ids = torch.randint(0, V, (9,), device=device, dtype=torch.int32)
    tt = torch.randint(0, TV, (9,), device=device)
    pos = torch.randint(0, P, (18,), device=device)[::2]  # non-contiguous ids
    check_against_reference(*run_both("embed_layernorm", ids, pos, tt, w, p, tw, lw, lb, 1e-12), dtype)


def test_bad_inputs(device):
    from fastbert import kernels

    ops = kernels
    tabs = _tables(36, torch.float32, device)
    ids = torch.randint(0, V, (5,), device=device)
    with pytest.raises(ValueError, match="input_ids out of range"):
        ops.embed_layernorm(torch.tensor([0, V], device=device), None, None, *tabs, 1e-12)
    with pytest.raises(ValueError, match="token_type_ids out of range"):
        ops.embed_layernorm(ids, None, torch.full((5,), TV, device=device), *tabs, 1e-12)
    with pytest.raises(ValueError, match="int64 or int32"):
        ops.embed_layernorm(ids.float(), None, None, *tabs, 1e-12)
    with pytest.raises(ValueError, match="position_ids must have shape"):
        ops.embed_layernorm(ids, ids[:3], None, *tabs, 1e-12)
    w, p, tw, lw, lb = tabs
    with pytest.raises(ValueError, match="position_weight"):
        ops.embed_layernorm(ids, None, None, w, p.half(), tw, lw, lb, 1e-12)
    with pytest.raises(ValueError, match="positions"):
        ops.embed_layernorm(torch.zeros(P + 1, dtype=torch.long, device=device), None, None, *tabs, 1e-12)
    for eps in (-1e-12, float("inf"), "1e-12", None):
        with pytest.raises(ValueError, match="eps must be a finite float >= 0"):
            ops.embed_layernorm(ids, None, None, *tabs, eps)
    want = ops.embed_layernorm(ids, None, None, *tabs, 1e-5)
    torch.testing.assert_close(ops.embed_layernorm(ids, None, None, *tabs, np.float32(1e-5)), want)
    # validate=False skips the value check (valid ids here), shapes still checked
    out = ops.embed_layernorm(ids, None, None, *tabs, 1e-12, validate=False)
    assert out.shape == (5, 36)


@requires_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [384, 768, 1024])
def test_gpu_realistic(dtype, hidden, device):
    mk = lambda *s: torch.randn(*s, dtype=dtype, device=device)
    tabs = (mk(30522, hidden), mk(512, hidden), mk(2, hidden), mk(hidden), mk(hidden))
    t = 8192
    ids = torch.randint(0, 30522, (t,), device=device)
    pos = torch.arange(512, device=device).repeat(t // 512)
    tt = torch.randint(0, 2, (t,), device=device)
    check_against_reference(*run_both("embed_layernorm", ids, pos, tt, *tabs, 1e-12), dtype)


def test_validation_reads_the_device_once(device, monkeypatch):
    """validate=True checks the three id tensors against their tables with one device->host read
    (a .tolist() of their bounds), as attention_varlen reads both cu_seqlens once."""
    from fastbert import kernels

    reads = []
    real = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: reads.append(t.shape) or real(t))
    monkeypatch.setattr(torch.Tensor, "__int__", lambda t: pytest.fail("an int() read of a tensor"))
    monkeypatch.setattr(torch.Tensor, "item", lambda t: pytest.fail("an item() read of a tensor"))
    t, h = 9, 64
    ids = torch.randint(0, 50, (t,), device=device)
    pos, tt = torch.arange(t, device=device), torch.zeros(t, dtype=torch.int32, device=device)
    tables = [torch.randn(n, h, device=device) for n in (50, 20, 2)] + [torch.ones(h, device=device), None]
    kernels.embed_layernorm(ids, pos, tt, *tables, 1e-12)
    assert len(reads) == 1
    with pytest.raises(
        ValueError, match=r"position_ids out of range: values in \[12, 20\], table has 20 rows"
    ):
        kernels.embed_layernorm(ids, pos + 12, tt, *tables, 1e-12)
    assert len(reads) == 2
    q = torch.randn(t, 2, 32, device=device)
    cu = torch.tensor([0, 4, 9], dtype=torch.int32, device=device)
    kernels.attention_varlen(q, q, q, cu, cu, 5, 5, 0.1)
    assert len(reads) == 3


_WIDE_TABLES_CHILD = """
import torch
from fastbert.kernels import embed_layernorm

H, S, V, P, TV = 3, 2**30 + 1, 5, 4, 2  # column stride S fits int32; column 2's offset 2 * S does not
try:
    store = torch.empty(2 * S + V + P + TV, dtype=torch.float16)  # 4 GiB of address space, pages untouched
except RuntimeError:
    raise SystemExit(3)
small = torch.randn(V + P + TV, H).half()
for c in range(H):  # only these few elements are written (and read back)
    store[c * S : c * S + V + P + TV] = small[:, c]
we = store.as_strided((V, H), (1, S))  # transposed views, as (H, rows) tables' .t()
pe = store.as_strided((P, H), (1, S), V)
te = store.as_strided((TV, H), (1, S), V + P)
ids, pos, tt = torch.tensor([4, 0, 2]), torch.tensor([3, 1, 0]), torch.tensor([1, 0, 1])
lw = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float16)
for tt_ in (tt, None):
    got = embed_layernorm(ids, pos, tt_, we, pe, te, lw, None, 1e-5)
    h = small[ids].float() + small[V + pos].float() + small[V + P + (tt_ if tt_ is not None else 0)].float()
    want = torch.nn.functional.layer_norm(h, (H,), lw.float(), None, 1e-5)
    torch.testing.assert_close(got.float(), want, atol=2e-3, rtol=2e-3)
print("ok")
"""


def test_transposed_tables_past_int32_columns():
    """A table's column offset is ``column * stride``: in a transposed view of >= 2**31 elements (a word
    table stored (hidden, vocab)) it passes 2**31 while the stride itself fits int32, and in int32 it wrapped
    to a read out of bounds (a segfault under the interpreter). Such tables are read in place, with int64
    offsets. Run under the interpreter on the CPU in a child process (a wrapped read crashes it), with a
    4 GiB fp16 storage of which only the few elements read are ever touched."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _WIDE_TABLES_CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    if run.returncode == 3:
        pytest.skip("no 4 GiB of address space for the table's storage")
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.returncode, run.stderr[-2000:])
