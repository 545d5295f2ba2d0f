"""What prepacked oneDNN weights (:mod:`fastbert.core.prepack`) give fastbert's CPU forward: the embedded
MiniLM with its linears on the prepacked copies and on the plain weights, interleaved in one process
(a fresh random order each round: ``fastbert.benchmark.timing.interleave``, as ``fastbert bench``), the copies made before timing. Where oneDNN does not run the linears (AVX2-only
CPUs: MKL does) both sides are the same.

    python3 benchmarks/bench_cpu_prepack.py [--dtype fp32|bf16] [--rounds 12] 32x128 8x128 1x16
    python3 benchmarks/bench_cpu_prepack.py --model bert-base 8x128    # BERT-base's shapes, random weights
"""

from __future__ import annotations

import argparse
import platform

import torch

import fastbert
from fastbert.benchmark.timing import interleave, warm_up
from fastbert.core import cpu, ops, prepack
from fastbert.hub import embedded_model_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shapes", nargs="*", default=["32x128", "8x128", "1x16"])
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--model",
        choices=("minilm", "bert-base"),
        default="minilm",
        help="the embedded MiniLM or BERT-base (random)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    if args.model == "minilm":
        model = fastbert.BertModel.from_pretrained(embedded_model_path(), torch_dtype=dtype).eval()
    else:  # BERT-base's config (BertConfig's defaults), random weights
        torch.manual_seed(0)
        model = fastbert.BertModel(fastbert.BertConfig()).to(dtype).eval()
    flags = sorted(
        cpu.cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}
    )
    print(
        f"{platform.processor() or platform.machine()}; flags {' '.join(flags)}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.model}, {args.dtype}; oneDNN linears: {ops._ONEDNN_LINEAR is not None}"
    )
    for shape in args.shapes:
        b, length = (int(v) for v in shape.split("x"))
        ids = torch.randint(1000, 20000, (b, length), generator=torch.Generator().manual_seed(0))
        mask = torch.ones(b, length, dtype=torch.long)

        def run(on: bool, ids=ids, mask=mask) -> torch.Tensor:
            prepack._ENABLED = on  # the copies stay: switched without release()
            with torch.inference_mode():
                return model(input_ids=ids, attention_mask=mask).last_hidden_state

        calls = {"plain": lambda _i=0: run(False), "prepacked": lambda _i=0: run(True)}
        try:
            same = torch.equal(run(False), run(True))
            warm_up(calls, "cpu", rounds=2, budget=None)
            rows = interleave(calls, "cpu", rounds=args.rounds, min_rounds=args.rounds)
        finally:
            prepack._ENABLED = prepack._enabled_from_env()
        count, nbytes = prepack.stats()
        a, c = rows.median_ms("plain"), rows.median_ms("prepacked")
        print(
            f"{shape}: plain {a:.1f} ms, prepacked {c:.1f} ms, plain/prepacked {a / c:.3f} "
            f"(per round {' '.join(f'{r:.3f}' for r in rows.ratios('prepacked', 'plain'))}); "
            f"bit-identical {same}; {count} copies, {nbytes / 2**20:.1f} MiB"
        )


if __name__ == "__main__":
    main()
