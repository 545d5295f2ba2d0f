"""``fastbert bench --suite long``: one long input (2,048 / 4,096 / 8,192 tokens) through ModernBERT
base-size (random weights), fastbert against transformers ``sdpa``: time, peak memory, and the time of
the local (sliding-window) and global layers apart, to show how each scales with the length.

Every measurement runs in a **fresh process** (one per provider x length x round), so that one
provider's memory (allocator caches, oneDNN primitives, torch's thread pools) never counts in another's:
the child builds the model from the same seed, runs one warm-up forward of 128 tokens, then one timed
forward of the long input. Rounds run the providers in a fresh random order each (processes interleaved);
the speed-up is the median of the per-round ratios.

**Peak memory** is the kernel's resident-set high-water mark (``VmHWM`` of ``/proc/self/status``, reset
through ``/proc/self/clear_refs`` just before the call) minus the resident set (``VmRSS``) just before
the call: the RAM the forward adds at its peak (activations, attention masks, workspaces, what the
allocator keeps), weights excluded. It is what the machine must have free, not the bytes of live tensors
(``tracemalloc`` sees none of torch's memory; torch's CPU profiler sees tensors, not workspaces). Linux
only (elsewhere the column is empty).

**Per-layer time**: forward hooks on the encoder's layer list (the ``nn.ModuleList`` with
``num_hidden_layers`` entries) time each layer during the timed call; ``local_ms`` / ``global_ms`` sum the
layers of ``config.layer_types`` ``sliding_attention`` / ``full_attention``.

**Parity**: at lengths up to ``--gate-max`` (2,048) every provider's output is judged by the rule of
:mod:`fastbert.core.tolerances` against transformers ``eager`` in float64 on the same input (computed in the
parent before the children run); a wrong answer gets no time. Longer inputs are not judged (the float64
reference would take minutes and gigabytes); the row notes fastbert's max |difference| to transformers'
fp32 output of the same length instead.

fastbert's rows need ``modernbert`` in :mod:`fastbert.registry`; until then they are skipped with
that reason and only transformers' rows are measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from fastbert.benchmark import report

DEFAULT_MODEL = "modernbert-base"
DEFAULT_SHAPES = ("1x2048", "1x4096", "1x8192")
DEFAULT_PROVIDERS = ("fastbert-sdpa", "hf-sdpa")
PROVIDERS = {"fastbert-sdpa": "fastbert", "hf-sdpa": "transformers"}  # provider -> what the child builds
GATE_MAX = 2048
WARMUP_TOKENS = 128
CHILD_TIMEOUT_S = 900


# ------------------------------------------------------------------------------------------------ memory


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the resident-set high-water mark (``VmHWM``) to the current resident set."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------ child


def _layer_list(model, layers: int):
    import torch

    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == layers:
            return module
    return None


def _time_layers(model, config) -> tuple[list[float], list]:
    """Forward hooks timing each encoder layer: (the list they fill with seconds per layer, the handles)."""
    layers = _layer_list(model, config.num_hidden_layers)
    times: list[float] = []
    if layers is None:
        return times, []
    starts: dict[int, float] = {}
    handles = []
    for i, layer in enumerate(layers):

        def pre(module, args, i=i):
            starts[i] = time.perf_counter()

        def post(module, args, out, i=i):
            times.append((i, time.perf_counter() - starts.pop(i)))

        handles.append(layer.register_forward_pre_hook(pre))
        handles.append(layer.register_forward_hook(post))
    return times, handles


def child_main(argv: list[str]) -> int:
    """One measurement (a fresh process): build, warm up on 128 tokens, time the long input once."""
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--provider", required=True, choices=sorted(PROVIDERS))
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="torch.save the output here")
    a = p.parse_args(argv)
    import torch

    from fastbert.benchmark.workloads import (
        Shape,
        fastbert_model,
        hf_variant,
        inputs_for,
        load_source_model,
    )

    torch.set_num_threads(a.threads)
    source = load_source_model(a.model, "model", "cpu", seed=a.seed)
    config = source.config
    if PROVIDERS[a.provider] == "fastbert":
        model = fastbert_model(source, "sdpa", torch.float32)
    else:
        model = hf_variant(source, "sdpa", torch.float32)
    del source
    gc.collect()
    warm = inputs_for(config, Shape(batch=1, seqlen=min(WARMUP_TOKENS, a.length)), "cpu", seed=a.seed)
    inputs = inputs_for(config, Shape(batch=1, seqlen=a.length), "cpu", seed=a.seed)
    with torch.inference_mode():
        model(**warm)
        layer_times, handles = _time_layers(model, config)
        gc.collect()
        rss = _status_kb("VmRSS")
        reset = _reset_peak()
        t0 = time.perf_counter()
        out = model(**inputs).last_hidden_state
        seconds = time.perf_counter() - t0
        hwm = _status_kb("VmHWM")
    for h in handles:
        h.remove()
    types = list(getattr(config, "layer_types", None) or []) or ["full_attention"] * config.num_hidden_layers
    split: dict[str, float] = {}
    for i, s in layer_times:
        split[types[i]] = split.get(types[i], 0.0) + s
    if a.save:
        torch.save(out.float().contiguous(), a.save)
    peak = (hwm - rss) / 1024 if (reset and hwm is not None and rss is not None) else None
    result = {
        "ms": seconds * 1e3,
        "peak_mem_mb": None if peak is None else round(peak, 1),
        "rss_before_mb": None if rss is None else round(rss / 1024, 1),
        "hwm_mb": None if hwm is None else round(hwm / 1024, 1),
        "local_ms": round(split["sliding_attention"] * 1e3, 1) if "sliding_attention" in split else None,
        "global_ms": round(split["full_attention"] * 1e3, 1) if "full_attention" in split else None,
        "local_layers": types.count("sliding_attention"),
        "global_layers": types.count("full_attention"),
    }
    print("FASTBERT-LONG " + json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ parent


def _child(model: str, provider: str, length: int, threads: int, seed: int, save: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "fastbert.benchmark.long",
        "--child",
        "--model",
        model,
        "--provider",
        provider,
        "--length",
        str(length),
        "--threads",
        str(threads),
        "--seed",
        str(seed),
        "--save",
        save,
    ]
    returncode, stdout, stderr = _run_child(cmd, CHILD_TIMEOUT_S)
    for line in stdout.splitlines():
        if line.startswith("FASTBERT-LONG "):
            return json.loads(line.split(" ", 1)[1])
    tail = (stderr or stdout).strip().splitlines()[-1:] or [f"exit {returncode}"]
    raise RuntimeError(f"the measuring process failed: {tail[0][:300]}")


def _run_child(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    """Run a measuring process in its own session (a Ctrl-C in the terminal reaches this process only) and
    return (exit status, stdout, stderr). It is killed with this process: on any exception (Ctrl-C, the
    timeout: ``subprocess.TimeoutExpired``) and on SIGTERM / SIGHUP, which otherwise ended this process
    at once and left the child measuring (up to ``timeout``, GBs at long lengths) and the run's temporary
    folder behind: here they raise ``SystemExit(128 + signal)`` instead, so the ``finally`` blocks run."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:  # an ignored one (nohup) stays ignored
                previous[sig] = signal.signal(sig, stop)
    try:
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        ) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            return proc.returncode, stdout, stderr
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reference(model: str, length: int, seed: int):
    """(transformers eager float64 output, transformers eager fp32 output) of the long input."""
    import torch

    from fastbert.benchmark.workloads import Shape, hf_variant, inputs_for, load_source_model

    source = load_source_model(model, "model", "cpu", seed=seed)
    inputs = inputs_for(source.config, Shape(batch=1, seqlen=length), "cpu", seed=seed)
    with torch.inference_mode():
        torch_out = source(**inputs).last_hidden_state
        ref_model = hf_variant(source, "eager", torch.float64)
        del source
        ref = ref_model(**inputs).last_hidden_state
    del ref_model
    gc.collect()
    return ref, torch_out


def run_long(
    model: str = DEFAULT_MODEL,
    shapes=DEFAULT_SHAPES,
    providers=DEFAULT_PROVIDERS,
    rounds: int = 1,
    threads: int = 2,
    seed: int = 0,
    gate_max: int = GATE_MAX,
    out: str | None = None,
    command: str = "",
    log=print,
) -> dict[str, Any]:
    """Measures the rows; returns ``bench.json``'s content (rows stream to ``<out>/rows.jsonl``)."""
    import torch

    from fastbert.benchmark.run import SCHEMA, environment
    from fastbert.benchmark.timing import median_iqr
    from fastbert.benchmark.workloads import fastbert_family_missing, hf_config, parse_shape
    from fastbert.core import tolerances

    for p in providers:
        if p not in PROVIDERS:
            raise ValueError(f"--suite long: unknown provider {p!r}; known: {', '.join(PROVIDERS)}")
    config = hf_config(model)
    # every shape is checked before any row runs or rows.jsonl is emptied: a bad one after the first ended
    # the run with the earlier lengths measured (minutes each) and no bench.json
    for label in shapes:
        shape = parse_shape(label)
        if shape.batch != 1 or shape.padded:
            raise ValueError(f"--suite long: one input per row (1xLENGTH), got {label!r}")
        if shape.seqlen > config.max_position_embeddings:
            raise ValueError(f"{label}: longer than {model}'s {config.max_position_embeddings} positions")
    torch.set_num_threads(threads)
    env = {**environment("cpu"), "threads": threads}
    sink = report.RowSink(os.path.join(out, "rows.jsonl")) if out else None
    rows: list[dict[str, Any]] = []
    missing = fastbert_family_missing(config)
    start = time.perf_counter()
    rng = random.Random(seed)

    def emit(r):
        rows.append(r)
        if sink is not None:
            sink.write(r)
        log(report.row_line(r))

    def row(**fields):
        r: dict[str, Any] = dict.fromkeys(report.ROW_FIELDS)
        r.update(suite="long", group="long", model=model, task="model", dtype="fp32", baseline="hf-sdpa")
        r.update(note="")
        r.update(fields)
        r.update({k: env.get(k) for k in report.ENV_FIELDS})
        return r

    tmp = tempfile.mkdtemp(prefix="fastbert-long-")
    try:
        for label in shapes:
            length = parse_shape(label).seqlen
            info = dict(shape=label, batch=1, seqlen=length, tokens=length)
            live = []
            for p in providers:
                if PROVIDERS[p] == "fastbert" and missing:
                    emit(row(provider=p, status="skipped", note=missing, **info))
                else:
                    live.append(p)
            gate = None
            if length <= gate_max and live:
                gate = _reference(model, length, seed)
            results: dict[str, list[dict[str, Any]]] = {p: [] for p in live}
            outputs: dict[str, str] = {}
            failed: dict[str, str] = {}
            for _ in range(rounds):
                order = [p for p in live if p not in failed]
                rng.shuffle(order)
                for p in order:
                    save = os.path.join(tmp, f"{p}-{length}.pt")
                    try:
                        results[p].append(_child(model, p, length, threads, seed, save))
                        outputs[p] = save
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        failed[p] = f"{type(e).__name__}: {e}"[:300]
            verdicts: dict[str, tuple[bool, dict[str, Any]]] = {}
            for p, path in outputs.items():
                out_t = torch.load(path)
                if gate is not None:
                    ref, torch_out = gate
                    v = tolerances.judge(out_t, torch_out, ref, torch.float32, None)
                    figures = {"error": v.error if v.finite else None, "torch_error": v.torch_error}
                    verdicts[p] = (v.ok, {**figures, "bound": v.bound, "message": v.message("output")})
                elif p != "hf-sdpa" and "hf-sdpa" in outputs:
                    theirs = torch.load(outputs["hf-sdpa"])
                    diff = (out_t - theirs).abs().max().item()
                    verdicts[p] = (True, {"message": f"not judged (longer than {gate_max}); max |diff| "
                                          f"to transformers sdpa fp32 {diff:.2e}"})  # fmt: skip
            base = [x["ms"] for x in results.get("hf-sdpa", [])]
            for p in live:
                if p in failed and not results[p]:
                    emit(row(provider=p, status="error", note=failed[p], **info))
                    continue
                ok, figures = verdicts.get(p, (True, {}))
                message = figures.pop("message", "")
                if not ok:
                    emit(row(provider=p, status="wrong", note=f"{message}: no time", **figures, **info))
                    continue
                ms = [x["ms"] for x in results[p]]
                ratios = [b / m for b, m in zip(base, ms) if m > 0]
                ratio, ratio_lo, ratio_hi = median_iqr(ratios)  # the IQR, as the other suites' rows
                last = results[p][-1]
                notes = [message] if message and gate is None else []
                if p in failed:  # it ran in some rounds, then failed: say so beside the rounds it has
                    notes.append(f"failed in a later round: {failed[p]}")
                if last["local_ms"] is not None:
                    notes.append(
                        f"{last['local_layers']} local layers {last['local_ms']:.0f} ms, "
                        f"{last['global_layers']} global layers {last['global_ms']:.0f} ms"
                    )
                med = statistics.median(ms)
                r = row(
                    provider=p,
                    status="ok",
                    median_ms=round(med, 1),
                    min_ms=round(min(ms), 1),
                    rounds=len(ms),
                    ratio=None if ratio is None else round(ratio, 3),
                    ratio_lo=None if ratio_lo is None else round(ratio_lo, 3),
                    ratio_hi=None if ratio_hi is None else round(ratio_hi, 3),
                    tok_per_s=round(length / (med / 1e3), 1),
                    peak_mem_mb=statistics.median(
                        [x["peak_mem_mb"] for x in results[p] if x["peak_mem_mb"] is not None] or [None]
                    ),
                    note="; ".join(notes),
                    local_ms=last["local_ms"],
                    global_ms=last["global_ms"],
                    hwm_mb=last["hwm_mb"],
                    rss_before_mb=last["rss_before_mb"],
                    **figures,
                    **info,
                )
                emit(r)
            gate = None
            gc.collect()
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        **env,
        "schema": SCHEMA,
        "suite": "long",
        "command": command,
        "wall_s": round(time.perf_counter() - start, 1),
        "reference": f"transformers eager in float64 up to {gate_max} tokens; rule: fastbert.core.tolerances",
        "memory": "VmHWM - VmRSS around the timed call, in a fresh process per row",
    }
    result = {"schema": SCHEMA, "meta": meta, "rows": rows}
    if out:  # TABLE.md whole in one replace (an append after it could be cut off by an interrupt)
        report.write_outputs(result, out, plots=False, table_extra="\n" + table(rows) + "\n")
    return result


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per length and provider, time, speed-up, peak memory, local / global layers' time."""
    head = [
        "length",
        "provider",
        "ms",
        "× hf-sdpa",
        "peak MiB",
        "local layers ms",
        "global layers ms",
        "status",
    ]
    body = []
    for r in rows:
        body.append(
            [
                str(r.get("tokens")),
                r["provider"],
                "-" if r.get("median_ms") is None else f"{r['median_ms']:.0f}",
                "-" if r.get("ratio") is None else f"{r['ratio']:.2f}×",
                "-" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}",
                "-" if r.get("local_ms") is None else f"{r['local_ms']:.0f}",
                "-" if r.get("global_ms") is None else f"{r['global_ms']:.0f}",
                r["status"] + (f": {r['note']}" if r["status"] != "ok" and r.get("note") else ""),
            ]
        )
    return report.markdown_table(head, body)


def cli_main(args: argparse.Namespace) -> int:
    """``fastbert bench --suite long [--models M] [--shapes 1x2048,...] [--providers ...] [--rounds N]``."""
    from fastbert.benchmark.run import command_line
    from fastbert.benchmark.workloads import TINY_MODELS

    if args.device is not None and str(args.device) != "cpu":
        raise ValueError(
            f"--suite long runs on the CPU (its peak memory is the process's resident set), not --device {args.device}"
        )
    model = (args.models or [DEFAULT_MODEL])[0]
    if args.tiny:
        model = TINY_MODELS.get(model, model)
    shapes = args.shapes or (("1x64", "1x128") if args.tiny else DEFAULT_SHAPES)
    result = run_long(
        model=model,
        shapes=shapes,
        providers=args.providers or DEFAULT_PROVIDERS,
        rounds=args.rounds or 1,
        threads=args.threads or 2,
        seed=args.seed,
        out=args.out,
        command=command_line(),
        log=(lambda s: None) if args.quiet else print,
    )
    print()
    print(table(result["rows"]))
    print(f"wall time {result['meta']['wall_s']} s" + (f"; wrote {args.out}" if args.out else ""))
    bad = [r for r in result["rows"] if r["status"] in ("wrong", "error")]
    for r in bad:
        print(f"fastbert bench: {r['provider']} {r['shape']}: {r['status']}: {r['note']}", file=sys.stderr)
    if not any(r.get("median_ms") is not None for r in result["rows"]):
        print("fastbert bench: error: nothing was timed", file=sys.stderr)
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child_main(sys.argv[2:]))
    print("usage: fastbert bench --suite long [...]", file=sys.stderr)
    sys.exit(2)
