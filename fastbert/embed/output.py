"""Reading an embed output: the shards of a finished job (its manifest says complete) as one Arrow table, in
shard order."""

from __future__ import annotations

import os

from .manifest import MANIFEST, read_legacy_manifest, read_manifest
from .plan import shard_number
from .writer import schema_of


def read_output(output: str, allow_incomplete: bool = False):
    """The shards of an embed output as one Arrow table (ids and vectors), in shard order.

    The folder is the whole dataset only once its manifest says ``"status": "complete"``: the shards of a
    run that stopped (or is still running) are complete files, but not all of them. So a folder whose
    manifest is missing or not complete is a ValueError saying so, unless ``allow_incomplete`` (then the
    shards there are read, by shard number). A complete job of no row reads back as an empty table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not os.path.isdir(output):
        raise OSError(f"{output} is not a folder: read_output reads the folder fastbert embed wrote")
    manifest = read_manifest(os.path.join(output, MANIFEST)) or read_legacy_manifest(output)
    complete = manifest is not None and manifest.get("status") == "complete"
    if complete:
        names = [str(s["name"]) for s in manifest.get("shards") or ()]
        missing = [n for n in names if not os.path.isfile(os.path.join(output, n))]
        if missing:
            raise OSError(f"{output} lacks shards its {MANIFEST} lists: {', '.join(missing[:3])}")
    elif not allow_incomplete:
        said = (
            f"it has no {MANIFEST}" if manifest is None else f"its {MANIFEST} says {manifest.get('status')!r}"
        )
        if manifest is not None and manifest.get("engine", "local") != "local":
            raise ValueError(_unfinished_ray_run(output, said, manifest))
        raise ValueError(
            f"{output} is not a finished fastbert embed output ({said}): its shards may be only part "
            "of the job (rerun the same fastbert embed command to finish it), or pass allow_incomplete=True "
            "to read the shards written so far"
        )
    else:
        names = sorted(
            (n for n in os.listdir(output) if n.endswith(".parquet") and n[0] not in "._"), key=_shard_order
        )
    tables = [pq.read_table(os.path.join(output, n)).replace_schema_metadata(None) for n in names]
    if tables:
        return pa.concat_tables(tables)
    if complete and isinstance(manifest.get("dimension"), int):  # a job of no row
        job = manifest.get("job") or {}
        return schema_of(
            bool(job.get("id_column")), job.get("output_dtype"), manifest["dimension"]
        ).empty_table()
    raise OSError(f"{output} holds no Parquet shard")


def _unfinished_ray_run(output: str, said: str, manifest: dict) -> str:
    """What read_output says of the output of a Ray run that did not finish: a Ray run is not resumed, its
    rerun starts over (on its own when the run left none of its files in the folder, its files being moved
    in only once the whole write succeeded; with --overwrite when it stopped while they were moved)."""
    prefix = manifest.get("ray_file_prefix")
    visible = isinstance(prefix, str) and any(
        n.startswith(prefix) and n.endswith(".parquet") for n in os.listdir(output)
    )
    head = (
        f"{output} is not a finished fastbert embed output ({said}): the output of a Ray run (--ray) that is "
        "still running or was stopped"
    )
    if visible:
        return (
            f"{head} while its files were moved into the folder, which holds only some of them; the Ray "
            "engine does not resume: rerun the same fastbert embed command with --overwrite to run the job "
            "again, or pass allow_incomplete=True to read the files there"
        )
    return (
        f"{head}; its files are moved into the folder only once all are written, and none is there; the Ray "
        "engine does not resume: rerun the same fastbert embed command, which runs the job again"
    )


def _shard_order(name: str) -> tuple[int, int, str]:
    """Shards by number (``part-100000`` after ``part-99999``), then other names (a Ray run's) by name."""
    n = shard_number(name)
    return (0, n, name) if n is not None else (1, 0, name)
