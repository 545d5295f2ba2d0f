"""The server's options: :class:`ServeOptions` (what ``fastbert serve``'s arguments become, what
``create_app`` and the Ray deployment take) and TEI's defaults. Imports nothing of the ``[serve]`` extra.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

#: fastbert's port (TEI's router listens on 3000 by default, its Docker image on 80)
DEFAULT_PORT = 8080
#: TEI's defaults
DEFAULT_MAX_CONCURRENT_REQUESTS = 512
DEFAULT_MAX_CLIENT_BATCH_SIZE = 32
DEFAULT_PAYLOAD_LIMIT = 2_000_000
DEFAULT_MAX_BATCH_TOKENS = 16384
#: --pooling's values: sentence-transformers' names and splade (TEI's last-token is taken for lasttoken)
POOLINGS = ("cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken", "splade")
#: seconds a shutdown (SIGTERM, Ctrl-C) waits for the requests in flight before it answers them 503
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT = 60.0
#: the CPU's default forward: a smaller token budget keeps a batch's latency near a lone request's
DEFAULT_MAX_BATCH_TOKENS_CPU = 4096


@dataclass(frozen=True)
class ServeOptions:
    """Everything the server needs: the model, limits, devices and auth (picklable, for Ray replicas)."""

    model: str | None = None
    revision: str | None = None
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_batch_tokens: int | None = None
    max_batch_requests: int | None = None
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    max_client_batch_size: int = DEFAULT_MAX_CLIENT_BATCH_SIZE
    max_input_length: int | None = None
    #: truncate inputs over max_input_length instead of a 422 (TEI's default since 1.9)
    auto_truncate: bool = True
    payload_limit: int = DEFAULT_PAYLOAD_LIMIT
    dtype: str | None = None
    attn_implementation: str | None = None
    quantization: str | None = None
    pooling: str | None = None
    #: the prompt put before every input a request sends without ``prompt_name``: one of the
    #: sentence-transformers config's prompts by name, or a text (TEI's --default-prompt-name /
    #: --default-prompt; the config's own ``default_prompt_name`` is not applied, as in TEI)
    default_prompt_name: str | None = None
    default_prompt: str | None = None
    api_key: str | None = None
    devices: tuple[str, ...] | None = None
    threads: int | None = None
    #: origins a browser may call from (CORS); None: any origin, as TEI's default
    cors_allow_origin: tuple[str, ...] | None = None
    #: seconds SIGTERM / Ctrl-C wait for the requests in flight; those still running then are answered 503
    #: (0: no limit, as TEI, which waits for every request)
    graceful_shutdown_timeout: float = DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT

    def __post_init__(self) -> None:
        # the command line checks these as it parses them; options built in Python (create_app, the Ray
        # deployment) went unchecked: a limit of 0 answered every request 429 or 422, a limit given as a
        # string failed every request with a 500
        for name in ("max_concurrent_requests", "max_client_batch_size", "payload_limit"):
            _whole(name, getattr(self, name), 1)
        for name in ("max_batch_tokens", "max_batch_requests", "max_input_length", "threads"):
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), 1)
        _whole("port", self.port, 0, 65535)
        timeout = self.graceful_shutdown_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
            raise TypeError(
                f"ServeOptions.graceful_shutdown_timeout (--graceful-shutdown-timeout) must be a number of "
                f"seconds, got {timeout!r}"
            )
        if not 0 <= timeout < float("inf"):
            raise ValueError(
                f"ServeOptions.graceful_shutdown_timeout (--graceful-shutdown-timeout) must be 0 (no limit) "
                f"or more seconds, got {timeout!r}"
            )

    def replace(self, **changes: Any) -> ServeOptions:
        return dataclasses.replace(self, **changes)


def _whole(name: str, value: Any, low: int, high: int | None = None) -> None:
    """A ``TypeError`` / ``ValueError`` naming the option (and its flag) unless ``value`` is an int in range."""
    what = f"ServeOptions.{name} (--{name.replace('_', '-')})"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ValueError(f"{what} must be {bounds}, got {value}")
