"""``fastbert embed`` (local engine): vectors equal to the pipeline's, row by row; a SIGKILLed run resumed
to the same bytes; bad rows under each ``on_error``; a resume of another job refused.

The models are tiny random BERTs saved by a fixture (two layers, hidden 32), so a corpus of a few
thousand rows embeds in seconds.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from process_helpers import FRESH_PROCESS_THREADS

import fastbert
from fastbert.core.tolerances import assert_close
from fastbert.embed import MANIFEST, embed, read_output
from fastbert.embed.lock import LOCK_NAME, FolderLock, OutputInUse
from fastbert.embed.writer import null_vectors_refusal

WORDS = (
    "the a of and to in is was he she it that for on with as his her at by plants create energy through "
    "process known photosynthesis paris capital france city john lives new york works google what where"
).split()
VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + WORDS
    + [".", ",", "?"]
    + list("abcdefghijklmnopqrstuvwxyz")
    + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save_tiny(path, seed: int, cls=None, **config) -> str:
    """A tiny random BERT folder with a vocab.txt tokenizer (no transformers needed)."""
    torch.manual_seed(seed)
    cfg = fastbert.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        **config,
    )
    (cls or fastbert.BertModel)(cfg).eval().save_pretrained(str(path))
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return str(path)


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 24)))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed_models")
    return {
        "base": save_tiny(root / "base", 0),
        "other": save_tiny(root / "other", 1),
        "seq": save_tiny(
            root / "seq",
            2,
            fastbert.BertForSequenceClassification,
            id2label={0: "NEG", 1: "POS", 2: "NEU"},
            label2id={"NEG": 0, "POS": 1, "NEU": 2},
        ),
    }


def write_corpus(root, n_per_file: int = 600, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Three files, two formats (JSON lines, Parquet with two row groups): paths, ids, texts."""
    rng = random.Random(seed)
    paths, ids, texts = [], [], []
    for f, fmt in enumerate(("jsonl", "parquet", "jsonl")):
        rows = [(f"f{f}-{i}", text(rng)) for i in range(n_per_file)]
        path = str(root / f"part{f}.{fmt}")
        if fmt == "jsonl":
            with open(path, "w", encoding="utf-8") as fh:
                for i, t in rows:
                    fh.write(json.dumps({"id": i, "text": t, "extra": 1}) + "\n")
        else:
            table = pa.table({"text": [t for _, t in rows], "id": [i for i, _ in rows]})
            pq.write_table(table, path, row_group_size=n_per_file // 2 + 7)
        paths.append(path)
        ids += [i for i, _ in rows]
        texts += [t for _, t in rows]
    return paths, ids, texts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("embed_corpus"))


# a job with several shards per file and several windows per shard, small token batches
JOB = dict(id_column="id", shard_rows=128, window=50, max_batch_tokens=1024, progress=False)


def vectors(output) -> tuple[list, np.ndarray]:
    t = read_output(str(output))
    v = t.column("vector")
    dim = v.type.list_size
    flat = v.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return t.column("id").to_pylist(), flat.reshape(-1, dim)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, models, corpus):
    """An uninterrupted API run over the corpus, the reference of the other local tests. It runs with the
    threads of a fresh process, as the CLI children it is compared with byte for byte do (a GEMM's blocking,
    so its last bits, can follow the thread count; a session-scoped server fixture may hold another)."""
    out = tmp_path_factory.mktemp("embed_ref") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(FRESH_PROCESS_THREADS)
    try:
        manifest = embed(corpus[0], str(out), model=models["base"], **JOB)
    finally:
        torch.set_num_threads(threads)
    return out, manifest


def test_vectors_equal_pipeline_row_by_row(models, corpus, reference):
    paths, ids, texts = corpus
    out, manifest = reference
    got_ids, got = vectors(out)
    assert got_ids == ids  # same order, same ids
    pipe = fastbert.pipeline("sentence-embedding", model=models["base"])
    torch_out = pipe(texts, return_tensors=True)
    ref = fastbert.pipeline("sentence-embedding", model=models["base"], torch_dtype=torch.float64)(
        texts, return_tensors=True
    )
    assert_close(torch.from_numpy(got.copy()), torch_out, ref, torch.float32, what="embed vectors")
    assert got.dtype == np.float32 and got.shape == (len(texts), 32)
    # the manifest says what was done
    assert manifest["status"] == "complete"
    assert manifest["total_rows"] == len(texts) and manifest["bad_rows"] == 0
    assert manifest["dimension"] == 32
    assert sum(s["rows"] for s in manifest["shards"]) == len(texts)
    assert len(manifest["shards"]) == 3 * 5  # 600 rows a file in shards of 128, never across files
    assert [f["rows"] for f in manifest["inputs"]] == [600, 600, 600]
    assert all({"size", "mtime_ns"} <= set(f) for f in manifest["inputs"])
    assert manifest["description"]["pooling"] == ["mean"]
    assert manifest["fastbert_version"] == fastbert.__version__
    with open(os.path.join(out, MANIFEST), encoding="utf-8") as f:
        assert json.load(f)["total_rows"] == len(texts)


def test_token_budget_batches_sorted_and_bounded(models):
    from fastbert.embed import Encoder, Job

    job = Job(
        task="sentence-embedding",
        model=models["base"],
        revision=None,
        model_fingerprint=None,
        dtype=None,
        output_dtype="float32",
        pooling=None,
        normalize=None,
        max_length=None,
        function_to_apply=None,
        column="text",
        id_column=None,
        on_error="fail",
        shard_rows=10,
        window=10,
        max_batch_tokens=100,
    )
    enc = Encoder(job)
    lengths = [5, 40, 12, 40, 3, 90, 200, 7]
    batches = enc.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
        assert len(b) == 1 or len(b) * lengths[b[0]] <= 100  # a row over budget runs alone
    assert batches[0] == [6] and batches[1] == [5]


def _cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "fastbert", "embed", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _cli_args(models, paths, out):
    return [
        *paths,
        "--model",
        models["base"],
        "--output",
        str(out),
        "--id-column",
        "id",
        "--shard-rows",
        str(JOB["shard_rows"]),
        "--window",
        str(JOB["window"]),
        "--max-batch-tokens",
        str(JOB["max_batch_tokens"]),
        "--no-progress",
    ]


# The child of the kill-and-resume test: ``fastbert embed`` whose write of one shard holds, its temporary
# file open and half written, until the test signals it: the test waits for that state (the temporary file
# appears), so the run cannot finish first, however fast the machine. SIGINT is reset to Python's default
# handler first: a background job (``cmd &`` in a non-interactive shell) or ``nohup`` starts the child with
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
_HELD_CHILD = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
import fastbert.embed.local as local
from fastbert.cli import main
from fastbert.output_files import open_output
held = "part-{:05d}.parquet".format(int(sys.argv[1]))
write_shard = local.write_shard
def holding_write_shard(path, table):
    if os.path.basename(path) != held:
        return write_shard(path, table)
    with open_output(path, "wb") as f:
        f.write(b"PAR1")
        f.flush()
        while True:
            time.sleep(0.05)
local.write_shard = holding_write_shard
sys.exit(main(["embed", *sys.argv[2:]]))
"""


def _held_cli(hold_shard: int, args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", _HELD_CHILD, str(hold_shard), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _temporaries(out) -> list[str]:
    """The temporary files in ``out`` (not the folder's lock file)."""
    return [x for x in os.listdir(out) if x.startswith(".") and x != LOCK_NAME] if os.path.isdir(out) else []


def _held_temporaries(out, shard: int) -> list[str]:
    return [x for x in _temporaries(out) if x.startswith(f".part-{shard:05d}.parquet.")]


def _wait_for_temporary(out, shard: int, proc, timeout: float = 300.0) -> None:
    """Until the held shard's temporary file exists (the child then holds until signalled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _held_temporaries(out, shard):
            return
        if proc.poll() is not None:
            raise AssertionError(f"embed ended before the held shard: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the held shard's temporary file did not appear in {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_identical_bytes(tmp_path, models, corpus, reference, sig):
    out = tmp_path / "out"
    args = _cli_args(models, corpus[0], out)
    proc = _held_cli(2, args)  # shards 0 and 1 written, shard 2 held half written
    _wait_for_temporary(out, 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err[-2000:]
    with open(out / MANIFEST, encoding="utf-8") as f:
        assert json.load(f)["status"] == "running"  # interrupted, not finished
    done = sorted(x for x in os.listdir(out) if x.startswith("part-"))
    assert done == ["part-00000.parquet", "part-00001.parquet"]
    if sig == signal.SIGINT:  # a clean interruption removes the held shard's temporary file
        assert not _temporaries(out)
        return
    assert len(_held_temporaries(out, 2)) == 1 == len(_temporaries(out))  # SIGKILL: no handler ran
    assert (out / LOCK_NAME).exists()  # its lock file stays, but the OS released the lock: the rerun takes it
    before = {x: os.stat(out / x).st_mtime_ns for x in done}

    again = _cli(args)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert {x: os.stat(out / x).st_mtime_ns for x in done} == before  # finished shards were skipped
    assert not _temporaries(out)  # SIGKILL's temporary removed
    assert not (out / LOCK_NAME).exists()  # a run that ends removes its lock file

    ref_ids, ref_vec = vectors(reference[0])
    ids, vec = vectors(out)
    assert ids == ref_ids
    assert vec.tobytes() == ref_vec.tobytes()  # byte-identical to the uninterrupted run
    with open(out / MANIFEST, encoding="utf-8") as f:
        m = json.load(f)
    assert m["status"] == "complete" and m["total_rows"] == 1800


def _bad_corpus(tmp_path) -> str:
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps({"id": f"r{i}", "text": f"paris is a city {i}"}).encode() for i in range(8)]
    lines[1] = json.dumps({"id": "r1", "text": "   "}).encode()  # empty text
    lines[3] = b'{"id": "r3", "text": "caf\xe9 au lait"}'  # not UTF-8 (latin-1 byte)
    lines[5] = json.dumps({"id": "r5", "body": "no text key"}).encode()  # missing column
    lines[6] = b'{"id": "r6", "text": '  # not JSON
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


BAD_IDS = {"r1", "r3", "r5"}


@pytest.mark.parametrize("mode", ["fail", "skip", "empty"])
def test_bad_rows_follow_on_error(tmp_path, models, mode):
    refusal = null_vectors_refusal(mode)
    if refusal is not None:
        pytest.skip(refusal)  # "empty" refused before anything runs: the test below
    path = _bad_corpus(tmp_path)
    out = tmp_path / "out"
    if mode == "fail":  # found by the scan: before the model loads, nothing written (not even the folder)
        with pytest.raises(ValueError, match=r"bad\.jsonl, line 2 \(id 'r1'\): empty text.*--on-error"):
            embed([path], str(out), model=models["base"], id_column="id", on_error=mode, progress=False)
        assert not out.exists()
        return
    m = embed([path], str(out), model=models["base"], id_column="id", on_error=mode, progress=False)
    table = read_output(str(out))
    ids = table.column("id").to_pylist()
    # r6 (not JSON) has no readable id: it is a bad row without an id, counted like the others
    assert m["bad_rows"] == 4
    good = [f"r{i}" for i in (0, 2, 4, 7)]
    pipe = fastbert.pipeline("sentence-embedding", model=models["base"])
    expect = pipe([f"paris is a city {i}" for i in (0, 2, 4, 7)], return_tensors=True).numpy()
    rows = dict(zip(ids, table.column("vector").to_pylist()))
    if mode == "skip":
        assert ids == good and m["bad_rows_skipped"] == 4 and m["total_rows"] == 4
    else:
        # r6 has no id to keep it under: dropped, and counted as skipped
        assert m["bad_rows_empty"] == 3 and m["bad_rows_skipped"] == 1 and m["total_rows"] == 7
        assert ids == ["r0", "r1", "r2", "r3", "r4", "r5", "r7"]
        assert all(rows[i] is None for i in BAD_IDS)
    np.testing.assert_array_equal(np.array([rows[i] for i in good], dtype=np.float32), expect)


def test_empty_bad_rows_refused_where_pyarrow_cannot_read_null_vectors(tmp_path, models, monkeypatch):
    """pyarrow < 26 writes null fixed-size lists to Parquet but cannot read them back (apache/arrow issue
    35692): on_error "empty" is refused there, naming it, before anything is written."""
    from fastbert.embed import writer

    assert writer.null_vectors_refusal("empty", "26.0.1") is None
    assert writer.null_vectors_refusal("skip", "25.0.1") is None
    why = writer.null_vectors_refusal("empty", "25.0.1")
    assert why is not None and "pyarrow 25.0.1" in why and "'skip'" in why, why
    monkeypatch.setattr(pa, "__version__", "25.0.1")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"pyarrow 25\.0\.1 cannot read a null fixed-size list"):
        embed([_bad_corpus(tmp_path)], str(out), model=models["base"], id_column="id", on_error="empty")
    assert not out.exists()


def test_missing_column_in_a_file_is_refused(tmp_path, models):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"body": ["a"]}), str(path))
    with pytest.raises(ValueError, match=r"x.parquet has no column 'text'"):
        embed([str(path)], str(tmp_path / "out"), model=models["base"], progress=False)


def test_json_lines_without_the_column_or_objects_refused_before_the_model(tmp_path, models):
    """A misspelt --column (no object of the first lines has it) and a .json file holding one array are
    refused while the file is scanned: nothing is written, so the corrected run starts clean."""
    typo = tmp_path / "typo.jsonl"
    typo.write_text("".join(json.dumps({"txt": f"row {i}", "id": i}) + "\n" for i in range(5)))
    array = tmp_path / "array.jsonl"
    array.write_text(json.dumps([{"text": "a"}, {"text": "b"}], indent=1) + "\n")
    out = tmp_path / "out"
    with pytest.raises(
        ValueError, match=r"typo.jsonl has no column 'text' in its first 5 lines \(their keys: id, txt\)"
    ):
        embed([str(typo)], str(out), model=models["base"], progress=False)
    with pytest.raises(
        ValueError, match=r"array.jsonl is not JSON lines: its first line is not a JSON object"
    ):
        embed([str(array)], str(out), model=models["base"], progress=False)
    assert not out.exists()
    # a few rows without the column are bad rows, not a refusal
    some = tmp_path / "some.jsonl"
    some.write_text(json.dumps({"txt": "x"}) + "\n" + json.dumps({"text": "the city"}) + "\n")
    m = embed([str(some)], str(out), model=models["base"], on_error="skip", progress=False)
    assert m["total_rows"] == 1 and m["bad_rows"] == 1


def _parquet_bad_at(path, n: int, bad: int) -> str:
    """A Parquet file of ``n`` texts, the one at 0-based ``bad`` whitespace only: a bad row no scan sees
    (the footer counts nulls, not empty strings), found when its shard is read."""
    texts = [f"the city {i}" for i in range(n)]
    texts[bad] = "  "
    pq.write_table(pa.table({"text": texts}), str(path), row_group_size=10)
    return str(path)


def test_a_run_that_wrote_no_shard_restarts_with_new_options(tmp_path, models):
    """A run stopped by a bad row before its first shard (--on-error fail) leaves only its manifest: the
    corrected run (--on-error skip, the error's own advice) starts over instead of being refused as another
    job; once a shard with a bad row exists, another on_error is refused as before."""
    path = _parquet_bad_at(tmp_path / "c.parquet", 3, 1)
    out = str(tmp_path / "out")
    with pytest.raises(ValueError, match="row 2: empty text"):
        embed([path], out, model=models["base"], progress=False)
    with open(os.path.join(out, MANIFEST), encoding="utf-8") as f:
        assert json.load(f)["status"] == "running" and not [
            n for n in os.listdir(out) if n.endswith(".parquet")
        ]
    m = embed([path], out, model=models["base"], on_error="skip", progress=False)
    assert m["status"] == "complete" and m["total_rows"] == 2 and m["job"]["on_error"] == "skip"
    with pytest.raises(ValueError, match=r"(?s)another job.*on_error.*finished shards hold bad rows"):
        embed([path], out, model=models["base"], on_error="empty", progress=False)


def test_on_error_may_change_on_resume_when_no_finished_shard_holds_a_bad_row(tmp_path, models):
    """A bad row found mid-run (--on-error fail) leaves shards without a bad row: the rerun with the advice
    of the error (--on-error skip) resumes after them, as the same job under its new on_error."""
    path = _parquet_bad_at(tmp_path / "c.parquet", 40, 34)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"c\.parquet, row 35: empty text \(pass --on-error skip"):
        embed([path], str(out), model=models["base"], shard_rows=10, progress=False)
    done = sorted(n for n in os.listdir(out) if n.endswith(".parquet"))
    assert done == [f"part-0000{i}.parquet" for i in range(3)]
    before = {n: os.stat(out / n).st_mtime_ns for n in done}
    m = embed([path], str(out), model=models["base"], shard_rows=10, on_error="skip", progress=False)
    assert {n: os.stat(out / n).st_mtime_ns for n in done} == before  # resumed, not redone
    assert m["status"] == "complete" and m["total_rows"] == 39 and m["bad_rows_skipped"] == 1
    assert m["job"]["on_error"] == "skip"
    with open(out / MANIFEST, encoding="utf-8") as f:
        assert json.load(f)["job"]["on_error"] == "skip"
    # the same job again (skip): returned as is; but shard 3 now holds a bad row: "empty" is another job
    assert embed([path], str(out), model=models["base"], shard_rows=10, on_error="skip", progress=False)
    with pytest.raises(ValueError, match=r"on_error: 'skip' there, 'empty' now.*part-00003\.parquet"):
        embed([path], str(out), model=models["base"], shard_rows=10, on_error="empty", progress=False)


def test_resume_of_another_job_refused(tmp_path, models):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(f"the city {i}" for i in range(50)) + "\n")
    out = str(tmp_path / "out")
    embed([str(path)], out, model=models["base"], shard_rows=20, progress=False)
    with pytest.raises(ValueError, match=r"(?s)another job.*model.*--overwrite"):
        embed([str(path)], out, model=models["other"], shard_rows=20, progress=False)
    with pytest.raises(ValueError, match=r"output_dtype"):
        embed([str(path)], out, model=models["base"], shard_rows=20, output_dtype="float16", progress=False)
    # a finished output with the same job is returned as is
    assert embed([str(path)], out, model=models["base"], shard_rows=20, progress=False)["total_rows"] == 50
    path.write_text("\n".join(f"the city {i}" for i in range(51)) + "\n")
    with pytest.raises(ValueError, match=r"input files changed"):
        embed([str(path)], out, model=models["base"], shard_rows=20, progress=False)
    m = embed([str(path)], out, model=models["other"], shard_rows=20, overwrite=True, progress=False)
    assert m["total_rows"] == 51 and m["job"]["model"] == models["other"]


def test_resume_of_another_fastbert_versions_run_refused(tmp_path, models):
    """An unfinished run started by another fastbert version is not resumed: its shards hold that version's
    vectors, and the rest computed by this one (which may differ) were put beside them, the manifest then
    naming this version alone. A finished output of another version is returned as is (nothing added)."""
    path = tmp_path / "c.txt"
    path.write_text("the city\nparis is a city\nthe river\n")
    out = tmp_path / "out"
    kw = dict(model=models["base"], shard_rows=1, progress=False)
    embed([str(path)], str(out), **kw)  # 3 shards
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "fastbert_version": "0.0.1"}))
    assert embed([str(path)], str(out), **kw)["fastbert_version"] == "0.0.1"  # finished: as it is
    (out / MANIFEST).write_text(json.dumps({**manifest, "fastbert_version": "0.0.1", "status": "running"}))
    os.remove(out / "part-00002.parquet")
    with pytest.raises(
        ValueError,
        match=r"unfinished run of fastbert 0\.0\.1 \(build sha256:\w+\), and this is fastbert .*--overwrite",
    ):
        embed([str(path)], str(out), **kw)
    assert sorted(n for n in os.listdir(out) if n.endswith(".parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    m = embed([str(path)], str(out), overwrite=True, **kw)
    assert (
        m["status"] == "complete" and m["total_rows"] == 3 and m["fastbert_version"] == fastbert.__version__
    )


def test_resume_of_another_fastbert_builds_run_refused(tmp_path, models):
    """``__version__`` is the same across development commits, so an unfinished run started by other code
    of the same version was resumed, its shards beside this code's. The manifest records the build (a
    digest of the package's files) and a resume of another build, or of a manifest of the same version
    that records none (written before builds were recorded), is refused naming both; the same build
    resumes."""
    from fastbert.embed.manifest import fastbert_build

    path = tmp_path / "c.txt"
    path.write_text("the city\nparis is a city\nthe river\n")
    out = tmp_path / "out"
    kw = dict(model=models["base"], shard_rows=1, progress=False)
    manifest = embed([str(path)], str(out), **kw)
    assert manifest["fastbert_build"] == fastbert_build() and re.fullmatch(
        r"sha256:[0-9a-f]{64}", manifest["fastbert_build"]
    )
    other = "sha256:" + "0" * 64
    no_build = {k: v for k, v in manifest.items() if k != "fastbert_build"}
    for old, named in ((dict(manifest, fastbert_build=other), other), (no_build, "not recorded")):
        (out / MANIFEST).write_text(json.dumps({**old, "status": "running"}))
        with contextlib.suppress(FileNotFoundError):
            os.remove(out / "part-00002.parquet")
        with pytest.raises(ValueError) as e:
            embed([str(path)], str(out), **kw)
        msg = str(e.value)
        assert f"fastbert {fastbert.__version__} (build {named})" in msg, msg
        assert f"this is fastbert {fastbert.__version__} (build {fastbert_build()})" in msg, msg
        assert "--overwrite" in msg
        assert not (out / "part-00002.parquet").exists()
    # the same build resumes
    (out / MANIFEST).write_text(json.dumps({**manifest, "status": "running"}))
    m = embed([str(path)], str(out), **kw)
    assert m["status"] == "complete" and m["total_rows"] == 3 and (out / "part-00002.parquet").exists()
    # a manifest that names neither a version nor a build (written by hand) resumes too
    os.remove(out / "part-00002.parquet")
    by_hand = {k: v for k, v in manifest.items() if k not in ("fastbert_version", "fastbert_build")}
    (out / MANIFEST).write_text(json.dumps({**by_hand, "status": "running"}))
    m = embed([str(path)], str(out), **kw)
    assert m["status"] == "complete" and m["total_rows"] == 3 and (out / "part-00002.parquet").exists()


def test_fastbert_build_follows_the_code_and_not_the_install(tmp_path):
    """The build is a digest of the imported package's .py and .txt files: the same for an editable
    checkout and a wheel-like copy of it imported from elsewhere (another process), another when a file
    changes, the same with bytecode or other leftovers beside them."""
    from fastbert.embed.manifest import fastbert_build, package_digest

    package = os.path.dirname(os.path.abspath(fastbert.__file__))
    site = tmp_path / "site"
    shutil.copytree(package, site / "fastbert", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    code = "from fastbert.embed.manifest import fastbert_build; import fastbert; print(fastbert.__file__); print(fastbert_build())"
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    where, build = result.stdout.split()
    assert where == str(site / "fastbert" / "__init__.py") and build == fastbert_build()
    copy = str(site / "fastbert")
    digest = package_digest(copy)
    (site / "fastbert" / "__pycache__").mkdir(exist_ok=True)
    (site / "fastbert" / "__pycache__" / "x.cpython-310.pyc").write_bytes(b"junk")
    (site / "fastbert" / ".x.py.swp").write_bytes(b"junk")
    assert package_digest(copy) == digest
    pooling = site / "fastbert" / "embed" / "encoder.py"
    pooling.write_text(pooling.read_text() + "\n# changed\n")
    changed = package_digest(copy)
    assert changed != digest
    (site / "fastbert" / "quant" / "calibration.txt").write_text("another calibration\n")
    assert package_digest(copy) not in (digest, changed)


def test_an_overwrite_stopped_while_it_removes_the_files_leaves_them_owned(tmp_path, models, monkeypatch):
    """--overwrite removes the previous run's files before it writes its own: stopped meanwhile (Ctrl-C,
    SIGKILL), the manifest went first and the shards left were named by no manifest, so every later run,
    --overwrite too, refused the folder. The manifest now goes last, no longer saying complete: the folder
    is not read as the whole dataset, and a rerun (the new job with --overwrite, or the old one) goes on."""
    import fastbert.embed.resume as resume

    path = tmp_path / "c.txt"
    path.write_text("the city\nparis is a city\nthe river\n")
    out = tmp_path / "out"
    old = dict(model=models["base"], shard_rows=1, progress=False)
    embed([str(path)], str(out), **old)  # 3 shards
    remove, removed = os.remove, []

    def interrupted_remove(p, *a, **kw):
        if removed and os.path.basename(p) != LOCK_NAME:  # Ctrl-C after the first file
            raise KeyboardInterrupt
        removed.append(os.path.basename(p))
        remove(p, *a, **kw)

    monkeypatch.setattr(resume.os, "remove", interrupted_remove)
    with pytest.raises(KeyboardInterrupt):
        embed([str(path)], str(out), model=models["base"], shard_rows=2, overwrite=True, progress=False)
    monkeypatch.setattr(resume.os, "remove", remove)
    assert removed[0] == "part-00000.parquet"
    with open(out / MANIFEST, encoding="utf-8") as f:
        assert json.load(f)["status"] == "running"  # not the whole dataset any more
    with pytest.raises(ValueError, match="not a finished fastbert embed output"):
        read_output(str(out))
    m = embed([str(path)], str(out), **old)  # the old job resumes: the removed shard computed again
    assert m["status"] == "complete" and m["total_rows"] == 3 and len(m["shards"]) == 3
    m = embed([str(path)], str(out), model=models["base"], shard_rows=2, overwrite=True, progress=False)
    assert m["status"] == "complete" and len(m["shards"]) == 2
    assert sorted(n for n in os.listdir(out) if n.endswith(".parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_text_csv_float16_and_row_number_ids(tmp_path, models):
    rng = random.Random(3)
    texts = [text(rng) for _ in range(30)]
    (tmp_path / "a.txt").write_text("\n".join(texts[:10]) + "\n")
    with open(tmp_path / "b.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "n"])
        for t in texts[10:]:
            w.writerow([t, 1])
    out = tmp_path / "out"
    embed(
        [str(tmp_path / "*.txt"), str(tmp_path / "b.csv")],
        str(out),
        model=models["base"],
        output_dtype="float16",
        shard_rows=7,
        progress=False,
    )
    t = read_output(str(out))
    assert t.column("id").to_pylist() == list(range(30))
    assert t.schema.field("vector").type == pa.list_(pa.float16(), 32)
    ids, got = vectors(out)
    expect = fastbert.pipeline("sentence-embedding", model=models["base"])(texts, return_tensors=True)
    assert np.array_equal(got, expect.numpy().astype(np.float16))


def test_csv_fields_with_newlines_past_the_first_block(tmp_path, models):
    """Quoted CSV fields that hold newlines, in a file larger than pyarrow's 1 MiB read block: the file was
    refused as "not a valid CSV file" (pyarrow cut its blocks at a newline inside a field)."""
    rng = random.Random(5)
    texts = ["\n".join(text(rng) for _ in range(60)) for _ in range(400)]
    path = tmp_path / "multi.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i, t in enumerate(texts):
            w.writerow([f"r{i}", t])
    assert os.path.getsize(path) > 1 << 20
    out = tmp_path / "out"
    m = embed([str(path)], str(out), model=models["base"], id_column="id", shard_rows=150, progress=False)
    assert m["total_rows"] == 400 and m["bad_rows"] == 0
    ids, got = vectors(out)
    assert ids == [f"r{i}" for i in range(400)]
    pick = [0, 151, 399]  # a row of each shard
    expect = fastbert.pipeline("sentence-embedding", model=models["base"])(
        [texts[i] for i in pick], return_tensors=True
    )
    np.testing.assert_array_equal(got[pick], expect.numpy())


@pytest.mark.filterwarnings("ignore:input of")  # the long row truncated (the reference pipeline's warning)
def test_a_csv_row_larger_than_a_read_block(tmp_path, models):
    """A CSV row longer than two of pyarrow's 1 MiB read blocks (a long document), deep in the file: the
    valid file was refused as "not a valid CSV file: straddling object straddles two block boundaries". It
    is read again with larger blocks, every row once, in order."""
    rng = random.Random(6)
    texts = [text(rng) for _ in range(600)]
    big = 500  # after 1.5 MiB of rows (their other column)
    texts[big] = "paris" * 500_000  # 2.5 MB (a row across three blocks), one word: a few tokens
    path = tmp_path / "large.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "other"])
        for i, t in enumerate(texts):
            w.writerow([f"r{i}", t, "x" * 3000])
    out = tmp_path / "out"
    m = embed([str(path)], str(out), model=models["base"], id_column="id", shard_rows=250, progress=False)
    assert m["total_rows"] == len(texts) and m["bad_rows"] == 0
    ids, got = vectors(out)
    assert ids == [f"r{i}" for i in range(len(texts))]
    pick = [0, 251, big - 1, big, big + 1, len(texts) - 1]
    expect = fastbert.pipeline("sentence-embedding", model=models["base"])(
        [texts[i] for i in pick], return_tensors=True
    )
    np.testing.assert_array_equal(got[pick], expect.numpy())


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_the_text_column_may_be_the_id_column(tmp_path, models, fmt):
    """--column id --id-column id (the text is its own id): a CSV input failed with a traceback (pyarrow's
    KeyError 'Field "id" exists 2 times in schema'), where JSON lines and Parquet inputs ran."""
    texts = ["paris is the capital of france", "the city"]
    path = tmp_path / f"c.{fmt}"
    if fmt == "csv":
        path.write_text("id,other\n" + "".join(f"{t},x\n" for t in texts))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": t}) + "\n" for t in texts))
    else:
        pq.write_table(pa.table({"id": texts}), path)
    out = tmp_path / "out"
    m = embed([str(path)], str(out), model=models["base"], column="id", id_column="id", progress=False)
    assert m["total_rows"] == 2
    ids, got = vectors(out)
    assert ids == texts
    expect = fastbert.pipeline("sentence-embedding", model=models["base"])(texts, return_tensors=True)
    np.testing.assert_array_equal(got, expect.numpy())


def test_normalize_gives_unit_vectors_after_a_folders_truncate_dim(tmp_path, models):
    """--normalize is "L2-normalize" (encode's normalize_embeddings=True): with a folder whose
    config_sentence_transformers.json sets truncate_dim, the vectors were normalized before the cut, so
    not unit vectors, though the manifest said normalize: true."""
    folder = tmp_path / "truncated"
    shutil.copytree(models["base"], folder)
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"truncate_dim": 8}))
    modules = [("", "Transformer"), ("1_Pooling", "Pooling")]
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{t}"}
                for i, (p, t) in enumerate(modules)
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    texts = ["paris is the capital of france", "the city", "what where"]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out"
    m = embed([str(path)], str(out), model=str(folder), normalize=True, progress=False)
    assert m["dimension"] == 8 and m["description"]["normalize"] is True
    _, got = vectors(out)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    expect = fastbert.pipeline("sentence-embedding", model=str(folder))(
        texts, return_tensors=True, normalize=True
    )
    np.testing.assert_array_equal(got, expect.numpy())
    # without --normalize: the folder's own pipeline, unchanged
    plain = embed([str(path)], str(tmp_path / "plain"), model=str(folder), progress=False)
    assert plain["description"]["normalize"] is False
    _, got = vectors(tmp_path / "plain")
    np.testing.assert_array_equal(
        got, fastbert.pipeline("sentence-embedding", model=str(folder))(texts, return_tensors=True).numpy()
    )


def test_feature_extraction_pooled_and_classification_scores(tmp_path, models):
    path = tmp_path / "a.txt"
    texts = ["paris is the capital of france", "john lives in new york", "the sun"]
    path.write_text("\n".join(texts) + "\n")
    m = embed(
        [str(path)], str(tmp_path / "fe"), model=models["base"], task="feature-extraction", pooling="cls"
    )
    _, got = vectors(tmp_path / "fe")
    hidden = fastbert.pipeline("feature-extraction", model=models["base"])(texts, return_tensors=True)
    np.testing.assert_array_equal(got, np.stack([h[0, 0].numpy() for h in hidden]))
    assert m["description"]["pooling"] == ["cls"]

    m = embed([str(path)], str(tmp_path / "tc"), model=models["seq"], task="text-classification")
    _, got = vectors(tmp_path / "tc")
    scores = fastbert.pipeline("text-classification", model=models["seq"])(texts, top_k=None)
    for row, result in zip(got, scores):
        by_label = {d["label"]: d["score"] for d in result}
        np.testing.assert_allclose(row, [by_label[k] for k in ("NEG", "POS", "NEU")], rtol=0, atol=0)
    assert m["description"]["labels"] == ["NEG", "POS", "NEU"] and m["dimension"] == 3


def test_devices_two_cpu_workers(tmp_path, models, corpus, reference):
    out = tmp_path / "out"
    m = embed(corpus[0], str(out), model=models["base"], devices="cpu,cpu", **JOB)
    ids, got = vectors(out)
    ref_ids, ref = vectors(reference[0])
    assert ids == ref_ids and m["total_rows"] == 1800
    assert_close(
        torch.from_numpy(got.copy()),
        None,
        torch.from_numpy(ref.copy()),
        torch.float32,
        what="--devices cpu,cpu",
    )


def test_bad_arguments_named(tmp_path, models):
    path = tmp_path / "a.txt"
    path.write_text("x\n")
    with pytest.raises(OSError, match="does not exist"):
        embed([str(tmp_path / "nope.jsonl")], str(tmp_path / "o"), model=models["base"])
    with pytest.raises(ValueError, match="on_error"):
        embed([str(path)], str(tmp_path / "o"), model=models["base"], on_error="ignore")
    with pytest.raises(ValueError, match="max_batch_tokens"):
        embed([str(path)], str(tmp_path / "o"), model=models["base"], max_batch_tokens=0)
    with pytest.raises(ValueError, match="id-column needs"):
        embed([str(path)], str(tmp_path / "o"), model=models["base"], id_column="id")
    with pytest.raises(ValueError, match="format"):
        embed([str(tmp_path / "a.txt")], str(tmp_path / "o"), model=models["base"], input_format="xml")


@pytest.mark.parametrize(
    "kwargs, said",
    [
        ({"normalize": "false"}, "normalize must be True or False or None, got 'false'"),
        ({"overwrite": "no"}, "overwrite must be True or False, got 'no'"),
        ({"progress": "no"}, "progress must be True or False or None, got 'no'"),
        ({"shard_rows": True}, "shard_rows must be a positive integer, got True"),
        ({"max_batch_tokens": True}, "max_batch_tokens must be a positive integer, got True"),
        ({"max_length": "16"}, "max_length must be an integer of at least 2, got '16'"),
    ],
)
def test_arguments_of_another_type_are_refused_before_anything_runs(tmp_path, models, kwargs, said):
    """A flag given as a string was taken by its truth (``normalize="false"`` normalised, and was recorded so
    in the manifest; ``overwrite="no"`` overwrote), True was a count of 1, and ``max_length="16"`` was a
    TypeError about ``<``: each is refused naming the argument, before the folder is made."""
    path = tmp_path / "a.txt"
    path.write_text("the city\n")
    with pytest.raises(ValueError, match=re.escape(said)):
        embed([str(path)], str(tmp_path / "o"), model=models["base"], **kwargs)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("inputs, said", [(None, "got NoneType"), (5, "got int"), ([None], "an item None")])
def test_inputs_of_another_type_are_named(tmp_path, models, inputs, said):
    """``inputs=None`` was "'NoneType' object is not iterable", an item None "expected str, bytes or
    os.PathLike object": both named neither the argument nor what it takes."""
    with pytest.raises(TypeError, match=re.escape(said)) as e:
        embed(inputs, str(tmp_path / "o"), model=models["base"])
    assert str(e.value).startswith("inputs must be")
    assert not (tmp_path / "o").exists()


def test_module_is_callable(tmp_path, models):
    import fastbert.embed

    path = tmp_path / "a.txt"
    path.write_text("the city\n")
    assert fastbert.embed([str(path)], str(tmp_path / "o"), model=models["base"])["total_rows"] == 1
    # paths as pathlib.Path, the output's too (it was a TypeError: "argument of type 'PosixPath' is not
    # iterable")
    assert fastbert.embed(path, tmp_path / "p", model=models["base"])["total_rows"] == 1
    assert read_output(tmp_path / "p").num_rows == 1


def test_a_glob_over_the_output_folder_leaves_its_shards_out(tmp_path, models):
    """``data/**/*.parquet`` with the output in ``data/vectors``: the second run matched the first run's own
    shards as inputs and refused to resume ("inputs: [...] there, [...] now"). The output folder's files
    are left out of a glob; one named as an input is refused."""
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"text": ["the cat", "a dog", "paris is big"]}), data / "a.parquet")
    out = data / "vectors"
    glob_ = str(data / "**" / "*.parquet")
    first = embed(glob_, str(out), model=models["base"], progress=False)
    assert first["total_rows"] == 3 and list(out.glob("part-*.parquet"))
    again = embed(glob_, str(out), model=models["base"], progress=False)  # resumes: nothing left to do
    assert again["inputs"] == first["inputs"] and read_output(str(out)).num_rows == 3
    shard = str(sorted(out.glob("part-*.parquet"))[0])
    with pytest.raises(OSError, match="is in the output folder"):
        embed([str(data / "a.parquet"), shard], str(out), model=models["base"], progress=False)
    with pytest.raises(OSError, match="matches no file outside the output folder"):
        embed(str(out / "*.parquet"), str(out), model=models["base"], progress=False)


def test_parquet_files_in_a_subfolder_of_the_output_are_refused(tmp_path, models):
    """Dataset readers read the output folder recursively: a Parquet file in a subfolder (``vectors/old/``)
    was read with the shards (pyarrow.dataset failed on the mixed schemas) while the folder's top level
    alone was checked for Parquet files fastbert did not write. A subfolder that readers skip (``_``, ``.``)
    is left alone."""
    src = tmp_path / "a.txt"
    src.write_text("the city\n")
    out = tmp_path / "out"
    (out / "_skipped").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), out / "_skipped" / "a.parquet")
    embed(str(src), str(out), model=models["base"], progress=False)
    (out / "old" / "deeper").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), out / "old" / "deeper" / "b.parquet")
    with pytest.raises(
        ValueError, match=r"Parquet files that no fastbert manifest there names \(old/deeper/b"
    ):
        embed(str(src), str(out), model=models["base"], progress=False)
    with pytest.raises(ValueError, match="old/deeper/b.parquet"):
        embed(str(src), str(tmp_path / "out"), model=models["base"], progress=False, overwrite=True)
    assert (out / "old" / "deeper" / "b.parquet").exists() and (out / MANIFEST).exists()


def test_a_file_whose_name_has_glob_characters_is_that_file(tmp_path):
    """``data[2024].jsonl`` names an existing file: it was read as a glob (the character class ``[2024]``),
    which matched no file, and the file could not be embedded at all ("matches no file")."""
    from fastbert.embed.inputs import expand_inputs

    literal = tmp_path / "data[2024].jsonl"
    literal.write_text('{"text": "a"}\n')
    (tmp_path / "data2.jsonl").write_text('{"text": "b"}\n')  # what the character class matches
    assert expand_inputs(str(literal)) == [str(literal)]
    assert expand_inputs(str(tmp_path / "data*.jsonl")) == sorted(
        [str(literal), str(tmp_path / "data2.jsonl")]
    )


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--shard-rows", "-1"], "--shard-rows must be a positive integer, got -1"),
        (["--window", "0"], "--window must be a positive integer"),
        (["--max-batch-tokens", "0"], "--max-batch-tokens must be a positive integer"),
        (["--max-length", "1"], "--max-length must be at least 2"),
        (["--max-length", "1000"], "--max-length 1000 is more than the 64 tokens"),
        (["--task", "text-classification", "--model", None], "pass --model a BertForSequenceClassification"),
        (["--task", "text-classification", "--pooling", "mean"], "--pooling and --normalize are options"),
        (["--function-to-apply", "softmax"], "--function-to-apply is a text-classification option"),
        (
            ["--task", "feature-extraction", "--pooling", "mean,lasttoken"],
            "feature-extraction pools by mean, cls, max, not 'lasttoken'",
        ),
        # both were taken and one silently ignored (--device; --ray-actors without --ray)
        (["--device", "cpu", "--devices", "cpu,cpu"], "--device and --devices: pass one, not both"),
        (["--ray-actors", "2"], "--ray-actors is an option of --ray, not of"),
        (["--ray-address", "auto"], "--ray-address is an option of --ray, not of"),
    ],
)
def test_cli_refusals_name_the_flags(tmp_path, models, capsys, flags, said):
    """``fastbert embed``'s refusals of an option name its flag (``--max-length``), not the Python argument
    the API names (``max_length=``)."""
    from fastbert.cli import main

    path = tmp_path / "a.txt"
    path.write_text("the city\n")
    args = ["embed", str(path), "--output", str(tmp_path / "o"), "--no-progress"]
    if "--model" not in flags:
        args += ["--model", models["base"]]
    flags = [f for f in flags if f not in ("--model", None)]
    assert main(args + flags) == 2
    err = capsys.readouterr().err
    assert said in err and "_" not in err.split("error:")[1].split(" ")[1], err


def test_cli_entry(tmp_path, models):
    from fastbert.cli import main

    path = tmp_path / "a.txt"
    path.write_text("the city\nparis\n")
    assert (
        main(
            ["embed", str(path), "--model", models["base"], "--output", str(tmp_path / "o"), "--no-progress"]
        )
        == 0
    )
    assert read_output(str(tmp_path / "o")).num_rows == 2
    assert main(["embed", str(path), "--model", models["other"], "--output", str(tmp_path / "o")]) == 2


def test_cli_resume_refusal_reads_as_one_line(tmp_path, models, capsys):
    """The command line says the resume refusal on one line, its differences still apart: the lines of the
    message were joined with spaces ("... None now pass --overwrite ...", "... now dtype: ...")."""
    from fastbert.cli import main

    path = tmp_path / "a.txt"
    path.write_text("the city\nparis\n")
    args = ["embed", str(path), "--model", models["base"], "--output", str(tmp_path / "o"), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--output-dtype", "float16", "--max-length", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert (
        "cannot resume: output_dtype: 'float32' there, 'float16' now; max_length: None there, 8 now. "
        "Pass --overwrite to start over, or another --output." in err
    ), err


# Every Python process started with this folder first on PYTHONPATH (the --devices workers are spawned, fresh
# interpreters) holds the write of shard HOLD_SHARD forever and writes its pid to HOLD_PID: the run cannot end
# before the test signals its parent, however fast the machine.
_HOLDING_SITECUSTOMIZE = r"""
import os
if os.environ.get("FASTBERT_TEST_HOLD_SHARD"):
    import time
    import fastbert.embed.local as local

    held = "part-{:05d}.parquet".format(int(os.environ["FASTBERT_TEST_HOLD_SHARD"]))
    write_shard = local.write_shard

    def holding_write_shard(path, table):
        if os.path.basename(path) != held:
            return write_shard(path, table)
        with open(os.environ["FASTBERT_TEST_HOLD_PID"], "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(0.05)

    local.write_shard = holding_write_shard
    if os.environ.get("FASTBERT_TEST_NO_WATCHDOG"):  # the worker outlives its parent
        local._exit_with_parent = lambda parent: None
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _held_devices_run(tmp_path, models, corpus, out, extra_env=None, extra_args=(), **popen):
    """``fastbert embed --devices cpu,cpu`` into ``out`` as a child whose first worker holds its shard
    (``_HOLDING_SITECUSTOMIZE``); (the child, that worker's pid) once the worker holds it."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_HOLDING_SITECUSTOMIZE)
    pid_file = tmp_path / "worker.pid"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(hook), ROOT, os.environ.get("PYTHONPATH", "")]),
        FASTBERT_TEST_HOLD_SHARD="1",
        FASTBERT_TEST_HOLD_PID=str(pid_file),
        **(extra_env or {}),
    )
    args = [*_cli_args(models, corpus[0], out), "--devices", "cpu,cpu", *extra_args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastbert", "embed", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    try:
        deadline = time.monotonic() + 300
        while not (pid_file.exists() and pid_file.read_text()):
            if proc.poll() is not None:
                raise AssertionError(f"embed ended before holding its shard: {proc.communicate()[1][-2000:]}")
            assert time.monotonic() < deadline, "the held worker did not start"
            time.sleep(0.05)
    except BaseException:  # no child left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL) if popen.get("start_new_session") else proc.kill()
        raise
    return proc, int(pid_file.read_text())


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_devices_workers_end_with_their_parent(tmp_path, models, corpus, sig):
    """SIGTERM (timeout, systemd, a closed ssh session's SIGHUP alike) to ``fastbert embed --devices`` stops
    its workers before it ends by that signal; after SIGKILL (no handler runs) each worker notices its parent
    is gone and ends: none keeps writing shards for nobody."""
    out = tmp_path / "out"
    proc, worker = _held_devices_run(
        tmp_path, models, corpus, out, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)
    )
    # the parent holds the folder's lock for its workers: a second run is refused while they write
    with pytest.raises(OutputInUse, match=rf"another fastbert embed \(pid {proc.pid}\) is writing it"):
        embed(corpus[0], str(out), model=models["other"], overwrite=True, **JOB)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -sig, err[-2000:]
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "a --devices worker outlived its parent"
    FolderLock.acquire(str(out)).release()  # the parent's end released the lock, however it ended


def _ctrl_c_the_group(proc) -> str:
    """Ctrl-C (SIGINT to the process group of ``proc``, started in a session of its own): its stderr, once it
    has exited 130 (its group killed whatever happens)."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    return err


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_devices_ctrl_c_with_int8_leaves_nothing_behind(tmp_path, models, corpus):
    """Ctrl-C (SIGINT to the whole process group) of ``embed --quantization int8 --devices cpu,cpu``: exit
    130 with nothing on stderr. Each worker compiles int8's fused passes; Inductor's pool of compile
    processes, one per worker, died with it and left its semaphores to the resource tracker ("leaked
    semaphore objects"): the workers compile in their own process."""
    out = tmp_path / "out"

    def own_ctrl_c():
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background test run ignores it

    proc, worker = _held_devices_run(
        tmp_path,
        models,
        corpus,
        out,
        extra_args=("--quantization", "int8"),
        start_new_session=True,  # its own group, as a terminal's job: Ctrl-C reaches the parent and workers
        preexec_fn=own_ctrl_c,
    )
    err = _ctrl_c_the_group(proc)
    # torch's own line where a CUDA build of torch runs without a GPU (Inductor's C++ compile looks for CUDA)
    ours = [line for line in err.splitlines() if line.strip() and "No CUDA runtime is found" not in line]
    assert ours == [], err[-2000:]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_devices_ctrl_c_stops_workers_of_a_parent_that_ignores_sigterm(tmp_path, models, corpus):
    """A parent started with SIGTERM ignored (inherited, as a supervisor or a background job may leave it)
    stops its workers on Ctrl-C all the same: they reset SIGTERM, what ``terminate`` sends, to its default
    (they inherited it ignored, and the parent waited for them forever)."""
    out = tmp_path / "out"

    def ctrl_c_but_sigterm_ignored():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    proc, worker = _held_devices_run(
        tmp_path, models, corpus, out, start_new_session=True, preexec_fn=ctrl_c_but_sigterm_ignored
    )
    _ctrl_c_the_group(proc)
    assert not _alive(worker)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_devices_workers_hold_the_lock_until_they_end(tmp_path, models, corpus):
    """The --devices workers hold the parent's lock with it: a worker that outlives its killed parent (here
    its watchdog is off; it ends within a second otherwise) may still write a shard, so the folder stays
    locked, and the refusal says whose workers hold it, until every worker has ended."""
    out = tmp_path / "out"
    proc, worker = _held_devices_run(
        tmp_path, models, corpus, out, {"FASTBERT_TEST_NO_WATCHDOG": "1"}, start_new_session=True
    )  # its own process group: the test ends the workers with it
    try:
        proc.kill()
        proc.wait(timeout=60)  # not communicate(): the workers still hold its stderr
        assert _alive(worker)
        with pytest.raises(OutputInUse, match=rf"the --devices workers of pid {proc.pid}, which has ended"):
            FolderLock.acquire(str(out))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    deadline = time.monotonic() + 60
    while True:  # the workers end (SIGKILL): the lock is released with the last of them
        try:
            FolderLock.acquire(str(out)).release()
            break
        except OutputInUse:
            assert time.monotonic() < deadline, "the lock outlived the workers"
            time.sleep(0.1)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc, where no folder can be made")
def test_an_output_folder_that_cannot_be_made_is_named(tmp_path, models):
    path = tmp_path / "c.txt"
    path.write_text("the city\n")
    with pytest.raises(OSError, match="cannot create the output folder /proc/fastbert-out: "):
        embed([str(path)], "/proc/fastbert-out", model=models["base"], progress=False)


# ======================================================================== one run a folder: the lock

# A child that takes the lock of an output folder as a run does (fastbert.embed.lock), then says so by making
# a file, and holds it until its stdin closes (or it is killed).
_LOCK_HOLDER = r"""
import sys
from fastbert.embed.lock import FolderLock
lock = FolderLock.acquire(sys.argv[1])
open(sys.argv[2], "w").close()
sys.stdin.read()
lock.release()
"""


@contextlib.contextmanager
def lock_held_by_child(folder, tmp_path, timeout: float = 120.0):
    """A child process holding ``folder``'s lock while the block runs (the Popen is yielded)."""
    ready = tmp_path / f"locked-{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(folder), str(ready)],
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                raise AssertionError(f"the lock holder ended: {proc.communicate()[1][-2000:]}")
            assert time.monotonic() < deadline, "the lock holder did not take the lock"
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=60)


def _files(folder) -> dict[str, int]:
    """Every file of ``folder`` but its lock file, with its mtime."""
    return {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder) if n != LOCK_NAME}


def test_a_second_run_into_a_folder_being_written_is_refused(tmp_path, models, capsys):
    """Two runs into one folder mixed their shards (another model's among them) and both said complete;
    --overwrite removed a live run's files. Now the second run is refused, the API and the CLI alike, with
    or without --overwrite, and nothing of the folder changes; a holder that dies (SIGKILL) leaves the
    folder free."""
    from fastbert.cli import main

    path = tmp_path / "c.txt"
    path.write_text("".join(f"the city {i}\n" for i in range(30)))
    out = tmp_path / "out"
    embed([str(path)], str(out), model=models["base"], shard_rows=10, progress=False)
    before = _files(out)
    with lock_held_by_child(out, tmp_path) as child:
        said = rf"output folder {out} is in use: another fastbert embed \(pid {child.pid}\) is writing it"
        for options in ({}, {"model": models["other"], "overwrite": True}):
            kwargs = {"model": models["base"], "shard_rows": 10, "progress": False} | options
            with pytest.raises(OutputInUse, match=said):
                embed([str(path)], str(out), **kwargs)
        capsys.readouterr()
        args = ["embed", str(path), "--output", str(out), "--model", models["other"], "--overwrite"]
        assert main([*args, "--no-progress"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "is in use: another fastbert embed" in err[0], err
        assert _files(out) == before  # nothing removed, nothing written
        child.kill()  # no handler runs: the OS releases the lock with the process
        child.wait(timeout=60)
    assert (out / LOCK_NAME).exists()  # what the killed holder left: a file, not a lock
    m = embed([str(path)], str(out), model=models["other"], shard_rows=10, overwrite=True, progress=False)
    assert m["status"] == "complete" and m["job"]["model"] == models["other"]
    assert not (out / LOCK_NAME).exists()
    # the lock primitive itself: held here, refused there; released, taken again
    lock = FolderLock.acquire(str(out))
    try:
        with pytest.raises(OutputInUse, match=rf"\(pid {os.getpid()}\)"):
            FolderLock.acquire(str(out))
    finally:
        lock.release()
    FolderLock.acquire(str(out)).release()


def test_a_folder_made_by_another_run_while_this_one_started_is_refused(tmp_path):
    """A folder that did not exist is locked when the run makes it (a run that cannot start writes
    nothing): if another run made it and wrote there meanwhile, this one stops instead of writing over it."""
    from fastbert.embed.resume import OutputFolder

    out = tmp_path / "new"
    folder = OutputFolder.inspect(str(out), "local", False)
    assert not out.exists()
    out.mkdir()
    (out / MANIFEST).write_text("{}")  # the other run's
    with pytest.raises(OSError, match=rf"output folder {out} was made by another run .*{MANIFEST}"):
        folder.start({"manifest_version": 1})
    assert sorted(os.listdir(out)) == [MANIFEST] and (out / MANIFEST).read_text() == "{}"


# ============================================================ bad rows found by the scan, before the model

_SCAN_CASES = {
    "text not UTF-8": ("a.txt", b"the city\ncaf\xe9\n", None, r"a\.txt, line 2: text is not UTF-8"),
    "text whitespace": ("a.txt", b"the city\n \t\nparis\n", None, r"a\.txt, line 2: empty text"),
    "text blank last line": ("a.txt", b"the city\nparis\n\n", None, r"a\.txt, line 3: empty text"),
    "jsonl not an object": (
        "a.jsonl",
        b'{"text": "the city"}\n[1, 2]\n',
        None,
        r"line 2: line is not a JSON object",
    ),
    "jsonl not JSON": (
        "a.jsonl",
        b'{"text": "the city"}\n{"text": \n',
        None,
        r"line 2: line is not valid JSON",
    ),
    "jsonl no column": (
        "a.jsonl",
        b'{"text": "a"}\n{"body": "b"}\n',
        None,
        r"a\.jsonl, line 2: missing column 'text'",
    ),
    "jsonl text a number": (
        "a.jsonl",
        b'{"text": "a"}\n{"text": 5}\n',
        None,
        r"line 2: text is a int, not a string",
    ),
    "jsonl id a float": (
        "a.jsonl",
        b'{"id": "a", "text": "x"}\n{"id": 1.0, "text": "y"}\n',
        "id",
        r"a\.jsonl, line 2: id \('id'\) is a number, not a string or an integer",
    ),
    "jsonl id a boolean": (
        "a.jsonl",
        b'{"id": true, "text": "x"}\n',
        "id",
        r"line 1: id \('id'\) is a boolean",
    ),
    "csv empty": ("a.csv", b"text,id\nthe city,1\n  ,2\n", "id", r"a\.csv, row 2 \(id '2'\): empty text"),
    # an empty CSV id field was the id "" (every such row the same id), silently
    "csv empty id": ("a.csv", b"text,id\nthe city,1\nparis,\n", "id", r"a\.csv, row 2: empty id \('id'\)"),
    "jsonl blank id": (
        "a.jsonl",
        b'{"id": " ", "text": "x"}\n',
        "id",
        r"a\.jsonl, line 1: empty id \('id'\)",
    ),
    "parquet null": ("a.parquet", None, None, r"a\.parquet, row 12: missing text"),
}


@pytest.mark.parametrize("case", sorted(_SCAN_CASES))
def test_bad_rows_are_found_by_the_scan_before_the_model_loads(tmp_path, case):
    """Under --on-error fail, the bad rows the scan reads anyway stop the run there, naming the file and the
    line or row: the model (here a folder that does not exist, which would fail to load) is never loaded,
    nothing is written."""
    name, data, id_column, message = _SCAN_CASES[case]
    path = tmp_path / name
    if data is None:  # a null in the second row group: the footer counts it
        pq.write_table(
            pa.table({"text": [f"t{i}" for i in range(11)] + [None, "x"]}), str(path), row_group_size=10
        )
    else:
        path.write_bytes(data)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message + r".*--on-error skip"):
        embed(
            [str(path)], str(out), model=str(tmp_path / "no-such-model"), id_column=id_column, progress=False
        )
    assert not out.exists()


def test_columns_that_hold_no_text_or_no_id_are_refused_by_the_scan(tmp_path, models):
    """An int64 text column (each row was a bad row, found mid-run) and a float id column (``1.0`` as an id)
    are refused from the Parquet schema, whatever --on-error says."""
    numbers = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": [1, 2], "id": ["a", "b"]}), str(numbers))
    floats = tmp_path / "f.parquet"
    pq.write_table(pa.table({"text": ["the city", "paris"], "id": [1.0, 2.0]}), str(floats))
    no_model = str(tmp_path / "no-such-model")
    for on_error in ("fail", "skip"):
        with pytest.raises(ValueError, match=r"n\.parquet: the text column 'text' holds int64, not strings"):
            embed([str(numbers)], str(tmp_path / "o"), model=no_model, on_error=on_error, progress=False)
        with pytest.raises(ValueError, match=r"f\.parquet: the id column 'id' holds double"):
            embed([str(floats)], str(tmp_path / "o"), model=no_model, id_column="id", on_error=on_error)
    assert not (tmp_path / "o").exists()
    # beside it: dictionary-encoded strings and integer ids are text and ids
    ok = tmp_path / "ok.parquet"
    table = pa.table({"text": pa.array(["the city", "paris"]).dictionary_encode(), "id": [7, 8]})
    pq.write_table(table, str(ok))
    embed([str(ok)], str(tmp_path / "o"), model=models["base"], id_column="id", progress=False)
    assert read_output(str(tmp_path / "o")).column("id").to_pylist() == ["7", "8"]


# ======================================================================= ids: strings and integers only


def test_ids_are_strings_or_integers_and_repeats_are_warned(tmp_path, models, capsys):
    """A JSON id that is neither a string nor an integer (1.5, true, an object) is a bad row: str() made
    'True' and "{'k': 1}" of them. Ids that repeat inside a shard are counted and warned of."""
    path = tmp_path / "ids.jsonl"
    ids = [1, "2", 1.5, True, {"k": 1}, "x"]
    path.write_text("".join(json.dumps({"id": i, "text": "the city"}) + "\n" for i in ids))
    m = embed([str(path)], str(tmp_path / "o"), model=models["base"], id_column="id", on_error="skip")
    assert read_output(str(tmp_path / "o")).column("id").to_pylist() == ["1", "2", "x"]
    assert m["bad_rows_skipped"] == 3 and "duplicate_ids" not in m

    dup = tmp_path / "dup.jsonl"
    dup.write_text("".join(json.dumps({"id": i, "text": "the city"}) + "\n" for i in ["a", "b", 7, "7", "a"]))
    with pytest.warns(fastbert.embed.DuplicateIdWarning, match=r"2 row\(s\).*dup\.jsonl, line 4 \(id '7'\)"):
        m = embed([str(dup)], str(tmp_path / "d"), model=models["base"], id_column="id", progress=False)
    assert m["duplicate_ids"] == 2
    # the field named the id holds the id (it held "…dup.jsonl, line 4 (id '7')"), the place beside it
    assert m["first_duplicate_id"] == "7" and m["first_duplicate_at"].endswith("dup.jsonl, line 4")
    from fastbert.cli import main

    capsys.readouterr()
    args = [
        "embed",
        str(dup),
        "--output",
        str(tmp_path / "d2"),
        "--model",
        models["base"],
        "--id-column",
        "id",
    ]
    assert main([*args, "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("fastbert embed: warning: 2 row(s) have an id"), err


# ================================================================== read_output: complete outputs only


def test_read_output_refuses_an_unfinished_output_and_reads_an_empty_one(tmp_path, models):
    path = _parquet_bad_at(tmp_path / "c.parquet", 40, 34)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="row 35: empty text"):
        embed([path], str(out), model=models["base"], shard_rows=10, progress=False)
    with pytest.raises(
        ValueError, match=rf"{out} is not a finished fastbert embed output .*'running'.*allow_incomplete"
    ):
        read_output(str(out))
    assert read_output(str(out), allow_incomplete=True).column("id").to_pylist() == list(range(30))
    bare = tmp_path / "bare"  # shards and no manifest at all
    bare.mkdir()
    os.replace(out / "part-00000.parquet", bare / "part-00000.parquet")
    with pytest.raises(ValueError, match=rf"it has no {MANIFEST}"):
        read_output(str(bare))

    # a job of no row is complete, and reads back as an empty table of its schema
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    m = embed([str(empty)], str(tmp_path / "e"), model=models["base"], output_dtype="float16", progress=False)
    assert m["status"] == "complete" and m["total_rows"] == 0 and m["shards"] == []
    t = read_output(str(tmp_path / "e"))
    assert t.num_rows == 0 and t.schema.field("vector").type == pa.list_(pa.float16(), 32)
    assert t.schema.field("id").type == pa.int64()


# ============================================================================ shard names past 99,999


def test_shard_names_sort_as_the_shards_past_99999(tmp_path):
    from fastbert.embed.manifest import owned_names
    from fastbert.embed.plan import InputFile, plan_shards

    small = plan_shards([InputFile("a", "text", 0, 0, 99_999, ())], 1)
    assert small[-1].name == "part-99998.parquet" and small[0].name == "part-00000.parquet"  # as before
    large = plan_shards([InputFile("a", "text", 0, 0, 100_001, ())], 1)
    names = [s.name for s in large]
    assert names[0] == "part-000000.parquet" and names[-1] == "part-100000.parquet"
    assert sorted(names) == names
    # a manifest names the files of its plan by its width (older manifests: 5 digits, as they were written)
    manifest = {"job": {"shard_rows": 1}, "inputs": [{"rows": 100_001}], "shard_digits": 6}
    assert (
        "part-100000.parquet" in owned_names(manifest)[0]
        and "part-000000.parquet" in owned_names(manifest)[0]
    )
    del manifest["shard_digits"]
    assert "part-00000.parquet" in owned_names(manifest)[0]

    # read_output (allow_incomplete: no manifest) orders shards by number, whatever their width
    out = tmp_path / "out"
    out.mkdir()
    for n in (100_000, 99_999, 10):
        pq.write_table(pa.table({"id": [n], "vector": [[0.0]]}), str(out / f"part-{n:05d}.parquet"))
    assert read_output(str(out), allow_incomplete=True).column("id").to_pylist() == [10, 99_999, 100_000]


# ================================================================================= byte order marks


def test_a_utf8_bom_is_not_part_of_the_first_row_or_header(tmp_path, models):
    """Excel and Notepad start UTF-8 files with a BOM: a CSV header 'id' was '\\ufeffid' (no column 'id'), a
    JSON lines file was 'not JSON lines'."""
    rows = [("r1", "the city"), ("r2", "paris is a city")]
    bom = b"\xef\xbb\xbf"
    (tmp_path / "a.csv").write_bytes(bom + b"id,text\n" + b"".join(f"{i},{t}\n".encode() for i, t in rows))
    (tmp_path / "a.jsonl").write_bytes(
        bom + b"".join(json.dumps({"id": i, "text": t}).encode() + b"\n" for i, t in rows)
    )
    (tmp_path / "a.txt").write_bytes(bom + b"".join(t.encode() + b"\n" for _, t in rows))
    expect = fastbert.pipeline("sentence-embedding", model=models["base"])(
        [t for _, t in rows], return_tensors=True
    )
    for name in ("a.csv", "a.jsonl", "a.txt"):
        out = tmp_path / f"out-{name}"
        id_column = None if name.endswith(".txt") else "id"
        m = embed([str(tmp_path / name)], str(out), model=models["base"], id_column=id_column, progress=False)
        ids, got = vectors(out)
        assert m["bad_rows"] == 0 and ids == (["r1", "r2"] if id_column else [0, 1]), name
        np.testing.assert_array_equal(got, expect.numpy(), err_msg=name)


# ======================================================================== the job a resume compares


def test_resume_identity_normalises_dtype_and_path_and_samples_weights(tmp_path, models):
    """The default dtype is float32 (refused as another job before), a model reached through a symlink is
    the same folder, and weights replaced by others of the same size with the mtime kept (cp -p) are
    another model. A manifest written before (dtype None, a fingerprint without content) still resumes."""
    import shutil

    path = tmp_path / "c.txt"
    path.write_text("the city\nparis\n")
    model = tmp_path / "model"
    shutil.copytree(models["base"], model)
    out = str(tmp_path / "out")
    m = embed([str(path)], out, model=str(model), progress=False)
    assert m["job"]["dtype"] == "float32" and m["job"]["model_fingerprint"].startswith("sha256-v3:")
    link = tmp_path / "link"
    link.symlink_to(model)
    for dtype in ("float32", "fp32", None):
        assert embed([str(path)], out, model=str(link), dtype=dtype, progress=False)["status"] == "complete"

    # as an older fastbert wrote it: no dtype, the path as given, a fingerprint of names, sizes and mtimes
    from fastbert.embed.job import model_fingerprint

    with open(os.path.join(out, MANIFEST), encoding="utf-8") as f:
        old = json.load(f)
    old["job"].update(dtype=None, model=str(link), model_fingerprint=model_fingerprint(str(model), version=1))
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(old, f)
    assert embed([str(path)], out, model=str(model), progress=False)["job"]["dtype"] == "float32"
    # and a fingerprint of the second kind (weights sampled, a TF1 checkpoint's files left out)
    old["job"].update(model_fingerprint=model_fingerprint(str(model), version=2))
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(old, f)
    assert embed([str(path)], out, model=str(model), progress=False)["status"] == "complete"

    # another model's weights, same size, the mtime kept
    weights = [n for n in os.listdir(model) if n.endswith(".safetensors")]
    assert weights, os.listdir(model)
    for name in weights:
        st = os.stat(model / name)
        shutil.copyfile(os.path.join(models["other"], name), model / name)
        assert os.stat(model / name).st_size == st.st_size
        os.utime(model / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ValueError, match=r"(?s)another job.*model_fingerprint"):
        embed([str(path)], out, model=str(model), progress=False)


def test_a_google_folders_checkpoint_replaced_is_another_model(tmp_path):
    """A Google folder (bert_config.json, a TF1 checkpoint, vocab.txt), which fastbert loads: its fingerprint
    left the checkpoint's files out (only .safetensors, .bin, .pt, .h5 and .msgpack were weights), so a
    checkpoint replaced by another was the same model, and a rerun added the other model's vectors beside the
    first one's. They count now, as other weights do (name, size, mtime, sampled content)."""
    google = os.path.join(ROOT, "tests", "fixtures", "legacy-bert", "google_ckpt")
    model = tmp_path / "google"
    shutil.copytree(google, model, ignore=shutil.ignore_patterns("expected_outputs.safetensors"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (model / "vocab.txt").write_text("\n".join(vocab[:99]) + "\n")
    path = tmp_path / "c.txt"
    path.write_text("the city\nparis\nthe river\n")
    out = str(tmp_path / "out")
    m = embed([str(path)], out, model=str(model), shard_rows=1, progress=False)
    assert m["total_rows"] == 3
    assert embed([str(path)], out, model=str(model), shard_rows=1, progress=False)["status"] == "complete"
    data = model / "bert_model.ckpt.data-00000-of-00001"
    st = os.stat(data)
    content = bytearray(data.read_bytes())
    content[-4:] = bytes(4)  # another value of the last weight, the same size and mtime
    data.write_bytes(bytes(content))
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ValueError, match=r"(?s)another job.*model_fingerprint"):
        embed([str(path)], out, model=str(model), shard_rows=1, progress=False)
    assert m["job"]["model_fingerprint"].startswith("sha256-v3:")


def test_a_hub_model_is_pinned_to_its_commit(tmp_path, models, monkeypatch):
    """A hub id's job records the commit its revision names (``hub:<sha>``); every worker loads that commit,
    and a resume after the branch moved to another commit is refused, naming both and the --revision that
    resumes (older manifests, which recorded no commit, resume as before)."""
    import uuid

    from huggingface_hub import constants

    from fastbert.embed.encoder import Encoder
    from fastbert.embed.job import make_job

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = f"fastbert-tests/embed-{uuid.uuid4().hex[:8]}"
    folder = os.path.join(constants.HF_HUB_CACHE, "models--" + repo.replace("/", "--"))
    first, second = "1" * 40, "2" * 40
    shutil.copytree(models["base"], os.path.join(folder, "snapshots", first))
    shutil.copytree(models["other"], os.path.join(folder, "snapshots", second))
    os.makedirs(os.path.join(folder, "refs"))

    def main_is(commit):
        with open(os.path.join(folder, "refs", "main"), "w") as f:
            f.write(commit)

    main_is(first)
    path = tmp_path / "c.txt"
    path.write_text("the city\nparis\nthe river of the city\n")
    out = str(tmp_path / "out")
    m = embed([str(path)], out, model=repo, progress=False)
    assert m["job"]["model_fingerprint"] == f"hub:{first}" and m["job"]["revision"] is None
    local = str(tmp_path / "local")
    embed([str(path)], local, model=models["base"], progress=False)
    assert np.array_equal(vectors(out)[1], vectors(local)[1])

    job = make_job(**{k: v for k, v in m["job"].items() if k != "model_fingerprint"})
    assert job.model_fingerprint == f"hub:{first}"
    main_is(second)  # the branch moves after the job is planned: its workers still load the job's commit
    texts = ["the city", "paris"]
    fields = {k: v for k, v in m["job"].items() if k != "model_fingerprint"}
    with torch.no_grad():
        pinned = Encoder(job, "cpu").pipe(texts)
        base = Encoder(make_job(**{**fields, "model": models["base"]}), "cpu").pipe(texts)
        moved = Encoder(make_job(**fields), "cpu").pipe(texts)  # planned now: the second commit's model
    assert not np.array_equal(np.asarray(moved[0]), np.asarray(base[0]))
    for a, b in zip(pinned, base):
        assert np.array_equal(np.asarray(a), np.asarray(b))

    with pytest.raises(ValueError, match=rf"(?s)another job.*default branch was commit {first} there and is "
                       rf"{second} now \(pass --revision {first} to resume"):  # fmt: skip
        embed([str(path)], out, model=repo, progress=False)
    assert embed([str(path)], out, model=repo, revision=first, progress=False)["status"] == "complete"

    # an older fastbert recorded no commit for a hub id: resumed as before, the commit recorded now
    with open(os.path.join(out, MANIFEST), encoding="utf-8") as f:
        old = json.load(f)
    old["job"].update(model_fingerprint=None, revision=None)
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(old, f)
    assert embed([str(path)], out, model=repo, progress=False)["status"] == "complete"


def test_help_and_docstring_name_the_manifest_file(capsys):
    from fastbert.cli import main

    with pytest.raises(SystemExit) as e:
        main(["embed", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(Parquet shards + _manifest.json)" in text, text
    for doc in (text, fastbert.embed.__doc__):
        assert not re.search(r"(?<!_)manifest\.json", doc), doc


def test_no_device_is_the_cpu_and_gets_the_cpu_token_budget(tmp_path, monkeypatch, models):
    """Without ``--device`` the local engine runs on the CPU (the pipeline's default), yet on a machine with
    CUDA it got the GPU's default budget (16384 padded tokens, recorded in the manifest), not the CPU's 4096
    that the docs and ``--max-batch-tokens``' help give for the CPU."""
    from fastbert.embed.devices import default_max_batch_tokens
    from fastbert.embed.job import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_BATCH_TOKENS_CPU

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_max_batch_tokens([None]) == DEFAULT_MAX_BATCH_TOKENS_CPU
    assert default_max_batch_tokens([None], "ray") == DEFAULT_MAX_BATCH_TOKENS  # Ray's actors take the GPUs
    assert default_max_batch_tokens(["cuda:0"]) == DEFAULT_MAX_BATCH_TOKENS
    path = tmp_path / "a.txt"
    path.write_text("the cat\n")
    manifest = embed(str(path), str(tmp_path / "out"), model=models["base"], progress=False)
    assert manifest["job"]["max_batch_tokens"] == DEFAULT_MAX_BATCH_TOKENS_CPU


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_bad_row_of_a_csv_or_parquet_file_exits_2(tmp_path, fmt):
    """pyarrow's CSV / Parquet readers on a Python file object: a reader dropped on the bad-row error left a
    read-ahead thread calling back into Python as the interpreter exited, and the process aborted
    ('terminate called without an active exception', exit 134) about half the time after printing the
    error (7 of 12 runs of the parquet case, 6 of 12 of the CSV one); the readers read pyarrow's own files
    now. Two runs per format: on the old code at least one of the four aborts in most sessions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / f"bad.{fmt}"
    if fmt == "csv":
        path.write_text("id,text\na,x\nb,  \n")
    else:
        pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["x", "", None]}), path)
    for k in range(2):
        proc = _cli([str(path), "--id-column", "id", "--output", str(tmp_path / f"out{k}")])
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "empty text" in err and "terminate called" not in err, err


def test_a_hub_model_of_the_older_layout_is_pinned_to_its_commit(tmp_path, models, monkeypatch):
    """An older sentence-transformers repository keeps config.json in modules.json's 0_Transformer, none at
    its top: its job records the commit too (it recorded none: the job was not pinned, and a resume after
    the branch moved ran on another model)."""
    import uuid

    from huggingface_hub import constants

    from fastbert.embed.job import model_fingerprint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = f"fastbert-tests/embed-old-{uuid.uuid4().hex[:8]}"
    folder = os.path.join(constants.HF_HUB_CACHE, "models--" + repo.replace("/", "--"))
    commit = "3" * 40
    snapshot = os.path.join(folder, "snapshots", commit)
    shutil.copytree(models["base"], os.path.join(snapshot, "0_Transformer"))
    modules = [
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    with open(os.path.join(snapshot, "modules.json"), "w") as f:
        json.dump(modules, f)
    os.makedirs(os.path.join(folder, "refs"))
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(commit)
    assert model_fingerprint(repo) == f"hub:{commit}"
    path = tmp_path / "c.txt"
    path.write_text("the city\nparis\n")
    m = embed([str(path)], str(tmp_path / "out"), model=repo, progress=False)
    assert m["job"]["model_fingerprint"] == f"hub:{commit}"


def test_a_hub_model_of_googles_layout_is_pinned_to_its_commit(tmp_path, monkeypatch):
    """A hub repository of a Google checkpoint holds bert_config.json and a TF1 checkpoint, no config.json
    or modules.json, and fastbert loads it: its job recorded no commit (model_fingerprint None), so the run
    was not pinned (its workers loaded whatever the branch named when each started) and a resume after the
    branch moved ran on another model. It records the commit, and such a resume is refused."""
    import uuid

    from huggingface_hub import constants

    from fastbert.embed.job import model_fingerprint

    google = os.path.join(ROOT, "tests", "fixtures", "legacy-bert", "google_ckpt")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = f"fastbert-tests/embed-google-{uuid.uuid4().hex[:8]}"
    folder = os.path.join(constants.HF_HUB_CACHE, "models--" + repo.replace("/", "--"))
    first, second = "5" * 40, "6" * 40
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"][: 99 - len(vocab)]
    for commit in (first, second):
        snapshot = os.path.join(folder, "snapshots", commit)
        shutil.copytree(google, snapshot, ignore=shutil.ignore_patterns("expected_outputs.safetensors"))
        with open(os.path.join(snapshot, "vocab.txt"), "w") as f:
            f.write("\n".join(vocab) + "\n")
    os.makedirs(os.path.join(folder, "refs"))
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(first)
    assert sorted(os.listdir(snapshot)) == [
        "bert_config.json",
        "bert_model.ckpt.data-00000-of-00001",
        "bert_model.ckpt.index",
        "vocab.txt",
    ]
    assert model_fingerprint(repo) == f"hub:{first}"
    path = tmp_path / "c.txt"
    path.write_text("the city\nparis\nthe river\n")
    out = tmp_path / "out"
    m = embed([str(path)], str(out), model=repo, shard_rows=1, progress=False)
    assert m["job"]["model_fingerprint"] == f"hub:{first}" and m["total_rows"] == 3
    (out / MANIFEST).write_text(json.dumps({**m, "status": "running"}))
    os.remove(out / "part-00002.parquet")
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(second)
    with pytest.raises(ValueError, match=f"was commit {first} there and is {second} now"):
        embed([str(path)], str(out), model=repo, shard_rows=1, progress=False)
