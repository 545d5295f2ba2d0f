"""The benchmark runner's own logic on CPU with a tiny config, in seconds: grid, parity gate,
JSON/CSV schema, plots, CLI. Timings themselves are never asserted."""

import csv
import json
import math
import os

import pytest
import torch

from fastbert import benchmark as fb
from fastbert.cli import main as cli_main

FAST = dict(warmup=1, repeats=2, min_repeats=2, target_s=0.0, memory=False, device="cpu")


# ---------------------------------------------------------------- grid


def test_quick_grid_trims_full_grid():
    full, _ = fb.build_workloads(["bert-base"], ["model"])
    quick, _ = fb.build_workloads(["bert-base"], ["model"], quick=True)
    assert len(full) == 4 * 4 + 2 * 2  # batch x length grid, 2 distributions x 2 varlen batch sizes
    assert {w.shape.label for w in quick} == {
        "1x128",
        "1x512",
        "32x128",
        "32x512",
        "32xuniform16-512",
        "32xskewed8-512",
    }


def test_explicit_shapes_and_cuts():
    ws, dropped = fb.build_workloads(
        ["tiny", "small"],
        ["model", "mlm"],
        shapes=["8x128", "64x512", "4x600"],
        mlm_max_tokens=4096,
        max_positions={"tiny": 512, "small": 512},
    )
    labels = {w.label for w in ws}
    assert "tiny/model/64x512" in labels and "tiny/mlm/64x512" not in labels  # mlm above the token cap
    assert not any("4x600" in x for x in labels)  # beyond the position table
    assert any("mlm above 4096 tokens" in d for d in dropped)
    assert any("longer than the model's 512 positions" in d for d in dropped)
    with pytest.raises(ValueError, match="unknown task"):
        fb.build_workloads(["tiny"], ["qa"])


def test_shape_parsing_and_issue8_lengths():
    s = fb.parse_shape("32xskewed8-256")
    g = torch.Generator().manual_seed(7)
    expected = (8 + torch.rand(32, generator=g) ** 3 * 248).long().tolist()
    assert s.lengths() == expected and s.varlen and s.label == "32xskewed8-256"
    assert fb.parse_shape("8x128").lengths() == [128] * 8
    u = fb.parse_shape("64xuniform16-512").lengths()
    assert min(u) >= 16 and max(u) < 512
    with pytest.raises(ValueError, match="expected BxL"):
        fb.parse_shape("8by128")


def test_inputs_are_padded_like_a_tokenizer():
    shape = fb.parse_shape("5xskewed8-64")
    inp = fb.make_inputs(shape, vocab_size=512, device="cpu")
    lengths = shape.lengths()
    assert inp["input_ids"].shape == (5, max(lengths))
    assert inp["attention_mask"].sum(1).tolist() == lengths
    assert (inp["input_ids"][inp["attention_mask"] == 0] == 0).all()


def test_flops_and_gpu_peaks():
    cfg = fb.hf_config("bert-base")
    flops = fb.model_flops(cfg, "model", [128] * 8)
    per_layer = 2 * 1024 * (4 * 768**2 + 2 * 768 * 3072) + 4 * 768 * 8 * 128**2
    assert flops == pytest.approx(12 * per_layer + 2 * 8 * 768**2)
    assert fb.model_flops(cfg, "mlm", [128]) > fb.model_flops(cfg, "model", [128])
    assert fb.gpu_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert fb.gpu_peak_tflops("NVIDIA H100 PCIe") == 756.5
    assert fb.gpu_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert fb.gpu_peak_tflops("NVIDIA L40S") == 362.1
    assert fb.gpu_peak_tflops("NVIDIA L4") == 121.0
    assert fb.gpu_peak_tflops("Some Unknown GPU") is None


def test_device_slug():
    assert fb.device_slug("cpu").startswith("cpu-")
    assert " " not in fb.device_slug("cpu")


# ---------------------------------------------------------------- parity gate and timing


def _fake(name, transform):
    def build(ctx):
        model = fb.hf_variant(ctx.reference, "sdpa", ctx.dtype)

        def run(inputs):
            return transform(fb.task_output(ctx.task, model(**inputs), inputs["attention_mask"]))

        return run

    return fb.Provider(name, "test double", lambda d, t: None, build)


def test_parity_error_ignores_padding_and_catches_nan():
    ref = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    out = ref.clone()
    out[0, 2:] = 1e6  # padded positions are free
    assert fb.parity_error(out, ref, mask, "model") == 0.0
    out[1, 0, 0] += ref.abs().max()
    assert fb.parity_error(out, ref, mask, "model") == pytest.approx(1.0)
    out[1, 0, 0] = float("nan")
    assert math.isinf(fb.parity_error(out, ref, mask, "model"))
    assert math.isinf(fb.parity_error(ref[:1], ref, mask, "model"))


def test_wrong_answer_gets_no_time():
    opts = fb.BenchOptions(
        models=["tiny"],
        tasks=["model", "embed"],
        shapes=["2x16", "4xskewed4-32"],
        providers=["hf-sdpa", "broken", "nan"],
        extra_providers={
            "broken": _fake("broken", lambda y: y + 0.5 * y.abs().max()),
            "nan": _fake("nan", lambda y: y * float("nan")),
        },
        **FAST,
    )
    result = fb.run_benchmark(opts, progress=False, log=lambda s: None)
    rows = result["rows"]
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        if r["provider"] == "hf-sdpa":
            assert r["status"] == "ok" and r["median_ms"] > 0 and r["speedup_vs_hf_sdpa"] == 1.0
            assert r["error"] <= r["tolerance"] == fb.TOLERANCES["fp32"] and r["repeats"] == 2
            assert r["p90_ms"] >= r["median_ms"] >= r["min_ms"]
        else:
            assert r["status"] == "wrong", r
            assert r["median_ms"] is None and r["tok_per_s"] is None and r["speedup_vs_hf_sdpa"] is None
            assert "no time" in r["note"]
    assert sum(r["tokens"] for r in rows if r["provider"] == "nan" and r["task"] == "model") == 32 + sum(
        fb.parse_shape("4xskewed4-32").lengths()
    )


def test_half_precision_tolerance_follows_torch_error():
    opts = fb.BenchOptions(
        models=["tiny"], tasks=["model"], shapes=["2x16"], providers=["hf-sdpa"], dtypes=["bf16"], **FAST
    )
    (row,) = fb.run_benchmark(opts, progress=False, log=lambda s: None)["rows"]
    assert row["torch_error"] > 0
    assert row["tolerance"] == max(fb.TOLERANCES["bf16"], fb.TORCH_ERROR_FACTOR * row["torch_error"])
    assert row["status"] == "ok", row


def test_unavailable_provider_is_skipped_with_a_line():
    lines = []
    opts = fb.BenchOptions(
        models=["tiny"], tasks=["model"], shapes=["2x8"], providers=["hf-sdpa", "fastbert-triton"], **FAST
    )
    result = fb.run_benchmark(opts, progress=False, log=lines.append)
    assert {r["provider"] for r in result["rows"]} == {"hf-sdpa"}
    assert any("skipped provider fastbert-triton" in line and "CUDA" in line for line in lines)
    assert result["skipped"][0]["provider"] == "fastbert-triton"


def test_build_failure_is_reported_not_fatal():
    def build(ctx):
        raise RuntimeError("no kernel for this")

    opts = fb.BenchOptions(
        models=["tiny"],
        tasks=["model"],
        shapes=["2x8"],
        providers=["hf-sdpa", "bad"],
        extra_providers={"bad": fb.Provider("bad", "", lambda d, t: None, build)},
        **FAST,
    )
    rows = fb.run_benchmark(opts, progress=False, log=lambda s: None)["rows"]
    bad = [r for r in rows if r["provider"] == "bad"]
    assert bad[0]["status"] == "error" and "no kernel for this" in bad[0]["note"]


def test_onnxruntime_provider_when_installed():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    opts = fb.BenchOptions(
        models=["tiny"], tasks=["embed"], shapes=["3xskewed4-24"], providers=["onnxruntime"], **FAST
    )
    rows = fb.run_benchmark(opts, progress=False, log=lambda s: None)["rows"]
    assert rows[0]["status"] == "ok", rows[0]["note"]


def test_measure_repeats_bounds():
    calls = []
    fn = lambda inputs: calls.append(1)
    times, peak = fb.measure(fn, {}, "cpu", warmup=2, repeats=5, min_repeats=3, target_s=0.0)
    assert len(times) == 3 and len(calls) == 5 and peak is None
    times, _ = fb.measure(
        fn, {}, "cpu", warmup=1, repeats=5, min_repeats=3, target_s=100.0, flush=fb._L2Flusher("cpu")
    )
    assert len(times) == 5


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc/self/clear_refs")
def test_cpu_peak_memory_sees_a_forward_allocation():
    def fn(inputs):
        x = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, touched
        return x.sum()

    peak = fb.cpu_forward_peak_mb(fn, {})
    if peak is None:
        pytest.skip("clear_refs not writable here")
    assert 48 <= peak < 1024


# ---------------------------------------------------------------- outputs and CLI


@pytest.fixture(scope="module")
def small_result():
    opts = fb.BenchOptions(
        models=["tiny"],
        tasks=["model"],
        shapes=["1x16", "2x16", "2x32", "4xskewed4-32", "4xuniform8-32"],
        providers=["hf-eager", "hf-sdpa", "fastbert-sdpa"],
        command="fastbert bench --test",
        **FAST,
    )
    return fb.run_benchmark(opts, progress=False, log=lambda s: None)


def test_json_csv_schema_and_plots(small_result, tmp_path):
    paths = fb.write_outputs(small_result, str(tmp_path))
    names = {os.path.basename(p) for p in paths}
    assert {"bench.json", "bench.csv", "TABLE.md"} <= names
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["schema"] == fb.SCHEMA
    for key in ("device", "device_kind", "torch", "transformers", "fastbert", "date", "command", "threads"):
        assert key in data["meta"], key
    assert all(set(fb.ROW_FIELDS) <= set(r) for r in data["rows"])
    with open(tmp_path / "bench.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == fb.ROW_FIELDS + fb.ENV_FIELDS
        csv_rows = list(reader)
    assert len(csv_rows) == len(data["rows"]) == 5 * 3
    assert all(r["device"] and r["date"] and r["torch"] for r in csv_rows)
    ok = [r for r in data["rows"] if r["status"] == "ok"]
    assert {r["provider"] for r in ok} == {"hf-eager", "hf-sdpa", "fastbert-sdpa"}, data["log"]
    table = (tmp_path / "TABLE.md").read_text()
    assert "fastbert bench --test" in table and "| fastbert-sdpa |" in table
    assert "| tiny | model | fp32 | 4xskewed4-32 |" in table  # the README speed-up table
    pytest.importorskip("matplotlib")
    for png in ("speedup_vs_seqlen.png", "varlen_throughput.png"):
        assert png in names and (tmp_path / png).stat().st_size > 1000
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_terminal_table(small_result):
    text = fb.format_table(small_result["rows"])
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["model", "task", "dtype", "shape", "provider"]
    assert len(lines) == 2 + len(small_result["rows"])


def test_cli_bench_writes_outputs(tmp_path, capsys):
    rc = cli_main(
        [
            "bench",
            "--models",
            "tiny",
            "--tasks",
            "model,mlm,embed",
            "--shapes",
            "2x16,3xskewed4-24",
            "--providers",
            "hf-sdpa,fastbert-sdpa,fastbert-triton",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--target-time",
            "0",
            "--no-memory",
            "--no-progress",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "skipped provider fastbert-triton" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert len(data["rows"]) == 3 * 2 * 2
    assert all(r["status"] == "ok" for r in data["rows"]), [r["note"] for r in data["rows"]]


def test_cli_list_providers(capsys):
    assert cli_main(["bench", "--list-providers", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in fb.PROVIDERS:
        assert name in out


def test_cpu_suite_preset():
    import argparse

    parser = argparse.ArgumentParser()
    fb.add_cli_arguments(parser)
    opts = fb.options_from_args(parser.parse_args(["--suite", "cpu"]))
    assert opts.device == "cpu" and opts.threads == 2 and list(opts.models) == ["minilm", "bert-base"]
    assert "32xskewed8-256" in opts.shapes and "8x128" in opts.shapes
    assert {"fastbert-sdpa", "hf-sdpa", "hf-compile", "onnxruntime"} <= set(opts.providers)
    assert opts.compile_dynamic is False  # a graph per shape: torch.compile's best case
    quick = fb.options_from_args(parser.parse_args(["--quick", "--tasks", "model"]))
    assert quick.quick and quick.repeats == 10 and list(quick.models) == ["minilm", "bert-base"]
