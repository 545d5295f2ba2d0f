"""Reading the inputs: one streaming scan of a file (``scan``: its rows and shard offsets), then the rows of a
shard, one reader a format: text, JSON lines, CSV, Parquet.

A row carries its id, its text (None when bad), why it is bad, and where it is (the file and its 1-based
line, or row for CSV and Parquet), so that an error names both, as ``fastbert run`` does.

Under ``on_error="fail"`` the scan also finds the bad rows it can see while it reads (every row of text, JSON
lines and CSV files, which it reads whole anyway; the nulls a Parquet footer counts), so that such a run stops
before any model loads or any file is written; a text column that is not one (an int64 Parquet column) is
refused whatever ``on_error`` says. A UTF-8 byte order mark at the start of a file is not part of its first
row (nor of a CSV header).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .inputs import open_arrow, open_binary, stat
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


#: the byte order mark some editors (Excel, Notepad) write at the start of a UTF-8 file
BOM = b"\xef\xbb\xbf"
#: what a bad row's error adds under ``on_error="fail"``
ON_ERROR_HINT = "(pass --on-error skip to drop bad rows, or empty to keep them with a null vector)"


def where(file: InputFile, local: int) -> str:
    """``path, line N`` (text, JSON lines) or ``path, row N`` (CSV rows after the header, Parquet): 1-based."""
    return _where(file.path, file.format, local)


def _where(path: str, fmt: str, local: int) -> str:
    unit = "line" if fmt in ("text", "jsonl") else "row"
    return f"{path}, {unit} {local + 1}"


def bad_row_message(row: Row, id_column: str | None) -> str:
    """``path, line 2 (id 'r1'): empty text``: where a bad row is, its id when ids are a column, and why."""
    at = row.where or f"input row {row.id}"
    if id_column and row.id is not None:
        at += f" (id {row.id!r})"
    return f"{at}: {row.error}"


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


def _id_of(value: Any, id_column: str) -> tuple[str | None, str | None]:
    """(the id as a string, None) or (None, why the row has no id): ids are strings or integers (a float,
    a boolean or an object would not stay the same value as a string: ``1.0``, ``True``), and an empty or
    blank string (an empty CSV field) is no id: every such row would share the id ``""``."""
    if value is None:
        return None, f"missing id ({id_column!r})"
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, str) and not value.strip():
        return None, f"empty id ({id_column!r})"
    if isinstance(value, str):
        if not _is_utf8(value):
            return value.encode("utf-8", "surrogateescape").decode("utf-8", errors="backslashreplace"), None
        return value, None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    kind = {bool: "boolean", float: "number", dict: "object", list: "array"}.get(
        type(value), type(value).__name__
    )
    return None, f"id ({id_column!r}) is a {kind}, not a string or an integer"


def make_row(
    where_: str, number: int, text: Any, id_value: Any, error: str | None, id_column: str | None
) -> Row:
    """The :class:`Row` of raw values: its id (the id column's value, checked; else the global row number
    ``number``), its text checked (``_text_of``), or the first reason it is bad."""
    if id_column:
        rid, id_error = _id_of(id_value, id_column)
        error = error or id_error
    else:
        rid = number
    if error is not None:
        return Row(rid, None, error, where_)
    t, err = _text_of(text)
    return Row(rid, t, err, where_)


def _line_values(fmt: str, raw: bytes, column: str, id_column: str | None) -> tuple[Any, Any, str | None]:
    """(text, id value, error) of one line of a text or JSON lines file (its newline included or not)."""
    line = raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw
    # bytes that are not UTF-8 become lone surrogates: a JSON line still gives its id
    decoded = line.decode("utf-8", errors="surrogateescape")
    if fmt == "text":
        return decoded, None, None
    if not decoded.strip():
        return None, None, "empty line"
    try:
        obj = json.loads(decoded)
    except (json.JSONDecodeError, RecursionError):
        return None, None, "line is not valid JSON"
    if not isinstance(obj, dict):
        return None, None, "line is not a JSON object"
    id_value = obj.get(id_column) if id_column else None
    if column not in obj:
        return None, id_value, f"missing column {column!r}"
    return obj[column], id_value, None


# ---------------------------------------------------------------------------------- CSV and Parquet files


def csv_options(column: str, id_column: str | None, path: str):
    """pyarrow's CSV options reading only the text (and id) column, as bytes; the header checked first."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open_binary(path) as f:
        header = f.readline()
    try:
        names = next(iter(csv.reader([header.decode("utf-8-sig")])))  # pyarrow skips a BOM too
    except (UnicodeDecodeError, StopIteration, csv.Error):
        raise ValueError(f"{path}, line 1: not a UTF-8 CSV header") from None
    wanted = list(dict.fromkeys([column] + ([id_column] if id_column else [])))  # the text may be the id
    for name in wanted:
        if name not in names:
            raise ValueError(f"{path} has no column {name!r} (its columns: {', '.join(names)})")
    return pacsv.ConvertOptions(
        include_columns=wanted, column_types={n: pa.binary() for n in wanted}, strings_can_be_null=False
    )


#: pyarrow's CSV block (its default), and the largest one tried: a row may not cross two block boundaries
#: (pyarrow: "straddling object straddles two block boundaries"), so a file with a row longer than that is
#: read again from its start with blocks four times as large, the rows already read skipped
CSV_BLOCK = 1 << 20
CSV_MAX_BLOCK = 1 << 30


def csv_batches(path: str, column: str, id_column: str | None) -> Iterator[Any]:
    """The record batches of a CSV file; a file pyarrow cannot parse is a ValueError naming it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = csv_options(column, id_column, path)
    # a quoted field may hold newlines: without newlines_in_values, pyarrow cuts its blocks (1 MiB) at the
    # last newline, inside such a field, and a file past one block failed as "not a valid CSV file"
    parse = pacsv.ParseOptions(newlines_in_values=True)
    block, done = CSV_BLOCK, 0  # rows yielded
    while True:
        row = 0
        try:
            with open_arrow(path) as f:
                read = pacsv.ReadOptions(block_size=block)
                for batch in pacsv.open_csv(
                    f, read_options=read, parse_options=parse, convert_options=options
                ):
                    if row + batch.num_rows > done:
                        yield batch.slice(done - row) if done > row else batch
                        done = row + batch.num_rows
                    row += batch.num_rows
            return
        except pa.ArrowInvalid as e:
            if "straddl" in str(e) and block < CSV_MAX_BLOCK:  # a row over two block boundaries
                block *= 4
                continue
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


def _is_text_type(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return any(
        check(t)
        for check in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_string_view,
            pa.types.is_binary,
            pa.types.is_large_binary,
            pa.types.is_binary_view,
            pa.types.is_null,  # no value at all: each row is a missing text (or id)
        )
    )


def check_column_types(path: str, schema: Any, column: str, id_column: str | None) -> None:
    """A text column that does not hold strings (an int64 column), or an id column that holds neither
    strings nor integers (a float: ``1.0`` would not stay the same id), is refused before any model loads."""
    import pyarrow as pa

    t = schema.field(column).type
    if not _is_text_type(t):
        raise ValueError(
            f"{path}: the text column {column!r} holds {t}, not strings: pass the text column as --column"
        )
    if id_column:
        t = schema.field(id_column).type
        inner = t.value_type if pa.types.is_dictionary(t) else t
        if not (_is_text_type(t) or pa.types.is_integer(inner)):
            raise ValueError(f"{path}: the id column {id_column!r} holds {t}: ids are strings or integers")


#: the non-blank lines of a JSON lines file that :func:`check_jsonl_columns` reads while it is scanned
JSONL_CHECKED_LINES = 100


def check_jsonl_columns(path: str, lines: list[bytes], column: str, id_column: str | None) -> None:
    """A JSON lines file whose first line is no JSON object (a ``.json`` file holding one array), or whose
    first lines all lack the text (or id) column (a misspelt ``--column``), is refused before any model
    loads; a few rows without it are bad rows (``--on-error``)."""
    objects = []
    for k, line in enumerate(lines):
        if k == 0:
            line = line.removeprefix(BOM)
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


def scan(
    path: str, fmt: str, column: str, id_column: str | None, shard_rows: int, on_error: str = "fail"
) -> InputFile:
    """One streaming pass over an input (line formats: shard offsets; CSV: a count; Parquet: its footer).

    Under ``on_error="fail"`` the first bad row it sees is a ValueError naming the file, the line or row and
    why (see the module's docstring): raised here, before any model loads."""
    size, mtime = stat(path)
    offsets: list[int] = []
    validate = on_error == "fail"
    if fmt in ("text", "jsonl"):
        rows = 0
        pos = 0
        head: list[bytes] = []  # JSON lines: the first lines, to check the columns before a model loads
        checked = fmt != "jsonl"  # the file-level checks go first: a misspelt --column is not a bad row
        first_bad: Row | None = None
        with open_binary(path) as f:
            for raw in f:
                if rows % shard_rows == 0:
                    offsets.append(pos)
                line = raw.removeprefix(BOM) if pos == 0 else raw
                pos += len(raw)
                if not checked and line.strip():
                    head.append(line)
                    if len(head) == JSONL_CHECKED_LINES:
                        check_jsonl_columns(path, head, column, id_column)
                        checked = True
                if validate and first_bad is None:
                    text, id_value, error = _line_values(fmt, line, column, id_column)
                    row = make_row(_where(path, fmt, rows), rows, text, id_value, error, id_column)
                    if row.error is not None:
                        first_bad = row
                if first_bad is not None and checked:
                    break
                rows += 1
        if not checked and head:
            check_jsonl_columns(path, head, column, id_column)
        if first_bad is not None:
            raise ValueError(f"{bad_row_message(first_bad, id_column)} {ON_ERROR_HINT}")
    elif fmt == "csv":
        rows = 0
        for batch in csv_batches(path, column, id_column):
            if validate:
                _raise_first_bad(path, fmt, batch, rows, column, id_column)
            rows += batch.num_rows
    else:
        with open_arrow(path) as f:
            pf = parquet_file(path, f)
            check_columns(path, pf.schema_arrow.names, column, id_column)
            check_column_types(path, pf.schema_arrow, column, id_column)
            rows = pf.metadata.num_rows
            if validate:
                _raise_counted_nulls(path, pf, column, id_column)
    return InputFile(path, fmt, size, mtime, rows, tuple(offsets))


def _raise_first_bad(path: str, fmt: str, batch: Any, row: int, column: str, id_column: str | None) -> None:
    """The first bad row of a record batch (its first row is row ``row`` of the file), raised."""
    texts = batch.column(column).to_pylist()
    ids = batch.column(id_column).to_pylist() if id_column else [None] * len(texts)
    for k, (t, i) in enumerate(zip(texts, ids)):
        r = make_row(_where(path, fmt, row + k), row + k, t, i, None, id_column)
        if r.error is not None:
            raise ValueError(f"{bad_row_message(r, id_column)} {ON_ERROR_HINT}")


def _raise_counted_nulls(path: str, pf: Any, column: str, id_column: str | None) -> None:
    """The first missing text (or id) of a Parquet file whose footer counts nulls in that column, raised
    (only the row group that has one is read); other bad rows (an empty string) are found when read."""
    meta = pf.metadata
    names = [column] + ([id_column] if id_column else [])
    start = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for j in range(group.num_columns):
            chunk = group.column(j)
            stats = chunk.statistics
            if (
                chunk.path_in_schema in names
                and stats is not None
                and stats.has_null_count
                and stats.null_count
            ):
                _raise_first_bad(
                    path, "parquet", pf.read_row_group(g, columns=names), start, column, id_column
                )
        start += group.num_rows


def read_shard(job: Job, file: InputFile, shard: Shard) -> Iterator[Row]:
    """The rows of one shard, in input order, each with its id and text or the reason it is bad."""

    def make(local: int, text: Any, id_value: Any = None, error: str | None = None) -> Row:
        return make_row(where(file, local), shard.base + local, text, id_value, error, job.id_column)

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
            if shard.offset == 0 and k == 0:
                raw = raw.removeprefix(BOM)
            text, id_value, error = _line_values(file.format, raw, job.column, job.id_column)
            yield make(shard.start + k, text, id_value, error)


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
    with open_arrow(file.path) as f:
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
