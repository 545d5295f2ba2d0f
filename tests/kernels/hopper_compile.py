"""Compile fastbert's kernels for an H100/H200 (sm_90) as they are launched, without a GPU.

Run as a script in a process *without* TRITON_INTERPRET (test_compile_hopper.py does that, against the
installed triton and, when given, triton 3.6). The public kernel functions are called on CPU tensors
of realistic shapes and layouts (a fused QKV output's views, BERT-base sizes) with the one launch
function, ``fastbert.kernels._compat.launch``, replaced by a recorder: so each recorded launch has
exactly the arguments, strides, alignments and constexprs a real launch gets. Each one is then
specialised by Triton's own binder for the CUDA backend (pointer alignment 16, ints equal to 1 or
divisible by 16, ``do_not_specialize`` honoured), compiled for every config the autotuner may pick
after pruning, and assembled by Triton's ptxas (its ``-v`` log read). It fails (exit status 1) on any compile error, any register
spill (ptxas ``-v``), shared memory above Hopper's 227 KB per block, an fp32 LayerNorm/attention that
uses approximate division or square root, or two lengths of one kernel that would compile twice.

Each binary's line says whether its PTX uses wgmma (Hopper's warpgroup MMA) and its occupancy (blocks
per SM from registers, shared memory and warps); ``FASTBERT_HOPPER_TABLE=path`` writes them as a
Markdown table (committed: benchmarks/results/sm90-static/). Attention is compiled at head dims 32
(MiniLM, bge-small), 64 and 128.

The tier CI runs compiles what BERT launches (fp16 and fp32; padded attention with a mask and per-row
lengths, varlen attention; non-causal); ``FASTBERT_HOPPER_FULL=1`` adds bf16, the causal variants and the
unmasked padded one.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import re
import sys

if os.environ.get("TRITON_INTERPRET", "0") == "1":
    raise SystemExit("run without TRITON_INTERPRET")

import torch  # noqa: E402
import triton  # noqa: E402
from triton import knobs  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.jit import JITFunction, create_function_from_signature  # noqa: E402

from fastbert import kernels  # noqa: E402
from fastbert.kernels import _compat, attention  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
SMEM_LIMIT = 227 * 1024  # bytes of shared memory one block may use on sm_90 (opt-in maximum)
BACKEND = make_backend(TARGET)


# ---------------------------------------------------------------------------------------------
# record launches
# ---------------------------------------------------------------------------------------------

RECORDED: list[tuple[str, object, dict]] = []  # (label, kernel, every launch argument by name)
_label = ""


def _record(kernel, grid, *, device, wrap, **kwargs):
    RECORDED.append((_label, kernel, kwargs))


def _call(label: str, fn) -> None:
    global _label
    _label = label
    fn()


FULL = os.environ.get("FASTBERT_HOPPER_FULL", "0") == "1"


def _dtypes():
    """fp16 and fp32; bf16 too with ``FASTBERT_HOPPER_FULL=1`` (its resource report matched fp16's, config
    for config, on triton 3.6 and 3.9: the tier CI runs leaves it out to keep the suite's time)."""
    return [("fp16", torch.float16), *([("bf16", torch.bfloat16)] if FULL else []), ("fp32", torch.float32)]


def _scenarios():
    """(label, zero-argument call of a public kernel function) at the shapes the model launches."""
    mk = lambda *s, dtype: torch.randn(*s, dtype=dtype)
    for dname, dtype in _dtypes():
        for hidden in (768,):  # 1024 runs the same BLOCK_N (1024) and specialisation as 768
            t = 2 * 128
            x, r = mk(t, hidden, dtype=dtype), mk(t, hidden, dtype=dtype)
            b, w, lb = (mk(hidden, dtype=dtype) for _ in range(3))
            yield (f"add_layernorm {dname} H={hidden}",
                   lambda x=x, r=r, b=b, w=w, lb=lb: kernels.add_layernorm(x, r, b, w, lb, 1e-12))  # fmt: skip
            yield (f"bias_act_layernorm {dname} H={hidden} gelu",
                   lambda x=x, b=b, w=w, lb=lb: kernels.bias_act_layernorm(x, b, w, lb, 1e-12, "gelu"))  # fmt: skip
            xi, bi = mk(t, 4 * hidden, dtype=dtype), mk(4 * hidden, dtype=dtype)
            yield (
                f"bias_act {dname} N={4 * hidden} gelu",
                lambda xi=xi, bi=bi: kernels.bias_act(xi, bi, "gelu"),
            )
            yield from _family_rows(dname, x, r, w, mk(t, 2 * 1152, dtype=dtype))
            tables = (
                mk(30522, hidden, dtype=dtype),
                mk(512, hidden, dtype=dtype),
                mk(2, hidden, dtype=dtype),
                w,
                lb,
            )
            ids = torch.randint(0, 30522, (t,))
            pos = torch.arange(t) % 128
            tt = torch.zeros(t, dtype=torch.long)
            yield (f"embed_layernorm {dname} H={hidden}",
                   lambda ids=ids, pos=pos, tt=tt, tb=tables: kernels.embed_layernorm(ids, pos, tt, *tb, 1e-12,
                                                                                        validate=False))  # fmt: skip
        for d in (32, 64, 128):  # 32: MiniLM's, bge-small's, the embedded default's (hidden 384, 12 heads)
            heads = (384 if d == 32 else 768) // d
            for length in (128, 200):  # two buckets: one binary for both
                # (B, L, 3, heads, D) fused QKV output: q/k/v are its strided views, as the model feeds them
                q, k, v = mk(2, length, 3, heads, d, dtype=dtype).unbind(2)
                mask = torch.ones(2, length, dtype=torch.bool)
                lens = torch.tensor([length, length // 2], dtype=torch.int32)
                if FULL:  # a subset of the masked variant's code (no mask, no lengths): in the full tier
                    yield (f"attention_padded {dname} D={d} L={length}",
                               lambda q=q, k=k, v=v, s=d**-0.5: kernels.attention_padded(q, k, v, None, s))  # fmt: skip
                # what BERT launches (non-causal); the causal variants with FASTBERT_HOPPER_FULL=1
                yield (f"attention_padded {dname} D={d} L={length} mask+seqlens causal={FULL}",
                       lambda q=q, k=k, v=v, m=mask, n=lens, s=d**-0.5: kernels.attention_padded(
                           q, k, v, m, s, FULL, n))  # fmt: skip
                qkv = mk(2 * length, 3, heads, d, dtype=dtype)
                qv, kv, vv = qkv.unbind(1)
                cu = torch.tensor([0, length, 2 * length], dtype=torch.int32)
                for causal in (False, True) if FULL else (False,):
                    yield (f"attention_varlen {dname} D={d} L={length} causal={causal}",
                           lambda q=qv, k=kv, v=vv, cu=cu, n=length, c=causal, s=d**-0.5: kernels.attention_varlen(
                               q, k, v, cu, cu, n, n, s, c, validate=False))  # fmt: skip
                if d in (64, 128):  # the encoder families' variants: ModernBERT local layers, MPNet
                    yield from _family_attention(dname, d, length, qv, kv, vv, cu)


def _family_attention(dname, d, length, q, k, v, cu):
    """varlen attention with a sliding window and RoPE (ModernBERT's local layers), and with MPNet's bias."""
    from fastbert.core import attention_ref

    cos, sin = attention_ref.rope_cos_sin(attention_ref.rope_inv_freq(10000.0, d), length)
    table = attention_ref.relative_bias_table(torch.randn(32, q.shape[1]))
    yield (f"attention_varlen {dname} D={d} L={length} window+rotary",
           lambda: kernels.attention_varlen(q, k, v, cu, cu, length, length, d**-0.5, window=128,
                                            rotary_cos=cos, rotary_sin=sin, validate=False))  # fmt: skip
    yield (f"attention_varlen {dname} D={d} L={length} rel_bias",
           lambda: kernels.attention_varlen(q, k, v, cu, cu, length, length, d**-0.5, rel_bias=table,
                                            validate=False))  # fmt: skip


def _family_rows(dname, x, r, w, wide):
    """GeGLU, LayerNorm without bias, RMSNorm, word-only embeddings (ModernBERT and later encoders)."""
    yield f"glu {dname} N={wide.shape[1] // 2} gelu", lambda: kernels.glu(wide, None, "gelu")
    yield f"add_layernorm {dname} no ln_bias", lambda: kernels.add_layernorm(x, r, None, w, None, 1e-5)
    yield f"add_rmsnorm {dname} (layernorm kernel)", lambda: kernels.add_rmsnorm(x, r, None, w, 1e-6)
    yield (f"add_norm_residual {dname} no ln_bias (layernorm kernel)",
           lambda: kernels.add_norm_residual(x, r, None, w, None, 1e-5))  # fmt: skip
    ids, table = torch.randint(0, 512, (x.shape[0],)), torch.randn(512, x.shape[1], dtype=x.dtype)
    yield (f"embed_layernorm {dname} word only, no ln_bias",
           lambda: kernels.embed_layernorm(ids, None, None, table, None, None, w, None, 1e-5, validate=False))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# specialise, compile, assemble
# ---------------------------------------------------------------------------------------------


def _jit(kernel) -> JITFunction:
    fn = kernel
    while not isinstance(fn, JITFunction):  # unwrap an Autotuner
        fn = fn.fn
    return fn


def _configs(kernel, launch: dict) -> list[dict]:
    """Every argument set the recorded launch may run with: the autotuner's pruned configs, or the one given."""
    if isinstance(kernel, JITFunction):
        return [launch]
    pruned = attention._prune(kernel.configs, {}, **launch)  # as the Autotuner calls it: all by keyword
    return [dict(launch, **c.kwargs, num_warps=c.num_warps, num_stages=c.num_stages) for c in pruned]


def specialise(fn: JITFunction, launch: dict):
    """(options, signature, constexprs, attrs) exactly as ``JITFunction.run`` computes them for a launch."""
    kwargs = dict(launch, debug=False)
    for name in ("instrumentation_mode", "fpsan_homomorphic_casts"):
        if hasattr(knobs.compilation, name):
            kwargs[name] = getattr(knobs.compilation, name)
    binder = create_function_from_signature(fn.signature, fn.params, BACKEND)
    bound_args, specialization, options = binder(**kwargs)
    return fn._pack_args(BACKEND, kwargs, bound_args, specialization, options)


def compile_with_report(src, options: dict):
    """``triton.compile`` for sm_90, and (registers, spill bytes stored + loaded) from the ``ptxas -v`` log
    of Triton's own assembly (same flags as a real launch's compile)."""
    knobs.nvidia.dump_ptxas_log = True
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            k = triton.compile(src, target=TARGET, options=options)
    finally:
        knobs.nvidia.dump_ptxas_log = False
    text = log.getvalue()
    regs = re.search(r"Used (\d+) registers", text)
    if regs is None:
        raise RuntimeError(f"no ptxas -v report in Triton's log: {text[-500:]!r}")
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", text))
    return k, int(regs.group(1)), spills


TABLE: list[tuple] = []


def _occupancy(regs: int, smem: int, warps: int) -> int:
    """Resident blocks per sm_90 SM: 65,536 registers (allocated per warp in 256s), 228 KB of shared
    memory (1 KB reserved per block), 64 warps, 32 blocks."""
    regs_per_warp = -(-max(regs, 1) * 32 // 256) * 256
    by_regs = 65536 // (regs_per_warp * warps)
    by_smem = (228 * 1024) // (smem + 1024)
    return min(by_regs, by_smem, 64 // warps, 32)


def _exactness_problem(label: str, ptx: str) -> str | None:
    """fp32 LayerNorm and attention must divide (and take square roots) with IEEE rounding."""
    if "fp32" not in label:
        return None
    if "layernorm" in label and ("sqrt.approx.f32" in ptx or "sqrt.rn.f32" not in ptx):
        return "fp32 LayerNorm without sqrt.rn.f32"
    if ("layernorm" in label or "attention" in label) and "div.rn.f32" not in ptx:
        return "fp32 path without div.rn.f32"
    return None


JOBS: list[tuple] = []  # what to compile: forked workers inherit it and take indices (kernels do not pickle)


def _compile_one(i: int) -> dict:
    """Compile ``JOBS[i]`` (in a worker process) and report what the checks read: a small dict, picklable."""
    name, label, fn, signature, constexprs, attrs, options, warps = JOBS[i]
    try:
        src = ASTSource(fn, signature, constexprs, attrs)
        k, regs, spills = compile_with_report(src, options)
    except Exception as e:  # report every variant, then fail
        return dict(name=name, error=f"{type(e).__name__}: {str(e)[:2000]}")
    ptx = k.asm["ptx"]
    return dict(name=name, regs=regs, spills=spills, smem=k.metadata.shared, wgmma="wgmma" in ptx,
                exact=_exactness_problem(label, ptx), warps=warps)  # fmt: skip


def _workers() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(os.cpu_count() or 1, 8))


def main() -> int:
    print(f"triton {triton.__version__}, torch {torch.__version__}, target {TARGET}")
    _compat.launch = _record
    os.environ.pop(_compat.CONFIG_ENV, None)  # the autotuned path, as on a GPU
    for label, fn in _scenarios():
        _call(label, fn)
    failed = 0
    done: dict[tuple, str] = {}  # compiled key -> the first label that compiled it
    binaries: dict[tuple[str, str], set] = {}  # (label without L=..., config) -> keys compiled
    jobs = JOBS
    for label, kernel, launch in RECORDED:
        fn = _jit(kernel)
        for cfg in _configs(kernel, launch):
            name = (
                f"{label} [{cfg.get('BLOCK_M')}x{cfg.get('BLOCK_N')} w{cfg.get('num_warps')}"
                f" s{cfg.get('num_stages', 3)}]"
            )
            try:
                options, signature, constexprs, attrs = specialise(fn, cfg)
            except Exception as e:  # report every variant, then fail
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {str(e)[:2000]}")
                continue
            key = (fn.__name__, str(sorted(signature.items())), str(sorted(constexprs.items())),
                   str(sorted(attrs.items())), str(sorted(options.__dict__.items())))  # fmt: skip
            tile = tuple(cfg.get(n) for n in ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages"))
            binaries.setdefault((re.sub(r" L=\d+", "", label), str(tile)), set()).add(key)
            if key in done:
                continue
            done[key] = name
            jobs.append(
                (name, label, fn, signature, constexprs, attrs, options.__dict__, cfg.get("num_warps", 4))
            )
    # the binaries compile independently: one worker per core (forked: the recorded launches are inherited)
    workers = _workers()
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            reports = pool.map(_compile_one, range(len(jobs)), chunksize=1)
    else:
        reports = [_compile_one(i) for i in range(len(jobs))]
    for r in reports:
        name = r["name"]
        if "error" in r:
            failed += 1
            print(f"FAIL {name}: {r['error']}")
            continue
        regs, spills, smem, warps = r["regs"], r["spills"], r["smem"], r["warps"]
        problems = []
        if spills:
            problems.append(f"{spills} B of register spills")
        if smem > SMEM_LIMIT:
            problems.append(f"shared memory {smem} B > {SMEM_LIMIT} B")
        if r["exact"]:
            problems.append(r["exact"])
        failed += bool(problems)
        verdict = "FAIL" if problems else "ok"
        print(f"{verdict} {name}: shared {smem} B, {regs} registers, spills {spills} B, wgmma {r['wgmma']},"
              f" occupancy {_occupancy(regs, smem, warps)} blocks/SM"
              + (f" -- {'; '.join(problems)}" if problems else ""))  # fmt: skip
        TABLE.append((name, regs, spills, smem, warps, _occupancy(regs, smem, warps), r["wgmma"]))
    for (label, cfg), keys in sorted(binaries.items()):
        if len(keys) > 1:  # a length was specialised: a new shape would compile again
            failed += 1
            print(f"FAIL {label} {cfg}: lengths 128 and 200 give {len(keys)} binaries")
    print(f"{len(done)} binaries compiled, {failed} failure(s)")
    table = os.environ.get("FASTBERT_HOPPER_TABLE")
    if table:  # the committed table: benchmarks/results/sm90-static/kernels-tier-ci.md, kernels-full.md
        with open(table, "w", encoding="utf-8") as f:
            f.write(f"# fastbert kernels compiled for sm_90 without a GPU (triton {triton.__version__})\n\n")
            f.write(
                "Registers and spills from ptxas -v, wgmma from the PTX, occupancy = resident blocks per SM "
                "from registers (64K per SM), shared memory (228 KB) and warps (64 per SM).\n\n"
            )
            f.write("| binary | registers | spills (B) | shared (B) | warps | blocks/SM | wgmma |\n")
            f.write("| --- | --- | --- | --- | --- | --- | --- |\n")
            for row in TABLE:
                f.write("| " + " | ".join(str(c) for c in row) + " |\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
