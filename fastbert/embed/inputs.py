"""The input files of a job: globs expanded, each file's format, local paths and URIs opened alike."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

FORMATS = ("text", "jsonl", "csv", "parquet")
_EXT_FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def is_uri(path: str) -> bool:
    """True for ``s3://``, ``gs://``, ``hdfs://``... paths (read through pyarrow's filesystems)."""
    return "://" in path


def _inside(path: str, folder: str | None) -> bool:
    """Whether local ``path`` is in local ``folder`` (links resolved)."""
    if folder is None or is_uri(folder):
        return False
    folder = os.path.realpath(folder)
    return os.path.commonpath([os.path.realpath(path), folder]) == folder


def expand_inputs(inputs: Sequence[str] | str, output: str | None = None) -> list[str]:
    """Input paths with globs expanded (each glob sorted), in the order given; duplicates dropped. A path that
    names an existing file is that file, glob characters or not (``data[2024].jsonl``). Files in
    the ``output`` folder are the job's own shards: a glob's matches there are left out (``data/**/*.parquet``
    with ``--output data/vectors`` matched the first run's shards at the next, which then refused to
    resume), a file named there is refused."""
    import glob

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not isinstance(inputs, Iterable) or isinstance(inputs, (bytes, Mapping)):
        raise TypeError(f"inputs must be a path, a glob or a list of them, got {type(inputs).__name__}")
    out: list[str] = []
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(
                f"inputs must be paths or globs, got an item {item!r} of type {type(item).__name__}"
            )
        item = os.fspath(item)
        if is_uri(item):
            out.append(item)
            continue
        if glob.has_magic(item) and not os.path.isfile(item):  # a file named data[1].txt is itself
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise OSError(f"input {item!r} matches no file")
            matches = [p for p in matches if not _inside(p, output)]
            if not matches:
                raise OSError(f"input {item!r} matches no file outside the output folder {output}")
            out.extend(matches)
        elif os.path.isfile(item) and _inside(item, output):
            raise OSError(f"input file {item} is in the output folder {output}: pick another --output")
        elif os.path.isdir(item):
            raise OSError(f"input {item} is a folder: pass its files or a glob such as {item}/*.jsonl")
        elif not os.path.isfile(item) and (item == "-" or os.path.exists(item)):  # stdin, a pipe, a device
            raise OSError(
                f"input {'- (stdin)' if item == '-' else item} is not a regular file: embed needs regular "
                "files (it reads each input twice, a scan then the shards, and resumes from byte offsets, "
                "which a pipe cannot do): write it to a file first"
            )
        elif not os.path.isfile(item):
            raise OSError(f"input file {item} does not exist")
        else:
            out.append(item)
    seen: set[str] = set()
    unique = []
    for p in out:
        key = p if is_uri(p) else os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(key)
    if not unique:
        raise ValueError("embed needs at least one input file")
    return unique


def join(folder: str, name: str) -> str:
    """``name`` inside ``folder``, a local folder or a URI (whose separator is "/" on every system)."""
    return folder.rstrip("/") + "/" + name if is_uri(folder) else os.path.join(folder, name)


def format_of(path: str, fmt: str | None = None) -> str:
    """The format of an input: ``fmt`` when given, else from the extension (``.gz`` not supported)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"input format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXT_FORMATS:
        raise ValueError(
            f"cannot tell the format of input {path} from its extension {ext or '(none)'}: use .txt, .jsonl, "
            ".csv or .parquet, or pass --input-format"
        )
    return _EXT_FORMATS[ext]


def input_formats(
    inputs: Sequence[str] | str, input_format: str | None, id_column: str | None, output: str | None = None
) -> tuple[list[str], list[str]]:
    """(paths, their formats): globs expanded (leaving out the ``output`` folder's files), every file there,
    every format known."""
    paths = expand_inputs(inputs, output)
    formats = [format_of(p, input_format) for p in paths]
    if id_column and "text" in formats:
        raise ValueError("--id-column needs JSON lines, CSV or Parquet inputs: a .txt input has no columns")
    return paths, formats


def filesystem(path: str):
    """(pyarrow filesystem, path inside it) for a local path or a URI (s3://, gs://, hdfs://...)."""
    import pyarrow.fs as pafs

    if is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def open_binary(path: str):
    """``path`` opened for reading bytes (a local file, or a pyarrow input file for a URI)."""
    if is_uri(path):
        fs, inner = filesystem(path)
        return fs.open_input_file(inner)
    return open(path, "rb")


def open_arrow(path: str):
    """``path`` as a pyarrow native file, for pyarrow's CSV and Parquet readers. Not a Python file object:
    their read-ahead threads call back into Python for it, and one still running when the interpreter
    exits (a reader dropped just before, e.g. on a bad-row error) aborted the process (``terminate called
    without an active exception``, exit 134; apache/arrow#34314)."""
    if is_uri(path):
        fs, inner = filesystem(path)
        return fs.open_input_file(inner)
    import pyarrow as pa

    return pa.OSFile(path, "rb")


def stat(path: str) -> tuple[int, int]:
    """(size, mtime in ns) of an input: what a resumed run compares."""
    if is_uri(path):
        fs, inner = filesystem(path)
        info = fs.get_file_info(inner)
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        return int(info.size or 0), int(mtime)
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
