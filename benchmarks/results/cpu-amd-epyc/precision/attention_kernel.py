"""Issue 28: MiniLM's forward with torch's SDPA against ``attention_kernel_prototype.cpp`` (through ctypes),
interleaved in one process (int8_profile.md, "An attention kernel of its own").

    python attention_kernel.py ./attn.so dense|skewed [int8] [rounds]

``dense``: 32 x 128, no padding (the padded SDPA call); ``skewed``: 32 rows of lengths uniform in 8..256,
packed (the per-sequence SDPA loop). The swap of fastbert.core.ops' function is this measurement's only.
"""

import ctypes
import statistics
import sys
import time
import warnings

import torch

import fastbert
import fastbert.core.ops as ops
from fastbert.hub import embedded_model_path

warnings.simplefilter("ignore")
PTR, INT = ctypes.c_void_p, ctypes.c_int64


def kernel(path):
    fn = ctypes.CDLL(path).fb_attention_f32
    fn.argtypes = [PTR] * 6 + [INT] * 11 + [ctypes.c_float, INT, ctypes.c_int]

    def call(q, k, v, cu, longest, scale):
        """q, k, v (tokens, heads, D) views; cu (sequences + 1,) int64."""
        out = torch.empty(q.shape[0], q.shape[1], v.shape[2])
        fn(
            q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), cu.data_ptr(), cu.data_ptr(),
            cu.numel() - 1, q.shape[1], q.shape[2], q.stride(0), q.stride(1), k.stride(0), k.stride(1),
            v.stride(0), v.stride(1), out.stride(0), out.stride(1), scale, longest, torch.get_num_threads(),
        )  # fmt: skip
        return out

    return call


def main(path, workload, quantization=None, rounds=8):
    call = kernel(path)
    use = {"kernel": False}
    timings = {"sdpa": [], "kernel": []}
    if workload == "dense":
        name, orig = "sdpa_padded", ops.sdpa_padded

        def swapped(q, k, v, spec, scale, dropout_p=0.0, bias=None):
            t = time.perf_counter()
            if use["kernel"]:
                b, length = q.shape[:2]
                cu = torch.arange(0, b * length + 1, length, dtype=torch.int64)
                flat = [x.flatten(0, 1) for x in (q, k, v)]  # views: the batch and token strides agree
                out = call(*flat, cu, length, scale).view(q.shape)
            else:
                out = orig(q, k, v, spec, scale, dropout_p, bias)
            timings["kernel" if use["kernel"] else "sdpa"].append(time.perf_counter() - t)
            return out
    else:
        name, orig = "_sdpa_packed", ops._sdpa_packed

        def swapped(q, k, v, spec, scale, dropout_p=0.0):
            t = time.perf_counter()
            if use["kernel"]:
                qp = spec.q_packing
                out = call(q, k, v, qp.cu_seqlens.to(torch.int64), max(qp.seqlens_host), scale)
            else:
                out = orig(q, k, v, spec, scale, dropout_p)
            timings["kernel" if use["kernel"] else "sdpa"].append(time.perf_counter() - t)
            return out

    setattr(ops, name, swapped)
    model = fastbert.AutoModel.from_pretrained(embedded_model_path(), quantization=quantization).eval()
    for calls in timings.values():
        calls.clear()  # int8's calibration forwards ran through the swap too
    g = torch.Generator().manual_seed(0)
    if workload == "dense":
        ids = torch.randint(1000, 20000, (32, 128), generator=g)
        mask = torch.ones_like(ids)
    else:
        lengths = torch.randint(8, 257, (32,), generator=g)
        ids = torch.randint(1000, 20000, (32, 256), generator=g)
        mask = (torch.arange(256)[None] < lengths[:, None]).long()
    forwards = {"sdpa": [], "kernel": []}
    with torch.inference_mode():
        outs = {}
        for which in ("sdpa", "kernel"):
            use["kernel"] = which == "kernel"
            outs[which] = model(input_ids=ids, attention_mask=mask).last_hidden_state
        print("max difference", ((outs["sdpa"] - outs["kernel"]) * mask[..., None]).abs().max().item())
        for calls in timings.values():
            calls.clear()  # and the first forwards, which warm up
        for _ in range(rounds):
            for which in ("sdpa", "kernel"):
                use["kernel"] = which == "kernel"
                t = time.perf_counter()
                model(input_ids=ids, attention_mask=mask)
                forwards[which].append(time.perf_counter() - t)
    for which in ("sdpa", "kernel"):
        per_call = statistics.median(timings[which]) * 1e3
        forward = statistics.median(forwards[which]) * 1e3
        print(f"{which}: attention per call {per_call:.2f} ms (median), forward {forward:.1f} ms (median)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        args[0],
        args[1],
        args[2] if len(args) > 2 and args[2] != "none" else None,
        int(args[3]) if len(args) > 3 else 8,
    )
