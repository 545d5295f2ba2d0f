"""``fastbert run`` with stdin, files and formats: end to end through a subprocess (``python3 -m fastbert
run ...``), and the option, input and file cases through ``fastbert.cli.main`` in this process (``here``:
the same code without a fresh interpreter's start-up)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from model_helpers import require_transformers

import fastbert

# transformers saves the checkpoints: a missing one fails the run (FASTBERT_ALLOW_NO_TRANSFORMERS=1: skipped)
require_transformers()

from cli_helpers import run_here  # noqa: E402
from test_pipelines import FILL_INPUTS, assert_same, build_checkpoints  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("cli"))


def run(*args, stdin="", env=None, cwd=None):
    e = dict(os.environ)
    for k, v in (env or {}).items():  # "" removes a variable
        if v == "":
            e.pop(k, None)
        else:
            e[k] = v
    return subprocess.run(
        [sys.executable, "-m", "fastbert", "run", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=e,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def here(monkeypatch, capsys):
    """``run`` in this process (:func:`cli_helpers.run_here`)."""
    return lambda *args, stdin="": run_here(monkeypatch, capsys, *args, stdin=stdin)


def fill_mask(ckpt, *args, stdin="", runner=run):
    """``fastbert run --task fill-mask`` on the tiny masked LM."""
    return runner("--task", "fill-mask", "--model", ckpt["mlm"], *args, stdin=stdin)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_fill_mask_stdin_to_jsonl_stdout(ckpt):
    p = fill_mask(ckpt, "--top-k", "3", "--batch-size", "2", stdin="\n".join(FILL_INPUTS) + "\n")
    assert p.returncode == 0, p.stderr
    got = jsonl(p.stdout)
    ref = fastbert.pipeline("fill-mask", model=ckpt["mlm"])(FILL_INPUTS, top_k=3)
    assert_same(got, json.loads(json.dumps(ref)))


def test_input_file_output_formats(ckpt, tmp_path, here):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(FILL_INPUTS[:2]) + "\n")
    out_json = tmp_path / "out.json"
    out_csv = tmp_path / "out.csv"
    p = fill_mask(ckpt, "--input", str(src), "--output", str(out_json), runner=here)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    data = json.loads(out_json.read_text())
    assert (
        len(data) == 2
        and len(data[0]) == 5
        and list(data[0][0]) == ["score", "token", "token_str", "sequence"]
    )
    p = fill_mask(ckpt, "--input", str(src), "--output", str(out_csv), "--top-k", "2", runner=here)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    header = ["index", "mask", "rank", "score", "token", "token_str", "sequence"]
    assert len(rows) == 4 and list(rows[0]) == header
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_pairs_and_question_answering_json_lines(ckpt, here):
    lines = [
        json.dumps({"text": "who lives here", "text_pair": "john lives in paris"}),
        "the capital of france",
    ]
    p = here("--task", "text-classification", "--model", ckpt["seq"], stdin="\n".join(lines) + "\n")
    assert p.returncode == 0, p.stderr
    pipe = fastbert.pipeline("text-classification", model=ckpt["seq"])
    assert_same(
        jsonl(p.stdout),
        [
            pipe({"text": "who lives here", "text_pair": "john lives in paris"}),
            pipe("the capital of france")[0],
        ],
    )

    qa = [{"question": "where does john live?", "context": "John lives in New York and works at Google."}]
    p = here(
        "--task",
        "question-answering",
        "--model",
        ckpt["qa"],
        "--top-k",
        "2",
        "--doc-stride",
        "8",
        stdin="\n".join(json.dumps(q) for q in qa) + "\n",
    )
    assert p.returncode == 0, p.stderr
    ref = fastbert.pipeline("question-answering", model=ckpt["qa"])(qa[0], top_k=2, doc_stride=8)
    assert_same(jsonl(p.stdout), [json.loads(json.dumps(ref))])
    p = here("--task", "question-answering", "--model", ckpt["qa"], stdin="where is it?\n")
    assert p.returncode == 2 and "JSON" in p.stderr


def test_embeddings_default_model_npy_and_safetensors(tmp_path, here):
    texts = ["A man is eating food.", "Plants create energy through photosynthesis."]
    npy = tmp_path / "emb.npy"
    p = here("--task", "sentence-embedding", "--output", str(npy), stdin="\n".join(texts) + "\n")
    assert p.returncode == 0, p.stderr
    ref = np.asarray(fastbert.pipeline("sentence-embedding")(texts))
    np.testing.assert_allclose(np.load(npy), ref, atol=1e-5)

    st = tmp_path / "tokens.safetensors"
    p = here(
        "--task", "feature-extraction", "--output", str(st), "--dtype", "fp32", stdin="\n".join(texts) + "\n"
    )
    assert p.returncode == 0, p.stderr
    from safetensors.numpy import load_file

    tensors = load_file(str(st))
    fe = fastbert.pipeline("feature-extraction")
    for i, t in enumerate(texts):
        np.testing.assert_allclose(tensors[str(i)], np.asarray(fe(t))[0], atol=1e-5)


def test_bad_input_exit_2_and_nothing_written(ckpt, tmp_path, here):
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    # unknown task: the error lists the tasks
    p = here("--task", "summarization", "--model", ckpt["mlm"], stdin="x\n")
    assert p.returncode == 2 and "fill-mask" in p.stderr and "question-answering" in p.stderr
    # no model for a task without a default one: the flag named (it said "pass model=")
    p = here("--task", "fill-mask", stdin="the [MASK]\n")
    assert p.returncode == 2 and "pass --model a local folder" in p.stderr, p.stderr
    # a model folder of the wrong architecture
    p = here("--task", "fill-mask", "--model", ckpt["seq"], "--output", str(out), stdin="the [MASK]\n")
    assert p.returncode == 2 and "BertForSequenceClassification" in p.stderr
    # an input without a mask, after good ones
    p = fill_mask(
        ckpt, "--output", str(out), runner=here, stdin="the [MASK] city\nthe [MASK]\nno mask\nx [MASK]\n"
    )
    assert p.returncode == 2 and "line 3: " in p.stderr and "no mask token" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    # empty lines: an error naming the line, or skipped with --skip-empty
    p = fill_mask(ckpt, "--output", str(out), runner=here, stdin="the [MASK] city\n\nthe [MASK]\n")
    assert p.returncode == 2 and "line 2" in p.stderr
    assert out.read_text() == "previous\n"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    p = fill_mask(
        ckpt, "--output", str(out), "--skip-empty", runner=here, stdin="the [MASK] city\n\nthe [MASK]\n"
    )
    assert p.returncode == 0, p.stderr
    assert len(jsonl(out.read_text())) == 2
    # too long with --no-truncation
    p = here(
        "--task",
        "text-classification",
        "--model",
        ckpt["seq"],
        "--no-truncation",
        stdin="short\n" + "the city " * 60 + "\n",
    )
    assert p.returncode == 2 and "line 2: " in p.stderr and "longer than the model's maximum" in p.stderr
    assert "(--no-truncation)" in p.stderr and "truncation=False" not in p.stderr, p.stderr
    qa = (
        json.dumps({"question": "who", "context": "john"})
        + "\n"
        + json.dumps({"question": "who", "context": ""})
    )
    p = here("--task", "question-answering", "--model", ckpt["qa"], stdin=qa + "\n")
    assert p.returncode == 2 and "line 2: `context` cannot be empty" in p.stderr, p.stderr
    # an option of another task
    p = here("--task", "text-classification", "--model", ckpt["seq"], "--targets", "a", stdin="x\n")
    assert p.returncode == 2 and "fill-mask" in p.stderr


def test_unreachable_hub_id_says_pass_a_local_folder():
    p = run(
        "--task",
        "fill-mask",
        "--model",
        "google-bert/bert-base-uncased",
        stdin="x [MASK]\n",
        env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "", "HTTPS_PROXY": "", "https_proxy": ""},
    )
    assert p.returncode == 2
    assert "pass a local folder" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_device_0_without_cuda(ckpt):
    p = fill_mask(ckpt, "--device", "0", stdin="the [MASK]\n")
    assert p.returncode == 2 and "CUDA" in p.stderr and "Traceback" not in p.stderr


def test_options_and_fields_a_task_would_leave_out_are_refused(ckpt, here):
    """--no-truncation on question-answering (windows, never truncation) and a "text_pair" on a one-text task
    were silently left out: refused, naming the flag or the line."""
    qa = json.dumps({"question": "who", "context": "john lives here"}) + "\n"
    p = here("--task", "question-answering", "--model", ckpt["qa"], "--no-truncation", stdin=qa)
    assert p.returncode == 2 and "--no-truncation is not an option of question-answering" in p.stderr
    lines = "the [MASK] city\n" + json.dumps({"text": "a [MASK]", "text_pair": "b"}) + "\n"
    p = fill_mask(ckpt, runner=here, stdin=lines)
    assert p.returncode == 2 and 'line 2: fill-mask reads one text a line: its "text_pair"' in p.stderr, (
        p.stderr
    )


def test_messages_name_the_flags(ckpt, here):
    """fastbert run's messages name its flags, not the pipeline's arguments: --max-length above the model,
    a question-answering window too small (no doc_stride the user never passed), --targets with no target."""
    p = fill_mask(ckpt, "--max-length", "1000", runner=here, stdin="the [MASK]\n")
    assert p.returncode == 2 and "--max-length 1000 is more than the 64 tokens" in p.stderr, p.stderr
    assert "max_length=" not in p.stderr
    qa = json.dumps({"question": "who lives in the old city here", "context": "john lives here"}) + "\n"
    p = here("--task", "question-answering", "--model", ckpt["qa"], "--max-length", "8", stdin=qa)
    assert p.returncode == 2 and "leaves no room for the context in --max-length 8 tokens" in p.stderr, (
        p.stderr
    )
    assert "doc_stride" not in p.stderr and "max_seq_len" not in p.stderr and "--doc-stride" not in p.stderr
    p = here(
        "--task",
        "question-answering",
        "--model",
        ckpt["qa"],
        "--max-length",
        "12",
        "--doc-stride",
        "5",
        stdin=qa,
    )
    assert (
        p.returncode == 2 and "--doc-stride 5 leave no room" in p.stderr and "lower --doc-stride" in p.stderr
    )
    assert "doc_stride" not in p.stderr and "max_seq_len" not in p.stderr, p.stderr
    for targets in (",", " , "):
        p = fill_mask(ckpt, "--targets", targets, runner=here, stdin="the [MASK]\n")
        assert p.returncode == 2 and f"--targets {targets!r} names no target" in p.stderr, p.stderr


def test_a_line_that_is_not_utf8_is_refused_without_rerunning_the_lines_before(ckpt, here, monkeypatch):
    """A line that is not UTF-8 (the reader's own error, naming its line) made ``fastbert run`` rerun every
    input of the window read before it one at a time, looking for the input that raised (up to 511 forwards
    before the error: 8x the run's time on the embedded MiniLM): the error comes at once."""
    from fastbert.pipelines import factory

    real = factory.pipeline
    calls = []

    class Counted:
        def __init__(self, pipe):
            self.pipe = pipe

        def __getattr__(self, name):
            return getattr(self.pipe, name)

        def __call__(self, *args, **kwargs):
            calls.append(1)
            return self.pipe(*args, **kwargs)

    monkeypatch.setattr(factory, "pipeline", lambda *a, **k: Counted(real(*a, **k)))
    p = fill_mask(ckpt, runner=here, stdin=b"the [MASK] city\n" * 3 + b"bad \xff [MASK]\n")
    assert p.returncode == 2 and "stdin line 4 is not UTF-8 text (byte 0xff at column 5)" in p.stderr
    assert len(calls) == 1, len(calls)


def test_doc_stride_larger_than_the_length_names_the_flags(ckpt, here):
    """``--doc-stride 1000`` said "`doc_stride` (1000) is larger than `max_seq_len` (64)": the pipeline's
    argument names, not the command's flags."""
    qa = json.dumps({"question": "who", "context": "john lives here"}) + "\n"
    p = here("--task", "question-answering", "--model", ckpt["qa"], "--doc-stride", "1000", stdin=qa)
    assert p.returncode == 2 and "--doc-stride (1000) is larger than --max-length (64)" in p.stderr, p.stderr
    assert "doc_stride" not in p.stderr and "max_seq_len" not in p.stderr


def test_pooling_with_an_empty_entry_is_refused_naming_the_flag(here):
    """``--pooling mean,`` said "unknown pooling mode ''" without naming the flag."""
    p = here("--task", "sentence-embedding", "--pooling", "mean,", stdin="a\n")
    assert p.returncode == 2 and "--pooling 'mean,' has an empty entry" in p.stderr, p.stderr


def test_a_nan_score_is_refused_in_json_and_written_in_csv(ckpt, tmp_path, here):
    """A score that is NaN (weights that hold NaN, an overflow) was written as ``NaN`` into JSON lines and
    JSON, which JSON readers reject: it is refused naming the line, as ``fastbert serve`` refuses it; CSV
    writes it as ``nan``."""
    import shutil

    from safetensors.torch import load_file, save_file

    model = tmp_path / "nan"
    shutil.copytree(ckpt["seq1"], model)
    weights = load_file(str(model / "model.safetensors"))
    weights["classifier.bias"] = torch.tensor([float("nan")])
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    args = ("--task", "text-classification", "--model", str(model), "--function-to-apply", "none")
    for fmt in ("jsonl", "json"):
        out = tmp_path / f"out.{fmt}"
        p = here(*args, "--output", str(out), "--skip-empty", stdin="\nthe city\nparis\n")
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert "line 2: the result holds NaN or infinity, which JSON cannot carry" in p.stderr, p.stderr
        assert not out.exists()
    p = here(*args, "--format", "csv", stdin="the city\nparis\n")
    assert p.returncode == 0, p.stderr
    assert [r["score"] for r in csv.DictReader(io.StringIO(p.stdout))] == ["nan", "nan"]
