"""A lever for the bf16 dense row (issue 28), measured, not in the package: the bf16 MiniLM forward at 32x128
with attention as torch.matmul + softmax + matmul in bf16, two sequences at a time, instead of torch SDPA's CPU
flash kernel (patched into fastbert.core.attention_ref for the measurement only), interleaved; errors against
the fp32 model's output.

    python3 bf16_attention_bmm.py            # dense 32x128
    python3 bf16_attention_bmm.py skewed     # 32 x 8..256, packed
"""

import statistics
import time

import torch
import torch.nn.functional as RF

import fastbert
from fastbert.core import attention_ref, ops
from fastbert.hub import embedded_model_path

torch.set_num_threads(2)


def mine(q, k, v, attn_mask=None, dropout_p=0.0, scale=None, is_causal=False, **kw):
    if q.dtype != torch.bfloat16 or attn_mask is not None or is_causal or dropout_p or q.dim() != 4:
        return RF.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale, is_causal=is_causal, **kw
        )
    B, H, L, D = q.shape
    sc = scale if scale is not None else D**-0.5
    out = q.new_empty(B, H, L, v.shape[-1])
    for b in range(0, B, 2):
        s = torch.matmul(q[b : b + 2], k[b : b + 2].transpose(-1, -2))
        s = torch.softmax(s.mul_(sc), dim=-1)
        torch.matmul(s, v[b : b + 2], out=out[b : b + 2])
    return out


class FNS:
    def __init__(self, sdpa):
        self.sdpa = sdpa

    def __getattr__(self, n):
        return self.sdpa if n == "scaled_dot_product_attention" else getattr(RF, n)


m32 = fastbert.BertModel.from_pretrained(embedded_model_path()).eval()
m16 = fastbert.BertModel.from_pretrained(embedded_model_path(), torch_dtype=torch.bfloat16).eval()
import sys  # noqa: E402

g = torch.Generator().manual_seed(0)
ids = torch.randint(1000, 20000, (32, 128 if "skewed" not in sys.argv else 256), generator=g)
mask = torch.ones_like(ids)
if (
    "skewed" in sys.argv
):  # 32 rows of 8..256 real tokens (the bench's skewed batch): packed, one SDPA call a sequence
    for row, n in enumerate(torch.randint(8, 257, (32,), generator=g).tolist()):
        mask[row, n:] = 0
with torch.inference_mode():
    ref = m32(input_ids=ids, attention_mask=mask).last_hidden_state.double()


def run(variant):
    attention_ref.F = ops.F = FNS(mine) if variant else RF
    with torch.inference_mode():
        t = time.perf_counter()
        o = m16(input_ids=ids, attention_mask=mask).last_hidden_state
        return time.perf_counter() - t, o


try:
    _, a = run(False)
    _, b = run(True)
    for name, o in (("sdpa bf16", a), ("bmm bf16", b)):
        valid = mask.bool()  # real tokens only
        e = (o.double() - ref).abs()[valid]
        cos = torch.nn.functional.cosine_similarity(o.double(), ref, dim=-1)[valid]
        print(
            f"{name}: max abs err to fp32 {e.max():.4f}, mean {e.mean():.5f}, min token cos {cos.min():.5f}, mean {cos.mean():.6f}"
        )
    ts = {False: [], True: []}
    for r in range(12):
        for v in (False, True) if r % 2 == 0 else (True, False):
            ts[v].append(run(v)[0])
    p, q = statistics.median(ts[False]), statistics.median(ts[True])
    print(
        f"bf16 {'skewed 32 x 8..256' if 'skewed' in sys.argv else '32x128'} forward: sdpa {p * 1e3:.1f} ms, bmm {q * 1e3:.1f} ms, sdpa/bmm {p / q:.3f}; per round",
        " ".join(f"{x / y:.3f}" for x, y in zip(ts[False], ts[True])),
    )
finally:
    attention_ref.F = ops.F = RF
