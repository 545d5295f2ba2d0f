"""Reduced precision on the CPU (issue 28): fastbert fp32 / bf16 / int8 beside ONNX Runtime and OpenVINO
fp32 and int8, on the real MiniLM, providers interleaved in one process, each row with its min/mean
cosine to transformers' fp32 output.

    flock -x /tmp/fastbert-quiet.lock python3 benchmarks/bench_precision.py dense    # 32x128
    flock -x /tmp/fastbert-quiet.lock python3 benchmarks/bench_precision.py skewed   # 32 x 8..256
    flock -x /tmp/fastbert-quiet.lock python3 benchmarks/bench_precision.py encode   # sentence-transformers
    # another of the bench's models (random weights), some providers (hf-sdpa and fastbert-sdpa first):
    flock -x /tmp/fastbert-quiet.lock python3 benchmarks/bench_precision.py dense bert-base hf-sdpa,fastbert-sdpa,fastbert-int8
    # encode of N sentences with some providers (the first is the baseline), e.g. without the slow bf16:
    flock -x /tmp/fastbert-quiet.lock python3 benchmarks/bench_precision.py encode 1500 st-torch,st-fastbert,st-fastbert-int8
    # quality only (no timing): mean-pooled MiniLM embeddings of 1,000 real sentences against fp32, and the
    # argmax of 10 random 5-class heads and of 5 trained 8-class heads (logistic regression on 1,000 of the
    # 2,000 labelled docstrings, tests/data/labeled_sentences.tsv, kept on the other 1,000), for int8 as this
    # CPU runs it, int8 with 8-bit activations and weights (the VNNI / AMX scheme, emulated exactly on any CPU)
    # and bf16:
    python3 benchmarks/bench_precision.py quality

Each appends its rows to benchmarks/results/<cpu>/precision/precision.jsonl (with the CPU model, its
flags, versions and the date); ``report`` writes the Markdown table from them.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = os.path.join(ROOT, "tests", "data", "sentences.txt")
#: 2,000 docstring sentences labelled with their standard-library package (8 classes; tools/make_sentence_corpus.py)
LABELED = os.path.join(ROOT, "tests", "data", "labeled_sentences.tsv")
TENSOR_PROVIDERS = (
    "hf-sdpa",
    "fastbert-sdpa",
    "hf-bf16",
    "fastbert-bf16",
    "fastbert-int8",
    "ort-optimized",
    "ort-int8",
    "openvino",
    "openvino-bf16",
    "openvino-int8",
)
SENTENCE_PROVIDERS = (
    "st-torch",
    "st-fastbert",
    "st-torch-bf16",
    "st-fastbert-bf16",
    "st-fastbert-int8",
    "st-onnx",
    "st-onnx-int8",
    "st-openvino",
)


def out_dir() -> str:
    from fastbert.benchmark.run import cpu_name

    name = cpu_name().lower()
    folder = "cpu-amd-epyc" if "epyc" in name else "cpu-" + "-".join(name.split()[:4])
    path = os.path.join(ROOT, "benchmarks", "results", folder, "precision")
    os.makedirs(path, exist_ok=True)
    return path


def machine() -> dict:
    from fastbert.benchmark.run import cpu_details, cpu_name
    from fastbert.quant.dtypes import cpu_flags, cpu_has_native_bf16
    from fastbert.quant.int8 import int8_schemes

    flags = cpu_flags()
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    return {
        "cpu": cpu_name(),
        "cpu_details": cpu_details(),  # family / model and the flags that change the figures
        "flags": {f: f in flags for f in wanted},
        "native_bf16": cpu_has_native_bf16(),
        "int8_schemes": [str(sc) for sc in int8_schemes()],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _cosines(out: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None) -> tuple[float, float]:
    out, ref = out.float(), ref.float()
    if mask is not None:
        out, ref = out[mask], ref[mask]
    cos = F.cosine_similarity(out.reshape(-1, out.shape[-1]), ref.reshape(-1, ref.shape[-1]), dim=-1)
    return round(cos.min().item(), 5), round(cos.mean().item(), 5)


def _interleaved(fns: dict, arg, rounds: int, seed: int = 0) -> dict[str, float]:
    """Median seconds per provider over ``rounds`` rounds, each calling every provider once in a fresh
    random order, as ``fastbert bench`` does (a fixed order put each provider after the same one in every
    round: the cache state it found and the drift within a round were the same each time)."""
    import random

    rng = random.Random(seed)
    times = {n: [] for n in fns}
    for _ in range(rounds):
        order = list(fns)
        rng.shuffle(order)
        for n in order:
            fn = fns[n]
            t = time.perf_counter()
            fn(arg)
            times[n].append(time.perf_counter() - t)
    return {n: statistics.median(v) for n, v in times.items()}


def tensor_rows(
    shape_text: str, rounds: int, model: str = "minilm", providers: tuple[str, ...] = TENSOR_PROVIDERS
) -> list[dict]:
    from fastbert.benchmark.providers import PROVIDERS, BuildContext
    from fastbert.benchmark.workloads import load_source_model, make_inputs, parse_shape

    shape = parse_shape(shape_text)
    source = load_source_model(model, "model", "cpu")
    inputs = make_inputs(shape, source.config.vocab_size, "cpu")
    ctx = BuildContext(task="model", dtype=torch.float32, device="cpu", source=source, max_batch=shape.batch)
    ctx.cache["tmpdir"] = __import__("tempfile").mkdtemp(prefix="fastbert-precision-")
    fns, notes = {}, {}
    for name in providers:
        p = PROVIDERS[name]
        why = p.unavailable("cpu", torch.float32)
        if why:
            notes[name] = why
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fns[name] = p.build(ctx)
    mask = inputs["attention_mask"].bool()
    with torch.inference_mode():
        outs = {n: fn(inputs) for n, fn in fns.items()}  # warm-up and the outputs judged
        times = _interleaved(fns, inputs, rounds)
    ref = outs["hf-sdpa"]
    label = f"model {shape.label}" if model == "minilm" else f"{model} (random weights) {shape.label}"
    return [
        dict(
            workload=label,
            provider=n,
            seconds=round(times[n], 5),
            speedup_vs_hf_sdpa=round(times["hf-sdpa"] / times[n], 3),
            speedup_vs_fastbert_fp32=round(times["fastbert-sdpa"] / times[n], 3),
            cosine_min_mean=_cosines(outs[n], ref, mask),
        )
        for n in fns
    ] + [dict(workload=label, provider=n, skipped=why) for n, why in notes.items()]


def encode_rows(n_sentences: int, rounds: int, providers: tuple[str, ...] = SENTENCE_PROVIDERS) -> list[dict]:
    from fastbert.benchmark.providers import PROVIDERS, BuildContext
    from fastbert.hub import embedded_model_path

    with open(SENTENCES, encoding="utf-8") as f:
        sentences = [s.strip() for s in f if s.strip()][:n_sentences]
    ctx = BuildContext(
        task="embed", dtype=torch.float32, device="cpu", st_folder=embedded_model_path(), batch_size=32
    )
    fns, notes = {}, {}
    for name in providers:
        p = PROVIDERS[name]
        why = p.unavailable("cpu", torch.float32)
        if why:
            notes[name] = why
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fns[name] = p.build(ctx)
    outs = {n: fn(sentences) for n, fn in fns.items()}
    times = _interleaved(fns, sentences, rounds)
    ref = outs["st-torch"]
    return [
        dict(
            workload=f"sentence-transformers encode, {len(sentences)} sentences, batch 32",
            provider=n,
            seconds=round(times[n], 4),
            speedup_vs_st_torch=round(times["st-torch"] / times[n], 3),
            speedup_vs_fastbert_fp32=round(times["st-fastbert"] / times[n], 3),
            cosine_min_mean=_cosines(outs[n], ref, None),
        )
        for n in fns
    ] + [dict(workload="encode", provider=n, skipped=why) for n, why in notes.items()]


def _vnni_emulated():
    """int8 with 8-bit activations and weights (the scheme of CPUs with VNNI / AMX) on any CPU: calibration
    offered only that scheme, every int8 linear computed by its formula in float64 (integer sums exact, as
    the int32 accumulation of ``vpdpbusd``)."""
    import contextlib
    from unittest import mock

    import fastbert.quant as quant
    from fastbert.quant.int8 import FULL, Int8Linear, reference_int8_linear

    def call(self, x, weight, bias=None):
        return reference_int8_linear(  # with calibration's GPTQ rounding, as the native path runs it
            x, weight, bias, self.smooth, self.scheme, self.outliers, codes=self.gptq_codes()
        ).to(x.dtype)

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(quant, "int8_schemes", lambda: (FULL,)))
    stack.enter_context(mock.patch.object(Int8Linear, "__call__", call))
    return stack


def _labeled_batches(tok, batch: int = 64):
    """(batches of the labelled sentences, shortest first, their labels in that order, the label names)."""
    with open(LABELED, encoding="utf-8") as f:
        pairs = sorted(
            (line.rstrip("\n").split("\t", 1) for line in f if line.strip()), key=lambda t: len(t[1])
        )
    names = sorted({p for p, _ in pairs})
    labels = torch.tensor([names.index(p) for p, _ in pairs])
    texts = [t for _, t in pairs]
    batches = [
        tok(texts[i : i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
        for i in range(0, len(texts), batch)
    ]
    return batches, labels, names


def trained_heads(emb: torch.Tensor, labels: torch.Tensor, splits: int = 5) -> list[tuple]:
    """Per split (seeded halves of the labelled set): a logistic-regression head trained on the first half
    of the normalised fp32 embeddings (L-BFGS, L2 1e-4), its held-out half and its accuracy there."""
    x = F.normalize(emb, dim=-1)
    out = []
    for seed in range(splits):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        train, held = perm[: len(x) // 2], perm[len(x) // 2 :]
        torch.manual_seed(seed)
        head = torch.nn.Linear(x.shape[1], int(labels.max()) + 1)
        opt = torch.optim.LBFGS(head.parameters(), max_iter=500, line_search_fn="strong_wolfe")

        def closure(head=head, opt=opt, train=train):
            opt.zero_grad()
            loss = F.cross_entropy(head(x[train]), labels[train]) + 1e-4 * head.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            accuracy = (head(x[held]).argmax(-1) == labels[held]).float().mean().item()
        out.append((head, held, accuracy))
    return out


def _avx2_schemes():
    """int8 as CPUs without VNNI / AMX run it (one side 7-bit: :data:`fastbert.quant.int8.AVX2_SCHEMES`):
    calibration offered those schemes only; their sums are exact everywhere, so any CPU computes them."""
    from unittest import mock

    import fastbert.quant as quant
    from fastbert.quant.int8 import AVX2_SCHEMES

    return mock.patch.object(quant, "int8_schemes", lambda: AVX2_SCHEMES)


def quality_rows(n_sentences: int = 1000, heads: int = 10) -> list[dict]:
    import contextlib

    from bench_quant_gpu import _mean_pooled, _sentence_batches  # the GPU gates' embeddings (this folder)

    import fastbert
    from fastbert.hub import embedded_model_path

    path = embedded_model_path()
    batches = _sentence_batches(fastbert.AutoTokenizer.from_pretrained(path), "cpu", n_sentences)
    labeled, labels, _ = _labeled_batches(fastbert.AutoTokenizer.from_pretrained(path))
    fp32 = fastbert.BertModel.from_pretrained(path)
    ref, ref_labeled = _mean_pooled(fp32, batches), _mean_pooled(fp32, labeled)
    trained = trained_heads(ref_labeled, labels)
    variants = {
        "int8 (this CPU's schemes)": (dict(quantization="int8"), contextlib.nullcontext),
        "int8 a255w127 (VNNI / AMX, emulated)": (dict(quantization="int8"), _vnni_emulated),
        "int8 AVX2 schemes (a127w127 / a255w63)": (dict(quantization="int8"), _avx2_schemes),
        "bf16": (dict(torch_dtype=torch.bfloat16), contextlib.nullcontext),
    }
    rows = []
    for name, (kwargs, context) in variants.items():
        with context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = fastbert.BertModel.from_pretrained(path, **kwargs)
            emb, emb_labeled = _mean_pooled(model, batches), _mean_pooled(model, labeled)
        report = getattr(model, "quantization", None)
        with torch.no_grad():
            kept = [
                round((h(F.normalize(ref_labeled[held], dim=-1)).argmax(-1)
                       == h(F.normalize(emb_labeled[held], dim=-1)).argmax(-1)).float().mean().item(), 4)
                for h, held, _ in trained
            ]  # fmt: skip
        cos = F.cosine_similarity(emb, ref, dim=-1)
        same = []
        for seed in range(heads):
            torch.manual_seed(seed)
            head = torch.nn.Linear(ref.shape[1], 5)
            with torch.no_grad():
                a, b = head(F.normalize(ref, dim=-1)), head(F.normalize(emb, dim=-1))
            same.append(round((a.argmax(-1) == b.argmax(-1)).float().mean().item(), 4))
        rows.append(
            dict(
                workload=f"quality: MiniLM mean-pooled, {len(ref)} sentences",
                variant=name,
                linears_int8=None
                if report is None
                else f"{sum(d.precision == 'int8' for d in report.layers)}/{len(report.layers)}",
                cosine_min_mean=(round(cos.min().item(), 5), round(cos.mean().item(), 6)),
                random_head_argmax_same=same,
                rounding=None
                if report is None
                else (
                    "GPTQ"
                    if any(
                        getattr(m, "qlinear", None) is not None and m.qlinear.rounding() == "GPTQ rounding"
                        for m in model.modules()
                    )
                    else "nearest"
                ),  # fmt: skip
                trained_head_accuracy=[round(a, 4) for *_, a in trained],
                trained_head_argmax_same=kept,
            )
        )
    return rows


COMMANDS = ("dense", "skewed", "encode", "quality", "report")


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "dense"
    if what not in COMMANDS:  # --help, a typo: the usage, not a KeyError from the table below
        print(
            __doc__.strip()
            if what in ("-h", "--help")
            else f"unknown command {what!r}: use {', '.join(COMMANDS)}"
        )
        raise SystemExit(0 if what in ("-h", "--help") else 2)
    if what == "report":
        return report()
    if what == "quality":
        rows, name = quality_rows(int(argv[1]) if len(argv) > 1 else 1000), "quality.jsonl"
    else:
        rows, name = _timed_rows(what, argv), "precision.jsonl"
    env = machine()
    with open(os.path.join(out_dir(), name), "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({**r, **env}) + "\n")
            print(json.dumps(r))


def _checked_providers(what: str, argv: list[str]) -> tuple[str, ...]:
    """The providers of a timed command, refused (exit 2) before anything loads when one is unknown or of the
    other kind, or when the two the rows are measured against are missing (a KeyError after the builds)."""
    from fastbert.benchmark.providers import PROVIDERS

    encode = what == "encode"
    default, kind = (SENTENCE_PROVIDERS, "sentences") if encode else (TENSOR_PROVIDERS, "tensor")
    chosen = tuple(n.strip() for n in argv[2].split(",") if n.strip()) if len(argv) > 2 else default
    needed = ("st-torch", "st-fastbert") if encode else ("hf-sdpa", "fastbert-sdpa")
    why = None
    for name in chosen:
        if name not in PROVIDERS:
            why = f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}"
        elif PROVIDERS[name].kind != kind:
            why = f"{name} is a {PROVIDERS[name].kind} provider: {what} takes {kind} providers"
        if why:
            break
    missing = [n for n in needed if n not in chosen]
    if why is None and missing:
        why = f"{what} needs {' and '.join(needed)} among the providers (its speed-ups and cosines are against them)"
    if why is None and encode and len(argv) > 1 and not argv[1].isdigit():
        why = f"encode takes a number of sentences, got {argv[1]!r}"
    if why:
        print(f"bench_precision.py {what}: {why}", file=sys.stderr)
        raise SystemExit(2)
    return chosen


def _timed_rows(what: str, argv: list[str]) -> list[dict]:
    model = argv[1] if len(argv) > 1 else "minilm"
    chosen = _checked_providers(what, argv)
    return {
        "dense": lambda: tensor_rows("32x128", rounds=5, model=model, providers=chosen),
        "skewed": lambda: tensor_rows("32xskewed8-256", rounds=5, model=model, providers=chosen),
        "encode": lambda: encode_rows(int(argv[1]) if len(argv) > 1 else 800, rounds=2, providers=chosen),
    }[what]()


def _machine_key(r: dict) -> str:
    """The CPU a row was measured on: its name with family/model and flags (rows before cpu_details was
    recorded: the flags it had)."""
    return f"{r['cpu']} ({r.get('cpu_details') or ', '.join(f for f, has in r['flags'].items() if has)})"


def _timed_table(rows: list[dict]) -> list[str]:
    latest = {}
    for r in rows:
        latest[(r["workload"], r["provider"])] = r
    env = rows[-1]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env["flags"].items())
    lines = [
        f"## {_machine_key(env)}: {env['threads']} threads, torch {env['torch']}, latest {env['date'][:10]}",
        "",
        f"Flags: {flags}. Native bf16: {'yes' if env['native_bf16'] else 'no (emulated)'}. "
        + (
            f"int8 weights |q| <= {env['int8_weight_qmax']}."  # rows measured before activations took the cut
            if "int8_weight_qmax" in env
            else "int8 (per linear, by calibration error): " + "; or ".join(env["int8_schemes"]) + "."
        ),
        "",
        "| workload | provider | time (s) | speed-up vs baseline | vs fastbert fp32 | cosine to fp32 min / mean | measured |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (w, p), r in latest.items():
        if "skipped" in r:
            lines.append(f"| {w} | {p} | skipped: {r['skipped']} | | | | {r['date'][:10]} |")
            continue
        base = r.get("speedup_vs_hf_sdpa", r.get("speedup_vs_st_torch"))
        cmin, cmean = r["cosine_min_mean"]
        lines.append(
            f"| {w} | {p} | {r['seconds']:.4f} | {base:.2f}x | {r['speedup_vs_fastbert_fp32']:.2f}x | {cmin:.4f} / {cmean:.5f} "
            f"| {r['date'][:16]} |"
        )
    return lines + [""]


def report() -> None:
    """README.md of the results folder: a table per CPU the rows were measured on (latest CPU first; the
    latest row of each workload and provider), then the quality rows."""
    path = os.path.join(out_dir(), "precision.jsonl")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    machines: dict[str, list[dict]] = {}
    for r in rows:
        machines.setdefault(_machine_key(r), []).append(r)
    lines = ["# Reduced precision on the CPU (`benchmarks/bench_precision.py`)", ""]
    for group in sorted(machines.values(), key=lambda g: max(r["date"] for r in g), reverse=True):
        lines += _timed_table(group)
    lines += [
        "Baseline: transformers sdpa fp32 (model rows), sentence-transformers' torch backend (encode rows).",
    ]
    quality = os.path.join(out_dir(), "quality.jsonl")
    if os.path.exists(quality):
        with open(quality, encoding="utf-8") as f:
            # the latest row of each variant, weight rounding and CPU (rows before GPTQ: nearest rounding)
            qrows = {
                (
                    r["variant"],
                    _machine_key(r),
                    r.get("rounding", "nearest" if r["linears_int8"] else None),
                ): r
                for r in map(json.loads, filter(str.strip, f))
            }
        lines += [
            "",
            "Quality (`bench_precision.py quality`): mean-pooled MiniLM embeddings of 1,000 sentences against "
            "fp32; how often a random 5-class head on them (10 seeds) keeps its argmax; and how often a trained "
            "8-class head does (logistic regression on 1,000 labelled docstrings, kept on 1,000 others, 5 "
            "splits; its accuracy beside).",
            "",
            "| variant | linears int8 | weight rounding | cosine min / mean | random-head argmax unchanged "
            "| trained-head argmax unchanged (accuracy) | CPU | measured |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for (v, cpu, _), r in qrows.items():
            same, kept = r["random_head_argmax_same"], r.get("trained_head_argmax_same")
            trained = (
                f"{min(kept):.1%} - {max(kept):.1%} ({min(r['trained_head_accuracy']):.0%} - "
                f"{max(r['trained_head_accuracy']):.0%})"
                if kept
                else "-"
            )
            rounding = r.get("rounding") or ("-" if r["linears_int8"] is None else "nearest")
            lines.append(
                f"| {v} | {r['linears_int8'] or '-'} | {rounding} | {r['cosine_min_mean'][0]:.5f} / "
                f"{r['cosine_min_mean'][1]:.6f} | {min(same):.1%} - {max(same):.1%} | {trained} | {cpu} "
                f"| {r['date'][:16]} |"
            )
    with open(os.path.join(out_dir(), "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
