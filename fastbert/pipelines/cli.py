"""``fastbert run``: a pipeline over one input per line of stdin (or ``--input``), results to stdout
(or ``--output``) as JSON lines, JSON, CSV, or for embeddings ``.npy`` / ``.safetensors``.

Nothing is half-written to ``--output``: results go to a temporary file beside it, renamed at the end.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

FORMATS = ("jsonl", "json", "csv", "npy", "safetensors")
_EXT_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".npy": "npy",
    ".safetensors": "safetensors",
}


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
    parser.add_argument("--batch-size", type=int, default=None, help="rows per forward (default 32)")
    parser.add_argument(
        "--input",
        default=None,
        help="input file, one input per line (JSON lines for text pairs and QA); default stdin",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="output file (.jsonl, .json, .csv; embeddings also .npy, .safetensors); default stdout",
    )
    parser.add_argument(
        "--format",
        default=None,
        choices=FORMATS,
        help="output format (default: from --output's extension, else jsonl)",
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
        type=int,
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
        type=int,
        default=None,
        help="question-answering: overlap of the spans of a long context",
    )
    g.add_argument("--max-answer-len", type=int, default=None, help="question-answering")
    g.add_argument("--handle-impossible-answer", action="store_true", default=None, help="question-answering")
    g.add_argument(
        "--pooling",
        default=None,
        help="sentence-embedding: mean, cls, max... (default: the folder's pooling config)",
    )
    g.add_argument(
        "--normalize", action="store_true", default=None, help="sentence-embedding: L2-normalize the vectors"
    )


def _format_of(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.output:
        ext = os.path.splitext(args.output)[1].lower()
        if ext in _EXT_FORMATS:
            return _EXT_FORMATS[ext]
    return "jsonl"


def _parse_line(task: str, line: str, lineno: int) -> Any:
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as e:
            if task == "question-answering":
                raise ValueError(f"line {lineno}: not valid JSON ({e})") from None
            return text
        if not isinstance(obj, dict):
            return text
        if task == "question-answering":
            if not isinstance(obj.get("question"), str) or not isinstance(obj.get("context"), str):
                raise ValueError(
                    f'line {lineno}: question-answering takes {{"question": "...", "context": "..."}}'
                )
            return {"question": obj["question"], "context": obj["context"]}
        if "text" not in obj:
            raise ValueError(f'line {lineno}: a JSON input needs a "text" key (and "text_pair" for pairs)')
        if task == "text-classification" and obj.get("text_pair") is not None:
            return {"text": obj["text"], "text_pair": obj["text_pair"]}
        if obj.get("text_pair") is not None and task in ("feature-extraction", "sentence-embedding"):
            return {"text": obj["text"], "text_pair": obj["text_pair"]}
        return obj["text"]
    if task == "question-answering":
        raise ValueError(
            f'line {lineno}: question-answering reads JSON lines {{"question": "...", "context": "..."}}'
        )
    return text


def _read_inputs(task: str, stream: io.TextIOBase, skip_empty: bool) -> Iterator[Any]:
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            if skip_empty:
                print(f"fastbert run: skipping empty line {lineno}", file=sys.stderr)
                continue
            raise ValueError(f"line {lineno} of the input is empty (pass --skip-empty to skip empty lines)")
        yield _parse_line(task, line, lineno)


def _task_kwargs(args: argparse.Namespace, task: str) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if args.top_k is not None:
        kw["top_k"] = args.top_k
    if args.targets:
        if task != "fill-mask":
            raise ValueError("--targets is a fill-mask option")
        kw["targets"] = [t.strip() for t in args.targets.split(",") if t.strip()]
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
            kw["pooling"] = [p.strip() for p in args.pooling.split(",")]
        if args.normalize:
            kw["normalize"] = True
    elif args.pooling or args.normalize:
        raise ValueError("--pooling and --normalize are sentence-embedding options")
    if args.no_truncation and task != "question-answering":
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


def _csv_rows(task: str, index: int, result: Any) -> Iterator[dict[str, Any]]:
    if task == "sentence-embedding":
        yield {"index": index, **{f"dim_{j}": v for j, v in enumerate(result)}}
        return
    if task == "feature-extraction":
        for t, vec in enumerate(result[0]):
            yield {"index": index, "token": t, **{f"dim_{j}": v for j, v in enumerate(vec)}}
        return
    if isinstance(result, dict):
        yield {"index": index, **result}
        return
    if result and isinstance(result[0], list):  # several masks
        for m, row in enumerate(result):
            for rank, r in enumerate(row):
                yield {"index": index, "mask": m, "rank": rank, **r}
        return
    for rank, r in enumerate(result):
        yield {"index": index, "rank": rank, **r}


class _Writer:
    """Writes results to stdout or a temporary file renamed over ``--output`` when all went well."""

    def __init__(self, path: str | None, fmt: str, task: str) -> None:
        self.path, self.fmt, self.task = path, fmt, task
        self.tmp: str | None = None
        self.rows: list[Any] = []
        self.csv_writer: csv.DictWriter | None = None
        self.first = True
        if fmt in ("npy", "safetensors"):
            if task not in ("sentence-embedding", "feature-extraction"):
                raise ValueError(
                    f"--format {fmt} is for embeddings (sentence-embedding, feature-extraction), not {task}"
                )
            if path is None:
                raise ValueError(f"--format {fmt} writes a binary file: pass --output FILE.{fmt}")
        if path is not None:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise OSError(f"cannot write {path}: folder {directory} does not exist")
            fd, self.tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
            )
            os.close(fd)
            self.out = (
                open(self.tmp, "w", encoding="utf-8", newline="") if fmt in ("jsonl", "json", "csv") else None
            )
        else:
            self.out = sys.stdout

    def write(self, index: int, result: Any) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps(result, ensure_ascii=False) + "\n")
            if self.out is sys.stdout:
                self.out.flush()
        elif self.fmt == "json":
            self.out.write(("[\n" if self.first else ",\n") + json.dumps(result, ensure_ascii=False))
        elif self.fmt == "csv":
            for row in _csv_rows(self.task, index, result):
                if self.csv_writer is None:
                    self.csv_writer = csv.DictWriter(self.out, fieldnames=list(row), extrasaction="ignore")
                    self.csv_writer.writeheader()
                self.csv_writer.writerow(row)
        else:
            self.rows.append(result)
        self.first = False

    def finish(self) -> None:
        if self.fmt == "json":
            self.out.write("[]\n" if self.first else "\n]\n")
        elif self.fmt in ("npy", "safetensors"):
            self._write_binary()
        if self.out is not None and self.out is not sys.stdout:
            self.out.close()
        elif self.out is sys.stdout:
            self.out.flush()
        if self.tmp is not None:
            os.replace(self.tmp, self.path)
            self.tmp = None

    def _write_binary(self) -> None:
        import numpy as np

        if self.task == "sentence-embedding":
            arrays = {"embeddings": np.asarray(self.rows, dtype=np.float32).reshape(len(self.rows), -1)}
        else:
            arrays = {str(i): np.asarray(r[0], dtype=np.float32) for i, r in enumerate(self.rows)}
        if self.fmt == "npy":
            if self.task == "feature-extraction":
                lengths = {a.shape[0] for a in arrays.values()}
                if len(lengths) > 1:
                    raise ValueError(
                        "token embeddings of inputs of different lengths do not stack into one .npy array: "
                        "write .safetensors (one tensor per input) or use --task sentence-embedding"
                    )
                stacked = np.stack(list(arrays.values())) if arrays else np.zeros((0, 0, 0), np.float32)
            else:
                stacked = arrays["embeddings"]
            with open(self.tmp, "wb") as f:
                np.save(f, stacked)
        else:
            from safetensors.numpy import save_file

            save_file(
                {k: np.ascontiguousarray(v) for k, v in arrays.items()},
                self.tmp,
                metadata={"task": self.task},
            )

    def abort(self) -> None:
        if self.out is not None and self.out is not sys.stdout:
            self.out.close()
        if self.tmp is not None and os.path.exists(self.tmp):
            os.remove(self.tmp)
        self.tmp = None


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
    from . import check_task, pipeline

    try:
        task = check_task(args.task)
    except ValueError as e:
        print(f"fastbert run: error: {e}", file=sys.stderr)
        return 2
    fmt = _format_of(args)
    kwargs = _task_kwargs(args, task)
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.input is not None and args.input != "-" and not os.path.isfile(args.input):
        raise OSError(f"input file {args.input} does not exist")

    device: Any = args.device
    if device is not None and device.strip().lstrip("-").isdigit():
        device = int(device)
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
        )
    except (AssertionError, RuntimeError) as e:  # torch: no CUDA, bad device...
        print(f"fastbert run: error: cannot use device {args.device!r}: {e}", file=sys.stderr)
        return 2

    writer = _Writer(args.output, fmt, task)
    source = sys.stdin if args.input in (None, "-") else open(args.input, encoding="utf-8")
    try:
        inputs = _read_inputs(task, source, args.skip_empty)
        if source.isatty():  # typed by hand: answer each line as it comes
            kwargs["window"] = 1
        for i, result in enumerate(pipe(inputs, **kwargs)):
            writer.write(i, result)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        if source is not sys.stdin:
            source.close()
    return 0
