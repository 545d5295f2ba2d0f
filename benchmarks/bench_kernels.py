"""Kernel micro-benchmark: every fastbert kernel against its torch reference and torch.compile of it.

Usage (GPU):     python benchmarks/bench_kernels.py --out benchmarks/results/h100
Smoke run (CPU): TRITON_INTERPRET=1 python benchmarks/bench_kernels.py --tiny --out /tmp/bench

For each kernel x shape x dtype it prints and records, per provider ("triton", "torch" = the
eager reference of ``fastbert.core.ops``, "torch_compile" = ``torch.compile`` of that reference):
median time (ms, with 20th/80th percentiles) and
- memory-bound kernels: achieved GB/s = (bytes read + bytes written) / time, with the bytes per
  kernel written out in ``_bytes_*`` below, and the fraction of the device-to-device copy
  bandwidth measured in the same run (``copy`` row: 2 x buffer bytes / time of ``dst.copy_(src)``);
- attention: TFLOP/s = 4 * heads * D * sum_b(visible (query, key) pairs of sequence b) / time
  (two matmuls, q.k^T and p.v, 2 FLOPs per multiply-add; non-causal: pairs = Lq * Lk, causal:
  the pairs under the diagonal). For a varlen batch the same useful FLOPs are used for every
  provider, so TFLOP/s ratios are time ratios. Attention baselines: "sdpa" =
  ``F.scaled_dot_product_attention`` on the padded (B, heads, L, D) batch (flash backend when
  there is no mask; with a key-padding mask for the varlen batch, where flash cannot take one),
  "sdpa_compile" = torch.compile of it.
Targets (H100): memory-bound >= 80 % of copy bandwidth and >= 1.5x eager torch; attention >= SDPA
flash at B=32, L=128/512, 12 heads, D=64, and >= 2x padded SDPA on a varlen batch of lengths 16-512.

Writes ``kernels.csv`` row by row as each row is measured (``--csv``, default ``<out>/kernels.csv``;
one row per kernel x shape x dtype x provider, each with device name, torch/triton versions and UTC
date: a killed run keeps what it measured), then ``kernels.json`` and, when matplotlib is installed,
``kernels_speedup.png`` (speed-up over eager torch per case) to --out. ``--time-budget`` stops
starting new cases after that many seconds. The cases behind the targets come first (per dtype:
attention, then the memory-bound kernels at BERT-base's hidden size). On CUDA the unmasked padded
attention baseline is SDPA with its flash backend forced (provider ``sdpa_flash``).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if not torch.cuda.is_available():  # kernels can only run under the interpreter; set it before triton
    os.environ.setdefault("TRITON_INTERPRET", "1")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


def time_ms(fn: Callable[[], object], cuda: bool, quick: bool) -> tuple[float, float, float]:
    """(median, 20th, 80th percentile) milliseconds of ``fn()``."""
    if cuda:
        import triton.testing

        q = triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
        return float(q[0]), float(q[1]), float(q[2])
    fn()  # warm-up (compiles/interprets once)
    reps = 2 if quick else 5
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return statistics.median(ts), ts[int(0.2 * (reps - 1))], ts[int(round(0.8 * (reps - 1)))]


def copy_bandwidth(device: str, cuda: bool, quick: bool) -> float:
    """Device-to-device copy bandwidth in GB/s: 2 x bytes / time of ``dst.copy_(src)``."""
    n = (1 << 20) if quick else (1 << 30)  # bytes
    src = torch.empty(n, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    ms, _, _ = time_ms(lambda: dst.copy_(src), cuda, quick)
    return 2 * n / (ms * 1e-3) / 1e9


# ---------------------------------------------------------------------------------------------
# cases: (kernel, shape label, dtype, {provider: fn}, metric, amount)
# ---------------------------------------------------------------------------------------------


def _bytes_add_layernorm(t, h, es):  # read x, residual; write y; bias + LN weight + LN bias
    return 3 * t * h * es + 3 * h * es


def _bytes_bias_act(t, n, es):  # read x, write y, bias
    return 2 * t * n * es + n * es


def _bytes_bias_act_layernorm(t, h, es):  # read x, write y, bias + LN weight + LN bias
    return 2 * t * h * es + 3 * h * es


def _bytes_embed(t, h, es):  # three gathered rows read, one row written, three int64 ids per token
    return 4 * t * h * es + 3 * 8 * t + 2 * h * es


def _attn_flops(heads, d, lens_q, lens_k, causal):
    pairs = 0
    for lq, lk in zip(lens_q, lens_k):
        if causal:  # query i sees keys j <= i + lk - lq
            pairs += sum(max(0, min(lk, i + lk - lq + 1)) for i in range(lq))
        else:
            pairs += lq * lk
    return 4 * heads * d * pairs


def build_cases(args, device: str, compile_ok: bool):
    from fastbert import kernels as tri
    from fastbert.core.ops import KERNEL_REFERENCES as ref

    mk = lambda *s, dtype: torch.randn(*s, dtype=dtype, device=device)
    cases = []
    d = 64  # attention head dim (BERT-base)
    sdpa = lambda q, k, v, m=None: F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=d**-0.5)
    cuda = str(device).startswith("cuda")

    def sdpa_flash(q, k, v):  # SDPA's flash backend on CUDA (plain SDPA elsewhere: there is none)
        if not cuda:
            return sdpa(q, k, v)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            return sdpa(q, k, v)

    flash_name = "sdpa_flash" if cuda else "sdpa"

    def providers(triton_fn, torch_fn):
        p = {"triton": triton_fn, "torch": torch_fn}
        if compile_ok:
            p["torch_compile"] = ("compile", torch_fn)
        return p

    if args.tiny:
        tokens, hiddens, attn_batch, attn_lens, heads = [7], [36], 2, [16, 32], 2
    else:
        tokens, hiddens, attn_batch, attn_lens, heads = (
            [16384, 4096],
            [768, 384, 1024],  # BERT-base first: the targets are read there
            32,
            [512, 128, 256, 64],  # L=512 first: the attention target
            12,
        )

    for dname in args.dtypes:
        dtype = DTYPES[dname]
        es = torch.finfo(dtype).bits // 8
        # attention targets are fp16/bf16; fp32 correctness lives in the tests
        attn_cases = [] if dname == "fp32" and not args.tiny else attn_lens
        for length in attn_cases:
            b = attn_batch
            qkv = mk(b, length, 3, heads, d, dtype=dtype)
            q, k, v = qkv.unbind(2)  # (B, L, heads, D) strided views, as the model feeds them
            qt, kt, vt = (mk(b, heads, length, d, dtype=dtype) for _ in range(3))  # SDPA's layout
            flops = _attn_flops(heads, d, [length] * b, [length] * b, False)
            p = {
                "triton": lambda q=q, k=k, v=v: tri.attention_padded(q, k, v, None, d**-0.5),
                flash_name: lambda qt=qt, kt=kt, vt=vt: sdpa_flash(qt, kt, vt),
            }
            if compile_ok:
                p["sdpa_compile"] = ("compile", p[flash_name])
            cases.append(
                ("attention_padded", f"B={b},L={length},h={heads},D={d}", dname, p, "TFLOP/s", flops)
            )
        # varlen batch, lengths uniform in 16..512 (seeded), vs SDPA on the padded batch with a mask
        if attn_cases:
            cases.append(
                _varlen_case(args, mk, dname, dtype, attn_batch, heads, d, sdpa, tri, compile_ok, device)
            )
        for t in tokens:
            for h in hiddens:
                x, r = mk(t, h, dtype=dtype), mk(t, h, dtype=dtype)
                b, w, lb = mk(h, dtype=dtype), mk(h, dtype=dtype), mk(h, dtype=dtype)
                cases.append(("add_layernorm", f"T={t},H={h}", dname, providers(
                    lambda x=x, r=r, b=b, w=w, lb=lb: tri.add_layernorm(x, r, b, w, lb, 1e-12),
                    lambda x=x, r=r, b=b, w=w, lb=lb: ref.add_layernorm(x, r, b, w, lb, 1e-12),
                ), "GB/s", _bytes_add_layernorm(t, h, es)))  # fmt: skip
                cases.append(("bias_act_layernorm", f"T={t},H={h}", dname, providers(
                    lambda x=x, b=b, w=w, lb=lb: tri.bias_act_layernorm(x, b, w, lb, 1e-12, "gelu"),
                    lambda x=x, b=b, w=w, lb=lb: ref.bias_act_layernorm(x, b, w, lb, 1e-12, "gelu"),
                ), "GB/s", _bytes_bias_act_layernorm(t, h, es)))  # fmt: skip
                n = 4 * h
                xi, bi = mk(t, n, dtype=dtype), mk(n, dtype=dtype)
                cases.append(("bias_act(gelu)", f"T={t},N={n}", dname, providers(
                    lambda xi=xi, bi=bi: tri.bias_act(xi, bi, "gelu"),
                    lambda xi=xi, bi=bi: ref.bias_act(xi, bi, "gelu"),
                ), "GB/s", _bytes_bias_act(t, n, es)))  # fmt: skip
                vocab = 1000 if args.tiny else 30522
                tables = (mk(vocab, h, dtype=dtype), mk(512, h, dtype=dtype), mk(2, h, dtype=dtype),
                          mk(h, dtype=dtype), mk(h, dtype=dtype))  # fmt: skip
                ids = torch.randint(0, vocab, (t,), device=device)
                pos = torch.arange(t, device=device) % min(512, t)
                tt = torch.randint(0, 2, (t,), device=device)
                cases.append(("embed_layernorm", f"T={t},H={h}", dname, providers(
                    lambda ids=ids, pos=pos, tt=tt, tb=tables: tri.embed_layernorm(ids, pos, tt, *tb, 1e-12, validate=False),
                    lambda ids=ids, pos=pos, tt=tt, tb=tables: ref.embed_layernorm(ids, pos, tt, *tb, 1e-12),
                ), "GB/s", _bytes_embed(t, h, es)))  # fmt: skip

    return cases


def _varlen_case(args, mk, dname, dtype, b, heads, d, sdpa, tri, compile_ok, device):
    """attention_varlen on lengths uniform in 16..512 (seeded) against SDPA on the padded, masked batch."""
    gen = torch.Generator().manual_seed(0)
    lo, hi = (4, 16) if args.tiny else (16, 512)
    lens = torch.randint(lo, hi + 1, (b,), generator=gen).tolist()
    lmax = max(lens)
    qkv = mk(sum(lens), 3, heads, d, dtype=dtype)
    q, k, v = qkv.unbind(1)
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)
    qt, kt, vt = (mk(b, heads, lmax, d, dtype=dtype) for _ in range(3))
    mask = (torch.arange(lmax)[None, :] < torch.tensor(lens)[:, None]).to(device)[:, None, None, :]
    flops = _attn_flops(heads, d, lens, lens, False)
    p = {
        "triton": lambda q=q, k=k, v=v, cu=cu, m=lmax: tri.attention_varlen(
            q, k, v, cu, cu, m, m, d**-0.5, validate=False
        ),
        "sdpa": lambda qt=qt, kt=kt, vt=vt, mask=mask: sdpa(qt, kt, vt, mask),
    }
    if compile_ok:
        p["sdpa_compile"] = ("compile", p["sdpa"])
    return ("attention_varlen", f"B={b},L={lo}-{hi},h={heads},D={d}", dname, p, "TFLOP/s", flops)


# ---------------------------------------------------------------------------------------------
# run, report, write
# ---------------------------------------------------------------------------------------------


def device_name(cuda: bool) -> str:
    if cuda:
        return torch.cuda.get_device_name()
    return f"CPU {platform.machine()} (TRITON_INTERPRET=1, timings meaningless)"


FIELDS = ["device", "torch", "triton", "date", "kernel", "shape", "dtype", "provider", "ms", "ms_p20", "ms_p80",
          "metric", "value", "pct_copy_bw", "speedup_vs_torch"]  # fmt: skip
BASELINES = ("torch", "sdpa", "sdpa_flash")  # the provider each case's speed-up is measured against


def run(args, csv_path: Path) -> list[dict]:
    """Time every case; each case's rows are appended to ``csv_path`` (flushed) as soon as it is done."""
    import triton

    t_start = time.perf_counter()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(csv_path, "w", newline="")  # noqa: SIM115 - closed at the end, flushed per case
    writer = csv.DictWriter(stream, fieldnames=FIELDS)
    writer.writeheader()

    def emit(new_rows: list[dict]) -> None:
        writer.writerows(new_rows)
        stream.flush()

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    compile_ok = cuda and not args.no_compile
    name = device_name(cuda)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {"device": name, "torch": torch.__version__, "triton": triton.__version__, "date": stamp}
    print(f"# {name} | torch {torch.__version__} | triton {triton.__version__} | {stamp}")
    copy_gbps = copy_bandwidth(device, cuda, args.tiny)
    print(f"# device-to-device copy bandwidth: {copy_gbps:.0f} GB/s")
    rows = [dict(meta, kernel="copy", shape="", dtype="", provider="torch", ms=None, ms_p20=None,
                 ms_p80=None, metric="GB/s", value=copy_gbps, pct_copy_bw=100.0, speedup_vs_torch=None)]  # fmt: skip
    emit(rows)
    skipped = 0
    header = f"{'kernel':<20} {'shape':<28} {'dtype':<5} {'provider':<14} {'ms':>9} {'value':>10}  {'%copy':>6} {'vs torch':>8}"
    print(header)
    print("-" * len(header))
    for kernel, shape, dname, providers, metric, amount in build_cases(args, device, compile_ok):
        if args.kernels and not any(s in kernel for s in args.kernels):
            continue
        if args.time_budget is not None and time.perf_counter() - t_start > args.time_budget:
            skipped += 1
            continue
        case_rows = []
        for prov, fn in providers.items():
            if isinstance(fn, tuple):  # ("compile", eager fn): a fresh dynamo cache per case
                torch._dynamo.reset()
                fn = torch.compile(fn[1])
            try:
                ms, p20, p80 = time_ms(fn, cuda, args.tiny)
            except Exception as e:  # record the failure, keep benchmarking the rest
                print(f"{kernel:<20} {shape:<28} {dname:<5} {prov:<14} failed: {type(e).__name__}: {e}"[:300])
                continue
            value = amount / (ms * 1e-3) / (1e9 if metric == "GB/s" else 1e12)
            case_rows.append(dict(meta, kernel=kernel, shape=shape, dtype=dname, provider=prov, ms=ms,
                                  ms_p20=p20, ms_p80=p80, metric=metric, value=value,
                                  pct_copy_bw=100 * value / copy_gbps if metric == "GB/s" else None))  # fmt: skip
        base = next((r["ms"] for r in case_rows if r["provider"] in BASELINES), None)
        for r in case_rows:
            r["speedup_vs_torch"] = base / r["ms"] if base else None
            pct = f"{r['pct_copy_bw']:6.1f}" if r["pct_copy_bw"] is not None else f"{'':>6}"
            sp = f"{r['speedup_vs_torch']:7.2f}x" if r["speedup_vs_torch"] else f"{'':>8}"
            print(f"{kernel:<20} {shape:<28} {dname:<5} {r['provider']:<14} {r['ms']:9.4f} "
                  f"{r['value']:7.1f} {metric:<7}{pct} {sp}")  # fmt: skip
        rows.extend(case_rows)
        emit(case_rows)
    stream.close()
    if skipped:
        print(f"# time budget of {args.time_budget:g} s reached: {skipped} case(s) not measured")
    return rows


def write(rows: list[dict], out: Path) -> None:
    """``kernels.json`` and the plots (the CSV was written while measuring)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels.json").write_text(json.dumps(rows, indent=1))
    written = ["kernels.json"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        cases = sorted({(r["kernel"], r["shape"], r["dtype"]) for r in rows if r["kernel"] != "copy"})
        provs = [
            p for p in ("triton", "torch_compile", "sdpa_compile") if any(r["provider"] == p for r in rows)
        ]
        fig, ax = plt.subplots(figsize=(max(8, 0.35 * len(cases) + 2), 5))
        width = 0.8 / max(1, len(provs))
        for i, p in enumerate(provs):
            ys = []
            for c in cases:
                r = next(
                    (r for r in rows if (r["kernel"], r["shape"], r["dtype"]) == c and r["provider"] == p),
                    None,
                )
                ys.append(r["speedup_vs_torch"] if r and r["speedup_vs_torch"] else 0.0)
            ax.bar([j + i * width for j in range(len(cases))], ys, width, label=p)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cases))])
        ax.set_xticklabels([f"{k} {s} {d}" for k, s, d in cases], rotation=80, fontsize=6)
        ax.set_ylabel("speed-up over eager torch / SDPA")
        ax.set_title(f"fastbert kernels, {rows[0]['device']}", fontsize=9)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "kernels_speedup.png", dpi=130)
        plt.close(fig)
        written.append("kernels_speedup.png")
        if _plot_attention_vs_length(plt, rows, out / "attention_speedup_vs_length.png"):
            written.append("attention_speedup_vs_length.png")
    print(f"# wrote {', '.join(written)} to {out}")


def _plot_attention_vs_length(plt, rows: list[dict], path: Path) -> bool:
    """Speed-up of the padded attention kernel over SDPA against sequence length, one line per dtype."""
    pts = {}
    for r in rows:
        if r["kernel"] == "attention_padded" and r["provider"] == "triton" and r["speedup_vs_torch"]:
            length = int(r["shape"].split("L=")[1].split(",")[0])
            pts.setdefault(r["dtype"], []).append((length, r["speedup_vs_torch"]))
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for dname, xy in sorted(pts.items()):
        xy.sort()
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=dname)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length L (B=32 padded, no mask)")
    ax.set_ylabel("speed-up over torch SDPA")
    ax.set_title(f"attention, {rows[0]['device']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def summarize_targets(rows: list[dict]) -> list[str]:
    """One line per case against the H100 targets of the kernels (see the module docstring)."""
    lines = []
    copy = next(r["value"] for r in rows if r["kernel"] == "copy")
    for r in rows:
        if r["provider"] != "triton":
            continue
        sp = r["speedup_vs_torch"] or 0.0
        if r["metric"] == "GB/s":
            pct = 100 * r["value"] / copy
            ok = pct >= 80 and sp >= 1.5
            lines.append(f"{'ok  ' if ok else 'MISS'} {r['kernel']:<20} {r['shape']:<28} {r['dtype']:<5} "
                         f"{pct:5.1f} % of copy (>= 80), {sp:4.2f}x eager (>= 1.5)")  # fmt: skip
        elif r["dtype"] in ("fp16", "bf16"):
            need = 2.0 if r["kernel"] == "attention_varlen" else 1.0
            lines.append(f"{'ok  ' if sp >= need else 'MISS'} {r['kernel']:<20} {r['shape']:<28} {r['dtype']:<5} "
                         f"{sp:4.2f}x SDPA (>= {need:g})")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--out", type=Path, default=None, help="folder for JSON/CSV/PNG (default benchmarks/results/<device>)"
    )
    ap.add_argument(
        "--csv", type=Path, default=None, help="CSV written row by row (default <out>/kernels.csv)"
    )
    ap.add_argument("--dtypes", nargs="+", default=["fp16", "bf16", "fp32"], choices=list(DTYPES))
    ap.add_argument(
        "--kernels", nargs="*", default=None, help="only kernels whose name contains one of these"
    )
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile providers")
    ap.add_argument("--no-plots", action="store_true", help="write no PNG")
    ap.add_argument(
        "--time-budget", type=float, default=None, help="start no new case after this many seconds"
    )
    ap.add_argument(
        "--tiny", action="store_true", help="tiny shapes, few repetitions (interpreter smoke run)"
    )
    args = ap.parse_args(argv)
    out = args.out
    if out is None:
        slug = "".join(c if c.isalnum() else "_" for c in device_name(torch.cuda.is_available()).lower())
        out = ROOT / "benchmarks" / "results" / slug.strip("_")[:40]
    rows = run(args, args.csv or out / "kernels.csv")
    print("# targets (H100): memory-bound >= 80 % copy and >= 1.5x eager; attention >= SDPA, varlen >= 2x")
    for line in summarize_targets(rows):
        print(line)
    if args.no_plots:
        out.mkdir(parents=True, exist_ok=True)
        (out / "kernels.json").write_text(json.dumps(rows, indent=1))
    else:
        write(rows, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
