"""benchmarks/bench_quant_gpu.py (step 2 of gpu_check.sh on a lent GPU) cannot rot: its dry run on the CPU
writes the rows a GPU run writes, each with the device and versions."""

import json
import sys
from pathlib import Path

import pytest

from fastbert.quant.gpu import cpu_implements

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_quant_gpu  # noqa: E402


@pytest.mark.skipif(
    not (cpu_implements("fp8") and cpu_implements("int8")),
    reason="this torch has no CPU _scaled_mm / _int_mm: the dry run has no quantized variant to run",
)
def test_dry_run_writes_gate_and_speed_rows(tmp_path, capsys):
    out = tmp_path / "quant" / "rows.jsonl"
    assert bench_quant_gpu.main(["--tiny", "--device", "cpu", "--out", str(out), "--target-s", "0.1"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["device"] and r["torch"] and r["date"] for r in rows)
    gates = {r["provider"]: r for r in rows if r["kind"] == "gate"}
    assert set(gates) == {"fastbert-fp32", "fastbert-fp8", "fastbert-int8"}, rows
    assert gates["fastbert-fp8"]["quantized"] == gates["fastbert-fp8"]["linears"] == 8
    assert all(0.99 < r["min_cosine"] <= 1.0 + 1e-6 and r["status"] == "PASS" for r in gates.values())
    speed = [r for r in rows if r["kind"] == "speed"]
    assert {(r["shape"], r["provider"]) for r in speed} == {
        (s, p) for s in bench_quant_gpu.TINY_SHAPES for p in gates
    }
    assert all(r["median_ms"] > 0 and r["speedup_vs"] == "fastbert-fp32" for r in speed)
    table = capsys.readouterr().out
    assert "gate  fastbert-fp8" in table and "PASS" in table and "speed 4x16" in table


def test_usage_without_cuda(capsys):
    if bench_quant_gpu.torch.cuda.is_available():
        pytest.skip("CUDA is here: --device cuda is valid")
    assert bench_quant_gpu.main(["--device", "cuda", "--out", "/dev/null"]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err
