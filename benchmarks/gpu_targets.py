"""The GPU check's targets, pass/fail, from what its steps wrote (``benchmarks/gpu_check.sh`` runs this last).

    python benchmarks/gpu_targets.py --kernels OUT/kernels.csv --rows OUT/e2e/rows.jsonl OUT/compile/rows.jsonl \
        --steps OUT/steps.tsv [OUT2/steps.tsv] [--out OUT/targets.txt]

Inputs (any may be missing: its targets then read ``n/a``, never pass):
- ``--kernels``: ``bench_kernels.py``'s CSV (one row per kernel x shape x dtype x provider, a ``copy`` row);
- ``--rows``: ``fastbert bench`` rows.jsonl files (one JSON object a line: ``model, task, shape, dtype,
  provider, status, median_ms``, ...); later files add to earlier ones;
- ``--steps``: ``gpu_check.sh``'s ``name<TAB>exit status<TAB>seconds`` files (step 2 passes step 1's and its
  own: the CUDA test tier is every ``tests*`` sub-step of both).

Targets (BERT-base, bf16, one run): 32x128 and 32x512 at least 1.3x transformers ``sdpa`` and faster
than ``torch.compile`` of transformers; varlen 32 x U(16, 512) at least 2.5x transformers ``sdpa`` and
faster than packed tokens through torch's varlen flash attention (transformers has no packed path without
the flash-attn package, which the device lacks: the rival is plain torch ops on packed tokens with
``torch.nn.attention.varlen``, which is fastbert's ``sdpa`` path on CUDA, ``fastbert-sdpa``); 1x128 with CUDA
graphs at most 0.35 ms; the attention kernel at least SDPA flash at L=512, D=64; LayerNorm and GELU
kernels at least 80 % of the copy bandwidth measured in the same run; parity (the CUDA test tier's
sub-steps, ``tests*``, and ``fastbert check`` exit 0).

A ratio target is judged from one row group at a time (one rows file, one group, one shape: providers
timed in the same interleaved rounds): the fastbert row's ``ratio`` when the rival is the group's baseline,
else fastbert's ``ratio`` over the rival's. Where several groups measured it (step 2's compile group times
32 x 128 again), each is shown and the lowest decides. Rows ``cut`` by the time budget after some timed
rounds count, with their rounds.

Provider names are matched by role, so that a renamed provider is still found: fastbert = ``fastbert-triton``
(exactly), graphs = a fastbert provider naming ``graph``, transformers sdpa = ``hf-sdpa``, torch.compile of
transformers = an ``hf-`` provider naming ``compile``, torch varlen flash = ``fastbert-sdpa`` (on CUDA) or
``torch-varlen`` (its old name: the same model, in rows written before it was dropped).
Shapes: ``32x128``, ``32x512``, ``32xuniform16-512``, ``1x128``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VARLEN = "32xuniform16-512"
E2E_MODEL = "bert-base"
E2E_DTYPE = "bf16"


@dataclass(frozen=True)
class Target:
    name: str
    want: str
    got: str
    ok: bool | None  # None: not measured

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else "PASS" if self.ok else "FAIL"


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def read_rows(paths: list[Path]) -> list[dict]:
    """Rows of ``fastbert bench`` rows.jsonl files (missing files and broken lines are skipped); each row
    carries ``_file``, the index of its file in ``paths`` (a group is one run of one file)."""
    rows: list[dict] = []
    for i, path in enumerate(paths):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a killed step
                continue
            if isinstance(row, dict):
                rows.append({**row, "_file": i})
    return rows


def read_kernels(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_steps(paths: Path | list[Path] | None) -> dict[str, int]:
    """step name -> exit status, over one or more steps.tsv files (step 1's, then step 2's; the last run of
    a name wins)."""
    steps: dict[str, int] = {}
    if paths is None:
        return steps
    for path in [paths] if isinstance(paths, Path) else paths:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
                steps[parts[0]] = int(parts[1])
    return steps


# ---------------------------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------------------------

Role = Callable[[str], bool]
FASTBERT: Role = lambda p: p == "fastbert-triton"
GRAPHS: Role = lambda p: p.startswith("fastbert") and "graph" in p
HF_SDPA: Role = lambda p: p == "hf-sdpa"
HF_COMPILE: Role = lambda p: p.startswith("hf-") and "compile" in p
TORCH_VARLEN: Role = lambda p: p in ("fastbert-sdpa", "torch-varlen")


def _timed(row: dict) -> bool:
    """A row with a time: ``ok``, or ``cut`` by the time budget after some timed rounds (its median and
    interleaved ratio hold over the rounds it has)."""
    status = str(row.get("status", "ok")).lower()
    if not isinstance(row.get("median_ms"), (int, float)):
        return False
    if status == "cut":
        return isinstance(row.get("rounds"), int) and row["rounds"] >= 1
    return status in ("ok", "pass", "passed", "")


def _bert_base_bf16(row: dict, shape: str) -> bool:
    return (
        row.get("shape") == shape
        and str(row.get("dtype", E2E_DTYPE)) == E2E_DTYPE
        and str(row.get("model", E2E_MODEL)) == E2E_MODEL
    )


def best_ms(rows: list[dict], shape: str, role: Role, task: str = "model") -> float | None:
    """Fastest ``median_ms`` of a provider role at a shape (BERT-base, bf16; any task if ``task`` has none):
    for an absolute figure (the 1 x 128 latency), not for a ratio (:func:`group_ratios`)."""
    picked = [r for r in rows if _timed(r) and _bert_base_bf16(r, shape) and role(str(r.get("provider", "")))]
    in_task = [r for r in picked if r.get("task", task) == task]
    picked = in_task or picked
    return min(float(r["median_ms"]) for r in picked) if picked else None


@dataclass(frozen=True)
class Measured:
    """fastbert against a rival in one row group (one file, one group, one shape: the same interleaved
    rounds): ``ratio`` = the rival's time over fastbert's."""

    group: str
    ratio: float
    how: str  # "interleaved": the median of per-round ratios; "ratios": two such medians over one baseline
    ours_ms: float
    theirs_ms: float
    rounds: int | None
    cut: bool


def group_ratios(rows: list[dict], shape: str, rival: Role, task: str = "model") -> list[Measured]:
    """fastbert's speed-up over ``rival`` in each row group that timed both at ``shape``, from that group's
    own interleaved rounds: the fastbert row's ``ratio`` when the rival is the group's baseline (the median
    of per-round ratios), else fastbert's ``ratio`` over the rival's (both over the one baseline, same
    rounds), else the two medians of that group. Never a median of one run against another run's."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if _timed(r) and _bert_base_bf16(r, shape) and r.get("task", task) == task:
            key = (r.get("_file"), r.get("suite"), r.get("group"), r.get("model"), r.get("task"), shape)
            groups.setdefault(key, []).append(r)
    found = []
    for key, members in groups.items():
        ours = [r for r in members if FASTBERT(str(r.get("provider", "")))]
        theirs = [r for r in members if rival(str(r.get("provider", ""))) and r not in ours]
        for f in ours[:1]:
            for t in theirs:
                fr, tr = f.get("ratio"), t.get("ratio")
                if f.get("baseline") == t.get("provider") and isinstance(fr, (int, float)):
                    ratio, how = float(fr), "interleaved"
                elif isinstance(fr, (int, float)) and isinstance(tr, (int, float)) and tr > 0:
                    ratio, how = float(fr) / float(tr), "ratios"
                else:
                    ratio, how = float(t["median_ms"]) / float(f["median_ms"]), "medians"
                rounds = [x for x in (f.get("rounds"), t.get("rounds")) if isinstance(x, int)]
                found.append(
                    Measured(
                        group=str(key[2]),
                        ratio=ratio,
                        how=how,
                        ours_ms=float(f["median_ms"]),
                        theirs_ms=float(t["median_ms"]),
                        rounds=min(rounds) if rounds else None,
                        cut=str(f.get("status")) == "cut" or str(t.get("status")) == "cut",
                    )
                )
    return found


def _ratio_target(name: str, rows: list[dict], shape: str, rival: Role, need: float, strict: bool) -> Target:
    """Judged by the group with the lowest ratio when several measured it (step 1's e2e and step 2's
    compile rows both time 32 x 128): the target holds only where every run that measured it agrees."""
    want = f"> {need:g}x" if strict else f">= {need:g}x"
    found = group_ratios(rows, shape, rival)
    if not found:
        have_ours = any(
            _timed(r) and _bert_base_bf16(r, shape) and FASTBERT(str(r.get("provider"))) for r in rows
        )
        missing = "rival" if have_ours else "fastbert"
        return Target(name, want, f"no group with a timed {missing} row", None)
    found.sort(key=lambda m: m.ratio)
    worst = found[0]
    ok = worst.ratio > need if strict else worst.ratio >= need
    cut = f", cut after {worst.rounds} rounds" if worst.cut else ""
    got = f"{worst.ratio:.2f}x in {worst.group} ({worst.ours_ms:.3f} vs {worst.theirs_ms:.3f} ms{cut})"
    if len(found) > 1:
        got += "; also " + ", ".join(f"{m.ratio:.2f}x in {m.group}" for m in found[1:])
    return Target(name, want, got, ok)


def _kernel_rows(kernels: list[dict], kernel: str, shape_has: tuple[str, ...], provider: str) -> list[dict]:
    return [
        r
        for r in kernels
        if r.get("kernel") == kernel
        and r.get("provider") == provider
        and all(s in r.get("shape", "") for s in shape_has)
        and r.get("dtype") in ("fp16", "bf16")
    ]


def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def kernel_targets(kernels: list[dict]) -> list[Target]:
    out = []
    for dtype in ("bf16", "fp16"):
        tri = [
            r
            for r in _kernel_rows(kernels, "attention_padded", ("L=512", "D=64"), "triton")
            if r["dtype"] == dtype
        ]
        base = [
            r
            for r in kernels
            if r.get("kernel") == "attention_padded"
            and r.get("provider") in ("sdpa_flash", "sdpa")
            and "L=512" in r.get("shape", "")
            and "D=64" in r.get("shape", "")
            and r.get("dtype") == dtype
        ]
        name = f"attention kernel vs SDPA flash, L=512 D=64 {dtype}"
        if tri and base and _float(tri[0]["ms"]) and _float(base[0]["ms"]):
            ratio = float(base[0]["ms"]) / float(tri[0]["ms"])
            out.append(Target(name, ">= 1x", f"{ratio:.2f}x", ratio >= 1.0))
        else:
            out.append(Target(name, ">= 1x", "no row", None))
        for kernel, label in (("add_layernorm", "LayerNorm"), ("bias_act(gelu)", "GELU")):
            rows = [r for r in _kernel_rows(kernels, kernel, (), "triton") if r["dtype"] == dtype]
            # BERT-base's hidden size (H=768, GELU N=3072), most tokens: the largest transfer measured
            rows = [r for r in rows if "H=768" in r["shape"] or "N=3072" in r["shape"]] or rows
            rows = [r for r in rows if _float(r.get("pct_copy_bw")) is not None]
            name = f"{label} kernel, % of copy bandwidth, {dtype}"
            if rows:
                r = max(
                    rows,
                    key=lambda r: int(r["shape"].split("T=")[1].split(",")[0]) if "T=" in r["shape"] else 0,
                )
                pct = float(r["pct_copy_bw"])
                out.append(Target(name, ">= 80 %", f"{pct:.1f} % ({r['shape']})", pct >= 80.0))
            else:
                out.append(Target(name, ">= 80 %", "no row", None))
    return out


def targets(rows: list[dict], kernels: list[dict], steps: dict[str, int]) -> list[Target]:
    """Every target of the GPU check, in the issue's order."""
    out = []
    for shape in ("32x128", "32x512"):
        out.append(_ratio_target(f"bf16 {shape} vs transformers sdpa", rows, shape, HF_SDPA, 1.3, False))
        out.append(
            _ratio_target(f"bf16 {shape} vs torch.compile(transformers)", rows, shape, HF_COMPILE, 1.0, True)
        )
    out.append(_ratio_target(f"varlen {VARLEN} vs transformers sdpa", rows, VARLEN, HF_SDPA, 2.5, False))
    out.append(
        _ratio_target(
            f"varlen {VARLEN} vs torch varlen flash (fastbert-sdpa)", rows, VARLEN, TORCH_VARLEN, 1.0, True
        )
    )
    ms = best_ms(rows, "1x128", GRAPHS)
    out.append(
        Target(
            "1x128 with CUDA graphs",
            "<= 0.35 ms",
            "no row" if ms is None else f"{ms:.3f} ms",
            None if ms is None else ms <= 0.35,
        )  # fmt: skip
    )
    out.extend(kernel_targets(kernels))
    tests = {name: rc for name, rc in steps.items() if name.startswith("tests")}
    bad = [f"{name} exit {rc}" for name, rc in tests.items() if rc != 0]
    measured = ("; ".join(bad) or "exit 0") if tests else "not run"
    out.append(Target("CUDA test tier", "exit 0", measured, (not bad) if tests else None))
    rc = steps.get("check")
    measured = "not run" if rc is None else f"exit {rc}"
    out.append(Target("fastbert check (parity)", "exit 0", measured, None if rc is None else rc == 0))
    return out


def render(found: list[Target]) -> str:
    w = max(len(t.name) for t in found)
    lines = [f"{'target':<{w}}  {'want':<11}  {'verdict':<7}  measured", "-" * (w + 40)]
    lines += [f"{t.name:<{w}}  {t.want:<11}  {t.verdict:<7}  {t.got}" for t in found]
    counts = {v: sum(t.verdict == v for t in found) for v in ("PASS", "FAIL", "n/a")}
    lines.append(f"{counts['PASS']} pass, {counts['FAIL']} fail, {counts['n/a']} not measured")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernels", type=Path, default=None, help="bench_kernels.py's kernels.csv")
    ap.add_argument("--rows", type=Path, nargs="*", default=[], help="fastbert bench rows.jsonl files")
    ap.add_argument(
        "--steps",
        type=Path,
        nargs="*",
        default=[],
        help="gpu_check.sh's steps.tsv files (step 1's, step 2's)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    table = render(targets(read_rows(args.rows), read_kernels(args.kernels), read_steps(args.steps)))
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
