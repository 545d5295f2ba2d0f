"""Corpus embedding: ``fastbert embed`` and :func:`embed`.

A corpus (text, JSON lines, CSV or Parquet files) becomes Parquet shards of ``id`` + ``vector`` (a
fixed-size list of float32 or float16) and a ``manifest.json``::

    fastbert embed docs/*.jsonl --column text --id-column id --output vectors/

How it works, one way through:

1. **Plan.** Every input is scanned once, streaming (text / JSON lines: line offsets; CSV: a streaming
   count; Parquet: its footer). The corpus is cut into shards of ``shard_rows`` input rows, never across
   files, so the shard of a row depends on the input alone, not on timing or devices.
2. **Read.** A shard's rows are read on their own (a seek to the shard's byte offset for line formats,
   the right row groups for Parquet): memory holds one shard, whatever the corpus size.
3. **Batch.** Inside a shard, rows are taken a window at a time, sorted by token length (longest
   first) and cut into batches of at most ``max_batch_tokens`` padded tokens (rows × longest row, TEI's
   knob); vectors go back to input order.
4. **Write.** A shard is written to a temporary name, fsynced and renamed: a shard file that exists is
   complete. A rerun of the same command skips finished shards; the manifest records the job (model,
   revision, dtype, pooling, inputs with sizes and mtimes...) and a rerun with another job is refused.

The model runs through the public pipeline API only (``fastbert.pipeline(task, model=..., device=...)``,
its ``tokenizer`` and a call on a list of texts). ``devices=["cuda:0", "cuda:1"]`` runs one spawned
process per device over disjoint shards; ``engine="ray"`` runs the same plan as a Ray Data pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import FunctionModule
from .output_files import is_temp_name, open_output

TASKS = ("sentence-embedding", "feature-extraction", "text-classification")
ON_ERROR = ("fail", "skip", "empty")
OUTPUT_DTYPES = ("float32", "float16")
FEATURE_POOLING = ("mean", "cls", "max")
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
FORMATS = ("text", "jsonl", "csv", "parquet")

#: input rows per output shard (shards never cross input files)
DEFAULT_SHARD_ROWS = 10_000
#: rows length-sorted together inside a shard
DEFAULT_WINDOW = 2_000
#: padded tokens (rows × longest row) per forward
DEFAULT_MAX_BATCH_TOKENS = 16_384  # on a GPU (TEI's default)
#: on the CPU, GEMMs over more activations than this fall out of cache: 3,000 MiniLM rows on 2 threads took
#: 16.0 s with 16384, 12.6 s with 4096, 12.5 s with 2048, 12.8 s with 1024 (AMD EPYC, torch 2.13)
DEFAULT_MAX_BATCH_TOKENS_CPU = 4_096

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_SHARD_NAME = "part-{:05d}.parquet"
# test hook of the Ray engine: an actor that finds this file removes it and dies (once)
_CRASH_ENV = "FASTBERT_EMBED_TEST_CRASH_FILE"


# ==================================================================================== the job and its plan


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One input file: what was read (size, mtime) and where its shards start."""

    path: str
    format: str
    size: int
    mtime_ns: int
    rows: int
    # byte offset of every shard start (line formats); row offsets of the other formats are rows
    offsets: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of input file ``file``; global row numbers start at ``base``."""

    index: int
    file: int
    start: int
    stop: int
    base: int
    offset: int = 0

    @property
    def name(self) -> str:
        return _SHARD_NAME.format(self.index)

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything that decides the output bytes (and is compared on resume), plus how to run it."""

    task: str
    model: str
    revision: str | None
    model_fingerprint: str | None
    dtype: str | None
    output_dtype: str
    pooling: tuple[str, ...] | None
    normalize: bool | None
    max_length: int | None
    function_to_apply: str | None
    column: str
    id_column: str | None
    on_error: str
    shard_rows: int
    window: int
    max_batch_tokens: int
    attn_implementation: str | None = None

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that started the output."""
        d = dataclasses.asdict(self)
        d["pooling"] = list(self.pooling) if self.pooling else None
        return d


def _is_uri(path: str) -> bool:
    return "://" in path


def expand_inputs(inputs: Sequence[str] | str) -> list[str]:
    """Input paths with globs expanded (each glob sorted), in the order given; duplicates dropped."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if _is_uri(item):
            out.append(item)
            continue
        if glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise OSError(f"input {item!r} matches no file")
            out.extend(matches)
        elif os.path.isdir(item):
            raise OSError(f"input {item} is a folder: pass its files or a glob such as {item}/*.jsonl")
        elif not os.path.isfile(item):
            raise OSError(f"input file {item} does not exist")
        else:
            out.append(item)
    seen: set[str] = set()
    unique = []
    for p in out:
        key = p if _is_uri(p) else os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(key)
    if not unique:
        raise ValueError("embed needs at least one input file")
    return unique


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


def _filesystem(path: str):
    """(pyarrow filesystem, path inside it) for a local path or a URI (s3://, gs://, hdfs://...)."""
    import pyarrow.fs as pafs

    if _is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def _open_binary(path: str):
    if _is_uri(path):
        fs, inner = _filesystem(path)
        return fs.open_input_file(inner)
    return open(path, "rb")


def _stat(path: str) -> tuple[int, int]:
    if _is_uri(path):
        fs, inner = _filesystem(path)
        info = fs.get_file_info(inner)
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        return int(info.size or 0), int(mtime)
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _csv_options(column: str, id_column: str | None, path: str):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with _open_binary(path) as f:
        header = f.readline()
    try:
        names = next(iter(__import__("csv").reader([header.decode("utf-8")])))
    except (UnicodeDecodeError, StopIteration):
        raise ValueError(f"{path}: the first line is not a UTF-8 CSV header") from None
    wanted = [column] + ([id_column] if id_column else [])
    for name in wanted:
        if name not in names:
            raise ValueError(f"{path} has no column {name!r} (its columns: {', '.join(names)})")
    return pacsv.ConvertOptions(
        include_columns=wanted, column_types={n: pa.binary() for n in wanted}, strings_can_be_null=False
    )


def _scan(path: str, fmt: str, column: str, id_column: str | None, shard_rows: int) -> InputFile:
    size, mtime = _stat(path)
    offsets: list[int] = []
    if fmt in ("text", "jsonl"):
        rows = 0
        pos = 0
        with _open_binary(path) as f:
            for line in f:
                if rows % shard_rows == 0:
                    offsets.append(pos)
                pos += len(line)
                rows += 1
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        rows = 0
        with _open_binary(path) as f:
            reader = pacsv.open_csv(f, convert_options=_csv_options(column, id_column, path))
            for batch in reader:
                rows += batch.num_rows
    else:
        import pyarrow.parquet as pq

        with _open_binary(path) as f:
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            for name in [column] + ([id_column] if id_column else []):
                if name not in names:
                    raise ValueError(f"{path} has no column {name!r} (its columns: {', '.join(names)})")
            rows = pf.metadata.num_rows
    return InputFile(path, fmt, size, mtime, rows, tuple(offsets))


def plan_shards(files: Sequence[InputFile], shard_rows: int) -> list[Shard]:
    """Cut the inputs into shards of ``shard_rows`` rows, never across files (deterministic)."""
    shards = []
    base = 0
    for i, f in enumerate(files):
        for k, start in enumerate(range(0, f.rows, shard_rows)):
            offset = f.offsets[k] if f.offsets else 0
            shards.append(Shard(len(shards), i, start, min(start + shard_rows, f.rows), base, offset))
        base += f.rows
    return shards


# ================================================================================================ reading


@dataclasses.dataclass
class Row:
    """One input row: its id, its text (None when bad) and why it is bad."""

    id: Any
    text: str | None
    error: str | None = None


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


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of the input that were not UTF-8
        return False
    return True


def read_shard(job: Job, file: InputFile, shard: Shard) -> Iterator[Row]:
    """The rows of one shard, in input order, each with its id and text or the reason it is bad."""
    n = shard.rows
    fmt = file.format

    def make(local: int, text: Any, id_value: Any = None, error: str | None = None) -> Row:
        if job.id_column:
            rid = _id_of(id_value)
            if rid is None and error is None:
                error = f"missing id ({job.id_column!r})"
        else:
            rid = shard.base + local
        if error is not None:
            return Row(rid, None, error)
        t, err = _text_of(text)
        return Row(rid, t, err)

    if fmt in ("text", "jsonl"):
        with _open_binary(file.path) as f:
            f.seek(shard.offset)
            for k in range(n):
                raw = f.readline()
                local = shard.start + k
                line = raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw
                # bytes that are not UTF-8 become lone surrogates: a JSON line still gives its id
                decoded = line.decode("utf-8", errors="surrogateescape")
                if fmt == "text":
                    if job.id_column:
                        raise ValueError(
                            f"{file.path} is a text file (one text a line, no columns): --id-column needs "
                            "JSON lines, CSV or Parquet"
                        )
                    yield make(local, decoded)
                    continue
                if not decoded.strip():
                    yield make(local, None, None, "empty line")
                    continue
                try:
                    obj = json.loads(decoded)
                except json.JSONDecodeError:
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
        return

    columns = [job.column] + ([job.id_column] if job.id_column else [])
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with _open_binary(file.path) as f:
            reader = pacsv.open_csv(f, convert_options=_csv_options(job.column, job.id_column, file.path))
            row = 0
            for batch in reader:
                if row + batch.num_rows <= shard.start:
                    row += batch.num_rows
                    continue
                lo = max(shard.start - row, 0)
                hi = min(shard.stop - row, batch.num_rows)
                yield from _rows_of_batch(make, batch, lo, hi, row, columns, job)
                row += batch.num_rows
                if row >= shard.stop:
                    break
        return

    import pyarrow.parquet as pq

    with _open_binary(file.path) as f:
        pf = pq.ParquetFile(f)
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
                yield from _rows_of_batch(make, batch, lo, hi, row, columns, job)
            row += batch.num_rows
            if row >= shard.stop:
                break


def _rows_of_batch(make, batch, lo, hi, row, columns, job) -> Iterator[Row]:
    texts = batch.column(columns.index(job.column)).slice(lo, hi - lo).to_pylist()
    ids = batch.column(1).slice(lo, hi - lo).to_pylist() if job.id_column else [None] * len(texts)
    for k, (t, i) in enumerate(zip(texts, ids)):
        yield make(row + lo + k, t, i)


# =============================================================================================== the model


def _model_fingerprint(model: str) -> str | None:
    """sha256 of a local model folder's config.json and its weight files' names, sizes and mtimes."""
    if not os.path.isdir(model):
        return None
    h = hashlib.sha256()
    for root, _dirs, names in sorted(os.walk(model)):
        for name in sorted(names):
            p = os.path.join(root, name)
            rel = os.path.relpath(p, model)
            if name.endswith((".json", ".txt")):
                with open(p, "rb") as f:
                    h.update(rel.encode() + b"\0" + f.read())
            elif name.endswith((".safetensors", ".bin", ".pt", ".h5", ".msgpack")):
                st = os.stat(p)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return "sha256:" + h.hexdigest()


class Encoder:
    """A pipeline and the token-budget batching around it: texts in, float32 vectors out, in order."""

    def __init__(self, job: Job, device: Any = None) -> None:
        import fastbert

        kwargs: dict[str, Any] = {}
        pipe_task = job.task
        if job.task == "sentence-embedding":
            if job.pooling:
                kwargs["pooling"] = list(job.pooling)
            if job.normalize is not None:
                kwargs["normalize"] = job.normalize
        if job.max_length:
            kwargs["max_length"] = job.max_length
        if job.revision:
            kwargs["revision"] = job.revision
        self.job = job
        self.pipe = fastbert.pipeline(
            pipe_task,
            model=job.model,
            device=device,
            torch_dtype=job.dtype,
            attn_implementation=job.attn_implementation,
            progress=False,
            **kwargs,
        )
        self.tokenizer = self.pipe.tokenizer
        self.max_length = int(getattr(self.pipe, "max_length", None) or job.max_length or 512)
        self._label_index: dict[str, int] | None = None
        if job.task == "text-classification":
            id2label = getattr(self.pipe.model.config, "id2label", None) or {}
            self._label_index = {str(v): int(k) for k, v in id2label.items()}
        self.dimension = int(self._forward(["fastbert"]).shape[1])

    # what the output means, for the manifest
    def describe(self) -> dict[str, Any]:
        """Pooling, normalisation and labels as the pipeline resolved them."""
        d: dict[str, Any] = {"max_length": self.max_length}
        if self.job.task == "sentence-embedding":
            d["pooling"] = list(self.pipe.pooling)
            d["normalize"] = bool(self.pipe.normalize)
        elif self.job.task == "feature-extraction":
            d["pooling"] = list(self.job.pooling or ("mean",))
            d["normalize"] = bool(self.job.normalize)
        else:
            d["labels"] = [k for k, _ in sorted(self._label_index.items(), key=lambda kv: kv[1])]
        return d

    def lengths(self, texts: list[str]) -> list[int]:
        """Token count of each text, truncated to the model's maximum as the pipeline truncates."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def _forward(self, texts: list[str]):
        import numpy as np
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation warnings: one a row, and expected here
            if self.job.task == "sentence-embedding":
                out = self.pipe(texts, batch_size=len(texts), return_tensors=True)
                return out.float().numpy()
            if self.job.task == "feature-extraction":
                outs = self.pipe(texts, batch_size=len(texts), return_tensors=True)
                modes = self.job.pooling or ("mean",)
                rows = []
                for h in outs:
                    h = h[0].float()  # (tokens, hidden)
                    parts = []
                    for m in modes:
                        parts.append(h[0] if m == "cls" else h.max(dim=0).values if m == "max" else h.mean(0))
                    rows.append(torch.cat(parts))
                v = torch.stack(rows)
                if self.job.normalize:
                    v = torch.nn.functional.normalize(v, p=2, dim=1)
                return v.numpy()
            kw = {"top_k": None}
            if self.job.function_to_apply:
                kw["function_to_apply"] = self.job.function_to_apply
            outs = self.pipe(texts, batch_size=len(texts), **kw)
            idx = self._label_index
            v = np.zeros((len(texts), len(idx)), dtype=np.float32)
            for r, labels in enumerate(outs):
                for d in labels:
                    v[r, idx[str(d["label"])]] = d["score"]
            return v

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Row indices of each batch: sorted longest first, at most ``max_batch_tokens`` padded tokens."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties keep input order
        budget = self.job.max_batch_tokens
        out: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            # sorted longest first: the first row of a batch is its longest
            if cur and (len(cur) + 1) * lengths[cur[0]] > budget:
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out

    def encode(self, texts: list[str], on_batch: Callable[[int, int], None] | None = None):
        """(vectors (n, dimension) float32 in input order, padded tokens computed)."""
        import numpy as np

        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        tokens = 0
        if not texts:
            return result, 0
        lengths = self.lengths(texts)
        for batch in self.batches(lengths):
            vec = self._forward([texts[i] for i in batch])
            result[batch] = vec
            n_tok = len(batch) * lengths[batch[0]]
            tokens += n_tok
            if on_batch is not None:
                on_batch(len(batch), n_tok)
        return result, tokens


def encode_rows(
    encoder: Encoder, rows: list[Row], on_batch: Callable[[int, int], None] | None = None
) -> tuple[list[Any], Any, Any, int, int]:
    """(ids, vectors (n, dim) float32, valid mask, bad rows, padded tokens) for rows of one shard.

    Bad rows follow ``on_error``: ``fail`` raises, ``skip`` drops them, ``empty`` keeps them with a
    null vector (those with an id: a row whose id cannot be read is dropped). Windows of ``window`` rows are length-sorted and batched together.
    """
    import numpy as np

    job = encoder.job
    bad = [r for r in rows if r.error is not None]
    if bad and job.on_error == "fail":
        r = bad[0]
        raise ValueError(
            f"input row {r.id!r}: {r.error} (pass --on-error skip to drop bad rows, or empty to keep them "
            "with a null vector)"
        )
    # "empty" keeps a bad row with a null vector when it has an id (a line that is not JSON has none)
    keep = [r for r in rows if r.error is None or (job.on_error == "empty" and r.id is not None)]
    vectors = np.zeros((len(keep), encoder.dimension), dtype=np.float32)
    valid = np.array([r.error is None for r in keep], dtype=bool)
    tokens = 0
    good_index = np.flatnonzero(valid)
    for start in range(0, len(good_index), job.window):
        idx = good_index[start : start + job.window]
        vec, tok = encoder.encode([keep[i].text for i in idx], on_batch)
        vectors[idx] = vec
        tokens += tok
    return [r.id for r in keep], vectors, valid, len(bad), tokens


def _arrow_table(job: Job, ids: list[Any], vectors, valid, dimension: int, metadata: dict[str, Any]):
    import numpy as np
    import pyarrow as pa

    np_dtype = np.float16 if job.output_dtype == "float16" else np.float32
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np_dtype).reshape(-1))
    mask = None if bool(np.all(valid)) else pa.array(~np.asarray(valid, dtype=bool))
    vec = pa.FixedSizeListArray.from_arrays(flat, dimension, mask=mask)
    id_arr = pa.array(ids, type=pa.string() if job.id_column else pa.int64())
    schema = output_schema(job, dimension).with_metadata({"fastbert": json.dumps(metadata)})
    return pa.Table.from_arrays([id_arr, vec], schema=schema)


def output_schema(job: Job, dimension: int):
    """The Arrow schema of every shard: ``id`` (int64 row number or string), ``vector``."""
    import pyarrow as pa

    value = pa.float16() if job.output_dtype == "float16" else pa.float32()
    return pa.schema(
        [
            pa.field("id", pa.string() if job.id_column else pa.int64(), nullable=False),
            pa.field("vector", pa.list_(value, dimension)),
        ]
    )


# =========================================================================================== atomic writes
# Shards and the manifest are written by fastbert.output_files.open_output: a temporary file beside the
# target, fsynced, renamed over it when complete, the folder fsynced; removed on an error or a signal.


def _remove_stale_temporaries(folder: str) -> None:
    """What a killed run (SIGKILL: no handler runs) left behind."""
    for name in os.listdir(folder):
        if is_temp_name(name):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))


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


# ============================================================================================== manifest


def _read_manifest(path: str) -> dict[str, Any] | None:
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable manifest ({e}): pass --overwrite to start over") from None


def _write_manifest(path: str, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    if _is_uri(path):
        fs, inner = _filesystem(path)
        with fs.open_output_stream(inner) as f:
            f.write(text.encode("utf-8"))
        return
    with open_output(path, "w") as f:
        f.write(text)


def _input_records(files: Sequence[InputFile]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(f) | {"offsets": list(f.offsets)} for f in files]


def _check_resume(old: dict[str, Any], job: Job, files: Sequence[InputFile], output: str) -> None:
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


def _fastbert_version() -> str:
    try:
        from fastbert import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


# ============================================================================================= the engines


def _default_max_batch_tokens(devices: list[Any]) -> int:
    """The token budget of a forward when none is given: GPU-sized when every device is a GPU."""

    def on_gpu(d: Any) -> bool:
        if d is None:
            import torch

            return torch.cuda.is_available()
        text = str(d)
        if text.lstrip("-").isdigit():  # pipeline device numbers: -1 is the CPU
            return int(text) >= 0
        return text.startswith("cuda")

    return DEFAULT_MAX_BATCH_TOKENS if all(on_gpu(d) for d in devices) else DEFAULT_MAX_BATCH_TOKENS_CPU


def _device_list(device: Any, devices: Any) -> list[Any]:
    if devices is None:
        return [device]
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    out = []
    for d in devices:
        if isinstance(d, int) or (isinstance(d, str) and d.isdigit()):
            out.append(f"cuda:{int(d)}")
        else:
            out.append(str(d))
    if not out:
        raise ValueError("devices must list at least one device (0,1 or cuda:0,cuda:1 or cpu,cpu)")
    return out


class _Progress:
    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        self.bar = None
        self.tokens = 0
        self.start = time.monotonic()
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, unit="row", desc="embed", file=sys.stderr, dynamic_ncols=True
            )

    def update(self, rows: int, tokens: int) -> None:
        self.tokens += tokens
        if self.bar is not None:
            self.bar.update(rows)
            rate = self.tokens / max(time.monotonic() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} tokens/s", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _process_shards(
    job: Job,
    files: Sequence[InputFile],
    shards: Sequence[Shard],
    output: str,
    device: Any,
    report: Callable[[int, int], None],
    encoder: Encoder | None = None,
) -> None:
    encoder = encoder or Encoder(job, device)
    with _system_memory_pool():
        for shard in shards:
            _process_shard(job, files, shard, output, report, encoder)


@contextlib.contextmanager
def _system_memory_pool():
    """Arrow allocates from malloc while shards are read and written: its default pool (mimalloc) keeps
    what a shard freed, and the resident size grew with the corpus (measured); malloc gives it back."""
    import pyarrow as pa

    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def _process_shard(job, files, shard, output, report, encoder) -> None:
    """Read, embed and write one shard (skipped when its file exists: it is complete)."""
    path = os.path.join(output, shard.name)
    if os.path.exists(path):
        return
    rows = list(read_shard(job, files[shard.file], shard))
    ids, vectors, valid, bad, tokens = encode_rows(encoder, rows, on_batch=report)
    n_bad_kept = int((~valid).sum()) if len(valid) else 0
    meta = {
        "shard": shard.index,
        "input": files[shard.file].path,
        "input_rows": [shard.start, shard.stop],
        "rows": len(ids),
        "bad": bad,
        "empty": n_bad_kept,
        "skipped": bad - n_bad_kept,
        "tokens": tokens,
    }
    write_shard(path, _arrow_table(job, ids, vectors, valid, encoder.dimension, meta))
    if bad:
        report(bad, 0)  # bad rows count as done in the progress bar
    del rows, ids, vectors, valid
    _release_memory()


def _release_memory() -> None:
    """Hand the freed heap of a shard back to the system (glibc keeps it otherwise, and the resident
    size creeps up shard after shard though nothing is held)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl...)
        pass


def _worker_main(job, files, shards, output, device, threads, queue) -> None:  # a spawned process
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        _process_shards(job, files, shards, output, device, lambda r, t: queue.put(("progress", r, t)))
        queue.put(("done", 0, 0))
    except BaseException as e:  # reported to the parent, which raises
        queue.put(("error", f"{e}", type(e).__name__))
        raise SystemExit(1) from None


def _run_workers(job, files, todo, output, devices, progress: _Progress) -> None:
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    cpu_workers = sum(1 for d in devices if str(d).startswith("cpu"))
    threads = max(1, (os.cpu_count() or 1) // max(cpu_workers, 1)) if cpu_workers else None
    procs = []
    for w, device in enumerate(devices):
        mine = [s for k, s in enumerate(todo) if k % len(devices) == w]
        p = ctx.Process(
            target=_worker_main,
            args=(job, files, mine, output, device, threads if str(device).startswith("cpu") else None, q),
            daemon=True,
        )
        p.start()
        procs.append(p)
    errors = []
    try:
        running = len(procs)
        while running:
            try:
                kind, a, b = q.get(timeout=0.5)
            except queue_mod.Empty:
                if all(not p.is_alive() for p in procs):
                    break
                continue
            if kind == "progress":
                progress.update(a, b)
            else:
                running -= 1
                if kind == "error":
                    errors.append((a, b))
        for p in procs:
            p.join()
    except BaseException:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    failed = [f"worker on {d} exited with {p.exitcode}" for p, d in zip(procs, devices) if p.exitcode]
    if errors:  # a bad row or a bad file stays a ValueError / OSError, as in one process
        kinds = {"ValueError": ValueError, "OSError": OSError, "FileNotFoundError": OSError}
        message, kind = errors[0]
        raise kinds.get(kind, RuntimeError)(f"a --devices worker stopped: {message}")
    if failed:
        raise RuntimeError("embed: " + "; ".join(failed))


# ------------------------------------------------------------------------------------------- Ray engine


def _ray_read(batch, job_dict: dict, files_dict: list):
    """Ray task: the rows of the shards described in ``batch`` (one shard a row)."""
    import pyarrow as pa

    job = _job_from_dict(job_dict)
    files = [_file_from_dict(f) for f in files_dict]
    ids, texts, errors = [], [], []
    for d in batch.to_pylist():
        shard = Shard(**d)
        for r in read_shard(job, files[shard.file], shard):
            ids.append(r.id)
            texts.append(r.text)
            errors.append(r.error)
    return pa.table(
        {
            "id": pa.array(ids, type=pa.string() if job.id_column else pa.int64()),
            "text": pa.array(texts, type=pa.string()),
            "error": pa.array(errors, type=pa.string()),
        }
    )


class _RayEncoder:
    """Ray actor: one fastbert model; a batch of (id, text, error) rows in, (id, vector) out."""

    def __init__(self, job_dict: dict, device: str | None) -> None:
        self.job = _job_from_dict(job_dict)
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.encoder = Encoder(self.job, device)

    def __call__(self, batch):
        rows = [
            Row(i, t, e)
            for i, t, e in zip(
                batch.column("id").to_pylist(),
                batch.column("text").to_pylist(),
                batch.column("error").to_pylist(),
            )
        ]
        ids, vectors, valid, _bad, _tokens = encode_rows(self.encoder, rows)
        crash = os.environ.get(_CRASH_ENV)
        if crash:
            try:
                os.remove(crash)
            except OSError:
                pass
            else:
                os._exit(1)  # the test's killed actor: Ray restarts it and retries this batch
        return _arrow_table(
            self.job, ids, vectors, valid, self.encoder.dimension, {}
        ).replace_schema_metadata(None)


def _job_from_dict(d: dict) -> Job:
    d = dict(d)
    d["pooling"] = tuple(d["pooling"]) if d.get("pooling") else None
    return Job(**d)


def _file_from_dict(d: dict) -> InputFile:
    d = dict(d)
    d["offsets"] = tuple(d.get("offsets") or ())
    return InputFile(**d)


def _run_ray(job, files, shards, output, ray_address, actors, device, progress) -> None:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError(
            "engine='ray' needs Ray Data: pip install 'fastbert-triton[ray]' (ray[data] and pyarrow)"
        ) from None
    if not ray.is_initialized():
        ray.init(address=ray_address or os.environ.get("RAY_ADDRESS"))
    if progress is False:  # --no-progress: no Ray Data bars either
        ray.data.DataContext.get_current().enable_progress_bars = False
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    use_gpu = gpus > 0 and (device is None or not str(device).startswith("cpu"))
    if actors is None:
        actors = gpus if use_gpu else max(1, int(resources.get("CPU", 1)) - 1)
    job_dict = job.identity()
    files_dict = _input_records(files)
    items = [dataclasses.asdict(s) for s in shards]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.map_batches(
        _ray_read,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"job_dict": job_dict, "files_dict": files_dict},
    )
    ds = ds.map_batches(
        _RayEncoder,
        fn_constructor_kwargs={"job_dict": job_dict, "device": None if use_gpu else "cpu"},
        batch_size=job.window,
        batch_format="pyarrow",
        concurrency=actors,
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
        # a dead actor is restarted and its batch retried, as often as it takes (Ray's default for
        # actor pools too; said here because the no-duplicate guarantee rests on it)
        ray_remote_args_fn=_ray_actor_retries,
    )
    ds.write_parquet(output)


def _ray_actor_retries() -> dict[str, Any]:
    return {"max_restarts": -1, "max_task_retries": -1}


# ================================================================================================ the API


def embed(
    inputs: Sequence[str] | str,
    output: str,
    *,
    model: str | None = None,
    task: str = "sentence-embedding",
    column: str = "text",
    id_column: str | None = None,
    input_format: str | None = None,
    dtype: str | None = None,
    output_dtype: str = "float32",
    device: Any = None,
    devices: Any = None,
    max_length: int | None = None,
    pooling: Sequence[str] | str | None = None,
    normalize: bool | None = None,
    function_to_apply: str | None = None,
    max_batch_tokens: int | None = None,
    window: int = DEFAULT_WINDOW,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    on_error: str = "fail",
    overwrite: bool = False,
    progress: bool | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int | None = None,
    revision: str | None = None,
    attn_implementation: str | None = None,
) -> dict[str, Any]:
    """Embed a corpus into Parquet shards under ``output`` and return its manifest (a dict).

    ``inputs``: files or globs (.txt one text a line, .jsonl, .csv, .parquet); ``column`` names the text
    field, ``id_column`` the id field (ids are then strings; without it, global row numbers, int64).
    ``task``: ``sentence-embedding`` (the model folder's pooling; ``pooling``/``normalize`` override),
    ``feature-extraction`` (the last hidden state pooled by ``pooling``: mean, cls or max) or
    ``text-classification`` (the score of each label, in label-id order). ``devices``: one worker
    process per device over disjoint shards. ``engine="ray"``: the same plan as a Ray Data pipeline.
    A finished output is returned as is; an interrupted one is resumed; another job's is refused
    unless ``overwrite``.
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError(
            "fastbert embed writes Parquet through pyarrow: pip install 'fastbert-triton[embed]'"
        ) from None
    from fastbert.pipelines import check_task

    task = check_task(task)
    if task not in TASKS:
        raise ValueError(f"embed runs {', '.join(TASKS)}, not {task}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if output_dtype not in OUTPUT_DTYPES:
        raise ValueError(f"output_dtype must be float32 or float16, got {output_dtype!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if max_batch_tokens is None:
        max_batch_tokens = _default_max_batch_tokens(_device_list(device, devices))
    for name, value in (
        ("max_batch_tokens", max_batch_tokens),
        ("window", window),
        ("shard_rows", shard_rows),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    if isinstance(pooling, str):
        pooling = [p.strip() for p in pooling.split(",") if p.strip()]
    pooling_t = tuple(pooling) if pooling else None
    if task == "feature-extraction":
        for m in pooling_t or ():
            if m not in FEATURE_POOLING:
                raise ValueError(f"feature-extraction pools by {', '.join(FEATURE_POOLING)}, not {m!r}")
    elif task == "text-classification" and (pooling_t or normalize):
        raise ValueError("pooling and normalize are options of the embedding tasks, not text-classification")
    if function_to_apply is not None and task != "text-classification":
        raise ValueError("function_to_apply is a text-classification option")
    if model is None:
        if task == "text-classification":
            raise ValueError("text-classification needs a model: pass model= a BertForSequenceClassification")
        from fastbert.hub import embedded_model_path

        model = embedded_model_path()
    model = os.path.abspath(model) if os.path.isdir(model) else str(model)
    device_list = _device_list(device, devices)

    paths = expand_inputs(inputs)
    formats = [format_of(p, input_format) for p in paths]
    if id_column and "text" in formats:
        raise ValueError("--id-column needs JSON lines, CSV or Parquet inputs: a .txt input has no columns")
    job = Job(
        task=task,
        model=model,
        revision=revision,
        model_fingerprint=_model_fingerprint(model),
        dtype=str(dtype).lower() if dtype else None,
        output_dtype=output_dtype,
        pooling=pooling_t,
        normalize=normalize,
        max_length=max_length,
        function_to_apply=function_to_apply,
        column=column,
        id_column=id_column,
        on_error=on_error,
        shard_rows=shard_rows,
        window=window,
        max_batch_tokens=max_batch_tokens,
        attn_implementation=attn_implementation,
    )

    remote_output = _is_uri(output)
    if remote_output and engine != "ray":
        raise ValueError(
            f"output {output} is a URI: the local engine writes local folders (use engine='ray')"
        )
    manifest_path = output.rstrip("/") + "/" + MANIFEST if remote_output else os.path.join(output, MANIFEST)
    old = None
    if not remote_output:
        if os.path.exists(output) and not os.path.isdir(output):
            raise OSError(f"output {output} is a file: pass a folder (it is created if missing)")
        os.makedirs(output, exist_ok=True)
        if not os.access(output, os.W_OK):
            raise OSError(f"output folder {output} is not writable")
        old = _read_manifest(manifest_path)
        if overwrite:
            _clear_output(output)
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
        _remove_stale_temporaries(output)

    # the plan: reuse the manifest's when the inputs are unchanged (no second scan)
    stats = [(p, *_stat(p)) for p in paths]
    if old is not None:
        old_files = [_file_from_dict(d) for d in old.get("inputs", [])]
        if [(f.path, f.size, f.mtime_ns) for f in old_files] == stats and old.get("job", {}).get(
            "shard_rows"
        ) == shard_rows:
            files = old_files
        else:
            files = [_scan(p, f, column, id_column, shard_rows) for p, f in zip(paths, formats)]
        _check_resume(old, job, files, output)
    else:
        files = [_scan(p, f, column, id_column, shard_rows) for p, f in zip(paths, formats)]
    shards = plan_shards(files, shard_rows)
    total = sum(f.rows for f in files)

    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "fastbert_version": _fastbert_version(),
        "engine": engine,
        "status": "running",
        "job": job.identity(),
        "inputs": _input_records(files),
        "total_input_rows": total,
    }
    if old is None:
        _write_manifest(manifest_path, manifest)

    if engine == "ray":
        _run_ray(job, files, shards, output, ray_address, ray_actors, device_list[0], progress)
        manifest.update(_ray_summary(job, output, total))
        manifest["status"] = "complete"
        _write_manifest(manifest_path, manifest)
        return manifest

    todo = [s for s in shards if not os.path.exists(os.path.join(output, s.name))]
    done_rows = sum(s.rows for s in shards) - sum(s.rows for s in todo)
    show = progress if progress is not None else _stderr_is_tty()
    bar = _Progress(show and bool(todo), total, done_rows)
    encoder = None
    try:
        if len(device_list) > 1 and todo:
            _run_workers(job, files, todo, output, device_list, bar)
        else:
            encoder = Encoder(job, device_list[0])
            _process_shards(job, files, todo, output, device_list[0], bar.update, encoder)
    finally:
        bar.close()
    manifest.update(_local_summary(output, shards))
    if encoder is None and old is not None and old.get("status") == "complete":
        manifest["description"], manifest["dimension"] = old.get("description"), old.get("dimension")
    else:  # the workers' models are gone: load one here to say what the vectors are
        encoder = encoder or _describe_only(job, device_list[0])
        manifest["description"] = encoder.describe()
        manifest["dimension"] = encoder.dimension
    manifest["status"] = "complete"
    _write_manifest(manifest_path, manifest)
    return manifest


def _describe_only(job: Job, device: Any) -> Encoder:
    return Encoder(job, "cpu" if device is None else device)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _clear_output(output: str) -> None:
    for name in os.listdir(output):
        if name == MANIFEST or name.endswith(".parquet") or is_temp_name(name):
            os.remove(os.path.join(output, name))


def _local_summary(output: str, shards: Sequence[Shard]) -> dict[str, Any]:
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


def _ray_summary(job: Job, output: str, total_input: int) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs, inner = _filesystem(output)
    import pyarrow.fs as pafs

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


def read_output(output: str):
    """The shards of an embed output as one Arrow table (ids and vectors), shards in name order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = sorted(n for n in os.listdir(output) if n.endswith(".parquet") and not n.startswith("."))
    tables = [pq.read_table(os.path.join(output, n)).replace_schema_metadata(None) for n in names]
    if not tables:
        raise OSError(f"{output} holds no Parquet shard")
    return pa.concat_tables(tables)


# ==================================================================================================== CLI


def add_cli_arguments(parser) -> None:
    """The arguments of ``fastbert embed``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="text/JSONL/CSV/Parquet files or globs")
    parser.add_argument(
        "--output", "-o", required=True, help="output folder (Parquet shards + manifest.json)"
    )
    parser.add_argument(
        "--model", default=None, help="model folder or hub id (default: the MiniLM that ships offline)"
    )
    parser.add_argument(
        "--task",
        default="sentence-embedding",
        help="sentence-embedding (default), feature-extraction (pooled) or text-classification (scores)",
    )
    parser.add_argument("--column", default="text", help="the text column / JSON key (default: text)")
    parser.add_argument(
        "--id-column", default=None, help="the id column (default: ids are global row numbers)"
    )
    parser.add_argument("--input-format", default=None, choices=FORMATS, help="default: from each extension")
    parser.add_argument("--dtype", default=None, help="model dtype: float32, float16, bfloat16")
    parser.add_argument("--output-dtype", default="float32", choices=OUTPUT_DTYPES, help="vector dtype")
    parser.add_argument("--device", default=None, help="cpu, 0, cuda:1... (default: the CPU)")
    parser.add_argument(
        "--devices", default=None, help="one worker process per device over disjoint shards: 0,1 or cpu,cpu"
    )
    parser.add_argument("--max-length", type=int, default=None, help="tokens per text (default: the model's)")
    parser.add_argument("--pooling", default=None, help="mean, cls, max... (default: the model folder's)")
    parser.add_argument(
        "--normalize", dest="normalize", action="store_true", default=None, help="L2-normalize"
    )
    parser.add_argument("--no-normalize", dest="normalize", action="store_false", help="do not L2-normalize")
    parser.add_argument("--function-to-apply", default=None, choices=("sigmoid", "softmax", "none"))
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help=f"padded tokens (rows x longest) per forward (default {DEFAULT_MAX_BATCH_TOKENS} on a GPU, "
        f"{DEFAULT_MAX_BATCH_TOKENS_CPU} on the CPU)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"rows length-sorted together (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--shard-rows",
        type=int,
        default=DEFAULT_SHARD_ROWS,
        help=f"input rows a shard (default {DEFAULT_SHARD_ROWS})",
    )
    parser.add_argument(
        "--on-error", default="fail", choices=ON_ERROR, help="bad rows: fail (default), skip, empty"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start over in an output folder of another job"
    )
    parser.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="show progress"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument(
        "--ray", action="store_true", help="run as a Ray Data pipeline (pip install fastbert-triton[ray])"
    )
    parser.add_argument(
        "--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)"
    )
    parser.add_argument("--ray-actors", type=int, default=None, help="model actors (default: one a GPU)")
    parser.add_argument("--revision", default=None, help="hub revision of the model")
    parser.add_argument("--attn-implementation", default=None, choices=("eager", "sdpa", "triton"))


def cli_main(args) -> int:
    """Run ``fastbert embed``; prints a one-line summary to stderr."""
    manifest = embed(
        args.inputs,
        args.output,
        model=args.model,
        task=args.task,
        column=args.column,
        id_column=args.id_column,
        input_format=args.input_format,
        dtype=args.dtype,
        output_dtype=args.output_dtype,
        device=args.device,
        devices=args.devices,
        max_length=args.max_length,
        pooling=args.pooling,
        normalize=args.normalize,
        function_to_apply=args.function_to_apply,
        max_batch_tokens=args.max_batch_tokens,
        window=args.window,
        shard_rows=args.shard_rows,
        on_error=args.on_error,
        overwrite=args.overwrite,
        progress=args.progress,
        engine="ray" if args.ray else "local",
        ray_address=args.ray_address,
        ray_actors=args.ray_actors,
        revision=args.revision,
        attn_implementation=args.attn_implementation,
    )
    print(
        f"fastbert embed: {manifest['total_rows']} rows in {len(manifest['shards'])} shards, "
        f"{manifest['bad_rows']} bad rows, written to {args.output}",
        file=sys.stderr,
    )
    return 0


sys.modules[__name__].__class__ = FunctionModule  # fastbert.embed(...) calls embed()
