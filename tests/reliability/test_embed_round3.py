"""``fastbert embed``, round 3: what a review of the command line found (one test a finding).

- A local run into a folder a Ray run wrote (complete or interrupted) is refused, naming the engine and the
  fix: resumed, the Ray files stayed beside the local shards and every row was in the dataset twice, and
  the new manifest dropped the Ray files' prefix, so that even ``--overwrite`` was then refused.
  ``--overwrite`` removes the Ray run's files.
- A changed ``--input-format`` between a run and its rerun or resume is refused as another job (it was
  dropped: the old output returned, or resumed, as a success).
- ``--ray-actors 0`` (or negative) is refused before anything runs (it started Ray, left a manifest
  "running" and ended on Ray's "('size must be >= 1', 0)").
- Warnings of the forward other than the per-row truncation warnings reach the user (``--attn-implementation
  triton`` on the CPU ran sdpa without a word): the backend's fallback, once, one line from the CLI.
- A finished shard damaged on disk since it was written (truncated, emptied, another shard's file under its
  name) is refused on a rerun or a resume, naming it and the fix: a complete output was returned as is,
  a resume ended on pyarrow's "Parquet magic bytes not found" or kept the wrong rows beside the new ones.
- Messages that named the wrong thing: stdin (``-``) or a pipe as an input "does not exist" (it is not a
  regular file); an output URI without ``--ray`` said ``engine='ray'`` on the command line.

The Ray folders are written by hand (the state a Ray run leaves: a manifest of engine ``ray`` with its
``ray_file_prefix``, and ``part-ray-*`` files), so no Ray instance starts. The model is a tiny random BERT.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings

import pyarrow.dataset as ds
import pytest
from test_embed_round2 import _save_tiny, listing, one_error_line, run_cli

from fastbert.embed import MANIFEST, embed

RAY_PREFIX = "part-ray-0123abcd"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return _save_tiny(tmp_path_factory.mktemp("embed_round3") / "base")


@pytest.fixture
def docs(tmp_path) -> str:
    path = tmp_path / "docs.txt"
    path.write_text("the city\nparis is a city\nthe river\n")
    return str(path)


def ray_folder(out, docs: str, model: str, complete: bool) -> None:
    """``out`` as a Ray run of ``docs`` leaves it: complete, or stopped after its first file."""
    m = embed([docs], str(out), model=model, shard_rows=1, progress=False)  # 3 local shards
    names = sorted(n for n in os.listdir(out) if n.endswith(".parquet"))
    for k, name in enumerate(names):
        os.rename(out / name, out / f"{RAY_PREFIX}_{k:06d}_000000.parquet")
    m = dict(m, engine="ray", ray_file_prefix=RAY_PREFIX)
    m["shards"] = [{"name": f"{RAY_PREFIX}_{k:06d}_000000.parquet", "rows": 1, "empty": 0} for k in range(3)]
    if not complete:
        for k in (1, 2):
            os.remove(out / m["shards"][k]["name"])
        m["status"] = "running"
        for key in ("shards", "total_rows", "description", "dimension"):
            m.pop(key, None)
    (out / MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "interrupted"])
def test_a_local_run_does_not_resume_a_ray_runs_folder(tmp_path, capsys, model, docs, complete):
    out = tmp_path / "vectors"
    ray_folder(out, docs, model, complete)
    before = listing(out)
    line = one_error_line(*run_cli(capsys, docs, "--model", model, "--output", str(out), "--shard-rows", "1"))
    assert "Ray run (--ray)" in line and "local engine does not resume" in line and "--overwrite" in line
    assert listing(out) == before  # nothing written, nothing removed
    with pytest.raises(ValueError, match=r"Ray run \(--ray\), which the local engine does not resume"):
        embed([docs], str(out), model=model, shard_rows=1, progress=False)
    assert listing(out) == before

    # --overwrite removes the Ray run's files: one local dataset, each row once
    code, err = run_cli(
        capsys, docs, "--model", model, "--output", str(out), "--shard-rows", "1", "--overwrite"
    )
    assert code == 0, err
    assert sorted(n for n in os.listdir(out) if n.endswith(".parquet")) == [
        f"part-0000{i}.parquet" for i in range(3)
    ]
    ids = ds.dataset(str(out)).to_table().column("id").to_pylist()
    assert sorted(ids) == [0, 1, 2]
    with open(out / MANIFEST, encoding="utf-8") as f:
        m = json.load(f)
    assert m["engine"] == "local" and "ray_file_prefix" not in m and m["status"] == "complete"


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "interrupted"])
def test_a_changed_input_format_is_refused_on_rerun_and_resume(tmp_path, capsys, model, complete):
    """JSON lines in a .txt file, embedded as text (the raw lines), then rerun with --input-format jsonl
    (the user's fix): the old output was returned (or resumed) as a success, the new option dropped."""
    path = tmp_path / "j.txt"
    path.write_text("".join(json.dumps({"text": f"the city {i}", "id": i}) + "\n" for i in range(5)))
    out = tmp_path / "vectors"
    embed([str(path)], str(out), model=model, shard_rows=2, progress=False)
    if not complete:  # stopped after its first two shards
        with open(out / MANIFEST, encoding="utf-8") as f:
            m = dict(json.load(f), status="running")
        for key in ("shards", "total_rows", "description", "dimension"):
            m.pop(key)
        (out / MANIFEST).write_text(json.dumps(m))
        os.remove(out / "part-00002.parquet")
    before = listing(out)
    args = [str(path), "--model", model, "--output", str(out), "--shard-rows", "2"]
    code, err = run_cli(capsys, *args, "--input-format", "jsonl")
    assert code == 2, err
    assert err[0].startswith(f"fastbert embed: error: {out} holds the output of another job"), err
    assert f"input format (--input-format) of {path}: 'text' there, 'jsonl' now" in err[0], err
    assert listing(out) == before
    with pytest.raises(ValueError, match=r"input format \(--input-format\) of .*'text' there, 'jsonl' now"):
        embed([str(path)], str(out), model=model, shard_rows=2, input_format="jsonl", progress=False)
    assert listing(out) == before
    # the same format named explicitly is the same job; --overwrite starts over in the new one
    code, err = run_cli(capsys, *args, "--input-format", "text")
    assert code == 0, err
    m = embed([str(path)], str(out), model=model, shard_rows=2, input_format="jsonl", overwrite=True)
    assert [f["format"] for f in m["inputs"]] == ["jsonl"] and m["total_rows"] == 5


@pytest.mark.parametrize("actors", [0, -2])
def test_ray_actors_must_be_positive_before_anything_runs(tmp_path, capsys, monkeypatch, model, docs, actors):
    import fastbert.embed.api as api

    def no_ray(*args, **kwargs):
        raise AssertionError("the Ray engine ran")

    monkeypatch.setattr(api, "run_ray", no_ray)
    out = tmp_path / "vectors"
    for engine in ("ray", "local"):
        with pytest.raises(
            ValueError, match=rf"ray_actors \(--ray-actors\) must be a positive integer, got {actors}"
        ):
            embed([docs], str(out), model=model, engine=engine, ray_actors=actors, progress=False)
    with pytest.raises(ValueError, match="ray_actors"):
        embed([docs], str(out), model=model, engine="ray", ray_actors=True, progress=False)
    assert not out.exists()
    ray = ["--ray"] if importlib.util.find_spec("ray") is not None else []  # without Ray: "install Ray" first
    line = one_error_line(
        *run_cli(capsys, docs, "--model", model, "-o", str(out), *ray, "--ray-actors", str(actors))
    )
    assert (
        line == f"fastbert embed: error: ray_actors (--ray-actors) must be a positive integer, got {actors}"
    )
    assert not out.exists()  # nothing written, not even the folder


def test_a_backend_fallback_is_said_and_truncation_is_not(tmp_path, capsys, monkeypatch, model):
    """triton on the CPU falls back to sdpa with one warning (the forward hid every warning); the rows longer
    than max_length are still not warned of, one by one."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    path = tmp_path / "docs.txt"
    path.write_text("".join(" ".join(["the city"] * (i + 3)) + "\n" for i in range(20)))  # all over 8 tokens
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embed(
            [str(path)],
            str(tmp_path / "api"),
            model=model,
            device="cpu",
            attn_implementation="triton",
            max_length=8,
            progress=False,
        )
    said = [str(w.message) for w in caught]
    assert [m for m in said if "falling back to the sdpa backend" in m], said
    assert not [m for m in said if "truncated" in m], said
    code, err = run_cli(
        capsys,
        str(path),
        "--model",
        model,
        "-o",
        str(tmp_path / "cli"),
        "--device",
        "cpu",
        "--attn-implementation",
        "triton",
        "--max-length",
        "8",
    )
    assert code == 0, err
    ours = [line for line in err if "falling back" in line]
    assert len(ours) == 1 and ours[0].startswith("fastbert embed: warning: fastbert: "), err
    assert not [line for line in err if "truncated" in line], err


def test_stdin_or_a_pipe_as_input_says_it_needs_regular_files(tmp_path, capsys, model, docs):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # never opened: refused from its type
    for item, shown in (("-", "- (stdin)"), (str(fifo), str(fifo))):
        out = tmp_path / "out"
        line = one_error_line(
            *run_cli(capsys, item, "--model", model, "-o", str(out), "--input-format", "text")
        )
        assert f"input {shown} is not a regular file: embed needs regular files" in line, line
        assert "does not exist" not in line and not out.exists()
    line = one_error_line(*run_cli(capsys, str(tmp_path / "nope.txt"), "--model", model, "-o", str(out)))
    assert "does not exist" in line  # a missing file is still said so


def test_an_output_uri_without_ray_names_the_flag(tmp_path, capsys, model, docs):
    line = one_error_line(*run_cli(capsys, docs, "--model", model, "-o", "s3://bucket/vectors"))
    assert "the local engine writes local folders (use --ray, engine='ray' from Python)" in line, line


@pytest.mark.parametrize("damage", ["truncated", "emptied", "another shard"])
@pytest.mark.parametrize("complete", [True, False], ids=["complete", "interrupted"])
def test_a_damaged_finished_shard_is_refused_on_rerun_and_resume(
    tmp_path, capsys, model, docs, damage, complete
):
    out = tmp_path / "vectors"
    embed([docs], str(out), model=model, shard_rows=1, progress=False)  # 3 shards, one row each
    shard = out / "part-00001.parquet"
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "emptied":
        shard.write_bytes(b"")
    else:
        shard.write_bytes((out / "part-00000.parquet").read_bytes())
    if not complete:  # as a run killed after its third shard leaves it
        m = json.loads((out / MANIFEST).read_text())
        m["status"] = "running"
        for key in ("shards", "total_rows", "description", "dimension"):
            m.pop(key, None)
        (out / MANIFEST).write_text(json.dumps(m))
    before = listing(out)
    with pytest.raises(ValueError, match=r"part-00001\.parquet, a finished shard .* is damaged .*remove it"):
        embed([docs], str(out), model=model, shard_rows=1, progress=False)
    line = one_error_line(*run_cli(capsys, docs, "--model", model, "--output", str(out), "--shard-rows", "1"))
    assert "part-00001.parquet" in line and "damaged" in line and "--overwrite" in line
    assert listing(out) == before  # nothing written, nothing removed

    # as the message says: removed, it is computed again
    shard.unlink()
    m = embed([docs], str(out), model=model, shard_rows=1, progress=False)
    assert m["status"] == "complete" and m["total_rows"] == 3
    assert ds.dataset(str(out)).to_table().column("id").to_pylist() == [0, 1, 2]
