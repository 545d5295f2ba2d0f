"""Resume: what an output folder already holds decides what a run does. A finished shard file is complete
and skipped; the manifest's job and inputs must be this run's (or the run is refused, the differences
listed); its plan is reused when the inputs are unchanged (no second scan)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from fastbert.output_files import is_temp_name

from .inputs import is_uri, stat
from .job import Job
from .manifest import MANIFEST, manifest_path, read_manifest
from .plan import InputFile, file_from_record, scan
from .writer import remove_stale_temporaries


def previous_output(output: str, engine: str, overwrite: bool) -> dict[str, Any] | None:
    """The manifest of a previous run in ``output`` to resume (None: start afresh); the folder made ready."""
    if is_uri(output):
        if engine != "ray":
            raise ValueError(
                f"output {output} is a URI: the local engine writes local folders (use engine='ray')"
            )
        return None
    if os.path.exists(output) and not os.path.isdir(output):
        raise OSError(f"output {output} is a file: pass a folder (it is created if missing)")
    os.makedirs(output, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise OSError(f"output folder {output} is not writable")
    old = read_manifest(manifest_path(output))
    if overwrite:
        clear_output(output)
        old = None
    elif old is None and any(n.endswith(".parquet") for n in os.listdir(output)):
        raise ValueError(
            f"{output} holds Parquet files but no {MANIFEST}: pass --overwrite or another --output"
        )
    elif old is not None and engine == "ray":
        raise ValueError(
            f"{output} holds a previous run's output: the Ray engine does not resume (Ray retries "
            "failed tasks itself): pass --overwrite or another --output"
        )
    remove_stale_temporaries(output)
    return old


def clear_output(output: str) -> None:
    """``--overwrite``: remove the previous run's files."""
    for name in os.listdir(output):
        if name == MANIFEST or name.endswith(".parquet") or is_temp_name(name):
            os.remove(os.path.join(output, name))


def plan_inputs(
    paths: Sequence[str], formats: Sequence[str], job: Job, old: dict[str, Any] | None, output: str
) -> list[InputFile]:
    """The scanned inputs; a resumed run reuses the manifest's scan when the inputs are unchanged and is
    refused when its job or inputs are not the manifest's."""

    def scan_all() -> list[InputFile]:
        return [scan(p, f, job.column, job.id_column, job.shard_rows) for p, f in zip(paths, formats)]

    if old is None:
        return scan_all()
    stats = [(p, *stat(p)) for p in paths]
    old_files = [file_from_record(d) for d in old.get("inputs", [])]
    same_plan = old.get("job", {}).get("shard_rows") == job.shard_rows
    if same_plan and [(f.path, f.size, f.mtime_ns) for f in old_files] == stats:
        files = old_files
    else:
        files = scan_all()
    check_resume(old, job, files, output)
    return files


def check_resume(old: dict[str, Any], job: Job, files: Sequence[InputFile], output: str) -> None:
    """A ValueError listing how this run differs from the one that started ``output``."""
    problems = []
    for key, value in job.identity().items():
        if old.get("job", {}).get(key) != value:
            problems.append(f"{key}: {old.get('job', {}).get(key)!r} there, {value!r} now")
    old_inputs = [(d.get("path"), d.get("size"), d.get("mtime_ns")) for d in old.get("inputs", [])]
    new_inputs = [(f.path, f.size, f.mtime_ns) for f in files]
    if old_inputs != new_inputs:
        old_paths = [p for p, _, _ in old_inputs]
        new_paths = [p for p, _, _ in new_inputs]
        if old_paths != new_paths:
            problems.append(f"inputs: {old_paths} there, {new_paths} now")
        else:
            changed = [n[0] for o, n in zip(old_inputs, new_inputs) if o != n]
            problems.append(f"input files changed since (size or mtime): {', '.join(changed)}")
    if problems:
        raise ValueError(
            f"{output} holds the output of another job, which this run cannot resume:\n  "
            + "\n  ".join(problems)
            + "\npass --overwrite to start over, or another --output"
        )
