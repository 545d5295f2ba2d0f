"""Resume: what an output folder already holds decides what a run does, and nothing is written until the
job can start.

- A finished shard file is complete and skipped; the manifest's job and inputs must be this run's (or the
  run is refused, the differences listed); its plan is reused when the inputs are unchanged (no second scan).
- fastbert removes only files it wrote: those the manifest names (its shards, itself) and the temporaries
  of those. The output folder is the dataset readers take whole, so a folder that holds Parquet files no
  manifest names is refused, ``--overwrite`` or not; anything else in it is left alone.
- An output written under the old manifest name (``manifest.json``) is resumed, the manifest moved to
  ``_manifest.json`` when the run starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

from fastbert.output_files import is_temp_name

from .inputs import is_uri, stat
from .job import Job
from .manifest import (
    LEGACY_MANIFEST,
    MANIFEST,
    manifest_path,
    owned_names,
    read_legacy_manifest,
    read_manifest,
    write_manifest,
)
from .plan import SHARD_NAME, InputFile, Shard, file_from_record
from .readers import scan


class OutputFolder:
    """The output folder of a run: looked at (read only) by :meth:`inspect`, written from :meth:`start`."""

    def __init__(self, output: str, engine: str) -> None:
        self.output = output
        self.engine = engine
        self.remote = is_uri(output)
        self.manifest_path = manifest_path(output)
        self.previous: dict[str, Any] | None = None  # the manifest of the run to resume
        self.legacy = False  # the previous manifest has the old name
        self.remove: list[str] = []  # what --overwrite removes when the run starts
        self.owned: set[str] = set()
        self.ray_prefix: str | None = None

    @classmethod
    def inspect(cls, output: str, engine: str, overwrite: bool) -> OutputFolder:
        """What ``output`` holds, refused when unusable; nothing is written."""
        folder = cls(output, engine)
        if folder.remote:
            if engine != "ray":
                raise ValueError(
                    f"output {output} is a URI: the local engine writes local folders (use engine='ray')"
                )
            return folder
        if os.path.exists(output) and not os.path.isdir(output):
            raise OSError(
                f"output {output} is not a folder: fastbert embed writes a folder of Parquet shards and "
                f"{MANIFEST} (it is created if missing)"
            )
        if not os.path.isdir(output):
            return folder
        if not os.access(output, os.W_OK | os.X_OK):
            raise OSError(f"output folder {output} is not writable")
        previous = read_manifest(folder.manifest_path)
        if previous is None:
            previous = read_legacy_manifest(output)
            folder.legacy = previous is not None
        names = os.listdir(output)
        if previous is not None:
            folder.owned, folder.ray_prefix = owned_names(previous)
            folder.owned.add(LEGACY_MANIFEST if folder.legacy else MANIFEST)
        foreign = sorted(
            n for n in names if n.endswith(".parquet") and not folder.owns(n) and n[0] not in "._"
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ValueError(
                f"{output} holds Parquet files that no fastbert manifest there names ({shown}): the output "
                "folder is the dataset readers take whole, and fastbert removes only files it wrote "
                "(--overwrite too); move them away or pass another --output"
            )
        if previous is not None and previous.get("status") != "complete" and not overwrite:
            shards = [n for n in names if n.endswith(".parquet") and folder.owns(n) and not is_temp_name(n)]
            if not shards:
                # a run that stopped before its first shard (a bad row under --on-error fail, a wrong
                # --column): nothing to keep consistent with, so a corrected run starts over
                overwrite = True
        if overwrite:
            folder.remove = sorted(n for n in names if folder.owns(n))
        elif previous is not None and engine == "ray":
            raise ValueError(
                f"{output} holds a previous run's output: the Ray engine does not resume (Ray retries "
                "failed tasks itself): pass --overwrite or another --output"
            )
        else:
            folder.previous = previous
        return folder

    def owns(self, name: str) -> bool:
        """True for a file of the previous run (named by its manifest) or a temporary of one."""
        if is_temp_name(name):  # .NAME.XXXXXXXX.tmp
            name = name[1:].rsplit(".", 2)[0]
            return name in (MANIFEST, LEGACY_MANIFEST) or _is_shard_name(name) or self.owns(name)
        if name in self.owned:
            return True
        return self.ray_prefix is not None and name.startswith(self.ray_prefix) and name.endswith(".parquet")

    def todo(self, shards: Sequence[Shard]) -> list[Shard]:
        """The shards still to compute (Ray: all of them; local: those whose file does not exist)."""
        if self.engine == "ray" or self.previous is None:
            return list(shards)
        return [s for s in shards if not os.path.exists(os.path.join(self.output, s.name))]

    def finished(self, todo: Sequence[Shard]) -> bool:
        """True when the previous run is the same job and complete (then it is returned as is; an old-named
        manifest is moved, nothing else changes)."""
        if todo or self.previous is None or self.previous.get("status") != "complete":
            return False
        self.start(self.previous)
        return True

    def start(self, manifest: dict[str, Any]) -> None:
        """The first write of the run: the folder made, the previous run's files removed (--overwrite), its
        old-named manifest moved, a killed run's temporaries removed, the manifest written (a new run)."""
        if self.remote:
            write_manifest(self.manifest_path, manifest)
            return
        try:
            os.makedirs(self.output, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the output folder {self.output}: {e.strerror or e}") from None
        for name in self.remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.output, name))
        for name in os.listdir(self.output):  # what a SIGKILL left (no handler ran)
            if is_temp_name(name) and self.owns(name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.output, name))
        if self.previous is None:
            write_manifest(self.manifest_path, manifest)
        elif self.legacy:
            os.replace(os.path.join(self.output, LEGACY_MANIFEST), self.manifest_path)


def _is_shard_name(name: str) -> bool:
    stem = SHARD_NAME.split("{")[0]
    return name.startswith(stem) and name.endswith(".parquet") and name[len(stem) : -8].isdigit()


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
