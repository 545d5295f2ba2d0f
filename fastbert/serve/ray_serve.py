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
up to ``max_ongoing_requests`` = 2N requests; its app serves N inputs (a slot each, as TEI's permits) and
answers the requests past them 429 at once, as the plain server does. Requests that find every replica at 2N wait at the proxy, up to
``max_queued_requests`` = N of them per proxy; past that Ray's proxy answers 503 itself (its plain-text
body, not TEI's). Binding other :class:`ServeOptions` than the defaults from Python, pass
``**ray_limits(options)`` to ``.options(...)``.

Metrics: ``GET /metrics`` is routed as any request, to one replica, which answers its own (not the
deployment's, and without a replica label): with several replicas, successive scrapes see different
replicas. Ray Serve's own metrics (``ray_serve_*``, labelled by replica, on each node's Ray metrics port)
cover the deployment.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from typing import Any

from ray import serve

from .options import ServeOptions

#: Ray's graceful_shutdown_timeout_s for --graceful-shutdown-timeout 0 (no limit): a year
_NO_LIMIT_S = 365 * 24 * 3600.0


def ray_limits(options: ServeOptions) -> dict[str, Any]:
    """The deployment options (``deployment.options(**ray_limits(options))``) under which Ray Serve honours
    ``options.max_concurrent_requests`` N per replica: a replica is handed up to 2N requests, its app
    answers those past N inputs 429 at once, and each proxy queues at most N more (Ray's 503 past them; its
    queue has no bound by default); and ``options.graceful_shutdown_timeout``: how long a replica being
    stopped (the application deleted, scaled down) waits for what it holds (Ray's default: 20 s)."""
    n = options.max_concurrent_requests
    return {
        "max_ongoing_requests": 2 * n,
        "max_queued_requests": n,
        "graceful_shutdown_timeout_s": options.graceful_shutdown_timeout or _NO_LIMIT_S,
    }


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


def check_model(options: ServeOptions) -> str:
    """What a replica would refuse of the model and the options, refused in the driver before Ray starts:
    the plain server's one-line ``OSError``/``ValueError`` (a replica's refusal reached the driver as a
    Ray traceback without its cause, after half a minute). Returns the transformer's folder (its config). A --quantization
    the replicas' device cannot run is refused here when --devices names the CPU only, else once the
    replicas' device is known (:func:`check_precision`)."""
    import torch

    from fastbert.loading import parse_dtype

    from .engine import Tokenizer, default_max_batch_tokens, describe_model

    spec = describe_model(options)
    Tokenizer(spec)
    parse_dtype(options.dtype)
    default_max_batch_tokens(options, [torch.device("cpu")], spec)
    if options.devices and all(d == "cpu" for d in options.devices):
        check_precision(options, spec.model_path, on_gpu=False)
    return spec.model_path


def check_precision(options: ServeOptions, path: str, on_gpu: bool) -> None:
    """The plain server's refusal (:class:`~fastbert.serve.engine.ServedModel`, in the flags' terms) of a
    --quantization that CPU replicas cannot run with --dtype (int8 from other than float32 weights, fp8);
    a GPU replica's own CUDA decides there (this machine's GPU, if any, is not the replica's)."""
    if options.quantization is None or on_gpu:
        return
    import torch

    from ..cli import refuse_precision

    # a CPU replica's dtype: --dtype, else float32 (ServedModel's default on the CPU)
    dtype = options.dtype or "float32"
    refuse_precision(options.quantization, dtype, path, [torch.device("cpu")], "--devices")


def replicas_for(
    options: ServeOptions, resources: dict[str, float], replicas: int | None
) -> tuple[int, dict[str, float]]:
    """(replicas, each one's Ray resources) on a cluster of ``resources``: one per GPU (one CPU replica
    without GPUs) unless ``replicas`` says; a ``ValueError`` naming what is missing when they cannot all be
    placed (Ray Serve would wait for them without a word)."""
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 0))
    cuda = [d for d in options.devices or () if d != "cpu"]
    if len(cuda) > 1:
        raise ValueError(
            f"--devices {','.join(options.devices or ())}: a Ray replica holds one GPU (its cuda:0); "
            "run more replicas (--ray-replicas) instead"
        )
    if cuda and not gpus:
        raise ValueError(f"--devices {cuda[0]}: the Ray cluster has no GPU")
    if cuda and cuda[0] not in ("cuda", "cuda:0"):
        # the replica sees only the GPU Ray gives it (CUDA_VISIBLE_DEVICES), as cuda:0: cuda:1 failed there
        # ("invalid device ordinal", after Ray's restarts)
        raise ValueError(
            f"--devices {cuda[0]}: a Ray replica sees only the GPU Ray gives it, as cuda:0, and Ray picks "
            "which: pass --devices cuda, or leave --devices out"
        )
    on_gpu = bool(cuda) or (options.devices is None and gpus > 0)
    count = replicas or (max(gpus, 1) if on_gpu else 1)
    actor = {"num_gpus": 1, "num_cpus": 1} if on_gpu else {"num_cpus": 1}
    have = {"num_cpus": cpus, "num_gpus": gpus}
    names = {"num_cpus": "CPUs", "num_gpus": "GPUs"}
    for key, each in actor.items():
        if count * each > have[key]:
            fit = int(have[key] // each)
            raise ValueError(
                f"{count} replica{'s' if count > 1 else ''} of {each:g} {names[key][:-1]} each do not fit the "
                f"Ray cluster's {have[key]:g} {names[key]}: pass --ray-replicas {fit} or fewer, or add nodes"
                if fit
                else f"a replica needs {each:g} {names[key][:-1]}: the Ray cluster has none"
            )
    return count, actor


class _Signals:
    """SIGTERM and SIGINT as a record the main thread polls while Ray's blocking calls run on a thread: an
    exception raised by a handler inside Ray's extension code comes out of it as a ``SystemError``, and Ray's
    own SIGTERM handler dumps a stack and aborts."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def __call__(self, signum: int, frame: Any) -> None:
        self.received.append(signum)

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self)


def _on_thread(call: Any, until: Any) -> tuple[bool, Any]:
    """``call()`` on a daemon thread, waited for until it returns or ``until()`` is true: (whether it
    returned, its result; an exception it raised is raised here)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as e:  # handed to the waiting thread (or dropped, if it left)
            box["error"] = e

    thread = threading.Thread(target=target, name="fastbert-serve-ray", daemon=True)
    thread.start()
    while thread.is_alive() and not until():
        thread.join(0.1)
    if thread.is_alive():
        return False, None
    if "error" in box:
        raise box["error"]
    return True, box.get("result")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^\s*[\w.]+(Error|Exception)\b[^:]*: .+")


def _deploy_error(error: BaseException) -> str:
    """One line saying why the deployment failed: the last ``...Error: ...`` line of Ray's error (a remote
    traceback), else of the replicas' status (a constructor's error), else the error's first line."""
    texts = [str(error)]
    try:
        app = serve.status().applications.get("fastbert")
        texts += [d.message for d in app.deployments.values()] + [app.message]
    except Exception:  # Serve's status is a nicety here
        pass
    for text in texts:
        causes = [x.strip() for x in _ANSI.sub("", text or "").splitlines() if _ERROR_LINE.match(x)]
        if causes:
            return causes[-1]
    return (_ANSI.sub("", str(error)).strip().splitlines() or [type(error).__name__])[0]


def run_ray(options: ServeOptions, address: str | None = None, replicas: int | None = None) -> int:
    """``fastbert serve --ray``: start (or join) Ray, run one replica per GPU (CPU replicas when none) on
    ``options.host:options.port``, and block until SIGTERM / SIGINT. Then only the ``fastbert`` application
    is deleted (``serve.delete`` drains it: the replicas answer what they hold, the proxy stays up
    meanwhile; a second Ctrl-C stops waiting, a second SIGTERM is ignored); Serve itself is shut down only
    on a Ray instance this process started (on a cluster it would delete every other application too).
    Then, as the plain server, 0 after SIGTERM, or KeyboardInterrupt after SIGINT.

    A model or option a replica would refuse, replicas the cluster cannot place, a ``fastbert`` application
    already on the cluster, or a deployment that fails (its port taken, a replica's constructor) are
    one-line errors (``ValueError``: ``fastbert serve:
    error:``, exit 2). From the moment Ray is up, the signals are handled, while the deployment waits too
    (for replicas that cannot be scheduled yet, say)."""
    import ray

    if options.port == 0:  # Ray's proxies bound a port of their own choosing, said nowhere ("...:0")
        raise ValueError(
            "--port 0 (any free port) is the plain server's: Ray Serve's proxies do not say which port they "
            "took; pass a port with --ray"
        )
    path = check_model(options)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    signals = _Signals()
    signals.install()  # over Ray's (a SIGTERM handler of ray.init's, then its fatal-signal handler)
    started_here = _started_here()
    serving = deployed = False
    failure: str | None = None
    try:
        count, actor = replicas_for(options, ray.cluster_resources(), replicas)
        check_precision(options, path, on_gpu="num_gpus" in actor)
        limits = ray_limits(options)
        app = deployment.options(num_replicas=count, ray_actor_options=actor, **limits).bind(options)

        def deploy() -> str | None:
            """None once deployed, else why not."""
            nonlocal serving, deployed
            serving = True
            serve.start(http_options={"host": options.host, "port": options.port})
            if signals.received:  # (stopped meanwhile: nothing to deploy, and then delete)
                return None
            if "fastbert" in serve.status().applications:  # serve.run replaced it, and our stop deleted it
                return (
                    "the cluster already runs a fastbert application (another fastbert serve --ray): stop "
                    "that one first, or deploy from Python under another name"
                )
            deployed = True
            serve.run(app, name="fastbert", route_prefix="/")
            return None

        try:
            ready, failure = _on_thread(deploy, lambda: bool(signals.received))
        except Exception as e:  # the port is taken, a replica's constructor failed, ...
            failure = _deploy_error(e)
        else:
            if ready and failure is None:
                print(
                    f"fastbert serve: listening on http://{options.host}:{options.port} (Ray Serve, {count} "
                    f"{'GPU' if 'num_gpus' in actor else 'CPU'} replica{'s' if count > 1 else ''}) "
                    f"model={options.model or 'embedded MiniLM'}",
                    file=sys.stderr,
                    flush=True,
                )
            while not signals.received and failure is None:
                time.sleep(0.1)
    finally:
        first = len(signals.received)
        # a second Ctrl-C stops waiting for the drain; a second SIGTERM does not
        _stop(deployed, serving and started_here, lambda: signal.SIGINT in signals.received[first:])
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if failure is not None:
        raise ValueError(f"Ray Serve could not deploy fastbert: {failure}")
    if signals.received[0] == signal.SIGTERM:
        return 0  # as the plain server (and TEI): a stop that went as asked
    raise KeyboardInterrupt


def _stop(deployed: bool, shutdown: bool, forced: Any) -> None:
    """Delete the fastbert application (draining it) unless ``forced()`` stops the wait; ``shutdown``: then
    Serve (of a Ray instance this process started)."""
    try:
        if deployed:
            _on_thread(lambda: serve.delete("fastbert"), forced)
    except Exception as e:  # (the cluster went away...): said, and the rest of the stop goes on
        why = " ".join(_ANSI.sub("", str(e)).split()) or type(e).__name__
        print(f"fastbert serve: warning: deleting the fastbert application failed: {why}", file=sys.stderr)
    if shutdown:
        serve.shutdown()
