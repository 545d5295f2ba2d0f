"""The bench's encoder-family rows on tiny configs (no timing asserted): the model names build from their
configs through fastbert's registry, one row each runs through the parity gate, MPNet's baseline is
transformers' eager, ModernBERT's fastbert rows wait for its registry entry, and the long-input harness
measures in fresh processes."""

import pytest
import torch

from fastbert import benchmark as fb
from fastbert import registry
from fastbert.benchmark import workloads

pytest.importorskip("transformers")

FAST = dict(warmup=0, rounds=2, min_rounds=2, target_s=0.0, device="cpu", threads=2)


def _rows(models, providers, shapes=("2x16", "4xskewed4-32"), name="families"):
    group = fb.Group(name, tuple(models), tuple(shapes), tuple(providers))
    return fb.run_benchmark(fb.BenchOptions(groups=[group], **FAST), log=lambda s: None)["rows"]


def _one(rows, model, provider, shape):
    found = [r for r in rows if r["model"] == model and r["provider"] == provider and r.get("shape") == shape]
    assert len(found) == 1, (model, provider, shape, rows)
    return found[0]


def _timed(r):
    assert r["status"] == "ok" and r["median_ms"] > 0 and r["ratio"] is not None, r
    assert r["error"] <= r["bound"], r


def test_family_names_build_transformers_class_from_the_registry():
    import transformers

    for name, (model_type, _) in workloads.FAMILY_CONFIGS.items():
        config = workloads.hf_config(name)
        assert config.model_type == model_type
        cls = workloads.hf_model_class(config, "model")
        family = registry.FAMILIES.get(model_type)
        if family is not None:  # the class fastbert's registry names, from transformers
            assert cls is getattr(transformers, family.classes["base"])
        assert cls.__name__.endswith("Model") and cls.config_class is type(config)
    base = workloads.hf_config("xlm-roberta-base")
    assert (base.vocab_size, base.hidden_size, base.num_hidden_layers, base.intermediate_size) == (
        250002,
        768,
        12,
        3072,
    )
    mb = workloads.hf_config("modernbert-base")
    assert (mb.num_hidden_layers, mb.intermediate_size, mb.local_attention) == (22, 1152, 128)
    assert mb.layer_types[:3] == ["full_attention", "sliding_attention", "sliding_attention"]
    with pytest.raises(ValueError, match="unknown model"):
        workloads.model_source("xlm-roberta-huge")


def test_inputs_follow_the_family():
    shape = fb.parse_shape("4xskewed4-32")
    xlmr = workloads.inputs_for(workloads.hf_config("tiny-xlm-roberta"), shape, "cpu")
    mpnet = workloads.inputs_for(workloads.hf_config("tiny-mpnet"), shape, "cpu")
    assert "token_type_ids" in xlmr and "token_type_ids" not in mpnet
    for inp in (xlmr, mpnet):  # pad id 1; no real token takes it (RoBERTa's positions count non-pad ids)
        real = inp["attention_mask"].bool()
        assert (inp["input_ids"][~real] == 1).all() and (inp["input_ids"][real] != 1).all()
        assert inp["attention_mask"].sum(1).tolist() == shape.lengths()


def test_window_flops_and_the_per_sequence_reference():
    for n in (1, 5, 9, 40):
        for half in (0, 2, 4, 64):
            brute = sum(1 for i in range(n) for j in range(n) if abs(i - j) <= half)
            assert workloads._pairs_within(n, half) == brute
    config = workloads.hf_config("tiny-modernbert")
    full = workloads.hf_config("tiny-modernbert")
    full.local_attention = 0
    assert workloads.model_flops(config, "model", [64]) < workloads.model_flops(full, "model", [64])
    # each row alone equals the padded batch where padding changes nothing (XLM-R, float64)
    source = workloads.load_source_model("tiny-xlm-roberta", "model", "cpu")
    model = workloads.hf_variant(source, "eager", torch.float64)
    inputs = workloads.inputs_for(source.config, fb.parse_shape("4xskewed4-32"), "cpu")
    mask = inputs["attention_mask"].bool()
    with torch.inference_mode():
        padded = workloads.reference_output(model, inputs, "model", per_sequence=False)
        alone = workloads.reference_output(model, inputs, "model", per_sequence=True)
    assert torch.allclose(padded[mask], alone[mask], atol=1e-10) and (alone[~mask] == 0).all()


def test_xlm_roberta_and_mpnet_rows_run_and_pass_the_gate():
    rows = _rows(("tiny-xlm-roberta", "tiny-mpnet"), ("fastbert-sdpa", "hf-sdpa"), shapes=("4xskewed4-32",))
    shape = "4xskewed4-32"
    _timed(_one(rows, "tiny-xlm-roberta", "fastbert-sdpa", shape))
    assert _one(rows, "tiny-xlm-roberta", "hf-sdpa", shape)["ratio"] == 1.0
    # MPNet: transformers has only eager, which runs in hf-sdpa's place and is the baseline
    skipped = [r for r in rows if r["model"] == "tiny-mpnet" and r["provider"] == "hf-sdpa"]
    assert len(skipped) == 1 and skipped[0]["status"] == "skipped" and "only eager" in skipped[0]["note"]
    mpnet = _one(rows, "tiny-mpnet", "fastbert-sdpa", shape)
    _timed(mpnet)
    assert mpnet["baseline"] == "hf-eager" and _one(rows, "tiny-mpnet", "hf-eager", shape)["ratio"] == 1.0


def test_modernbert_rows_wait_for_the_registry():
    rows = _rows(("tiny-modernbert",), ("fastbert-sdpa", "hf-sdpa"), name="modernbert")
    for shape in ("2x16", "4xskewed4-32"):  # the skewed batch: rows whose window holds only padding
        _timed(_one(rows, "tiny-modernbert", "hf-sdpa", shape))
    fast = [r for r in rows if r["provider"] == "fastbert-sdpa"]
    if "modernbert" in registry.FAMILIES:
        for r in fast:
            _timed(r)
    else:
        assert len(fast) == 1 and fast[0]["status"] == "skipped"
        assert "no 'modernbert' family" in fast[0]["note"] and "registry" in fast[0]["note"]


def test_family_rows_through_the_cli_tiny(tmp_path, capsys):
    from fastbert.cli import main as cli_main

    out = tmp_path / "fam"
    code = cli_main(["bench", "--suite", "families", "--tiny", "--shapes", "2x16", "--providers",
                     "fastbert-sdpa,hf-sdpa,onnxruntime", "--rounds", "2", "--min-rounds", "2",
                     "--target-time", "0", "--no-plots", "--out", str(out)])  # fmt: skip
    assert code == 0
    rows = fb.read_rows(str(out))
    assert {r["model"] for r in rows} == {"tiny-xlm-roberta", "tiny-mpnet"}
    for r in rows:
        if r["provider"] == "onnxruntime" and r["status"] != "skipped":  # the export takes MPNet's inputs
            _timed(r)
    assert "| tiny-mpnet | model | fp32 | 2x16 |" in (out / "TABLE.md").read_text()


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="Linux /proc only")
def test_long_harness_in_fresh_processes(tmp_path):
    from fastbert.benchmark.long import run_long

    result = run_long(
        model="tiny-modernbert",
        shapes=("1x48",),
        providers=("fastbert-sdpa", "hf-sdpa"),
        out=str(tmp_path),
        log=lambda s: None,
    )
    by = {r["provider"]: r for r in result["rows"]}
    hf = by["hf-sdpa"]
    assert hf["status"] == "ok" and hf["median_ms"] > 0 and hf["ratio"] == 1.0, hf
    assert hf["error"] <= hf["bound"] and hf["peak_mem_mb"] is not None and hf["peak_mem_mb"] >= 0
    assert hf["local_ms"] > 0 and hf["global_ms"] > 0 and "1 global layers" in hf["note"]
    if "modernbert" in registry.FAMILIES:
        assert (
            by["fastbert-sdpa"]["status"] == "ok"
            and by["fastbert-sdpa"]["error"] <= by["fastbert-sdpa"]["bound"]
        )
    else:
        assert by["fastbert-sdpa"]["status"] == "skipped" and "registry" in by["fastbert-sdpa"]["note"]
    assert (tmp_path / "rows.jsonl").exists() and "local layers ms" in (tmp_path / "TABLE.md").read_text()
    with pytest.raises(ValueError, match="one input per row"):
        run_long(model="tiny-modernbert", shapes=("2x48",), providers=("hf-sdpa",), log=lambda s: None)


@pytest.mark.parametrize("bad", ["2x48", "1x99999"])
def test_long_refuses_a_bad_shape_before_any_row_runs(tmp_path, monkeypatch, capsys, bad):
    """A bad shape after a good one (``--shapes 1x2048,2x2048``) was refused only once the good lengths had
    run, each a child process per provider (minutes at 2,048 tokens), leaving rows.jsonl and no bench.json."""
    from fastbert.benchmark import long
    from fastbert.cli import main as cli_main

    def ran(*args, **kwargs):
        raise AssertionError("a row ran")

    monkeypatch.setattr(long, "_child", ran)
    monkeypatch.setattr(long, "_reference", ran)
    out = tmp_path / "out"
    code = cli_main(["bench", "--suite", "long", "--tiny", "--shapes", f"1x48,{bad}", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and bad in err[0], err
    assert not out.exists()


def test_long_refuses_another_device_in_one_line(capsys):
    from fastbert.cli import main as cli_main

    assert cli_main(["bench", "--suite", "long", "--device", "cuda:0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--suite long runs on the CPU" in err[0]


def _fake_long(monkeypatch, tmp_path, fail_after=None):
    """``run_long``'s keywords with its child processes and reference faked: 4 rounds at 10 ms for
    transformers, 10 / 5 / 2.5 / 2 ms for fastbert (ratios 1, 2, 4, 5); ``fail_after[provider]``: the rounds
    it runs before its process fails."""
    from fastbert.benchmark import long

    times = {"hf-sdpa": [10.0] * 4, "fastbert-sdpa": [10.0, 5.0, 2.5, 2.0]}
    calls = dict.fromkeys(times, 0)

    def child(model, provider, length, threads, seed, save):
        n = calls[provider]
        calls[provider] += 1
        if n >= (fail_after or {}).get(provider, 99):
            raise RuntimeError("the measuring process failed: boom")
        torch.save(torch.zeros(1, length, 8), save)
        return dict(ms=times[provider][n], peak_mem_mb=1.0, rss_before_mb=1.0, hwm_mb=2.0, local_ms=None,
                    global_ms=None, local_layers=0, global_layers=1)  # fmt: skip

    monkeypatch.setattr(long, "_child", child)
    monkeypatch.setattr(long, "_reference", lambda model, length, seed: (torch.zeros(1, length, 8),) * 2)
    return dict(model="tiny-modernbert", shapes=("1x48",), rounds=4, out=str(tmp_path), log=lambda s: None)


def test_long_rows_give_the_ratios_iqr(tmp_path, monkeypatch):
    """The long suite's rows gave min–max as the ratio's range where every other row (and TABLE.md's own
    words: "with its interquartile range") gives the interquartile range."""
    from fastbert.benchmark import long

    if "modernbert" not in registry.FAMILIES:
        pytest.skip("fastbert's ModernBERT rows are skipped until its registry has it")
    rows = {r["provider"]: r for r in long.run_long(**_fake_long(monkeypatch, tmp_path))["rows"]}
    fast = rows["fastbert-sdpa"]
    assert fast["status"] == "ok" and fast["ratio"] == 3.0, fast
    assert (fast["ratio_lo"], fast["ratio_hi"]) == (1.75, 4.25), fast  # min–max gave (1.0, 5.0)


def test_long_row_says_a_provider_failed_after_its_first_rounds(tmp_path, monkeypatch):
    """A provider whose process failed after some rounds was an "ok" row of fewer rounds, the failure unsaid."""
    from fastbert.benchmark import long

    kw = _fake_long(monkeypatch, tmp_path, fail_after={"hf-sdpa": 2})
    hf = {r["provider"]: r for r in long.run_long(**kw)["rows"]}["hf-sdpa"]
    assert hf["status"] == "ok" and hf["rounds"] == 2, hf
    assert "failed in a later round" in hf["note"] and "boom" in hf["note"], hf


def test_long_table_md_is_replaced_whole(tmp_path, monkeypatch):
    """TABLE.md was written, then the long table appended to it: an interrupt between the two left the new
    summary without its table. Now one replace: an interrupted run leaves the last whole file."""
    from fastbert.benchmark import long

    long.run_long(**_fake_long(monkeypatch, tmp_path, fail_after={"hf-sdpa": 2}))
    before = (tmp_path / "TABLE.md").read_text()
    assert "local layers ms" in before

    def interrupted(rows):
        raise KeyboardInterrupt  # the run is stopped while its files are written

    monkeypatch.setattr(long, "table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        long.run_long(**_fake_long(monkeypatch, tmp_path))
    assert (tmp_path / "TABLE.md").read_text() == before
