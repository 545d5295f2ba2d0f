"""``fastbert bench``: argparse glue over :mod:`fastbert.benchmark.run`."""

from __future__ import annotations

import argparse
import sys

from fastbert.benchmark.suites import SUITE_NAMES

#: Per suite: threads, warm-up rounds, most rounds, fewest rounds, seconds of timed rounds per row.
SUITE_DEFAULTS = {
    "quick": dict(threads=None, warmup=1, rounds=15, min_rounds=5, target_s=1.5),
    "cpu": dict(threads=2, warmup=0, rounds=20, min_rounds=5, target_s=3.0),
    "families": dict(threads=2, warmup=0, rounds=20, min_rounds=5, target_s=3.0),
    "modernbert": dict(threads=2, warmup=0, rounds=20, min_rounds=5, target_s=3.0),
    "gpu-e2e": dict(threads=None, warmup=3, rounds=50, min_rounds=10, target_s=1.0),
    "gpu-compile": dict(threads=None, warmup=3, rounds=50, min_rounds=10, target_s=1.0),
}


def _csv_list(text: str) -> list[str]:
    """argparse type: comma-separated names; none at all (``--providers ,``, ``--shapes ""``) is refused by
    the option's name (an empty list read as "not given" ran the suite's own list)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"names nothing ({text!r}): give comma-separated names")
    return names


def _at_least(name: str, low: float, kind: type, above: bool = False, infinite: bool = False):
    """argparse type: a number of ``kind`` not below ``low`` (with ``above``, more than it), refused by the
    option's name before anything runs; not a number: argparse's own "invalid int value" message. ``nan``
    (which no comparison refuses) and, unless ``infinite``, ``inf`` are refused too: ``--target-time nan``
    ended every row in "cannot convert float NaN to integer", ``--time-budget nan`` cut every row."""

    def parse(text: str):
        value = kind(text)  # ValueError: argparse says "invalid int value: 'two'"
        if (
            value != value
            or (value == float("inf") and not infinite)
            or value < low
            or (above and value == low)
        ):
            finite = "" if infinite else "a finite number "
            raise argparse.ArgumentTypeError(
                f"{name} must be {finite}{'more than' if above else 'at least'} {low}, got {text}"
            )
        return value

    parse.__name__ = kind.__name__
    return parse


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``fastbert bench``."""
    parser.add_argument(
        "--suite",
        choices=(*SUITE_NAMES, "serve", "long"),
        default=None,
        help="quick (default): fastbert vs transformers sdpa on MiniLM, two rows; cpu: the full CPU suite "
        "(rivals, sentence-transformers, scaling, host overhead, the families); families: XLM-R and MPNet "
        "base-size; modernbert: ModernBERT base-size; long: ModernBERT on one input of --shapes 1x2048,... "
        "(time and peak memory, a fresh process per row); gpu-e2e, gpu-compile: the GPU check's rows; "
        "serve: fastbert serve vs FastAPI + sentence-transformers under load",
    )
    parser.add_argument("--quick", action="store_true", help="the same as --suite quick")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tiny configs and shapes, 1-2 timed rounds unless given: a dry run in seconds",
    )
    parser.add_argument(
        "--out", help="folder for rows.jsonl (written row by row), bench.json/csv, TABLE.md, PNG"
    )
    parser.add_argument(
        "--time-budget",
        "--max-time",
        dest="time_budget",
        type=_at_least("--time-budget", 0, float, above=True, infinite=True),
        help="seconds for the whole run, enforced inside rows (a row that would overrun is cut and marked); "
        "--quick: 45 on the CPU, 160 on CUDA unless given",
    )
    parser.add_argument(
        "--models",
        type=_csv_list,
        help="replace the suite's models (bert-base, minilm, tiny, xlm-roberta-base, mpnet-base, "
        "modernbert-base, a folder)",
    )
    parser.add_argument("--tasks", type=_csv_list, help="replace the suite's tasks (model, mlm, embed)")
    parser.add_argument(
        "--shapes", type=_csv_list, help="replace the suite's shapes: 8x128, 16x128p75, 32xskewed8-256, ..."
    )
    parser.add_argument("--dtypes", type=_csv_list, help="replace the suite's dtypes (fp32, fp16, bf16)")
    parser.add_argument(
        "--providers", type=_csv_list, help="replace the suite's providers (see --list-providers)"
    )
    parser.add_argument(
        "--list-providers", action="store_true", help="list the providers and whether they run here"
    )
    parser.add_argument("--device", help="cuda or cpu (default: cuda when present)")
    parser.add_argument(
        "--threads",
        type=_at_least("--threads", 1, int),
        help="torch.set_num_threads (default: 2 for --suite cpu)",
    )
    parser.add_argument(
        "--warmup",
        type=_at_least("--warmup", 0, int),
        help="untimed warm-up rounds after the parity gate's two calls (cpu suite: 0)",
    )
    parser.add_argument("--rounds", type=_at_least("--rounds", 1, int), help="most timed rounds per row")
    parser.add_argument(
        "--min-rounds",
        type=_at_least("--min-rounds", 1, int),
        help="fewest timed rounds per row (unless the budget cuts it)",
    )
    parser.add_argument(
        "--target-time",
        type=_at_least("--target-time", 0, float),
        help="seconds of timed rounds aimed for per row",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    parser.add_argument(
        "--flush-l2", action="store_true", help="overwrite a buffer larger than the L2 before each call"
    )
    parser.add_argument(
        "--compile-dynamic",
        choices=("auto", "true", "false"),
        default="false",
        help="torch.compile(dynamic=...): false (default) compiles a graph per shape, torch.compile's best case",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="accepted for older scripts; rows print as they end"
    )
    parser.add_argument("--no-plots", action="store_true", help="no PNG")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")


#: ``--tiny``'s rounds, unless given: no warm-up beyond the parity gate's two calls, one or two timed (a dry
#: run shows that every row runs; under the interpreter one call of a kernel row takes seconds)
TINY_ROUNDS = dict(warmup=0, rounds=2, min_rounds=1)

#: ``--quick``'s own time budget when none is given (seconds; on CUDA the first calls compile kernels):
#: a row that would overrun is cut and marked, so the whole command ends within a minute on the CPU.
QUICK_BUDGET_S = {"cpu": 45.0, "cuda": 160.0}


def options_from_args(args: argparse.Namespace):
    """The :class:`~fastbert.benchmark.run.BenchOptions` of parsed arguments."""
    from fastbert.benchmark.run import BenchOptions, command_line, default_device

    suite = "quick" if args.quick else (args.suite or "quick")
    d = SUITE_DEFAULTS[suite]
    if args.tiny:  # a dry run checks that every row runs, not its speed: few rounds (the interpreter is slow)
        d = {**d, **TINY_ROUNDS}
    if args.device is not None:  # refused in one line before anything loads: cuda without CUDA, banana...
        from fastbert.devices import available_device

        args.device = str(available_device(args.device))
    budget = args.time_budget
    if budget is None and suite == "quick":
        budget = QUICK_BUDGET_S["cuda" if (args.device or default_device()).startswith("cuda") else "cpu"]
    pick = lambda value, key: d[key] if value is None else value
    return BenchOptions(
        suite=suite,
        device=args.device or ("cpu" if suite in ("cpu", "families", "modernbert") else None),
        threads=pick(args.threads, "threads"),
        tiny=args.tiny,
        models=args.models,
        tasks=args.tasks,
        shapes=args.shapes,
        dtypes=args.dtypes,
        providers=args.providers,
        warmup=pick(args.warmup, "warmup"),
        rounds=pick(args.rounds, "rounds"),
        min_rounds=pick(args.min_rounds, "min_rounds"),
        target_s=pick(args.target_time, "target_s"),
        time_budget_s=budget,
        seed=args.seed,
        flush_l2=args.flush_l2,
        compile_dynamic={"auto": None, "true": True, "false": False}[args.compile_dynamic],
        out=args.out,
        plots=not args.no_plots,
        command=command_line(),
    )


def list_providers(device: str) -> str:
    """One line per provider: name, description, and whether it runs here (or the pip command)."""
    import torch

    from fastbert.benchmark.providers import PROVIDERS
    from fastbert.benchmark.report import format_table

    rows = []
    for name, p in PROVIDERS.items():
        reasons = {
            d: p.unavailable(device, dt) for d, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))
        }
        state = "runs" if not any(reasons.values()) else "; ".join(sorted({r for r in reasons.values() if r}))
        if reasons["fp32"] is None and reasons["bf16"]:
            state = f"fp32 only ({reasons['bf16']})"
        rows.append((name, p.kind, state, p.description))
    return format_table(["provider", "kind", f"on {device}", "what"], rows)


def check_out(out: str | None) -> None:
    """A ValueError when ``--out`` exists and is not a folder (it is made when missing)."""
    import os

    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(
            f"--out {out} is not a folder: --out names the folder the results are written to (rows.jsonl, "
            "bench.json/csv, TABLE.md, PNG), created if missing"
        )


#: the flags --suite serve and --suite long do not read (their own runners): given, they were silently ignored
#: (--suite serve --device cuda ran on the CPU)
_NOT_READ = {
    "serve": ("device", "models", "providers", "rounds", "time_budget", "tasks", "dtypes", "shapes", "warmup",
              "min_rounds", "target_time", "flush_l2"),
    "long": ("time_budget", "tasks", "dtypes", "warmup", "min_rounds", "target_time", "flush_l2"),
}  # fmt: skip


def _ignored_flags(args) -> str | None:
    """Why ``args`` ask the serve or long suite for something it does not do (None when they do not)."""
    given = [
        "--" + name.replace("_", "-")
        for name in _NOT_READ.get(args.suite, ())
        if getattr(args, name, None) not in (None, False)  # --flush-l2 is False when not given
        and not (name == "device" and str(args.device) == "cpu")
    ]
    if given:
        return (
            f"--suite {args.suite} does not take {', '.join(given)} (it runs its own fixed rows: see --help)"
        )
    if args.suite == "long" and args.models and len(args.models) > 1:
        return f"--suite long runs one model, got --models {','.join(args.models)}"
    return None


def cli_main(args: argparse.Namespace) -> int:
    """``fastbert bench``: runs a suite, prints the table; 1 when a fastbert row is wrong or failed."""
    check_out(args.out)
    if args.list_providers:  # before serve and long, whose runners ran their whole suite instead of listing
        from fastbert.benchmark.run import default_device

        if args.suite in ("serve", "long"):  # both run on the CPU (and have no SUITE_DEFAULTS)
            from fastbert.devices import available_device

            device = "cpu" if args.device is None else str(available_device(args.device))
        else:
            device = options_from_args(args).device or default_device()
        print(list_providers(device))
        return 0
    ignored = _ignored_flags(args)
    if ignored:
        print(f"fastbert bench: error: {ignored}", file=sys.stderr)
        return 2
    if args.suite == "serve":  # HTTP servers under load: fastbert.benchmark.serve
        from fastbert.benchmark.serve import cli_main as serve_main

        return serve_main(args)
    if args.suite == "long":  # one long input, a fresh process per row: fastbert.benchmark.long
        from fastbert.benchmark.long import cli_main as long_main

        return long_main(args)
    from fastbert.benchmark import report
    from fastbert.benchmark.run import run_benchmark

    opts = options_from_args(args)
    result = run_benchmark(opts, log=(lambda s: None) if args.quiet else None)
    print()
    print(report.summary_markdown(result["rows"], opts.command))
    print(f"wall time {result['meta']['wall_s']} s" + (f"; wrote {opts.out}" if opts.out else ""))
    bad = [
        r
        for r in result["rows"]
        if r["status"] in ("wrong", "error") and r["provider"].startswith(("fastbert", "st-fastbert"))
    ]
    for r in bad:
        print(f"fastbert bench: {r['provider']} {r['shape']}: {r['status']}: {r['note']}", file=sys.stderr)
    untimed = nothing_timed(result["rows"])
    if untimed:
        print(f"fastbert bench: error: {untimed}", file=sys.stderr)
        return 1
    return 1 if bad else 0


def nothing_timed(rows: list[dict]) -> str | None:
    """One line saying why, when no row of a run has a time; None when some row does."""
    if any(r.get("median_ms") is not None for r in rows):
        return None
    if not rows:
        return "nothing was timed: the suite and the filters (--models, --tasks, --shapes, --dtypes, --providers) select no row"
    why: dict[str, int] = {}
    for r in rows:
        reason = f"{r.get('status')}: {r.get('note') or 'no reason recorded'}"
        why[reason] = why.get(reason, 0) + 1
    shown = "; ".join(f"{n} row(s) {reason}" for reason, n in list(why.items())[:3])
    more = f"; and {len(why) - 3} other reason(s)" if len(why) > 3 else ""
    return f"nothing was timed ({len(rows)} row(s), none with a time): {shown}{more}"
