"""Reading the inputs: one streaming scan of a file (``scan``: its rows and shard offsets), then the rows of a
shard, one reader a format: text, JSON lines, CSV, Parquet.

A row carries its id, its text (None when bad), why it is bad, and where it is (the file and its 1-based
line, or row for CSV and Parquet), so that an error names both, as ``fastbert run`` does.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .inputs import open_binary, stat
from .plan import InputFile, Shard

if TYPE_CHECKING:
    from .job import Job


@dataclasses.dataclass
class Row:
    """One input row: its id, its text (None when bad), why it is bad, and where it is."""

    id: Any
    text: str | None
    error: str | None = None
    where: str | None = None


def where(file: InputFile, local: int) -> str:
    """``path, line N`` (text, JSON lines) or ``path, row N`` (CSV rows after the header, Parquet): 1-based."""
    unit = "line" if file.format in ("text", "jsonl") else "row"
    return f"{file.path}, {unit} {local + 1}"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of the input that were not UTF-8
        return False
    return True


def _text_of(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, "missing text"
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None, "text is not UTF-8"
    if not isinstance(value, str):
        return None, f"text is a {type(value).__name__}, not a string"
    if not _is_utf8(value):
        return None, "text is not UTF-8"
    if not value.strip():
        return None, "empty text"
    return value, None


def _id_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, str) and not _is_utf8(value):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", errors="backslashreplace")
    return str(value)


# ---------------------------------------------------------------------------------- CSV and Parquet files


def csv_options(column: str, id_column: str | None, path: str):
    """pyarrow's CSV options reading only the text (and id) column, as bytes; the header checked first."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open_binary(path) as f:
        header = f.readline()
    try:
        names = next(iter(csv.reader([header.decode("utf-8")])))
    except (UnicodeDecodeError, StopIteration, csv.Error):
        raise ValueError(f"{path}, line 1: not a UTF-8 CSV header") from None
    wanted = [column] + ([id_column] if id_column else [])
    for name in wanted:
        if name not in names:
            raise ValueError(f"{path} has no column {name!r} (its columns: {', '.join(names)})")
    return pacsv.ConvertOptions(
        include_columns=wanted, column_types={n: pa.binary() for n in wanted}, strings_can_be_null=False
    )


def csv_batches(path: str, column: str, id_column: str | None) -> Iterator[Any]:
    """The record batches of a CSV file; a file pyarrow cannot parse is a ValueError naming it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = csv_options(column, id_column, path)
    try:
        with open_binary(path) as f:
            yield from pacsv.open_csv(f, convert_options=options)
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path} is not a valid CSV file: {e}") from None


def parquet_file(path: str, f: Any):
    """``pq.ParquetFile`` of an open file; a file that is not Parquet is a ValueError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(f)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path} is not a valid Parquet file ({e})") from None


def check_columns(path: str, names: list[str], column: str, id_column: str | None) -> None:
    """A file without the text (or id) column is refused before any model loads."""
    for name in [column] + ([id_column] if id_column else []):
        if name not in names:
            raise ValueError(f"{path} has no column {name!r} (its columns: {', '.join(names)})")


#: the non-blank lines of a JSON lines file that :func:`check_jsonl_columns` reads while it is scanned
JSONL_CHECKED_LINES = 100


def check_jsonl_columns(path: str, lines: list[bytes], column: str, id_column: str | None) -> None:
    """A JSON lines file whose first line is no JSON object (a ``.json`` file holding one array), or whose
    first lines all lack the text (or id) column (a misspelt ``--column``), is refused before any model
    loads; a few rows without it are bad rows (``--on-error``)."""
    objects = []
    for k, line in enumerate(lines):
        try:
            obj = json.loads(line.decode("utf-8", errors="surrogateescape"))
        except (json.JSONDecodeError, RecursionError):
            obj = None
        if k == 0 and not isinstance(obj, dict):
            raise ValueError(
                f"{path} is not JSON lines: its first line is not a JSON object (fastbert embed reads one "
                'object a line, e.g. {"text": ...}; a .json file holding one array is not that)'
            )
        if isinstance(obj, dict):
            objects.append(obj)
    for name in [column] + ([id_column] if id_column else []):
        if not any(name in obj for obj in objects):
            keys = sorted({key for obj in objects for key in obj})
            raise ValueError(
                f"{path} has no column {name!r} in its first {len(lines)} lines (their keys: "
                f"{', '.join(keys) or 'none'})"
            )


# ============================================================================================ the readers


def scan(path: str, fmt: str, column: str, id_column: str | None, shard_rows: int) -> InputFile:
    """One streaming pass over an input (line formats: shard offsets; CSV: a count; Parquet: its footer)."""
    size, mtime = stat(path)
    offsets: list[int] = []
    if fmt in ("text", "jsonl"):
        rows = 0
        pos = 0
        head: list[bytes] = []  # JSON lines: the first lines, to check the columns before a model loads
        with open_binary(path) as f:
            for line in f:
                if rows % shard_rows == 0:
                    offsets.append(pos)
                pos += len(line)
                rows += 1
                if fmt == "jsonl" and len(head) < JSONL_CHECKED_LINES and line.strip():
                    head.append(line)
        if head:
            check_jsonl_columns(path, head, column, id_column)
    elif fmt == "csv":
        rows = sum(batch.num_rows for batch in csv_batches(path, column, id_column))
    else:
        with open_binary(path) as f:
            pf = parquet_file(path, f)
            check_columns(path, pf.schema_arrow.names, column, id_column)
            rows = pf.metadata.num_rows
    return InputFile(path, fmt, size, mtime, rows, tuple(offsets))


def read_shard(job: Job, file: InputFile, shard: Shard) -> Iterator[Row]:
    """The rows of one shard, in input order, each with its id and text or the reason it is bad."""

    def make(local: int, text: Any, id_value: Any = None, error: str | None = None) -> Row:
        at = where(file, local)
        if job.id_column:
            rid = _id_of(id_value)
            if rid is None and error is None:
                error = f"missing id ({job.id_column!r})"
        else:
            rid = shard.base + local
        if error is not None:
            return Row(rid, None, error, at)
        t, err = _text_of(text)
        return Row(rid, t, err, at)

    reader = {"text": _read_lines, "jsonl": _read_lines, "csv": _read_csv, "parquet": _read_parquet}
    return reader[file.format](job, file, shard, make)


_Make = Callable[..., Row]


def _read_lines(job: Job, file: InputFile, shard: Shard, make: _Make) -> Iterator[Row]:
    """Text (one text a line) and JSON lines: one seek to the shard's byte offset, then line by line."""
    if file.format == "text" and job.id_column:
        raise ValueError(
            f"{file.path} is a text file (one text a line, no columns): --id-column needs "
            "JSON lines, CSV or Parquet"
        )
    with open_binary(file.path) as f:
        f.seek(shard.offset)
        for k in range(shard.rows):
            raw = f.readline()
            local = shard.start + k
            line = raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw
            # bytes that are not UTF-8 become lone surrogates: a JSON line still gives its id
            decoded = line.decode("utf-8", errors="surrogateescape")
            if file.format == "text":
                yield make(local, decoded)
                continue
            if not decoded.strip():
                yield make(local, None, None, "empty line")
                continue
            try:
                obj = json.loads(decoded)
            except (json.JSONDecodeError, RecursionError):
                yield make(local, None, None, "line is not valid JSON")
                continue
            if not isinstance(obj, dict):
                yield make(local, None, None, "line is not a JSON object")
                continue
            id_value = obj.get(job.id_column) if job.id_column else None
            if job.column not in obj:
                yield make(local, None, id_value, f"missing column {job.column!r}")
                continue
            yield make(local, obj[job.column], id_value)


def _read_csv(job: Job, file: InputFile, shard: Shard, make: _Make) -> Iterator[Row]:
    """CSV: streamed from the file's start up to the shard (fields may hold newlines)."""
    row = 0
    for batch in csv_batches(file.path, job.column, job.id_column):
        if row + batch.num_rows <= shard.start:
            row += batch.num_rows
            continue
        lo = max(shard.start - row, 0)
        hi = min(shard.stop - row, batch.num_rows)
        yield from _rows_of_batch(make, batch, lo, hi, row, job)
        row += batch.num_rows
        if row >= shard.stop:
            break


def _read_parquet(job: Job, file: InputFile, shard: Shard, make: _Make) -> Iterator[Row]:
    """Parquet: only the row groups the shard overlaps, only the text (and id) column."""
    columns = [job.column] + ([job.id_column] if job.id_column else [])
    with open_binary(file.path) as f:
        pf = parquet_file(file.path, f)
        meta = pf.metadata
        groups, first, acc = [], None, 0
        for g in range(meta.num_row_groups):
            g_rows = meta.row_group(g).num_rows
            if acc + g_rows > shard.start and acc < shard.stop:
                groups.append(g)
                first = acc if first is None else first
            acc += g_rows
        row = first or 0
        for batch in pf.iter_batches(batch_size=4096, row_groups=groups, columns=columns):
            lo = max(shard.start - row, 0)
            hi = min(shard.stop - row, batch.num_rows)
            if hi > lo:
                yield from _rows_of_batch(make, batch, lo, hi, row, job)
            row += batch.num_rows
            if row >= shard.stop:
                break


def _rows_of_batch(make: _Make, batch: Any, lo: int, hi: int, row: int, job: Job) -> Iterator[Row]:
    texts = batch.column(job.column).slice(lo, hi - lo).to_pylist()
    ids = batch.column(job.id_column).slice(lo, hi - lo).to_pylist() if job.id_column else [None] * len(texts)
    for k, (t, i) in enumerate(zip(texts, ids)):
        yield make(row + lo + k, t, i)
