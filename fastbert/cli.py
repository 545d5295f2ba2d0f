"""``fastbert`` command line: ``run``, ``check``, ``bench``, ``convert``.

Each subcommand lives in its own module, which provides ``add_cli_arguments(parser)`` and
``cli_main(args) -> int``; only the module of the command asked for is imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "fastbert.pipelines",
        "run a pipeline (fill-mask, embeddings, classification, QA) over stdin or a file",
    ),
    "embed": (
        "fastbert.embed",
        "embed a corpus (text/JSONL/CSV/Parquet) into resumable Parquet shards, on devices or Ray",
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.version:
        from fastbert import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.cli_main(args) or 0)
    except (ValueError, OSError) as e:
        print(f"fastbert {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
