"""``fastbert run``: a pipeline over one input per line of stdin (or ``--input``), results to stdout
(or ``--output``) as JSON lines, JSON, CSV, or for embeddings ``.npy`` / ``.safetensors``.

``--output`` follows :mod:`fastbert.output_files`: checked before the model loads; a regular file is
replaced atomically when the run succeeds (nothing half-written), a device, FIFO or ``/dev/fd/N`` is
streamed in place.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from fastbert.cli import QUANTIZATION_HELP, comma_list, quantization_arg
from fastbert.output_files import check_output_path, open_output

FORMATS = ("jsonl", "json", "csv", "npy", "safetensors")
_EXT_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".txt": "jsonl",
    ".csv": "csv",
    ".npy": "npy",
    ".safetensors": "safetensors",
}


def _whole_number(minimum: int) -> Any:
    """An argparse type: an int of at least ``minimum`` (argparse turns the ValueError into exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


_POSITIVE = _whole_number(1)
_NON_NEGATIVE = _whole_number(0)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        required=True,
        help="fill-mask, feature-extraction, sentence-embedding, text-classification, token-classification or question-answering",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="local model folder or hub id (default for feature-extraction and sentence-embedding: the MiniLM that ships offline)",
    )
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id (default: the model's)")
    parser.add_argument(
        "--device", default=None, help="CUDA ordinal (0), 'cpu', 'cuda:1'...; default: the CPU"
    )
    parser.add_argument("--dtype", default=None, help="float32, float16 (fp16) or bfloat16 (bf16)")
    parser.add_argument(
        "--attn-implementation", default=None, choices=("eager", "sdpa", "triton"), help="attention backend"
    )
    parser.add_argument("--quantization", type=quantization_arg, default=None, help=QUANTIZATION_HELP)
    parser.add_argument("--batch-size", type=_POSITIVE, default=None, help="rows per forward (default 32)")
    parser.add_argument(
        "--max-length",
        type=_POSITIVE,
        default=None,
        help="tokens per input at most (default: the model's maximum); longer inputs are truncated",
    )
    parser.add_argument(
        "--input",
        default=None,
        help="input file, one input per line (default stdin): a line whose first non-blank character is '{' "
        'is a JSON object ({"text": ..., "text_pair": ...}; question-answering: {"question": ..., "context": ...}) '
        "and is refused when it is not valid JSON; any other line is the text itself",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="output file (.jsonl, .json, .csv; embeddings also .npy, .safetensors; another extension needs "
        "--format); default stdout",
    )
    parser.add_argument(
        "--format",
        default=None,
        choices=FORMATS,
        help="output format (default: from --output's extension, jsonl for stdout or a name without one)",
    )
    parser.add_argument(
        "--skip-empty", action="store_true", help="skip empty input lines instead of stopping at them"
    )
    parser.add_argument(
        "--no-truncation",
        action="store_true",
        help="stop at inputs longer than the model's maximum instead of truncating them",
    )
    parser.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="always show a progress bar"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a progress bar"
    )
    g = parser.add_argument_group("task options")
    g.add_argument(
        "--top-k",
        type=_POSITIVE,
        default=None,
        help="fill-mask, text-classification, question-answering: how many results",
    )
    g.add_argument("--targets", default=None, help="fill-mask: comma-separated candidate tokens")
    g.add_argument(
        "--function-to-apply",
        default=None,
        choices=("sigmoid", "softmax", "none"),
        help="text-classification",
    )
    g.add_argument(
        "--aggregation-strategy",
        default=None,
        choices=("none", "simple", "first", "average", "max"),
        help="token-classification",
    )
    g.add_argument(
        "--doc-stride",
        type=_NON_NEGATIVE,
        default=None,
        help="question-answering: overlap of the spans of a long context",
    )
    g.add_argument("--max-answer-len", type=_POSITIVE, default=None, help="question-answering")
    g.add_argument("--handle-impossible-answer", action="store_true", default=None, help="question-answering")
    g.add_argument(
        "--pooling",
        default=None,
        help="sentence-embedding: mean, cls, max... (default: the folder's pooling config)",
    )
    g.add_argument(
        "--normalize", action="store_true", default=None, help="sentence-embedding: L2-normalize the vectors"
    )
    g.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="sentence-embedding: do not normalize, even where the folder's modules say so",
    )


def _format_of(args: argparse.Namespace) -> str:
    """``--format``, else the format of ``--output``'s extension, else JSON lines. An extension that is not
    one of the formats (``x.parquet``) is refused unless ``--format`` says what to write under that name,
    and so is an extension of another format (``--format csv --output x.json``)."""
    ext = os.path.splitext(args.output)[1].lower() if args.output and args.output != "-" else ""
    named = _EXT_FORMATS.get(ext)
    if args.format:
        if named is not None and named != args.format:
            raise ValueError(
                f"--output {args.output} has the extension of {named}, not of --format {args.format}: "
                "change one of them"
            )
        return args.format
    if ext and named is None:
        known = ", ".join(sorted(_EXT_FORMATS))
        raise ValueError(
            f"--output {args.output}: fastbert run does not write {ext} files (it writes {known}); "
            "pass --format to choose what to write under that name"
        )
    return named or "jsonl"


def _json_line(text: str, lineno: int) -> dict:
    """The object of a JSON input line (one whose first non-blank character is ``{``): a line that starts
    like JSON but is not valid JSON is refused, naming the line, never read as text."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(f"line {lineno}: JSON nested too deeply to read") from None
    except ValueError as e:  # JSONDecodeError, or an integer of too many digits
        raise ValueError(
            f"line {lineno} starts with '{{' but is not valid JSON ({e}); a line that starts with '{{' is read "
            'as a JSON object: write a text that starts with \'{\' as {"text": "..."}'
        ) from None
    return obj


def _string_field(obj: dict, key: str, lineno: int, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f'line {lineno}: "{key}" must be a string in {what}, got {type(value).__name__}')
    return value


def _parse_line(task: str, line: str, lineno: int) -> Any:
    text = line.rstrip("\r\n")
    stripped = text.strip()
    obj = _json_line(stripped, lineno) if stripped.startswith("{") else None
    if not isinstance(obj, dict):
        if task == "question-answering":
            raise ValueError(
                f'line {lineno}: question-answering reads JSON lines {{"question": "...", "context": "..."}}'
            )
        return text
    if task == "question-answering":
        what = '{"question": "...", "context": "..."}'
        return {k: _string_field(obj, k, lineno, what) for k in ("question", "context")}
    if "text" not in obj:
        raise ValueError(f'line {lineno}: a JSON input needs a "text" key (and "text_pair" for pairs)')
    what = '{"text": "...", "text_pair": "..."}'
    first = _string_field(obj, "text", lineno, what)
    if obj.get("text_pair") is not None:
        if task not in ("text-classification", "feature-extraction", "sentence-embedding"):
            raise ValueError(
                f'line {lineno}: {task} reads one text a line: its "text_pair" would be left out '
                "(pairs are for text-classification, feature-extraction and sentence-embedding)"
            )
        return {"text": first, "text_pair": _string_field(obj, "text_pair", lineno, what)}
    return first


def _read_inputs(task: str, stream: IO[bytes], name: str, skip_empty: bool) -> Iterator[tuple[int, Any]]:
    """(line number, input) of a binary stream, one input a line, decoded as UTF-8 line by line (an error
    names the line)."""
    for lineno, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{name} line {lineno} is not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})"
            ) from None
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark
        if not line.strip():
            if skip_empty:
                print(f"fastbert run: skipping empty line {lineno}", file=sys.stderr)
                continue
            raise ValueError(f"line {lineno} of the input is empty (pass --skip-empty to skip empty lines)")
        yield lineno, _parse_line(task, line, lineno)


def _naming_lines(
    pipe: Any, numbered: Iterable[tuple[int, Any]], kwargs: dict[str, Any]
) -> Iterator[tuple[int, Any]]:
    """(line number, ``pipe``'s result) of the numbered inputs, in order; a ValueError the pipeline raises for one input
    (no [MASK] in it, an empty context, too long without truncation) is raised again naming its line: the
    inputs taken but not yet answered are rerun one at a time until one raises it."""
    pending: collections.deque[tuple[int, Any]] = collections.deque()
    read_errors: list[ValueError] = []  # the reader's own (a line not UTF-8): it names its line already

    def feed() -> Iterator[Any]:
        lines = iter(numbered)
        while True:
            try:
                lineno, item = next(lines)
            except StopIteration:
                return
            except ValueError as e:
                read_errors.append(e)
                raise
            pending.append((lineno, item))
            yield item

    try:
        for result in pipe(feed(), **kwargs):
            lineno, _ = pending.popleft()
            yield lineno, result
    except ValueError as e:
        if str(e).startswith("line ") or any(e is r for r in read_errors):
            raise
        for lineno, item in list(pending):
            try:
                pipe([item], **kwargs)
            except ValueError as alone:
                raise ValueError(f"line {lineno}: {_as_flags(str(alone))}") from None
        raise


#: the pipeline's words for its arguments, as ``fastbert run``'s flags say them
_FLAGS = {
    "(truncation=False)": "(--no-truncation)",
    "or allow truncation": "or drop --no-truncation",
    "or raise max_length": "or raise --max-length",
    "lower doc_stride": "lower --doc-stride",
    "doc_stride=": "--doc-stride ",
    "`doc_stride` (": "--doc-stride (",
    "`max_seq_len` (": "--max-length (",
    "raise max_seq_len": "raise --max-length",
    "max_seq_len=": "--max-length ",
    "pass model= ": "pass --model ",
}


def _as_flags(message: str) -> str:
    from fastbert.cli import as_flags

    return as_flags(message, _FLAGS)


def _task_kwargs(args: argparse.Namespace, task: str) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if args.top_k is not None:
        kw["top_k"] = args.top_k
    if args.targets:
        if task != "fill-mask":
            raise ValueError("--targets is a fill-mask option")
        kw["targets"] = [t.strip() for t in args.targets.split(",") if t.strip()]
        if not kw["targets"]:  # a comma separates targets: it can never be one
            raise ValueError(
                f"--targets {args.targets!r} names no target: pass comma-separated tokens, e.g. paris,lyon"
            )
    if args.function_to_apply:
        kw["function_to_apply"] = args.function_to_apply
    if args.aggregation_strategy:
        kw["aggregation_strategy"] = args.aggregation_strategy
    if args.doc_stride is not None:
        kw["doc_stride"] = args.doc_stride
    if args.max_answer_len is not None:
        kw["max_answer_len"] = args.max_answer_len
    if args.handle_impossible_answer:
        kw["handle_impossible_answer"] = True
    if task == "sentence-embedding":
        if args.pooling:
            kw["pooling"] = list(comma_list("--pooling", args.pooling))
        if args.normalize is not None:
            kw["normalize"] = args.normalize
    elif args.pooling or args.normalize is not None:
        raise ValueError("--pooling and --normalize are sentence-embedding options")
    if args.no_truncation:
        if task == "question-answering":
            raise ValueError(
                "--no-truncation is not an option of question-answering: a long context is read in "
                "overlapping windows (--doc-stride), never truncated"
            )
        kw["truncation"] = False
    allowed = {
        "fill-mask": {"top_k", "targets", "truncation"},
        "feature-extraction": {"truncation"},
        "sentence-embedding": {"truncation", "pooling", "normalize"},
        "text-classification": {"top_k", "function_to_apply", "truncation"},
        "token-classification": {"aggregation_strategy", "truncation"},
        "question-answering": {"top_k", "doc_stride", "max_answer_len", "handle_impossible_answer"},
    }[task]
    wrong = sorted(set(kw) - allowed)
    if wrong:
        flags = ", ".join("--" + w.replace("_", "-") for w in wrong)
        raise ValueError(f"{flags} not an option of {task}")
    return kw


#: CSV columns of each task that yields records: ``index`` is the result's number (0-based, the line of
#: the JSON lines output), ``mask`` a fill-mask line's mask (0, 1... for a line with several), ``rank`` the
#: record's place in the list of one input (empty where the JSON result is one object, not a list). A
#: record's own ``index`` (token-classification's token index) is the ``token_index`` column. A line whose
#: result is an empty list is one row with its ``index`` alone: nothing JSON lines say is lost.
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "fill-mask": ("index", "mask", "rank", "score", "token", "token_str", "sequence"),
    "text-classification": ("index", "rank", "label", "score"),
    "token-classification": ("index", "rank", "entity", "score", "token_index", "word", "start", "end"),
    "token-classification-aggregated": ("index", "rank", "entity_group", "score", "word", "start", "end"),
    "question-answering": ("index", "rank", "score", "start", "end", "answer"),
}
#: record keys renamed in CSV because a column of the row has their name
CSV_RENAMED = {"index": "token_index"}


def csv_columns(task: str, kwargs: dict[str, Any], dim: int | None) -> list[str]:
    """The CSV header of ``task`` (known before the first result: every row has the same columns)."""
    if task == "sentence-embedding":
        return ["index", *(f"dim_{j}" for j in range(dim or 0))]
    if task == "feature-extraction":
        return ["index", "token", *(f"dim_{j}" for j in range(dim or 0))]
    if task == "token-classification" and kwargs.get("aggregation_strategy", "none") != "none":
        return list(CSV_COLUMNS["token-classification-aggregated"])
    return list(CSV_COLUMNS[task])


def _records(index: int, result: Any, **where: Any) -> Iterator[dict[str, Any]]:
    if isinstance(result, dict):
        yield {"index": index, **where, **{CSV_RENAMED.get(k, k): v for k, v in result.items()}}
        return
    if not result:  # an empty list: the line stays, with nothing but its number
        yield {"index": index, **where}
        return
    for rank, r in enumerate(result):
        yield {"index": index, **where, "rank": rank, **{CSV_RENAMED.get(k, k): v for k, v in r.items()}}


def _csv_rows(task: str, index: int, result: Any) -> Iterator[dict[str, Any]]:
    if task == "sentence-embedding":
        yield {"index": index, **{f"dim_{j}": v for j, v in enumerate(result)}}
        return
    if task == "feature-extraction":
        for t, vec in enumerate(result[0]):
            yield {"index": index, "token": t, **{f"dim_{j}": v for j, v in enumerate(vec)}}
        return
    if task == "fill-mask":
        several = bool(result) and isinstance(result[0], list)
        for m, row in enumerate(result if several else [result]):
            yield from _records(index, row, mask=m)
        return
    yield from _records(index, result)


class _Writer:
    """Writes results as they come (JSON lines, JSON, CSV) or all at the end (``.npy``, ``.safetensors``)
    to a file opened by :func:`fastbert.output_files.open_output`."""

    def __init__(
        self, fmt: str, task: str, dim: int | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        self.fmt, self.task, self.dim = fmt, task, dim
        self.columns = csv_columns(task, kwargs or {}, dim) if fmt == "csv" else []
        self.rows: list[Any] = []
        self.csv_writer: csv.DictWriter | None = None
        self.first = True

    @property
    def binary(self) -> bool:
        return self.fmt in ("npy", "safetensors")

    def write(self, out: IO, index: int, result: Any, flush: bool, lineno: int | None = None) -> None:
        if self.fmt == "jsonl":
            out.write(_json(result, lineno) + "\n")
            if flush:  # a terminal, a pipe or a FIFO reads each line as it is written
                out.flush()
        elif self.fmt == "json":
            out.write(("[\n" if self.first else ",\n") + _json(result, lineno))
        elif self.fmt == "csv":
            if self.csv_writer is None:
                self.csv_writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="raise")
                self.csv_writer.writeheader()
            for row in _csv_rows(self.task, index, result):
                self.csv_writer.writerow(row)
        else:
            self.rows.append(result)
        self.first = False

    def finish(self, out: IO) -> None:
        if self.fmt == "json":
            out.write("[]\n" if self.first else "\n]\n")
        elif self.binary:
            out.write(self._binary())

    def _binary(self) -> bytes:
        import numpy as np

        if self.task == "sentence-embedding":
            arrays = {"embeddings": np.asarray(self.rows, dtype=np.float32).reshape(len(self.rows), self.dim)}
        else:
            arrays = {str(i): np.asarray(r[0], dtype=np.float32) for i, r in enumerate(self.rows)}
        if self.fmt == "safetensors":
            from safetensors.numpy import save

            return save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata={"task": self.task})
        if self.task == "feature-extraction":
            lengths = {a.shape[0] for a in arrays.values()}
            if len(lengths) > 1:
                raise ValueError(
                    "token embeddings of inputs of different lengths do not stack into one .npy array: "
                    "write .safetensors (one tensor per input) or use --task sentence-embedding"
                )
            stacked = np.stack(list(arrays.values())) if arrays else np.zeros((0, 0, self.dim), np.float32)
        else:
            stacked = arrays["embeddings"]
        buf = io.BytesIO()
        np.save(buf, stacked)
        return buf.getvalue()


def _json(result: Any, lineno: int | None) -> str:
    """``result`` as JSON; one that holds NaN or infinity (a model whose output overflowed or whose weights
    hold NaN) is refused, naming its input line, as ``fastbert serve`` refuses it: JSON has no such number
    (``json.dumps`` would write ``NaN``, which JSON readers reject)."""
    try:
        return json.dumps(result, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError(
            f"line {lineno}: the result holds NaN or infinity, which JSON cannot carry (the model's output "
            "overflowed or its weights hold NaN); --format csv writes them as nan / inf"
        ) from None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"fastbert run: warning: {message}", file=sys.stderr)


def cli_main(args: argparse.Namespace) -> int:
    import warnings

    from huggingface_hub.utils import logging as hub_logging

    # huggingface_hub's retry notices are not errors of the run: fastbert's own message says what failed
    hub_logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _cli_main(args)


def _cli_main(args: argparse.Namespace) -> int:
    from .registry import check_task

    task = check_task(args.task)
    fmt = _format_of(args)
    kwargs = _task_kwargs(args, task)
    if fmt in ("npy", "safetensors"):
        if task not in ("sentence-embedding", "feature-extraction"):
            raise ValueError(
                f"--format {fmt} is for embeddings (sentence-embedding, feature-extraction), not {task}"
            )
        if args.output is None:
            raise ValueError(f"--format {fmt} writes a binary file: pass --output FILE.{fmt}")
    # refused before the model loads: a folder, a missing folder, an unwritable file...
    plan = check_output_path(args.output if args.output is not None else "-")
    if args.input is not None and args.input != "-":
        if not os.path.exists(args.input):
            raise OSError(f"input file {args.input} does not exist")
        if os.path.isdir(args.input):
            raise OSError(f"input {args.input} is a folder: pass a file with one input per line")
    _refuse_output_is_input(args.input, plan.path)

    from fastbert.devices import available_device

    from .factory import pipeline  # torch: only once the arguments are known to be good

    # cuda without CUDA, cuda:3 of two GPUs, banana: refused before the model loads
    device = available_device(args.device) if args.device is not None else None
    extra = {"max_length": args.max_length} if args.max_length is not None else {}
    if args.quantization is not None:
        import torch

        from fastbert.cli import refuse_precision

        on = device if device is not None else torch.device("cpu")
        refuse_precision(args.quantization, args.dtype, args.model, [on])
        extra["model_kwargs"] = {"quantization": args.quantization}
    try:
        pipe = pipeline(
            task,
            model=args.model,
            tokenizer=args.tokenizer,
            device=device,
            torch_dtype=args.dtype,
            attn_implementation=args.attn_implementation,
            batch_size=args.batch_size,
            progress=args.progress,
            **extra,
        )
    except (AssertionError, RuntimeError) as e:
        from .factory import device_move_error

        moved_to = device_move_error(e)
        if moved_to is not None:  # torch, moving the model to the device
            raise ValueError(f"cannot use device {args.device or str(moved_to)!r}: {e}") from None
        if isinstance(e, ValueError):  # a checkpoint of another shape: said as it is
            raise
        raise ValueError(str(e) or type(e).__name__) from None  # loading the model: one line, as it is
    except ValueError as e:  # too small or too large: the pipeline names its argument, this its flag
        if args.max_length is not None and str(e).startswith(f"max_length={args.max_length} is "):
            raise ValueError("--max-length " + str(e).removeprefix("max_length=")) from None
        if _as_flags(str(e)) != str(e):
            raise ValueError(_as_flags(str(e))) from None
        raise

    writer = _Writer(fmt, task, _vector_size(pipe, kwargs), kwargs)
    source = sys.stdin.buffer if args.input in (None, "-") else open(args.input, "rb")
    try:
        inputs = _read_inputs(
            task, source, "stdin" if source is sys.stdin.buffer else args.input, args.skip_empty
        )
        if source.isatty():  # typed by hand: answer each line as it comes
            kwargs["window"] = 1
        results = _naming_lines(pipe, inputs, kwargs)
        if writer.binary:  # computed first, written at once: a failed run leaves the target as it was
            for i, (_, result) in enumerate(results):
                writer.write(None, i, result, flush=False)
            results = []
        with open_output(plan.path, "wb" if writer.binary else "w") as out:
            _write_all(writer, out, results, flush=plan.how != "replace")
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    return 0


def _refuse_output_is_input(input_path: str | None, output_path: str) -> None:
    """Refuse an ``--output`` that is the input (the same file by any name: a symlink, a hard link, or the
    file that stdin reads): the run would replace what it is reading."""
    if output_path == "-":
        return
    try:
        out_st = os.stat(output_path)
    except OSError:
        return  # a new file: not the input
    if not os.path.isfile(output_path):
        return  # /dev/null, a FIFO, a descriptor: written in place, never replaced
    if input_path not in (None, "-"):
        if os.path.samestat(os.stat(input_path), out_st):
            raise ValueError(
                f"--output {output_path} is the input file {input_path} (the same file): the run would "
                "replace its own input; write the results to another file"
            )
        return
    try:
        in_st = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):  # no stdin, or one without a descriptor
        return
    if os.path.samestat(in_st, out_st):
        raise ValueError(
            f"--output {output_path} is the file stdin reads: the run would replace its own input; "
            "write the results to another file"
        )


def _write_all(writer: _Writer, out: IO, results: Iterable[tuple[int, Any]], flush: bool) -> None:
    for i, (lineno, result) in enumerate(results):
        writer.write(out, i, result, flush, lineno)
    writer.finish(out)


def _vector_size(pipe: Any, kwargs: dict[str, Any]) -> int | None:
    """Floats per vector of an embedding task (what an empty ``.npy`` is shaped by)."""
    hidden = getattr(pipe.model.config, "hidden_size", None)
    if hidden is None or pipe.task not in ("sentence-embedding", "feature-extraction"):
        return None
    if pipe.task == "feature-extraction":
        return hidden
    import torch

    # a sentence-transformers folder's Dense modules after the pooling (768 -> 512...) size the vector: the
    # CSV header had hidden-size columns, left empty past the vector, and an empty .npy that width
    dense = [m for m in getattr(pipe, "dense", None) or () if isinstance(m, torch.nn.Linear)]
    if dense:
        size = dense[-1].out_features
    else:
        pooling = kwargs.get("pooling") or pipe.pooling
        size = hidden * (1 if isinstance(pooling, str) else len(pooling))
    # the folder's truncate_dim (config_sentence_transformers.json) cuts the vectors: the CSV header had the
    # full width, its columns past the cut left empty, and .npy / .safetensors failed to reshape the rows
    truncate_dim = getattr(pipe, "truncate_dim", None)
    return size if truncate_dim is None else min(size, int(truncate_dim))
