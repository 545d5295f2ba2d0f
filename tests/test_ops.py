"""Every op of every table against the float64 torch reference, judged by the one rule (fastbert.core.tolerances)."""

import math

import pytest
import torch

from fastbert.core import attention_ref, ops
from fastbert.core.padding import packing_from_mask
from fastbert.core.tolerances import assert_close

TABLES = ["eager", "sdpa", "triton"]
DTYPES = [torch.float32, torch.float16]


def table(name):
    if name == "triton" and not ops.triton_available():
        pytest.skip("needs triton (CUDA or TRITON_INTERPRET=1)")
    return ops.get_ops(name)


def run3(name, op, dtype, *args, **kw):
    """(ours in dtype, the plain torch op in dtype, the float64 reference)."""

    def cast(a, d):
        return a.to(d) if isinstance(a, torch.Tensor) and a.is_floating_point() else a

    ours = getattr(table(name), op)(*[cast(a, dtype) for a in args], **kw)
    plain = getattr(ops.SDPA_OPS, op)(*[cast(a, dtype) for a in args], **kw)
    ref = getattr(ops.SDPA_OPS, op)(*[cast(a, torch.float64) for a in args], **kw)
    return ours, plain, ref


def check(name, op, dtype, *args, **kw):
    ours, plain, ref = run3(name, op, dtype, *args, **kw)
    if not isinstance(ours, tuple):
        ours, plain, ref = (ours,), (plain,), (ref,)
    assert len(ours) == len(ref)
    for i, (o, p, r) in enumerate(zip(ours, plain, ref)):
        assert o.dtype == dtype and o.shape == r.shape
        assert_close(o, p, r, dtype, what=f"{name}.{op}[{i}]")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TABLES)
def test_primitive_and_composite_ops(name, dtype):
    """Every primitive of the table (and the composites over it) in every placement the families use."""
    x, w, b = torch.randn(7, 24), torch.randn(36, 24) * 0.2, torch.randn(36)
    res, lw, lb = torch.randn(7, 36), 1 + 0.1 * torch.randn(36), 0.1 * torch.randn(36)
    h = x @ w.t()
    check(name, "linear", dtype, x, w, b)
    check(name, "add_norm", dtype, res, h, b, lw, lb, 1e-12)  # BERT's post-norm
    check(name, "add_norm", dtype, res, h, None, lw, None, 1e-5)  # LayerNorm without bias (ModernBERT)
    check(name, "add_norm", dtype, res, None, b, lw, None, 1e-6, rms=True)  # RMSNorm
    check(name, "add_norm", dtype, res, h, None, lw, None, 1e-5, prenorm=True)  # (norm(h), h)
    check(name, "add_norm", dtype, res, h, b, lw, None, 1e-6, True, True)  # RMS, pre-norm, positional
    check(name, "bias_act", dtype, res, b, "relu")
    check(name, "bias_act", dtype, res, b, "silu", lw, lb, 1e-12)  # + LayerNorm (an MLM head's transform)
    check(name, "bias_act", dtype, res, None, "tanh")  # no kernel: the triton table computes it in torch
    check(name, "glu", dtype, res, b, "gelu")  # GeGLU: (7, 36) -> (7, 18)
    check(name, "glu", dtype, res, None, "silu")
    check(name, "dense_add_norm", dtype, x, w, b, res, lw, lb, 1e-12)
    check(name, "dense_add_norm", dtype, x, w, None, res, lw, None, 1e-5, prenorm=True)
    check(name, "dense_act", dtype, x, w, b, "gelu")
    check(name, "dense_act", dtype, x, w, b, "tanh")
    check(name, "dense_act", dtype, x, w, b, "gelu_new", lw, lb, 1e-5)
    check(name, "dense_glu", dtype, x, w, b, "gelu")
    check(name, "dense_glu", dtype, x, w, None, "gelu")


@pytest.mark.parametrize("name", TABLES)
def test_embed(name):
    word, pos, typ = torch.randn(50, 16), torch.randn(20, 16), torch.randn(2, 16)
    ids, positions, types = torch.randint(0, 50, (11,)), torch.arange(11), torch.randint(0, 2, (11,))
    lw, lb = 1 + 0.1 * torch.randn(16), 0.1 * torch.randn(16)
    check(name, "embed", torch.float32, ids, positions, types, word, pos, typ, lw, lb, 1e-12)
    check(name, "embed", torch.float32, ids, None, None, word, None, None, lw, None, 1e-5)  # ModernBERT
    check(name, "embed", torch.float32, ids, positions, None, word, pos, None, lw, lb, 1e-12)  # DistilBERT
    with pytest.raises(ValueError, match="token_type_ids given without a type_weight"):
        table(name).embed(ids, positions, types, word, pos, None, lw, lb, 1e-12)


@pytest.mark.parametrize("name", TABLES)
@pytest.mark.parametrize("window", [0, 4])
def test_window_and_rotary_attention_padded_and_packed(name, window):
    """A spec with a sliding window and RoPE: every table, packed (sdpa, triton) and padded (eager; the padded
    path of the others), gives the float64 padded eager result on the valid tokens of a right-padded batch."""
    from fastbert.core import attention_ref as R

    t = table(name)
    torch.manual_seed(3)
    b, n, heads, d = 3, 9, 2, 8
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 7 + [0] * 2])
    q, k, v = (torch.randn(b, n, heads, d) for _ in range(3))
    rotary = R.rope_cos_sin(R.rope_inv_freq(10000.0, d), n)
    padded = ops.AttentionSpec(key_mask=mask.bool(), window=window, rotary=rotary)
    ref, _ = ops.EAGER_OPS.attention(q.double(), k.double(), v.double(), padded, 0.3)
    plain, _ = ops.EAGER_OPS.attention(q, k, v, padded, 0.3)
    keep = mask.bool()
    p = packing_from_mask(mask)
    packed = ops.AttentionSpec(q_packing=p, k_packing=p, window=window, rotary=rotary)
    if t.packs:  # eager computes the padded batch only
        out_packed, _ = t.attention(q[keep], k[keep], v[keep], packed, 0.3)
        assert_close(out_packed, plain[keep], ref[keep], torch.float32, what=f"{name} packed window={window}")
    out_padded, _ = t.attention(q, k, v, padded, 0.3)
    assert_close(out_padded[keep], plain[keep], ref[keep], torch.float32, what=f"{name} padded")
    if window:  # the window matters: without it the answer differs
        wide, _ = ops.EAGER_OPS.attention(
            q, k, v, ops.AttentionSpec(key_mask=mask.bool(), rotary=rotary), 0.3
        )
        assert not torch.allclose(wide[keep], plain[keep], atol=1e-3)


def attention_inputs(lengths, seqlen=6, heads=2, d=8, dtype=torch.float32):
    mask = torch.zeros(len(lengths), seqlen, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    q, k, v = (torch.randn(len(lengths), seqlen, heads, d, dtype=torch.float64) for _ in range(3))
    return q, k, v, mask


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", TABLES)
def test_attention_padded_and_packed(name, causal):
    """``attention`` on padded and on packed inputs, against float64 SDPA per sequence."""
    q, k, v, mask = attention_inputs([6, 3, 1, 0])
    scale = 1 / math.sqrt(8)
    keep = mask.bool()
    lengths = mask.sum(1).tolist()

    def per_sequence(q, k, v):  # plain SDPA on each sequence alone, zeros on padding
        out = torch.zeros_like(q)
        for b, n in enumerate(lengths):
            if n:
                out[b, :n] = attention_ref.torch_attention_padded(
                    q[b : b + 1, :n], k[b : b + 1, :n], v[b : b + 1, :n], None, scale, causal
                )[0]
        return out

    ref = per_sequence(q, k, v)
    t = table(name)
    for dtype in DTYPES:
        qd, kd, vd = (x.to(dtype) for x in (q, k, v))
        plain = per_sequence(qd, kd, vd)
        padded = ops.AttentionSpec(causal=causal, key_mask=keep)
        out, probs = t.attention(qd, kd, vd, padded, scale)
        assert (probs is not None) == (name == "eager")
        assert torch.isfinite(out).all()
        assert_close(out, plain, ref, dtype, mask=keep, what=f"{name} padded {dtype}")
        if not t.packs:
            continue
        p = packing_from_mask(mask)
        packed = ops.AttentionSpec(causal=causal, q_packing=p, k_packing=p)
        out, _ = t.attention(*(x[keep] for x in (qd, kd, vd)), packed, scale)
        assert_close(out, plain[keep], ref[keep], dtype, what=f"{name} packed {dtype}")


@pytest.mark.parametrize("name", TABLES)
def test_attention_with_a_score_bias(name):
    """A relative-position bias on padded inputs (the triton table computes it with torch)."""
    q, k, v, mask = attention_inputs([5, 2])
    bias = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    spec = ops.AttentionSpec(key_mask=mask.bool())
    ref, _ = ops.EAGER_OPS.attention(q, k, v, spec, 0.3, 0.0, bias)
    out, _ = table(name).attention(q.float(), k.float(), v.float(), spec, 0.3, 0.0, bias.float())
    plain, _ = ops.SDPA_OPS.attention(q.float(), k.float(), v.float(), spec, 0.3, 0.0, bias.float())
    assert_close(out, plain, ref, torch.float32, mask=mask.bool(), what=f"{name} biased")


def test_a_query_without_keys_gets_zeros():
    q = torch.randn(3, 2, 4)
    k = v = torch.randn(2, 2, 4)
    qp = packing_from_mask(torch.tensor([[1, 1], [1, 0]]))
    kp = packing_from_mask(torch.tensor([[1, 1], [0, 0]]))
    out, _ = ops.SDPA_OPS.attention(q, k, v, ops.AttentionSpec(q_packing=qp, k_packing=kp), 0.5)
    assert out[2].abs().max() == 0 and out[:2].abs().max() > 0


def test_one_activation_table_matches_the_kernels():
    assert ops.activation("gelu") is torch.nn.functional.gelu
    with pytest.raises(ValueError, match="unsupported activation 'swiglu'"):
        ops.activation("swiglu")
    if ops.triton_available():
        from fastbert.kernels import ACTIVATIONS as KERNEL_ACTIVATIONS

        assert set(KERNEL_ACTIVATIONS) == set(ops.ACTIVATIONS) - {"tanh"}


def test_table_names():
    assert [ops.get_ops(n).name for n in ("eager", "sdpa")] == ["eager", "sdpa"]
    with pytest.raises(ValueError, match="unknown attn_implementation"):
        ops.get_ops("flash")


def test_reference_padded_attention_seqlens_k_equals_mask_with_padding_zeroed():
    q, k, v = (torch.randn(3, 9, 2, 8) for _ in range(3))
    lens = torch.tensor([9, 4, 0], dtype=torch.int32)
    valid = torch.arange(9)[None, :] < lens[:, None]
    table = ops.KERNEL_REFERENCES
    out = table.attention_padded(q, k, v, None, 0.3, False, seqlens_k=lens)
    masked = table.attention_padded(q, k, v, valid, 0.3, False)
    assert torch.equal(out[valid], masked[valid])
    assert (out[~valid] == 0).all() and (masked[~valid] != 0).any()  # the queries past a row's length
    with pytest.raises(ValueError, match="Lq == Lk"):
        table.attention_padded(q, k[:, :5], v[:, :5], None, 0.3, False, seqlens_k=lens)


@pytest.mark.parametrize("style", ["window_size", "is_causal", "no_scale"])
def test_varlen_attn_adapter_follows_the_installed_signature(monkeypatch, style):
    """torch's varlen attention changed its keywords between releases: the adapter reads the signature."""
    import types

    calls = {}

    if style == "window_size":

        def fake(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1)):
            calls.update(scale=scale, window_size=window_size)
            return query

    elif style == "is_causal":

        def fake(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, scale=None):
            calls.update(scale=scale, is_causal=is_causal)
            return query

    else:

        def fake(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False):
            calls.update(is_causal=is_causal, q=query)
            return query

    monkeypatch.setitem(
        __import__("sys").modules, "torch.nn.attention.varlen", types.SimpleNamespace(varlen_attn=fake)
    )
    call = ops._varlen_attn_caller()
    p = packing_from_mask(torch.ones(1, 3))
    q = torch.ones(3, 2, 4)
    call(q, q, q, p, p, 0.25, True)
    if style == "window_size":
        assert calls == {"scale": 0.25, "window_size": (-1, 0)}
    elif style == "is_causal":
        assert calls == {"scale": 0.25, "is_causal": True}
    else:  # no scale keyword: q pre-scaled so that its default 1/sqrt(D) gives the asked scale
        assert calls["is_causal"] and torch.allclose(calls["q"], torch.full_like(q, 0.25 * 2.0))


@pytest.mark.parametrize("causal", [False, True])
def test_padded_once_equals_the_loop(causal):
    """The CUDA fallback (one masked call on the batch padded with the packing's index) on the CPU."""
    q, k, v, mask = attention_inputs([6, 3, 1, 0])
    p = packing_from_mask(mask)
    spec = ops.AttentionSpec(causal=causal, q_packing=p, k_packing=p)
    keep = mask.bool()
    once = ops._sdpa_padded_once(q[keep], k[keep], v[keep], spec, 0.3)
    loop, _ = ops.SDPA_OPS.attention(q[keep], k[keep], v[keep], spec, 0.3)
    torch.testing.assert_close(once, loop, rtol=1e-12, atol=1e-12)


def test_sdpa_linear_onednn_on_cpu_inference_and_plain_with_autograd(monkeypatch):
    """The sdpa table's CPU linear: oneDNN in fp32 inference (within the rule), F.linear when autograd
    needs it (gradients flow), and every dense entry goes through it."""
    monkeypatch.setattr(ops, "_ONEDNN_MIN_MACS", 0)  # the tiny shapes below go through oneDNN too
    # oneDNN whatever this CPU prefers (an AVX2-only CPU computes with F.linear: ops._onednn_preferred)
    monkeypatch.setattr(ops, "_ONEDNN_LINEAR", ops._onednn_linear_op())
    x, w, b = torch.randn(37, 36), torch.randn(108, 36), torch.randn(108)
    ref = torch.nn.functional.linear(x.double(), w.double(), b.double())
    with torch.no_grad():
        out = ops.SDPA_OPS.linear(x, w, b)
        assert_close(out, torch.nn.functional.linear(x, w, b), ref, torch.float32, what="linear")
    wg = w.clone().requires_grad_()
    y = ops.SDPA_OPS.linear(x, wg, b)
    assert torch.equal(y, torch.nn.functional.linear(x, wg, b))
    y.sum().backward()
    assert wg.grad is not None
    if ops._ONEDNN_LINEAR is not None:
        calls = []
        real = ops._ONEDNN_LINEAR
        monkeypatch.setattr(ops, "_ONEDNN_LINEAR", lambda *a: calls.append(1) or real(*a))
        with torch.no_grad():
            ops.SDPA_OPS.dense_act(x, w, b, "gelu")
            ops.SDPA_OPS.dense_add_norm(x, w[:36], b[:36], x, torch.ones(36), torch.zeros(36), 1e-12)
            ops.SDPA_OPS.dense_act(x, w, b, "gelu", torch.ones(108), torch.zeros(108), 1e-12)
        assert len(calls) == 3
    # eager stays transformers' twin (F.linear itself) on a plain weight
    assert torch.equal(ops.EAGER_OPS.linear(x, w, b), torch.nn.functional.linear(x, w, b))


@pytest.mark.parametrize("native", [True, False])
def test_sdpa_linear_takes_bf16_to_onednn_only_where_the_cpu_computes_bf16(monkeypatch, native):
    """bf16 CPU linears go through oneDNN where the CPU has avx512_bf16 / AMX (faster than torch's bf16
    addmm there), within the bf16 rule; where bf16 is emulated they stay on F.linear. fp32 goes through
    oneDNN either way (where oneDNN is preferred)."""
    from fastbert.core import cpu

    monkeypatch.setattr(ops, "_ONEDNN_MIN_MACS", 0)
    real = ops._onednn_linear_op()
    calls = []
    monkeypatch.setattr(ops, "_ONEDNN_LINEAR", lambda *a: calls.append(a[0].dtype) or real(*a))
    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: native)
    ops._onednn_dtypes.cache_clear()
    try:
        x, w, b = torch.randn(37, 36), torch.randn(108, 36), torch.randn(108)
        ref = torch.nn.functional.linear(x.double(), w.double(), b.double())
        with torch.no_grad():
            out = ops.SDPA_OPS.linear(x.bfloat16(), w.bfloat16(), b.bfloat16())
            plain = torch.nn.functional.linear(x.bfloat16(), w.bfloat16(), b.bfloat16())
            ops.SDPA_OPS.linear(x, w, b)
    finally:
        ops._onednn_dtypes.cache_clear()
    assert out.dtype == torch.bfloat16
    assert_close(out, plain, ref, torch.bfloat16, what="bf16 linear")
    assert calls == ([torch.bfloat16, torch.float32] if native else [torch.float32])


@pytest.mark.parametrize("gemm", ["onednn", "workspace"])
def test_sdpa_linear_under_autocast_runs_in_the_autocast_dtype(monkeypatch, gemm):
    """Under torch.autocast("cpu") the sdpa table's linear is F.linear's: bf16 out, as transformers'
    (oneDNN's op and addmm(out=) are not autocast ops: they gave fp32 at every large linear)."""
    from fastbert.core import workspace

    monkeypatch.setattr(ops, "_ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(ops, "_WORKSPACE_MIN_NUMEL", 1)
    monkeypatch.setattr(ops, "_ONEDNN_LINEAR", ops._onednn_linear_op() if gemm == "onednn" else None)
    x, w, b = torch.randn(37, 36), torch.randn(108, 36), torch.randn(108)
    with torch.no_grad(), workspace.scope(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = ops.SDPA_OPS.linear(x, w, b)
        plain = torch.nn.functional.linear(x, w, b)
    assert out.dtype == plain.dtype == torch.bfloat16 and torch.equal(out, plain)


def test_sdpa_linear_takes_a_strided_bias_or_weight_as_f_linear():
    """oneDNN's linear reads a strided bias as if contiguous (0.06 relative error, silently): such a bias or
    weight takes F.linear."""
    real = ops._onednn_linear_op()
    if real is None:
        pytest.skip("this torch has no oneDNN")
    x = torch.randn(64, 96)
    w_big, b_big = torch.randn(256, 96), torch.randn(256)
    for w, b in ((w_big[:128], b_big[::2]), (w_big[::2], b_big[:128])):
        ref = torch.nn.functional.linear(x.double(), w.double(), b.double())
        with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
            mp.setattr(ops, "_ONEDNN_MIN_MACS", 0)
            mp.setattr(ops, "_ONEDNN_LINEAR", real)
            out = ops.SDPA_OPS.linear(x, w, b)
        assert_close(out, torch.nn.functional.linear(x, w, b), ref, torch.float32, what="strided linear")


def test_sdpa_linear_under_torch_compile_has_no_graph_break(monkeypatch):
    """Dynamo traces the sdpa table's linear as F.linear: no CPU probe traced (a graph break and two
    warnings at every large linear)."""
    monkeypatch.setattr(ops, "_ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(ops, "_ONEDNN_LINEAR", ops._onednn_linear_op())
    ops._onednn_dtypes.cache_clear()
    torch._dynamo.reset()
    x, w, b = torch.randn(37, 36), torch.randn(108, 36), torch.randn(108)
    with torch.no_grad():
        explained = torch._dynamo.explain(lambda x: ops.SDPA_OPS.linear(x, w, b) * 2)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


def test_triton_is_not_chosen_for_a_model_off_cuda(monkeypatch):
    """With CUDA present but the model on the CPU (and no interpreter), triton falls back to sdpa, saying why."""
    monkeypatch.setattr(ops, "triton_available", lambda: True)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    table, reason = ops.resolve("triton", device=lambda: torch.device("cpu"))
    assert table is ops.SDPA_OPS and "CUDA device" in reason
    assert ops.resolve("sdpa", device=lambda: torch.device("cpu")) == (ops.SDPA_OPS, None)


def test_sdpa_packed_attention_of_an_all_padded_batch_is_zeros():
    from fastbert.core.padding import packing_from_mask

    packing = packing_from_mask(torch.zeros(2, 5, dtype=torch.long))
    spec = ops.AttentionSpec(q_packing=packing, k_packing=packing)
    q = torch.zeros(0, 2, 8)
    out, probs = ops.SDPA_OPS.attention(q, q, q, spec, 0.3)
    assert out.shape == (0, 2, 8) and probs is None


def test_sdpa_linear_keeps_small_gemms_on_f_linear(monkeypatch):
    calls = []
    monkeypatch.setattr(ops.prepack, "_ENABLED", False)  # the stand-in below takes a plain weight
    monkeypatch.setattr(
        ops, "_ONEDNN_LINEAR", lambda *a: calls.append(a) or torch.nn.functional.linear(*a[:3])
    )
    with torch.no_grad():
        ops.SDPA_OPS.linear(torch.randn(8, 32), torch.randn(96, 32), None)  # 24k multiply-adds
        assert calls == []
        ops.SDPA_OPS.linear(torch.randn(64, 256), torch.randn(256, 256), None)  # 4M
        assert len(calls) == 1


def test_sdpa_window_path_across_chunks_equals_the_reference():
    """The sdpa table's banded SDPA (chunks of attention_ref.CHUNK queries) on sequences longer than a chunk,
    shorter than the window and of one token: the float64 reference's result within the rule."""
    from fastbert.core import attention_ref as R

    torch.manual_seed(1)
    lens = (300, 7, 1, 600)
    mask = torch.zeros(len(lens), max(lens), dtype=torch.long)
    for b, n in enumerate(lens):
        mask[b, :n] = 1
    p = packing_from_mask(mask)
    q, k, v = (torch.randn(sum(lens), 3, 16) for _ in range(3))
    cos, sin = R.rope_cos_sin(R.rope_inv_freq(160000.0, 16), max(lens))
    spec = ops.AttentionSpec(q_packing=p, k_packing=p, window=128, rotary=(cos, sin))
    ours, _ = ops.SDPA_OPS.attention(q, k, v, spec, 0.25)
    args = (p.cu_seqlens, p.cu_seqlens, p.max_seqlen, p.max_seqlen, 0.25)
    kw = dict(window=128, rotary_cos=cos, rotary_sin=sin)
    plain = R.attention_varlen(q, k, v, *args, **kw)
    ref = R.attention_varlen(q.double(), k.double(), v.double(), *args, **kw)
    assert_close(ours, plain, ref, torch.float32, what="banded sdpa across chunks")


def test_triton_falls_back_for_more_sequences_than_the_attention_grid_takes():
    """The attention kernel's grid carries the batch on an axis of at most 65535: a larger batch (a plain
    model call; transformers runs it) falls back to sdpa, warned, instead of the kernel refusing it mid-forward
    after the embedding kernel ran."""
    import warnings

    import fastbert

    if not ops.triton_available():
        pytest.skip("needs triton (CUDA or TRITON_INTERPRET=1)")
    from fastbert.kernels.attention import MAX_GRID_BATCH

    assert ops.TRITON_MAX_BATCH == MAX_GRID_BATCH  # resolve's copy of the kernel's limit
    assert ops.resolve("triton", batch=MAX_GRID_BATCH) == (ops.get_ops("triton"), None)
    table, reason = ops.resolve("triton", batch=MAX_GRID_BATCH + 1)
    assert table is ops.SDPA_OPS and f"more than {MAX_GRID_BATCH} sequences" in reason
    cfg = dict(vocab_size=11, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**cfg, max_position_embeddings=4)).eval()
    ids = torch.randint(0, 11, (MAX_GRID_BATCH + 1, 1))
    model.set_attn_implementation("triton")
    with torch.no_grad(), pytest.warns(UserWarning, match=f"more than {MAX_GRID_BATCH} sequences"):
        ours = model(input_ids=ids).last_hidden_state
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # once per reason
        model(input_ids=ids[:-1].repeat(2, 1))
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        assert torch.equal(ours, model(input_ids=ids).last_hidden_state)


def test_triton_falls_back_for_a_float64_model():
    """The kernels take fp32/fp16/bf16: a float64 model (transformers runs one; on CUDA triton is the default
    backend) falls back to sdpa, warned, instead of the embedding kernel refusing its tables mid-forward."""
    import fastbert

    if not ops.triton_available():
        pytest.skip("needs triton (CUDA or TRITON_INTERPRET=1)")
    table, reason = ops.resolve("triton", dtype=torch.float64)
    assert table is ops.SDPA_OPS and "not the model's torch.float64" in reason
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert ops.resolve("triton", dtype=dtype) == (ops.get_ops("triton"), None)
    cfg = dict(vocab_size=11, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**cfg, max_position_embeddings=4)).eval().double()
    ids = torch.randint(0, 11, (2, 3))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    model.set_attn_implementation("triton")
    with torch.no_grad(), pytest.warns(UserWarning, match="float64"):
        ours = model(input_ids=ids, attention_mask=mask).last_hidden_state
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        assert torch.equal(ours, model(input_ids=ids, attention_mask=mask).last_hidden_state)
