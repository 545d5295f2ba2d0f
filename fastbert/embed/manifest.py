"""The manifest of an output folder: the job, its inputs and plan, and once complete the shards with their
counts; written atomically through :func:`fastbert.output_files.open_output`.

It is ``_manifest.json``: dataset readers skip names that start with ``_`` or ``.`` (pyarrow's
``ignore_prefixes``, which pandas and Hive-style readers share), so ``pyarrow.dataset.dataset("vectors/")``
and ``pandas.read_parquet("vectors/")`` read the shards and only them. Outputs written before it was renamed
hold ``manifest.json``; a run into such a folder moves it to the new name (see :mod:`.resume`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Sequence
from typing import Any

from fastbert.output_files import open_output

from .inputs import filesystem, is_uri, join
from .job import Job
from .plan import SHARD_DIGITS, InputFile, Shard, input_records, shard_name
from .writer import shard_metadata

MANIFEST = "_manifest.json"
#: the manifest's name in outputs of fastbert 0.1.0 (inside the dataset folder, which readers then refused)
LEGACY_MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def manifest_path(output: str) -> str:
    """Where the manifest of ``output`` (a folder or a URI) lives."""
    return join(output, MANIFEST)


def read_manifest(path: str) -> dict[str, Any] | None:
    """The manifest at ``path`` (a local path or a URI), None when there is none."""
    try:
        if is_uri(path):
            manifest = _read_uri_json(path)
            if manifest is _MISSING:
                return None
        else:
            if not os.path.isfile(path):
                return None
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
    except (OSError, ValueError) as e:
        manifest, reason = None, str(e)
    else:
        reason = "not a fastbert embed manifest"
    if not is_manifest(manifest):
        raise ValueError(
            f"{path} is not a readable fastbert embed manifest ({reason}): fastbert cannot tell which files "
            "of the folder it wrote; move them away or pass another --output"
        )
    return manifest


_MISSING = object()


def _read_uri_json(path: str) -> Any:
    """The JSON document at URI ``path`` (through pyarrow's filesystem); ``_MISSING`` when no file is there."""
    import pyarrow.fs as pafs

    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.File:
        return _MISSING
    with fs.open_input_stream(inner) as f:
        return json.loads(f.read().decode("utf-8"))


def read_legacy_manifest(output: str) -> dict[str, Any] | None:
    """The manifest of an output written under the old name ``manifest.json``; None when the folder has
    none, or when that file is not fastbert's (then it is the user's, and left alone)."""
    path = os.path.join(output, LEGACY_MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if is_manifest(manifest) else None


def is_manifest(manifest: Any) -> bool:
    """True for what :func:`new_manifest` writes (the keys resume reads)."""
    return (
        isinstance(manifest, dict)
        and manifest.get("manifest_version") == MANIFEST_VERSION
        and isinstance(manifest.get("job"), dict)
        and isinstance(manifest.get("inputs"), list)
    )


def ray_staging_name(prefix: str) -> str:
    """The folder inside the output where Ray Data writes the files of the Ray run whose files' names start
    with ``prefix``; the driver moves them into the output once the whole write succeeded. Its name starts
    with ``_``, which dataset readers skip (pyarrow, pandas, Ray Data), so the files of a run killed
    mid-write, some of them truncated, are never read as part of the dataset."""
    return f"_{prefix}.staging"


def owned_names(manifest: dict[str, Any]) -> tuple[set[str], str | None]:
    """(names of the files the run of ``manifest`` wrote, prefix of the files a Ray run writes): its shards
    listed when complete, its planned shards while running (local engine), the files of its Ray run and the
    folder it writes them into (:func:`ray_staging_name`)."""
    names = {s["name"] for s in manifest.get("shards") or () if isinstance(s, dict) and "name" in s}
    prefix = manifest.get("ray_file_prefix")
    if isinstance(prefix, str) and prefix:
        names.add(ray_staging_name(prefix))
    shard_rows = manifest["job"].get("shard_rows")
    if manifest.get("engine", "local") == "local" and isinstance(shard_rows, int) and shard_rows > 0:
        count = sum(math.ceil(int(f.get("rows", 0)) / shard_rows) for f in manifest["inputs"])
        digits = manifest_shard_digits(manifest)
        names |= {shard_name(i, digits) for i in range(count)}
    return names, prefix


def manifest_shard_digits(manifest: dict[str, Any]) -> int:
    """The zero padding of the shard names of ``manifest``'s plan (5 in manifests that do not record it)."""
    digits = manifest.get("shard_digits", SHARD_DIGITS)
    return digits if isinstance(digits, int) and digits >= SHARD_DIGITS else SHARD_DIGITS


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


def new_manifest(
    job: Job,
    files: Sequence[InputFile],
    engine: str,
    ray_file_prefix: str | None = None,
    shard_digits: int = SHARD_DIGITS,
) -> dict[str, Any]:
    """The manifest of a job that starts (status ``running``); a Ray run's files start with its prefix; the
    local engine's shard names have ``shard_digits`` digits."""
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "fastbert_version": fastbert_version(),
        "fastbert_build": fastbert_build(),
        "engine": engine,
        "status": "running",
        "job": job.identity(),
        "inputs": input_records(files),
        "total_input_rows": sum(f.rows for f in files),
        "shard_digits": shard_digits,
    }
    if ray_file_prefix is not None:
        manifest["ray_file_prefix"] = ray_file_prefix
    return manifest


def fastbert_version() -> str:
    """The version of fastbert that runs (the manifest's ``fastbert_version``)."""
    try:
        from fastbert import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


#: the suffixes of the package's files that make its vectors: its code (the Triton kernels too) and the data
#: it reads (``quant/calibration.txt``, int8's calibration sentences)
BUILD_SUFFIXES = (".py", ".txt")


def fastbert_build() -> str:
    """The identity of the fastbert code that runs (the manifest's ``fastbert_build``): ``sha256:`` and a
    digest of the installed package's files (:func:`package_digest`). ``__version__`` stays the same across
    development commits, so a resume across a change to the code that computes the vectors was not seen;
    this changes with any such change, and is the same in every process of one installed copy, an editable
    checkout and a wheel of the same sources alike. Computed once a process."""
    return _build_of(os.path.dirname(os.path.abspath(_package_file())))


def _package_file() -> str:
    import fastbert

    return fastbert.__file__


@functools.cache
def _build_of(root: str) -> str:
    return "sha256:" + package_digest(root)


def package_digest(root: str) -> str:
    """A sha256 over the files of the package folder ``root`` whose names end in :data:`BUILD_SUFFIXES`
    (each one's path relative to ``root`` and its bytes, in sorted order); ``__pycache__`` and other names
    are left out, so bytecode, editor and build leftovers in an editable checkout change nothing."""
    entries = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in names:
            if name.endswith(BUILD_SUFFIXES) and not name.startswith("."):
                path = os.path.join(folder, name)
                entries.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    digest = hashlib.sha256()
    for rel, path in sorted(entries):
        with open(path, "rb") as f:
            data = f.read()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def local_summary(output: str, shards: Sequence[Shard]) -> dict[str, Any]:
    """The shards of a finished local run with their counts (read from each shard's metadata), and totals
    (``duplicate_ids``: ids that repeat inside a shard, with the first one's id and where it is, when there
    are any)."""
    records = []
    totals = {"rows": 0, "bad": 0, "empty": 0, "skipped": 0, "tokens": 0}
    duplicates, first_duplicate = 0, {}
    for s in shards:
        meta = shard_metadata(os.path.join(output, s.name))
        duplicates += int(meta.get("duplicate_ids", 0))
        if not first_duplicate and meta.get("duplicate_ids"):
            first_duplicate = {k: meta.get(k) for k in ("first_duplicate_id", "first_duplicate_at")}
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
        **({"duplicate_ids": duplicates, **first_duplicate} if duplicates else {}),
    }


def ray_summary(output: str, total_input: int, prefix: str) -> dict[str, Any]:
    """The files Ray wrote (their names start with ``prefix``) with their rows and null vectors, and totals."""
    import pyarrow.compute as pc
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, inner = filesystem(output)
    # allow_not_found: a run of no row may leave no folder
    infos = fs.get_file_info(pafs.FileSelector(inner, recursive=False, allow_not_found=True))
    names = sorted(
        i.path for i in infos if i.base_name.startswith(prefix) and i.base_name.endswith(".parquet")
    )
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
        **({"dimension": dim} if dim is not None else {}),  # no file (no row): the model's, kept
    }
