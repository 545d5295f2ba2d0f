"""``fastbert bench --suite serve``: ``fastbert serve`` against a plain FastAPI + sentence-transformers server
(:mod:`fastbert.benchmark.serve_baseline`) on the real MiniLM, same requests, same machine.

Both servers run as child processes on 127.0.0.1; the load comes from an asyncio httpx client in this process.
At each concurrency (1, 8, 64 by default) the providers take turns, round by round in a fresh random order,
each sending the same requests (one text of 3-150 words each; one seed); a row reports requests/s and the
p50/p99 latency over its rounds, and the ratio to the rival. A ``direct`` row times the same lone requests
through fastbert's tokenizer and forward in this process, without HTTP or the batcher: what a lone request pays
for being served.

Every answer of every round is judged by fastbert's parity rule (:mod:`fastbert.core.tolerances`), as the
other suites judge theirs: against sentence-transformers in float64 on the same texts, with the baseline
server's fp32 answers as PyTorch's own error. A server whose answers break the rule (or are not one vector of
the reference's size per request, or hold NaN) gets a ``wrong`` row with the figures and no time.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from fastbert.output_files import open_output

WORDS = (
    "the quick brown fox jumps over a lazy dog while paris sleeps and new york works late into the night "
    "science finds answers in data models learn from text embeddings map sentences into vectors search ranks "
    "documents by meaning rivers run to the sea under a blue sky with green leaves"
).split()


#: seconds a server has to start (fastbert serve to print its startup line, the baseline to answer /health)
STARTUP_TIMEOUT = 180.0


def requests_of(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {"inputs": " ".join(rng.choice(WORDS) for _ in range(rng.choice((3, 8, 15, 30, 60, 100, 150))))}
        for _ in range(n)
    ]


def _default_signals() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def _drain(proc: Any, tail: collections.deque) -> threading.Thread:
    """Read the rest of ``proc``'s stderr on a daemon thread, keeping its last lines in ``tail``: a server
    whose stderr pipe is never read blocks once the pipe's buffer (64 KiB) is full."""
    thread = threading.Thread(target=lambda: tail.extend(proc.stderr), daemon=True)
    thread.start()
    return thread


def _start(
    cmd: list[str], env: dict[str, str], pattern: str | None, port: int | None, timeout: float | None = None
) -> tuple[Any, str]:
    """Start a server; ``pattern`` finds its URL in its stderr (lines before it, warnings, are skipped), else
    it is up when ``port``'s ``/health`` answers 200. Its stderr is read on until it ends. A server not up
    within ``timeout`` seconds (:data:`STARTUP_TIMEOUT`) is killed and a RuntimeError says so."""
    timeout = STARTUP_TIMEOUT if timeout is None else timeout
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_signals,
    )
    tail: collections.deque = collections.deque(maxlen=40)
    if pattern:
        # read on a thread, so that a server that hangs while loading (printing nothing) meets the deadline
        found: queue.Queue = queue.Queue()

        def read() -> None:
            for line in proc.stderr:
                m = re.search(pattern, line)
                if m:
                    found.put(m.group(1))
                    tail.extend(proc.stderr)  # drained until it ends
                    return
                tail.append(line)
            found.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        why = "did not start"
        try:
            url = found.get(timeout=timeout)
        except queue.Empty:
            url, why = None, f"did not start within {timeout:g} s (killed)"
        except BaseException:  # Ctrl-C while it loads: it is not left behind
            proc.kill()
            proc.wait()
            raise
        if url is not None:
            return proc, url
        proc.kill()
        proc.wait()
        reader.join(5)
        raise RuntimeError(f"{' '.join(cmd)} {why}: {''.join(tail)}")
    reader = _drain(proc, tail)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    reader.join(5)
    raise RuntimeError(f"the baseline server did not start: {''.join(tail)}")


def _stop(procs: list[Any]) -> None:
    """SIGTERM each server, then wait for it (killed after 30 s)."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(url: str, bodies: list[dict], concurrency: int) -> tuple[float, list[float], list[Any]]:
    import httpx

    latencies: list[float] = []
    answers: list[Any] = [None] * len(bodies)
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:

        async def client() -> None:
            nonlocal next_index
            while next_index < len(bodies):
                i = next_index
                next_index += 1
                t = time.perf_counter()
                r = await http.post("/embed", json=bodies[i])
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()
                answers[i] = r.json()

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return wall, latencies, answers


@functools.lru_cache(maxsize=1)
def _float64_model(model: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model, device="cpu").double()


def _reference_vectors(model: str, texts: list[str]):
    """The normalised embeddings of ``texts`` by sentence-transformers in float64: the parity reference."""
    import torch

    with torch.inference_mode():
        out = _float64_model(model).encode(texts, normalize_embeddings=True, convert_to_tensor=True)
    return out.cpu().double()


def _vectors(answers: list[Any], dim: int):
    """The answers of one round as a (requests, dim) float64 tensor; None when an answer is not one vector of
    ``dim`` numbers."""
    import torch

    try:
        out = torch.tensor([a[0] for a in answers], dtype=torch.float64)
    except (TypeError, ValueError, IndexError):
        return None
    if any(len(a) != 1 for a in answers) or out.ndim != 2 or out.shape[1] != dim:
        return None
    return out


def _gate(rounds: list[list[Any]], baseline: list[list[Any]], ref) -> tuple[bool, dict[str, Any]]:
    """The parity rule on every round's answers of one server: (passed, the figures for its row, with a
    ``message``). ``baseline``: the sentence-transformers server's answers of the same rounds, PyTorch's own
    fp32 error (the floor alone where they are malformed)."""
    import torch

    from fastbert.core import tolerances

    dim = ref.shape[1]
    ours = [_vectors(a, dim) for a in rounds]
    if any(o is None for o in ours):
        return False, {"message": f"an answer is not one vector of {dim} numbers per request"}
    theirs = [_vectors(a, dim) for a in baseline]
    torch_out = None if any(t is None for t in theirs) else torch.cat(theirs)
    refs = torch.cat([ref] * len(ours))
    v = tolerances.judge(torch.cat(ours), torch_out, refs, torch.float32)
    figures = {"error": v.error if v.finite else None, "torch_error": v.torch_error, "bound": v.bound}
    figures["message"] = v.message("vectors vs sentence-transformers float64")
    return v.ok, figures


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_serve_bench(
    out: str | None = None,
    concurrencies: tuple[int, ...] = (1, 8, 64),
    requests_per_round: dict[int, int] | None = None,
    rounds: int = 2,
    threads: int = 2,
    log=print,
) -> list[dict[str, Any]]:
    import torch

    from fastbert.benchmark.run import cpu_details, cpu_name
    from fastbert.hub import embedded_model_path

    requests_per_round = requests_per_round or {1: 24, 8: 64, 64: 192}
    model = embedded_model_path()
    env = {
        **os.environ,
        "FASTBERT_BENCH_MODEL": model,
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
    }
    fb, fb_url = _start(
        # on the CPU, as the rival and the direct row: without --devices it takes cuda:0 in float16 where
        # there is a GPU, and its answers were judged against fp32 CPU vectors under a CPU row
        [sys.executable, "-m", "fastbert", "serve", "--port", "0", "--threads", str(threads)]
        + ["--devices", "cpu"],
        env,
        r"listening on (http://127\.0\.0\.1:\d+)",
        None,
    )
    try:
        port = _free_port()
        st, st_url = _start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fastbert.benchmark.serve_baseline:app",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env,
            None,
            port,
        )
    except BaseException:  # the baseline did not start, or Ctrl-C came: fastbert serve is not left behind
        _stop([fb])
        raise
    servers = {"fastbert serve": fb_url, "FastAPI + sentence-transformers": st_url}
    rows: list[dict[str, Any]] = []
    meta = {
        "device": cpu_name(),
        "cpu_details": cpu_details(),  # family/model and flags: "AMD EPYC" alone names no generation
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": "sentence-transformers/all-MiniLM-L6-v2 (the embedded MiniLM), fp32",
    }
    try:
        import sentence_transformers

        meta["sentence_transformers"] = sentence_transformers.__version__
        rng = random.Random(1)
        for c in concurrencies:
            bodies = requests_of(requests_per_round[c], seed=c)
            for url in servers.values():  # warm-up (every timed answer is judged below)
                asyncio.run(_load(url, bodies[: min(8, len(bodies))], min(c, 8)))
            stats: dict[str, dict[str, list]] = {k: {"wall": [], "lat": [], "n": []} for k in servers}
            answers: dict[str, list] = {k: [] for k in servers}
            for _ in range(rounds):
                order = list(servers)
                rng.shuffle(order)
                for name in order:
                    wall, lat, ans = asyncio.run(_load(servers[name], bodies, c))
                    stats[name]["wall"].append(wall)
                    stats[name]["lat"].extend(lat)
                    stats[name]["n"].append(len(bodies))
                    answers[name].append(ans)
            ref = _reference_vectors(model, [b["inputs"] for b in bodies])
            baseline = answers["FastAPI + sentence-transformers"]
            for name in servers:
                s = stats[name]
                ok, figures = _gate(answers[name], baseline, ref)
                message = figures.pop("message")
                row = {"server": name, "concurrency": c, "requests": sum(s["n"])}
                if ok:
                    row.update(
                        status="ok",
                        requests_per_s=round(sum(s["n"]) / sum(s["wall"]), 2),
                        p50_ms=round(1000 * _pct(s["lat"], 0.5), 1),
                        p99_ms=round(1000 * _pct(s["lat"], 0.99), 1),
                    )
                else:
                    row.update(status="wrong", requests_per_s=None, p50_ms=None, p99_ms=None)
                    row["note"] = f"{message}: no time"
                a, b = _vectors(answers[name][-1], ref.shape[1]), _vectors(baseline[-1], ref.shape[1])
                if a is not None and b is not None:
                    row["max_abs_diff_vs_st"] = float((a - b).abs().max())
                rows.append({**row, **figures, **meta})
                log(json.dumps(rows[-1]))
        rows.extend(_direct_rows(model, requests_of(requests_per_round[1], seed=1), threads, meta, log))
    finally:
        _stop([fb, st])
    if out:
        os.makedirs(out, exist_ok=True)
        # each beside its target, renamed over it once complete: an interrupted write leaves the earlier file
        with open_output(os.path.join(out, "rows.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        with open_output(os.path.join(out, "TABLE.md"), "w") as f:
            f.write(table(rows) + "\n")
    return rows


def _direct_rows(model: str, bodies: list[dict], threads: int, meta: dict, log) -> list[dict[str, Any]]:
    """Lone requests without HTTP or the batcher: fastbert's tokenizer + one forward + pooling, in process."""
    import torch

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import ServedModel, Tokenizer, describe_model

    torch.set_num_threads(threads)
    options = ServeOptions(model=model)
    spec = describe_model(options)
    served, tok = ServedModel(spec, options, torch.device("cpu")), Tokenizer(spec)
    lat = []
    for body in bodies[:4]:
        served.run(tok.encode([body["inputs"]], False), ["pooled"])
    for body in bodies:
        t = time.perf_counter()
        served.run(tok.encode([body["inputs"]], False), ["pooled"])
        lat.append(time.perf_counter() - t)
    row = {
        "server": "direct forward (no HTTP, no batcher)",
        "concurrency": 1,
        "requests": len(bodies),
        "status": "ok",
        "requests_per_s": round(len(bodies) / sum(lat), 2),
        "p50_ms": round(1000 * _pct(lat, 0.5), 1),
        "p99_ms": round(1000 * _pct(lat, 0.99), 1),
        **meta,
    }
    log(json.dumps(row))
    return [row]


def table(rows: list[dict[str, Any]]) -> str:
    meta = rows[0]
    base = {r["concurrency"]: r for r in rows if r["server"].startswith("FastAPI")}
    details = f", {meta['cpu_details']}" if meta.get("cpu_details") else ""
    lines = [
        f"**{meta['device']}** (cpu{details}, {meta['cores']} cores, {meta['threads']} threads), torch {meta['torch']}, "
        f"sentence-transformers {meta.get('sentence_transformers')}, {meta['model']}, {meta['date']}",
        "",
        "| server | concurrency | requests/s | p50 ms | p99 ms | requests/s vs rival | max abs diff of vectors "
        "| max abs error vs float64 (bound) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    wrong = []
    for r in rows:
        rival = base.get(r["concurrency"])
        timed = r.get("requests_per_s") is not None
        ratio = ""
        if timed and rival and rival.get("requests_per_s"):
            ratio = f"{r['requests_per_s'] / rival['requests_per_s']:.2f}x"
        diff = r.get("max_abs_diff_vs_st")
        diff = f"{diff:.1e}" if diff is not None else ""
        error = f"{r['error']:.1e} ({r['bound']:.1e})" if r.get("error") is not None else ""
        speed = f"{r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']}" if timed else f"{r['status']} | | "
        lines.append(f"| {r['server']} | {r['concurrency']} | {speed} | {ratio} | {diff} | {error} |")
        if r.get("status") == "wrong":
            wrong.append(f"- {r['server']}, concurrency {r['concurrency']}: wrong: {r['note']}")
    return "\n".join(lines + ([""] + wrong if wrong else []))


def cli_main(args) -> int:
    """``fastbert bench --suite serve [--out DIR] [--threads N] [--tiny]``."""
    from fastbert.serve.cli import missing_extra

    missing = missing_extra(("fastapi", "uvicorn", "httpx", "sentence_transformers"))
    if missing:
        print(
            f"fastbert bench: error: the serve suite needs {missing}: pip install fastapi uvicorn httpx "
            "sentence-transformers (the extras: pip install '.[serve,bench]' httpx in a checkout of fastbert; "
            "fastbert-triton is not on PyPI)",
            file=sys.stderr,
        )
        return 2
    per_round = {1: 4, 8: 8, 64: 64} if args.tiny else None
    rows = run_serve_bench(
        out=args.out,
        requests_per_round=per_round,
        rounds=1 if args.tiny else 2,
        threads=args.threads or 2,
        log=(lambda s: None) if args.quiet else print,
    )
    print(table(rows))
    bad = [r for r in rows if r.get("status") == "wrong"]
    for r in bad:
        print(
            f"fastbert bench: {r['server']} (concurrency {r['concurrency']}): wrong: {r['note']}",
            file=sys.stderr,
        )
    return 1 if bad else 0
