"""Resume: what an output folder already holds decides what a run does, and nothing is written until the
job can start.

- A finished shard file is complete and skipped; the manifest's job and inputs (each read in the same
  format) must be this run's (or the run is refused, the differences listed); its plan is reused when the
  inputs are unchanged (no second scan).
- fastbert removes only files it wrote: those the manifest names (its shards, itself) and the temporaries
  of those. The output folder is the dataset readers take whole, so a folder that holds Parquet files no
  manifest names is refused, ``--overwrite`` or not; anything else in it is left alone.
- An output written under the old manifest name (``manifest.json``) is resumed, the manifest moved to
  ``_manifest.json`` when the run starts.
- One run writes a folder at a time: a run holds the folder's lock (:mod:`.lock`) from before it reads the
  manifest to its end (a folder that does not exist yet: from when it is made), and a second run is refused.
- Changing ``on_error`` on a resume is accepted when no finished shard holds a bad row (a run stopped by
  a bad row under ``fail`` wrote only shards without one): those shards are the same under every
  ``on_error``, and the manifest is rewritten with the new one.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from collections.abc import Sequence
from typing import Any

from fastbert.output_files import is_temp_name

from .inputs import filesystem, is_uri, join, stat
from .job import FINGERPRINT_PREFIXES, Job, model_fingerprint, normalize_dtype, pinned_commit
from .lock import LOCK_NAME, FolderLock
from .manifest import (
    LEGACY_MANIFEST,
    MANIFEST,
    fastbert_build,
    fastbert_version,
    manifest_path,
    manifest_shard_digits,
    owned_names,
    read_legacy_manifest,
    read_manifest,
    write_manifest,
)
from .plan import InputFile, Shard, file_from_record, shard_count, shard_digits, shard_number
from .readers import scan
from .writer import shard_metadata


class OutputFolder:
    """The output folder of a run: looked at (read only) by :meth:`inspect`, written from :meth:`start`."""

    def __init__(self, output: str, engine: str) -> None:
        self.output = output
        self.engine = engine
        self.remote = is_uri(output)
        self.manifest_path = manifest_path(output)
        self.previous: dict[str, Any] | None = None  # the manifest of the run to resume
        self.legacy = False  # the previous manifest has the old name
        self.remove: list[str] = []  # what --overwrite removes when the run starts (its manifest last)
        self.replaced: dict[str, Any] | None = None  # the manifest of the run --overwrite replaces
        self.owned: set[str] = set()
        self.ray_prefix: str | None = None
        self.lock: FolderLock | None = None  # held from inspect (or start, for a new folder) to release

    @classmethod
    def inspect(cls, output: str, engine: str, overwrite: bool) -> OutputFolder:
        """What ``output`` holds, refused when unusable; nothing is written but the folder's lock file, whose
        lock is held from here (:meth:`release` releases it). Another run holding it is refused."""
        folder = cls(output, engine)
        try:
            folder._inspect(overwrite)
        except BaseException:
            folder.release()
            raise
        return folder

    def release(self) -> None:
        """Release the folder's lock (the end of the run, whatever ended it)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _inspect(self, overwrite: bool) -> None:
        output, engine = self.output, self.engine
        if self.remote:
            if engine != "ray":
                raise ValueError(
                    f"output {output} is a URI: the local engine writes local folders (use --ray, engine='ray' "
                    "from Python)"
                )
            # no lock there (up to the user), but what the folder holds is looked at as a local one's: a
            # rerun wrote its files beside the previous run's (every row twice in the dataset), --overwrite
            # removed nothing
            names = _remote_names(output)
            if names is None:
                return  # made when the run starts
            previous = read_manifest(self.manifest_path)
        else:
            if os.path.exists(output) and not os.path.isdir(output):
                raise _not_a_folder(output)
            if not os.path.isdir(output):
                return  # locked when made (start)
            if not os.access(output, os.W_OK | os.X_OK):
                raise OSError(f"output folder {output} is not writable")
            self.lock = FolderLock.acquire(output)  # before the manifest is read: it may be another run's
            previous = read_manifest(self.manifest_path)
            if previous is None:
                previous = read_legacy_manifest(output)
                self.legacy = previous is not None
            names = os.listdir(output)
        if previous is not None:
            self.owned, self.ray_prefix = owned_names(previous)
            self.owned.add(LEGACY_MANIFEST if self.legacy else MANIFEST)
        foreign = sorted(n for n in names if n.endswith(".parquet") and not self.owns(n) and n[0] not in "._")
        if not self.remote:
            foreign += _parquet_in_subfolders(output, names)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ValueError(
                f"{output} holds Parquet files that no fastbert manifest there names ({shown}): the output "
                "folder is the dataset readers take whole, and fastbert removes only files it wrote "
                "(--overwrite too); move them away or pass another --output"
            )
        if previous is not None and previous.get("status") != "complete" and not overwrite:
            shards = [n for n in names if n.endswith(".parquet") and self.owns(n) and not is_temp_name(n)]
            if not shards:
                # a run that stopped before its first shard (a bad row under --on-error fail, a wrong
                # --column): nothing to keep consistent with, so a corrected run starts over
                overwrite = True
        if overwrite:
            # the manifest last: a run stopped while it removes the files leaves them named by it
            self.remove = sorted((n for n in names if self.owns(n)), key=lambda n: (_is_manifest_name(n), n))
            self.replaced = previous
        elif previous is not None and engine == "ray":
            raise ValueError(
                f"{output} holds a previous run's output: the Ray engine does not resume (Ray retries "
                "failed tasks itself): pass --overwrite or another --output"
            )
        elif previous is not None and previous.get("engine", "local") != "local":
            # its files are Ray's (part-ray-*), not the local plan's shards: resumed, they would stay beside
            # the local run's and every row would be in the dataset twice
            raise ValueError(
                f"{output} holds the output of a Ray run (--ray), which the local engine does not resume: "
                "pass --overwrite to start over (with --ray to run on Ray again), or another --output"
            )
        else:
            self.previous = previous

    def shard_digits(self, files: Sequence[InputFile], shard_rows: int) -> int:
        """The zero padding of the plan's shard names: the resumed run's (5 when its manifest does not
        record it), else wide enough for the plan's shard count."""
        if self.previous is not None:
            return manifest_shard_digits(self.previous)
        return shard_digits(shard_count(files, shard_rows))

    def owns(self, name: str) -> bool:
        """True for a file of the previous run (named by its manifest) or a temporary of one."""
        if is_temp_name(name):  # .NAME.XXXXXXXX.tmp
            name = name[1:].rsplit(".", 2)[0]
            return name in (MANIFEST, LEGACY_MANIFEST) or _is_shard_name(name) or self.owns(name)
        if name in self.owned:
            return True
        return self.ray_prefix is not None and name.startswith(self.ray_prefix) and name.endswith(".parquet")

    def todo(self, shards: Sequence[Shard]) -> list[Shard]:
        """The shards still to compute (Ray: all of them; local: those whose file does not exist). A shard
        file that exists is refused when its Parquet footer cannot be read or does not describe that shard
        (truncated or damaged since it was written): never kept beside the new ones as if complete."""
        if self.engine == "ray" or self.previous is None:
            return list(shards)
        todo = []
        for s in shards:
            path = os.path.join(self.output, s.name)
            if os.path.exists(path):
                _check_finished_shard(path, s)
            else:
                todo.append(s)
        return todo

    def finished(self, todo: Sequence[Shard], job: Job) -> bool:
        """True when the previous run is the same job and complete (then it is returned as is; an old-named
        manifest is moved, and a changed ``on_error`` recorded, nothing else changes)."""
        if todo or self.previous is None or self.previous.get("status") != "complete":
            return False
        recorded = self.previous.get("job")
        self.start(self.previous)
        if recorded != job.identity():  # the same output under this run's names (on_error, dtype...)
            self.previous["job"] = job.identity()
            write_manifest(self.manifest_path, self.previous)
        return True

    def start(self, manifest: dict[str, Any]) -> None:
        """The first write of the run: the folder made, the previous run's files removed (--overwrite), its
        old-named manifest moved, a killed run's temporaries removed, the manifest written (a new run)."""
        self._unfinish_replaced()
        if self.remote:
            _start_remote(self.output, self.remove)
            write_manifest(self.manifest_path, manifest)
            return
        try:
            os.makedirs(self.output, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the output folder {self.output}: {e.strerror or e}") from None
        if self.lock is None:  # the folder did not exist when inspected: lock it now, then check it is new
            self.lock = FolderLock.acquire(self.output)
            others = sorted(n for n in os.listdir(self.output) if n != LOCK_NAME)
            if others:
                self.release()
                shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
                raise OSError(
                    f"output folder {self.output} was made by another run while this one started (it now "
                    f"holds {shown}): run the command again"
                )
        for name in self.remove:
            path = os.path.join(self.output, name)
            if os.path.isdir(path) and not os.path.islink(path):  # a Ray run's staging folder
                shutil.rmtree(path, ignore_errors=True)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        for name in os.listdir(self.output):  # what a SIGKILL left (no handler ran)
            if is_temp_name(name) and self.owns(name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.output, name))
        if self.previous is None:
            write_manifest(self.manifest_path, manifest)
            return
        if self.legacy:
            os.replace(os.path.join(self.output, LEGACY_MANIFEST), self.manifest_path)
        if self.previous.get("job") != manifest.get("job"):  # a resume that changed on_error (or old names)
            write_manifest(self.manifest_path, manifest)

    def _unfinish_replaced(self) -> None:
        """Before ``--overwrite`` removes a finished run's files, its manifest rewritten as not complete: a
        run stopped while it removes them (the manifest goes last) leaves a folder that does not say it is
        the whole dataset, and whose files a rerun still owns (it resumes that job, or overwrites it), not
        shards that no manifest names."""
        if not self.remove or self.replaced is None or self.replaced.get("status") != "complete":
            return
        path = join(self.output, LEGACY_MANIFEST if self.legacy else MANIFEST)
        write_manifest(path, self.replaced | {"status": "running"})  # what a run that did not end says


def _is_manifest_name(name: str) -> bool:
    return name in (MANIFEST, LEGACY_MANIFEST)


def _check_finished_shard(path: str, shard: Shard) -> None:
    """A ValueError naming ``path`` when it is not the finished shard ``shard`` (its footer only is read: a
    truncated file, another file under its name; bytes damaged inside its pages are not seen)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_metadata(path).num_rows
        meta = shard_metadata(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        why = f"not a readable Parquet file: {e}"
    else:
        if meta.get("input_rows") != [shard.start, shard.stop] or meta.get("rows") != rows:
            why = (
                f"it holds {rows} rows of input rows {meta.get('input_rows')}, not the {meta.get('rows')} "
                f"written rows of input rows {[shard.start, shard.stop]} this shard has"
            )
        else:
            return
    raise ValueError(
        f"{path}, a finished shard of the run this one resumes, is damaged ({why}): remove it and run the "
        "command again to compute it anew, or pass --overwrite to start over"
    )


def _parquet_in_subfolders(output: str, names: Sequence[str]) -> list[str]:
    """The Parquet files in the subfolders of ``output`` (paths relative to it): dataset readers read a folder
    recursively (skipping names that start with ``.`` or ``_``), so they would take them with the shards."""
    found = []
    for name in sorted(names):
        if name[0] in "._" or not os.path.isdir(os.path.join(output, name)):
            continue
        for root, dirs, files in os.walk(os.path.join(output, name)):
            dirs[:] = sorted(d for d in dirs if d[0] not in "._")
            rel = os.path.relpath(root, output)
            found += [
                os.path.join(rel, f) for f in sorted(files) if f.endswith(".parquet") and f[0] not in "._"
            ]
    return found


def _not_a_folder(output: str) -> OSError:
    return OSError(
        f"output {output} is not a folder: fastbert embed writes a folder of Parquet shards and {MANIFEST} "
        "(it is created if missing)"
    )


def _remote_names(output: str) -> list[str] | None:
    """The names in the folder at URI ``output``; None when there is none (an OSError when it is a file)."""
    import pyarrow.fs as pafs

    fs, inner = filesystem(output)
    kind = fs.get_file_info(inner).type
    if kind == pafs.FileType.NotFound:
        return None
    if kind != pafs.FileType.Directory:
        raise _not_a_folder(output)
    return [i.base_name for i in fs.get_file_info(pafs.FileSelector(inner, recursive=False))]


def _start_remote(output: str, remove: Sequence[str]) -> None:
    """The folder at URI ``output`` made if missing, the previous run's files ``remove`` removed (--overwrite)."""
    import pyarrow.fs as pafs

    fs, inner = filesystem(output)
    try:
        if fs.get_file_info(inner).type == pafs.FileType.NotFound:
            fs.create_dir(inner, recursive=True)
    except OSError as e:
        raise OSError(f"cannot create the output folder {output}: {e}") from None
    for name in remove:
        path = posixpath.join(inner, name)
        if fs.get_file_info(path).type == pafs.FileType.Directory:  # a Ray run's staging folder
            fs.delete_dir(path)
            continue
        with contextlib.suppress(FileNotFoundError):
            fs.delete_file(path)


def _is_shard_name(name: str) -> bool:
    return shard_number(name) is not None


def plan_inputs(
    paths: Sequence[str], formats: Sequence[str], job: Job, old: dict[str, Any] | None, output: str
) -> list[InputFile]:
    """The scanned inputs; a resumed run reuses the manifest's scan when the inputs are unchanged and is
    refused when its job or inputs are not the manifest's."""

    def scan_all() -> list[InputFile]:
        return [
            scan(p, f, job.column, job.id_column, job.shard_rows, job.on_error)
            for p, f in zip(paths, formats)
        ]

    if old is None:
        return scan_all()
    stats = [(p, *stat(p)) for p in paths]
    old_files = [file_from_record(d) for d in old.get("inputs", [])]
    same_plan = old.get("job", {}).get("shard_rows") == job.shard_rows
    now = [InputFile(p, f, size, mtime, 0) for (p, size, mtime), f in zip(stats, formats)]
    # the job and the inputs as they are now (paths, sizes, mtimes, formats), refused before any scan; past
    # it they are the manifest's, whose scan is reused unless the shard size changed
    check_resume(old, job, now, output)
    if same_plan:
        return old_files
    files = scan_all()
    check_resume(old, job, files, output)  # a file that changed while it was scanned
    return files


def check_resume(old: dict[str, Any], job: Job, files: Sequence[InputFile], output: str) -> None:
    """A ValueError listing how this run differs from the one that started ``output`` (its job, its input
    files' paths, sizes and mtimes, and the format each is read as).

    The manifest's job is compared as this version names it (no dtype is float32, a model folder by its real
    path, an older fingerprint recomputed the older way); ``on_error`` may change when no finished shard holds
    a bad row."""
    problems = []
    was = normalized_identity(old.get("job", {}), job)
    for key, value in job.identity().items():
        if key == "on_error" and was.get(key) != value:
            holding = shards_with_bad_rows(old, output)
            if holding:
                problems.append(
                    f"on_error: {was.get(key)!r} there, {value!r} now, and finished shards hold bad rows "
                    f"({', '.join(holding[:3])}{' ...' if len(holding) > 3 else ''})"
                )
        elif was.get(key) != value:
            commit, now = pinned_commit(was.get(key)), pinned_commit(value)
            if key == "model_fingerprint" and commit and now:
                problems.append(
                    f"model: {job.model}'s {job.revision or 'default branch'} was commit {commit} there and "
                    f"is {now} now (pass --revision {commit} to resume with that model)"
                )
            else:
                problems.append(f"{key}: {was.get(key)!r} there, {value!r} now")
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
    old_formats = {d.get("path"): d.get("format") for d in old.get("inputs", [])}
    formats = [
        f"{f.path}: {old_formats[f.path]!r} there, {f.format!r} now"
        for f in files
        if f.path in old_formats and old_formats[f.path] != f.format
    ]
    if formats:
        problems.append(f"input format (--input-format) of {'; of '.join(formats)}")
    if problems:
        raise ValueError(
            # one difference a line; still apart where a command line joins the lines into one
            f"{output} holds the output of another job, which this run cannot resume:\n  "
            + ";\n  ".join(problems)
            + ".\nPass --overwrite to start over, or another --output."
        )


def check_same_version(old: dict[str, Any], output: str) -> None:
    """A ValueError when the unfinished run that ``output`` holds (``old``, its manifest) was started by
    another fastbert build: its finished shards hold that build's vectors, which this one's may differ from
    (a fix to pooling, to a kernel, to what is read of a model folder), and the shards this run would add
    beside them, under a manifest naming this build alone, could not be told apart. The build is the
    manifest's ``fastbert_build`` (a digest of the package's code, :func:`~.manifest.fastbert_build`) beside
    its ``fastbert_version``, which development commits share; a manifest that names a version and no build
    was written before fastbert recorded one, so by other code. A manifest that names neither (written by
    hand) is not refused."""
    was_version, was_build = old.get("fastbert_version"), old.get("fastbert_build")
    if was_version is None and was_build is None:
        return
    now_version, now_build = fastbert_version(), fastbert_build()
    if (was_version is None or str(was_version) == now_version) and was_build == now_build:
        return
    was = f"{was_version if was_version is not None else 'of unknown version'} (build {was_build or 'not recorded'})"
    now = f"{now_version} (build {now_build})"
    raise ValueError(
        f"{output} holds an unfinished run of fastbert {was}, and this is fastbert {now}: its finished "
        f"shards hold vectors of that build, which this one's may differ from, so this run does not add its "
        f"own beside them. Resume with the fastbert that started it, or pass --overwrite to start over, or "
        f"another --output."
    )


def normalized_identity(old_job: dict[str, Any], job: Job) -> dict[str, Any]:
    """A manifest's job as this version records it: the dtype normalised (None: float32), a model folder
    by its real path, a fingerprint of the older kind replaced by this one when it matches the model (a
    hub id's, which older manifests left out, taken as this one)."""
    d = dict(old_job)
    with contextlib.suppress(ValueError, TypeError):
        d["dtype"] = normalize_dtype(d.get("dtype"))
    model = d.get("model")
    if isinstance(model, str) and os.path.isdir(model):
        d["model"] = os.path.realpath(model)
    fingerprint = d.get("model_fingerprint")
    if fingerprint is None and pinned_commit(job.model_fingerprint) and d.get("model") == job.model:
        d["model_fingerprint"] = job.model_fingerprint  # older manifests recorded no commit for a hub id
    elif isinstance(fingerprint, str) and d.get("model") == job.model:
        # the older kinds (a prefix of each, none the start of another): replaced when they match the model
        older = [v for v, prefix in FINGERPRINT_PREFIXES.items() if v < 3 and fingerprint.startswith(prefix)]
        if older and model_fingerprint(job.model, version=older[0]) == fingerprint:
            d["model_fingerprint"] = job.model_fingerprint
    if pinned_commit(d.get("model_fingerprint")) and d.get("model_fingerprint") == job.model_fingerprint:
        d["revision"] = job.revision  # another name of the same commit (--revision <commit> on resume)
    return d


def shards_with_bad_rows(manifest: dict[str, Any], output: str) -> list[str]:
    """The finished shards of ``manifest``'s run in ``output`` that hold a bad row (their metadata counts)."""
    owned, prefix = owned_names(manifest)
    names = sorted(
        n
        for n in os.listdir(output)
        if not is_temp_name(n)
        and (n in owned or (prefix and n.startswith(prefix)))
        and n.endswith(".parquet")
    )
    out = []
    for name in names:
        try:
            bad = int(shard_metadata(os.path.join(output, name)).get("bad", 0))
        except (OSError, ValueError):
            bad = 1  # unreadable: cannot tell, so not the same output under another on_error
        if bad:
            out.append(name)
    return out
