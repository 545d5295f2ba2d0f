"""The manifest of an output folder: the job, its inputs and plan, and once complete the shards with their
counts; written atomically through :func:`fastbert.output_files.open_output`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from fastbert.output_files import open_output

from .inputs import filesystem, is_uri
from .job import Job
from .plan import InputFile, Shard, input_records
from .writer import shard_metadata

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def manifest_path(output: str) -> str:
    """Where the manifest of ``output`` (a folder or a URI) lives."""
    return output.rstrip("/") + "/" + MANIFEST if is_uri(output) else os.path.join(output, MANIFEST)


def read_manifest(path: str) -> dict[str, Any] | None:
    """The manifest at ``path``, None when there is none."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable manifest ({e}): pass --overwrite to start over") from None


def write_manifest(path: str, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (a URI: through pyarrow's filesystem)."""
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    if is_uri(path):
        fs, inner = filesystem(path)
        with fs.open_output_stream(inner) as f:
            f.write(text.encode("utf-8"))
        return
    with open_output(path, "w") as f:
        f.write(text)


def new_manifest(job: Job, files: Sequence[InputFile], engine: str) -> dict[str, Any]:
    """The manifest of a job that starts (status ``running``)."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "fastbert_version": _fastbert_version(),
        "engine": engine,
        "status": "running",
        "job": job.identity(),
        "inputs": input_records(files),
        "total_input_rows": sum(f.rows for f in files),
    }


def _fastbert_version() -> str:
    try:
        from fastbert import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


def local_summary(output: str, shards: Sequence[Shard]) -> dict[str, Any]:
    """The shards of a finished local run with their counts (read from each shard's metadata), and totals."""
    records = []
    totals = {"rows": 0, "bad": 0, "empty": 0, "skipped": 0, "tokens": 0}
    for s in shards:
        meta = shard_metadata(os.path.join(output, s.name))
        records.append(
            {
                "name": s.name,
                "input": s.file,
                "input_rows": [s.start, s.stop],
                **{k: int(meta.get(k, 0)) for k in totals},
            }
        )
        for k in totals:
            totals[k] += int(meta.get(k, 0))
    return {
        "shards": records,
        "total_rows": totals["rows"],
        "bad_rows": totals["bad"],
        "bad_rows_empty": totals["empty"],
        "bad_rows_skipped": totals["skipped"],
        "padded_tokens": totals["tokens"],
    }


def ray_summary(output: str, total_input: int) -> dict[str, Any]:
    """The files Ray wrote with their rows and null vectors, and totals."""
    import pyarrow.compute as pc
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, inner = filesystem(output)
    infos = fs.get_file_info(pafs.FileSelector(inner, recursive=False))
    names = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    records, rows, nulls, dim = [], 0, 0, None
    for p in names:
        with fs.open_input_file(p) as f:
            t = pq.read_table(f, columns=["vector"])
        n = t.num_rows
        null = int(pc.sum(pc.is_null(t.column("vector"))).as_py() or 0)
        dim = t.schema.field("vector").type.list_size
        records.append({"name": os.path.basename(p), "rows": n, "empty": null})
        rows += n
        nulls += null
    return {
        "shards": records,
        "total_rows": rows,
        "bad_rows": total_input - rows + nulls,
        "bad_rows_empty": nulls,
        "bad_rows_skipped": total_input - rows,
        "dimension": dim,
    }
