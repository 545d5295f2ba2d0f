"""``fastbert`` command line: ``run``, ``embed``, ``serve``, ``check``, ``bench``, ``convert``.

Each subcommand is an object that provides ``add_cli_arguments(parser)`` and ``cli_main(args) -> int``:
its own module, or ``module:attribute`` (``convert``'s glue lives here: the library of legacy formats
has no command line of its own); only the module of the command asked for is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import Any, NoReturn

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "fastbert.pipelines",
        "run a pipeline (fill-mask, embeddings, classification, QA) over stdin or a file",
    ),
    "embed": (
        "fastbert.embed",
        "embed a corpus (text/JSONL/CSV/Parquet) into resumable Parquet shards, on devices or Ray",
    ),
    "serve": (
        "fastbert.serve",
        "serve a model over HTTP: text-embeddings-inference and OpenAI embeddings APIs",
    ),
    "check": (
        "fastbert.check",
        "compare every backend and dtype against a float64 reference (transformers' eager when installed)",
    ),
    "bench": ("fastbert.benchmark", "benchmark fastbert against transformers and torch.compile"),
    "convert": (
        "fastbert.cli:ConvertCommand",
        "convert a BERT TF 2, Flax or Google TF1 checkpoint into a safetensors folder",
    ),
}


def _command(name: str):
    """The module (or ``module:attribute``) that provides the ``add_cli_arguments``/``cli_main`` of ``name``."""
    module, _, attribute = COMMANDS[name][0].partition(":")
    found = importlib.import_module(module)
    return getattr(found, attribute) if attribute else found


class ConvertCommand:
    """``fastbert convert SRC DST``: the argparse glue of :func:`fastbert.legacy.convert_checkpoint`."""

    @staticmethod
    def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "src", metavar="SRC", help="folder, hub id or file of a BERT TF 2, Flax or Google TF1 checkpoint"
        )
        parser.add_argument("dst", metavar="DST", help="folder to write model.safetensors + config.json into")
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--from-tf", action="store_true", help="read a TF checkpoint (TF1 index or tf_model.h5)"
        )
        group.add_argument(
            "--from-flax", action="store_true", help="read a Flax checkpoint (flax_model.msgpack)"
        )
        parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
        parser.add_argument("--subfolder", default="", help="subfolder of SRC that holds the checkpoint")
        parser.add_argument("--local-files-only", action="store_true", help="do not reach the hub")
        parser.add_argument(
            "--overwrite", action="store_true", help="replace DST/model.safetensors if it exists"
        )

    @staticmethod
    def cli_main(args: argparse.Namespace) -> int:
        from fastbert.hub import HubOptions
        from fastbert.legacy import convert_checkpoint

        hub = HubOptions(
            revision=args.revision, subfolder=args.subfolder, local_files_only=args.local_files_only
        )
        try:
            convert_checkpoint(
                args.src,
                args.dst,
                from_tf=args.from_tf,
                from_flax=args.from_flax,
                hub=hub,
                overwrite=args.overwrite,
            )
        except ImportError as e:  # the [legacy] extra is missing: the message says how to install it
            print(f"fastbert convert: error: {e}", file=sys.stderr)
            return 2
        return 0


def quantization_arg(text: str) -> str | None:
    """The ``--quantization`` of ``fastbert run``, ``embed`` and ``serve``: int8, fp8 (any case), or none."""
    from .quant import QUANTIZATIONS, check_quantization

    try:
        return check_quantization(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(QUANTIZATIONS)} or none, got {text!r}"
        ) from None


def refuse_precision(
    quantization: str | None, dtype: Any, model: str | None, devices: list, device_flag: str = "--device"
) -> None:
    """``ValueError`` saying why ``--quantization`` cannot run with ``--dtype`` on one of ``devices`` (torch
    devices), in the command's flags (:func:`fastbert.quant.flag_refusal`): ``fastbert run``, ``embed`` and
    ``serve`` ask before the model loads. ``--dtype auto`` is the dtype of ``model``'s config (None: the embedded
    MiniLM), or where it names none, the dtype of a local folder's safetensors weights; not known when
    neither can be read here (loading the model then says why)."""
    from fastbert import registry
    from fastbert.hub import embedded_model_path
    from fastbert.loading import parse_dtype, saved_weights_dtype
    from fastbert.quant import flag_refusal

    if quantization is None:
        return
    dtype = parse_dtype(dtype)
    known = None
    if dtype == "auto":
        import torch

        folder = model if model is not None else embedded_model_path()
        try:
            known = registry.load_config(folder).torch_dtype
        except (OSError, ValueError):
            pass
        if not isinstance(known, torch.dtype) and os.path.isdir(folder):
            known = saved_weights_dtype(folder)
    for device in devices:
        why = flag_refusal(quantization, dtype, device, known, device_flag=device_flag)
        if why is not None:
            raise ValueError(why)


def as_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` (an API's refusal, naming its Python arguments) in a command's words: each key of
    ``flags`` (``"max_length="``) replaced by the command's flag (``"--max-length "``)."""
    for words, flag in flags.items():
        message = message.replace(words, flag)
    return message


def comma_list(flag: str, value: str) -> tuple[str, ...]:
    """The entries of a comma-separated flag value, stripped, each once in first-seen order; an empty entry
    (``fp32,,fp16``, ``mean,``) is refused naming the flag; none at all (``" , "``) is ``()``, which the
    caller refuses in its own words."""
    entries = [v.strip() for v in value.split(",")]
    if not any(entries):
        return ()
    if not all(entries):
        raise ValueError(f"{flag} {value!r} has an empty entry: separate its names with single commas")
    return tuple(dict.fromkeys(entries))


QUANTIZATION_HELP = (
    "quantize the loaded model: int8 (CPU, CUDA) or fp8 (CUDA, compute capability 8.9+); calibrated at load "
    "on a built-in set (README, Precision)"
)


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit 2 (argparse prints its whole usage):
    ``fastbert run: error: argument --batch-size: must be at least 1, got 0 (fastbert run --help)``.
    Sub-parsers are of the same class (``add_subparsers`` makes them with ``type(self)``)."""

    command_parsers: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="fastbert", description="fastbert: a drop-in accelerated BERT.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.command_parsers = {}  # name -> its parser: an unknown argument is reported by the command's
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        parser.command_parsers[name] = p
        if name == command:  # import only the module of the command that runs
            _command(name).add_cli_arguments(p)
    return parser


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def main(argv: list[str] | None = None) -> int:
    """Run ``fastbert COMMAND ...``: 0 on success; every error a user can cause (a bad argument, input,
    file or model: ``ValueError``, ``OSError``, ``TypeError``) is one line on stderr and exit code 2,
    never a traceback; Ctrl-C exits 130 quietly."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    name = "fastbert"
    try:
        parser = _parser(command if command in COMMANDS else None)
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # as parse_args, but said by the command's parser: "fastbert run: error: ..."
            where = parser.command_parsers.get(args.command, parser)
            where.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.version:
            from fastbert import __version__

            print(__version__)
            return 0
        if args.command is None:
            parser.print_help()
            return 2
        name = f"fastbert {args.command}"
        module = _command(args.command)
        return int(module.cli_main(args) or 0)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, and keep Python from failing to flush at exit
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError, TypeError) as e:  # UnicodeDecodeError is a ValueError
        print(f"{name}: error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
