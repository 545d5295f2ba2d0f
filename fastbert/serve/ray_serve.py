"""``fastbert serve`` on Ray Serve: the same ASGI app in every replica, Ray Serve's routing, autoscaling
and backpressure in front.

``deployment`` is a Ray Serve deployment; bind it to :class:`~fastbert.serve.ServeOptions`::

    from ray import serve
    from fastbert.serve import ServeOptions, deployment

    app = deployment.options(num_replicas=2, ray_actor_options={"num_gpus": 1}).bind(ServeOptions(model="./m"))
    serve.run(app, route_prefix="/")          # on the cluster of ray.init(address=...) / RAY_ADDRESS

``fastbert serve --ray`` does that with one replica per GPU of the cluster (CPU replicas when it has none).
Each replica loads the model on its device and runs the app's token-budget batcher.

Overload (:func:`ray_limits`): ``--max-concurrent-requests`` N holds per replica. Ray Serve hands a replica
up to ``max_ongoing_requests`` = 2N requests; its app serves N and answers the others 429 at once, as the
plain server does. Requests that find every replica at 2N wait at the proxy, up to
``max_queued_requests`` = N of them per proxy; past that Ray's proxy answers 503 itself (its plain-text
body, not TEI's). Binding other :class:`ServeOptions` than the defaults from Python, pass
``**ray_limits(options)`` to ``.options(...)``.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from ray import serve

from .options import ServeOptions


def ray_limits(options: ServeOptions) -> dict[str, Any]:
    """The deployment options (``deployment.options(**ray_limits(options))``) under which Ray Serve honours
    ``options.max_concurrent_requests`` N per replica: a replica is handed up to 2N requests, its app
    answers those past N 429 at once, and each proxy queues at most N more (Ray's 503 past them; its
    queue has no bound by default)."""
    n = options.max_concurrent_requests
    return {"max_ongoing_requests": 2 * n, "max_queued_requests": n}


@serve.deployment(
    name="fastbert",
    **ray_limits(ServeOptions()),  # the defaults: TEI's 512
    ray_actor_options={"num_cpus": 1},
)
@serve.ingress()
class FastbertDeployment:
    """One replica: the model on the replica's device (its GPU when Ray gave it one, else the CPU)."""

    def __init__(self, options: ServeOptions | None = None) -> None:
        import torch

        options = options or ServeOptions()
        if options.devices is None:
            options = options.replace(devices=("cuda:0",) if torch.cuda.is_available() else ("cpu",))
        self.options = options

    def __serve_build_asgi_app__(self) -> Any:
        from .app import create_app

        return create_app(self.options)


deployment = FastbertDeployment


def _started_here() -> bool:
    """Whether ``ray.init`` started the Ray instance (a local one) rather than joining a running cluster
    (``--ray-address``, ``RAY_ADDRESS``, a ``ray start`` on this machine, Ray Client)."""
    import ray

    node = getattr(getattr(getattr(ray, "_private", None), "worker", None), "_global_node", None)
    return bool(getattr(node, "head", False))


def run_ray(options: ServeOptions, address: str | None = None, replicas: int | None = None) -> int:
    """``fastbert serve --ray``: start (or join) Ray, run one replica per GPU (CPU replicas when none) on
    ``options.host:options.port``, and block until interrupted. Then only the ``fastbert`` application is
    deleted (``serve.delete`` drains it: the replicas answer what they hold, the proxy stays up meanwhile);
    Serve itself is shut down only on a Ray instance this process started (on a cluster it would delete
    every other application too)."""
    import ray

    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    started_here = _started_here()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    count = replicas or max(gpus, 1)
    actor = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
    serve.start(http_options={"host": options.host, "port": options.port})
    app = deployment.options(num_replicas=count, ray_actor_options=actor, **ray_limits(options)).bind(options)
    serve.run(app, name="fastbert", route_prefix="/")

    def stop(signum, frame):  # SIGTERM ends the deployment like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:  # (the startup line too: a signal may follow it at once)
        print(
            f"fastbert serve: listening on http://{options.host}:{options.port} (Ray Serve, {count} "
            f"{'GPU' if gpus else 'CPU'} replica{'s' if count > 1 else ''}) model={options.model or 'embedded MiniLM'}",
            file=sys.stderr,
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete("fastbert")
        if started_here:
            serve.shutdown()
    return 0
