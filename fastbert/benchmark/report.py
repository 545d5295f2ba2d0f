"""Result files and tables of ``fastbert bench``: ``rows.jsonl`` (one row per line, written as measured),
``bench.json``, ``bench.csv``, ``TABLE.md``, ``scaling.png``; and the README tables regenerated from them::

    python -m fastbert.benchmark.report --readme benchmarks/results/cpu-amd-epyc/quick benchmarks/results/cpu-amd-epyc/cpu-suite

:func:`format_table` is the one small text-table formatter of the package (``fastbert check`` can use it).
This module imports nothing heavy at the top (no torch), so anything may use the formatter.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ..output_files import open_output
from ..tables import format_table, markdown_table  # noqa: F401  (the report's tables; re-exported)

#: Columns of a row (``rows.jsonl``, ``bench.csv``, ``bench.json``'s ``rows``), then the environment columns.
ROW_FIELDS: tuple[str, ...] = (
    "suite",
    "group",
    "model",
    "task",
    "shape",
    "batch",
    "seqlen",
    "tokens",
    "dtype",
    "provider",
    "baseline",
    "status",
    "median_ms",
    "min_ms",
    "rounds",
    "ratio",
    "ratio_lo",
    "ratio_hi",
    "first_call_s",
    "build_s",
    "seq_per_s",
    "tok_per_s",
    "tflops",
    "error",
    "torch_error",
    "bound",
    "min_cosine",
    "peak_mem_mb",
    "note",
)
ENV_FIELDS: tuple[str, ...] = (
    "device",
    "device_name",
    "cpu",
    "cpu_details",
    "cores",
    "gpu",
    "threads",
    "torch",
    "cuda",
    "transformers",
    "triton",
    "onnxruntime",
    "openvino",
    "sentence_transformers",
    "fastbert",
    "python",
    "date",
)
TIMED = ("ok", "cut")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class RowSink:
    """``rows.jsonl``: truncated when the run starts, then one JSON object appended per row and flushed to
    disk at once, so a run killed mid-way keeps every row it finished."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        with open(path, "w"):
            pass

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(_jsonable(row)) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_rows(path: str) -> list[dict[str, Any]]:
    """The rows of a result folder or file (``rows.jsonl`` preferred, else ``bench.json``); a torn last
    line (a run killed while writing it) is ignored."""
    if os.path.isdir(path):
        jsonl = os.path.join(path, "rows.jsonl")
        path = jsonl if os.path.exists(jsonl) else os.path.join(path, "bench.json")
    if path.endswith(".json"):
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError(f"{path} has no 'rows' list: not a result file of fastbert bench")
        return data["rows"]
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def row_line(r: dict[str, Any]) -> str:
    """One progress line for a row."""
    where = " ".join(
        str(r.get(k)) for k in ("group", "model", "task", "dtype", "shape") if r.get(k) is not None
    )
    if r["status"] in TIMED and r.get("median_ms") is not None:
        ratio = (
            f" {r['ratio']:.2f}x [{r['ratio_lo']:.2f}-{r['ratio_hi']:.2f}]"
            if r.get("ratio") is not None
            else ""
        )
        what = f"{r['median_ms']:.2f} ms{ratio} ({r['rounds']} rounds)"
        return f"{where} {r['provider']}: {r['status']} {what}" + (f"; {r['note']}" if r.get("note") else "")
    return f"{where} {r['provider']}: {r['status']}" + (f": {r['note']}" if r.get("note") else "")


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------


def _value(r: dict[str, Any]) -> str:
    if (r.get("group") == "sentences" or r.get("task") == "encode") and r.get("seq_per_s") is not None:
        return f"{r['seq_per_s']:.1f} sent/s"
    return f"{r['median_ms']:.3g} ms" if r["median_ms"] < 100 else f"{r['median_ms']:.0f} ms"


def result_cell(r: dict[str, Any] | None) -> str:
    """A provider's cell in a pivot table: median (or sentences/s), speed-up over the baseline with its
    interquartile range; a status (``wrong``, ``cut``, ``error``) otherwise."""
    if r is None:
        return "-"
    if r["status"] not in TIMED or r.get("median_ms") is None:
        return r["status"]
    text = _value(r)
    if r.get("ratio") is not None and r["provider"] != r.get("baseline"):
        spread = (
            f" [{r['ratio_lo']:.2f}–{r['ratio_hi']:.2f}]"
            if r.get("ratio_lo") is not None and r.get("ratio_hi") is not None
            else ""
        )
        text += f" ({r['ratio']:.2f}×{spread})"
    return text + (" cut" if r["status"] == "cut" else "")


def _ordered(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def group_tables(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """Per group: (group name, markdown pivot table, lines of skipped / wrong providers)."""
    out = []
    _check_rows(rows)
    groups = _ordered(r.get("group") for r in rows)
    order = list(GROUP_TITLES)
    groups.sort(key=lambda g: order.index(g) if g in order else len(order))
    for group in groups:
        rs = [r for r in rows if r.get("group") == group]
        measured = [r for r in rs if r["status"] != "skipped" or r.get("shape")]
        providers = _ordered(r["provider"] for r in rs if r["status"] != "skipped")
        keys = _ordered(
            (r.get("model"), r.get("task"), r.get("dtype"), r["shape"], r.get("tokens"))
            for r in measured
            if r.get("shape") and r["status"] != "skipped"
        )
        cells = {
            (r.get("model"), r.get("task"), r.get("dtype"), r.get("shape"), r.get("tokens"), r["provider"]): r
            for r in rs
        }
        head = ["model", "task", "dtype", "shape", "real tokens"] + providers
        body = [list(k) + [result_cell(cells.get((*k, p))) for p in providers] for k in keys]
        notes = _ordered(  # a cut row with no time (its build or first call ran out of the budget) too
            f"`{r['provider']}` ({' '.join(str(r[k]) for k in ('model', 'dtype', 'shape') if r.get(k))}): "
            f"{r['status']}: {r['note']}"
            for r in rs
            if (r["status"] in ("skipped", "wrong", "error") or r.get("median_ms") is None) and r.get("note")
        )
        out.append((group, markdown_table(head, body) if body else "", notes))
    return out


def _check_rows(rows: Sequence[dict[str, Any]]) -> None:
    """A ValueError naming the fields a table needs when a row lacks them (``fastbert serve``'s or
    ``bench_embed.py``'s rows, not ``fastbert bench``'s); other fields may be missing (older files)."""
    for i, r in enumerate(rows):
        missing = [k for k in ("provider", "status") if k not in r]
        if missing:
            raise ValueError(
                f"row {i + 1} has no {' / '.join(repr(k) for k in missing)} field: not a row of fastbert bench "
                f"(its fields: {', '.join(list(r)[:8])})"
            )


def header_line(rows: Sequence[dict[str, Any]]) -> str:
    """Where and when: device, cores, threads, versions, date (of the first row; older files may lack some)."""
    r = rows[0]
    versions = ", ".join(
        f"{k.replace('_', '-')} {r[k]}"
        for k in ("torch", "transformers", "onnxruntime", "openvino", "sentence_transformers", "fastbert")
        if r.get(k)
    )
    cores = f", {r['cores']} cores" if r.get("cores") else ""
    cpu = f", {r['cpu_details']}" if r.get("cpu_details") and r.get("device") == "cpu" else ""
    threads = f", {r['threads']} threads" if r.get("threads") else ""
    where = f"**{r.get('device_name') or r.get('device') or 'unknown device'}** ({r.get('device') or '?'}{cpu}{cores}{threads})"
    return ", ".join(part for part in (where, versions, r.get("date") or "no date") if part)


GROUP_TITLES = {
    "quick": "fastbert against transformers `sdpa` (the `--quick` rows)",
    "e2e": "End to end: last hidden state, fastbert against transformers, torch.compile and the rivals",
    "sentences": "sentence-transformers `encode` (sentences/s; the baseline is plain `encode`)",
    "scaling": "Scaling: batch size and padding fraction (also `scaling.png`)",
    "overhead": "Host overhead: a 12-layer, hidden-32 BERT (BERT-base's op count, almost no math)",
    "compile": "torch.compile",
    "graphs": "CUDA graphs at 1 × 128",
    "families": "The encoder families: XLM-RoBERTa and MPNet base-size, random weights (baseline: transformers "
    "`sdpa`; for MPNet `eager`, the only attention transformers has for it)",
    "modernbert": "ModernBERT base-size, random weights, against transformers `sdpa`",
    "long": "One long input (`--suite long`): a fresh process per row, one timed call after a 128-token warm-up; "
    "parity judged up to 2,048 tokens",
}


def summary_markdown(rows: Sequence[dict[str, Any]], command: str | None = None) -> str:
    """The tables of a run: the device line, the command, one pivot table per group with its notes."""
    if not rows:
        return "no rows\n"
    _check_rows(rows)
    lines = [header_line(rows), ""]
    if command:
        lines += ["```bash", command, "```", ""]
    baseline = rows[0].get("baseline") or "hf-sdpa"
    lines += [
        f"Median per call; in parentheses the speed-up over the group's baseline (`{baseline}` unless said) as the "
        "median of per-round ratios, providers interleaved in a fresh random order each round, with its "
        "interquartile range. Every timed provider first passed the parity gate (`fastbert.core.tolerances` against "
        "transformers eager in float64; quantized rivals: min cosine ≥ 0.999).",
        "",
    ]
    for group, table, notes in group_tables(rows):
        lines += [f"### {GROUP_TITLES.get(group, group or 'rows')}", ""]
        if table:
            lines += [table, ""]
        if notes:
            lines += ["Not timed:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


# the result files go through open_output: written beside their targets and moved over them once complete (a
# run killed while writing leaves the last whole file, never a torn one that json.load fails on, nor a temporary)
def write_json(result: dict[str, Any], path: str) -> None:
    with open_output(path) as f:
        json.dump(_jsonable(result), f, indent=1)
        f.write("\n")


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
    with open_output(path) as f:  # newlines as written: the csv module's own
        writer = csv.DictWriter(f, fieldnames=list(ROW_FIELDS) + list(ENV_FIELDS), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in _jsonable(r).items()})


def write_scaling_plot(rows: Sequence[dict[str, Any]], path: str) -> str | None:
    """``scaling.png``: microseconds per real token against batch size (no padding) and against the padding
    fraction (16 rows padded to 128), for every provider of the ``scaling`` group. None without matplotlib
    or without scaling rows."""
    pts = [r for r in rows if r["group"] == "scaling" and r["status"] in TIMED and r.get("median_ms")]
    if not pts:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for p in _ordered(r["provider"] for r in pts):
        mine = [r for r in pts if r["provider"] == p]
        padded = [r for r in mine if "p" in r["shape"].split("x", 1)[1]]
        unpadded = [r for r in mine if r not in padded]
        by_batch = sorted((r["batch"], 1e3 * r["median_ms"] / r["tokens"]) for r in unpadded)
        batches = {r["batch"] for r in padded}
        pad = sorted(
            (round(100 * (1 - r["tokens"] / (r["batch"] * r["seqlen"]))), 1e3 * r["median_ms"] / r["tokens"])
            for r in mine
            if r["batch"] in batches
        )
        if by_batch:
            left.plot(*zip(*by_batch), marker="o", label=p)
        if pad:
            right.plot(*zip(*pad), marker="o", label=p)
    left.set_xscale("log", base=2)
    left.set_xlabel("batch size (no padding)")
    left.set_ylabel("µs per real token")
    right.set_xlabel("padding, % of the padded tokens")
    right.set_ylabel("µs per real token")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    r0 = pts[0]
    fig.suptitle(
        f"fastbert bench: {r0['model']} {r0['dtype']}, {r0['device_name']}, {r0['threads']} threads",
        fontsize=9,
    )
    fig.tight_layout()
    with open_output(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path


def write_outputs(
    result: dict[str, Any], out_dir: str, plots: bool = True, table_extra: str = ""
) -> list[str]:
    """``bench.json``, ``bench.csv``, ``TABLE.md`` (``table_extra`` at its end) and ``scaling.png`` (``plots``
    and matplotlib) into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    rows = result["rows"]
    paths = [os.path.join(out_dir, n) for n in ("bench.json", "bench.csv", "TABLE.md")]
    write_json(result, paths[0])
    write_csv(rows, paths[1])
    with open_output(paths[2]) as f:
        f.write(summary_markdown(rows, result.get("meta", {}).get("command")))
        f.write(f"\nWall time of the run: {result.get('meta', {}).get('wall_s')} s.\n")
        f.write(table_extra)
    png = write_scaling_plot(rows, os.path.join(out_dir, "scaling.png")) if plots else None
    return paths + ([png] if png else [])


def readme_markdown(folders: Sequence[str]) -> str:
    """The README benchmark section regenerated from result folders (their ``rows.jsonl``)."""
    parts = []
    for folder in folders:
        rows = read_rows(folder)
        command = None
        meta_path = os.path.join(folder, "bench.json") if os.path.isdir(folder) else None
        if meta_path and os.path.exists(meta_path):
            with open(meta_path) as f:
                command = json.load(f).get("meta", {}).get("command")
        try:
            parts.append(summary_markdown(rows, command))
        except ValueError as e:
            raise ValueError(f"{folder}: {e}") from e
        if os.path.isdir(folder) and os.path.exists(os.path.join(folder, "scaling.png")):
            parts.append(f"![scaling]({os.path.join(folder, 'scaling.png')})\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastbert.benchmark.report --readme FOLDER...``: prints the markdown to paste."""
    parser = argparse.ArgumentParser(prog="python -m fastbert.benchmark.report", description=main.__doc__)
    parser.add_argument("--readme", nargs="+", required=True, metavar="FOLDER", help="result folders")
    args = parser.parse_args(argv)
    for folder in args.readme:
        if not os.path.exists(folder):
            parser.error(f"--readme: {folder!r} does not exist")
    try:
        text = readme_markdown(args.readme)
    except (OSError, ValueError) as e:  # a folder without rows, rows of another tool
        parser.error(f"--readme: {e}")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
