"""The Ray engine: the same plan as a Ray Data pipeline. One item a shard; an actor pool of fastbert models
(one a GPU, CPU actors otherwise) reads the rows of its shards and encodes them with the same windowed
token-budget batching (Ray Data fuses the read into the pool: ``ActorPoolMapOperator[MapBatches(_ray_read)->
MapBatches(_RayEncoder)]``, so an actor reads the shards it encodes); Ray Data's write tasks write Parquet to
any filesystem it reaches, in input order, into a staging folder inside the output
(:func:`~.manifest.ray_staging_name`, which dataset readers skip), and the driver moves the files into the
output only once the whole write succeeded: a run killed mid-write leaves no file, truncated or not, in the
dataset."""

from __future__ import annotations

import dataclasses
import gc
import os
import posixpath
import shutil
from collections.abc import Sequence
from typing import Any

from fastbert.output_files import _fsync_folder

from .devices import names_a_gpu
from .encoder import Encoder, encode_rows
from .inputs import filesystem, is_uri, join
from .job import Job, job_from_dict
from .manifest import ray_staging_name, ray_summary
from .plan import InputFile, Shard, file_from_record, input_records
from .readers import Row, read_shard
from .writer import arrow_table

# test hook of the Ray engine: an actor that finds this file removes it and dies (once)
_CRASH_ENV = "FASTBERT_EMBED_TEST_CRASH_FILE"


def _ray_read(batch, job_dict: dict, files_dict: list):
    """Ray task: the rows of the shards described in ``batch`` (one shard a row)."""
    import pyarrow as pa

    job = job_from_dict(job_dict)
    files = [file_from_record(f) for f in files_dict]
    ids, texts, errors, places = [], [], [], []
    for d in batch.to_pylist():
        shard = Shard(**d)
        for r in read_shard(job, files[shard.file], shard):
            ids.append(r.id)
            texts.append(r.text)
            errors.append(r.error)
            places.append(r.where)
    return pa.table(
        {
            "id": pa.array(ids, type=pa.string() if job.id_column else pa.int64()),
            "text": pa.array(texts, type=pa.string()),
            "error": pa.array(errors, type=pa.string()),
            "where": pa.array(places, type=pa.string()),
        }
    )


class _RayEncoder:
    """Ray actor: one fastbert model; a batch of (id, text, error, where) rows in, (id, vector) out."""

    def __init__(self, job_dict: dict, device: str | None) -> None:
        self.job = job_from_dict(job_dict)
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.encoder = Encoder(self.job, device)

    def __call__(self, batch):
        rows = [
            Row(*values)
            for values in zip(*(batch.column(c).to_pylist() for c in ("id", "text", "error", "where")))
        ]
        ids, vectors, valid, _bad, _tokens = encode_rows(self.encoder, rows)
        crash = os.environ.get(_CRASH_ENV)
        if crash:
            try:
                os.remove(crash)
            except OSError:
                pass
            else:
                os._exit(1)  # the test's killed actor: Ray restarts it and retries this batch
        return arrow_table(self.job, ids, vectors, valid, self.encoder.dimension, {}).replace_schema_metadata(
            None
        )


def require_ray() -> None:
    """An ImportError saying how to install Ray Data when it is missing."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(
            'engine="ray" needs Ray Data: pip install "ray[data]" pyarrow (the [ray] extra: pip install ".[ray]" '
            "in a checkout of fastbert; fastbert-triton is not on PyPI)"
        ) from None


def run_ray(
    job: Job,
    files: Sequence[InputFile],
    shards: Sequence[Shard],
    output: str,
    ray_address: str | None,
    actors: int | None,
    device: Any,
    progress: bool | None,
    file_prefix: str,
) -> dict[str, Any]:
    """Run the plan on Ray (``ray.init(address=ray_address or RAY_ADDRESS)`` unless Ray is initialised);
    the files written are named ``{file_prefix}_...parquet`` (the manifest records the prefix). Returns the
    manifest's summary of them."""
    require_ray()
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(address=ray_address or os.environ.get("RAY_ADDRESS"))
    context = ray.data.DataContext.get_current()
    if progress is False:  # --no-progress: no Ray Data bars either
        context.enable_progress_bars = False
    # a bad row (ValueError) or an unreadable file (OSError) in a task reaches here as itself, not as a
    # UserCodeException that keeps only its traceback's text: see user_error
    raise_original = getattr(context, "raise_original_map_exception", None)
    if raise_original is not None:
        context.raise_original_map_exception = True
    # the rows in input order, as the local engine writes them (Ray Data's default is the order blocks
    # finish in: another order each run); the files' names follow it, and read_output reads them in order
    options = context.execution_options
    preserve_order, options.preserve_order = options.preserve_order, True
    try:
        return _run(ray, job, files, shards, output, actors, device, file_prefix)
    except Exception as e:
        error = user_error(e)
        if error is None:
            raise
    finally:
        options.preserve_order = preserve_order
        if raise_original is not None:
            context.raise_original_map_exception = raise_original
    # raised here, past the except clause: it holds no reference to Ray's exception (whose traceback holds
    # the dataset, and through it the actors and their CPUs, as long as the caller keeps this error). Ray's
    # exception and the failed run's executor hold each other (the executor keeps the exception it stopped
    # on, whose traceback holds the frames that hold the executor): a cycle that only the collector frees,
    # and until it runs the failed run's actors keep their CPUs and the next run on this Ray instance waits
    # for them (on 2 CPUs, two failed runs left a third waiting for ever). Free them now.
    gc.collect()
    raise error


def user_error(e: BaseException) -> Exception | None:
    """The ValueError / OSError / TypeError a Ray task raised (a bad row under on_error "fail", a file that
    cannot be read), found in the ``RayTaskError`` that wraps it, as a plain exception of its kind and
    message (what the local engine raises: one line and exit code 2 from the CLI); None for another error."""
    try:
        from ray.exceptions import RayError
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(e, RayError):  # raised here, not in a task: as it is
        return None
    x: BaseException | None = e
    for _ in range(16):
        if x is None:
            return None
        if isinstance(x, (ValueError, OSError, TypeError)) and not isinstance(x, RayError):
            kind = (
                ValueError if isinstance(x, ValueError) else OSError if isinstance(x, OSError) else TypeError
            )
            # Ray Data appends its retry advice to the message ("\nFailed to apply UDF transform after...")
            return kind(str(x).split("\nFailed to ", 1)[0])
        x = getattr(x, "cause", None) or x.__cause__
    return None


def _run(ray, job, files, shards, output, actors, device, file_prefix) -> dict[str, Any]:
    from ray.data.datasource import FilenameProvider

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    use_gpu = gpus > 0 and (device is None or names_a_gpu(device))  # -1 (the pipelines' CPU) is the CPU
    if actors is None:
        actors = gpus if use_gpu else max(1, int(resources.get("CPU", 1)) - 1)
    job_dict = job.identity()
    files_dict = input_records(files)
    items = [dataclasses.asdict(s) for s in shards]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.map_batches(
        _ray_read,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"job_dict": job_dict, "files_dict": files_dict},
    )
    ds = ds.map_batches(
        _RayEncoder,
        fn_constructor_kwargs={"job_dict": job_dict, "device": None if use_gpu else "cpu"},
        batch_size=job.window,
        batch_format="pyarrow",
        # a fixed pool of ``actors`` (``concurrency=`` is deprecated since Ray 2.51, which logs so each run)
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
        # a dead actor is restarted and its batch retried, as often as it takes: Ray Data's default for
        # actor pools (max_restarts=-1, max_task_retries=-1; Ray 2.60 deprecates passing them, 2.64 refuses
        # them). The no-duplicate guarantee rests on it: test_ray_actor_killed_mid_run_is_retried.
    )
    # written where readers do not look (Ray Data writes each file at its final name, so a run killed
    # mid-write left truncated files in the dataset); moved into the output once all of them are complete
    staging = join(output, ray_staging_name(file_prefix))
    try:
        ds.write_parquet(
            staging, filename_provider=FilenameProvider(dataset_uuid=file_prefix, file_format="parquet")
        )
        summary = ray_summary(staging, sum(f.rows for f in files), file_prefix)
    except BaseException:
        _remove_staging(staging)
        raise
    _publish(staging, output, [str(r["name"]) for r in summary["shards"]])
    return summary


def _remove_staging(staging: str) -> None:
    """Remove the staging folder of a run that failed (best effort: a SIGKILL leaves it, and the next run
    into the output removes it)."""
    try:
        if is_uri(staging):
            fs, inner = filesystem(staging)
            fs.delete_dir(inner)
        else:
            shutil.rmtree(staging)
    except (OSError, NotImplementedError):
        pass


def _publish(staging: str, output: str, names: Sequence[str]) -> None:
    """Move the files ``names`` Ray wrote into ``staging`` (a folder inside ``output``) to ``output``, then
    remove ``staging``: locally each file fsynced, renamed (``os.replace``) and the folder fsynced; a URI
    through pyarrow's filesystem (a move, or a copy and a delete where the filesystem cannot move)."""
    if not is_uri(staging):
        for name in names:
            fd = os.open(os.path.join(staging, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(output, name))
        _fsync_folder(output)
        _remove_staging(staging)
        return
    fs, inner = filesystem(staging)
    _, target = filesystem(output)
    for name in names:
        src, dst = posixpath.join(inner, name), posixpath.join(target, name)
        try:
            fs.move(src, dst)
        except NotImplementedError:  # pyarrow's ArrowNotImplementedError: copy, then delete
            fs.copy_file(src, dst)
            fs.delete_file(src)
    _remove_staging(staging)
