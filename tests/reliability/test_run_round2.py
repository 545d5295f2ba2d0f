"""``fastbert run``, issue 25 round 2: every output format carries what JSON lines carry (each format read
back and compared with JSON lines, for every task), malformed JSON lines, outputs that cannot be written or
are the input, ``--max-length`` below what a task needs, a ``[MASK]`` cut off by truncation, devices.

Runs ``fastbert.cli.main`` in this process on tiny random checkpoints built once for the module (the one
test that needs its own stdin descriptor runs ``python -m fastbert``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

import fastbert
from fastbert.cli import main

REPO = str(Path(__file__).resolve().parents[2])
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "is", ".", ","]
VOCAB += ["john", "lives", "in", "paris", "who", "where"] + list("abcdefghijklmnopqrstuvwxyz")
MAX_POS = 32
HEADS = {
    "mlm": ("BertForMaskedLM", {}),
    "seq": ("BertForSequenceClassification", {"id2label": {0: "NEG", 1: "POS", 2: "NEU"}}),
    "tok": ("BertForTokenClassification", {"id2label": {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC"}}),
    "tok_o": ("BertForTokenClassification", {"id2label": {0: "O", 1: "B-PER"}}),
    "qa": ("BertForQuestionAnswering", {}),
    "base": ("BertModel", {}),
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> dict[str, str]:
    """Tiny random checkpoints of the heads (hidden 16, one layer), each with vocab.txt. ``tok`` labels
    every token as an entity (its B-PER bias is raised), ``tok_o`` none (its O bias is raised): lines with
    entities and lines with none."""
    root = tmp_path_factory.mktemp("round2")
    out = {}
    for i, (name, (cls_name, extra)) in enumerate(HEADS.items()):
        torch.manual_seed(i)
        extra = dict(extra)
        if "id2label" in extra:
            extra["label2id"] = {v: k for k, v in extra["id2label"].items()}
        cfg = fastbert.BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=24,
            max_position_embeddings=MAX_POS,
            **extra,
        )
        model = getattr(fastbert, cls_name)(cfg).eval()
        if name in ("tok", "tok_o"):
            with torch.no_grad():
                model.classifier.bias.zero_()
                model.classifier.bias[1 if name == "tok" else 0] = 20.0
        path = root / name
        model.save_pretrained(str(path))
        (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
        out[name] = str(path)
    return out


def run_here(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """``fastbert run ARGS`` in this process, ``stdin`` as its standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8"))
    code = main(["run", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(code: int, err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "warning:" not in line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------ every format reads back as JSONL
_INTS = {"token", "token_index", "start", "end"}
_FLOATS = {"score"}


def _value(column: str, text: str):
    if column in _INTS:
        return int(text)
    if column in _FLOATS:
        return float(text)
    return text


def _record(row: dict[str, str]) -> dict:
    rec = {}
    for column, text in row.items():
        if column in ("index", "mask", "rank"):
            continue
        rec["index" if column == "token_index" else column] = _value(column, text)
    return rec


def _records(rows: list[dict[str, str]]):
    """One input's result from its CSV rows: a dict (no rank), a list by rank, or [] (the index alone)."""
    if len(rows) == 1 and all(v == "" for k, v in rows[0].items() if k not in ("index", "mask")):
        return []
    if rows[0]["rank"] == "":
        assert len(rows) == 1
        return _record(rows[0])
    assert [int(r["rank"]) for r in rows] == list(range(len(rows)))
    return [_record(r) for r in rows]


def csv_to_results(task: str, text: str) -> list:
    """The JSON lines results of a ``--format csv`` output, rebuilt from its rows alone."""
    rows = list(csv.DictReader(io.StringIO(text)))
    by_index: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_index[int(row["index"])].append(row)
    assert list(by_index) == list(range(len(by_index)))  # every result, in order
    results = []
    for group in by_index.values():
        if task == "sentence-embedding":
            (row,) = group
            results.append([float(row[f"dim_{j}"]) for j in range(len(row) - 1)])
        elif task == "feature-extraction":
            assert [int(r["token"]) for r in group] == list(range(len(group)))
            results.append([[[float(r[f"dim_{j}"]) for j in range(len(r) - 2)] for r in group]])
        elif task == "fill-mask":
            masks: dict[int, list] = defaultdict(list)
            for row in group:
                masks[int(row["mask"])].append(row)
            per_mask = [_records(masks[m]) for m in range(len(masks))]
            results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        else:
            results.append(_records(group))
    return results


# (task, model, extra args, stdin lines)
CASES = {
    "fill-mask": ("mlm", ["--top-k", "2"], ["hello [MASK] world", "[MASK] lives in [MASK] .", "a [MASK]"]),
    "fill-mask-targets": (
        "mlm",
        ["--targets", "hello,world,paris"],
        ["[MASK] lives in [MASK] .", "hello [MASK]"],
    ),
    "text-classification": ("seq", [], ["hello world", '{"text": "john", "text_pair": "paris"}']),
    "text-classification-top-k": ("seq", ["--top-k", "2"], ["hello world", "a , b"]),
    "token-classification": ("tok", [], ["john lives in paris", "a"]),
    "token-classification-simple": ("tok", ["--aggregation-strategy", "simple"], ["john lives in paris"]),
    "token-classification-none-found": ("tok_o", [], ["john lives in paris", "hello"]),
    "question-answering": ("qa", [], ['{"question": "who", "context": "john lives in paris"}']),
    "question-answering-top-k": (
        "qa",
        ["--top-k", "3", "--handle-impossible-answer"],
        ['{"question": "where", "context": "john lives in paris , a city"}'],
    ),
    "sentence-embedding": ("base", [], ["hello world", "the world is a world", "a"]),
    "feature-extraction": ("base", [], ["hello world", "the world is a world"]),
}


def _task(case: str) -> str:
    for task in ("fill-mask", "text-classification", "token-classification", "question-answering"):
        if case.startswith(task):
            return task
    return case


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_format_reads_back_as_jsonl(ckpt, case, tmp_path, monkeypatch, capsys):
    """CSV, JSON (and .npy / .safetensors for embeddings) hold the same results as JSON lines: each is
    read back with its own rows alone and compared with the JSONL output (issue 25: CSV rows of
    token-classification lost their line, fill-mask lines with two masks lost the mask column)."""
    task = _task(case)
    name, extra, lines = CASES[case]
    stdin = "\n".join(lines) + "\n"
    args = ["--task", task, "--model", ckpt[name], *extra]
    code, out, err = run_here(monkeypatch, capsys, *args, stdin=stdin)
    assert code == 0, err
    reference = [json.loads(line) for line in out.splitlines()]
    assert len(reference) == len(lines)
    if case == "token-classification":
        assert all(reference), reference  # entities on every line: their token index is a column
    if case == "token-classification-none-found":
        assert reference == [[], []]  # an empty result keeps its line in CSV too
    if case == "fill-mask":
        assert isinstance(reference[1][0], list) and len(reference[1]) == 2  # two masks

    formats = ["csv", "json"]
    if task == "sentence-embedding":
        formats += ["npy", "safetensors"]
    if task == "feature-extraction":
        formats += ["safetensors"]
    for fmt in formats:
        path = tmp_path / f"{case}.{fmt}"
        code, _, err = run_here(monkeypatch, capsys, *args, "--output", str(path), stdin=stdin)
        assert code == 0, err
        if fmt == "csv":
            got = csv_to_results(task, path.read_text(encoding="utf-8"))
        elif fmt == "json":
            got = json.loads(path.read_text(encoding="utf-8"))
        elif fmt == "npy":
            got = np.load(path).tolist()
        else:
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            if task == "sentence-embedding":
                got = tensors["embeddings"].tolist()
            else:
                got = [[tensors[str(i)].tolist()] for i in range(len(tensors))]
        assert got == reference, (fmt, got, reference)


def test_csv_token_classification_keeps_the_line_and_the_token_index(ckpt, tmp_path, monkeypatch, capsys):
    """The example of the issue, as a user reads the CSV: `index` is the input's, `token_index` the
    entity's; a line's entities carry its index."""
    out = tmp_path / "ner.csv"
    stdin = "hello\njohn lives in paris\n"
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "token-classification",
        "--model",
        ckpt["tok"],
        "--output",
        str(out),
        stdin=stdin,
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["index"] for r in rows} == {"0", "1"}
    second = [r for r in rows if r["index"] == "1"]
    assert [r["word"] for r in second] == ["john", "lives", "in", "paris"]
    assert [r["token_index"] for r in second] == ["1", "2", "3", "4"]


def test_csv_fill_mask_header_has_the_mask_column_from_the_first_line(ckpt, tmp_path, monkeypatch, capsys):
    """One mask on the first line, two on the second: the second line's rows keep which mask they fill."""
    out = tmp_path / "fill.csv"
    stdin = "hello [MASK]\n[MASK] lives in [MASK] .\n"
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "fill-mask",
        "--model",
        ckpt["mlm"],
        "--top-k",
        "1",
        "--output",
        str(out),
        stdin=stdin,
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["index", "mask", "rank", "score", "token", "token_str", "sequence"]
    assert [(r["index"], r["mask"]) for r in rows] == [("0", "0"), ("1", "0"), ("1", "1")]


def test_csv_and_empty_npy_are_as_wide_as_a_dense_modules_vectors(ckpt, tmp_path, monkeypatch, capsys):
    """A sentence-transformers folder with a Dense module after the pooling (hidden 16 -> 5): the CSV header
    has the vector's 5 columns (it had 16, the last 11 left empty on every row) and an empty input's .npy
    is (0, 5), not (0, 16)."""
    import shutil

    from safetensors.torch import save_file

    folder = tmp_path / "dense"
    shutil.copytree(ckpt["base"], folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(json.dumps({"in_features": 16, "out_features": 5}))
    torch.manual_seed(0)
    weights = {"linear.weight": torch.randn(5, 16), "linear.bias": torch.randn(5)}
    save_file(weights, str(folder / "2_Dense" / "model.safetensors"))
    args = ["--task", "sentence-embedding", "--model", str(folder)]

    code, out, err = run_here(monkeypatch, capsys, *args, stdin="hello world\na\n")
    assert code == 0, err
    reference = [json.loads(line) for line in out.splitlines()]
    assert [len(v) for v in reference] == [5, 5]
    path = tmp_path / "dense.csv"
    code, _, err = run_here(monkeypatch, capsys, *args, "--output", str(path), stdin="hello world\na\n")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(rows[0]) == ["index", *(f"dim_{j}" for j in range(5))]
    assert csv_to_results("sentence-embedding", path.read_text()) == reference
    path = tmp_path / "empty.npy"
    code, _, err = run_here(monkeypatch, capsys, *args, "--output", str(path), stdin="")
    assert code == 0, err
    assert np.load(path).shape == (0, 5)


# ------------------------------------------------------------------------------------- malformed JSON lines
@pytest.mark.parametrize(
    "line",
    ['{"text": "a"', '  {"text": "a"} trailing', "{not json}", '{"text": "a",}', "{"],
)
@pytest.mark.parametrize("task, model", [("text-classification", "seq"), ("fill-mask", "mlm")])
def test_a_malformed_json_line_is_refused_naming_the_line(ckpt, line, task, model, monkeypatch, capsys):
    stdin = "hello [MASK] world\n" + line + "\n"
    code, out, err = run_here(monkeypatch, capsys, "--task", task, "--model", ckpt[model], stdin=stdin)
    one_line(code, err, "line 2", "not valid JSON")


def test_lines_that_are_text_stay_text(ckpt, monkeypatch, capsys):
    """Only a first non-blank '{' makes a line JSON: '[MASK] ...' and text with braces later are text."""
    stdin = "[MASK] lives in paris\nhello {braces} [MASK]\n"
    code, out, err = run_here(monkeypatch, capsys, "--task", "fill-mask", "--model", ckpt["mlm"], stdin=stdin)
    assert code == 0, err
    assert len(out.splitlines()) == 2


def test_the_json_rule_is_in_the_help_and_the_docs():
    import argparse

    from fastbert.pipelines.cli import add_cli_arguments

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    assert "first non-blank character is '{'" in help_text
    docs = " ".join((Path(REPO) / "docs" / "README-pipelines.md").read_text().split())
    assert "first non-blank character is `{`" in docs


# ----------------------------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("target", ["/proc/version", "/proc/cpuinfo"])
def test_output_that_is_not_a_replaceable_file_is_refused_before_the_model(target, monkeypatch, capsys):
    if not os.path.exists(target):
        pytest.skip(f"{target} does not exist here")
    code, _, err = run_here(
        monkeypatch, capsys, "--task", "sentence-embedding", "--model", "/no/such/model", "--output", target
    )
    line = one_line(code, err, target, "not a regular file that can be replaced")
    assert "No such file" not in line.split("(")[0]


@pytest.mark.parametrize(
    "name, fmt, needle",
    [
        ("x.parquet", None, "does not write .parquet files"),
        ("x.xlsx", None, "does not write .xlsx files"),
        ("x.json", "csv", "has the extension of json, not of --format csv"),
        ("x.csv", "jsonl", "has the extension of csv, not of --format jsonl"),
    ],
)
def test_output_extension_is_the_format_or_refused(ckpt, tmp_path, name, fmt, needle, monkeypatch, capsys):
    out = tmp_path / name
    extra = ["--format", fmt] if fmt else []
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "sentence-embedding",
        "--model",
        ckpt["base"],
        "--output",
        str(out),
        *extra,
        stdin="hello\n",
    )
    one_line(code, err, needle)
    assert not out.exists()


def test_output_extension_with_format_writes_that_format(ckpt, tmp_path, monkeypatch, capsys):
    out = tmp_path / "x.parquet"
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task", "sentence-embedding", "--model", ckpt["base"], "--output", str(out), "--format", "jsonl",
        stdin="hello\n",
    )  # fmt: skip
    assert code == 0, err
    assert len(json.loads(out.read_text())) == 16
    out = tmp_path / "x.txt"  # text: JSON lines
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "sentence-embedding",
        "--model",
        ckpt["base"],
        "--output",
        str(out),
        stdin="hello\n",
    )
    assert code == 0, err
    assert len(json.loads(out.read_text())) == 16


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "relative"])
def test_output_that_is_the_input_is_refused(ckpt, tmp_path, how, monkeypatch, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("hello\nworld\n")
    out = {"same": src, "symlink": tmp_path / "link.jsonl", "hardlink": tmp_path / "hard.jsonl"}.get(how)
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    elif how == "relative":
        monkeypatch.chdir(tmp_path / "..")
        out = Path(tmp_path.name) / "." / "in.jsonl"
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "sentence-embedding",
        "--model",
        ckpt["base"],
        "--input",
        str(src),
        "--output",
        str(out),
    )
    one_line(code, err, "is the input file", "replace its own input")
    assert src.read_text() == "hello\nworld\n"


def test_output_that_stdin_reads_is_refused(ckpt, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("hello\n")
    with open(src, "rb") as stdin:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "fastbert",
                "run",
                "--task",
                "sentence-embedding",
                "--model",
                ckpt["base"],
                "--output",
                str(src),
            ],
            stdin=stdin,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": REPO},
            timeout=300,
        )
    err = p.stderr.decode()
    assert p.returncode == 2 and "the file stdin reads" in err and "Traceback" not in err, err
    assert src.read_text() == "hello\n"


def test_a_closed_stdout_is_one_line_before_the_model(ckpt):
    """``fastbert run ... >&-``: Python has no ``sys.stdout``; the run ended in an AttributeError traceback
    at its first result."""
    p = subprocess.run(
        [sys.executable, "-m", "fastbert", "run", "--task", "sentence-embedding", "--model", ckpt["base"]],
        input=b"hello\n",
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        env={**os.environ, "PYTHONPATH": REPO},
        timeout=300,
    )
    err = p.stderr.decode()
    assert p.returncode == 2 and "Traceback" not in err, err
    assert err == "fastbert run: error: cannot write to stdout: it is closed (write to a file instead)\n"


# ------------------------------------------------------------------------------------------- --max-length
@pytest.mark.parametrize(
    "task, model, value, least",
    [
        ("text-classification", "seq", "1", 3),
        ("sentence-embedding", "base", "2", 3),
        ("fill-mask", "mlm", "1", 3),
        ("question-answering", "qa", "4", 5),
    ],
)
def test_max_length_below_what_the_task_needs_is_refused(
    ckpt, task, model, value, least, monkeypatch, capsys
):
    code, _, err = run_here(
        monkeypatch, capsys, "--task", task, "--model", ckpt[model], "--max-length", value, stdin="x\n"
    )
    one_line(code, err, f"--max-length {value} is too small", f"at least {least} tokens")


def test_max_length_at_the_floor_works_and_the_warning_names_it(ckpt, monkeypatch, capsys):
    code, out, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "sentence-embedding",
        "--model",
        ckpt["base"],
        "--max-length",
        "3",
        stdin="hello world the\n",
    )
    assert code == 0, err
    assert "truncated to max_length=3" in err and "model's maximum" not in err


def test_max_length_floor_in_the_library(ckpt):
    with pytest.raises(
        ValueError, match=r"max_length=2 is too small: a text-classification input needs at least 3"
    ):
        fastbert.pipeline("text-classification", model=ckpt["seq"], max_length=2)
    pipe = fastbert.pipeline("text-classification", model=ckpt["seq"], max_length=3)
    with pytest.warns(UserWarning, match="truncated to max_length=3"):
        (result,) = pipe("hello world the a")
    assert result["label"] in ("NEG", "POS", "NEU")


# ----------------------------------------------------------------------------------- a [MASK] truncated off
def test_a_mask_cut_off_by_truncation_says_so(ckpt):
    fill = fastbert.pipeline("fill-mask", model=ckpt["mlm"])
    text = "a " * (MAX_POS + 5) + "[MASK]"
    with pytest.raises(
        ValueError, match=r"\[MASK\] at token \d+\) was truncated away.*model's maximum of 32"
    ):
        fill(text)
    fill8 = fastbert.pipeline("fill-mask", model=ckpt["mlm"], max_length=8)
    with pytest.raises(ValueError, match=r"truncated away: the input is cut at max_length=8"):
        fill8("hello world the a is hello world [MASK]")
    with pytest.raises(ValueError, match="no mask token"):  # no mask at all: the message of before
        fill8("hello world")


def test_a_second_mask_cut_off_warns_and_the_first_is_answered(ckpt):
    fill8 = fastbert.pipeline("fill-mask", model=ckpt["mlm"], max_length=8)
    with pytest.warns(UserWarning, match=r"1 of the input's 2 mask tokens were truncated away"):
        out = fill8("hello [MASK] world the a is hello world [MASK]", top_k=2)
    assert len(out) == 2 and isinstance(out[0], dict)


def test_a_mask_cut_off_by_the_tokenizer_kwargs_max_length_says_so(ckpt):
    """tokenizer_kwargs' max_length below the model's cuts the input there (with or without truncation=, the
    tokenizer's default): a mask past it is named, and a second mask cut away is warned of, as for the model's
    maximum (a mask cut off was "no mask token found", a second one cut away said nothing: the check read the
    model's maximum only)."""
    fill = fastbert.pipeline("fill-mask", model=ckpt["mlm"])
    text = "hello world the a is hello world [MASK]"
    for kwargs in ({"truncation": True, "max_length": 6}, {"max_length": 6}):
        with pytest.raises(
            ValueError, match=r"truncated away: the input is cut at tokenizer_kwargs' max_length=6"
        ):
            fill(text, tokenizer_kwargs=kwargs)
    with pytest.warns(UserWarning, match=r"1 of the input's 2 mask tokens were truncated away \(cut at tok"):
        out = fill("hello [MASK] world the a is hello world [MASK]", tokenizer_kwargs={"max_length": 6})
    assert len(out) == 5 and isinstance(out[0], dict)
    with warnings.catch_warnings():  # padded to max_length, nothing cut: no warning
        warnings.simplefilter("error")
        fill("hello [MASK]", tokenizer_kwargs={"padding": "max_length", "max_length": 6})


def test_truncated_mask_at_the_command_line_is_one_line(ckpt, monkeypatch, capsys):
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "fill-mask",
        "--model",
        ckpt["mlm"],
        "--max-length",
        "4",
        stdin="hello world [MASK]\n",
    )
    one_line(code, err, "was truncated away", "max_length=4")


# --------------------------------------------------------------------------------------------- --device
@pytest.mark.parametrize("device", ["banana", "cuda:99", "meta"])
def test_run_device_that_is_not_here_is_one_line(device, monkeypatch, capsys):
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("a machine with a hundred GPUs")
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "sentence-embedding",
        "--model",
        "/no/such/model",
        "--device",
        device,
        stdin="x\n",
    )
    one_line(code, err, f"--device '{device}'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "0", "cuda:1", "gpu"])
def test_run_cuda_without_cuda_is_one_line(device, monkeypatch, capsys):
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "sentence-embedding",
        "--model",
        "/no/such/model",
        "--device",
        device,
        stdin="x\n",
    )
    one_line(code, err, f"--device '{device}'", "CUDA")


@pytest.fixture
def wrong_shape(ckpt, tmp_path) -> str:
    """The ``seq`` checkpoint under a config.json that says hidden_size 32 (its weights are 16 wide)."""
    import shutil

    path = tmp_path / "shape"
    shutil.copytree(ckpt["seq"], path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(dict(config, hidden_size=32)))
    return str(path)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_run_load_error_is_not_blamed_on_the_device(wrong_shape, device, monkeypatch, capsys):
    """A checkpoint of another shape than its config was 'cannot use device None: Error(s) in loading
    state_dict...': every RuntimeError of building the pipeline was worded as a device error."""
    args = ["--task", "text-classification", "--model", wrong_shape] + (
        ["--device", device] if device else []
    )
    code, _, err = run_here(monkeypatch, capsys, *args, stdin="hello\n")
    line = one_line(code, err, "Error(s) in loading state_dict", "size mismatch")
    assert "device" not in line, line


def test_run_error_moving_the_model_names_the_device(ckpt, monkeypatch, capsys):
    """An error of the move to the device (torch's CUDA out of memory, say) still names the device."""

    def oom(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 MiB")

    monkeypatch.setattr(torch.nn.Module, "to", oom)
    code, _, err = run_here(
        monkeypatch,
        capsys,
        "--task",
        "text-classification",
        "--model",
        ckpt["seq"],
        "--device",
        "cpu",
        stdin="hello\n",
    )
    one_line(code, err, "cannot use device 'cpu': CUDA out of memory")
