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
from fastbert.serve import deployment                     # Ray Serve (pip install 'fastbert-triton[serve-ray]')
serve.run(deployment.options(num_replicas=2).bind(ServeOptions(model="./my-model")))
```
"""

from __future__ import annotations

from typing import Any

from .cli import add_cli_arguments, cli_main
from .options import ServeOptions

__all__ = ["ServeOptions", "add_cli_arguments", "cli_main", "create_app", "deployment"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "deployment":
        from .ray_serve import deployment

        return deployment
    raise AttributeError(f"module 'fastbert.serve' has no attribute {name!r}")
