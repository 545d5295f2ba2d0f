"""``fastbert run`` given bad input, bad options and awkward outputs: one line on stderr and exit 2, never a
traceback; outputs by the rule of ``fastbert.output_files``.

What needs a process of its own (exit codes, signals, stdin bytes, descriptors, devices) runs as
``python -m fastbert``; the matrix of formats and files calls ``fastbert.cli.main`` in this process, on one
tiny model folder built once for the module.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import cli_helpers
import numpy as np
import pytest
import torch
from process_helpers import default_signals

import fastbert

REPO = str(Path(__file__).resolve().parents[2])
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "is", ".", ","]
VOCAB += list("abcdefghijklmnopqrstuvwxyz")
HIDDEN = 32
TEXTS = ["hello world", "the world is a world", "a"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """A one-layer BertModel folder (hidden 32) with its vocab.txt."""
    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    cfg = fastbert.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    fastbert.BertModel(cfg).save_pretrained(str(path))
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return str(path)


def run(*args: str, stdin: bytes = b"", timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastbert", "run", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": REPO},
        timeout=timeout,
    )


def one_line_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


def temps(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


def run_here(monkeypatch, capsys, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """``fastbert run ARGS`` in this process, ``stdin`` as its standard input: (exit status, stdout, stderr)."""
    p = cli_helpers.run_here(monkeypatch, capsys, *args, stdin=stdin)
    return p.returncode, p.stdout, p.stderr


def embed_here(monkeypatch, capsys, model: str, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """``fastbert run --task sentence-embedding --model MODEL ARGS`` in this process."""
    return run_here(monkeypatch, capsys, "--task", "sentence-embedding", "--model", model, *args, stdin=stdin)


# --------------------------------------------------------------------------- options, before any model
@pytest.mark.parametrize(
    "option, value",
    [
        ("--doc-stride", "-1"),
        ("--batch-size", "0"),
        ("--batch-size", "-1"),
        ("--batch-size", "two"),
        ("--top-k", "0"),
        ("--max-length", "-5"),
        ("--max-answer-len", "0"),
    ],
)
def test_invalid_numeric_option_is_an_argparse_error(option, value):
    p = run("--task", "question-answering", "--model", "/no/such/model", option, value)
    err = p.stderr.decode()
    assert p.returncode == 2 and "Traceback" not in err
    assert f"argument {option}" in err and "OverflowError" not in err


@pytest.mark.parametrize(
    "option, value",
    [("--doc-stride", "0"), ("--batch-size", "1"), ("--top-k", "1"), ("--max-answer-len", "1")],
)
def test_the_smallest_valid_numeric_option_is_taken(option, value):
    """The other side of each bound: ``--doc-stride 0`` (no overlap, which transformers takes) and 1 for the
    options that count something parse, as the whole number given."""
    import argparse

    from fastbert.pipelines.cli import add_cli_arguments

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(["--task", "question-answering", option, value])
    assert getattr(args, option[2:].replace("-", "_")) == int(value)


def test_unusable_output_is_refused_before_the_model_loads(tmp_path):
    # the model does not exist: an error about --output shows the output was checked first
    for output, needle in [
        (str(tmp_path), "is a directory"),
        (str(tmp_path / "missing" / "out.jsonl"), "does not exist"),
    ]:
        p = run("--task", "sentence-embedding", "--model", "/no/such/model", "--output", output)
        one_line_error(p, output, needle)
    p = run("--task", "fill-mask", "--model", "/no/such/model", "--output", str(tmp_path / "x.npy"))
    one_line_error(p, "--format npy is for embeddings")


# --------------------------------------------------------------------------------------------- bad input
def test_non_utf8_stdin_and_input_file_exit_2_naming_the_line(model, tmp_path):
    data = b"hello world\n\xff\xfe bad\n"
    one_line_error(run("--task", "sentence-embedding", "--model", model, stdin=data), "stdin line 2", "UTF-8")
    src = tmp_path / "in.txt"
    src.write_bytes(data)
    p = run("--task", "sentence-embedding", "--model", model, "--input", str(src))
    one_line_error(p, f"{src} line 2", "UTF-8")


def test_deeply_nested_json_line_is_a_clear_error(model):
    line = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    p = run("--task", "sentence-embedding", "--model", model, stdin=line.encode())
    one_line_error(p, "line 1: JSON nested too deeply")


def test_json_line_errors_in_process(model, monkeypatch, capsys):
    deep = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    for stdin, needle in [
        (deep, "line 1: JSON nested too deeply"),
        ('{"text": 5}\n', '"text" must be a string'),
        ('{"text": "a", "text_pair": ["b"]}\n', '"text_pair" must be a string'),
        ('{"txt": "a"}\n', 'needs a "text" key'),
        ("hello\n\nworld\n", "line 2 of the input is empty"),
    ]:
        code, out, err = embed_here(monkeypatch, capsys, model, stdin=stdin.encode())
        assert code == 2 and needle in err, (stdin[:40], err)
        assert len(err.strip().splitlines()) == 1


# -------------------------------------------------------------------------- sentence-embedding options
def test_pooling_and_normalize_options_work(model, monkeypatch, capsys):
    stdin = ("\n".join(TEXTS) + "\n").encode()
    for flags, kw in [
        (["--pooling", "cls", "--normalize"], {"pooling": "cls", "normalize": True}),
        (["--pooling", "mean,max", "--no-normalize"], {"pooling": ["mean", "max"], "normalize": False}),
    ]:
        code, out, err = embed_here(monkeypatch, capsys, model, *flags, stdin=stdin)
        assert code == 0, err
        got = np.array([json.loads(line) for line in out.splitlines()])
        ref = np.array(fastbert.pipeline("sentence-embedding", model=model, **kw)(TEXTS))
        assert got.shape == ref.shape == (3, HIDDEN * (2 if "mean,max" in flags else 1))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
        if kw["normalize"]:
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # the same per call of the API, and the option checks
    pipe = fastbert.pipeline("sentence-embedding", model=model)
    np.testing.assert_allclose(
        pipe(TEXTS, pooling="cls", normalize=True),
        fastbert.pipeline("sentence-embedding", model=model, pooling="cls", normalize=True)(TEXTS),
    )
    with pytest.raises(ValueError, match="unknown pooling mode 'median'"):
        pipe(TEXTS, pooling="median")


def test_max_length_beyond_the_model_is_one_line(model, monkeypatch, capsys):
    code, _, err = embed_here(monkeypatch, capsys, model, "--max-length", "100", stdin=b"hello\n")
    assert (
        code == 2
        and "--max-length 100 is more than the 64 tokens the model's position embeddings take" in err
    )
    code, out, err = embed_here(monkeypatch, capsys, model, "--max-length", "3", stdin=b"hello world the a\n")
    assert code == 0 and "truncated to max_length=3" in err and len(json.loads(out)) == HIDDEN


def test_batch_size_and_other_api_numbers_are_value_errors(model):
    pipe = fastbert.pipeline("sentence-embedding", model=model)
    for bad in (-1, 0, 1.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size"):
            pipe(TEXTS, batch_size=bad)
    with pytest.raises(ValueError, match="batch_size"):
        fastbert.pipeline("sentence-embedding", model=model, batch_size=-1)
    with pytest.raises(ValueError, match="max_length"):
        fastbert.pipeline("sentence-embedding", model=model, max_length=-5)
    with pytest.raises(ValueError, match="max_length=1000 is more than the 64 tokens"):
        fastbert.pipeline("sentence-embedding", model=model, max_length=1000)
    assert len(pipe(TEXTS, batch_size=1)) == 3


# ------------------------------------------------------------------------------------------------ outputs
@pytest.mark.parametrize("fmt", ["npy", "safetensors", "jsonl", "csv", "json"])
def test_empty_input_writes_an_empty_output_of_every_format(model, tmp_path, monkeypatch, capsys, fmt):
    out = tmp_path / f"empty.{fmt}"
    code, _, err = embed_here(monkeypatch, capsys, model, "--output", str(out))
    assert code == 0, err
    if fmt == "npy":
        array = np.load(out)
        assert array.shape == (0, HIDDEN) and array.dtype == np.float32
    elif fmt == "safetensors":
        from safetensors.numpy import load_file

        embeddings = load_file(str(out))["embeddings"]
        assert embeddings.shape == (0, HIDDEN) and embeddings.dtype == np.float32
    elif fmt == "json":
        assert json.loads(out.read_text()) == []
    else:
        assert out.read_text() == ""
    assert temps(tmp_path) == []


def test_empty_feature_extraction_npy(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "tokens.npy"
    code, _, err = run_here(
        monkeypatch, capsys, "--task", "feature-extraction", "--model", model, "--output", str(out)
    )
    assert code == 0, err
    assert np.load(out).shape == (0, 0, HIDDEN)


def test_existing_file_keeps_its_mode_new_file_follows_umask(model, tmp_path, monkeypatch, capsys):
    stdin = ("\n".join(TEXTS) + "\n").encode()
    old = tmp_path / "old.jsonl"
    old.write_text("previous\n")
    old.chmod(0o640)
    code, _, err = embed_here(monkeypatch, capsys, model, "--output", str(old), stdin=stdin)
    assert code == 0, err
    assert len(old.read_text().splitlines()) == 3 and stat.S_IMODE(old.stat().st_mode) == 0o640
    mask = os.umask(0o002)
    try:
        new = tmp_path / "new.jsonl"
        code, _, err = embed_here(monkeypatch, capsys, model, "--output", str(new), stdin=stdin)
    finally:
        os.umask(mask)
    assert code == 0, err
    assert stat.S_IMODE(new.stat().st_mode) == 0o664
    assert temps(tmp_path) == []


def test_symlinked_output_keeps_the_link(model, tmp_path, monkeypatch, capsys):
    real = tmp_path / "real.npy"
    link = tmp_path / "link.npy"
    link.symlink_to(real)
    code, _, err = embed_here(monkeypatch, capsys, model, "--output", str(link), stdin=b"hello\n")
    assert code == 0, err
    assert link.is_symlink() and np.load(real).shape == (1, HIDDEN)


def test_fifo_output_is_streamed(model, tmp_path, monkeypatch, capsys):
    fifo = tmp_path / "results"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    code, _, err = embed_here(
        monkeypatch,
        capsys,
        model,
        "--output",
        str(fifo),
        stdin=("\n".join(TEXTS) + "\n").encode(),
    )
    reader.join(timeout=60)
    assert code == 0, err
    assert len(got[0].splitlines()) == 3 and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_dev_null_and_dev_fd_1_in_a_process(model):
    before = os.stat("/dev/null")
    p = run("--task", "sentence-embedding", "--model", model, "--output", "/dev/null", stdin=b"hello\n")
    assert p.returncode == 0, p.stderr.decode()
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    # /dev/fd/1 is the process's stdout (here a pipe): streamed into it, no temporary name tried
    p = run(
        "--task", "sentence-embedding", "--model", model, "--output", "/dev/fd/1", stdin=b"hello\nworld\n"
    )
    assert p.returncode == 0, p.stderr.decode()
    assert len(p.stdout.decode().splitlines()) == 2


def test_dev_full_is_one_line_exit_2(model):
    p = run("--task", "sentence-embedding", "--model", model, "--output", "/dev/full", stdin=b"hello\n")
    one_line_error(p, "cannot write /dev/full", "No space left on device")


# ------------------------------------------------------------------------------------------------ signals
@pytest.mark.parametrize(
    "sig, code", [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
def test_signal_mid_run_leaves_no_temp_file(model, tmp_path, sig, code):
    out = tmp_path / "out.jsonl"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastbert",
            "run",
            "--task",
            "sentence-embedding",
            "--model",
            model,
            "--output",
            str(out),
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO},
        preexec_fn=default_signals,  # SIGINT default even when pytest runs in the background or under nohup
    )
    try:
        p.stdin.write(b"hello world\n")
        p.stdin.flush()  # stdin stays open: the run waits for more input, its temp file open
        deadline = time.monotonic() + 240
        while not temps(tmp_path) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        assert temps(tmp_path), p.stderr.read().decode() if p.poll() is not None else "no temp file"
        p.send_signal(sig)
        assert p.wait(timeout=60) == code
        assert "Traceback" not in p.stderr.read().decode()
        assert os.listdir(tmp_path) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        p.stderr.close()


def test_closed_stdout_ends_quietly(model):
    p = subprocess.Popen(
        [sys.executable, "-m", "fastbert", "run", "--task", "sentence-embedding", "--model", model],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO},
    )

    def feed():
        try:
            p.stdin.write(b"hello world\n" * 3000)
            p.stdin.close()
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        p.stdout.readline()  # the first result, then the reader goes away (``| head -1``)
        p.stdout.close()
        assert p.wait(timeout=240) == 141
        err = p.stderr.read()
        assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    finally:
        if p.poll() is None:
            p.kill()
        feeder.join(timeout=30)
        p.stderr.close()


def test_argument_checks_import_no_torch():
    code = "import sys, fastbert.pipelines, fastbert.output_files; assert 'torch' not in sys.modules"
    p = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": REPO})
    assert p.returncode == 0


def test_batches_are_padded_on_the_right_whatever_the_tokenizer_says(model):
    pipe = fastbert.pipeline("sentence-embedding", model=model)
    one_by_one = np.array(pipe(TEXTS, batch_size=1))
    pipe.tokenizer.padding_side = "left"  # the tokenizer's own pad does the padding; the side is ours
    np.testing.assert_allclose(np.array(pipe(TEXTS, batch_size=3)), one_by_one, rtol=0, atol=1e-5)
