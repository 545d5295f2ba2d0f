"""fastbert check: the comparison table users run, on a tiny random config."""

import subprocess
import sys

import torch

from fastbert import check


def test_check_rows_and_tolerances():
    from model_helpers import require_transformers

    require_transformers()  # its rows are asserted (FASTBERT_ALLOW_NO_TRANSFORMERS=1: skipped)
    rows = check.run_check(
        config="tiny", dtypes=("fp32", "bf16"), backends=("eager", "sdpa"), batch=3, seqlen=9
    )
    names = {(r.provider, r.dtype) for r in rows}
    assert ("fastbert sdpa", "bf16") in names and ("fastbert eager", "fp32") in names
    assert ("transformers sdpa", "fp32") in names
    judged = [r for r in rows if r.provider.startswith("fastbert")]
    assert all(r.tolerance is not None and r.ok for r in judged)  # every fastbert row is judged, eager too
    # fp32 against the float64 reference: a real error (how small is the parity rule's to judge, above: a
    # fixed bound would not hold on every device, TF32 matmuls on a GPU say)
    eager32 = next(r for r in rows if r.provider == "fastbert eager" and r.dtype == "fp32")
    assert 0 < eager32.max_err
    bf16 = next(r for r in rows if r.provider == "fastbert sdpa" and r.dtype == "bf16")
    assert bf16.max_err > 1e-4  # bf16 really ran
    table = check.format_table(rows)
    assert "fastbert sdpa" in table and "tolerance" in table


def test_check_flags_a_wrong_backend(monkeypatch):
    """A backend that computes something else must fail the check (the check can fail)."""
    import dataclasses

    from fastbert.core import ops

    real = ops.TABLES["sdpa"]

    def wrong_attention(*args, **kwargs):
        context, probs = real.attention(*args, **kwargs)
        return context * 1.01, probs

    monkeypatch.setitem(ops.TABLES, "sdpa", dataclasses.replace(real, attention=wrong_attention))
    rows = check.run_check(
        config="tiny",
        dtypes=("fp32",),
        backends=("eager", "sdpa"),
        batch=3,
        seqlen=9,
        with_transformers=False,
    )
    assert not next(r for r in rows if r.provider == "fastbert sdpa").ok


def test_check_cli_exit_status():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastbert",
            "check",
            "--config",
            "tiny",
            "--dtypes",
            "fp32",
            "--attn-implementation",
            "eager,sdpa",
            "--no-transformers",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "all rows within tolerance" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fastbert", "check", "--dtypes", "fp8"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown dtypes" in bad.stderr
    for argv, said in (
        (["--dtypes", ""], "--dtypes names no dtype"),
        (["--dtypes", " , "], "--dtypes names no dtype"),
        (["--config", "tiny", "--model", "some/model"], "--model and --config exclude each other"),
        (["--attn-implementation", ","], "names no backend"),
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from fastbert.cli import main; sys.exit(main(sys.argv[1:]))",
                "check",
                *argv,
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2 and said in proc.stderr and proc.stderr.count("\n") == 1, (
            argv,
            proc.stderr,
        )


def test_check_default_model_is_the_embedded_minilm():
    rows = check.run_check(dtypes=("fp32",), backends=("sdpa",), with_transformers=False)
    assert rows[0].ok and torch.isfinite(torch.tensor(rows[0].max_err))


def test_check_judges_the_triton_backend_with_graphs_off(monkeypatch):
    """``triton-eager``: the triton backend with CUDA graphs turned off on the model (on CUDA the ``triton`` row
    replays graphs by default), judged like every other row."""
    import pytest

    from fastbert.core.ops import triton_available
    from fastbert.modeling import BertPreTrainedModel

    if not triton_available():
        pytest.skip("needs triton on CUDA or TRITON_INTERPRET=1")
    turned_off = []
    real = BertPreTrainedModel.cuda_graphs

    def spy(self, *args, **kwargs):
        turned_off.append(kwargs.get("enabled", True) is False)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BertPreTrainedModel, "cuda_graphs", spy)
    rows = check.run_check(
        config="tiny",
        dtypes=("fp32",),
        backends=("eager", "triton", check.TRITON_EAGER),
        batch=3,
        seqlen=9,
        with_transformers=False,
    )
    by_name = {r.provider: r for r in rows}
    assert by_name["fastbert triton-eager"].ok and by_name["fastbert triton"].ok
    assert turned_off == [True]  # the triton-eager model only


def test_check_refuses_packed_graphs_off_cuda():
    """``triton-packed`` replays CUDA graphs: on the CPU it is refused by name before any model loads."""
    import pytest

    with pytest.raises(
        ValueError, match="triton-packed replays CUDA graphs: it needs a CUDA device, not cpu"
    ):
        check.run_check(config="tiny", dtypes=("fp32",), backends=("triton-packed",), device="cpu")


def test_check_judges_fastbert_against_transformers(monkeypatch):
    """With transformers installed, the reference is transformers' eager float64 and PyTorch's own error is
    transformers' eager output in the dtype: a bug every fastbert backend shares (here the intermediate layer
    1% off, in eager and sdpa alike) fails the check (it passed: fastbert was judged against itself)."""
    import pytest

    pytest.importorskip("transformers")
    import fastbert.models.layers as layers

    real = layers.BertIntermediate.forward
    monkeypatch.setattr(layers.BertIntermediate, "forward", lambda self, *a, **k: real(self, *a, **k) * 1.01)
    # on the CPU: transformers' fp32 row is held to a fixed bound, which TF32 matmuls on a GPU would not meet
    rows = check.run_check(
        config="tiny", dtypes=("fp32",), backends=("eager", "sdpa"), device="cpu", batch=3, seqlen=9
    )
    fast = [r for r in rows if r.provider.startswith("fastbert")]
    assert fast and not any(r.ok for r in fast)
    theirs = next(r for r in rows if r.provider == "transformers eager")
    assert theirs.max_err < 1e-5  # transformers against its own float64: fp32 noise only


def test_check_transformers_rows_do_not_depend_on_the_dtype_order():
    """transformers' fp32 rows are the same after an fp16 run (its weights were cast to fp16 and back)."""
    import pytest

    pytest.importorskip("transformers")

    def fp32_rows(dtypes):
        # on the CPU: the fp32 row below is held to a fixed bound (TF32 matmuls on a GPU would not meet it)
        rows = check.run_check(
            config="tiny", dtypes=dtypes, backends=("eager",), device="cpu", batch=3, seqlen=9
        )
        return {r.provider: (r.max_err, r.mean_err) for r in rows if r.dtype == "fp32"}

    alone = fp32_rows(("fp32",))
    assert fp32_rows(("fp16", "bf16", "fp32")) == alone
    assert alone["transformers eager"][0] < 1e-5


def test_check_refuses_triton_where_it_cannot_run(monkeypatch):
    """A triton row where triton cannot run would be sdpa's output under triton's name: refused by name."""
    import pytest

    from fastbert.core import ops

    monkeypatch.setattr(ops, "triton_available", lambda: False)
    for backend in ("triton", check.TRITON_EAGER):
        with pytest.raises(ValueError, match=f"{backend} needs triton on a CUDA GPU"):
            check.run_check(config="tiny", dtypes=("fp32",), backends=("eager", backend), device="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "fastbert", "check", "--config", "tiny", "--backends", "triton"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TRITON_INTERPRET": "0", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 2 and "triton needs triton" in proc.stderr, proc.stderr


def test_check_header_names_the_reference():
    import pytest

    pytest.importorskip("transformers")
    args = ["--config", "tiny", "--dtypes", "fp32", "--attn-implementation", "eager"]
    proc = subprocess.run([sys.executable, "-m", "fastbert", "check", *args], capture_output=True, text=True)
    assert proc.returncode == 0 and "reference: transformers eager in float64" in proc.stdout, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "fastbert", "check", *args, "--no-transformers"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "fastbert against itself: --no-transformers" in proc.stdout, proc.stderr


def test_check_draws_a_configs_weights_once(monkeypatch):
    """A config's random weights are drawn once and copied for every backend x dtype: on CUDA the check
    built BERT-base from scratch 16 times (~2 s of CPU each, most of its time before any GPU work). The rows
    are those of weights drawn afresh, with the same seed, for each."""
    from fastbert import registry

    real = registry.model_class
    built = []

    def counting(model_type, head):
        cls = real(model_type, head)

        class Counted(cls):
            def __init__(self, *args, **kwargs):
                built.append(1)
                super().__init__(*args, **kwargs)

        return Counted

    # on the CPU: two runs of one row give the same bits there (compared exactly below), where a GPU's
    # kernels need not (atomics, autotuned algorithms); the weights are drawn on the CPU on every device
    args = dict(
        config="tiny", dtypes=("fp32", "bf16"), backends=("eager", "sdpa"), device="cpu", batch=3, seqlen=9
    )
    before = check.run_check(**args)
    monkeypatch.setattr(registry, "model_class", counting)
    rows = check.run_check(**args)
    assert len(built) == 1
    assert [(r.provider, r.dtype, r.max_err) for r in rows] == [
        (r.provider, r.dtype, r.max_err) for r in before
    ]


def test_check_refuses_an_unknown_backend_before_the_model_loads(monkeypatch, capsys):
    """``--backends flash`` loaded the model (transformers' progress bar on stderr) before the refusal."""
    import pytest

    from fastbert.cli import main

    def no_load(*args, **kwargs):
        raise AssertionError("the model loaded")

    monkeypatch.setattr(check, "_inputs", no_load)
    with pytest.raises(
        ValueError, match=r"unknown backend 'flash' in --attn-implementation: use eager, sdpa"
    ):
        check.run_check(config="tiny", dtypes=("fp32",), backends=("eager", "flash"), device="cpu")
    with pytest.raises(ValueError, match="flash_attention_2.*is a transformers backend"):
        check.run_check(config="tiny", dtypes=("fp32",), backends=("flash_attention_2",), device="cpu")
    capsys.readouterr()
    assert main(["check", "--config", "tiny", "--backends", "flash", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "fastbert check: error: unknown backend 'flash' in --attn-implementation: use eager, sdpa, triton, "
        f"{check.TRITON_EAGER}, {check.TRITON_PACKED}"
    ], err


def test_check_help_names_the_float64_reference(capsys):
    """``fastbert --help`` and ``fastbert check --help`` said "against an fp32 eager reference": the reference
    is float64 (transformers' eager, else fastbert's), and an fp32 one would make PyTorch's fp32 error zero."""
    import pytest

    from fastbert.cli import main

    for argv in (["--help"], ["check", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = " ".join(capsys.readouterr().out.split())
        assert "float64 reference" in out and "fp32 eager reference" not in out, (argv, out)


def test_check_refuses_ids_beyond_the_models_vocab_in_one_line(tmp_path, capsys):
    """A folder whose tokenizer gives ids the model's vocab does not hold: ``fastbert check`` ended in a
    traceback (IndexError from transformers' embedding, the reference ran first); fastbert's own host check
    now runs first and refuses it in one line, exit 2."""
    import pytest

    pytest.importorskip("transformers")
    import fastbert
    from fastbert.cli import main

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "lazy", "dog"]
    cfg = fastbert.BertConfig(
        vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20
    )
    fastbert.BertModel(cfg).save_pretrained(str(tmp_path))
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    capsys.readouterr()
    code = main(["check", "--model", str(tmp_path), "--dtypes", "fp32", "--backends", "eager"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2
    assert len(err) == 1 and "input_ids holds" in err[0] and "vocab_size = 8" in err[0], err


def test_check_shows_no_transformers_sdpa_row_for_a_model_without_it(tmp_path):
    """transformers' MPNet has no sdpa: asked for it, it keeps eager (with a warning), so the check's
    "transformers sdpa" rows were transformers' eager output under sdpa's name. They are left out."""
    import pytest

    transformers = pytest.importorskip("transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>", "the", "quick", "fox"]
    cfg = transformers.MPNetConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        pad_token_id=7,
    )
    torch.manual_seed(0)
    transformers.MPNetModel(cfg).save_pretrained(str(tmp_path))
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    rows = check.run_check(model=str(tmp_path), dtypes=("fp32",), backends=("eager",), device="cpu")
    assert [r.provider for r in rows] == ["fastbert eager", "transformers eager"]
    assert all(r.ok for r in rows)


def test_check_header_names_the_gpu_of_device(monkeypatch, capsys):
    """``--device cuda:1`` printed the name of the current GPU (cuda:0), not of the one checked; then the
    name alone, which does not say which of two GPUs of one model was checked: the device comes first."""
    import fastbert.devices
    from fastbert.cli import main

    monkeypatch.setattr(fastbert.devices, "available_device", lambda text: torch.device("cuda:1"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"GPU of {device}")
    monkeypatch.setattr(check, "run_check", lambda *a, **k: [check.Row("fastbert sdpa", "fp32", 0, 0, 1)])
    assert main(["check", "--config", "tiny", "--device", "cuda:1"]) == 0
    assert "tiny on cuda:1 (GPU of cuda:1);" in capsys.readouterr().out
    # no --device on a CUDA machine: the current GPU, by its index
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert main(["check", "--config", "tiny"]) == 0
    assert "tiny on cuda:1 (GPU of cuda:1);" in capsys.readouterr().out


def test_check_list_flags_refuse_empty_entries_and_run_repeated_ones_once(monkeypatch, capsys):
    """``--dtypes fp32,,fp16`` dropped the empty entry while ``--backends eager,,sdpa`` refused it as
    "unknown backend ''"; repeated entries gave repeated rows. Both flags now refuse an empty entry by name
    and run each entry once."""
    from fastbert.cli import main

    for flag, value in (("--dtypes", "fp32,,fp16"), ("--backends", "eager,,sdpa")):
        assert main(["check", "--config", "tiny", flag, value, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert f"{value!r} has an empty entry" in err and (
            "--dtypes" in err or "--attn-implementation" in err
        )
    seen = {}

    def run_check(model, config, dtypes, backends, device, with_transformers):
        seen.update(dtypes=dtypes, backends=backends)
        return []

    monkeypatch.setattr(check, "run_check", run_check)
    main(
        [
            "check",
            "--config",
            "tiny",
            "--dtypes",
            "fp32,fp32",
            "--backends",
            "sdpa, sdpa,eager",
            "--device",
            "cpu",
        ]
    )
    assert seen == {"dtypes": ("fp32",), "backends": ("sdpa", "eager")}, seen


def test_check_fails_a_row_that_overflows_in_the_dtype(tmp_path, capsys):
    """A model whose fp16 output overflows (inf in fastbert's fp16 and in PyTorch's own): the bound, 4 x
    torch's own error, was inf, and ``inf <= inf`` passed the row: ``fastbert check`` said "all rows within
    tolerance" and exited 0 on an output of inf. Such a row now fails (exit 1), as ``Verdict.ok`` says."""
    import fastbert
    from fastbert.cli import main

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "lazy", "dog"]
    cfg = fastbert.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
    )
    torch.manual_seed(0)
    model = fastbert.BertModel(cfg)
    with torch.no_grad():  # 1e5 is inf in fp16: the last LayerNorm's output overflows
        model.encoder.layer[0].output.LayerNorm.weight.fill_(1e5)
    model.save_pretrained(str(tmp_path))
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    rows = check.run_check(
        model=str(tmp_path), dtypes=("fp16",), backends=("eager",), device="cpu", with_transformers=False
    )
    assert rows[0].max_err == float("inf") and not rows[0].ok
    assert (
        check.Row("fastbert eager", "fp16", 1.0, 1.0, float("inf")).ok is False
    )  # a bound of inf judges nothing
    capsys.readouterr()
    code = main(
        ["check", "--model", str(tmp_path), "--dtypes", "fp16", "--backends", "eager", "--no-transformers"]
    )
    out = capsys.readouterr()
    assert code == 1 and "FAIL" in out.out and "all rows within tolerance" not in out.out


def _saved_bert(path, **config):
    """A tiny fastbert BERT folder (random weights, a word-level vocab) for ``--model``."""
    import fastbert

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "lazy", "dog"]
    sizes = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)
    torch.manual_seed(0)
    fastbert.BertModel(fastbert.BertConfig(vocab_size=len(vocab), **{**sizes, **config})).save_pretrained(
        str(path)
    )
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return str(path)


def test_check_refuses_a_triton_row_that_fell_back_to_sdpa(tmp_path, monkeypatch, capsys):
    """A model the triton kernels do not take (head dim 160, over the attention kernel's 128) falls back to
    sdpa with a warning: its "fastbert triton" row was sdpa's output, judged and passed under triton's name
    (a row that could not fail). Named, the backend is now refused naming the reason; by default its rows are
    left out, saying why."""
    import pytest

    from fastbert.core import ops

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(ops, "triton_available", lambda: True)  # the fallback is decided before any kernel
    folder = _saved_bert(tmp_path, hidden_size=160, num_attention_heads=1, intermediate_size=40)
    args = dict(model=folder, dtypes=("fp32",), device="cpu", with_transformers=False)
    for backend in ("triton", check.TRITON_EAGER):
        with pytest.raises(ValueError, match=f"{backend} did not run its own path.*head dim 160"):
            check.run_check(backends=("sdpa", backend), **args)
    capsys.readouterr()
    rows = check.run_check(**args)
    assert [r.provider for r in rows] == ["fastbert eager", "fastbert sdpa"]
    assert "triton rows are skipped" in capsys.readouterr().err


def test_check_refuses_triton_on_the_cpu_of_a_cuda_machine(monkeypatch):
    """On a CUDA machine (triton available), ``--device cpu`` without ``TRITON_INTERPRET=1`` runs the model's
    triton backend as sdpa (the kernels need a CUDA device): the default rows held a "fastbert triton" row
    of sdpa's output, and a named triton passed as sdpa. Now triton is no default row there, and named it is
    refused before the model loads."""
    import pytest

    from fastbert.core import ops

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(ops, "triton_available", lambda: True)  # as on a CUDA machine
    args = dict(config="tiny", dtypes=("fp32",), device="cpu", batch=3, seqlen=9, with_transformers=False)
    with pytest.raises(ValueError, match="triton needs a CUDA device .*not cpu"):
        check.run_check(backends=("eager", "triton"), **args)
    assert [r.provider for r in check.run_check(**args)] == ["fastbert eager", "fastbert sdpa"]


def test_check_says_why_triton_is_left_out_by_default(monkeypatch, capsys):
    """README: a triton backend that cannot run here is left out of the default rows, "saying why". On a
    machine without CUDA (and without ``TRITON_INTERPRET=1``), the first thing a new user runs, ``fastbert
    check``, showed eager and sdpa rows only, with no word of triton: the one backend the README is about
    left out in silence. One stderr line now says why, as for every other row left out."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = dict(config="tiny", dtypes=("fp32",), device="cpu", batch=3, seqlen=9, with_transformers=False)
    capsys.readouterr()
    assert [r.provider for r in check.run_check(**args)] == ["fastbert eager", "fastbert sdpa"]
    err = capsys.readouterr().err
    assert "triton rows are skipped:" in err and "TRITON_INTERPRET=1" in err, err
    # named backends without triton: nothing left out, nothing said
    check.run_check(backends=("eager", "sdpa"), **args)
    assert "triton" not in capsys.readouterr().err


def test_run_check_refuses_bad_arguments_before_anything_loads(monkeypatch):
    """``run_check`` (the API under ``fastbert check``) took its arguments unchecked: an unknown dtype was a
    KeyError after the float64 reference had run, an unknown config a KeyError, ``batch=0`` an IndexError
    from inside torch, ``dtypes="fp32"`` the letters 'f', 'p'..., ``backends=()`` no fastbert row at all
    (nothing judged: a check that passed), ``model`` with ``config`` ignored the model. Each is now refused
    by name before the inputs or the model load."""
    import pytest

    def no_load(*args, **kwargs):
        raise AssertionError("the inputs or the model loaded")

    monkeypatch.setattr(check, "_inputs", no_load)
    base = dict(config="tiny", dtypes=("fp32",), backends=("eager",), with_transformers=False)
    for kw, error, said in (
        (dict(dtypes=("fp8",)), ValueError, r"unknown dtypes \['fp8'\]"),
        (dict(dtypes=()), ValueError, "no dtype to check"),
        (dict(dtypes="fp32"), TypeError, "dtypes is a tuple of names"),
        (dict(backends="sdpa"), TypeError, "backends is a tuple of names"),
        (dict(backends=()), ValueError, "no backend to check"),
        (dict(config="bert-huge"), ValueError, "unknown config 'bert-huge'; use one of bert-base"),
        (dict(model="some/model"), ValueError, "--model and --config exclude each other"),
        (dict(batch=0), ValueError, "batch must be a positive integer, got 0"),
        (dict(seqlen=-3), ValueError, "seqlen must be a positive integer, got -3"),
        (dict(batch=2.5), ValueError, "batch must be a positive integer"),
    ):
        with pytest.raises(error, match=said):
            check.run_check(**{**base, **kw})


def test_check_leaves_out_triton_bf16_rows_under_the_interpreter(monkeypatch, capsys):
    """Triton's interpreter computes bf16 ``tl.dot`` wrongly (the kernel tests skip it there): ``TRITON_INTERPRET=1
    fastbert check`` on the CPU showed ``fastbert triton bf16`` with an error of 5 and FAIL, exit 1, a failure
    of triton's interpreter and not of fastbert. Those rows are left out, saying why on stderr; a check left
    with no fastbert row to judge is refused rather than passed."""
    import pytest

    from fastbert.core import ops

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(ops, "triton_available", lambda: True)
    args = dict(config="tiny", device="cpu", batch=3, seqlen=9, with_transformers=False)
    rows = check.run_check(dtypes=("bf16",), backends=("eager", "triton", check.TRITON_EAGER), **args)
    assert [(r.provider, r.dtype) for r in rows] == [("fastbert eager", "bf16")]
    err = capsys.readouterr().err
    assert "triton bf16 rows are skipped: triton's interpreter" in err and "triton-eager bf16" in err
    with pytest.raises(ValueError, match="no fastbert row to judge"):
        check.run_check(dtypes=("bf16",), backends=("triton",), **args)


def test_check_on_a_relative_key_model_is_not_judged_against_absolute_positions(tmp_path, capsys):
    """transformers 5 dropped BERT's relative positions ("relative_key", "relative_key_query") and loads
    such a model with absolute ones, silently: as check's reference it failed every fastbert row (error ~2,
    exit 1), fastbert being right by transformers 4. Where transformers' model has no distance embedding,
    its rows are skipped (said on stderr) and fastbert's own float64 eager is the reference."""
    import pytest

    pytest.importorskip("transformers")
    folder = _saved_bert(tmp_path, position_embedding_type="relative_key", max_position_embeddings=64)
    rows = check.run_check(model=folder, dtypes=("fp32",), backends=("eager", "sdpa"), device="cpu")
    judged = [r for r in rows if r.tolerance is not None]
    assert len(judged) == 2 and all(r.ok for r in rows), rows
    if not any(r.provider.startswith("transformers") for r in rows):  # transformers 5
        assert "ignores position_embedding_type='relative_key'" in capsys.readouterr().err


def test_check_header_says_why_transformers_is_not_the_reference(tmp_path, capsys):
    """With transformers installed but unable to serve as the reference (here: a relative_key model, which
    transformers 5 runs with absolute positions), the header said "install transformers to check against
    it". It now says which: transformers cannot run this model, or --no-transformers."""
    import pytest

    transformers = pytest.importorskip("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4 runs relative positions: it is the reference")
    from fastbert.cli import main

    folder = _saved_bert(tmp_path, position_embedding_type="relative_key", max_position_embeddings=64)
    assert main(["check", "--model", folder, "--dtypes", "fp32", "--backends", "eager"]) == 0
    out = capsys.readouterr().out
    assert "transformers cannot run this model" in out and "install transformers" not in out, out


def test_run_check_refuses_a_device_it_cannot_use_before_loading(monkeypatch):
    """``run_check(device=...)`` with a device torch does not know or this machine lacks ended after the
    tokenizer had loaded in torch's own words (a RuntimeError listing torch's device types, "Torch not
    compiled with CUDA enabled", "Cannot copy out of meta tensor"), where ``fastbert check --device`` says it
    in one line: a ValueError naming the device, before anything loads."""
    import pytest

    def loads(*args, **kwargs):
        raise AssertionError("the model's inputs were loaded")

    monkeypatch.setattr(check, "_inputs", loads)
    for spec in ("banana", "meta", "cuda:99"):
        with pytest.raises(ValueError, match=f"device '{spec}'"):
            check.run_check(config="tiny", dtypes=("fp32",), backends=("eager",), device=spec)


def test_check_refuses_a_triton_row_it_cannot_run_before_loading(monkeypatch):
    """A triton row that cannot run here (no triton, a CPU without the interpreter, triton-packed off CUDA)
    was refused after the model's config and tokenizer had loaded (from the hub, for a hub id): it depends
    on the device and the names alone, and is now refused before anything loads."""
    import pytest

    from fastbert.core import ops

    def loads(*args, **kwargs):
        raise AssertionError("the model's inputs were loaded")

    monkeypatch.setattr(check, "_inputs", loads)
    args = dict(model="some/model", dtypes=("fp32",), device="cpu")
    with pytest.raises(ValueError, match="triton-packed replays CUDA graphs"):
        check.run_check(backends=("eager", check.TRITON_PACKED), **args)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(ops, "triton_available", lambda: True)  # a CUDA machine's triton, a CPU device
    with pytest.raises(ValueError, match="needs a CUDA device"):
        check.run_check(backends=("triton",), **args)
    monkeypatch.setattr(ops, "triton_available", lambda: False)
    with pytest.raises(ValueError, match="needs triton on a CUDA GPU"):
        check.run_check(backends=("triton",), **args)


def test_check_leaves_out_triton_bf16_rows_on_a_gpu_without_native_bf16(monkeypatch):
    """``fastbert check``'s default rows on CUDA include triton bf16: on a GPU before Ampere (a T4, a V100:
    compute capability below 8.0, no bf16 tensor cores) triton refuses or emulates a bf16 ``tl.dot``, a row
    that failed or judged a path nobody runs there. Those rows are left out with the GPU and its capability
    as the reason (said on stderr as the interpreter's reason is); an Ampere GPU keeps them."""
    import torch

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    why = check._no_triton_bf16(torch.device("cuda", 0))
    assert why is not None and "Tesla T4 (compute capability 7.5) has no native bf16" in why, why
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert check._no_triton_bf16(torch.device("cuda", 0)) is None
    assert "interpreter" in check._no_triton_bf16(torch.device("cpu"))
