"""``fastbert embed --ray``: the same corpus through a Ray Data pipeline on a local Ray instance (two CPUs,
loopback only): the same ids and vectors as the local engine, also when a model actor dies mid-run.

Ray writes its own file names; the rows are in input order, as the local engine's.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from test_embed import lock_held_by_child, save_tiny, write_corpus  # noqa: E402

from fastbert.cli import main  # noqa: E402
from fastbert.core.tolerances import assert_close  # noqa: E402
from fastbert.embed import _CRASH_ENV, MANIFEST, OutputInUse, embed, read_output  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# device="cpu": with no device the Ray engine's actors take a GPU each where the cluster has one (float32 on
# CUDA against the local engine's CPU vectors; the two-actor run asked for two GPUs)
JOB = dict(id_column="id", shard_rows=200, window=100, max_batch_tokens=1024, progress=False, device="cpu")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed_ray")
    model = save_tiny(root / "model", 0)
    paths, ids, _texts = write_corpus(root, n_per_file=300)
    crash = str(root / "crash-once")
    # the actors see the crash file's name (they die once when it exists) and import this fastbert
    env = {_CRASH_ENV: crash, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": env},
        log_to_driver=False,
        configure_logging=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Ray Data logs a failed run's exception (exc_info) at ERROR from these two loggers, and its traceback
    # holds the run's actors: pytest's log capture (whose handlers Ray Data attaches to its logger) keeps the
    # records until the test ends, and with them the actors' CPUs, so the bad-row test's second run waited
    # for ever. Here Ray Data does not make those records; the error still reaches the caller.
    quiet = [
        logging.getLogger(n)
        for n in ("ray.data._internal.execution.streaming_executor_state", "ray.data.exceptions")
    ]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    local = root / "local"
    embed(paths, str(local), model=model, **JOB)
    yield {"root": root, "model": model, "paths": paths, "ids": ids, "crash": crash, "local": local}
    ray.shutdown()
    for q, level in zip(quiet, levels):
        q.setLevel(level)


def by_id(output) -> dict:
    t = read_output(str(output))
    ids = t.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "duplicate ids in the output"
    vec = t.column("vector")
    flat = vec.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, vec.type.list_size)
    return dict(zip(ids, flat))


def assert_same_output(got: dict, ref: dict, what: str) -> None:
    assert set(got) == set(ref)
    keys = sorted(ref)
    out = torch.from_numpy(np.stack([got[k] for k in keys]))
    expect = torch.from_numpy(np.stack([ref[k] for k in keys]))
    assert_close(out, None, expect, torch.float32, what=what)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_ray_same_ids_and_vectors_as_local(setup):
    out = setup["root"] / "ray"
    warned = _Records()
    ray_data = logging.getLogger("ray.data")  # Ray Data's deprecation notices (``concurrency``...) log here
    ray_data.addHandler(warned)
    try:
        m = embed(setup["paths"], str(out), model=setup["model"], engine="ray", **JOB)
    finally:
        ray_data.removeHandler(warned)
    assert not [w for w in warned.messages if "deprecated" in w], warned.messages
    got, ref = by_id(out), by_id(setup["local"])
    assert list(got) == setup["ids"]  # in input order, as the local engine's
    assert list(ref) == setup["ids"]
    assert_same_output(got, ref, "ray engine vs local engine")
    assert m["status"] == "complete" and m["total_rows"] == 900 and m["dimension"] == 32
    assert (
        read_output(str(out)).schema.field("vector").type
        == read_output(str(setup["local"])).schema.field("vector").type
    )


def test_ray_actor_killed_mid_run_is_retried(setup):
    open(setup["crash"], "w").close()  # the first actor batch to finish finds it, removes it and dies
    out = setup["root"] / "ray-killed"
    m = embed(setup["paths"], str(out), model=setup["model"], engine="ray", **JOB)
    assert not os.path.exists(setup["crash"]), "no actor died: the test did not test a retry"
    got = by_id(out)  # no duplicate ids
    assert list(got) == setup["ids"]
    assert_same_output(got, by_id(setup["local"]), "ray engine after an actor died")
    assert m["total_rows"] == 900


def test_ray_run_into_a_folder_being_written_is_refused(setup, tmp_path):
    """The Ray driver takes the folder's lock as the local engine does: refused while another run holds it,
    before Ray runs anything."""
    out = tmp_path / "out"
    out.mkdir()
    with lock_held_by_child(out, tmp_path) as child:
        with pytest.raises(
            OutputInUse, match=rf"{out} is in use: another fastbert embed \(pid {child.pid}\)"
        ):
            embed(setup["paths"], str(out), model=setup["model"], engine="ray", **JOB)
    assert os.listdir(out) == []


def test_ray_bad_row_is_one_line_and_exit_2(setup, tmp_path, capsys):
    """A bad row a Ray task meets (an empty string in a Parquet file, which no scan sees) is the local
    engine's ValueError, not a RayTaskError whose message is a traceback: the CLI says it in one line."""
    texts = [f"the city {i}" for i in range(40)]
    texts[34] = "  "
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": texts}), str(path), row_group_size=10)
    context = ray.data.DataContext.get_current()
    before = context.raise_original_map_exception
    with pytest.raises(ValueError) as e:
        embed(
            [str(path)],
            str(tmp_path / "api"),
            model=setup["model"],
            engine="ray",
            shard_rows=10,
            progress=False,
        )
    assert type(e.value) is ValueError
    assert str(e.value).startswith(f"{path}, row 35: empty text (pass --on-error skip"), str(e.value)
    assert context.raise_original_map_exception == before  # the driver's Ray Data context as it was
    with open(tmp_path / "api" / MANIFEST, encoding="utf-8") as f:
        assert f.read().count('"running"') == 1
    # the failed run's actors give their CPUs back (a reference cycle kept them until the collector ran,
    # and on two CPUs the CLI run below then waited for ever)
    deadline = time.monotonic() + 120
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2, ray.available_resources()
    capsys.readouterr()
    args = [str(path), "--output", str(tmp_path / "cli"), "--model", setup["model"], "--shard-rows", "10"]
    assert main(["embed", *args, "--ray", "--no-progress"]) == 2
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("fastbert embed")]
    assert ours == [
        f"fastbert embed: error: {path}, row 35: empty text " + "(pass --on-error skip to drop bad "
        "rows, or empty to keep them with a null vector)"
    ], err[-3000:]
    assert "Traceback" not in err


def test_ray_output_uri_is_made_refused_on_rerun_and_overwritten(setup, tmp_path):
    """An output URI (file:// here, s3:// on a cluster) is looked at as a local folder is: made when missing
    (the manifest's write failed on a folder that did not exist); a rerun is refused, not written beside the
    previous run's files (every row twice in the dataset); --overwrite removes the previous run's files."""
    import pyarrow.dataset as pads

    folder = tmp_path / "vectors"
    uri = folder.as_uri()
    paths = setup["paths"][:1]
    embed(paths, uri, model=setup["model"], engine="ray", **JOB)
    first = sorted(os.listdir(folder))
    assert MANIFEST in first and len(first) > 1
    assert not [n for n in first if n.startswith("_part-ray-")], (
        first
    )  # the staging folder, moved and removed
    with pytest.raises(ValueError, match="holds a previous run's output"):
        embed(paths, uri, model=setup["model"], engine="ray", **JOB)
    assert sorted(os.listdir(folder)) == first
    m = embed(paths, uri, model=setup["model"], engine="ray", overwrite=True, **JOB)
    assert not (set(first) - {MANIFEST}) & set(os.listdir(folder))
    assert pads.dataset(str(folder)).count_rows() == m["total_rows"] == 300


def test_ray_with_several_devices_is_refused(setup, tmp_path, capsys):
    """The Ray engine's actors take the cluster's GPUs: --devices 0,1 was ignored but for its first entry."""
    with pytest.raises(ValueError, match=r"devices \(--devices\) 'cpu,cpu': several devices are the local"):
        embed(
            setup["paths"],
            str(tmp_path / "o"),
            model=setup["model"],
            engine="ray",
            **dict(JOB, device=None),
            devices="cpu,cpu",
        )
    assert not os.path.exists(tmp_path / "o")
    args = [setup["paths"][0], "--output", str(tmp_path / "o"), "--model", setup["model"], "--ray"]
    assert main(["embed", *args, "--devices", "cpu,cpu", "--no-progress"]) == 2
    assert "--ray-actors" in capsys.readouterr().err


def test_ray_rows_in_input_order_with_two_actors(setup, tmp_path):
    """Two actors finish their shards in no fixed order (here one dies, and the batch it held is done again
    after the other actor's next ones): the rows are still written in input order."""
    open(setup["crash"], "w").close()
    out = tmp_path / "two"
    job = dict(JOB, shard_rows=30, window=10)
    embed(setup["paths"], str(out), model=setup["model"], engine="ray", ray_actors=2, **job)
    assert not os.path.exists(setup["crash"]), "no actor died"
    assert read_output(str(out)).column("id").to_pylist() == setup["ids"]


class _Killed(Exception):
    """The driver's end in the test of a run stopped mid-write."""


def test_ray_run_stopped_mid_write_leaves_no_file_in_the_dataset(setup, tmp_path, monkeypatch):
    """Ray Data wrote each file at its final name in the output: a driver killed mid-write left truncated
    ``part-ray-*.parquet`` files there, on which ``pyarrow.dataset.dataset(output)`` failed. Now Ray writes
    into a ``_``-prefixed staging folder inside the output, which dataset readers skip, and the driver moves
    the files in once all are written. Here the driver stops after Ray's write, before the move, and no
    handler runs (a SIGKILL's case): the dataset holds no file; read_output says the rerun runs the job
    again, and the same command does so, removing the staging folder."""
    import pyarrow.dataset as pads

    from fastbert.embed import ray_engine

    def killed(*args, **kwargs):
        raise _Killed

    monkeypatch.setattr(ray_engine, "ray_summary", killed)
    monkeypatch.setattr(ray_engine, "_remove_staging", lambda *a: None, raising=False)  # no handler ran
    out = tmp_path / "vectors"
    paths = setup["paths"][:1]
    with pytest.raises(_Killed):
        embed(paths, str(out), model=setup["model"], engine="ray", **JOB)
    names = os.listdir(out)
    assert [n for n in names if n.endswith(".parquet")] == [], names
    staging = [n for n in names if n.startswith("_part-ray-") and (out / n).is_dir()]
    assert len(staging) == 1, names
    written = os.listdir(out / staging[0])
    assert written and all(n.endswith(".parquet") for n in written), written  # Ray's write had finished
    with open(out / staging[0] / (written[0][:-8] + "-truncated.parquet"), "wb") as f:
        f.write(b"PAR1\x00")  # what a kill mid-write leaves: readers do not look there
    assert pads.dataset(str(out)).files == []
    with pytest.raises(ValueError, match="rerun the same fastbert embed command, which runs the job again"):
        read_output(str(out))
    monkeypatch.undo()
    m = embed(paths, str(out), model=setup["model"], engine="ray", **JOB)  # the same command, no --overwrite
    assert m["status"] == "complete" and m["total_rows"] == 300
    assert not [n for n in os.listdir(out) if n.startswith("_part-ray-")], os.listdir(out)
    assert read_output(str(out)).column("id").to_pylist() == setup["ids"][:300]
    assert pads.dataset(str(out)).count_rows() == 300


@pytest.mark.parametrize("uri", [False, True])
def test_ray_run_stopped_while_moving_its_files_is_refused_and_overwritten(setup, tmp_path, uri):
    """A Ray run stopped while its files were moved from the staging folder into the output leaves some of
    them there (which pyarrow and Ray Data read, not those of the staging folder): a rerun is refused naming
    --overwrite (the Ray engine does not resume), read_output says so, and --overwrite removes the files and
    the staging folder (locally and through a URI)."""
    import pyarrow.dataset as pads

    from fastbert.embed.manifest import write_manifest
    from fastbert.embed.resume import OutputFolder

    prefix = "part-ray-0badc0de"
    out = tmp_path / "vectors"
    staging = out / f"_{prefix}.staging"
    staging.mkdir(parents=True)
    table = pa.table({"id": pa.array([0, 1], pa.int64())})
    pq.write_table(table, str(out / f"{prefix}_a_000000-0.parquet"))
    pq.write_table(table, str(staging / f"{prefix}_a_000001-0.parquet"))
    manifest = {
        "manifest_version": 1,
        "engine": "ray",
        "status": "running",
        "job": {"shard_rows": 200},
        "inputs": [],
        "ray_file_prefix": prefix,
    }
    write_manifest(str(out / MANIFEST), manifest)
    assert pads.dataset(str(out)).count_rows() == 2
    assert ray.data.read_parquet(str(out)).count() == 2
    with pytest.raises(ValueError, match="with --overwrite to run the job again"):
        read_output(str(out))
    target = out.as_uri() if uri else str(out)
    with pytest.raises(ValueError, match="pass --overwrite"):
        OutputFolder.inspect(target, "ray", overwrite=False).release()
    folder = OutputFolder.inspect(target, "ray", overwrite=True)
    try:
        folder.start(dict(manifest, ray_file_prefix="part-ray-12345678"))
    finally:
        folder.release()
    assert sorted(os.listdir(out)) == [MANIFEST]


@pytest.mark.parametrize(
    "device, gpu", [(-1, False), ("-1", False), ("cpu", False), (0, True), ("cuda", True)]
)
def test_ray_actors_take_a_gpu_only_for_a_gpu_device(device, gpu, tmp_path):
    """On a cluster with GPUs, ``device=-1`` (the pipelines' number for the CPU, as the token budget reads it)
    gave the actors GPUs: only a name starting with "cpu" meant the CPU."""
    from types import SimpleNamespace

    from fastbert.embed import ray_engine

    asked = {}

    class Stop(Exception):
        pass

    class Dataset:
        def map_batches(self, fn, **kwargs):
            asked.update(kwargs)
            return self

        def write_parquet(self, *args, **kwargs):
            raise Stop

    fake = SimpleNamespace(
        cluster_resources=lambda: {"GPU": 2, "CPU": 4},
        data=SimpleNamespace(from_items=lambda *a, **k: Dataset(), ActorPoolStrategy=lambda size: size),
    )
    job = SimpleNamespace(identity=dict, window=8)
    with pytest.raises(Stop):
        ray_engine._run(fake, job, [], [], str(tmp_path), None, device, "x")
    assert asked["num_gpus"] == (1 if gpu else 0), asked
    assert asked["fn_constructor_kwargs"]["device"] == (None if gpu else "cpu")
