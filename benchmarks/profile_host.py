"""Where a forward's time goes on the host: the cost of one kernel launch, wall time against GPU-busy time.

On the H200 of 2026-12-04 the end-to-end rows were bound by the host (a bert-base forward at 32x128 kept the
GPU busy about 2 ms of a 7-14 ms call, one fastbert launch cost 70-100 us): this script measures that, as step 2
of ``benchmarks/gpu_check.sh`` (``--tiny --device cpu``: its dry run, under the Triton interpreter).

    python benchmarks/profile_host.py [--device cuda] [--tiny] [--out host.txt]

Sections: (1) the host cost of one ``add_layernorm`` launch through each layer of fastbert's launch path,
beside torch's unfused ops and an empty Triton kernel; (2) per forward, wall time and the GPU's kernel time
(torch.profiler) for fastbert's triton and sdpa tables and transformers' sdpa; (3) cProfile of the launcher.
Timings are wall clock on a synchronised device: no other work may run beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import io
import pstats
import sys
import time
import traceback


def per_call_us(fn, n: int, device: str) -> float:
    from fastbert.benchmark.timing import synchronize

    fn()
    synchronize(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    synchronize(device)
    return (time.perf_counter() - t) / n * 1e6


def gpu_busy_ms(fn, n: int, device: str) -> float | None:
    """The device's kernel time per call (torch.profiler), None off CUDA."""
    if not device.startswith("cuda"):
        return None
    from torch.profiler import ProfilerActivity, profile

    from fastbert.benchmark.timing import synchronize

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            fn()
        synchronize(device)
    return sum(e.self_device_time_total for e in prof.key_averages()) / n / 1e3


def launch_costs(device: str, n: int, say) -> None:
    import torch
    import triton

    from fastbert import kernels
    from fastbert.benchmark.timing import synchronize

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    x, r = (torch.randn(128, 768, device=device, dtype=dtype) for _ in range(2))
    b, w, lb = (torch.randn(768, device=device, dtype=dtype) for _ in range(3))
    ln = kernels.add_layernorm

    @triton.jit
    def _empty(X, n):
        pass

    cases = {
        "fastbert public function": lambda: ln(x, r, b, w, lb, 1e-12),
        "fastbert launcher (no checks)": lambda: ln.launcher(x, r, b, w, lb, 1e-12, wrap=False),
        "torch.ops.fastbert custom op": lambda: ln.op(x, r, b, w, lb, 1e-12),
        "torch: add, add, layer_norm": lambda: torch.nn.functional.layer_norm(
            x + b + r, (768,), w, lb, 1e-12
        ),
        "empty Triton kernel": lambda: _empty[(1,)](x, 5),
    }
    say(f"host cost of one call, add_layernorm (128, 768) {str(dtype).split('.')[-1]}, {n} calls each")
    with torch.no_grad():
        for name, fn in cases.items():
            say(f"  {name:32s} {per_call_us(fn, n, device):9.1f} us/call")
    prof = cProfile.Profile()
    fn = cases["fastbert launcher (no checks)"]
    with torch.no_grad():
        prof.enable()
        for _ in range(n):
            fn()
        synchronize(device)
        prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
    say("cProfile of the launcher (tottime):\n" + out.getvalue())


def forwards(device: str, tiny: bool, n: int, say) -> None:
    import torch

    import fastbert

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    cfg = (
        fastbert.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96)
        if tiny
        else fastbert.BertConfig()
    )
    torch.manual_seed(0)
    models = {}
    for impl in ("triton", "sdpa"):
        m = fastbert.BertModel(copy.deepcopy(cfg)).eval()  # a config each: the backend lives in it
        m.set_attn_implementation(impl)
        models[f"fastbert {impl}"] = m.to(device, dtype)
    try:
        import transformers

        hf = transformers.BertModel(transformers.BertConfig(**cfg.to_dict()), add_pooling_layer=True).eval()
        hf.config._attn_implementation = "sdpa"
        models["transformers sdpa"] = hf.to(device, dtype)
    except ImportError:
        say("transformers is not installed: its rows are skipped")
    shapes = ((1, 16), (4, 16)) if tiny else ((1, 128), (32, 128))
    say(
        f"per forward ({'tiny' if tiny else 'bert-base'} {str(dtype).split('.')[-1]}, no_grad, one row padded to half)"
    )
    for b, seq in shapes:
        ids = torch.randint(1, min(cfg.vocab_size, 20000), (b, seq), device=device)
        mask = torch.ones(b, seq, dtype=torch.long, device=device)
        mask[0, seq // 2 :] = 0
        for name, m in models.items():
            call = lambda m=m, ids=ids, mask=mask: m(input_ids=ids, attention_mask=mask)  # noqa: E731
            with torch.no_grad(), warnings_as_errors():
                wall = per_call_us(call, n, device) / 1e3
                busy = gpu_busy_ms(call, max(1, n // 2), device)
            busy_s = "n/a (no CUDA)" if busy is None else f"{busy:7.3f} ms"
            say(f"  {name:18s} {b}x{seq}: wall {wall:8.3f} ms   GPU busy {busy_s}")


@contextlib.contextmanager
def warnings_as_errors():
    """A backend that falls back (and warns) would be timed as another: make that an error."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="fastbert:")
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny config and few calls (the CPU dry run)")
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    import os

    import torch  # imports no triton

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported
    # the report is written line by line: a sub-step killed at its limit keeps what it measured
    report = open(args.out, "w") if args.out else None  # noqa: SIM115 - closed below, after the sections

    def say(text: str) -> None:
        print(text, flush=True)
        if report is not None:
            report.write(text + "\n")
            report.flush()

    say(f"profile_host: {torch.cuda.get_device_name() if device.startswith('cuda') else 'cpu'}, torch "
        f"{torch.__version__}, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")  # fmt: skip
    failed = 0
    for section in (
        lambda: launch_costs(device, 2 if args.tiny else 2000, say),
        lambda: forwards(device, args.tiny, 1 if args.tiny else 20, say),
    ):
        try:
            section()
        except Exception:
            failed += 1
            say(traceback.format_exc())
    if report is not None:
        report.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
