"""Compile fastbert's kernels for an H100 (sm_90) without a GPU: Triton front end, PTX, ptxas.

Run as a script in a process *without* TRITON_INTERPRET (test_compile_hopper.py does that); it
prints one line per kernel variant and exits non-zero if any fails to compile. This catches what
the interpreter cannot (typing, layouts, unsupported ops, shared memory of the fixed configs).
"""

from __future__ import annotations

import os
import sys

if os.environ.get("TRITON_INTERPRET", "0") == "1":
    raise SystemExit("run without TRITON_INTERPRET")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from fastbert.kernels import activation, attention, embedding, layernorm  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
SMEM_LIMIT = 232448  # bytes of shared memory a block may use on H100


def compile_kernel(kernel, types: dict, consts: dict, num_warps: int, num_stages: int):
    fn = kernel
    while not isinstance(fn, JITFunction):  # unwrap an Autotuner
        fn = fn.fn
    signature = {n: "constexpr" if n in consts else types.get(n, "i32") for n in fn.arg_names}
    src = ASTSource(fn, signature, constexprs=consts)
    return triton.compile(src, target=TARGET, options={"num_warps": num_warps, "num_stages": num_stages})


def variants():
    for dt in ("fp16", "bf16", "fp32"):
        p = f"*{dt}"
        yield (f"layernorm {dt} gelu", layernorm._layernorm_fwd_kernel,
               dict(X=p, R=p, B=p, W=p, LB=p, Y=p, eps="fp32"),
               dict(HAS_RES=True, HAS_BIAS=True, ACT=1, BLOCK_M=4, BLOCK_N=1024), 8, 1)  # fmt: skip
        yield (f"bias_act {dt} tanh-gelu", activation._bias_act_kernel, dict(X=p, B=p, Y=p),
               dict(HAS_BIAS=True, ACT=2, BLOCK_M=8, BLOCK_N=1024), 8, 1)  # fmt: skip
        yield (f"embed_layernorm {dt}", embedding._embed_layernorm_kernel,
               dict(IDS="*i64", POS="*i64", TT="*i64", WE=p, PE=p, TE=p, W=p, LB=p, Y=p, eps="fp32"),
               dict(HAS_POS=True, HAS_TT=True, BLOCK_M=4, BLOCK_N=1024), 8, 1)  # fmt: skip
    for dt, d, varlen, kpm, causal in (("fp16", 64, True, False, False), ("bf16", 80, False, True, True),
                                       ("fp32", 128, True, False, True)):  # fmt: skip
        p = f"*{dt}"
        types = dict(Q=p, K=p, V=p, O=p, KPM="*u8" if kpm else p, CU_Q="*i32" if varlen else p,
                     CU_K="*i32" if varlen else p, qk_scale="fp32")  # fmt: skip
        if dt == "fp32":
            meta = dict(attention._FP32_META)
        else:
            cfg = attention._CONFIGS[1]
            meta = dict(cfg.kwargs, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        nw, ns = meta.pop("num_warps"), meta.pop("num_stages")
        consts = dict(HEAD_DIM=d, BLOCK_D=max(16, triton.next_power_of_2(d)), IS_VARLEN=varlen, HAS_KPM=kpm,
                      IS_CAUSAL=causal, IEEE=dt == "fp32", **meta)  # fmt: skip
        yield (f"attention {dt} D={d} varlen={varlen} kpm={kpm} causal={causal}", attention._attn_fwd_kernel,
               types, consts, nw, ns)  # fmt: skip


def main() -> int:
    failed = 0
    for name, kernel, types, consts, nw, ns in variants():
        try:
            k = compile_kernel(kernel, types, consts, nw, ns)
            smem = k.metadata.shared
            ok = smem <= SMEM_LIMIT
            failed += not ok
            print(f"{'ok' if ok else 'FAIL'} {name}: shared memory {smem} B")
        except Exception as e:  # report every variant, then fail
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
