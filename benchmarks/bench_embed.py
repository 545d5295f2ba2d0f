"""Throughput of ``fastbert embed`` against ``fastbert run`` and sentence-transformers' ``encode``.

One corpus (short English-like texts, seeded), written by this script to Parquet (for ``fastbert embed``)
and to a text file (one text a line, for ``fastbert run``); the same model (default: the MiniLM that
ships offline) and thread count for every provider. Each provider runs in a fresh process; the wall
time includes loading the model, and a ``load`` row (a process that only builds the pipeline) says how
much of it that is. Rows/s and tokens/s use the real token count of the corpus (no padding).

    python benchmarks/bench_embed.py                       # 3000 rows, 2 threads, on a quiet machine
    python benchmarks/bench_embed.py --tiny                # a dry run: 200 rows
    python benchmarks/bench_embed.py --devices 0,1         # on a GPU machine: --devices scaling rows

Writes ``<out>/rows.jsonl`` (one JSON object a provider: rows/s, tokens/s, wall, device, versions,
date) and prints a table. Never asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = (
    "the of and to in is was for on with as by at from that this which are be it an or not have has "
    "model data search query document vector embedding paris france city river energy light green system "
    "network language people time year world house music science history water school market company"
).split()


def write_corpus(folder: str, rows: int, seed: int = 0) -> tuple[str, str, list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 60))) for _ in range(rows)]
    parquet = os.path.join(folder, "corpus.parquet")
    pq.write_table(pa.table({"id": [f"doc{i}" for i in range(rows)], "text": texts}), parquet)
    txt = os.path.join(folder, "corpus.txt")
    with open(txt, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    return parquet, txt, texts


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


_LOAD = """
import sys, time, torch
torch.set_num_threads({threads})
t = time.perf_counter()
import fastbert
p = fastbert.pipeline("sentence-embedding", model={model!r}, device={device!r})
p(["warm up"])
print(time.perf_counter() - t)
"""

_ST = """
import time, torch
torch.set_num_threads({threads})
t0 = time.perf_counter()
from sentence_transformers import SentenceTransformer
import pyarrow.parquet as pq
m = SentenceTransformer({model!r}, device={device!r})
texts = pq.read_table({parquet!r}, columns=["text"]).column("text").to_pylist()
t1 = time.perf_counter()
v = m.encode(texts, batch_size=32)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, v.shape[0])
"""


def main(argv: list[str] | None = None) -> int:
    from fastbert.benchmark.run import cpu_details, cpu_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--tiny", action="store_true", help="a dry run on 200 rows")
    ap.add_argument("--model", default=None, help="model folder (default: the embedded MiniLM)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--devices", default=None, help="also time fastbert embed --devices LIST (GPU machines)")
    ap.add_argument("--max-batch-tokens", type=int, default=None, help="default: fastbert embed's own")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "embed"))
    ap.add_argument("--skip", default="", help="comma-separated providers to skip: run,st")
    args = ap.parse_args(argv)
    rows = 200 if args.tiny else args.rows
    if args.model is None:
        from fastbert.hub import embedded_model_path

        args.model = embedded_model_path()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    env = _env(args.threads)
    py = sys.executable
    results = []
    import torch

    import fastbert

    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        parquet, txt, texts = write_corpus(tmp, rows)
        tok = fastbert.pipeline("sentence-embedding", model=args.model).tokenizer
        tokens = sum(len(ids) for ids in tok(texts, truncation=True, max_length=256)["input_ids"])

        def row(
            provider: str, wall: float, note: str = "", compute: float | None = None, throughput: bool = True
        ) -> None:
            r = {
                "suite": "embed",
                "provider": provider,
                "rows": rows,
                "tokens": tokens,
                "wall_s": round(wall, 3),
                "rows_per_s": None if throughput is False else round(rows / wall, 1),
                "tokens_per_s": None if throughput is False else round(tokens / wall, 1),
                "compute_s": None if compute is None else round(compute, 3),
                "note": note,
                "device": args.device,
                "cpu": cpu_name(),
                "cpu_details": cpu_details(),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "threads": args.threads,
                "versions": {
                    "fastbert": fastbert.__version__,
                    "torch": torch.__version__,
                    "python": platform.python_version(),
                },
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            results.append(r)
            rates = (
                f"{r['rows_per_s']:9.1f} rows/s  {r['tokens_per_s']:10.1f} tokens/s"
                if throughput
                else " " * 32
            )
            print(f"{provider:<28} {wall:8.2f} s  {rates}  {note}", flush=True)

        load, out = _timed(
            [py, "-c", _LOAD.format(threads=args.threads, model=args.model, device=args.device)], env
        )
        row(
            "load (fastbert pipeline)",
            float(out.strip().splitlines()[-1]),
            "model load + one call: part of every wall time",
        )

        embed_cmd = [py, "-m", "fastbert", "embed", parquet, "--model", args.model, "--id-column", "id"]
        embed_cmd += ["--no-progress"]
        if args.max_batch_tokens is not None:
            embed_cmd += ["--max-batch-tokens", str(args.max_batch_tokens)]
        wall, _ = _timed(embed_cmd + ["--output", os.path.join(tmp, "embed"), "--device", args.device], env)
        row("fastbert embed", wall)
        if args.devices:
            wall, _ = _timed(
                embed_cmd + ["--output", os.path.join(tmp, "embed-devices"), "--devices", args.devices], env
            )
            row(f"fastbert embed --devices {args.devices}", wall)
        if "run" not in skip:
            run_cmd = [py, "-m", "fastbert", "run", "--task", "sentence-embedding", "--model", args.model]
            run_cmd += ["--input", txt, "--output", os.path.join(tmp, "run.npy"), "--no-progress"]
            wall, _ = _timed(run_cmd + ["--device", args.device], env)
            row("fastbert run", wall, "batch_size 32, one .npy")
        if "st" not in skip:
            try:
                import sentence_transformers  # noqa: F401
            except ImportError:
                print("sentence-transformers not installed: its row skipped", file=sys.stderr)
            else:
                code = _ST.format(threads=args.threads, model=args.model, device=args.device, parquet=parquet)
                wall, out = _timed([py, "-c", code], env)
                load_s, encode_s, _n = out.strip().splitlines()[-1].split()
                row("sentence-transformers encode", wall, f"load {float(load_s):.2f} s", float(encode_s))

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "rows.jsonl"), "a", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(f"rows appended to {os.path.join(args.out, 'rows.jsonl')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
