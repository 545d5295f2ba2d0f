"""fp32 paths: what is exact, and why the one approximate step left is within the parity rule.

LayerNorm (and the embedding's LayerNorm) in fp32 use IEEE division and square root, and fp32 attention
ends with an IEEE division (checked in the sm_90 PTX by hopper_compile.py). Attention's base-2
exponential stays the hardware's ``ex2.approx.f32`` (relative error at most 2 ulps, 2^-22; CUDA's
own ``exp2f`` is no better): this file emulates that error in a 12-layer fp32 encoder and shows it
stays within ``fastbert.core.tolerances``' rule against a float64 reference, beside torch's plain fp32.
"""

from __future__ import annotations

import math

import pytest
import torch

from fastbert.core import tolerances

EX2_REL_ERROR = 2.0**-22  # ex2.approx.f32: at most 2 ulps of a float32 in [1, 2)


def _encoder(x, layers, mask, exp_error: str | None, gen: torch.Generator | None, rel_error=EX2_REL_ERROR):
    """A BERT-shaped encoder (post-LN, GELU) in x's dtype; ``exp_error`` perturbs every softmax exponential
    by up to ``rel_error``: "random" (independent errors) or "by-key" (+ on even keys, - on odd ones: a
    systematic error that the softmax normalisation does not cancel, unlike one common factor)."""
    b, length, hidden = x.shape
    heads = 4
    d = hidden // heads
    for wqkv, wo, w1, w2, g1, g2 in layers:
        qkv = (x @ wqkv).view(b, length, 3, heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        s = (q @ k.transpose(-1, -2)) * (d**-0.5)
        s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        p = torch.exp2((s - s.amax(-1, keepdim=True)) * math.log2(math.e))
        if exp_error == "random":
            u = torch.rand(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) * 2 - 1
            p = p * (1 + u * rel_error)
        elif exp_error == "by-key":
            sign = 1 - 2 * (torch.arange(length) % 2).to(p.dtype)
            p = p * (1 + sign * rel_error)
        att = (p @ v) / p.sum(-1, keepdim=True)
        att = att.permute(0, 2, 1, 3).reshape(b, length, hidden)
        x = torch.nn.functional.layer_norm(x + att @ wo, (hidden,), g1, None, 1e-12)
        h = torch.nn.functional.gelu(x @ w1)
        x = torch.nn.functional.layer_norm(x + h @ w2, (hidden,), g2, None, 1e-12)
    return x


@pytest.mark.parametrize("exp_error", ["random", "by-key"])
def test_fp32_attention_exp2_error_within_rule_over_12_layers(exp_error):
    gen = torch.Generator().manual_seed(0)
    hidden, length, b = 64, 48, 2
    mk = lambda *s, std=0.02: torch.randn(*s, generator=gen, dtype=torch.float64) * std  # BERT init scale
    layers = [
        (mk(hidden, 3 * hidden, std=0.2), mk(hidden, hidden, std=0.1), mk(hidden, 4 * hidden, std=0.1),
         mk(4 * hidden, hidden, std=0.05), 1 + mk(hidden), 1 + mk(hidden))
        for _ in range(12)
    ]  # fmt: skip
    x = torch.randn(b, length, hidden, generator=gen, dtype=torch.float64)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, 30:] = False  # a padded row
    as32 = lambda layer: tuple(t.float() for t in layer)
    ref = _encoder(x, layers, mask, None, None)
    torch_out = _encoder(x.float(), [as32(w) for w in layers], mask, None, None)
    ours = _encoder(x.float(), [as32(w) for w in layers], mask, exp_error, gen)
    valid = mask[:, :, None].expand_as(ref)
    verdict = tolerances.assert_close(
        ours, torch_out, ref, torch.float32, mask=valid, what="emulated ex2.approx"
    )
    assert verdict.torch_error > 0 and verdict.error > 0  # a comparison that measured something
    # 2^-22 gives about torch's own fp32 error here; 64 times more (2^-16) breaks the rule: the comparison
    # can fail
    worse = _encoder(x.float(), [as32(w) for w in layers], mask, exp_error, gen, rel_error=64 * EX2_REL_ERROR)
    assert not tolerances.judge(worse, torch_out, ref, torch.float32, mask=valid).ok
