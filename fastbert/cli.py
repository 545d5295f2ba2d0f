"""``fastbert`` command line: ``run``, ``check``, ``bench``, ``convert``.

Each subcommand lives in its own module, which provides ``add_cli_arguments(parser)`` and
``cli_main(args) -> int``; only the module of the command asked for is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "fastbert.pipelines",
        "run a pipeline (fill-mask, embeddings, classification, QA) over stdin or a file",
    ),
    "check": ("fastbert.check", "compare every backend and dtype against an fp32 eager reference"),
    "bench": ("fastbert.benchmark", "benchmark fastbert against transformers and torch.compile"),
    "convert": ("fastbert.legacy", "convert a TF 2, Flax or Google TF1 checkpoint into a safetensors folder"),
}


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastbert", description="fastbert: a drop-in accelerated BERT.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:  # import only the module of the command that runs
            importlib.import_module(module).add_cli_arguments(p)
    return parser


def _one_line(error: BaseException) -> str:
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
        args = parser.parse_args(argv)
        if args.version:
            from fastbert import __version__

            print(__version__)
            return 0
        if args.command is None:
            parser.print_help()
            return 2
        name = f"fastbert {args.command}"
        module = importlib.import_module(COMMANDS[args.command][0])
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
