"""The GPU check's targets, pass/fail, from what its steps wrote (``benchmarks/gpu_check.sh`` runs this last).

    python benchmarks/gpu_targets.py --kernels OUT/kernels.csv --rows OUT/e2e/rows.jsonl OUT/compile/rows.jsonl \
        --steps OUT/steps.tsv [--out OUT/targets.txt]

Inputs (any may be missing: its targets then read ``n/a``, never pass):
- ``--kernels``: ``bench_kernels.py``'s CSV (one row per kernel x shape x dtype x provider, a ``copy`` row);
- ``--rows``: ``fastbert bench`` rows.jsonl files (one JSON object a line: ``model, task, shape, dtype,
  provider, status, median_ms``, ...); later files add to earlier ones;
- ``--steps``: ``gpu_check.sh``'s ``name<TAB>exit status<TAB>seconds`` lines.

Targets (BERT-base, bf16, one run): 32x128 and 32x512 at least 1.3x transformers ``sdpa`` and faster
than ``torch.compile`` of transformers; varlen 32 x U(16, 512) at least 2.5x transformers ``sdpa`` and
faster than transformers on packed tokens through torch's varlen flash attention; 1x128 with CUDA
graphs at most 0.35 ms; the attention kernel at least SDPA flash at L=512, D=64; LayerNorm and GELU
kernels at least 80 % of the copy bandwidth measured in the same run; parity (the CUDA test tier's
sub-steps, ``tests*``, and ``fastbert check`` exit 0).

Provider names are matched by role, so that a renamed provider is still found: fastbert = ``fastbert-triton``
(exactly), graphs = a fastbert provider naming ``graph``, transformers sdpa = ``hf-sdpa``, torch.compile of
transformers = an ``hf-`` provider naming ``compile``, varlen flash = an ``hf-`` provider naming
``varlen`` or ``packed``, or ``torch-varlen`` (packed tokens through torch's varlen attention).
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
    """Rows of ``fastbert bench`` rows.jsonl files (missing files and broken lines are skipped)."""
    rows: list[dict] = []
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a killed step
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def read_kernels(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_steps(path: Path | None) -> dict[str, int]:
    """step name -> exit status (the last run of a name wins)."""
    steps: dict[str, int] = {}
    if path is None or not path.is_file():
        return steps
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
HF_VARLEN: Role = lambda p: p == "torch-varlen" or (p.startswith("hf-") and ("varlen" in p or "packed" in p))


def _ok_row(row: dict) -> bool:
    status = str(row.get("status", "ok")).lower()
    return status in ("ok", "pass", "passed", "") and isinstance(row.get("median_ms"), (int, float))


def best_ms(rows: list[dict], shape: str, role: Role, task: str = "model") -> float | None:
    """Fastest ``median_ms`` of a provider role at a shape (BERT-base, bf16; any task if ``task`` has none)."""
    picked = [
        r
        for r in rows
        if _ok_row(r)
        and r.get("shape") == shape
        and role(str(r.get("provider", "")))
        and str(r.get("dtype", E2E_DTYPE)) == E2E_DTYPE
        and str(r.get("model", E2E_MODEL)) == E2E_MODEL
    ]
    in_task = [r for r in picked if r.get("task", task) == task]
    picked = in_task or picked
    return min(float(r["median_ms"]) for r in picked) if picked else None


def _ratio_target(name: str, rows: list[dict], shape: str, rival: Role, need: float, strict: bool) -> Target:
    ours, theirs = best_ms(rows, shape, FASTBERT), best_ms(rows, shape, rival)
    want = f"> {need:g}x" if strict else f">= {need:g}x"
    if ours is None or theirs is None:
        missing = "fastbert" if ours is None else "rival"
        return Target(name, want, f"no {missing} row", None)
    ratio = theirs / ours
    ok = ratio > need if strict else ratio >= need
    return Target(name, want, f"{ratio:.2f}x ({ours:.3f} vs {theirs:.3f} ms)", ok)


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
        _ratio_target(f"varlen {VARLEN} vs transformers varlen flash", rows, VARLEN, HF_VARLEN, 1.0, True)
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
    ap.add_argument("--steps", type=Path, default=None, help="gpu_check.sh's steps.tsv")
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
