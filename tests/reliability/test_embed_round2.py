"""``fastbert embed``, round 2 of the reliability issue (25): what a new user and a hostile probe found.

- ``--overwrite`` removes only files fastbert wrote (those its manifest names); a folder holding Parquet
  files no manifest names is refused before anything is removed.
- A run that cannot start (model missing, wrong head, bad pooling, bad device) writes nothing, and the
  corrected rerun into the same folder works.
- Devices this machine does not have, and a missing pyarrow (or Ray), are one line and exit 2.
- Errors name the file and a 1-based line or row; a corrupt Parquet input says it is not a Parquet file.
- The README's read-back snippet (``pyarrow.dataset.dataset("vectors/")``, pandas) runs as written; outputs
  of the old layout (``manifest.json`` inside the dataset folder) are moved to the new one on the next run.
- ``--output /dev/null`` says the output must be a folder.

The model is a tiny random BERT saved by a fixture (no transformers, no hub).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import fastbert
from fastbert.cli import main
from fastbert.embed import MANIFEST, embed, read_output

ROOT = Path(__file__).resolve().parents[2]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "city", "paris", "river", "a", "is", "."]


def _save_tiny(path: Path, cls=None) -> str:
    torch.manual_seed(0)
    cfg = fastbert.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    (cls or fastbert.BertModel)(cfg).eval().save_pretrained(str(path))
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return _save_tiny(tmp_path_factory.mktemp("embed_round2") / "base")


@pytest.fixture(scope="module")
def mlm(tmp_path_factory) -> str:
    return _save_tiny(tmp_path_factory.mktemp("embed_round2") / "mlm", fastbert.BertForMaskedLM)


@pytest.fixture
def docs(tmp_path) -> str:
    path = tmp_path / "docs.txt"
    path.write_text("the city\nparis is a city\nthe river\n")
    return str(path)


def run_cli(capsys, *args: str) -> tuple[int, list[str]]:
    """``fastbert embed ARGS`` in this process: (exit code, the lines it printed on stderr)."""
    capsys.readouterr()
    code = main(["embed", *args, "--no-progress"])
    return code, capsys.readouterr().err.splitlines()


def one_error_line(code: int, err: list[str]) -> str:
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("fastbert embed: error: "), err
    return err[0]


def listing(folder) -> dict[str, bytes]:
    return {n: (Path(folder) / n).read_bytes() for n in sorted(os.listdir(folder))}


# ============================================================================ --overwrite removes only ours


def test_overwrite_refuses_a_parquet_file_it_did_not_write(tmp_path, capsys, model, docs):
    """The issue's example: a user's data.parquet beside the shards; --overwrite deleted it."""
    out = tmp_path / "vectors"
    embed([docs], str(out), model=model, shard_rows=1, progress=False)
    pq.write_table(pa.table({"text": ["mine"]}), out / "data.parquet")
    before = listing(out)
    code, err = run_cli(capsys, docs, "--model", model, "--output", str(out), "--overwrite")
    line = one_error_line(code, err)
    assert "data.parquet" in line and "--overwrite" in line
    assert listing(out) == before  # nothing removed, nothing written

    # beside it: without --overwrite, and in a folder that has no manifest at all
    code, err = run_cli(capsys, docs, "--model", model, "--output", str(out), "--shard-rows", "2")
    assert "data.parquet" in one_error_line(code, err) and listing(out) == before
    bare = tmp_path / "bare"
    bare.mkdir()
    pq.write_table(pa.table({"text": ["mine"]}), bare / "part-00000.parquet")  # a shard-like name, not ours
    code, err = run_cli(capsys, docs, "--model", model, "--output", str(bare), "--overwrite")
    assert "part-00000.parquet" in one_error_line(code, err)
    assert sorted(os.listdir(bare)) == ["part-00000.parquet"]


def test_overwrite_removes_the_manifests_files_and_leaves_the_rest(tmp_path, model, docs):
    out = tmp_path / "vectors"
    embed([docs], str(out), model=model, shard_rows=1, progress=False)  # 3 shards
    assert sorted(n for n in os.listdir(out) if n.endswith(".parquet")) == [
        f"part-0000{i}.parquet" for i in range(3)
    ]
    (out / "notes.txt").write_text("my notes")
    (out / "_sub").mkdir()  # readers skip it (a Parquet file in a subfolder they read is refused)
    (out / "_sub" / "x.parquet").write_bytes(b"not looked at")
    # temporary files by open_output's naming: a killed run's shard is fastbert's, an editor's is not
    (out / ".part-00002.parquet.0a1b2c3d.tmp").write_bytes(b"half a shard")
    (out / ".notes.txt.0a1b2c3d.tmp").write_text("another program's")
    m = embed([docs], str(out), model=model, shard_rows=2, overwrite=True, progress=False)  # 2 shards
    assert m["total_rows"] == 3 and len(m["shards"]) == 2
    assert sorted(os.listdir(out)) == [
        ".notes.txt.0a1b2c3d.tmp",
        MANIFEST,
        "_sub",
        "notes.txt",
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "_sub" / "x.parquet").read_bytes() == b"not looked at"
    assert read_output(str(out)).num_rows == 3


# ============================================================== a run that cannot start writes nothing


def _failures(model: str, mlm: str) -> dict[str, list[str]]:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {
        "model missing": ["--model", str(Path(model).parent / "no-such-model")],
        "wrong head": ["--model", mlm, "--task", "text-classification"],
        "bogus pooling": ["--model", model, "--pooling", "bogus"],
        "bad device": ["--model", model, "--device", f"cuda:{n}"],
        "bad devices": ["--model", model, "--devices", "cpu,banana"],
    }


@pytest.mark.parametrize(
    "case", ["model missing", "wrong head", "bogus pooling", "bad device", "bad devices"]
)
def test_a_run_that_cannot_start_writes_nothing(tmp_path, capsys, model, mlm, docs, case):
    args = _failures(model, mlm)[case]
    out = tmp_path / "new"
    one_error_line(*run_cli(capsys, docs, *args, "--output", str(out)))
    assert not out.exists()  # not even the folder
    # the corrected rerun into the same folder works (no manifest "running" refuses it as another job)
    code, err = run_cli(capsys, docs, "--model", model, "--output", str(out))
    assert code == 0, err
    with open(out / MANIFEST, encoding="utf-8") as f:
        assert json.load(f)["status"] == "complete"

    # beside it: a failed --overwrite run into a finished output leaves that output as it was
    before = listing(out)
    one_error_line(*run_cli(capsys, docs, *args, "--output", str(out), "--overwrite", "--shard-rows", "1"))
    assert listing(out) == before


# ================================================================ devices and extras: one line, exit 2


def test_devices_this_machine_does_not_have_are_one_line(tmp_path, capsys, model, docs):
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cases = {
        ("--devices", f"{n},{n + 1}"): f"cuda:{n}",
        ("--devices", "cpu,banana"): "banana",
        ("--device", "banana"): "banana",
        ("--device", f"cuda:{n}"): f"cuda:{n}",
    }
    if n == 0:  # the example; on a machine with a GPU, cuda exists
        cases[("--device", "cuda")] = "cuda"
    for (flag, value), named in cases.items():
        line = one_error_line(
            *run_cli(capsys, docs, "--model", model, flag, value, "--output", str(tmp_path / "o"))
        )
        assert named in line, line
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="banana"):  # the API says the same
        embed([docs], str(tmp_path / "o"), model=model, devices=["cpu", "banana"])


def _without(module: str, *args: str) -> subprocess.CompletedProcess:
    """``fastbert ARGS`` in a fresh interpreter in which ``module`` cannot be imported."""
    code = f"import sys; sys.modules[{module!r}] = None; from fastbert.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_without_pyarrow_one_line_says_what_to_install(tmp_path, docs):
    r = _without("pyarrow", "embed", docs, "--output", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    # what to install from PyPI and from a checkout, never the distribution's name, which is not on PyPI
    assert r.stderr.splitlines() == [
        "fastbert embed: error: fastbert embed writes Parquet through pyarrow: pip install pyarrow (the [embed] "
        "extra: pip install '.[embed]' in a checkout of fastbert; fastbert-triton is not on PyPI)"
    ]
    assert not (tmp_path / "o").exists()
    # beside it: --help needs no pyarrow; --ray without Ray says what to install the same way
    assert _without("pyarrow", "embed", "--help").returncode == 0
    r = _without("ray", "embed", docs, "--ray", "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert 'pip install "ray[data]" pyarrow' in r.stderr and 'pip install ".[ray]"' in r.stderr, r.stderr
    assert "fastbert-triton[" not in r.stderr


# ======================================================================= errors name the file and line


def test_errors_name_the_file_and_a_1_based_line_or_row(tmp_path, model):
    lines = [json.dumps({"id": "a", "text": "the city"}), json.dumps({"id": "b", "text": "  "})]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"in\.jsonl, line 2 \(id 'b'\): empty text"):
        embed([str(tmp_path / "in.jsonl")], str(tmp_path / "o1"), model=model, id_column="id", progress=False)

    (tmp_path / "in.txt").write_text("the city\nparis\n\nthe river\n")
    with pytest.raises(ValueError, match=r"in\.txt, line 3: empty text"):
        embed([str(tmp_path / "in.txt")], str(tmp_path / "o2"), model=model, progress=False)

    (tmp_path / "in.csv").write_text('text,id\n"the city",1\n"",2\n')
    with pytest.raises(ValueError, match=r"in\.csv, row 2 \(id '2'\): empty text"):
        embed([str(tmp_path / "in.csv")], str(tmp_path / "o3"), model=model, id_column="id", progress=False)

    pq.write_table(pa.table({"text": ["the city", "paris", None]}), tmp_path / "in.parquet", row_group_size=2)
    with pytest.raises(ValueError, match=r"in\.parquet, row 3: missing text"):
        embed([str(tmp_path / "in.parquet")], str(tmp_path / "o4"), model=model, progress=False)


def test_corrupt_inputs_say_which_file_and_what_it_is_not(tmp_path, capsys, model):
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"this is not a parquet file, only some text long enough to have a footer")
    line = one_error_line(*run_cli(capsys, str(bad), "--model", model, "--output", str(tmp_path / "o")))
    assert f"{bad} is not a valid Parquet file" in line
    short = tmp_path / "short.parquet"  # beside it: shorter than a footer
    short.write_bytes(b"PAR1")
    line = one_error_line(*run_cli(capsys, str(short), "--model", model, "--output", str(tmp_path / "o")))
    assert f"{short} is not a valid Parquet file" in line
    ragged = tmp_path / "ragged.csv"  # and a CSV pyarrow cannot parse
    ragged.write_text("text,id\nthe city,1\nparis,2,3\n")
    line = one_error_line(*run_cli(capsys, str(ragged), "--model", model, "--output", str(tmp_path / "o")))
    assert f"{ragged} is not a valid CSV file" in line
    assert not (tmp_path / "o").exists()


# ===================================================================== the documented read-back works


def _read_back_snippets(path: Path) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if 'dataset("vectors/")' in b]


@pytest.mark.parametrize("doc", ["README.md", "docs/README-embed.md"])
def test_readme_read_back_snippet_runs_as_written(tmp_path, monkeypatch, model, docs, doc):
    snippets = _read_back_snippets(ROOT / doc)
    assert len(snippets) == 1, f"{doc} has no (or several) read-back snippets"
    monkeypatch.chdir(tmp_path)
    embed([docs], "vectors/", model=model, shard_rows=2, progress=False)  # two shards and the manifest
    scope: dict = {}
    exec(compile(snippets[0], f"{doc} read-back snippet", "exec"), scope)  # as written
    assert scope["table"].num_rows == 3 and scope["table"].column_names == ["id", "vector"]
    assert len(scope["df"]) == 3 and list(scope["df"].columns) == ["id", "vector"]


def test_old_layout_is_moved_and_resumed(tmp_path, model, docs):
    import pyarrow.dataset as ds

    out = tmp_path / "vectors"
    ref = embed([docs], str(out), model=model, shard_rows=1, progress=False)
    # the 0.1.0 layout: manifest.json inside the dataset folder, a killed run (one shard still to do)
    with open(out / MANIFEST, encoding="utf-8") as f:
        running = dict(json.load(f), status="running")
    for key in ("shards", "total_rows", "description", "dimension"):
        running.pop(key)
    (out / "manifest.json").write_text(json.dumps(running))
    os.remove(out / MANIFEST)
    os.remove(out / "part-00002.parquet")
    kept = (out / "part-00000.parquet").stat().st_mtime_ns
    m = embed([docs], str(out), model=model, shard_rows=1, progress=False)
    assert m["status"] == "complete" and m["total_rows"] == ref["total_rows"] == 3
    assert sorted(os.listdir(out)) == [MANIFEST] + [f"part-0000{i}.parquet" for i in range(3)]
    assert (out / "part-00000.parquet").stat().st_mtime_ns == kept  # resumed, not redone
    assert ds.dataset(str(out)).to_table().num_rows == 3

    # beside it: a manifest.json that is not fastbert's is the user's: left alone (and no resume from it)
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"mine": true}')
    embed([docs], str(other), model=model, progress=False)
    assert (other / "manifest.json").read_text() == '{"mine": true}'


# ==================================================================== --output must be a folder


def test_output_that_is_not_a_folder(tmp_path, capsys, model, docs):
    line = one_error_line(*run_cli(capsys, docs, "--model", model, "--output", "/dev/null"))
    assert "/dev/null is not a folder" in line and "is a file" not in line
    plain = tmp_path / "plain.txt"  # beside it: a regular file, left as it was
    plain.write_text("keep")
    line = one_error_line(*run_cli(capsys, docs, "--model", model, "--output", str(plain)))
    assert f"{plain} is not a folder" in line and plain.read_text() == "keep"
    # an empty --output was the current folder, refused as "input file ... is in the output folder : "
    # (or made there) instead of named
    line = one_error_line(*run_cli(capsys, docs, "--model", model, "--output", ""))
    assert "--output must name a folder, got ''" in line
