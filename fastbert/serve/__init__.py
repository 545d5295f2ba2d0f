"""``fastbert serve``: a text-embeddings-inference- and OpenAI-compatible server on fastbert's packed forward.

Modules: :mod:`.options` (:class:`ServeOptions`, TEI's defaults), :mod:`.cli` (the command line; no extra
needed), :mod:`.engine` (the served model, its tokenizer, one batch's forward), :mod:`.batcher` (token-budget
batching across requests, one worker per device), :mod:`.schemas` (pydantic request/response models),
:mod:`.errors`, :mod:`.metrics` (Prometheus, TEI's names), :mod:`.app` (the FastAPI app and its routes),
:mod:`.ray_serve` (the Ray Serve deployment). ``import fastbert.serve`` needs none of the ``[serve]`` extra; ``create_app`` and
``deployment`` import it when first used.

```python
from fastbert.serve import create_app, ServeOptions
app = create_app(ServeOptions(model="./my-model"))        # an ASGI app: uvicorn.run(app)

from ray import serve
from fastbert.serve import deployment                     # Ray Serve (pip install '.[serve-ray]' in a checkout)
serve.run(deployment.options(num_replicas=2).bind(ServeOptions(model="./my-model")))
```
"""

from __future__ import annotations

from typing import Any

from .cli import RAY_EXTRA, SERVE_EXTRA, add_cli_arguments, cli_main, missing_extra
from .options import ServeOptions

__all__ = ["ServeOptions", "add_cli_arguments", "cli_main", "create_app", "deployment"]


#: the modules of the ``[serve]`` extra that ``create_app`` imports
SERVE_MODULES = ("fastapi", "starlette", "prometheus_client", "pydantic")


def _require(name: str, modules: tuple[str, ...], what: str, install: str) -> None:
    """An ``ImportError`` naming the extra to install when one of ``modules`` is missing."""
    missing = missing_extra(modules)
    if missing is not None:
        raise ImportError(
            f"fastbert.serve.{name} needs {what}, which is not installed ({missing} is missing): {install}",
            name=missing,
        )


def __getattr__(name: str) -> Any:
    if name == "create_app":
        _require(name, SERVE_MODULES, "the [serve] extra", SERVE_EXTRA)
        from .app import create_app

        return create_app
    if name == "deployment":
        _require(name, ("ray", "ray.serve", *SERVE_MODULES), "ray[serve]", RAY_EXTRA)
        from .ray_serve import deployment

        return deployment
    raise AttributeError(f"module 'fastbert.serve' has no attribute {name!r}")
