"""Attention at MiniLM's dense 32x128 shape (12 heads of 32) on the CPU, each variant one call, interleaved,
min of 10: the numbers in int8_profile.md's Zen 4 section. Run: python3 attention_variants.py"""

import time

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

torch.set_num_threads(2)
B, H, S, D = 32, 12, 128, 32
scale = D**-0.5
qkv = torch.randn(B, S, 3, H, D)  # the fused QKV output's layout
q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # strided (B, H, S, D) views, as the model calls SDPA
qc, kc, vc = (t.contiguous() for t in (q, k, v))
qb, kb, vb = (t.to(torch.bfloat16) for t in (qc, kc, vc))


def sdpa_views():
    return F.scaled_dot_product_attention(q, k, v)


def sdpa_contiguous():
    return F.scaled_dot_product_attention(qc, kc, vc)


def sdpa_bf16():
    return F.scaled_dot_product_attention(qb, kb, vb)


def sdpa_bf16_converting():
    bf = torch.bfloat16
    return F.scaled_dot_product_attention(q.to(bf), k.to(bf), v.to(bf)).float()


def math_whole_batch():
    return torch.matmul(qc * scale, kc.transpose(-1, -2)).softmax(-1) @ vc


def baddbmm_chunks(n):
    def run():
        out = torch.empty_like(qc)
        q3, k3 = qc.view(B * H, S, D), kc.view(B * H, S, D).transpose(1, 2)
        v3, o3 = vc.view(B * H, S, D), out.view(B * H, S, D)
        buf = torch.empty(n * H, S, S)
        for i in range(0, B * H, n * H):
            s = torch.baddbmm(buf, q3[i : i + n * H], k3[i : i + n * H], beta=0, alpha=scale)
            torch.softmax(s, -1, out=s)
            torch.bmm(s, v3[i : i + n * H], out=o3[i : i + n * H])
        return out

    run.__name__ = f"baddbmm_{n}_sequences"
    return run


def math_bf16_2_sequences():
    out = torch.empty_like(qb)
    for i in range(0, B, 2):
        s = torch.matmul(qb[i : i + 2], kb[i : i + 2].transpose(-1, -2)).float().mul_(scale)
        torch.matmul(s.softmax(-1).to(torch.bfloat16), vb[i : i + 2], out=out[i : i + 2])
    return out


_flex = torch.compile(flex_attention)
_math = torch.compile(lambda a, b, c: (a @ b.transpose(-1, -2) * scale).softmax(-1) @ c)


def flex_compiled():
    return _flex(qc, kc, vc)


def math_compiled():
    return _math(qc, kc, vc)


fns = [sdpa_views, sdpa_contiguous, sdpa_bf16, sdpa_bf16_converting, math_whole_batch]
fns += [baddbmm_chunks(n) for n in (1, 2, 4, 8)] + [math_bf16_2_sequences, flex_compiled, math_compiled]
ref = sdpa_contiguous()
for f in fns:
    print(f.__name__, "max abs error", (f().float() - ref).abs().max().item())
times = {f.__name__: [] for f in fns}
for _ in range(10):
    for f in fns:
        t = time.perf_counter()
        f()
        times[f.__name__].append(time.perf_counter() - t)
for name, ts in times.items():
    print(f"{name}: {min(ts) * 1e3:.2f} ms")
