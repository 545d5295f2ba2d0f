"""``fastbert embed``: its arguments and its entry point (one summary line on stderr)."""

from __future__ import annotations

import sys
import warnings

from ..cli import QUANTIZATION_HELP, quantization_arg
from .inputs import FORMATS
from .job import (
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_BATCH_TOKENS_CPU,
    DEFAULT_SHARD_ROWS,
    DEFAULT_WINDOW,
    ON_ERROR,
    OUTPUT_DTYPES,
)


def add_cli_arguments(parser) -> None:
    """The arguments of ``fastbert embed``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="text/JSONL/CSV/Parquet files or globs")
    parser.add_argument(
        "--output", "-o", required=True, help="output folder (Parquet shards + _manifest.json)"
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
    parser.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="do not L2-normalize, even where the folder's modules.json has Normalize (which "
        "encode(normalize_embeddings=False) still applies)",
    )
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
        "--ray",
        action="store_true",
        help="run as a Ray Data pipeline (pip install '.[ray]' in a checkout of fastbert)",
    )
    parser.add_argument(
        "--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)"
    )
    parser.add_argument("--ray-actors", type=int, default=None, help="model actors (default: one a GPU)")
    parser.add_argument("--revision", default=None, help="hub revision of the model")
    parser.add_argument("--attn-implementation", default=None, choices=("eager", "sdpa", "triton"))
    parser.add_argument("--quantization", type=quantization_arg, default=None, help=QUANTIZATION_HELP)


def cli_main(args) -> int:
    """Run ``fastbert embed``; prints a one-line summary to stderr."""
    from .api import embed, require_pyarrow
    from .ray_engine import require_ray

    try:  # a missing extra is one line that says what to install, as a bad argument is
        require_pyarrow()
        if args.ray:
            require_ray()
    except ImportError as e:
        print(f"fastbert embed: error: {e}", file=sys.stderr)
        return 2
    from .api import DuplicateIdWarning, duplicate_ids_message

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateIdWarning)  # said below, in one line
        warnings.showwarning = _show_warning  # another (a backend's fallback): one line, as errors are
        manifest = _embed(embed, args)
    if manifest.get("duplicate_ids"):
        print(f"fastbert embed: warning: {duplicate_ids_message(manifest)}", file=sys.stderr)
    print(
        f"fastbert embed: {manifest['total_rows']} rows in {len(manifest['shards'])} shards, "
        f"{manifest['bad_rows']} bad rows, written to {args.output}",
        file=sys.stderr,
    )
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"fastbert embed: warning: {message}", file=sys.stderr)


def _refuse_precision(args) -> None:
    """A --quantization that a worker's device or --dtype cannot run: refused in the flags' terms before
    anything loads."""
    if args.quantization is None:
        return
    import torch

    from fastbert.cli import refuse_precision
    from fastbert.devices import available_device

    from .devices import device_list

    flag = "--devices" if args.devices is not None else "--device"
    devices = [
        # None: the local engine's CPU; a Ray actor's CUDA where there is one (_RayEncoder)
        torch.device("cuda" if args.ray and torch.cuda.is_available() else "cpu")
        if spec is None
        else available_device(spec, flag)  # a GPU this machine lacks: said as such (fp8's query would raise)
        for spec in device_list(args.device, args.devices)
    ]
    refuse_precision(args.quantization, args.dtype, args.model, devices, device_flag=flag)


#: ``fastbert.embed``'s words for its arguments (its refusals), as this command's flags say them
_FLAGS = {
    "max_length=": "--max-length ",
    "max_length must": "--max-length must",
    "shard_rows must": "--shard-rows must",
    "window must": "--window must",
    "max_batch_tokens must": "--max-batch-tokens must",
    "pass model= a": "pass --model a",
    "pooling and normalize are options": "--pooling and --normalize are options",
    "function_to_apply is a": "--function-to-apply is a",
    "ray_actors is an option of the Ray engine (engine='ray')": "--ray-actors is an option of --ray",
    "ray_address is an option of the Ray engine (engine='ray')": "--ray-address is an option of --ray",
    "device and devices: pass one": "--device and --devices: pass one",
    "output (--output) must": "--output must",
}


def _embed(embed, args) -> dict:
    _refuse_precision(args)
    try:
        return _call_embed(embed, args)
    except ValueError as e:  # the API names its arguments: the command names its flags
        from fastbert.cli import as_flags

        said = as_flags(str(e), _FLAGS)
        if said == str(e):
            raise
        raise ValueError(said) from None


def _call_embed(embed, args) -> dict:
    return embed(
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
        quantization=args.quantization,
    )
