"""Writing shards: an Arrow table of ``id`` + ``vector`` a shard, written atomically through
:func:`fastbert.output_files.open_output` (a temporary file beside the target, fsynced, renamed over it when
complete, the folder fsynced; removed on an error or a signal): a shard file that exists is complete."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from fastbert.output_files import open_output

from .job import Job


def output_schema(job: Job, dimension: int):
    """The Arrow schema of every shard: ``id`` (int64 row number or string), ``vector``."""
    return schema_of(bool(job.id_column), job.output_dtype, dimension)


def schema_of(string_ids: bool, output_dtype: str | None, dimension: int):
    import pyarrow as pa

    value = pa.float16() if output_dtype == "float16" else pa.float32()
    return pa.schema(
        [
            pa.field("id", pa.string() if string_ids else pa.int64(), nullable=False),
            pa.field("vector", pa.list_(value, dimension)),
        ]
    )


#: the first pyarrow that reads a null fixed-size list back from Parquet (apache/arrow issue 35692)
NULL_VECTORS_PYARROW = 26


def null_vectors_refusal(on_error: str, pyarrow_version: str | None = None) -> str | None:
    """Why ``on_error="empty"`` cannot run beside this pyarrow, or None: its null vectors are written, but
    a pyarrow before 26 cannot read a null fixed-size list back from Parquet (not even ``read_output``)."""
    if on_error != "empty":
        return None
    if pyarrow_version is None:
        import pyarrow as pa

        pyarrow_version = pa.__version__
    if int(pyarrow_version.split(".")[0]) >= NULL_VECTORS_PYARROW:
        return None
    return (
        f"on_error 'empty' (--on-error empty) keeps bad rows with a null vector, and pyarrow {pyarrow_version} "
        "cannot read a null fixed-size list back from Parquet (apache/arrow issue 35692, fixed in pyarrow "
        f"{NULL_VECTORS_PYARROW}, which needs Python >= 3.11): upgrade pyarrow, or use on_error 'skip'"
    )


def arrow_table(job: Job, ids: list[Any], vectors, valid, dimension: int, metadata: dict[str, Any]):
    """One shard as an Arrow table (null vectors where ``valid`` is False), ``metadata`` in its schema."""
    import numpy as np
    import pyarrow as pa

    np_dtype = np.float16 if job.output_dtype == "float16" else np.float32
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np_dtype).reshape(-1))
    mask = None if bool(np.all(valid)) else pa.array(~np.asarray(valid, dtype=bool))
    vec = pa.FixedSizeListArray.from_arrays(flat, dimension, mask=mask)
    id_arr = pa.array(ids, type=pa.string() if job.id_column else pa.int64())
    schema = output_schema(job, dimension).with_metadata({"fastbert": json.dumps(metadata)})
    return pa.Table.from_arrays([id_arr, vec], schema=schema)


def write_shard(path: str, table) -> None:
    """Write one shard atomically (temporary name, fsync, rename)."""
    import pyarrow.parquet as pq

    with open_output(path, "wb") as f:
        pq.write_table(table, f)


def shard_metadata(path: str) -> dict[str, Any]:
    """The counts a finished shard carries in its Parquet metadata."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"fastbert", b"{}"))


def release_memory() -> None:
    """Hand the freed heap of a shard back to the system (glibc keeps it otherwise, and the resident
    size creeps up shard after shard though nothing is held)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl...)
        pass


@contextlib.contextmanager
def system_memory_pool():
    """Arrow allocates from malloc while shards are read and written: its default pool (mimalloc) keeps
    what a shard freed, and the resident size grew with the corpus (benchmarks/results/code-notes.md); malloc gives it back."""
    import pyarrow as pa

    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)
