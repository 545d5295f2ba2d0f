"""The varlen attention kernel's options for the encoder families (sliding window, MPNet's relative
position bias, RoPE) against their torch references (``fastbert.core.attention_ref``), and those references
against transformers' own MPNet and ModernBERT attention (eager, float64) on padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kernel_checks import DEVICE, INTERPRET, check_against_reference, requires_cuda, to64

from fastbert.core import attention_ref as R
from fastbert.core.tolerances import assert_close

LENS = [1, 7, 0, 65, 33]  # a length-1 and an empty sequence, odd lengths, one past a 64-query block
WINDOW = 16  # smaller than the sequences: |i - j| <= 8
OPTIONS = {
    "window": dict(window=WINDOW),
    "rel_bias": dict(rel_bias=True),
    "rotary": dict(rotary=True),
    "all": dict(window=WINDOW, rel_bias=True, rotary=True),
    "window_causal": dict(window=WINDOW, causal=True),
}


def _skip_interpreter_bf16(dtype):
    if INTERPRET and dtype == torch.bfloat16:
        pytest.skip("triton interpreter computes bf16 tl.dot wrongly; tested on GPU")


def _cu(lens, device):
    return torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)


def _options(opts: dict, heads: int, head_dim: int, device) -> dict:
    """Kernel keyword arguments: a bias table with max_distance 16 (offsets up to 64 get clamped)."""
    kw = {k: v for k, v in opts.items() if k in ("window", "causal")}
    if opts.get("rel_bias"):
        kw["rel_bias"] = R.relative_bias_table(torch.randn(8, heads, device=device), 8, 16)
    if opts.get("rotary"):
        cos, sin = R.rope_cos_sin(R.rope_inv_freq(10000.0, head_dim, device=device), max(LENS))
        kw.update(rotary_cos=cos, rotary_sin=sin)
    return kw


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [32, 64])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_kernel_options_against_reference(dtype, head_dim, name, device):
    """Kernel vs the torch reference in dtype and on float64 inputs: q, k, v as views of a fused QKV."""
    _skip_interpreter_bf16(dtype)
    from fastbert import kernels

    heads = 2
    qkv = torch.randn(sum(LENS), 3, heads, head_dim, dtype=dtype, device=device)
    q, k, v = qkv.unbind(1)
    cu = _cu(LENS, device)
    kw = _options(OPTIONS[name], heads, head_dim, device)
    args = (q, k, v, cu, cu, max(LENS), max(LENS), head_dim**-0.5)
    out = kernels.attention_varlen(*args, **kw)
    torch_out = R.attention_varlen(*args, **kw)
    ref64 = R.attention_varlen(*(to64(a) for a in args), **kw)
    check_against_reference(out, torch_out, ref64, dtype)


def test_window_loads_only_the_blocks_it_meets(device):
    """Counted under the launch: a sliding window loads the key blocks its query blocks meet, not all."""
    from fastbert.kernels import attention

    lens, window = [300, 37], 32
    q = torch.randn(sum(lens), 1, 16, dtype=torch.float32, device=device)
    cu = _cu(lens, device)
    bm, bn = attention._FP32_CANDIDATES[16][:2]  # fp32 runs this one config
    counts = {}
    for w in (0, window):
        count = torch.zeros(1, dtype=torch.int32, device=device)
        attention._launch(q, q, q, None, cu, cu, None, 0, 0, max(lens), len(lens), 0.25, False, False,
                          window=w, block_count=count)  # fmt: skip
        counts[w] = count.item()

    def expected(n, half):
        total = 0
        for start in range(0, n, bm):
            lo, hi = 0, n
            if half is not None:
                lo, hi = max(start - half, 0) // bn * bn, min(n, start + bm + half)
            total += -(-(hi - lo) // bn)
        return total

    assert counts[0] == sum(expected(n, None) for n in lens)
    assert counts[window] == sum(expected(n, window // 2) for n in lens)
    assert counts[window] < counts[0] / 2


def test_kernel_bad_options(device):
    from fastbert import kernels

    q = torch.randn(5, 2, 32, device=device)
    cu = _cu([2, 3], device)
    args = (q, q, q, cu, cu, 3, 3, 0.1)
    with pytest.raises(ValueError, match="window must be a non-negative int"):
        kernels.attention_varlen(*args, window=-2)
    with pytest.raises(ValueError, match="window must be a non-negative int"):
        kernels.attention_varlen(*args, window=True)
    with pytest.raises(ValueError, match="scale must be a finite float, got nan"):
        kernels.attention_varlen(q, q, q, cu, cu, 3, 3, float("nan"))
    with pytest.raises(ValueError, match="max_seqlen_q must be a non-negative int"):
        kernels.attention_varlen(q, q, q, cu, cu, 3.0, 3, 0.1)
    # numpy scalars (a config or a numpy computation gives them) are numbers like python's
    want = kernels.attention_varlen(*args, window=2)
    got = kernels.attention_varlen(
        q, q, q, cu, cu, np.int64(3), np.int32(3), np.float32(0.1), window=np.int64(2)
    )
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="rel_bias must have shape"):
        kernels.attention_varlen(*args, rel_bias=torch.zeros(3, 33))
    with pytest.raises(ValueError, match="rel_bias must be a float32"):
        kernels.attention_varlen(*args, rel_bias=torch.zeros(2, 33, dtype=torch.float16))
    cos, sin = R.rope_cos_sin(R.rope_inv_freq(10000.0, 32, device=device), 3)
    with pytest.raises(ValueError, match="rotary_cos must be a float32"):
        kernels.attention_varlen(*args, rotary_cos=cos[:2], rotary_sin=sin[:2])  # fewer rows than max_seqlen
    with pytest.raises(ValueError, match="both or neither"):
        kernels.attention_varlen(*args, rotary_cos=cos)
    odd = torch.randn(5, 2, 31, device=device)
    with pytest.raises(ValueError, match="rotary needs an even head dim"):
        kernels.attention_varlen(odd, odd, odd, cu, cu, 3, 3, 0.1, rotary_cos=cos, rotary_sin=sin)


# ---------------------------------------------------------------------------------------------
# the references against transformers
# ---------------------------------------------------------------------------------------------


def test_relative_bias_table_is_exact():
    """The (heads, 2 R + 1) table read at the clamped offset equals the bucketed embedding at any offset."""
    transformers = pytest.importorskip("transformers")
    bucket_hf = transformers.models.mpnet.modeling_mpnet.MPNetEncoder.relative_position_bucket
    weight = torch.randn(32, 3)
    table = R.relative_bias_table(weight, 32, 128)
    offsets = torch.arange(-700, 701)
    assert torch.equal(R.relative_position_bucket(offsets, 32, 128), bucket_hf(offsets, 32, 128))
    direct = weight[bucket_hf(offsets, 32, 128)].t()
    assert torch.equal(table[:, offsets.clamp(-128, 128) + 128], direct)


def _capture(module):
    """Hook: the first input and the output of ``module``'s next forward."""
    seen = {}

    def hook(mod, args, kwargs, output):
        seen["input"] = args[0] if args else kwargs["hidden_states"]
        seen["output"] = output[0] if isinstance(output, tuple) else output

    return seen, module.register_forward_hook(hook, with_kwargs=True)


def _pack(x, mask):
    """(B, L, ...) padded -> (T, ...) real tokens, cu_seqlens, max length."""
    lens = mask.sum(1)
    return x[mask], _cu(lens.tolist(), x.device), int(lens.max())


def _padded_batch(vocab, lens, pad_id=1):
    ids = torch.randint(3, vocab, (len(lens), max(lens)))
    mask = torch.arange(max(lens))[None, :] < torch.tensor(lens)[:, None]
    return ids.masked_fill(~mask, pad_id), mask


def _mpnet_attention(dtype, kernel: bool):
    """(ours, transformers') outputs of MPNet's first self-attention on a right-padded batch in ``dtype``."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.MPNetConfig(
        vocab_size=50, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=400, attn_implementation="eager",
    )  # fmt: skip
    model = transformers.MPNetModel(cfg).eval().to(dtype)
    with torch.no_grad():  # a bias table that matters
        model.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    ids, mask = _padded_batch(50, [1, 150, 67])  # 150: offsets past max_distance 128
    attn = model.encoder.layer[0].attention.attn
    seen, handle = _capture(attn)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask.long())
        handle.remove()
        h = seen["input"]
        heads, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
        q, k, v = (lin(h).view(*h.shape[:2], heads, d) for lin in (attn.q, attn.k, attn.v))
        (qp, cu, n), kp, vp = _pack(q, mask), _pack(k, mask)[0], _pack(v, mask)[0]
        table = R.relative_bias_table(
            model.encoder.relative_attention_bias.weight,
            32,
            128,
            torch.float64 if dtype == torch.float64 else torch.float32,
        )
        if kernel:
            from fastbert import kernels

            on = _on_kernel_device  # the model stays on the CPU (transformers' reference); the kernel runs on
            # the kernels' device (CUDA, or the CPU under the interpreter)
            ctx = kernels.attention_varlen(
                *on(qp, kp, vp, cu, cu), n, n, d**-0.5, rel_bias=on(table)[0]
            ).cpu()
        else:
            ctx = R.attention_varlen(qp, kp, vp, cu, cu, n, n, d**-0.5, rel_bias=table)
        ours = attn.o(ctx.reshape(ctx.shape[0], -1))
    return ours, seen["output"][mask]


@pytest.mark.parametrize("kernel", [False, True], ids=["reference", "kernel"])
def test_mpnet_attention_matches_transformers(kernel):
    """Packed attention with the bias table (reference, and the Triton kernel) vs transformers' eager MPNet:
    float64 reference, transformers' own fp32 error as the bound's base."""
    ours64, ref64 = _mpnet_attention(torch.float64, kernel=False)
    assert_close(ours64, None, ref64, torch.float64, what="mpnet reference (float64)")
    ours32, hf32 = _mpnet_attention(torch.float32, kernel=kernel)
    assert_close(
        ours32, hf32, ref64, torch.float32, what=f"mpnet {'kernel' if kernel else 'reference'} (fp32)"
    )


def _on_kernel_device(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.to(DEVICE) for t in tensors]


def _modernbert_attention(dtype, kernel: bool):
    """(ours, transformers') outputs of a sliding-window ModernBERT attention (RoPE, local theta) on a
    right-padded batch in ``dtype``, and the window."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ModernBertConfig(
        vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
        max_position_embeddings=256, local_attention=16, global_attn_every_n_layers=2, pad_token_id=1,
        attn_implementation="eager",
    )  # fmt: skip
    model = transformers.ModernBertModel(cfg).eval().to(dtype)
    layer = model.layers[1]
    assert layer.attention_type == "sliding_attention", cfg.layer_types
    ids, mask = _padded_batch(50, [1, 45, 30])
    attn = layer.attn
    seen, handle = _capture(attn)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask.long())
        handle.remove()
        h = seen["input"]
        heads, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
        q, k, v = attn.Wqkv(h).view(*h.shape[:2], 3, heads, d).unbind(2)
        (qp, cu, n), kp, vp = _pack(q, mask), _pack(k, mask)[0], _pack(v, mask)[0]
        theta = cfg.rope_parameters["sliding_attention"]["rope_theta"]
        inv_freq = R.rope_inv_freq(theta, d)
        torch.testing.assert_close(
            inv_freq, model.rotary_emb.sliding_attention_inv_freq.float(), rtol=0, atol=0
        )
        window = 2 * cfg.sliding_window  # local_attention: |i - j| <= local_attention // 2
        cos, sin = R.rope_cos_sin(inv_freq, n)
        kw = dict(window=window, rotary_cos=cos, rotary_sin=sin)
        if kernel:
            from fastbert import kernels

            on = _on_kernel_device
            kw = dict(kw, rotary_cos=on(cos)[0], rotary_sin=on(sin)[0])
            ctx = kernels.attention_varlen(*on(qp, kp, vp, cu, cu), n, n, d**-0.5, **kw).cpu()
        else:
            ctx = R.attention_varlen(qp, kp, vp, cu, cu, n, n, d**-0.5, **kw)
        ours = attn.Wo(ctx.reshape(ctx.shape[0], -1))
    return ours, seen["output"][mask]


@pytest.mark.parametrize("kernel", [False, True], ids=["reference", "kernel"])
def test_modernbert_sliding_attention_matches_transformers(kernel):
    """Packed RoPE + sliding-window attention (reference, and the Triton kernel) vs transformers' eager
    ModernBERT local layer on a padded batch (window 16 < the sequences)."""
    ours64, ref64 = _modernbert_attention(torch.float64, kernel=False)
    # transformers rotates q and k in fp32 even in a float64 model (apply_rotary_pos_emb: q.float(), cos/sin
    # from fp32 angles): its float64 output carries fp32 roundings of q and k, hence the fp32 floor here
    assert_close(ours64, None, ref64, torch.float32, what="modernbert reference (float64, fp32 RoPE)")
    ours32, hf32 = _modernbert_attention(torch.float32, kernel=kernel)
    what = f"modernbert {'kernel' if kernel else 'reference'} (fp32)"
    assert_close(ours32, hf32, ref64, torch.float32, what=what)


def test_window_reference_in_chunks_equals_one_chunk():
    """The banded CPU path computes a long sequence in chunks of queries against only the keys their window
    reaches: chunks smaller than the sequence give what one chunk over it gives."""
    torch.manual_seed(0)
    n, heads, d = 700, 2, 16
    q, k, v = (torch.randn(n, heads, d, dtype=torch.float64) for _ in range(3))
    cu = _cu([n], "cpu")
    one = R.attention_varlen(q, k, v, cu, cu, n, n, 0.25, window=64, chunk=n)
    banded = R.attention_varlen(q, k, v, cu, cu, n, n, 0.25, window=64, chunk=100)
    torch.testing.assert_close(banded, one, rtol=0, atol=1e-12)


@requires_cuda
def test_opcheck_with_options():
    """The custom op's schema and fake impl with every option given (torch.compile traces this)."""
    from fastbert import kernels  # noqa: F401

    heads, d = 2, 64
    q, k, v = torch.randn(12, 3, heads, d, dtype=torch.float16, device="cuda").unbind(1)
    cu = _cu([5, 7], "cuda")
    kw = _options(OPTIONS["all"], heads, d, "cuda")
    args = (
        q,
        k,
        v,
        cu,
        cu,
        7,
        7,
        0.125,
        False,
        kw["window"],
        kw["rel_bias"],
        kw["rotary_cos"],
        kw["rotary_sin"],
    )
    torch.library.opcheck(torch.ops.fastbert.attention_varlen.default, args)
